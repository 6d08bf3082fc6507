//! An email or an SMS sent from a conversation (D6: the manual's "Enviar e-mail", "Enviar SMS"):
//! from a chat or a call, the agent writes to the customer's address or phone through one of
//! their email or SMS services. The message goes out in an outbound conversation of that channel,
//! opened for the agent as `POST /api/v1/outbound/whatsapp` opens one; the conversation it was
//! sent from stays open. The outbox sends it as any agent message (SMTP, Twilio).

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::Utc;
use engine::NewConversation;
use schema::models::{Conversation, Customer, EmailTemplate, Message, Service};
use schema::{
    Channel, ConversationId, ConversationState, Direction, EmailTemplateId, MessageDirection, MessageKind,
    MessageStatus, ServiceId, store,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::channels::email::parse::valid_address;
use crate::core::access::visible_conversation;
use crate::core::db::{db, idempotency_key, parse_id};
use crate::core::dto::message_value;
use crate::core::error::{ApiError, Code, ErrorBody};
use crate::core::files::MAX_TEXT;
use crate::core::session::CurrentAgent;
use crate::core::state::AppState;

/// Longest subject: RFC 5322's line length, so the header is never folded mid-word by us.
const MAX_SUBJECT: usize = 998;
/// Longest SMS: Twilio's limit for one message body (it splits it into segments).
const MAX_SMS: usize = 1600;

/// An email template as the desk's picker shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EmailTemplateDto {
    pub id: String,
    pub name: String,
    pub subject: String,
    pub body_text: String,
    /// None: usable in every email service.
    pub service_id: Option<String>,
}

/// The email templates usable in my services: global ones and those of a service I belong to.
#[utoipa::path(get, path = "/api/v1/email-templates", tag = "agent",
    responses((status = 200, body = [EmailTemplateDto]), (status = 401, body = ErrorBody)))]
#[get("/email-templates")]
pub async fn email_templates(state: web::Data<AppState>, me: CurrentAgent) -> Result<HttpResponse, ApiError> {
    let rows = db(&state, store::list_email_templates).await?;
    let out: Vec<EmailTemplateDto> = rows
        .into_iter()
        .filter(|t| t.service_id.is_none_or(|s| me.sees_service(s)))
        .map(|t| EmailTemplateDto {
            id: t.id.to_string(),
            name: t.name,
            subject: t.subject,
            body_text: t.body_text,
            service_id: t.service_id.map(|s| s.to_string()),
        })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

/// An email to the conversation's customer.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailBody {
    /// Default: the linked customer's first email, else the address of an email conversation.
    pub to: Option<String>,
    /// Default: the template's subject.
    pub subject: Option<String>,
    /// Default: the template's text.
    pub text: Option<String>,
    pub template_id: Option<String>,
    /// One of my active email services; default the first by name.
    pub service_id: Option<String>,
}

/// An SMS to the conversation's customer.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmsBody {
    /// Default: the linked customer's first phone, else the number of an SMS, WhatsApp or voice
    /// conversation.
    pub to: Option<String>,
    pub text: String,
    /// One of my active SMS services; default the first by name.
    pub service_id: Option<String>,
}

/// Sends an email to the customer of my conversation: 201 `{conversation_id, assigned, message}`.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/email", tag = "agent", request_body = EmailBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "the same key sends one email")),
    responses((status = 201, description = "the email conversation and its message, pending"),
              (status = 400, description = "invalid_email, subject_required, empty_message, text_too_long", body = ErrorBody),
              (status = 403, description = "not_owner", body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "conversation_open", body = ErrorBody),
              (status = 422, description = "no_email_address, no_email_service, unknown_template", body = ErrorBody)))]
