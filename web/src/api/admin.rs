//! Administration (SPEC.md A "Administration", S4): services, agents, pause reasons,
//! classifications, canned messages, templates, service types. Role admin only. Every change
//! that routing depends on is handed to the engine at once.

use actix_web::{HttpResponse, get, patch, post, web};
use chrono::Utc;
use engine::{AgentProfile, ServiceSettings};
use schema::models::{
    Agent, AgentChangeset, CannedMessage, Classification, EmailTemplate, FormField, PauseReason, Service,
    ServiceChangeset, ServiceType, WhatsappTemplate,
};
use schema::{
    AgentId, CannedMessageId, Channel, ClassificationId, EmailTemplateId, FieldType, FormFieldId, PauseReasonId, Role,
    ServiceId, ServiceTypeId, TemplateCategory, TemplateStatus, WhatsappTemplateId, store,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::core::db::{db, parse_id};
use crate::core::error::{ApiError, Code, ErrorBody};
use crate::core::session::CurrentAgent;
use crate::core::state::AppState;

fn admin(me: &CurrentAgent) -> Result<(), ApiError> {
    me.require(&[Role::Admin])
}

fn not_blank(value: &str, field: &'static str, max: usize) -> Result<String, ApiError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ApiError::bad_request(Code::InvalidField, format!("{field} must not be empty")));
    }
    if v.chars().count() > max {
        return Err(ApiError::bad_request(Code::InvalidField, format!("{field} is longer than {max} characters")));
    }
    Ok(v.to_owned())
}

fn positive(value: Option<i32>, field: &'static str) -> Result<Option<i32>, ApiError> {
    match value {
        Some(v) if v <= 0 => Err(ApiError::bad_request(Code::InvalidField, format!("{field} must be greater than 0"))),
        other => Ok(other),
    }
}

fn conflict_as(e: ApiError, code: Code, message: &str) -> ApiError {
    if e.status == actix_web::http::StatusCode::CONFLICT { ApiError::conflict(code, message) } else { e }
}

// ----- services -----

/// Provider fields that are secrets: accepted, stored, never shown again.
const SECRET_KEYS: &[&str] = &[
    "app_secret",
    "access_token",
    "verify_token",
    "auth_token",
    "bot_token",
    "secret_token",
    "webhook_secret",
    "cti_token",
    "ari_password",
];

/// The provider object with its secrets masked (and passwords inside URLs hidden).
pub fn masked_provider(provider: &Value) -> Value {
    let Some(map) = provider.as_object() else { return json!({}) };
    let mut out = Map::new();
    for (k, v) in map {
        let shown = if SECRET_KEYS.contains(&k.as_str()) {
            json!("***")
        } else if let Some(s) = v.as_str().filter(|s| s.contains("://") && s.contains('@')) {
            json!(crate::core::secrets::redact(s))
        } else {
            v.clone()
        };
        out.insert(k.clone(), shown);
    }
    Value::Object(out)
}

