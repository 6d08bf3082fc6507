//! The routing engine (SPEC.md R1-R18): one actor per logged-in agent, per open conversation and
//! per queue, a distributor that assigns, timers as actor messages, and an event feed the web
//! layer subscribes to. It persists through `schema` and knows nothing of HTTP.
//!
//! The rules live in [`book::RoutingBook`], a deterministic state machine over plain data; the
//! choice of agent is the pure function [`policy::choose_agent`]. The actors are the concurrency
//! shell around them: [`distributor`] owns the book, [`journal`] commits its events, [`agent`],
//! [`conversation`] and [`queue`] are the per-entity actors, [`timers`] the deadlines.

pub mod agent;
pub mod book;
pub mod clock;
pub mod conversation;
pub mod distributor;
pub mod engine;
pub mod error;
pub mod feed;
pub mod hours;
mod inbox;
pub mod ingest;
pub mod journal;
pub mod model;
pub mod policy;
pub mod queue;
pub mod restore;
pub mod stats;
pub mod timers;

pub use book::{By, Command, LogoffReason, PresenceRequest, Reply};
pub use clock::Clock;
pub use engine::{Engine, NewConversation};
pub use error::EngineError;
pub use feed::{EngineEvent, Feed, PublishedMessage};
pub use model::{AgentProfile, ConversationFacts, Presence, ServiceSettings, TransferTarget};
pub use stats::{EngineStats, Gauges, ServiceGauges};
