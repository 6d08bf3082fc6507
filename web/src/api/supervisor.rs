//! Supervisors (S1, S3): the live monitor over REST, and email approval (C6).

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use schema::models::{Agent, Conversation};
use schema::{ConversationId, Role};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::api::agent::{QueueDto, db, parse_id};
use crate::api::auth::CurrentAgent;
use crate::api::dto::ConversationDto;
use crate::api::error::{ApiError, ErrorBody};
use crate::state::AppState;

fn supervisor(me: &CurrentAgent) -> Result<(), ApiError> {
    me.require(&[Role::Supervisor, Role::Admin])
}

/// One agent as the monitor shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MonitorAgentDto {
    pub id: String,
    pub login: String,
    pub name: String,
    /// available | pause_pending | paused | offline
    pub status: String,
    pub pause_reason_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    /// Open conversations per channel (active ones count against capacity).
    #[schema(value_type = Object)]
    pub conversations: Map<String, Value>,
    pub offers: usize,
    pub connections: usize,
}

/// Agents of my services with their state, pause and conversations (S1).
#[utoipa::path(get, path = "/api/v1/monitor/agents", tag = "supervisor",
    responses((status = 200, body = [MonitorAgentDto]), (status = 403, body = ErrorBody)))]
#[get("/monitor/agents")]
pub async fn monitor_agents(state: web::Data<AppState>, me: CurrentAgent) -> Result<HttpResponse, ApiError> {
    supervisor(&me)?;
    let agents: Vec<Agent> = db(&state, schema::store::list_agents).await?;
    let mut out = Vec::new();
    for a in agents.into_iter().filter(|a| a.active) {
        let Some(snap) = state.engine.agent(a.id).await else { continue };
        if me.agent.role != Role::Admin && !snap.profile.services.iter().any(|s| me.services.contains(s)) {
            continue;
        }
        let mut per_channel: Map<String, Value> = Map::new();
        for c in &snap.conversations {
            let entry = per_channel.entry(c.channel.to_string()).or_insert_with(|| json!({"active": 0, "inactive": 0}));
            let key = if c.counts_against_capacity() { "active" } else { "inactive" };
            entry[key] = json!(entry[key].as_i64().unwrap_or(0) + 1);
        }
        out.push(MonitorAgentDto {
            id: a.id.to_string(),
            login: a.login,
            name: a.name,
            status: snap.presence.status().to_string(),
            pause_reason_id: snap.presence.reason().map(|r| r.to_string()),
            since: Some(snap.presence_since),
            conversations: per_channel,
            offers: snap.offers.len(),
            connections: snap.connections,
        });
    }
    Ok(HttpResponse::Ok().json(out))
}

/// Queues of my services (S1).
#[utoipa::path(get, path = "/api/v1/monitor/queues", tag = "supervisor",
    responses((status = 200, body = [QueueDto]), (status = 403, body = ErrorBody)))]
#[get("/monitor/queues")]
pub async fn monitor_queues(state: web::Data<AppState>, me: CurrentAgent) -> Result<HttpResponse, ApiError> {
    supervisor(&me)?;
    let out: Vec<QueueDto> =
        state.engine.queues().await.into_iter().filter(|q| me.sees_service(q.service_id)).map(QueueDto::from).collect();
    Ok(HttpResponse::Ok().json(out))
}

async fn held(state: &AppState, me: &CurrentAgent, raw: &str) -> Result<ConversationId, ApiError> {
    supervisor(me)?;
    let id: ConversationId = parse_id(raw, "conversation id")?;
    let c = db(state, move |c| Conversation::find(c, id)).await.map_err(|_| ApiError::not_found("conversation"))?;
    if !me.sees_service(c.service_id) {
        return Err(ApiError::forbidden("this conversation belongs to a service you are not in"));
    }
    if c.state.is_final() {
        return Err(ApiError::conflict("conversation_ended", format!("the conversation is already {}", c.state)));
    }
    Ok(id)
}

/// Lets a held email into its queue (C6).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/approve", tag = "supervisor",
    responses((status = 200, body = ConversationDto), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/conversations/{id}/approve")]
pub async fn approve(
    state: web::Data<AppState>,
    me: CurrentAgent,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = held(&state, &me, &id).await?;
    state.engine.approve(engine::By::Supervisor(me.agent.id), id).await?;
    let c = db(&state, move |c| Conversation::find(c, id)).await?;
    Ok(HttpResponse::Ok().json(ConversationDto::from_row(&c)))
}

/// Refuses a held email (C6).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/reject", tag = "supervisor",
    responses((status = 200, body = ConversationDto), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/conversations/{id}/reject")]
pub async fn reject(
    state: web::Data<AppState>,
    me: CurrentAgent,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = held(&state, &me, &id).await?;
    state.engine.reject(engine::By::Supervisor(me.agent.id), id).await?;
    let c = db(&state, move |c| Conversation::find(c, id)).await?;
    Ok(HttpResponse::Ok().json(ConversationDto::from_row(&c)))
}