/// The provider-side id webhooks are routed by (SPEC.md A "Channels in").
fn provider_key(channel: Channel, provider: &Value) -> Option<String> {
    let key = match channel {
        Channel::Whatsapp => "phone_number_id",
        Channel::Messenger => "page_id",
        Channel::Instagram => "account_id",
        Channel::Sms => "phone_number",
        Channel::Email => "address",
        _ => return None,
    };
    provider.get(key).and_then(Value::as_str).map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn check_provider(provider: &Value) -> Result<(), ApiError> {
    let map = provider
        .as_object()
        .ok_or_else(|| ApiError::bad_request(Code::InvalidProvider, "provider must be an object"))?;
    if map.len() > 32 {
        return Err(ApiError::bad_request(Code::InvalidProvider, "provider has too many fields"));
    }
    for (k, v) in map {
        let ok = match v {
            Value::String(s) => s.len() <= 2048,
            Value::Array(items) => {
                items.len() <= 64 && items.iter().all(|i| i.as_str().is_some_and(|s| s.len() <= 2048))
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => true,
            Value::Object(_) => false,
        };
        if !ok {
            return Err(ApiError::bad_request(
                Code::InvalidProvider,
                format!("provider.{k} must be a string or a list of strings"),
            ));
        }
    }
    crate::channels::voice::check_provider(map)
}

fn check_hours(hours: &Option<Value>, time_zone: &str) -> Result<(), ApiError> {
    if let Some(h) = hours {
        engine::hours::BusinessHours::parse(h, time_zone)
            .map_err(|e| ApiError::bad_request(Code::InvalidBusinessHours, e))?;
    }
    Ok(())
}

/// A service as the admin API shows it (secrets masked).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ServiceDto {
    pub id: String,
    pub name: String,
    pub channel: String,
    pub active: bool,
    pub auto_distribution: bool,
    pub offer_timeout_s: Option<i32>,
    pub inactivity_minutes: i32,
    pub abandon_hours: i32,
    pub agent_alert_minutes: Option<i32>,
    pub customer_reminder_minutes: Option<i32>,
    pub customer_reminder_text: Option<String>,
    pub disconnect_grace_s: i32,
    pub allow_cancel: bool,
    pub email_approval: bool,
    pub business_hours: Option<Value>,
    pub time_zone: String,
    pub out_of_hours_hold: bool,
    pub out_of_hours_message: Option<String>,
    /// Channel credentials; secrets are shown as "***".
    pub provider: Value,
}

impl ServiceDto {
    fn from_row(s: &Service) -> Self {
        Self {
            id: s.id.to_string(),
            name: s.name.clone(),
            channel: s.channel.to_string(),
            active: s.active,
            auto_distribution: s.auto_distribution,
            offer_timeout_s: s.offer_timeout_s,
            inactivity_minutes: s.inactivity_minutes,
            abandon_hours: s.abandon_hours,
            agent_alert_minutes: s.agent_alert_minutes,
            customer_reminder_minutes: s.customer_reminder_minutes,
            customer_reminder_text: s.customer_reminder_text.clone(),
            disconnect_grace_s: s.disconnect_grace_s,
            allow_cancel: s.allow_cancel,
            email_approval: s.email_approval,
            business_hours: s.business_hours.clone(),
            time_zone: s.time_zone.clone(),
            out_of_hours_hold: s.out_of_hours_hold,
            out_of_hours_message: s.out_of_hours_message.clone(),
            provider: masked_provider(&s.provider),
        }
    }
}

/// A new service.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewServiceBody {
    pub name: String,
    pub channel: String,
    pub auto_distribution: Option<bool>,
    pub offer_timeout_s: Option<i32>,
    pub inactivity_minutes: Option<i32>,
    pub abandon_hours: Option<i32>,
    pub agent_alert_minutes: Option<i32>,
    pub customer_reminder_minutes: Option<i32>,
    pub customer_reminder_text: Option<String>,
    pub disconnect_grace_s: Option<i32>,
    pub allow_cancel: Option<bool>,
    pub email_approval: Option<bool>,
    pub business_hours: Option<Value>,
    pub time_zone: Option<String>,
    pub out_of_hours_hold: Option<bool>,
    pub out_of_hours_message: Option<String>,
    pub provider: Option<Value>,
}

/// Creates a service.
#[utoipa::path(post, path = "/api/v1/admin/services", tag = "admin", request_body = NewServiceBody,
    responses((status = 201, body = ServiceDto), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
#[post("/admin/services")]
pub async fn create_service(
    state: web::Data<AppState>,
    me: CurrentAgent,
    body: web::Json<NewServiceBody>,
) -> Result<HttpResponse, ApiError> {
    admin(&me)?;
    let b = body.into_inner();
    let channel: Channel = b
        .channel
        .parse()
        .map_err(|_| ApiError::bad_request(Code::InvalidChannel, format!("unknown channel {:?}", b.channel)))?;
    let now = Utc::now();
    let mut s = Service::with_defaults(not_blank(&b.name, "name", 200)?, channel, now);
    s.auto_distribution = b.auto_distribution.unwrap_or(true);
    s.offer_timeout_s = positive(b.offer_timeout_s, "offer_timeout_s")?;
    s.inactivity_minutes = positive(b.inactivity_minutes, "inactivity_minutes")?.unwrap_or(30);
    s.abandon_hours = positive(b.abandon_hours, "abandon_hours")?.unwrap_or(48);
    s.agent_alert_minutes = positive(b.agent_alert_minutes, "agent_alert_minutes")?;
    s.customer_reminder_minutes = positive(b.customer_reminder_minutes, "customer_reminder_minutes")?;
    s.customer_reminder_text = b.customer_reminder_text;
    if let Some(g) = b.disconnect_grace_s {
        if g < 0 {
            return Err(ApiError::bad_request(Code::InvalidField, "disconnect_grace_s must not be negative"));
        }
        s.disconnect_grace_s = g;
    }
    s.allow_cancel = b.allow_cancel.unwrap_or(true);
    s.email_approval = b.email_approval.unwrap_or(false);
    if let Some(tz) = b.time_zone {
        s.time_zone = tz;
    }
    if s.time_zone.parse::<chrono_tz::Tz>().is_err() {
        return Err(ApiError::bad_request(Code::InvalidTimeZone, format!("unknown time zone {:?}", s.time_zone)));
    }
    check_hours(&b.business_hours, &s.time_zone)?;
    s.business_hours = b.business_hours;
    s.out_of_hours_hold = b.out_of_hours_hold.unwrap_or(false);
    s.out_of_hours_message = b.out_of_hours_message;
    if let Some(p) = b.provider {
        check_provider(&p)?;
        s.provider = p;
    }
    s.provider_key = provider_key(channel, &s.provider);
    let stored = db(&state, move |c| s.insert(c))
        .await
        .map_err(|e| conflict_as(e, Code::ServiceExists, "a service with that name or provider id exists"))?;
    state.services.forget();
    state.engine.upsert_service(ServiceSettings::from_row(&stored)).await?;
    Ok(HttpResponse::Created().json(ServiceDto::from_row(&stored)))
}

/// Every service.
#[utoipa::path(get, path = "/api/v1/admin/services", tag = "admin",
    responses((status = 200, body = [ServiceDto]), (status = 403, body = ErrorBody)))]
