//! The route table.

use actix_web::web;

pub mod health;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(health::healthz);
    crate::api::configure(cfg);
}
