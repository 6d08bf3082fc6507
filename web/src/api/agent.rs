//! What an agent does from the desk or an integration: presence, queues, pulls, conversation
//! actions (SPEC.md A "Agent"). Authorisation (N3): an agent sees conversations of its services
//! and acts only on its own (the engine answers `not_owner`); supervisors act on conversations of
//! their services, admins on all.

use actix_web::{HttpResponse, get, post, put, web};
use chrono::{DateTime, Utc};
use engine::{Presence, PresenceRequest, TransferTarget};
use schema::models::{Conversation, PauseReason};
use schema::store::{self, ConversationFilter};
use schema::{AgentId, Channel, ClassificationId, ConversationId, ConversationState, PauseReasonId, Role, ServiceId};
use serde::{Deserialize, Serialize};

use crate::core::access::{actionable_conversation, by, visible_conversation};
use crate::core::db::{db, parse_id};
use crate::core::dto::ConversationDto;
use crate::core::error::{ApiError, Code, ErrorBody};
use crate::core::session::CurrentAgent;
use crate::core::state::AppState;
use crate::ws::protocol::EventDto;

fn parse_channel(s: &str) -> Result<Channel, ApiError> {
    s.parse().map_err(|_| ApiError::bad_request(Code::InvalidChannel, format!("unknown channel {s:?}")))
}

// ----- presence -----

/// A presence change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PresenceBody {
    /// available | paused | offline
    pub status: String,
    pub pause_reason_id: Option<String>,
}

/// The agent's presence after a change.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PresenceDto {
    /// available | pause_pending | paused | offline
    pub status: String,
    pub pause_reason_id: Option<String>,
    pub since: DateTime<Utc>,
}

impl PresenceDto {
    pub fn new(p: Presence, since: DateTime<Utc>) -> Self {
        Self { status: p.status().to_string(), pause_reason_id: p.reason().map(|r| r.to_string()), since }
    }
}

/// Sets my presence (R8, R9): a pause with conversations open becomes `pause_pending`.
#[utoipa::path(put, path = "/api/v1/me/presence", tag = "agent", request_body = PresenceBody,
    responses((status = 200, body = PresenceDto), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 422, description = "unknown or inactive pause reason", body = ErrorBody)))]
#[put("/me/presence")]
pub async fn put_presence(
    state: web::Data<AppState>,
    me: CurrentAgent,
    body: web::Json<PresenceBody>,
) -> Result<HttpResponse, ApiError> {
    let request = match body.status.as_str() {
        "available" => PresenceRequest::Available,
        "offline" => PresenceRequest::Offline,
        "paused" => {
            let raw = body
                .pause_reason_id
                .as_deref()
                .ok_or_else(|| ApiError::bad_request(Code::PauseReasonRequired, "a pause needs pause_reason_id"))?;
            let reason: PauseReasonId = parse_id(raw, "pause_reason_id")?;
            let found = db(&state, move |c| PauseReason::find(c, reason)).await;
            match found {
                Ok(r) if r.active => PresenceRequest::Paused(reason),
                Ok(_) | Err(_) => {
                    return Err(ApiError::unprocessable(
                        Code::InvalidPauseReason,
                        "no active pause reason with that id",
                    ));
                }
            }
        }
        other => {
            return Err(ApiError::bad_request(
                Code::InvalidStatus,
                format!("status must be available, paused or offline, not {other:?}"),
            ));
        }
    };
    let presence = state.engine.set_presence(me.agent.id, request).await?;
    let since = state.engine.agent(me.agent.id).await.map_or_else(Utc::now, |a| a.presence_since);
    Ok(HttpResponse::Ok().json(PresenceDto::new(presence, since)))
}

// ----- queues -----

/// One queue's counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueueDto {
    pub channel: String,
    pub service_id: String,
    pub waiting: usize,
    pub inactive: usize,
    pub oldest_wait_s: i64,
}

impl From<engine::feed::QueueCounts> for QueueDto {
    fn from(q: engine::feed::QueueCounts) -> Self {
        Self {
            channel: q.channel.to_string(),
            service_id: q.service_id.to_string(),
            waiting: q.waiting,
            inactive: q.inactive,
            oldest_wait_s: q.oldest_wait_s,
        }
    }
}

/// The queues of my services with their live counts (D3).
#[utoipa::path(get, path = "/api/v1/queues", tag = "agent",
    responses((status = 200, body = [QueueDto]), (status = 401, body = ErrorBody)))]