#[get("/admin/services")]
pub async fn list_services(state: web::Data<AppState>, me: CurrentAgent) -> Result<HttpResponse, ApiError> {
    admin(&me)?;
    let rows = db(&state, store::list_services).await?;
    Ok(HttpResponse::Ok().json(rows.iter().map(ServiceDto::from_row).collect::<Vec<_>>()))
}

/// One service.
#[utoipa::path(get, path = "/api/v1/admin/services/{id}", tag = "admin",
    responses((status = 200, body = ServiceDto), (status = 404, body = ErrorBody)))]
#[get("/admin/services/{id}")]
pub async fn get_service(
    state: web::Data<AppState>,
    me: CurrentAgent,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    admin(&me)?;
    let id: ServiceId = parse_id(&id, "service id")?;
    let s = db(&state, move |c| Service::find(c, id)).await.map_err(|_| ApiError::not_found("service"))?;
    Ok(HttpResponse::Ok().json(ServiceDto::from_row(&s)))
}

/// Changes to a service; absent fields stay as they are, `null` clears an optional one.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServicePatch {
    pub name: Option<String>,
    pub active: Option<bool>,
    pub auto_distribution: Option<bool>,
    #[serde(default, deserialize_with = "crate::core::dto::double_option")]
    pub offer_timeout_s: Option<Option<i32>>,
    pub inactivity_minutes: Option<i32>,
    pub abandon_hours: Option<i32>,
    #[serde(default, deserialize_with = "crate::core::dto::double_option")]
    pub agent_alert_minutes: Option<Option<i32>>,
    #[serde(default, deserialize_with = "crate::core::dto::double_option")]
    pub customer_reminder_minutes: Option<Option<i32>>,
    #[serde(default, deserialize_with = "crate::core::dto::double_option")]
    pub customer_reminder_text: Option<Option<String>>,
    pub disconnect_grace_s: Option<i32>,
    pub allow_cancel: Option<bool>,
    pub email_approval: Option<bool>,
    #[serde(default, deserialize_with = "crate::core::dto::double_option")]
    pub business_hours: Option<Option<Value>>,
    pub time_zone: Option<String>,
    pub out_of_hours_hold: Option<bool>,
    #[serde(default, deserialize_with = "crate::core::dto::double_option")]
    pub out_of_hours_message: Option<Option<String>>,
    /// Merged into the stored provider: a key sent as "***" keeps its stored secret.
    pub provider: Option<Value>,
}

