//! The routing engine (SPEC.md R1-R18): one actor per logged-in agent, per open conversation and
//! per queue, a distributor that assigns, timers as actor messages, and an event feed the web
//! layer subscribes to. It persists through `schema` and knows nothing of HTTP.
//!
//! Built in issue 3; see docs/architecture.md for the design it follows.
