//! Omniroute's benchmarks (N4). They measure; they assert nothing about time.
//!
//! - `benches/routing_decision.rs` (criterion, `cargo bench`): the choice of agent over 1,000
//!   agents, and one routing decision through the routing book with 1,000 agents and 10,000
//!   waiting conversations. The worlds it runs in are built by [`decision`].
//! - `src/bin/engine_throughput.rs`: events per second through a running engine that commits
//!   to a durable PostgreSQL, with per-command latency percentiles. Its database is built by
//!   [`store`].
//! - `src/bin/omniroute_load.rs` (`omniroute-load`): the load harness against a running
//!   server, only through its public interfaces; its parts are in [`load`].
//!
//! Method and figures: docs/performance.md.

pub mod decision;
pub mod load;
pub mod store;
