//! WhatsApp contacts for outbound messages (C7, K6): found by name or number, and added — by hand
//! or from a contact a customer shared in a chat — with their opt-in. Numbers are stored in E.164
//! (`core::phone`), so one person is one contact however the number was written.

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use schema::models::WhatsappContact;
use schema::{WhatsappContactId, store};
use serde::{Deserialize, Serialize};

use crate::core::db::db;
use crate::core::error::{ApiError, Code, ErrorBody};
use crate::core::session::CurrentAgent;
use crate::core::state::AppState;

/// Most contacts one search lists.
const MAX_LISTED: i64 = 200;
/// Longest contact name kept.
const MAX_NAME: usize = 200;

/// A contact as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ContactDto {
    pub id: String,
    /// E.164.
    pub phone: String,
    pub wa_id: Option<String>,
    pub name: Option<String>,
    pub customer_id: Option<String>,
    pub opt_in: bool,
    pub opted_in_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<WhatsappContact> for ContactDto {
    fn from(c: WhatsappContact) -> Self {
        Self {
            id: c.id.to_string(),
            phone: c.phone,
            wa_id: c.wa_id,
            name: c.name,
            customer_id: c.customer_id.map(|x| x.to_string()),
            opt_in: c.opted_in,
            opted_in_at: c.opted_in_at,
            created_at: c.created_at,
        }
    }
}

/// `?q=` a name or a number, `limit` up to 200.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ContactQuery {
    pub q: Option<String>,
    pub limit: Option<i64>,
}

/// Contacts by name or number.
#[utoipa::path(get, path = "/api/v1/contacts", tag = "contacts", params(ContactQuery),
    responses((status = 200, body = [ContactDto]), (status = 401, body = ErrorBody)))]
#[get("/contacts")]
pub async fn list(
    state: web::Data<AppState>,
    _me: CurrentAgent,
    query: web::Query<ContactQuery>,
) -> Result<HttpResponse, ApiError> {
    let ContactQuery { q, limit } = query.into_inner();
    let limit = limit.unwrap_or(50);
    if !(1..=MAX_LISTED).contains(&limit) {
        return Err(ApiError::bad_request(Code::InvalidLimit, "limit is between 1 and 200"));
    }
    if q.as_deref().is_some_and(|q| q.chars().count() > 100) {
        return Err(ApiError::bad_request(Code::InvalidQuery, "q is at most 100 characters"));
    }
    let rows = db(&state, move |c| store::find_whatsapp_contacts(c, q.as_deref(), limit)).await?;
    Ok(HttpResponse::Ok().json(rows.into_iter().map(ContactDto::from).collect::<Vec<_>>()))
}

/// A contact to add.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewContact {
    pub phone: String,
    pub name: Option<String>,
    /// Whether the person agreed to receive messages (then `opted_in_at` is now).
    #[serde(default)]
    pub opt_in: bool,
    /// The number as WhatsApp wrote it, when it came from WhatsApp.
    pub wa_id: Option<String>,
}

/// Adds a contact; 409 `contact_exists` when the number is already one.
#[utoipa::path(post, path = "/api/v1/contacts", tag = "contacts", request_body = NewContact,
    responses((status = 201, body = ContactDto), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/contacts")]
pub async fn create(
    state: web::Data<AppState>,
    me: CurrentAgent,
    body: web::Json<NewContact>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let phone = crate::core::phone::e164(&body.phone)
        .ok_or_else(|| ApiError::bad_request(Code::InvalidPhone, "phone is not a phone number"))?;
    let wa_id = match body.wa_id.map(|w| w.trim().to_owned()).filter(|w| !w.is_empty()) {
        Some(w) if w.len() <= 20 && w.bytes().all(|b| b.is_ascii_digit()) => Some(w),
        Some(_) => return Err(ApiError::bad_request(Code::InvalidPhone, "wa_id is the digits of a WhatsApp number")),
        None => None,
    };
    let name = body.name.map(|n| n.trim().chars().take(MAX_NAME).collect::<String>()).filter(|n| !n.is_empty());
    let now = Utc::now();
    let row = WhatsappContact {
        id: WhatsappContactId::new(),
        phone,
        wa_id,
        name,
        customer_id: None,
        opted_in: body.opt_in,
        opted_in_at: body.opt_in.then_some(now),
        opt_in_source: body.opt_in.then(|| format!("agent:{}", me.agent.login)),
        created_at: now,
        updated_at: now,
    };
    let stored = db(&state, move |c| row.insert(c)).await.map_err(|e| {
        if e.status == actix_web::http::StatusCode::CONFLICT {
            ApiError::conflict(Code::ContactExists, "a contact has this number")
        } else {
            e
        }
    })?;
    Ok(HttpResponse::Created().json(ContactDto::from(stored)))
}
