//! Omniroute's web layer: the HTTP server, its routes, and the `omniroute` commands.

pub mod api;
pub mod channels;
pub mod config;
pub mod core;
pub mod desk;
pub mod metrics;
pub mod routes;
pub mod seed;
pub mod server;
pub mod telemetry;
pub mod webchat;
pub mod ws;
