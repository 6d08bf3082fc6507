//! Messenger and Instagram webhooks (C1, Meta's Messenger Platform): the same verification
//! handshake and `X-Hub-Signature-256` as WhatsApp, `object: page` or `object: instagram`, routed
//! by the entry's page or account id; messages with text and attachments, delivery and read events.

pub mod media;
pub mod sender;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{TimeZone, Utc};
use engine::ingest::InboundMessage;
use schema::models::Service;
use schema::{Channel, MessageDirection, MessageKind, MessageStatus, store};
use serde_json::{Value, json};

use super::whatsapp::signature_valid;
use crate::core::db::db;
use crate::core::error::{ApiError, Code};
use crate::core::state::AppState;

/// Meta batches entries; larger bodies are refused (413).
pub const MAX_BODY: usize = 4 * 1024 * 1024;

fn channel_of(path_channel: &str) -> Option<(Channel, &'static str)> {
    match path_channel {
        "messenger" => Some((Channel::Messenger, "page")),
        "instagram" => Some((Channel::Instagram, "instagram")),
        _ => None,
    }
}

/// The verification handshake of both.
#[get("/webhooks/{channel:messenger|instagram}")]
pub async fn verify(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<std::collections::HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let (channel, _) = channel_of(&path).ok_or_else(|| ApiError::not_found("channel"))?;
    let token = query.get("hub.verify_token").cloned().unwrap_or_default();
    if query.get("hub.mode").map(String::as_str) != Some("subscribe") || token.is_empty() {
        return Err(ApiError::forbidden("not a subscription request"));
    }
    let services = db(&state, store::list_services).await?;
    let known = services.iter().any(|s| {
        s.channel == channel && s.provider.get("verify_token").and_then(Value::as_str) == Some(token.as_str())
    });
    if !known {
        return Err(ApiError::forbidden("unknown verify token"));
    }
    let challenge = query.get("hub.challenge").cloned().unwrap_or_default();
    Ok(HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(challenge))
}

/// Receives a batch of messaging events.
#[post("/webhooks/{channel:messenger|instagram}")]
pub async fn receive(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (channel, object) = channel_of(&path).ok_or_else(|| ApiError::not_found("channel"))?;
    let signature = Some(super::signature_header(&req, "X-Hub-Signature-256")?);
    let body = super::read_body(&state, &req, payload, MAX_BODY).await?;
    let payload: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(Code::InvalidJson, e.to_string()))?;
    if payload.get("object").and_then(Value::as_str) != Some(object) {
        return Err(ApiError::bad_request(Code::InvalidPayload, format!("object must be {object}")));
    }
    let entries = payload
        .get("entry")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad_request(Code::InvalidPayload, "expected entry: [...]"))?;
    let ids: Vec<String> =
        entries.iter().filter_map(|e| e.get("id").and_then(Value::as_str)).map(str::to_owned).collect();
    let services: Vec<Service> = crate::core::directory::services_by_keys(&state, channel, &ids).await?;
    if services.is_empty() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, Code::UnknownPage, "no service has this page or account id"));
    }
    for s in &services {
        let secret = s.provider.get("app_secret").and_then(Value::as_str).unwrap_or("");
        if secret.is_empty() || !signature_valid(secret, &body, signature.as_deref()) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                Code::InvalidSignature,
                "the signature does not match the body",
            ));
        }
    }
    let mut stored = 0;
    for entry in entries {
        let Some(service) = entry
            .get("id")
            .and_then(Value::as_str)
            .and_then(|id| services.iter().find(|s| s.provider_key.as_deref() == Some(id)))
        else {
            continue;
        };
        for event in entry.get("messaging").and_then(Value::as_array).into_iter().flatten() {
            if let Some(inbound) = parse_event(service, channel, event) {
                let files =
                    super::media::may_carry_files(&inbound).then(|| inbound.provider_message_id.clone()).flatten();
                if super::ingest_webhook(&state, inbound).await? {
                    stored += 1;
                }
                if let Some(id) = files {
                    super::media::request_fetches(&state, service, &id).await?;
                }
            } else if let Some(mids) = event.pointer("/delivery/mids").and_then(Value::as_array) {
                for mid in mids.iter().filter_map(Value::as_str) {
                    advance(&state, service, mid, MessageStatus::Delivered).await?;
                }
            } else if let Some(mid) = event.pointer("/read/mid").and_then(Value::as_str) {
                // Instagram names the message read.
                advance(&state, service, mid, MessageStatus::Read).await?;
            } else if let (Some(reader), Some(watermark)) = (
                event.pointer("/sender/id").and_then(Value::as_str),
                event.pointer("/read/watermark").and_then(Value::as_i64),
            ) {
                // Messenger says up to when the customer has read: every message we sent them
                // until then.
                read_until(&state, service, reader, watermark).await?;
            }
        }
    }
    Ok(HttpResponse::Ok().json(json!({"status": "ok", "stored": stored})))
}

