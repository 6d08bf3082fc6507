//! What the engine counts for monitoring (S5): counters kept in atomics as things are committed,
//! and gauges read from the routing book on demand. Nothing here touches the database, so a
//! Prometheus scrape costs one message to the distributor.

use std::sync::atomic::{AtomicU64, Ordering};

use schema::{Channel, ConversationState, PresenceStatus, ServiceId};

use crate::book::ConversationEvent;
use crate::model::{CHANNELS, channel_index};

/// Monotonic counters since the engine started, per channel (indexed by [`channel_index`]).
#[derive(Debug, Default)]
pub struct EngineStats {
    ingested: [AtomicU64; CHANNELS],
    opened: [AtomicU64; CHANNELS],
    ended: [[AtomicU64; ENDINGS]; CHANNELS],
}

/// The final states, in the order of the `ended` counters.
const ENDED_STATES: [ConversationState; 4] = [
    ConversationState::Concluded,
    ConversationState::Cancelled,
    ConversationState::Abandoned,
    ConversationState::Rejected,
];
const ENDINGS: usize = ENDED_STATES.len();

impl EngineStats {
    /// A customer message was stored (not a replay).
    pub fn message_ingested(&self, channel: Channel) {
        self.ingested[channel_index(channel)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts what a committed conversation event means: a conversation opened (its first event)
    /// or ended (the event that moved it to a final state).
    pub fn conversation_event(&self, e: &ConversationEvent) {
        let i = channel_index(e.facts.channel);
        if e.from_state.is_none() {
            self.opened[i].fetch_add(1, Ordering::Relaxed);
        }
        if e.from_state.is_none_or(|from| !from.is_final())
            && let Some(k) = ENDED_STATES.iter().position(|s| *s == e.facts.state)
        {
            self.ended[i][k].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Customer messages stored on `channel`.
    pub fn ingested(&self, channel: Channel) -> u64 {
        self.ingested[channel_index(channel)].load(Ordering::Relaxed)
    }

    /// Conversations opened on `channel`.
    pub fn opened(&self, channel: Channel) -> u64 {
        self.opened[channel_index(channel)].load(Ordering::Relaxed)
    }

    /// Conversations of `channel` that ended in `state` (0 for a state that is not final).
    pub fn ended(&self, channel: Channel, state: ConversationState) -> u64 {
        ENDED_STATES
            .iter()
            .position(|s| *s == state)
            .map_or(0, |k| self.ended[channel_index(channel)][k].load(Ordering::Relaxed))
    }

    /// The final states `ended` counts.
    pub fn ended_states() -> &'static [ConversationState] {
        &ENDED_STATES
    }
}

/// The engine's current counts, read from memory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gauges {
    /// One entry per service the engine knows.
    pub services: Vec<ServiceGauges>,
    /// Agents per presence status (active agents the engine knows).
    pub agents: Vec<(PresenceStatus, usize)>,
}

/// One service's open conversations by where they stand.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceGauges {
    pub service_id: ServiceId,
    pub channel: Channel,
    /// Open conversations per state (`pre_opening`, `queued`, `offered`, `in_service`,
    /// `inactive_in_queue`), every open state listed.
    pub by_state: Vec<(ConversationState, usize)>,
    /// In service with an agent whose customer went quiet (R10, `inactive` sub-state).
    pub inactive_at_agent: usize,
    /// How long the oldest waiting one has waited, in seconds (0 when none waits).
    pub oldest_wait_s: i64,
}