/// Changes a service.
#[utoipa::path(patch, path = "/api/v1/admin/services/{id}", tag = "admin", request_body = ServicePatch,
    responses((status = 200, body = ServiceDto), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[patch("/admin/services/{id}")]
pub async fn patch_service(
    state: web::Data<AppState>,
    me: CurrentAgent,
    id: web::Path<String>,
    body: web::Json<ServicePatch>,
) -> Result<HttpResponse, ApiError> {
    admin(&me)?;
    let id: ServiceId = parse_id(&id, "service id")?;
    let p = body.into_inner();
    let current = db(&state, move |c| Service::find(c, id)).await.map_err(|_| ApiError::not_found("service"))?;
    let mut ch = ServiceChangeset { updated_at: Some(Utc::now()), ..Default::default() };
    if let Some(n) = &p.name {
        ch.name = Some(not_blank(n, "name", 200)?);
    }
    ch.active = p.active;
    ch.auto_distribution = p.auto_distribution;
    if let Some(v) = p.offer_timeout_s {
        ch.offer_timeout_s = Some(positive(v, "offer_timeout_s")?);
    }
    ch.inactivity_minutes = positive(p.inactivity_minutes, "inactivity_minutes")?;
    ch.abandon_hours = positive(p.abandon_hours, "abandon_hours")?;
    if let Some(v) = p.agent_alert_minutes {
        ch.agent_alert_minutes = Some(positive(v, "agent_alert_minutes")?);
    }
    if let Some(v) = p.customer_reminder_minutes {
        ch.customer_reminder_minutes = Some(positive(v, "customer_reminder_minutes")?);
    }
    ch.customer_reminder_text = p.customer_reminder_text;
    if let Some(g) = p.disconnect_grace_s {
        if g < 0 {
            return Err(ApiError::bad_request(Code::InvalidField, "disconnect_grace_s must not be negative"));
        }
        ch.disconnect_grace_s = Some(g);
    }
    ch.allow_cancel = p.allow_cancel;
    ch.email_approval = p.email_approval;
    let tz = p.time_zone.clone().unwrap_or_else(|| current.time_zone.clone());
    if tz.parse::<chrono_tz::Tz>().is_err() {
        return Err(ApiError::bad_request(Code::InvalidTimeZone, format!("unknown time zone {tz:?}")));
    }
    ch.time_zone = p.time_zone;
    let hours = p.business_hours.clone().unwrap_or_else(|| current.business_hours.clone());
    check_hours(&hours, &tz)?;
    ch.business_hours = p.business_hours;
    ch.out_of_hours_hold = p.out_of_hours_hold;
    ch.out_of_hours_message = p.out_of_hours_message;
    if let Some(update) = p.provider {
        check_provider(&update)?;
        let mut merged = current.provider.as_object().cloned().unwrap_or_default();
        for (k, v) in update.as_object().cloned().unwrap_or_default() {
            if v.as_str() == Some("***") {
                continue;
            }
            merged.insert(k, v);
        }
        let merged = Value::Object(merged);
        ch.provider_key = Some(provider_key(current.channel, &merged));
        ch.provider = Some(merged);
    }
    let stored = db(&state, move |c| store::update_service(c, id, &ch))
        .await
        .map_err(|e| conflict_as(e, Code::ServiceExists, "a service with that name or provider id exists"))?;
    state.services.forget();
    state.engine.upsert_service(ServiceSettings::from_row(&stored)).await?;
    Ok(HttpResponse::Ok().json(ServiceDto::from_row(&stored)))
}

// ----- agents -----

/// A person as the admin API shows them (never the password hash).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentDto {
    pub id: String,
    pub login: String,
    pub name: String,
    pub role: String,
    pub active: bool,
    pub extension: Option<String>,
    pub auto_distribution: Option<bool>,
    pub services: Vec<String>,
    /// Capacity per channel (defaults filled in: voice 1, email 3, others 5).
    pub capacity: Map<String, Value>,
}

async fn agent_dto(state: &AppState, agent: Agent) -> Result<AgentDto, ApiError> {
    let id = agent.id;
    let (services, capacities) =
        db(state, move |c| Ok((store::services_of_agent(c, id)?, store::capacities_of_agent(c, id)?))).await?;
    let mut capacity = Map::new();
    for ch in Channel::ALL {
        let n = capacities.iter().find(|c| c.channel == *ch).map_or(ch.default_capacity(), |c| c.capacity);
        capacity.insert(ch.to_string(), json!(n));
    }
    Ok(AgentDto {
        id: agent.id.to_string(),
        login: agent.login,
        name: agent.name,
        role: agent.role.to_string(),
        active: agent.active,
        extension: agent.extension,
        auto_distribution: agent.auto_distribution,
        services: services.iter().map(|s| s.to_string()).collect(),
        capacity,
    })
}

/// The engine's view of an agent, from the database.
pub async fn engine_profile(state: &AppState, id: AgentId) -> Result<AgentProfile, ApiError> {
    let (agent, services, capacities) = db(state, move |c| {
        Ok((Agent::find(c, id)?, store::services_of_agent(c, id)?, store::capacities_of_agent(c, id)?))
    })
    .await?;
    let mut p = AgentProfile::new(id, services);
    for c in capacities {
        p.capacity[engine::model::channel_index(c.channel)] = u32::try_from(c.capacity).unwrap_or(0);
    }
    p.auto_distribution = agent.auto_distribution;
    p.extension = agent.extension;
    Ok(p)
}

