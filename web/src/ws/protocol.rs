//! The desk's WebSocket protocol (docs/protocol.md): serde-tagged JSON, one object per text frame.
//! Shared by the browser desk, the load harness and the tests.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::api::agent::{PresenceDto, QueueDto};
use crate::core::dto::ConversationDto;
use crate::core::error::Code;
use crate::core::session::AgentInfo;

/// What a desk sends.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// Ask for the events missed while disconnected: per conversation, the last seq seen.
    Resume { conversations: std::collections::HashMap<String, i64> },
    /// The desk has processed everything up to now (resets the slow-client bound).
    Ack,
    /// Accept an offer (R7).
    Accept {
        conversation_id: String,
        #[serde(default)]
        r#ref: Option<String>,
    },
    /// Decline an offer (R7).
    Decline {
        conversation_id: String,
        #[serde(default)]
        r#ref: Option<String>,
    },
    /// Application-level ping; answered with `pong`.
    Ping,
}

/// What the server sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// First message after connecting: the whole state the desk shows.
    Snapshot(Box<Snapshot>),
    /// A conversation changed.
    Event(EventDto),
    /// The events a resuming desk missed, in order.
    Gap { conversation_id: String, events: Vec<EventDto> },
    /// A queue's counts changed.
    Queue(QueueDto),
    /// My presence changed (R8: pause_pending becomes paused when the last conversation ends).
    Presence(PresenceDto),
    /// A message was stored in one of my conversations, or its delivery status changed (D8).
    Message { message: serde_json::Value },
    /// An alert about a conversation (R10).
    Alert { conversation_id: String, kind: String, at: DateTime<Utc> },
    /// An action succeeded.
    Ack { r#ref: Option<String> },
    /// An action or a message was refused.
    Error { r#ref: Option<String>, error: Code, message: String },
    /// Answer to `ping`.
    Pong,
}

/// The desk's starting state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub agent: AgentInfoOwned,
    pub presence: Option<PresenceDto>,
    /// My open conversations (active and inactive), each with its `last_seq`.
    pub conversations: Vec<serde_json::Value>,
    /// Conversations offered to me, with the offer's deadline.
    pub offers: Vec<OfferDto>,
    pub queues: Vec<QueueDto>,
}

/// `AgentInfo` in a form that deserialises too (tests and the load harness read snapshots).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentInfoOwned {
    pub id: String,
    pub login: String,
    pub name: String,
    pub role: String,
}

impl From<&AgentInfo> for AgentInfoOwned {
    fn from(a: &AgentInfo) -> Self {
        Self { id: a.id.to_string(), login: a.login.clone(), name: a.name.clone(), role: a.role.to_string() }
    }
}

/// A pending offer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OfferDto {
    pub conversation_id: String,
    pub channel: String,
    pub service_id: String,
    pub expires_at: DateTime<Utc>,
}

/// One conversation event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventDto {
    pub conversation_id: String,
    pub seq: i64,
    pub kind: String,
    pub at: DateTime<Utc>,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
    /// The agent the event is about (assigned to, transferred to…).
    pub agent_id: Option<String>,
    pub actor: String,
    /// The person who acted (an agent or a supervisor), when a person did.
    #[serde(default)]
    pub actor_agent_id: Option<String>,
    pub reason: Option<String>,
    /// The conversation after the event (live events only; a gap carries the events alone).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub conversation: Option<serde_json::Value>,
}

impl EventDto {
    /// From a stored event (resume).
    pub fn from_row(e: &schema::models::ConversationEvent) -> Self {
        Self {
            conversation_id: e.conversation_id.to_string(),
            seq: e.seq,
            kind: e.kind.clone(),
            at: e.at,
            from_state: e.from_state.map(|s| s.to_string()),
            to_state: e.to_state.map(|s| s.to_string()),
            agent_id: e.agent_id.map(|a| a.to_string()),
            actor: e.actor.to_string(),
            actor_agent_id: e.actor_agent_id.map(|a| a.to_string()),
            reason: e.reason.clone(),
            conversation: None,
        }
    }

    /// From a live engine event.
    pub fn from_engine(seq: i64, e: &engine::book::ConversationEvent) -> Self {
        let f = &e.facts;
        Self {
            conversation_id: f.id.to_string(),
            seq,
            kind: e.kind.as_str().to_owned(),
            at: e.at,
            from_state: e.from_state.map(|s| s.to_string()),
            to_state: Some(f.state.to_string()),
            agent_id: e.agent.map(|a| a.to_string()),
            actor: e.actor.to_string(),
            actor_agent_id: e.actor_agent.map(|a| a.to_string()),
            reason: e.reason.clone(),
            conversation: Some(facts_json(f)),
        }
    }
}

/// The routing facts of a conversation as the desk reads them.
pub fn facts_json(f: &engine::ConversationFacts) -> serde_json::Value {
    serde_json::json!({
        "id": f.id,
        "service_id": f.service,
        "channel": f.channel,
        "state": f.state,
        "sub_state": f.sub_state,
        "priority": f.priority,
        "agent_id": f.owner,
        "first_agent_id": f.first_agent,
        "arrived_at": f.arrived_at,
        "enqueued_at": f.enqueued_at,
        "assigned_at": f.assigned_at,
        "offer": f.offer.map(|(a, at)| serde_json::json!({"agent_id": a, "expires_at": at})),
        "classification_id": f.classification,
        "due_at": f.due_at,
        "ended_at": f.ended_at,
    })
}

/// The conversation DTO of the REST API, as a JSON value for the snapshot.
pub fn conversation_json(c: &ConversationDto) -> serde_json::Value {
    serde_json::to_value(c).unwrap_or_default()
}
