//! Customers (K1): one search box for name, trade name, email, phone, CPF or CNPJ — formatted or
//! not — and registering and editing a customer. CPF and CNPJ are checked by their check digits
//! and stored normalised (`core::documents`), phones in E.164 (`core::phone`), emails in lower
//! case. Lists mask CPF and CNPJ; a customer's own page shows them whole, formatted.

use actix_web::{HttpResponse, get, patch, post, web};
use chrono::Utc;
use schema::models::{Customer, CustomerChangeset};
use schema::store::{self, CustomerSearch};
use schema::{CustomerId, StoreError};
use serde::{Deserialize, Serialize};

use crate::core::db::{db, parse_id};
use crate::core::documents;
use crate::core::error::{ApiError, Code, ErrorBody};
use crate::core::session::CurrentAgent;
use crate::core::state::AppState;

/// Most customers one search lists.
const MAX_LISTED: i64 = 100;
/// Longest name or trade name kept.
const MAX_NAME: usize = 200;
/// Most emails or phones of one customer.
const MAX_ADDRESSES: usize = 10;

/// A customer as the API shows it: `cpf` and `cnpj` formatted, masked in lists.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CustomerDto {
    pub id: String,
    pub name: String,
    pub trade_name: Option<String>,
    pub cpf: Option<String>,
    pub cnpj: Option<String>,
    pub emails: Vec<String>,
    pub phones: Vec<String>,
}

impl CustomerDto {
    fn new(c: Customer, masked: bool) -> Self {
        let (cpf, cnpj) = if masked {
            (c.cpf.as_deref().map(documents::mask_cpf), c.cnpj.as_deref().map(documents::mask_cnpj))
        } else {
            (c.cpf.as_deref().map(documents::format_cpf), c.cnpj.as_deref().map(documents::format_cnpj))
        };
        Self {
            id: c.id.to_string(),
            name: c.name,
            trade_name: c.trade_name,
            cpf,
            cnpj,
            emails: c.emails,
            phones: c.phones,
        }
    }
}

/// `?q=` what the agent typed, `limit` up to 100.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CustomerQuery {
    pub q: Option<String>,
    pub limit: Option<i64>,
}

/// What a search text is: a CPF or CNPJ (check digits hold), an email, a phone, else a name.
fn recognise(q: &str) -> CustomerSearch {
    let q = q.trim();
    if let Some(cpf) = documents::cpf(q) {
        return CustomerSearch::Cpf(cpf);
    }
    if let Some(cnpj) = documents::cnpj(q) {
        return CustomerSearch::Cnpj(cnpj);
    }
    if q.contains('@') {
        return CustomerSearch::Email(q.to_lowercase());
    }
    if let Some(phone) = crate::core::phone::e164(q) {
        return CustomerSearch::Phones(engine::ingest::phone_forms(&phone));
    }
    CustomerSearch::Name(q.to_owned())
}