fn parse_capacity(raw: &Option<Map<String, Value>>) -> Result<Vec<(Channel, i32)>, ApiError> {
    let Some(map) = raw else { return Ok(Vec::new()) };
    map.iter()
        .map(|(k, v)| {
            let ch: Channel = k
                .parse()
                .map_err(|_| ApiError::bad_request(Code::InvalidCapacity, format!("unknown channel {k:?}")))?;
            let n = v
                .as_i64()
                .filter(|n| (0..=100).contains(n))
                .ok_or_else(|| ApiError::bad_request(Code::InvalidCapacity, format!("capacity.{k} must be 0..100")))?;
            Ok((ch, n as i32))
        })
        .collect()
}

fn parse_services(raw: &[String]) -> Result<Vec<ServiceId>, ApiError> {
    raw.iter().map(|s| parse_id(s, "services[]")).collect()
}

/// 400 `weak_password`: blank, padded or too short (`password::acceptable`).
fn weak_password() -> ApiError {
    ApiError::bad_request(
        Code::WeakPassword,
        format!(
            "the password needs at least {} characters besides surrounding spaces",
            crate::core::password::MIN_CHARS
        ),
    )
}

/// A new person.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAgentBody {
    pub login: String,
    pub name: String,
    pub password: String,
    /// agent | supervisor | admin
    pub role: String,
    #[serde(default)]
    pub services: Vec<String>,
    #[schema(value_type = Option<Object>)]
    pub capacity: Option<Map<String, Value>>,
    pub extension: Option<String>,
    pub auto_distribution: Option<bool>,
}

/// Creates an agent, supervisor or admin.
#[utoipa::path(post, path = "/api/v1/admin/agents", tag = "admin", request_body = NewAgentBody,
    responses((status = 201, body = AgentDto), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
#[post("/admin/agents")]
pub async fn create_agent(
    state: web::Data<AppState>,
    me: CurrentAgent,
    body: web::Json<NewAgentBody>,
) -> Result<HttpResponse, ApiError> {
    admin(&me)?;
    let b = body.into_inner();
    let login = not_blank(&b.login, "login", 100)?;
    let name = not_blank(&b.name, "name", 200)?;
    if !crate::core::password::acceptable(&b.password) {
        return Err(weak_password());
    }
    let role: Role =
        b.role.parse().map_err(|_| ApiError::bad_request(Code::InvalidRole, "role is agent, supervisor or admin"))?;
    let services = parse_services(&b.services)?;
    let capacity = parse_capacity(&b.capacity)?;
    let extension = b.extension.map(|x| x.trim().to_owned()).filter(|x| !x.is_empty());
    let password = b.password;
    let hash = state.hashing.run(move || crate::core::password::hash(&password)).await?;
    let now = Utc::now();
    let agent = Agent {
        id: AgentId::new(),
        login,
        name,
        role,
        password_hash: hash,
        active: true,
        extension,
        auto_distribution: b.auto_distribution,
        created_at: now,
        updated_at: now,
    };
    let stored = db(&state, move |c| {
        use schema::Connection;
        c.transaction(|c| {
            let a = agent.insert(c)?;
            store::set_memberships(c, a.id, &services, now)?;
            for (ch, n) in capacity {
                store::set_capacity(c, a.id, ch, n)?;
            }
            Ok(a)
        })
    })
    .await
    .map_err(|e| conflict_as(e, Code::AgentExists, "an agent with that login or extension exists"))?;
    state.engine.upsert_agent(engine_profile(&state, stored.id).await?).await?;
    Ok(HttpResponse::Created().json(agent_dto(&state, stored).await?))
}

/// Every person.
#[utoipa::path(get, path = "/api/v1/admin/agents", tag = "admin", responses((status = 200, body = [AgentDto])))]
#[get("/admin/agents")]
pub async fn list_agents(state: web::Data<AppState>, me: CurrentAgent) -> Result<HttpResponse, ApiError> {
    admin(&me)?;
    let rows = db(&state, store::list_agents).await?;
    let mut out = Vec::with_capacity(rows.len());
    for a in rows {
        out.push(agent_dto(&state, a).await?);
    }
    Ok(HttpResponse::Ok().json(out))
}

/// One person.
#[utoipa::path(get, path = "/api/v1/admin/agents/{id}", tag = "admin",
    responses((status = 200, body = AgentDto), (status = 404, body = ErrorBody)))]