#[get("/queues")]
pub async fn get_queues(state: web::Data<AppState>, me: CurrentAgent) -> Result<HttpResponse, ApiError> {
    let mut queues: Vec<QueueDto> =
        state.engine.queues().await.into_iter().filter(|q| me.sees_service(q.service_id)).map(QueueDto::from).collect();
    queues.sort_by(|a, b| (&a.channel, &a.service_id).cmp(&(&b.channel, &b.service_id)));
    Ok(HttpResponse::Ok().json(queues))
}

/// Filters of a queue list (D4).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct QueueItemsQuery {
    /// Rows to show (default 50, at most 500).
    pub limit: Option<i64>,
    /// oldest (default) | newest
    pub order: Option<String>,
    pub service_id: Option<String>,
    pub subject: Option<String>,
    pub sender: Option<String>,
    pub content: Option<String>,
    pub phone: Option<String>,
    pub name: Option<String>,
    /// Queued from (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Queued until (RFC 3339).
    pub to: Option<DateTime<Utc>>,
}

/// One waiting customer in a queue list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueueItemDto {
    /// Place in the queue (1 = next), across the listed services.
    pub position: usize,
    #[serde(flatten)]
    pub conversation: ConversationDto,
    pub wait_s: i64,
}

/// The waiting customers of a channel in my services, with the filters of D4.
#[utoipa::path(get, path = "/api/v1/queues/{channel}/items", tag = "agent", params(QueueItemsQuery),
    responses((status = 200, body = [QueueItemDto]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[get("/queues/{channel}/items")]
pub async fn get_queue_items(
    state: web::Data<AppState>,
    me: CurrentAgent,
    channel: web::Path<String>,
    query: web::Query<QueueItemsQuery>,
) -> Result<HttpResponse, ApiError> {
    let channel = parse_channel(&channel)?;
    let q = query.into_inner();
    let newest_first = match q.order.as_deref() {
        None | Some("oldest") => false,
        Some("newest") => true,
        Some(other) => {
            return Err(ApiError::bad_request(Code::InvalidOrder, format!("order is oldest or newest, not {other:?}")));
        }
    };
    let service: Option<ServiceId> = q.service_id.as_deref().map(|s| parse_id(s, "service_id")).transpose()?;
    if let Some(s) = service
        && !me.sees_service(s)
    {
        return Err(ApiError::forbidden("you are not in that service"));
    }
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(Code::InvalidLimit, "limit is between 1 and 500"));
    }
    let filter = ConversationFilter {
        services: (me.agent.role != Role::Admin).then(|| me.services.clone()),
        channel: Some(channel),
        states: vec![ConversationState::Queued, ConversationState::InactiveInQueue],
        service,
        address: q.sender.or(q.phone),
        subject: q.subject,
        name: q.name,
        content: q.content,
        arrived_from: q.from,
        arrived_to: q.to,
        newest_first,
        limit,
        ..Default::default()
    };
    let rows = db(&state, move |c| store::find_conversations(c, &filter)).await?;
    // Positions are places in the whole queue (R1 order, across my services of the channel), not
    // among the rows returned.
    let mut order: Vec<(std::cmp::Reverse<i32>, DateTime<Utc>, ConversationId)> = Vec::new();
    for q in state.engine.queues().await.into_iter().filter(|q| q.channel == channel && me.sees_service(q.service_id)) {
        order.extend(
            state
                .engine
                .waiting(q.service_id)
                .await
                .iter()
                .map(|c| (std::cmp::Reverse(c.priority), c.arrived_at, c.id)),
        );
    }
    order.sort();
    let places: std::collections::HashMap<ConversationId, usize> =
        order.iter().enumerate().map(|(i, (_, _, id))| (*id, i + 1)).collect();
    let mut ordered: Vec<&Conversation> = rows.iter().collect();
    ordered.sort_by(|a, b| {
        (std::cmp::Reverse(a.priority), a.arrived_at, a.id).cmp(&(std::cmp::Reverse(b.priority), b.arrived_at, b.id))
    });
    let now = Utc::now();
    let items: Vec<QueueItemDto> = rows
        .iter()
        .map(|c| QueueItemDto {
            position: places
                .get(&c.id)
                .copied()
                .unwrap_or_else(|| order.len() + ordered.iter().position(|o| o.id == c.id).unwrap_or(0) + 1),
            conversation: ConversationDto::from_row(c),
            wait_s: (now - c.enqueued_at.unwrap_or(c.arrived_at)).num_seconds().max(0),
        })
        .collect();
    Ok(HttpResponse::Ok().json(items))
}

