//! Omniroute's web layer: the HTTP server, its routes, and the `omniroute` commands. Its modules
//! are layers, each using only those below it (docs/architecture.md, "Layers of the web crate";
//! `scripts/check-layers.py` checks it):
//!
//! - [`boot`]: the `omniroute` commands, the server, the route table, configuration, the demo seed;
//! - [`api`], [`ws`], [`desk`], [`metrics`]: REST handlers, WebSocket sessions, the desk's pages,
//!   `GET /metrics`;
//! - [`webchat`]: the customer widget (its page, socket, visitors and hub);
//! - [`channels`]: one folder per provider (webhook in, sender out, media, reply window);
//! - [`core`]: what all of them share (state, errors, sessions, DTOs, files, limits…).

pub mod api;
pub mod boot;
pub mod channels;
pub mod core;
pub mod desk;
pub mod metrics;
pub mod webchat;
pub mod ws;
