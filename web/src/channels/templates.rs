//! WhatsApp templates and outbound conversations ("ativo", C7). An agent sends an approved
//! template in a conversation (`POST /api/v1/conversations/{id}/messages` with `template`), or
//! starts a conversation with a contact that opted in (`POST /api/v1/outbound/whatsapp`). Outside
//! the 24-hour window only a template goes out (see [`super::window::window`]).

use actix_web::{HttpResponse, post, web};
use chrono::Utc;
use engine::NewConversation;
use schema::models::{Message, Service, WhatsappContact, WhatsappTemplate};
use schema::{
    Channel, Connection, ConversationState, CustomerId, MessageDirection, MessageKind, MessageStatus, PgConnection,
    ServiceId, StoreError, TemplateStatus, WhatsappContactId, store,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::core::db::{db, parse_id};
use crate::core::error::{ApiError, Code, ErrorBody};
use crate::core::session::CurrentAgent;
use crate::core::state::AppState;

/// Most parameters of a template (Meta's body placeholders are few).
const MAX_PARAMETERS: usize = 20;
/// Longest parameter value.
const MAX_PARAMETER: usize = 1024;

/// A template to send: by id, or by name (and language, else the first approved one), with the
/// values of its `{{1}}`, `{{2}}`… placeholders in order.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateRef {
    pub id: Option<String>,
    pub name: Option<String>,
    pub language: Option<String>,
    #[serde(default)]
    pub parameters: Vec<String>,
}

/// A template chosen and filled in: the text the desk shows and the payload the sender sends.
#[derive(Debug, Clone)]
pub struct FilledTemplate {
    pub body: String,
    pub payload: Value,
}

/// How many placeholders `{{1}}`… a template body has (the highest number).
pub fn placeholders(body: &str) -> usize {
    let mut highest = 0;
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        rest = &rest[start + 2..];
        if let Some(end) = rest.find("}}")
            && let Ok(n) = rest[..end].parse::<usize>()
        {
            highest = highest.max(n);
        }
    }
    highest
}

/// The body with each `{{n}}` replaced by the n-th parameter.
pub fn render(body: &str, parameters: &[String]) -> String {
    let mut out = body.to_owned();
    for (i, p) in parameters.iter().enumerate().rev() {
        out = out.replace(&format!("{{{{{}}}}}", i + 1), p);
    }
    out
}

/// Checks a template reference's shape (before any database work).
pub fn check_ref(r: &TemplateRef) -> Result<(), ApiError> {
    if r.id.is_none() && r.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
        return Err(ApiError::bad_request(Code::InvalidTemplate, "a template is chosen by id or by name"));
    }
    if r.parameters.len() > MAX_PARAMETERS
        || r.parameters.iter().any(|p| p.trim().is_empty() || p.chars().count() > MAX_PARAMETER)
    {
        return Err(ApiError::bad_request(
            Code::InvalidTemplateParameters,
            format!("at most {MAX_PARAMETERS} parameters, each 1-{MAX_PARAMETER} characters"),
        ));
    }
    Ok(())
}

/// Finds the service's approved template and fills it in: `Ok(Err(..))` for a refusal the agent
/// can correct (unknown, not approved, wrong number of parameters).
pub fn fill(
    conn: &mut PgConnection,
    service: ServiceId,
    r: &TemplateRef,
) -> Result<Result<FilledTemplate, ApiError>, StoreError> {
    let templates = store::whatsapp_templates_for(conn, service)?;
    let id = match r.id.as_deref().map(|i| parse_id::<schema::WhatsappTemplateId>(i, "template.id")) {
        Some(Err(e)) => return Ok(Err(e)),
        Some(Ok(id)) => Some(id),
        None => None,
    };
    let chosen: Option<&WhatsappTemplate> = templates
        .iter()
        .filter(|t| id.is_none_or(|id| t.id == id))
        .filter(|t| r.name.as_deref().is_none_or(|n| t.name == n.trim()))
        .filter(|t| r.language.as_deref().is_none_or(|l| t.language == l.trim()))
        .min_by_key(|t| (t.status != TemplateStatus::Approved, t.created_at));
    let Some(t) = chosen else {
        return Ok(Err(ApiError::unprocessable(Code::UnknownTemplate, "this WhatsApp service has no such template")));
    };
    if t.status != TemplateStatus::Approved {
        return Ok(Err(ApiError::unprocessable(
            Code::TemplateNotApproved,
            format!("the template {} is {}, not approved", t.name, t.status),
        )));
    }
    let wanted = placeholders(&t.body);
    if r.parameters.len() != wanted {
        return Ok(Err(ApiError::bad_request(
            Code::InvalidTemplateParameters,
            format!("the template {} takes {wanted} parameters, not {}", t.name, r.parameters.len()),
        )));
    }
    Ok(Ok(FilledTemplate {
        body: render(&t.body, &r.parameters),
        payload: json!({"template": {"id": t.id, "name": t.name, "language": t.language,
                                     "parameters": r.parameters}}),
    }))
}

