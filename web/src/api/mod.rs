//! The REST API of SPEC.md section A (`/api/v1`).

use actix_web::web;

pub mod agent;
pub mod auth;
pub mod dto;
pub mod error;

/// Largest JSON body accepted (attachments go through multipart, not JSON).
pub const JSON_LIMIT: usize = 256 * 1024;

/// Registers the `/api/v1` routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .app_data(web::JsonConfig::default().limit(JSON_LIMIT).error_handler(error::json_error))
            .app_data(web::QueryConfig::default().error_handler(error::query_error))
            .app_data(web::PathConfig::default().error_handler(error::path_error))
            .service(auth::sign_in)
            .service(auth::sign_out)
            .service(agent::put_presence)
            .service(agent::get_queues)
            .service(agent::get_queue_items)
            .service(agent::pull_next)
            .service(agent::pull_chosen)
            .service(agent::list_conversations)
            .service(agent::get_conversation)
            .service(agent::transfer)
            .service(agent::return_to_queue)
            .service(agent::conclude)
            .service(agent::cancel)
            .service(agent::put_classification)
            .service(agent::put_due_date),
    );
}
