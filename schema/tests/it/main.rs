//! Integration tests of the storage crate against a real PostgreSQL (`DATABASE_URL`; run them
//! with `scripts/pg.sh with test cargo nextest run -p omniroute-schema`).
//!
//! Every test gets a database of its own (`TestDb::new()`, cloned from a migrated template), so
//! they run in parallel and never see each other's rows.
//!
//! - [`migrations`]: every migration up, down and up again.
//! - [`round_trips`]: every table stores and returns every column as written.
//! - [`constraints`]: the invariants PostgreSQL enforces refuse what they must.
//! - [`store`]: store functions whose behaviour is more than one statement.

mod constraints;
mod fixtures;
mod journal;
mod migrations;
mod round_trips;
mod store;
