//! The route table.

use actix_web::web;

pub mod health;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(health::healthz);
    cfg.service(crate::ws::session::ws_agent);
    cfg.service(crate::desk::index);
    cfg.service(crate::desk::asset);
    crate::api::configure(cfg);
    cfg.app_data(web::QueryConfig::default().error_handler(crate::api::error::query_error));
    crate::channels::configure(cfg);
    crate::webchat::configure(cfg);
}