/// Takes the next waiting conversation of a channel (R5): 200 with it, 204 when nothing waits.
#[utoipa::path(post, path = "/api/v1/queues/{channel}/pull", tag = "agent",
    responses((status = 200, body = ConversationDto), (status = 204, description = "nothing waiting"),
              (status = 409, description = "at_capacity | not_available", body = ErrorBody)))]
#[post("/queues/{channel}/pull")]
pub async fn pull_next(
    state: web::Data<AppState>,
    me: CurrentAgent,
    channel: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let channel = parse_channel(&channel)?;
    match state.engine.pull_next(me.agent.id, channel).await? {
        None => Ok(HttpResponse::NoContent().finish()),
        Some(id) => {
            let c = db(&state, move |c| Conversation::find(c, id)).await?;
            Ok(HttpResponse::Ok().json(ConversationDto::from_row(&c)))
        }
    }
}

/// Takes one chosen waiting conversation (R5), e.g. an email after its preview.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/pull", tag = "agent",
    responses((status = 200, body = ConversationDto), (status = 409, description = "already_taken", body = ErrorBody)))]
#[post("/conversations/{id}/pull")]
pub async fn pull_chosen(
    state: web::Data<AppState>,
    me: CurrentAgent,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: ConversationId = parse_id(&id, "conversation id")?;
    actionable_conversation(&state, &me, id).await?;
    state.engine.pull_chosen(me.agent.id, id).await?;
    let c = db(&state, move |c| Conversation::find(c, id)).await?;
    Ok(HttpResponse::Ok().json(ConversationDto::from_row(&c)))
}

// ----- conversations -----

/// Filters of the conversation list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ConversationsQuery {
    /// A state (e.g. in_service) or `open` for every open one.
    pub state: Option<String>,
    /// Only those I have now.
    pub mine: Option<bool>,
    pub limit: Option<i64>,
}

/// Conversations I may see.
#[utoipa::path(get, path = "/api/v1/conversations", tag = "agent", params(ConversationsQuery),
    responses((status = 200, body = [ConversationDto]), (status = 400, body = ErrorBody)))]
#[get("/conversations")]
pub async fn list_conversations(
    state: web::Data<AppState>,
    me: CurrentAgent,
    query: web::Query<ConversationsQuery>,
) -> Result<HttpResponse, ApiError> {
    let states = match query.state.as_deref() {
        None => Vec::new(),
        Some("open") => ConversationState::OPEN.to_vec(),
        Some(s) => {
            vec![s.parse::<ConversationState>().map_err(|e| ApiError::bad_request(Code::InvalidState, e.to_string()))?]
        }
    };
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(Code::InvalidLimit, "limit is between 1 and 1000"));
    }
    let filter = ConversationFilter {
        services: (me.agent.role != Role::Admin).then(|| me.services.clone()),
        states,
        agent: query.mine.unwrap_or(false).then_some(me.agent.id),
        newest_first: true,
        limit,
        ..Default::default()
    };
    let rows = db(&state, move |c| store::find_conversations(c, &filter)).await?;
    Ok(HttpResponse::Ok().json(rows.iter().map(ConversationDto::from_row).collect::<Vec<_>>()))
}

/// The events that move a conversation between people and queues: the desk's account of who
/// handled it before (D6).
const HANDOVERS: &[&str] =
    &["assigned", "offer_accepted", "transferred", "transferred_to_service", "transferred_out", "returned", "requeued"];

/// A conversation with its messages, who handled it before (`handovers`) and the names of the
/// people in it (`agents`: id → name).
#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "agent",
    responses((status = 200, body = ConversationDto), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[get("/conversations/{id}")]
pub async fn get_conversation(
    state: web::Data<AppState>,
    me: CurrentAgent,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: ConversationId = parse_id(&id, "conversation id")?;
    let c = visible_conversation(&state, &me, id).await?;
    let (first, concluded) = (c.first_agent_id, c.concluded_by_id);
    let (messages, files, handovers, names) = db(&state, move |conn| {
        let messages = store::messages_of(conn, id)?;
        let files = store::attachments_of_conversation(conn, id)?;
        let handovers: Vec<_> =
            store::events_after(conn, id, 0)?.into_iter().filter(|e| HANDOVERS.contains(&e.kind.as_str())).collect();
        let mut people: Vec<AgentId> = messages.iter().filter_map(|m| m.sender_agent_id).collect();
        people.extend(handovers.iter().flat_map(|e| [e.agent_id, e.actor_agent_id]).flatten());
        people.extend([first, concluded].into_iter().flatten());
        people.sort_unstable();
        people.dedup();
        let names = store::agent_names(conn, &people)?;
        Ok((messages, files, handovers, names))
    })
    .await?;
    let mut json = serde_json::to_value(ConversationDto::from_row(&c)).unwrap_or_default();
    json["messages"] = messages.iter().map(|m| crate::core::dto::message_value(m, &files)).collect();
    json["handovers"] =
        serde_json::to_value(handovers.iter().map(EventDto::from_row).collect::<Vec<_>>()).unwrap_or_default();
    json["agents"] = names.into_iter().map(|(id, name)| (id.to_string(), serde_json::Value::String(name))).collect();
    Ok(HttpResponse::Ok().json(json))
}

/// Where to transfer: exactly one of the three.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    pub agent_id: Option<String>,
    pub service_id: Option<String>,
    pub extension: Option<String>,
}

