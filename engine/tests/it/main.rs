//! The engine through its actors against a real PostgreSQL, with a controllable clock.

mod customer_left;
mod flows;
mod ingest;
mod race;
mod restart;
mod support;
mod timers;