#[post("/conversations/{id}/email")]
pub async fn send_email(
    req: HttpRequest,
    state: web::Data<AppState>,
    me: CurrentAgent,
    id: web::Path<String>,
    body: web::Json<EmailBody>,
) -> Result<HttpResponse, ApiError> {
    let id: ConversationId = parse_id(&id, "conversation id")?;
    let key = idempotency_key(&req)?.map(|k| format!("{id}:email:{k}"));
    let b = body.into_inner();
    let wanted: Option<ServiceId> = b.service_id.as_deref().map(|s| parse_id(s, "service_id")).transpose()?;
    let template_id: Option<EmailTemplateId> =
        b.template_id.as_deref().map(|t| parse_id(t, "template_id")).transpose()?;
    let (origin, customer) = match from_conversation(&state, &me, id, &key).await? {
        Origin::Replayed(answer) => return Ok(answer),
        Origin::Mine(found) => *found,
    };
    let to = match b.to.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(to) => to.to_lowercase(),
        None => default_email(&origin, customer.as_ref())
            .ok_or_else(|| ApiError::unprocessable(Code::NoEmailAddress, "the customer has no email address"))?,
    };
    if !valid_address(&to) {
        return Err(ApiError::bad_request(Code::InvalidEmail, format!("{to:?} is not an email address")));
    }
    let service = my_service(&state, &me, Channel::Email, wanted).await?;
    let template = match template_id {
        Some(t) => {
            let found = db(&state, move |c| EmailTemplate::find(c, t)).await.ok();
            match found.filter(|t| t.service_id.is_none_or(|s| me.sees_service(s))) {
                Some(t) => Some(t),
                None => return Err(ApiError::unprocessable(Code::UnknownTemplate, "no such email template of mine")),
            }
        }
        None => None,
    };
    // The agent's edits win over the template's words.
    let given = |s: Option<String>| s.map(|s| s.trim_end().to_owned()).filter(|s| !s.trim().is_empty());
    let subject = given(b.subject)
        .or_else(|| template.as_ref().map(|t| t.subject.clone()).filter(|s| !s.trim().is_empty()))
        .map(|s| s.trim().to_owned())
        .ok_or_else(|| ApiError::bad_request(Code::SubjectRequired, "an email needs a subject"))?;
    if subject.chars().count() > MAX_SUBJECT || subject.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            Code::InvalidField,
            format!("a subject is one line of at most {MAX_SUBJECT} characters"),
        ));
    }
    let customer_name = origin.customer_name.clone().or_else(|| customer.as_ref().map(|c| c.name.clone()));
    let text = given(b.text)
        .or_else(|| template.as_ref().map(|t| t.body_text.clone()))
        .map(|t| fill(&t, customer_name.as_deref().unwrap_or(""), &me.agent.name, &subject))
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request(Code::EmptyMessage, "write the email's text"))?;
    if text.chars().count() > MAX_TEXT {
        return Err(ApiError::bad_request(Code::TextTooLong, format!("an email has at most {MAX_TEXT} characters")));
    }
    let mut new = NewConversation::new(service.id, Channel::Email, to.clone());
    new.subject = Some(subject.clone());
    let mut m = Message::new(
        ConversationId::new(),
        service.id,
        MessageDirection::Out,
        MessageKind::Email,
        MessageStatus::Pending,
        Utc::now(),
    );
    m.body = Some(text);
    m.email_subject = Some(subject);
    m.email_to = vec![to];
    // `new_email`: the sender sends this subject and text as they are, not as a reply (RES:)
    // wrapped in the service's template.
    m.payload = json!({"new_email": true, "from_conversation": id.to_string(),
                       "template_id": template.map(|t| t.id.to_string())});
    open_and_send(&state, &me, &origin, customer_name, new, m, key).await
}

/// Sends an SMS to the customer of my conversation: 201 `{conversation_id, assigned, message}`.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/sms", tag = "agent", request_body = SmsBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "the same key sends one SMS")),
    responses((status = 201, description = "the SMS conversation and its message, pending"),
              (status = 400, description = "invalid_phone, empty_message, text_too_long", body = ErrorBody),
              (status = 403, description = "not_owner", body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "conversation_open", body = ErrorBody),
              (status = 422, description = "no_phone, no_sms_service", body = ErrorBody)))]
#[post("/conversations/{id}/sms")]
pub async fn send_sms(
    req: HttpRequest,
    state: web::Data<AppState>,
    me: CurrentAgent,
    id: web::Path<String>,
    body: web::Json<SmsBody>,
) -> Result<HttpResponse, ApiError> {
    let id: ConversationId = parse_id(&id, "conversation id")?;
    let key = idempotency_key(&req)?.map(|k| format!("{id}:sms:{k}"));
    let b = body.into_inner();
    let wanted: Option<ServiceId> = b.service_id.as_deref().map(|s| parse_id(s, "service_id")).transpose()?;
    let text = b.text.trim_end().to_owned();
    if text.trim().is_empty() {
        return Err(ApiError::bad_request(Code::EmptyMessage, "write the SMS's text"));
    }
    if text.chars().count() > MAX_SMS {
        return Err(ApiError::bad_request(Code::TextTooLong, format!("an SMS has at most {MAX_SMS} characters")));
    }
    let (origin, customer) = match from_conversation(&state, &me, id, &key).await? {
        Origin::Replayed(answer) => return Ok(answer),
        Origin::Mine(found) => *found,
    };
    let to = match b.to.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(to) => e164(to)
            .ok_or_else(|| ApiError::bad_request(Code::InvalidPhone, format!("{to:?} is not a phone number")))?,
        None => default_phone(&origin, customer.as_ref())
            .ok_or_else(|| ApiError::unprocessable(Code::NoPhone, "the customer has no phone"))?,
    };
    let service = my_service(&state, &me, Channel::Sms, wanted).await?;
    let new = NewConversation::new(service.id, Channel::Sms, to);
    let mut m = Message::new(
        ConversationId::new(),
        service.id,
        MessageDirection::Out,
        MessageKind::Text,
        MessageStatus::Pending,
        Utc::now(),
    );
    m.body = Some(text);
    m.payload = json!({"from_conversation": id.to_string()});
    let customer_name = origin.customer_name.clone().or_else(|| customer.map(|c| c.name));
    open_and_send(&state, &me, &origin, customer_name, new, m, key).await
}