#[get("/admin/agents/{id}")]
pub async fn get_agent(
    state: web::Data<AppState>,
    me: CurrentAgent,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    admin(&me)?;
    let id: AgentId = parse_id(&id, "agent id")?;
    let a = db(&state, move |c| Agent::find(c, id)).await.map_err(|_| ApiError::not_found("agent"))?;
    Ok(HttpResponse::Ok().json(agent_dto(&state, a).await?))
}

/// Changes to a person; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentPatch {
    pub name: Option<String>,
    pub password: Option<String>,
    pub role: Option<String>,
    pub active: Option<bool>,
    pub services: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub capacity: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "crate::core::dto::double_option")]
    pub extension: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::core::dto::double_option")]
    pub auto_distribution: Option<Option<bool>>,
}

/// Changes a person. Deactivating signs them out everywhere and logs them off (R9).
#[utoipa::path(patch, path = "/api/v1/admin/agents/{id}", tag = "admin", request_body = AgentPatch,
    responses((status = 200, body = AgentDto), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[patch("/admin/agents/{id}")]
pub async fn patch_agent(
    state: web::Data<AppState>,
    me: CurrentAgent,
    id: web::Path<String>,
    body: web::Json<AgentPatch>,
) -> Result<HttpResponse, ApiError> {
    admin(&me)?;
    let id: AgentId = parse_id(&id, "agent id")?;
    let p = body.into_inner();
    db(&state, move |c| Agent::find(c, id)).await.map_err(|_| ApiError::not_found("agent"))?;
    let now = Utc::now();
    let mut ch = AgentChangeset { updated_at: Some(now), ..Default::default() };
    if let Some(n) = &p.name {
        ch.name = Some(not_blank(n, "name", 200)?);
    }
    if let Some(r) = &p.role {
        ch.role = Some(
            r.parse().map_err(|_| ApiError::bad_request(Code::InvalidRole, "role is agent, supervisor or admin"))?,
        );
    }
    ch.active = p.active;
    ch.extension = p.extension.map(|x| x.map(|x| x.trim().to_owned()).filter(|x| !x.is_empty()));
    ch.auto_distribution = p.auto_distribution;
    let services = p.services.as_deref().map(parse_services).transpose()?;
    let capacity = parse_capacity(&p.capacity)?;
    if let Some(pw) = p.password {
        if !crate::core::password::acceptable(&pw) {
            return Err(weak_password());
        }
        ch.password_hash = Some(state.hashing.run(move || crate::core::password::hash(&pw)).await?);
    }
    let deactivated = p.active == Some(false);
    let password_changed = ch.password_hash.is_some();
    let stored = db(&state, move |c| {
        use schema::Connection;
        c.transaction(|c| {
            let a = store::update_agent(c, id, &ch)?;
            if let Some(s) = &services {
                store::set_memberships(c, id, s, now)?;
            }
            for (channel, n) in capacity {
                store::set_capacity(c, id, channel, n)?;
            }
            if deactivated || password_changed {
                store::revoke_sessions_of_agent(c, id, now)?;
            }
            Ok(a)
        })
    })
    .await
    .map_err(|e| conflict_as(e, Code::AgentExists, "an agent with that extension exists"))?;
    if deactivated || password_changed {
        // Their open desks and monitors close now, not at their next request.
        state.sessions.revoked_agent(id);
    } else {
        state.sessions.forget();
    }
    if deactivated {
        // Its conversations go back to the queues for others (R9).
        let _ = state.engine.logoff(id).await;
    }
    state.engine.upsert_agent(engine_profile(&state, id).await?).await?;
    Ok(HttpResponse::Ok().json(agent_dto(&state, stored).await?))
}

// ----- reference lists -----

/// A named item (pause reason, classification, service type).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NamedDto {
    pub id: String,
    pub name: String,
    pub service_id: Option<String>,
    pub active: bool,
}

/// A name, optionally for one service.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NameBody {
    pub name: String,
    pub service_id: Option<String>,
}

