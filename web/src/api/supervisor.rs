//! Supervisors (S1, S3): the live monitor over REST, and email approval (C6).

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use engine::distributor::AgentSnapshot;
use schema::models::{Agent, Conversation};
use schema::{ConversationId, Role};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::api::agent::QueueDto;
use crate::core::db::{db, parse_id};
use crate::core::dto::ConversationDto;
use crate::core::error::{ApiError, Code, ErrorBody};
use crate::core::session::CurrentAgent;
use crate::core::state::AppState;

/// 403 unless a supervisor or an admin.
pub fn supervisor(me: &CurrentAgent) -> Result<(), ApiError> {
    me.require(&[Role::Supervisor, Role::Admin])
}

/// One agent as the monitor shows it (REST and `/ws/monitor`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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

impl MonitorAgentDto {
    /// The row of an agent: its stored identity and the engine's view of it. `conversations`
    /// gives each open conversation it holds as (channel, counts against capacity).
    pub fn new(
        agent: &Agent,
        presence: engine::Presence,
        since: DateTime<Utc>,
        conversations: impl IntoIterator<Item = (schema::Channel, bool)>,
        offers: usize,
        connections: usize,
    ) -> Self {
        let mut per_channel: Map<String, Value> = Map::new();
        for (channel, active) in conversations {
            let entry = per_channel.entry(channel.to_string()).or_insert_with(|| json!({"active": 0, "inactive": 0}));
            let key = if active { "active" } else { "inactive" };
            entry[key] = json!(entry[key].as_i64().unwrap_or(0) + 1);
        }
        Self {
            id: agent.id.to_string(),
            login: agent.login.clone(),
            name: agent.name.clone(),
            status: presence.status().to_string(),
            pause_reason_id: presence.reason().map(|r| r.to_string()),
            since: Some(since),
            conversations: per_channel,
            offers,
            connections,
        }
    }

    /// The row of an agent from the engine's snapshot of it.
    pub fn from_engine(agent: &Agent, snap: &AgentSnapshot) -> Self {
        let conversations = snap.conversations.iter().map(|c| (c.channel, c.counts_against_capacity()));
        Self::new(agent, snap.presence, snap.presence_since, conversations, snap.offers.len(), snap.connections)
    }
}

/// Whether a supervisor sees an agent: an admin sees everyone, a supervisor the agents of its
/// services (S1).
pub fn sees_agent(me: &CurrentAgent, services: &[schema::ServiceId]) -> bool {
    me.agent.role == Role::Admin || services.iter().any(|s| me.services.contains(s))
}

/// The active agents a supervisor sees, with the engine's view of each (S1).
pub async fn monitored_agents(state: &AppState, me: &CurrentAgent) -> Result<Vec<(Agent, AgentSnapshot)>, ApiError> {
    let agents: Vec<Agent> = db(state, schema::store::list_agents).await?;
    let mut out = Vec::new();
    for a in agents.into_iter().filter(|a| a.active) {
        let Some(snap) = state.engine.agent(a.id).await else { continue };
        if sees_agent(me, &snap.profile.services) {
            out.push((a, snap));
        }
    }
    Ok(out)
}

/// The queues a supervisor sees (S1).
pub async fn monitored_queues(state: &AppState, me: &CurrentAgent) -> Vec<QueueDto> {
    state.engine.queues().await.into_iter().filter(|q| me.sees_service(q.service_id)).map(QueueDto::from).collect()
}

/// Agents of my services with their state, pause and conversations (S1).
#[utoipa::path(get, path = "/api/v1/monitor/agents", tag = "supervisor",
    responses((status = 200, body = [MonitorAgentDto]), (status = 403, body = ErrorBody)))]
#[get("/monitor/agents")]
pub async fn monitor_agents(state: web::Data<AppState>, me: CurrentAgent) -> Result<HttpResponse, ApiError> {
    supervisor(&me)?;
    let out: Vec<MonitorAgentDto> =
        monitored_agents(&state, &me).await?.iter().map(|(a, snap)| MonitorAgentDto::from_engine(a, snap)).collect();
    Ok(HttpResponse::Ok().json(out))
}

/// Queues of my services (S1).
#[utoipa::path(get, path = "/api/v1/monitor/queues", tag = "supervisor",
    responses((status = 200, body = [QueueDto]), (status = 403, body = ErrorBody)))]
#[get("/monitor/queues")]
pub async fn monitor_queues(state: web::Data<AppState>, me: CurrentAgent) -> Result<HttpResponse, ApiError> {
    supervisor(&me)?;
    Ok(HttpResponse::Ok().json(monitored_queues(&state, &me).await))
}

async fn held(state: &AppState, me: &CurrentAgent, raw: &str) -> Result<ConversationId, ApiError> {
    supervisor(me)?;
    let id: ConversationId = parse_id(raw, "conversation id")?;
    let c = db(state, move |c| Conversation::find(c, id)).await.map_err(|_| ApiError::not_found("conversation"))?;
    if !me.sees_service(c.service_id) {
        // As for a missing one: the answer does not tell which ids exist.
        return Err(ApiError::not_found("conversation"));
    }
    if c.state.is_final() {
        return Err(ApiError::conflict(Code::ConversationEnded, format!("the conversation is already {}", c.state)));
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
