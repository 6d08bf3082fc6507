//! Integration tests of the `omniroute` binary against a real PostgreSQL.

mod server;
mod ws;