/// Starts an outbound WhatsApp conversation.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    pub service_id: String,
    /// The WhatsApp contact (K6); or `customer_id`, whose contact is used.
    pub contact_id: Option<String>,
    pub customer_id: Option<String>,
    pub template: TemplateRef,
}

/// Starts a WhatsApp conversation with a contact that opted in, with an approved template (C7):
/// 201 `{conversation_id, assigned, message}`. The conversation goes to the caller when they can
/// take it (available, below capacity), else it waits in the service's queue.
#[utoipa::path(post, path = "/api/v1/outbound/whatsapp", tag = "agent", request_body = StartBody,
    responses((status = 201, description = "the conversation and its template message, pending"),
              (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "conversation_open", body = ErrorBody),
              (status = 422, description = "opt_in_required, unknown_template, template_not_approved", body = ErrorBody)))]
#[post("/outbound/whatsapp")]
pub async fn start_whatsapp(
    state: web::Data<AppState>,
    me: CurrentAgent,
    body: web::Json<StartBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let service_id: ServiceId = parse_id(&b.service_id, "service_id")?;
    check_ref(&b.template)?;
    let contact_id = b.contact_id.as_deref().map(|c| parse_id::<WhatsappContactId>(c, "contact_id")).transpose()?;
    let customer_id = b.customer_id.as_deref().map(|c| parse_id::<CustomerId>(c, "customer_id")).transpose()?;
    if contact_id.is_none() == customer_id.is_none() {
        return Err(ApiError::bad_request(Code::InvalidContact, "give contact_id or customer_id"));
    }
    if !me.sees_service(service_id) {
        return Err(ApiError::forbidden("you are not in this service"));
    }
    let service =
        db(&state, move |c| Service::find(c, service_id)).await.map_err(|_| ApiError::not_found("service"))?;
    if service.channel != Channel::Whatsapp {
        return Err(ApiError::unprocessable(Code::NotWhatsapp, "outbound templates go through a WhatsApp service"));
    }
    let contact: Option<WhatsappContact> = db(&state, move |c| match (contact_id, customer_id) {
        (Some(id), _) => WhatsappContact::find(c, id).map(Some).or_else(|e| match e {
            StoreError::NotFound => Ok(None),
            other => Err(other),
        }),
        (None, Some(customer)) => store::whatsapp_contact_of_customer(c, customer),
        (None, None) => Ok(None),
    })
    .await?;
    let contact = contact.ok_or_else(|| ApiError::not_found("WhatsApp contact"))?;
    if !contact.opted_in {
        return Err(ApiError::unprocessable(Code::OptInRequired, "the contact must opt in first"));
    }
    let address = contact.wa_id.clone().unwrap_or_else(|| contact.phone.trim_start_matches('+').to_owned());
    let template = b.template;
    let filled = db(&state, move |c| fill(c, service_id, &template)).await??;
    let me_id = me.agent.id;

    // A conversation with this contact already open: the template goes there if it is mine.
    let lookup = address.clone();
    let open = db(&state, move |c| store::open_conversation_for(c, service_id, &lookup)).await?;
    let (conversation, assigned) = match open {
        Some(c) if c.state == ConversationState::InService && c.current_agent_id == Some(me_id) => (c.id, true),
        Some(_) => {
            return Err(ApiError::conflict(
                Code::ConversationOpen,
                "this contact already has an open conversation in this service",
            ));
        }
        None => {
            let mut new = NewConversation::new(service_id, Channel::Whatsapp, address.clone());
            new.customer_name = contact.name.clone();
            new.customer_id = contact.customer_id;
            // Theirs at once when they may take it (never another agent's first); else it
            // waits for anyone, its message sent.
            state.engine.open_outbound(new, me_id).await?
        }
    };
    let stored = db(&state, move |c| {
        c.transaction(|c| {
            let now = Utc::now();
            let mut m = Message::new(
                conversation,
                service_id,
                MessageDirection::Out,
                MessageKind::Template,
                MessageStatus::Pending,
                now,
            );
            m.body = Some(filled.body);
            m.payload = filled.payload;
            m.sender_agent_id = Some(me_id);
            m.next_attempt_at = Some(now);
            m.insert(c)
        })
    })
    .await?;
    let id = stored.id;
    let published = crate::core::dto::with_attachments(&state, stored).await?;
    let json = crate::core::dto::message_value(&published.row, &published.attachments);
    state.engine.publish_message(conversation, service_id, published).await;
    state.outbox.ready(id);
    Ok(HttpResponse::Created().json(json!({"conversation_id": conversation, "assigned": assigned, "message": json})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_counted_and_filled_in_order() {
        let body = "Olá {{1}}, seu pedido {{2}} chega; {{1}} de novo, {{ 3 }} e {{x}} não contam.";
        assert_eq!(placeholders(body), 2);
        assert_eq!(placeholders("sem nada"), 0);
        let filled = render("{{1}} e {{2}} e {{1}}; {{10}}", &["a".into(), "b".into()]);
        assert_eq!(filled, "a e b e a; {{10}}");
    }
}