async fn after_action(state: &AppState, id: ConversationId) -> Result<HttpResponse, ApiError> {
    let c = db(state, move |c| Conversation::find(c, id)).await?;
    Ok(HttpResponse::Ok().json(ConversationDto::from_row(&c)))
}

/// Transfers to an agent, a service's queue, or (calls) an external extension (R11).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/transfer", tag = "agent", request_body = TransferBody,
    responses((status = 200, body = ConversationDto), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[post("/conversations/{id}/transfer")]
pub async fn transfer(
    state: web::Data<AppState>,
    me: CurrentAgent,
    id: web::Path<String>,
    body: web::Json<TransferBody>,
) -> Result<HttpResponse, ApiError> {
    let id: ConversationId = parse_id(&id, "conversation id")?;
    let target = match (&body.agent_id, &body.service_id, &body.extension) {
        (Some(a), None, None) => TransferTarget::Agent(parse_id::<AgentId>(a, "agent_id")?),
        (None, Some(s), None) => TransferTarget::Service(parse_id::<ServiceId>(s, "service_id")?),
        (None, None, Some(x)) if !x.trim().is_empty() && x.len() <= 64 => {
            TransferTarget::Extension(x.trim().to_owned())
        }
        _ => {
            return Err(ApiError::bad_request(
                Code::InvalidTransfer,
                "give exactly one of agent_id, service_id or extension",
            ));
        }
    };
    actionable_conversation(&state, &me, id).await?;
    state.engine.transfer(by(&me), id, target).await?;
    after_action(&state, id).await
}

/// Puts the conversation back in its queue, keeping its age (R12).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/return", tag = "agent",
    responses((status = 200, body = ConversationDto), (status = 403, body = ErrorBody)))]
#[post("/conversations/{id}/return")]
pub async fn return_to_queue(
    state: web::Data<AppState>,
    me: CurrentAgent,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: ConversationId = parse_id(&id, "conversation id")?;
    actionable_conversation(&state, &me, id).await?;
    state.engine.return_to_queue(by(&me), id).await?;
    after_action(&state, id).await
}

/// An optional classification.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConcludeBody {
    pub classification_id: Option<String>,
}

/// A classification usable in the service: active, and global or of that service.
async fn checked_classification(
    state: &AppState,
    raw: Option<&str>,
    service: ServiceId,
) -> Result<Option<ClassificationId>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    let id: ClassificationId = parse_id(raw, "classification_id")?;
    match db(state, move |c| schema::models::Classification::find(c, id)).await {
        Ok(found) if found.active && found.service_id.is_none_or(|s| s == service) => Ok(Some(id)),
        _ => Err(ApiError::unprocessable(
            Code::InvalidClassification,
            "no active classification with that id in this service",
        )),
    }
}

/// An optional JSON body: empty is the default; anything else must be valid (400 otherwise).
fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        let code =
            if e.classify() == serde_json::error::Category::Data { Code::InvalidField } else { Code::InvalidJson };
        ApiError::bad_request(code, e.to_string())
    })
}

/// Concludes the conversation (R12).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/conclude", tag = "agent", request_body(content = ConcludeBody, content_type = "application/json"),
    responses((status = 200, body = ConversationDto), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[post("/conversations/{id}/conclude")]
pub async fn conclude(
    state: web::Data<AppState>,
    me: CurrentAgent,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let id: ConversationId = parse_id(&id, "conversation id")?;
    if body.len() > crate::api::JSON_LIMIT {
        return Err(ApiError::new(
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            Code::PayloadTooLarge,
            "the body is too large",
        ));
    }
    let body: ConcludeBody = optional_json(&body)?;
    let c = actionable_conversation(&state, &me, id).await?;
    let classification = checked_classification(&state, body.classification_id.as_deref(), c.service_id).await?;
    state.engine.conclude(by(&me), id, classification).await?;
    after_action(&state, id).await
}

/// Cancels the conversation where the service allows it (R12).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/cancel", tag = "agent",
    responses((status = 200, body = ConversationDto), (status = 409, description = "cancel_not_allowed", body = ErrorBody)))]
