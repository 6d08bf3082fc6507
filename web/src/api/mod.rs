//! The REST API of SPEC.md section A (`/api/v1`).

use actix_web::web;

pub mod admin;
pub mod agent;
pub mod auth;
pub mod contacts;
pub mod customers;
pub mod health;
pub mod lists;
pub mod messages;
pub mod openapi;
pub mod outbound;
pub mod supervisor;

/// Largest JSON body accepted (attachments go through multipart, not JSON).
pub const JSON_LIMIT: usize = 256 * 1024;

/// The answer for a path (or a method on it) that no route takes.
pub async fn not_found() -> Result<actix_web::HttpResponse, crate::core::error::ApiError> {
    Err(crate::core::error::ApiError::not_found("route"))
}

/// Registers the `/api/v1` routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(openapi::openapi_json);
    cfg.service(
        web::scope("/api/v1")
            .wrap(actix_web::middleware::from_fn(crate::core::session::require_session))
            .wrap(crate::core::error::json_errors())
            .app_data(web::JsonConfig::default().limit(JSON_LIMIT).error_handler(crate::core::error::json_error))
            .app_data(web::QueryConfig::default().error_handler(crate::core::error::query_error))
            .app_data(web::PathConfig::default().error_handler(crate::core::error::path_error))
            .service(crate::channels::cti::events)
            .service(auth::sign_in)
            .service(auth::sign_out)
            .service(agent::put_presence)
            .service(agent::summary)
            .service(agent::get_queues)
            .service(agent::get_queue_items)
            .service(agent::pull_next)
            .service(agent::pull_chosen)
            .service(agent::list_conversations)
            .service(agent::get_conversation)
            .service(agent::transfer)
            .service(crate::channels::voice::dial::call_customer)
            .service(agent::return_to_queue)
            .service(agent::conclude)
            .service(agent::cancel)
            .service(agent::put_classification)
            .service(agent::put_due_date)
            .service(admin::create_service)
            .service(admin::list_services)
            .service(admin::get_service)
            .service(admin::patch_service)
            .service(admin::create_agent)
            .service(admin::list_agents)
            .service(admin::get_agent)
            .service(admin::patch_agent)
            .service(admin::create_pause_reason)
            .service(admin::create_classification)
            .service(admin::create_canned)
            .service(admin::create_template)
            .service(admin::create_service_type)
            .service(messages::send_message)
            .service(crate::channels::templates::start_whatsapp)
            .service(outbound::send_email)
            .service(outbound::send_sms)
            .service(outbound::contact)
            .service(messages::upload)
            .service(messages::download)
            .service(lists::get_me)
            .service(lists::colleagues)
            .service(lists::services)
            .service(contacts::list)
            .service(contacts::create)
            .service(customers::search)
            .service(customers::create)
            .service(customers::get_one)
            .service(customers::update)
            .service(lists::pause_reasons)
            .service(lists::classifications)
            .service(lists::canned_messages)
            .service(outbound::email_templates)
            .service(supervisor::monitor_agents)
            .service(supervisor::monitor_queues)
            .service(supervisor::approve)
            .service(supervisor::reject)
            .default_service(web::to(not_found)),
    );
}
