//! Plain domain data of the routing engine: no diesel, no actix. What the routing book holds
//! and what its commands and events carry.

use std::time::Duration;

use chrono::{DateTime, Utc};
use schema::{
    AgentId, AssignmentVia, Channel, ClassificationId, ConversationId, ConversationState, PauseReasonId, ServiceId,
    SubState,
};
use serde::{Deserialize, Serialize};

/// Number of channels, for per-channel arrays indexed by [`channel_index`].
pub const CHANNELS: usize = 8;

/// Position of a channel in per-channel arrays.
pub fn channel_index(channel: Channel) -> usize {
    match channel {
        Channel::Email => 0,
        Channel::Webchat => 1,
        Channel::Whatsapp => 2,
        Channel::Messenger => 3,
        Channel::Instagram => 4,
        Channel::Telegram => 5,
        Channel::Sms => 6,
        Channel::Voice => 7,
    }
}

/// A service's routing settings (R6-R12).
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSettings {
    pub id: ServiceId,
    pub channel: Channel,
    pub active: bool,
    /// R6: automatic distribution (an agent's own setting may override it).
    pub auto_distribution: bool,
    /// R7: offer/accept with this timeout; `None` assigns directly.
    pub offer_timeout: Option<Duration>,
    /// R10: no customer message for this long moves a chat to `inactive_at_agent`.
    pub inactivity: Duration,
    /// R10: this long inactive ends it as `abandoned`.
    pub abandon: Duration,
    /// R10: warn the agent after this long without a customer message.
    pub agent_alert: Option<Duration>,
    /// R10: remind the customer after this long without a customer message.
    pub customer_reminder: Option<Duration>,
    /// R9: grace after an agent's last connection drops.
    pub disconnect_grace: Duration,
    /// R12: cancel may be disabled.
    pub allow_cancel: bool,
    /// R14: opening hours; `None` is always open.
    pub hours: Option<crate::hours::BusinessHours>,
    /// R14: hold conversations that arrive out of hours in `pre_opening` until the next opening.
    pub out_of_hours_hold: bool,
    /// C6: a new email conversation waits in `pre_opening` for a supervisor's approval.
    pub email_approval: bool,
}

impl ServiceSettings {
    /// A service with the defaults of SPEC.md: automatic distribution, no offers, 30 min
    /// inactivity, 48 h abandonment, 60 s disconnect grace, cancel allowed, always open.
    pub fn new(id: ServiceId, channel: Channel) -> Self {
        Self {
            id,
            channel,
            active: true,
            auto_distribution: true,
            offer_timeout: None,
            inactivity: Duration::from_secs(30 * 60),
            abandon: Duration::from_secs(48 * 3600),
            agent_alert: None,
            customer_reminder: None,
            disconnect_grace: Duration::from_secs(60),
            allow_cancel: true,
            hours: None,
            out_of_hours_hold: false,
            email_approval: false,
        }
    }

    /// Reads the settings out of a stored service.
    pub fn from_row(s: &schema::models::Service) -> Self {
        let minutes = |m: i32| Duration::from_secs(u64::try_from(m.max(0)).unwrap_or(0) * 60);
        Self {
            id: s.id,
            channel: s.channel,
            active: s.active,
            auto_distribution: s.auto_distribution,
            offer_timeout: s.offer_timeout_s.map(|v| Duration::from_secs(u64::try_from(v.max(1)).unwrap_or(1))),
            inactivity: minutes(s.inactivity_minutes),
            abandon: Duration::from_secs(u64::try_from(s.abandon_hours.max(0)).unwrap_or(0) * 3600),
            agent_alert: s.agent_alert_minutes.map(minutes),
            customer_reminder: s.customer_reminder_minutes.map(minutes),
            disconnect_grace: Duration::from_secs(u64::try_from(s.disconnect_grace_s.max(0)).unwrap_or(0)),
            allow_cancel: s.allow_cancel,
            // Hours are validated when an admin sets them; unreadable ones count as always open.
            hours: s.business_hours.as_ref().and_then(|h| crate::hours::BusinessHours::parse(h, &s.time_zone).ok()),
            out_of_hours_hold: s.out_of_hours_hold,
            email_approval: s.email_approval && s.channel == Channel::Email,
        }
    }
}

/// What the engine needs to know about an agent besides presence: teams and capacities.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentProfile {
    pub id: AgentId,
    pub services: Vec<ServiceId>,
    /// R4 capacity per channel, indexed by [`channel_index`].
    pub capacity: [u32; CHANNELS],
    /// R6: `Some(false)` opts the agent out of automatic distribution, `Some(true)` in.
    pub auto_distribution: Option<bool>,
    pub extension: Option<String>,
}

