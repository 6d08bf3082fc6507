//! The OpenAPI document of the API, served at `/api/openapi.json`.

use actix_web::{HttpResponse, get};
use utoipa::OpenApi;

use crate::api::{admin, agent, auth, contacts, customers, lists, messages, outbound, supervisor};

#[derive(OpenApi)]
#[openapi(
    info(title = "Omniroute API", version = "1", description = "SPEC.md section A: session, administration, agent, supervisor. Errors are {\"error\": code, \"message\": text}."),
    paths(
        auth::sign_in, auth::sign_out,
        lists::get_me, lists::colleagues, lists::services, contacts::list, contacts::create, customers::search, customers::create, customers::get_one, customers::update, lists::pause_reasons, lists::classifications, lists::canned_messages,
        agent::put_presence, agent::summary, agent::get_queues, agent::get_queue_items, agent::pull_next, agent::pull_chosen,
        agent::list_conversations, agent::get_conversation, agent::transfer, agent::return_to_queue,
        agent::conclude, agent::cancel, agent::put_classification, agent::put_due_date,
        messages::send_message, messages::upload, messages::download,
        crate::channels::templates::start_whatsapp,
        outbound::email_templates, outbound::send_email, outbound::send_sms, outbound::contact,
        admin::create_service, admin::list_services, admin::get_service, admin::patch_service,
        admin::create_agent, admin::list_agents, admin::get_agent, admin::patch_agent,
        admin::create_pause_reason, admin::create_classification, admin::create_canned, admin::create_template,
        admin::create_service_type,
        supervisor::monitor_agents, supervisor::monitor_queues, supervisor::approve, supervisor::reject,
        crate::channels::voice::dial::call_customer,
        crate::metrics::metrics,
    ),
    tags(
        (name = "session"), (name = "agent"), (name = "admin"), (name = "supervisor"), (name = "operations"),
    )
)]
pub struct ApiDoc;

/// The OpenAPI document.
#[get("/api/openapi.json")]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