/// Customers found by name, trade name, email, phone, CPF or CNPJ.
#[utoipa::path(get, path = "/api/v1/customers", tag = "customers", params(CustomerQuery),
    responses((status = 200, body = [CustomerDto]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[get("/customers")]
pub async fn search(
    state: web::Data<AppState>,
    _me: CurrentAgent,
    query: web::Query<CustomerQuery>,
) -> Result<HttpResponse, ApiError> {
    let CustomerQuery { q, limit } = query.into_inner();
    let limit = limit.unwrap_or(20);
    if !(1..=MAX_LISTED).contains(&limit) {
        return Err(ApiError::bad_request(Code::InvalidLimit, "limit is between 1 and 100"));
    }
    let q = q.unwrap_or_default();
    let q = q.trim();
    // A name needs three characters to use the trigram index; one or two would read every
    // customer. Without `q`, the first customers by name.
    let n = q.chars().count();
    if n > 100 || (1..3).contains(&n) {
        return Err(ApiError::bad_request(Code::InvalidQuery, "q is 3 to 100 characters, or absent"));
    }
    let search = if q.is_empty() { CustomerSearch::All } else { recognise(q) };
    let rows = db(&state, move |c| store::search_customers(c, &search, limit)).await?;
    Ok(HttpResponse::Ok().json(rows.into_iter().map(|c| CustomerDto::new(c, true)).collect::<Vec<_>>()))
}

/// A customer to register, or the fields to change (absent: unchanged; `null`: cleared).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerBody {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::core::dto::double_option")]
    #[schema(value_type = Option<String>)]
    pub trade_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::core::dto::double_option")]
    #[schema(value_type = Option<String>)]
    pub cpf: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::core::dto::double_option")]
    #[schema(value_type = Option<String>)]
    pub cnpj: Option<Option<String>>,
    pub emails: Option<Vec<String>>,
    pub phones: Option<Vec<String>>,
}

/// The body checked and normalised into a changeset; refusals name the field.
fn changes(body: CustomerBody) -> Result<CustomerChangeset, ApiError> {
    let text =
        |v: Option<String>| v.map(|n| n.trim().chars().take(MAX_NAME).collect::<String>()).filter(|n| !n.is_empty());
    let name = match body.name {
        Some(n) => Some(text(Some(n)).ok_or_else(|| ApiError::bad_request(Code::InvalidField, "name is required"))?),
        None => None,
    };
    let cpf = match body.cpf {
        Some(Some(v)) if !v.trim().is_empty() => Some(Some(
            documents::cpf(&v)
                .ok_or_else(|| ApiError::unprocessable(Code::InvalidCpf, "the CPF's check digits do not hold"))?,
        )),
        Some(_) => Some(None),
        None => None,
    };
    let cnpj = match body.cnpj {
        Some(Some(v)) if !v.trim().is_empty() => Some(Some(
            documents::cnpj(&v)
                .ok_or_else(|| ApiError::unprocessable(Code::InvalidCnpj, "the CNPJ's check digits do not hold"))?,
        )),
        Some(_) => Some(None),
        None => None,
    };
    let emails = match body.emails {
        Some(list) => Some(addresses(list, |e| {
            let e = e.trim().to_lowercase();
            let ok = e.len() <= 254 && e.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.'));
            ok.then_some(e).ok_or_else(|| ApiError::bad_request(Code::InvalidEmail, "an email is not an address"))
        })?),
        None => None,
    };
    let phones = match body.phones {
        Some(list) => Some(addresses(list, |p| {
            crate::core::phone::e164(&p)
                .ok_or_else(|| ApiError::bad_request(Code::InvalidPhone, "a phone is not a phone number"))
        })?),
        None => None,
    };
    Ok(CustomerChangeset {
        name,
        trade_name: body.trade_name.map(text),
        cpf,
        cnpj,
        emails,
        phones,
        updated_at: Some(Utc::now()),
        ..Default::default()
    })
}

/// Each address normalised by `norm`, duplicates dropped, at most [`MAX_ADDRESSES`].
fn addresses(list: Vec<String>, norm: impl Fn(String) -> Result<String, ApiError>) -> Result<Vec<String>, ApiError> {
    if list.len() > MAX_ADDRESSES {
        return Err(ApiError::bad_request(Code::InvalidField, "at most 10 emails and 10 phones"));
    }
    let mut out: Vec<String> = Vec::new();
    for a in list {
        let a = norm(a)?;
        if !out.contains(&a) {
            out.push(a);
        }
    }
    Ok(out)
}

/// A CPF or CNPJ another customer has: 409 `customer_exists`.
fn taken(e: ApiError) -> ApiError {
    if e.status == actix_web::http::StatusCode::CONFLICT {
        ApiError::conflict(Code::CustomerExists, "another customer has this CPF or CNPJ")
    } else {
        e
    }
}

/// Registers a customer.
#[utoipa::path(post, path = "/api/v1/customers", tag = "customers", request_body = CustomerBody,
    responses((status = 201, body = CustomerDto), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
#[post("/customers")]
pub async fn create(
    state: web::Data<AppState>,
    _me: CurrentAgent,
    body: web::Json<CustomerBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    if body.name.is_none() {
        return Err(ApiError::bad_request(Code::InvalidField, "name is required"));
    }
    let c = changes(body)?;
    let now = Utc::now();
    let row = Customer {
        id: CustomerId::new(),
        name: c.name.unwrap_or_default(),
        trade_name: c.trade_name.flatten(),
        cpf: c.cpf.flatten(),
        cnpj: c.cnpj.flatten(),
        emails: c.emails.unwrap_or_default(),
        phones: c.phones.unwrap_or_default(),
        notes: None,
        portfolio_agent_id: None,
        created_at: now,
        updated_at: now,
    };
    let stored = db(&state, move |conn| row.insert(conn)).await.map_err(taken)?;
    Ok(HttpResponse::Created().json(CustomerDto::new(stored, false)))
}

/// A customer, CPF and CNPJ whole.
#[utoipa::path(get, path = "/api/v1/customers/{id}", tag = "customers",
    responses((status = 200, body = CustomerDto), (status = 404, body = ErrorBody)))]
#[get("/customers/{id}")]
pub async fn get_one(
    state: web::Data<AppState>,
    _me: CurrentAgent,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: CustomerId = parse_id(&id, "customer id")?;
    let found = db(&state, move |c| match Customer::find(c, id) {
        Ok(row) => Ok(Some(row)),
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e),
    })
    .await?;
    let row = found.ok_or_else(|| ApiError::not_found("customer"))?;
    Ok(HttpResponse::Ok().json(CustomerDto::new(row, false)))
}

/// Changes a customer's fields.
#[utoipa::path(patch, path = "/api/v1/customers/{id}", tag = "customers", request_body = CustomerBody,
    responses((status = 200, body = CustomerDto), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
#[patch("/customers/{id}")]
pub async fn update(
    state: web::Data<AppState>,
    _me: CurrentAgent,
    id: web::Path<String>,
    body: web::Json<CustomerBody>,
) -> Result<HttpResponse, ApiError> {
    let id: CustomerId = parse_id(&id, "customer id")?;
    let c = changes(body.into_inner())?;
    let row = db(&state, move |conn| store::update_customer(conn, id, &c)).await.map_err(|e| {
        if e.status == actix_web::http::StatusCode::NOT_FOUND { ApiError::not_found("customer") } else { taken(e) }
    })?;
    Ok(HttpResponse::Ok().json(CustomerDto::new(row, false)))
}
