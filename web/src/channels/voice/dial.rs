//! Channel switch messaging → voice (C8): from a chat of an identified customer, the agent dials
//! the customer through the toolbar. A new outbound `voice` conversation opens assigned to the
//! agent (voice capacity counts, R4) and the chat stays open. The call itself is placed by the
//! voice service's switchboard ([`super::switchboard`]): it sees the stored outbound call message
//! (`payload.dial`), rings the agent's extension, then the customer, and bridges them.

use actix_web::{HttpResponse, post, web};
use chrono::Utc;
use engine::NewConversation;
use schema::models::{Conversation, Customer, Message, Service};
use schema::{Channel, ConversationId, Direction, MessageDirection, MessageKind, MessageStatus, ServiceId, store};
use serde::Deserialize;
use serde_json::json;

use super::ari::AriSettings;
use crate::core::access::actionable_conversation;
use crate::core::db::{db, parse_id};
use crate::core::dto::ConversationDto;
use crate::core::error::{ApiError, Code, ErrorBody};
use crate::core::session::CurrentAgent;
use crate::core::state::AppState;

/// Which voice service calls, and which of the customer's phones.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DialBody {
    /// A voice service of mine with a phone system; optional when I have exactly one.
    pub service_id: Option<String>,
    /// One of the customer's phones; default the first.
    pub phone: Option<String>,
}

/// Calls the customer of one of my conversations: 201 with the new voice conversation.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/call", tag = "agent", request_body = DialBody,
    responses((status = 201, body = ConversationDto), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[post("/conversations/{id}/call")]
pub async fn call_customer(
    state: web::Data<AppState>,
    me: CurrentAgent,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let id: ConversationId = parse_id(&id, "conversation id")?;
    // The body is optional: none means the defaults.
    let body: DialBody = if body.iter().all(u8::is_ascii_whitespace) {
        DialBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(if e.is_data() { Code::InvalidField } else { Code::InvalidJson }, e.to_string())
        })?
    };
    let chat = actionable_conversation(&state, &me, id).await?;
    if chat.current_agent_id != Some(me.agent.id) {
        return Err(
            ApiError::forbidden("only the conversation's agent can call its customer").with_code(Code::NotOwner)
        );
    }
    if chat.channel == Channel::Voice {
        return Err(ApiError::unprocessable(Code::InvalidChannelSwitch, "the conversation is already a call"));
    }
    let Some(customer_id) = chat.customer_id else {
        return Err(ApiError::unprocessable(Code::CustomerNotIdentified, "link the conversation to a customer first"));
    };
    let customer = db(&state, move |c| Customer::find(c, customer_id)).await?;
    let phone = match body.phone.as_deref().map(str::trim) {
        Some(p) if customer.phones.iter().any(|x| x == p) => p.to_owned(),
        Some(_) => return Err(ApiError::unprocessable(Code::InvalidPhone, "that is not a phone of the customer")),
        None => customer
            .phones
            .first()
            .cloned()
            .ok_or_else(|| ApiError::unprocessable(Code::NoPhone, "the customer has no phone"))?,
    };
    let wanted: Option<ServiceId> = body.service_id.as_deref().map(|s| parse_id(s, "service_id")).transpose()?;
    let services = db(&state, store::list_services).await?;
    let mut usable = services.into_iter().filter(|s: &Service| {
        s.channel == Channel::Voice
            && s.active
            && me.services.contains(&s.id)
            && AriSettings::from_provider(&s.provider).is_some()
            && wanted.is_none_or(|w| w == s.id)
    });
    let service = match (usable.next(), usable.next(), wanted) {
        (Some(s), None, _) | (Some(s), Some(_), Some(_)) => s,
        (Some(_), Some(_), None) => {
            return Err(ApiError::bad_request(Code::ServiceRequired, "choose the voice service with service_id"));
        }
        (None, _, _) => {
            return Err(ApiError::unprocessable(Code::NoPhoneSystem, "none of my voice services can place calls"));
        }
    };
    if me.agent.extension.as_deref().is_none_or(|x| x.trim().is_empty()) {
        return Err(ApiError::unprocessable(Code::NoExtension, "I have no phone extension to call from"));
    }
    let mut new = NewConversation::new(service.id, Channel::Voice, phone.clone());
    new.direction = Direction::Outbound;
    new.customer_id = Some(customer.id);
    new.customer_name = Some(customer.name.clone());
    let voice = state.engine.voice_call(new, me.agent.id).await?;
    let mut m =
        Message::new(voice, service.id, MessageDirection::Out, MessageKind::Call, MessageStatus::Sent, Utc::now());
    m.sender_agent_id = Some(me.agent.id);
    m.payload = json!({"dial": phone, "from_conversation": id.to_string()});
    let stored = db(&state, move |c| m.insert(c)).await?;
    // The switchboard places the call when it sees this message.
    state.engine.publish_message(voice, service.id, stored).await;
    let c = db(&state, move |c| Conversation::find(c, voice)).await?;
    Ok(HttpResponse::Created().json(ConversationDto::from_row(&c)))
}
