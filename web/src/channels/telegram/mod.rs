//! Telegram Bot API (C1): `POST /webhooks/telegram/{service_id}` carrying an Update, authenticated
//! by `X-Telegram-Bot-Api-Secret-Token` (the `secret_token` given to `setWebhook`), compared in
//! constant time. Text, photo, voice, audio, video, document, sticker, location and contact.

pub mod media;
pub mod sender;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, post, web};
use chrono::{TimeZone, Utc};
use engine::ingest::InboundMessage;
use schema::models::Service;
use schema::{Channel, MessageKind, ServiceId};
use serde_json::{Value, json};

use crate::core::db::parse_id;
use crate::core::error::{ApiError, Code};
use crate::core::state::AppState;

/// Updates are small; a larger body is refused (413).
pub const MAX_BODY: usize = 1024 * 1024;

/// Receives one Update.
#[post("/webhooks/telegram/{service_id}")]
pub async fn receive(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let service_id: ServiceId = parse_id(&path, "service id")?;
    let secret = req.headers().get("X-Telegram-Bot-Api-Secret-Token").and_then(|v| v.to_str().ok()).map(str::to_owned);
    // Not found is 404; the database being down is 503, so Telegram retries.
    let service = crate::core::directory::service(&state, service_id)
        .await?
        .filter(|s| s.channel == Channel::Telegram)
        .ok_or_else(|| ApiError::not_found("Telegram service"))?;
    let expected = service.provider.get("secret_token").and_then(Value::as_str).unwrap_or("");
    let Some(secret) = secret else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            Code::MissingSecretToken,
            "X-Telegram-Bot-Api-Secret-Token is required",
        ));
    };
    if expected.is_empty() || !crate::core::secrets::ct_eq(secret.as_bytes(), expected.as_bytes()) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            Code::InvalidSecretToken,
            "the secret token does not match",
        ));
    }
    let body = super::read_body(&state, &req, payload, MAX_BODY).await?;
    let update: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(Code::InvalidJson, e.to_string()))?;
    if !update.get("update_id").is_some_and(Value::is_i64) {
        return Err(ApiError::bad_request(Code::InvalidPayload, "an Update has a numeric update_id"));
    }
    // Edited messages, callbacks, channel posts…: valid updates this desk does not handle.
    let Some(message) = update.get("message") else { return Ok(HttpResponse::Ok().json(json!({"status": "ignored"}))) };
    if message.pointer("/chat/id").and_then(Value::as_i64).is_none()
        || message.get("message_id").and_then(Value::as_i64).is_none()
    {
        return Err(ApiError::bad_request(Code::InvalidPayload, "a message needs chat.id and message_id"));
    }
    // Service messages (a pinned message, write access allowed, a payment made) carry nothing to
    // store; a 4xx would only make Telegram send them again.
    let Some(inbound) = parse_message(&service, message) else {
        return Ok(HttpResponse::Ok().json(json!({"status": "ignored"})));
    };
    let files = super::media::may_carry_files(&inbound).then(|| inbound.provider_message_id.clone()).flatten();
    let stored = super::ingest_webhook(&state, inbound).await?;
    if let Some(id) = files {
        super::media::request_fetches(&state, &service, &id).await?;
    }
    Ok(HttpResponse::Ok().json(json!({"status": "ok", "stored": stored})))
}

/// Message contents of the Bot API that the desk does not render.
const UNREAD_CONTENT: &[&str] = &["animation", "dice", "game", "poll", "venue", "video_note", "story", "invoice"];

/// One Telegram message as an inbound message; `None` without a chat or id.
pub fn parse_message(service: &Service, m: &Value) -> Option<InboundMessage> {
    let chat = m.pointer("/chat/id").and_then(Value::as_i64)?;
    let id = m.get("message_id").and_then(Value::as_i64)?;
    let from = m.get("from");
    let name = from.map(|f| {
        let first = f.get("first_name").and_then(Value::as_str).unwrap_or("");
        let last = f.get("last_name").and_then(Value::as_str).unwrap_or("");
        format!("{first} {last}").trim().chars().take(200).collect::<String>()
    });
    let caption = m.get("caption").and_then(Value::as_str).map(str::to_owned);
    let (kind, body, payload) = if let Some(t) = m.get("text").and_then(Value::as_str) {
        (MessageKind::Text, Some(t.to_owned()), json!({}))
    } else if let Some(p) = m.get("photo").and_then(Value::as_array) {
        // Telegram sends several sizes; the last is the largest.
        (
            MessageKind::Image,
            caption,
            json!({"file_id": p.last().and_then(|x| x.get("file_id")).cloned(), "sizes": p.len()}),
        )
    } else if let Some(v) = m.get("voice") {
        (
            MessageKind::Audio,
            None,
            json!({"file_id": v.get("file_id").cloned(), "voice": true, "mime_type": v.get("mime_type").cloned()}),
        )
    } else if let Some(a) = m.get("audio") {
        (MessageKind::Audio, caption, a.clone())
    } else if let Some(v) = m.get("video") {
        (MessageKind::Video, caption, v.clone())
    } else if let Some(d) = m.get("document") {
        (MessageKind::Document, caption, d.clone())
    } else if let Some(s) = m.get("sticker") {
        (MessageKind::Sticker, None, s.clone())
    } else if let Some(l) = m.get("location") {
        (MessageKind::Location, None, l.clone())
    } else if let Some(c) = m.get("contact") {
        let phones = c.get("phone_number").cloned().map(|p| vec![json!({"phone": p})]).unwrap_or_default();
        let full = format!(
            "{} {}",
            c.get("first_name").and_then(Value::as_str).unwrap_or(""),
            c.get("last_name").and_then(Value::as_str).unwrap_or("")
        );
        (
            MessageKind::Contacts,
            None,
            json!({"contacts": [{"name": {"formatted_name": full.trim()}, "phones": phones}]}),
        )
    } else if let Some(key) = UNREAD_CONTENT.iter().find(|k| m.get(**k).is_some_and(Value::is_object)) {
        // Content the desk cannot show: the agent still sees that the customer sent something.
        (MessageKind::Text, Some(format!("[{key}]")), json!({"unsupported": key}))
    } else {
        // No content at all (a service message such as a member joining): nothing to store.
        return None;
    };
    Some(InboundMessage {
        service: service.id,
        channel: Channel::Telegram,
        address: chat.to_string(),
        customer_name: name.filter(|n| !n.is_empty()),
        customer_id: None,
        // A replayed Update carries the same chat and message: one message (C3).
        provider_message_id: Some(format!("{chat}:{id}")),
        kind,
        body: body.map(|b| b.chars().take(65_536).collect()),
        payload,
        sent_at: m.get("date").and_then(Value::as_i64).and_then(|d| Utc.timestamp_opt(d, 0).single()),
        subject: None,
    })
}

/// Telegram: no reply window.
pub struct Telegram;

impl crate::channels::Provider for Telegram {
    super::media_in_folder!();
}