/// Where an email from this conversation goes by default: the linked customer's first email,
/// else the address of an email conversation.
fn default_email(origin: &Conversation, customer: Option<&Customer>) -> Option<String> {
    customer
        .and_then(|c| c.emails.first().cloned())
        .or_else(|| (origin.channel == Channel::Email).then(|| origin.customer_address.clone()))
        .map(|a| a.trim().to_lowercase())
}

/// Where an SMS from this conversation goes by default: the linked customer's first phone, else
/// the number of an SMS, WhatsApp or voice conversation.
fn default_phone(origin: &Conversation, customer: Option<&Customer>) -> Option<String> {
    let phoned = matches!(origin.channel, Channel::Sms | Channel::Whatsapp | Channel::Voice);
    customer
        .and_then(|c| c.phones.iter().find_map(|p| e164(p)))
        .or_else(|| phoned.then(|| e164(&origin.customer_address)).flatten())
}

/// Where an email and an SMS from a conversation would go by default.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ContactDto {
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// The customer's email and phone an email or SMS from this conversation goes to by default: the
/// desk's dialogs prefill them.
#[utoipa::path(get, path = "/api/v1/conversations/{id}/contact", tag = "agent",
    responses((status = 200, body = ContactDto), (status = 404, body = ErrorBody)))]
#[get("/conversations/{id}/contact")]
pub async fn contact(
    state: web::Data<AppState>,
    me: CurrentAgent,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: ConversationId = parse_id(&id, "conversation id")?;
    let origin = visible_conversation(&state, &me, id).await?;
    let customer = linked_customer(&state, &origin).await?;
    Ok(HttpResponse::Ok().json(ContactDto {
        email: default_email(&origin, customer.as_ref()),
        phone: default_phone(&origin, customer.as_ref()),
    }))
}

/// A phone number as Twilio takes it, E.164 with `+`: the digits of `raw` (spaces, dots, dashes
/// and brackets dropped), 8 to 15 of them.
pub fn e164(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let rest = raw.strip_prefix('+').unwrap_or(raw);
    if !rest.chars().all(|c| c.is_ascii_digit() || " .-()".contains(c)) {
        return None;
    }
    let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
    (8..=15).contains(&digits.len()).then(|| format!("+{digits}"))
}

/// A template's text with its placeholders filled: `{{customer_name}}`, `{{agent_name}}`,
/// `{{subject}}`; `{{body}}`, the place of a reply's text, has none in a new email.
fn fill(text: &str, customer: &str, agent: &str, subject: &str) -> String {
    text.replace("{{body}}", "")
        .replace("{{customer_name}}", customer)
        .replace("{{agent_name}}", agent)
        .replace("{{subject}}", subject)
}

/// The answer of the first request with this key, when there was one.
/// Where an email or SMS is sent from: the earlier answer of a replayed key, else my
/// conversation and its linked customer.
enum Origin {
    Replayed(HttpResponse),
    Mine(Box<(Conversation, Option<Customer>)>),
}

async fn from_conversation(
    state: &AppState,
    me: &CurrentAgent,
    id: ConversationId,
    key: &Option<String>,
) -> Result<Origin, ApiError> {
    let origin = visible_conversation(state, me, id).await?;
    if let Some(replayed) = replay(state, me, key).await? {
        return Ok(Origin::Replayed(replayed));
    }
    mine(me, &origin)?;
    let customer = linked_customer(state, &origin).await?;
    Ok(Origin::Mine(Box::new((origin, customer))))
}