/// Creates a pause reason.
#[utoipa::path(post, path = "/api/v1/admin/pause-reasons", tag = "admin", request_body = NameBody,
    responses((status = 201, body = NamedDto), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/admin/pause-reasons")]
pub async fn create_pause_reason(
    state: web::Data<AppState>,
    me: CurrentAgent,
    body: web::Json<NameBody>,
) -> Result<HttpResponse, ApiError> {
    admin(&me)?;
    let name = not_blank(&body.name, "name", 100)?;
    let row = PauseReason { id: PauseReasonId::new(), name, active: true, created_at: Utc::now() };
    let r =
        db(&state, move |c| row.insert(c)).await.map_err(|e| conflict_as(e, Code::NameTaken, "that name exists"))?;
    Ok(HttpResponse::Created().json(NamedDto {
        id: r.id.to_string(),
        name: r.name,
        service_id: None,
        active: r.active,
    }))
}

/// Creates a classification.
#[utoipa::path(post, path = "/api/v1/admin/classifications", tag = "admin", request_body = NameBody,
    responses((status = 201, body = NamedDto), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/admin/classifications")]
pub async fn create_classification(
    state: web::Data<AppState>,
    me: CurrentAgent,
    body: web::Json<NameBody>,
) -> Result<HttpResponse, ApiError> {
    admin(&me)?;
    let name = not_blank(&body.name, "name", 100)?;
    let service_id = body.service_id.as_deref().map(|s| parse_id::<ServiceId>(s, "service_id")).transpose()?;
    let row = Classification { id: ClassificationId::new(), name, service_id, active: true, created_at: Utc::now() };
    let r =
        db(&state, move |c| row.insert(c)).await.map_err(|e| conflict_as(e, Code::NameTaken, "that name exists"))?;
    Ok(HttpResponse::Created().json(NamedDto {
        id: r.id.to_string(),
        name: r.name,
        service_id: r.service_id.map(|s| s.to_string()),
        active: r.active,
    }))
}

/// A canned message.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CannedDto {
    #[serde(default)]
    pub id: String,
    pub title: String,
    pub text: String,
    pub service_id: Option<String>,
}

/// A new canned message: global, or of one service.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCannedBody {
    pub title: String,
    pub text: String,
    pub service_id: Option<String>,
}

/// Creates a canned message.
#[utoipa::path(post, path = "/api/v1/admin/canned-messages", tag = "admin", request_body = NewCannedBody,
    responses((status = 201, body = CannedDto), (status = 400, body = ErrorBody)))]
#[post("/admin/canned-messages")]
pub async fn create_canned(
    state: web::Data<AppState>,
    me: CurrentAgent,
    body: web::Json<NewCannedBody>,
) -> Result<HttpResponse, ApiError> {
    admin(&me)?;
    let title = not_blank(&body.title, "title", 200)?;
    let text = not_blank(&body.text, "text", 10_000)?;
    let service_id = body.service_id.as_deref().map(|s| parse_id::<ServiceId>(s, "service_id")).transpose()?;
    let row = CannedMessage { id: CannedMessageId::new(), title, text, service_id, created_at: Utc::now() };
    let r = db(&state, move |c| row.insert(c)).await?;
    Ok(HttpResponse::Created().json(CannedDto {
        id: r.id.to_string(),
        title: r.title,
        text: r.text,
        service_id: r.service_id.map(|s| s.to_string()),
    }))
}

/// A template: `kind` email (subject, body_text, body_html?) or whatsapp (service_id, name,
/// language, category, body).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateBody {
    pub kind: String,
    pub name: String,
    pub service_id: Option<String>,
    pub subject: Option<String>,
    pub body_text: Option<String>,
    pub body_html: Option<String>,
    pub language: Option<String>,
    pub category: Option<String>,
    pub body: Option<String>,
}