impl AgentProfile {
    /// A profile with the default capacities of R4.
    pub fn new(id: AgentId, services: Vec<ServiceId>) -> Self {
        let mut capacity = [0; CHANNELS];
        for c in Channel::ALL {
            capacity[channel_index(*c)] = u32::try_from(c.default_capacity()).unwrap_or(0);
        }
        Self { id, services, capacity, auto_distribution: None, extension: None }
    }
}

/// An agent's presence (R8, R9) as the engine tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Presence {
    Offline,
    Available,
    /// Asked for a pause with conversations still open: receives nothing new.
    PausePending {
        reason: PauseReasonId,
    },
    Paused {
        reason: PauseReasonId,
    },
}

impl Presence {
    /// The stored word.
    pub fn status(self) -> schema::PresenceStatus {
        match self {
            Presence::Offline => schema::PresenceStatus::Offline,
            Presence::Available => schema::PresenceStatus::Available,
            Presence::PausePending { .. } => schema::PresenceStatus::PausePending,
            Presence::Paused { .. } => schema::PresenceStatus::Paused,
        }
    }

    /// The pause reason, when pausing or paused.
    pub fn reason(self) -> Option<PauseReasonId> {
        match self {
            Presence::PausePending { reason } | Presence::Paused { reason } => Some(reason),
            _ => None,
        }
    }
}

/// Where a transfer sends a conversation (R11).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferTarget {
    Agent(AgentId),
    Service(ServiceId),
    /// An external phone extension (voice only): the call leaves the contact center.
    Extension(String),
}

/// The routing-relevant facts of one open conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationFacts {
    pub id: ConversationId,
    pub service: ServiceId,
    pub channel: Channel,
    pub state: ConversationState,
    pub sub_state: Option<SubState>,
    /// Why it is held in `pre_opening`.
    pub hold: Option<schema::HoldReason>,
    pub priority: i32,
    /// Original arrival: queue order, kept when put back (R1).
    pub arrived_at: DateTime<Utc>,
    pub enqueued_at: Option<DateTime<Utc>>,
    pub owner: Option<AgentId>,
    pub first_agent: Option<AgentId>,
    pub assigned_at: Option<DateTime<Utc>>,
    /// The pending offer: to whom, until when (R7).
    pub offer: Option<(AgentId, DateTime<Utc>)>,
    /// Agents who let an offer of it lapse, rejected it or returned it: not offered again (R7).
    pub declined_by: Vec<AgentId>,
    /// Last customer message (R10 timers count from it).
    pub last_customer_message_at: Option<DateTime<Utc>>,
    pub classification: Option<ClassificationId>,
    pub due_at: Option<DateTime<Utc>>,
    pub concluded_by: Option<AgentId>,
    pub ended_at: Option<DateTime<Utc>>,
}

impl ConversationFacts {
    /// A conversation just arrived in a queue.
    pub fn arriving(
        id: ConversationId,
        service: ServiceId,
        channel: Channel,
        priority: i32,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            service,
            channel,
            state: ConversationState::Queued,
            sub_state: None,
            hold: None,
            priority,
            arrived_at: at,
            enqueued_at: Some(at),
            owner: None,
            first_agent: None,
            assigned_at: None,
            offer: None,
            declined_by: Vec::new(),
            last_customer_message_at: Some(at),
            classification: None,
            due_at: None,
            concluded_by: None,
            ended_at: None,
        }
    }

    /// Whether it holds capacity of its owner (R4: inactive conversations do not count).
    pub fn counts_against_capacity(&self) -> bool {
        match self.state {
            ConversationState::InService => self.sub_state == Some(SubState::Active),
            ConversationState::Offered => true,
            _ => false,
        }
    }
}

/// How a routing decision was reached, for the record (R16).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CandidateView {
    pub agent_id: AgentId,
    pub active: u32,
    pub capacity: u32,
    pub idle_since: DateTime<Utc>,
}

/// A routing decision with its inputs and reason (R16).
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionRecord {
    pub mode: schema::DecisionMode,
    pub agent: Option<AgentId>,
    pub reason: String,
    /// The eligible candidates considered (the closest ones, bounded), best first.
    pub candidates: Vec<CandidateView>,
    /// How many members were not eligible, by why.
    pub ineligible: Vec<(&'static str, u32)>,
}

/// How an agent came to own a conversation, or why it stopped.
#[derive(Debug, Clone, PartialEq)]
pub enum AssignmentChange {
    Opened {
        agent: AgentId,
        via: AssignmentVia,
    },
    Closed {
        agent: AgentId,
        reason: &'static str,
    },
    /// Closed for one agent and opened for another in the same event (transfer).
    Moved {
        from: AgentId,
        to: AgentId,
        via: AssignmentVia,
    },
}

/// What became of an offer.
#[derive(Debug, Clone, PartialEq)]
pub enum OfferChange {
    Made { agent: AgentId, expires_at: DateTime<Utc> },
    Resolved { agent: AgentId, outcome: schema::OfferOutcome },
}