#[post("/conversations/{id}/cancel")]
pub async fn cancel(
    state: web::Data<AppState>,
    me: CurrentAgent,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: ConversationId = parse_id(&id, "conversation id")?;
    actionable_conversation(&state, &me, id).await?;
    state.engine.cancel(by(&me), id).await?;
    after_action(&state, id).await
}

/// Sets or clears the classification (R12).
#[utoipa::path(put, path = "/api/v1/conversations/{id}/classification", tag = "agent", request_body = ClassificationBody,
    responses((status = 200, body = ConversationDto), (status = 422, body = ErrorBody)))]
#[put("/conversations/{id}/classification")]
pub async fn put_classification(
    state: web::Data<AppState>,
    me: CurrentAgent,
    id: web::Path<String>,
    body: web::Json<ClassificationBody>,
) -> Result<HttpResponse, ApiError> {
    let id: ConversationId = parse_id(&id, "conversation id")?;
    let c = actionable_conversation(&state, &me, id).await?;
    let classification = checked_classification(&state, body.classification_id.as_deref(), c.service_id).await?;
    state.engine.classify(by(&me), id, classification).await?;
    after_action(&state, id).await
}

/// A due date, or null to clear it; the field itself is required (`{}` changes nothing: 400).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DueDateBody {
    #[serde(deserialize_with = "crate::core::dto::present")]
    pub due_at: Option<DateTime<Utc>>,
}

/// A classification, or null to clear it; the field itself is required.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassificationBody {
    #[serde(deserialize_with = "crate::core::dto::present")]
    pub classification_id: Option<String>,
}

/// Sets or clears the due date (R12).
#[utoipa::path(put, path = "/api/v1/conversations/{id}/due-date", tag = "agent", request_body = DueDateBody,
    responses((status = 200, body = ConversationDto), (status = 400, body = ErrorBody)))]
#[put("/conversations/{id}/due-date")]
pub async fn put_due_date(
    state: web::Data<AppState>,
    me: CurrentAgent,
    id: web::Path<String>,
    body: web::Json<DueDateBody>,
) -> Result<HttpResponse, ApiError> {
    let id: ConversationId = parse_id(&id, "conversation id")?;
    actionable_conversation(&state, &me, id).await?;
    state.engine.set_due_date(by(&me), id, body.due_at).await?;
    after_action(&state, id).await
}

/// "My conversations today" (D2).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SummaryDto {
    /// The day, in the contact center's time zone.
    pub date: String,
    pub time_zone: String,
    /// Conversations I was first to take today.
    #[schema(value_type = Object)]
    pub started: store::DayFigures,
    /// Conversations I concluded (or cancelled) today; a transferred one counts for whoever ends it.
    #[schema(value_type = Object)]
    pub concluded: store::DayFigures,
}

/// Today's figures: started, concluded, average handling time, by channel, by hour (D2).
#[utoipa::path(get, path = "/api/v1/me/summary", tag = "agent",
    responses((status = 200, body = SummaryDto), (status = 401, body = ErrorBody)))]
#[get("/me/summary")]
pub async fn summary(state: web::Data<AppState>, me: CurrentAgent) -> Result<HttpResponse, ApiError> {
    use chrono::TimeZone;
    let tz = state.time_zone;
    let today = Utc::now().with_timezone(&tz).date_naive();
    let start = |d: chrono::NaiveDate| {
        tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default()).earliest().map(|t| t.with_timezone(&Utc))
    };
    let (Some(from), Some(to)) = (start(today), start(today.succ_opt().unwrap_or(today))) else {
        return Err(ApiError::internal(&"no midnight in the time zone"));
    };
    let agent = me.agent.id;
    let tz_name = tz.name().to_owned();
    let name = tz_name.clone();
    let (started, concluded) = db(&state, move |c| store::agent_day(c, agent, from, to, &name)).await?;
    Ok(HttpResponse::Ok().json(SummaryDto { date: today.to_string(), time_zone: tz_name, started, concluded }))
}