async fn replay(state: &AppState, me: &CurrentAgent, key: &Option<String>) -> Result<Option<HttpResponse>, ApiError> {
    let Some(key) = key.clone() else { return Ok(None) };
    let agent = me.agent.id;
    let Some(m) = db(state, move |c| store::message_by_sender_key(c, agent, &key)).await? else { return Ok(None) };
    let assigned = db(state, move |c| Conversation::find(c, m.conversation_id)).await?.current_agent_id == Some(agent);
    let files = db(state, {
        let id = m.id;
        move |c| store::attachments_of(c, id)
    })
    .await?;
    Ok(Some(created(m.conversation_id, assigned, message_value(&m, &files))))
}

fn created(conversation: ConversationId, assigned: bool, message: Value) -> HttpResponse {
    HttpResponse::Created().json(json!({"conversation_id": conversation, "assigned": assigned, "message": message}))
}

/// Only the conversation's agent writes to its customer from it — from a chat or a call.
fn mine(me: &CurrentAgent, c: &Conversation) -> Result<(), ApiError> {
    if c.state != ConversationState::InService || c.current_agent_id != Some(me.agent.id) {
        return Err(
            ApiError::forbidden("only the conversation's agent can write to its customer").with_code(Code::NotOwner)
        );
    }
    Ok(())
}

async fn linked_customer(state: &AppState, c: &Conversation) -> Result<Option<Customer>, ApiError> {
    let Some(id) = c.customer_id else { return Ok(None) };
    db(state, move |c| Customer::find(c, id).map(Some)).await
}

/// The active service of `channel` of mine that sends: `wanted`, else the first by name.
async fn my_service(
    state: &AppState,
    me: &CurrentAgent,
    channel: Channel,
    wanted: Option<ServiceId>,
) -> Result<Service, ApiError> {
    let mut services: Vec<Service> = db(state, store::list_services)
        .await?
        .into_iter()
        .filter(|s| s.channel == channel && s.active && me.sees_service(s.id) && wanted.is_none_or(|w| w == s.id))
        .collect();
    services.sort_by(|a, b| a.name.cmp(&b.name));
    services.into_iter().next().ok_or_else(|| match channel {
        Channel::Email => ApiError::unprocessable(Code::NoEmailService, "none of my active services sends email"),
        _ => ApiError::unprocessable(Code::NoSmsService, "none of my active services sends SMS"),
    })
}

/// Opens the outbound conversation for `new`'s address (or takes my open one there), gives it to
/// me, stores `m` in it and hands it to the outbox.
async fn open_and_send(
    state: &AppState,
    me: &CurrentAgent,
    origin: &Conversation,
    customer_name: Option<String>,
    mut new: NewConversation,
    mut m: Message,
    key: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let me_id = me.agent.id;
    let (service, address) = (new.service, new.customer_address.clone());
    let open = db(state, move |c| store::open_conversation_for(c, service, &address)).await?;
    let (conversation, assigned) = match open {
        Some(c) if c.state == ConversationState::InService && c.current_agent_id == Some(me_id) => (c.id, true),
        Some(_) => {
            return Err(ApiError::conflict(
                Code::ConversationOpen,
                "this address already has an open conversation in that service",
            ));
        }
        None => {
            new.customer_id = origin.customer_id;
            new.customer_name = customer_name;
            new.direction = Direction::Outbound;
            // Theirs at once when they may take it (never another agent's first); else it
            // waits for anyone, its message sent.
            state.engine.open_outbound(new, me_id).await?
        }
    };
    m.conversation_id = conversation;
    m.sender_agent_id = Some(me_id);
    m.idempotency_key = key;
    m.next_attempt_at = Some(m.created_at);
    let stored = db(state, move |c| m.insert(c)).await?;
    let message_id = stored.id;
    let published = crate::core::dto::with_attachments(state, stored).await?;
    let json = message_value(&published.row, &published.attachments);
    state.engine.publish_message(conversation, service, published).await;
    state.outbox.ready(message_id);
    Ok(created(conversation, assigned, json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_become_e164_with_a_plus() {
        assert_eq!(e164("5511911112222").as_deref(), Some("+5511911112222"));
        assert_eq!(e164("+55 (11) 91111-2222").as_deref(), Some("+5511911112222"));
        assert_eq!(e164("1234567"), None, "too short");
        assert_eq!(e164("+55 11 9abc"), None);
        assert_eq!(e164("wa:5511911112222"), None);
    }

    #[test]
    fn a_templates_placeholders_are_filled_and_the_reply_slot_dropped() {
        let t = "Olá {{customer_name}},\n{{body}}\n{{agent_name}} — {{subject}}";
        assert_eq!(fill(t, "Maria", "Ana", "Boleto"), "Olá Maria,\n\nAna — Boleto");
    }
}
