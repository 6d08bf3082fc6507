//! The top layer: the `omniroute` commands (`main.rs` is the binary), the server and its route
//! table, the typed configuration, the demo seed and logging.

pub mod config;
pub mod routes;
pub mod seed;
pub mod server;
pub mod telemetry;
