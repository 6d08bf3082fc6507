use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::Value;

use crate::ids::{AgentId, PauseReasonId, ServiceId, SessionId};
use crate::schema::{agent_capacities, agents, memberships, pause_reasons, presence_history, services, sessions};
use crate::types::{Channel, PresenceStatus, Role};

/// A person who signs in: agent, supervisor or admin.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Identifiable)]
#[diesel(table_name = agents, check_for_backend(diesel::pg::Pg))]
pub struct Agent {
    pub id: AgentId,
    pub login: String,
    pub name: String,
    pub role: Role,
    /// argon2id PHC string.
    pub password_hash: String,
    pub active: bool,
    pub extension: Option<String>,
    pub auto_distribution: Option<bool>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Changes to an agent; `None` leaves a column as it is.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = agents)]
pub struct AgentChangeset {
    pub name: Option<String>,
    pub role: Option<Role>,
    pub password_hash: Option<String>,
    pub active: Option<bool>,
    pub extension: Option<Option<String>>,
    pub auto_distribution: Option<Option<bool>>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// A revocable sign-in session; only the token's SHA-256 is stored.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Identifiable)]
#[diesel(table_name = sessions, check_for_backend(diesel::pg::Pg))]
pub struct Session {
    pub id: SessionId,
    pub agent_id: AgentId,
    pub token_hash: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub user_agent: Option<String>,
    pub remote_addr: Option<String>,
}

/// An entry point on one channel with its own routing settings (R6-R14, R17, R18, C6).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Identifiable)]
#[diesel(table_name = services, check_for_backend(diesel::pg::Pg))]
pub struct Service {
    pub id: ServiceId,
    pub name: String,
    pub channel: Channel,
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
    pub automation_url: Option<String>,
    pub automation_timeout_ms: i32,
    pub portfolio_wait_s: Option<i32>,
    /// Channel credentials; secrets inside are masked by the API.
    pub provider: Value,
    pub provider_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Service {
    /// A service with the defaults of SPEC.md (30 min inactivity, 48 h abandonment, 60 s grace).
    pub fn with_defaults(name: impl Into<String>, channel: Channel, now: DateTime<Utc>) -> Self {
        Self {
            id: ServiceId::new(),
            name: name.into(),
            channel,
            active: true,
            auto_distribution: true,
            offer_timeout_s: None,
            inactivity_minutes: 30,
            abandon_hours: 48,
            agent_alert_minutes: None,
            customer_reminder_minutes: None,
            customer_reminder_text: None,
            disconnect_grace_s: 60,
            allow_cancel: true,
            email_approval: false,
            business_hours: None,
            time_zone: "America/Sao_Paulo".to_owned(),
            out_of_hours_hold: false,
            out_of_hours_message: None,
            automation_url: None,
            automation_timeout_ms: 2000,
            portfolio_wait_s: None,
            provider: Value::Object(Default::default()),
            provider_key: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// Changes to a service; `None` leaves a column as it is.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = services)]
pub struct ServiceChangeset {
    pub name: Option<String>,
    pub active: Option<bool>,
    pub auto_distribution: Option<bool>,
    pub offer_timeout_s: Option<Option<i32>>,
    pub inactivity_minutes: Option<i32>,
    pub abandon_hours: Option<i32>,
    pub agent_alert_minutes: Option<Option<i32>>,
    pub customer_reminder_minutes: Option<Option<i32>>,
    pub customer_reminder_text: Option<Option<String>>,
    pub disconnect_grace_s: Option<i32>,
    pub allow_cancel: Option<bool>,
    pub email_approval: Option<bool>,
    pub business_hours: Option<Option<Value>>,
    pub time_zone: Option<String>,
    pub out_of_hours_hold: Option<bool>,
    pub out_of_hours_message: Option<Option<String>>,
    pub automation_url: Option<Option<String>>,
    pub automation_timeout_ms: Option<i32>,
    pub portfolio_wait_s: Option<Option<i32>>,
    pub provider: Option<Value>,
    pub provider_key: Option<Option<String>>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// An agent belongs to a service's team.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = memberships, check_for_backend(diesel::pg::Pg))]
pub struct Membership {
    pub agent_id: AgentId,
    pub service_id: ServiceId,
    pub created_at: DateTime<Utc>,
}

/// An agent's capacity on one channel (R4).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = agent_capacities, check_for_backend(diesel::pg::Pg))]
pub struct AgentCapacity {
    pub agent_id: AgentId,
    pub channel: Channel,
    pub capacity: i32,
}

/// Why an agent is unavailable (R8).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Identifiable)]
#[diesel(table_name = pause_reasons, check_for_backend(diesel::pg::Pg))]
pub struct PauseReason {
    pub id: PauseReasonId,
    pub name: String,
    pub active: bool,
    pub created_at: DateTime<Utc>,
}

/// One interval of an agent's presence.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = presence_history, check_for_backend(diesel::pg::Pg))]
pub struct Presence {
    pub id: i64,
    pub agent_id: AgentId,
    pub status: PresenceStatus,
    pub pause_reason_id: Option<PauseReasonId>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// A new presence interval (the open one of its agent).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = presence_history)]
pub struct NewPresence {
    pub agent_id: AgentId,
    pub status: PresenceStatus,
    pub pause_reason_id: Option<PauseReasonId>,
    pub started_at: DateTime<Utc>,
}
