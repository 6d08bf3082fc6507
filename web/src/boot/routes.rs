//! The route table.

use actix_web::web;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(crate::api::health::healthz);
    cfg.service(crate::metrics::metrics);
    cfg.service(crate::ws::session::ws_agent);
    cfg.service(crate::ws::monitor_session::ws_monitor);
    cfg.service(crate::desk::index);
    cfg.service(crate::desk::emoji_catalogue);
    cfg.service(crate::desk::asset);
    crate::api::configure(cfg);
    cfg.app_data(web::QueryConfig::default().error_handler(crate::core::error::query_error));
    crate::webchat::configure(cfg);
    // Last: a scope without a prefix takes every path, so nothing may come after it. It adds
    // counting the webhooks' 4xx (S5) and the JSON error shape for whatever no route takes.
    cfg.service(
        web::scope("")
            .wrap(actix_web::middleware::from_fn(crate::metrics::count_refusals))
            .wrap(crate::core::error::json_errors())
            .configure(crate::channels::configure)
            .default_service(web::to(crate::api::not_found)),
    );
}
