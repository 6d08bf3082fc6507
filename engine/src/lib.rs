//! The routing engine (SPEC.md R1-R18): one actor per logged-in agent, per open conversation and
//! per queue, a distributor that assigns, timers as actor messages, and an event feed the web
//! layer subscribes to. It persists through `schema` and knows nothing of HTTP.
//!
//! The rules live in [`book::RoutingBook`], a deterministic state machine over plain data; the
//! choice of agent is the pure function [`policy::choose_agent`]. The actors are the concurrency
//! shell around them.

pub mod book;
pub mod error;
pub mod model;
pub mod policy;

pub use error::EngineError;