async fn advance(state: &AppState, service: &Service, mid: &str, status: MessageStatus) -> Result<(), ApiError> {
    let (service_id, mid) = (service.id, mid.to_owned());
    let changed = db(state, move |c| match store::message_by_provider_id(c, service_id, &mid)? {
        Some(m) => store::advance_message_status(c, m.id, status, Utc::now(), None),
        None => Ok(None),
    })
    .await?;
    if let Some(m) = changed {
        state.engine.publish_message(m.conversation_id, service_id, m).await;
    }
    Ok(())
}

/// Marks read what we sent `reader` in their open conversation up to `watermark` (milliseconds).
async fn read_until(state: &AppState, service: &Service, reader: &str, watermark: i64) -> Result<(), ApiError> {
    let Some(until) = chrono::DateTime::from_timestamp_millis(watermark) else { return Ok(()) };
    let (service_id, reader) = (service.id, reader.to_owned());
    let changed = db(state, move |c| {
        let Some(open) = store::open_conversation_for(c, service_id, &reader)? else { return Ok(Vec::new()) };
        let unread: Vec<_> = store::messages_of(c, open.id)?
            .into_iter()
            .filter(|m| m.direction == MessageDirection::Out && m.created_at <= until)
            .filter(|m| matches!(m.status, MessageStatus::Sent | MessageStatus::Delivered))
            .collect();
        let mut changed = Vec::new();
        for m in unread {
            changed.extend(store::advance_message_status(c, m.id, MessageStatus::Read, Utc::now(), None)?);
        }
        Ok(changed)
    })
    .await?;
    for m in changed {
        state.engine.publish_message(m.conversation_id, service_id, m).await;
    }
    Ok(())
}

/// A customer's message event; `None` for echoes of our own messages and non-message events.
pub fn parse_event(service: &Service, channel: Channel, event: &Value) -> Option<InboundMessage> {
    let message = event.get("message")?;
    if message.get("is_echo").and_then(Value::as_bool) == Some(true) {
        return None;
    }
    let sender = event.pointer("/sender/id").and_then(Value::as_str)?;
    let mid = message.get("mid").and_then(Value::as_str)?;
    if sender.is_empty() || sender.len() > 64 || mid.is_empty() || mid.len() > 256 {
        return None;
    }
    let text = message.get("text").and_then(Value::as_str).map(|t| t.chars().take(65_536).collect::<String>());
    let attachments = message.get("attachments").and_then(Value::as_array).cloned().unwrap_or_default();
    let kind = match attachments.first().and_then(|a| a.get("type")).and_then(Value::as_str) {
        _ if text.is_some() => MessageKind::Text,
        Some("image") => MessageKind::Image,
        Some("audio") => MessageKind::Audio,
        Some("video") => MessageKind::Video,
        Some("location") => MessageKind::Location,
        Some(_) => MessageKind::Document,
        None => MessageKind::Text,
    };
    let payload = if attachments.is_empty() { json!({}) } else { json!({"attachments": attachments}) };
    Some(InboundMessage {
        service: service.id,
        channel,
        address: sender.to_owned(),
        customer_name: None,
        customer_id: None,
        provider_message_id: Some(mid.to_owned()),
        kind,
        body: text,
        payload,
        sent_at: event.get("timestamp").and_then(Value::as_i64).and_then(|ms| Utc.timestamp_millis_opt(ms).single()),
        subject: None,
    })
}

/// How long after the customer's last message a human agent may still answer (the `HUMAN_AGENT`
/// tag).
pub const HUMAN_AGENT_WINDOW: chrono::Duration = chrono::Duration::days(7);

/// Messenger and Instagram: a standard reply (`RESPONSE`) within 24 hours of the customer's last
/// message, a human agent's reply (`MESSAGE_TAG` `HUMAN_AGENT`) within 7 days, nothing later.
pub struct Meta;

impl crate::channels::Provider for Meta {
    fn window(
        &self,
        last: Option<chrono::DateTime<chrono::Utc>>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::channels::window::Window {
        use crate::channels::window::{STANDARD_WINDOW, Window, within};
        if within(last, now, STANDARD_WINDOW) {
            Window::Open
        } else if within(last, now, HUMAN_AGENT_WINDOW) {
            Window::HumanAgent
        } else {
            Window::Closed
        }
    }

    super::media_in_folder!();
}
