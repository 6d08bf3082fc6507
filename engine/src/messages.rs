//! The messages the engine's actors and its [`Engine`](crate::Engine) handle send the
//! distributor: its commands and queries, declared apart from the actor that handles them so the
//! actors that send them (agents, the timer wheel) hold a `Recipient` of a message from here
//! rather than the distributor's address. The distributor depends on them, never the reverse:
//! the engine's modules form no import circle (a unit test in `lib.rs` checks it).

use std::sync::Arc;

use actix::prelude::*;
use schema::{AgentId, ConversationId, ServiceId};

use crate::book::{Command, Reply};
use crate::error::EngineError;
use crate::feed::{AlertKind, EngineEvent, Feed, PublishedMessage, QueueCounts};
use crate::model::{AgentProfile, ConversationFacts, Presence};

/// Runs one command of the routing book; answers after its events are committed.
#[derive(Debug, Message)]
#[rtype(result = "Result<Reply, EngineError>")]
pub struct Execute(pub Command);

/// A desk connected for an agent; returns the connection id.
#[derive(Message)]
#[rtype(result = "Result<u64, EngineError>")]
pub struct ConnectAgent {
    pub agent: AgentId,
    pub desk: Recipient<EngineEvent>,
}

/// A desk connection closed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DisconnectAgent {
    pub agent: AgentId,
    pub connection: u64,
}

/// Receive the committed events of a feed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe(pub Recipient<EngineEvent>, pub Feed);

/// Watch a service's queue counts.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WatchQueue {
    pub service: ServiceId,
    pub watcher: Recipient<EngineEvent>,
}

/// Resolves once everything submitted before it is committed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush;

/// A timer alert for a conversation (R10).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RaiseAlert {
    pub conversation: ConversationId,
    pub kind: AlertKind,
}

/// Tells the desks of a conversation about a stored message.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PublishMessage {
    pub conversation: ConversationId,
    pub service: ServiceId,
    pub message: Arc<PublishedMessage>,
}

/// A customer's message stored in an open conversation: the conversation's clock moves (R10)
/// and, once what that changed is committed, its desks are told about the message — one trip to
/// the distributor instead of an [`Execute`] and a [`PublishMessage`].
#[derive(Message)]
#[rtype(result = "Result<Reply, EngineError>")]
pub struct CustomerMessageStored {
    pub conversation: ConversationId,
    pub at: chrono::DateTime<chrono::Utc>,
    pub service: ServiceId,
    pub message: Arc<PublishedMessage>,
}

/// An open conversation as the engine holds it.
#[derive(Message)]
#[rtype(result = "Option<ConversationFacts>")]
pub struct GetConversation(pub ConversationId);

/// An agent as the engine holds it.
#[derive(Message)]
#[rtype(result = "Option<AgentSnapshot>")]
pub struct GetAgent(pub AgentId);

/// Every queue's counts.
#[derive(Message)]
#[rtype(result = "Vec<QueueCounts>")]
pub struct GetQueues;

/// The gauges of the monitoring endpoint (S5), counted in the book.
#[derive(Message)]
#[rtype(result = "crate::stats::Gauges")]
pub struct GetGauges;

/// A service's waiting conversations in queue order.
#[derive(Message)]
#[rtype(result = "Vec<ConversationFacts>")]
pub struct GetWaiting(pub ServiceId);

/// What the engine knows of an agent (the answer to [`GetAgent`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSnapshot {
    pub profile: AgentProfile,
    pub presence: Presence,
    pub presence_since: chrono::DateTime<chrono::Utc>,
    /// Open conversations it owns (active and inactive).
    pub conversations: Vec<ConversationFacts>,
    /// Conversations offered to it.
    pub offers: Vec<ConversationFacts>,
    /// Desk connections open now.
    pub connections: usize,
}
