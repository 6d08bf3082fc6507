//! Omniroute's web layer: the HTTP server, its routes, and the `omniroute` commands.

pub mod api;
pub mod channels;
pub mod config;
pub mod desk;
pub mod directory;
pub mod limits;
pub mod metrics;
pub mod password;
pub mod routes;
pub mod seed;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod webchat;
pub mod ws;