/// Creates an email or WhatsApp template.
#[utoipa::path(post, path = "/api/v1/admin/templates", tag = "admin", request_body = TemplateBody,
    responses((status = 201, description = "the template"), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/admin/templates")]
pub async fn create_template(
    state: web::Data<AppState>,
    me: CurrentAgent,
    body: web::Json<TemplateBody>,
) -> Result<HttpResponse, ApiError> {
    admin(&me)?;
    let b = body.into_inner();
    let name = not_blank(&b.name, "name", 200)?;
    let service_id = b.service_id.as_deref().map(|s| parse_id::<ServiceId>(s, "service_id")).transpose()?;
    let now = Utc::now();
    match b.kind.as_str() {
        "email" => {
            let body_text = not_blank(b.body_text.as_deref().unwrap_or(""), "body_text", 100_000)?;
            let row = EmailTemplate {
                id: EmailTemplateId::new(),
                name,
                service_id,
                subject: b.subject.unwrap_or_default(),
                body_text,
                body_html: b.body_html,
                created_at: now,
            };
            let t = db(&state, move |c| row.insert(c)).await?;
            Ok(HttpResponse::Created().json(json!({
                "id": t.id, "kind": "email", "name": t.name, "service_id": t.service_id,
                "subject": t.subject, "body_text": t.body_text, "body_html": t.body_html,
            })))
        }
        "whatsapp" => {
            let service_id = service_id
                .ok_or_else(|| ApiError::bad_request(Code::InvalidField, "a WhatsApp template needs service_id"))?;
            let service = db(&state, move |c| Service::find(c, service_id))
                .await
                .map_err(|_| ApiError::unprocessable(Code::InvalidReference, "no service with that id"))?;
            if service.channel != Channel::Whatsapp {
                return Err(ApiError::unprocessable(
                    Code::InvalidService,
                    "WhatsApp templates belong to a WhatsApp service",
                ));
            }
            let category = match b.category.as_deref() {
                None => TemplateCategory::Utility,
                Some(c) => c.parse().map_err(|_| {
                    ApiError::bad_request(Code::InvalidField, "category is marketing, utility or authentication")
                })?,
            };
            let row = WhatsappTemplate {
                id: WhatsappTemplateId::new(),
                service_id,
                name,
                language: b.language.unwrap_or_else(|| "pt_BR".into()),
                category,
                body: not_blank(b.body.as_deref().unwrap_or(""), "body", 1024)?,
                components: json!([]),
                status: TemplateStatus::Approved,
                created_at: now,
            };
            let t = db(&state, move |c| row.insert(c)).await.map_err(|e| {
                conflict_as(e, Code::TemplateExists, "that template exists for this service and language")
            })?;
            Ok(HttpResponse::Created().json(json!({
                "id": t.id, "kind": "whatsapp", "name": t.name, "service_id": t.service_id,
                "language": t.language, "category": t.category, "body": t.body, "status": t.status,
            })))
        }
        other => Err(ApiError::bad_request(Code::InvalidKind, format!("kind is email or whatsapp, not {other:?}"))),
    }
}

/// One field of a service type's form.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldBody {
    pub key: String,
    pub label: String,
    /// text | textarea | number | date | select | checkbox
    pub field_type: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub options: Vec<String>,
}

/// A service type with its form (K5).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceTypeBody {
    pub name: String,
    pub service_id: Option<String>,
    #[serde(default)]
    pub fields: Vec<FieldBody>,
}

/// Creates a service type and its form.
#[utoipa::path(post, path = "/api/v1/admin/service-types", tag = "admin", request_body = ServiceTypeBody,
    responses((status = 201, description = "the service type with its fields"), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/admin/service-types")]
pub async fn create_service_type(
    state: web::Data<AppState>,
    me: CurrentAgent,
    body: web::Json<ServiceTypeBody>,
) -> Result<HttpResponse, ApiError> {
    admin(&me)?;
    let b = body.into_inner();
    let name = not_blank(&b.name, "name", 200)?;
    let service_id = b.service_id.as_deref().map(|s| parse_id::<ServiceId>(s, "service_id")).transpose()?;
    let st = ServiceType { id: ServiceTypeId::new(), name, service_id, active: true, created_at: Utc::now() };
    let mut fields = Vec::new();
    for (i, f) in b.fields.into_iter().enumerate() {
        let field_type: FieldType = f.field_type.parse().map_err(|_| {
            ApiError::bad_request(Code::InvalidField, "field_type is text, textarea, number, date, select or checkbox")
        })?;
        if field_type == FieldType::Select && f.options.is_empty() {
            return Err(ApiError::bad_request(Code::InvalidField, format!("select field {:?} needs options", f.key)));
        }
        fields.push(FormField {
            id: FormFieldId::new(),
            service_type_id: st.id,
            key: not_blank(&f.key, "key", 100)?,
            label: not_blank(&f.label, "label", 200)?,
            field_type,
            required: f.required,
            options: json!(f.options),
            position: i as i32,
        });
    }
    let (st, fields) = db(&state, move |c| {
        use schema::Connection;
        c.transaction(|c| {
            let st = st.insert(c)?;
            let mut stored = Vec::new();
            for f in fields {
                stored.push(f.insert(c)?);
            }
            Ok((st, stored))
        })
    })
    .await
    .map_err(|e| conflict_as(e, Code::NameTaken, "that name (or a field key) exists"))?;
    Ok(HttpResponse::Created().json(json!({
        "id": st.id, "name": st.name, "service_id": st.service_id, "active": st.active,
        "fields": fields.iter().map(|f| json!({
            "id": f.id, "key": f.key, "label": f.label, "field_type": f.field_type,
            "required": f.required, "options": f.options, "position": f.position,
        })).collect::<Vec<_>>(),
    })))
}
