//! WhatsApp Cloud API webhooks (C1): the `GET` verification handshake and signed `POST`s
//! (`X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app_secret, raw body)>`), routed to a service
//! by `metadata.phone_number_id`. Messages of every kind and delivery statuses, in batches of
//! several entries and changes.

pub mod media;
pub mod sender;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, TimeZone, Utc};
use engine::ingest::InboundMessage;
use hmac::{KeyInit, Mac};
use schema::models::Service;
use schema::{Channel, MessageKind, MessageStatus, store};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::core::db::db;
use crate::core::error::{ApiError, Code};
use crate::core::state::AppState;

/// Meta batches many entries in one POST; larger bodies are refused (413).
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// The verification handshake: the service whose `verify_token` matches echoes the challenge.
#[get("/webhooks/whatsapp")]
pub async fn verify(
    state: web::Data<AppState>,
    query: web::Query<std::collections::HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let mode = query.get("hub.mode").map(String::as_str);
    let token = query.get("hub.verify_token").cloned().unwrap_or_default();
    let challenge = query.get("hub.challenge").cloned().unwrap_or_default();
    if mode != Some("subscribe") || token.is_empty() {
        return Err(ApiError::forbidden("not a subscription request"));
    }
    let services = db(&state, store::list_services).await?;
    let known = services.iter().any(|s| {
        s.channel == Channel::Whatsapp && s.provider.get("verify_token").and_then(Value::as_str) == Some(token.as_str())
    });
    if !known {
        return Err(ApiError::forbidden("unknown verify token"));
    }
    Ok(HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(challenge))
}

/// Whether `header` is the signature of `body` under `secret`, compared in constant time.
pub fn signature_valid(secret: &str, body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.strip_prefix("sha256=")) else { return false };
    let Ok(expected) = hex::decode(hex_sig.trim()) else { return false };
    let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return false };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// Receives a batch of messages and statuses.
#[post("/webhooks/whatsapp")]
pub async fn receive(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let signature = Some(super::signature_header(&req, "X-Hub-Signature-256")?);
    let body = super::read_body(&state, &req, payload, MAX_BODY).await?;
    let payload: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(Code::InvalidJson, e.to_string()))?;
    let Some(entries) = payload.get("entry").and_then(Value::as_array) else {
        return Err(ApiError::bad_request(Code::InvalidPayload, "expected {object, entry: [...]}"));
    };
    if payload.get("object").and_then(Value::as_str) != Some("whatsapp_business_account") {
        return Err(ApiError::bad_request(Code::InvalidPayload, "object must be whatsapp_business_account"));
    }
    // The services this batch is for, each checked against its own app secret.
    let mut ids: Vec<String> = Vec::new();
    for change in entries.iter().flat_map(|e| e.get("changes").and_then(Value::as_array).into_iter().flatten()) {
        if let Some(id) = change.pointer("/value/metadata/phone_number_id").and_then(Value::as_str)
            && !ids.iter().any(|i| i == id)
        {
            ids.push(id.to_owned());
        }
    }
    if ids.is_empty() {
        // Account-level fields (`account_update`, `message_template_status_update`, template
        // quality and category updates) name no phone number: answered 2xx once signed by the
        // app secret of one of our WhatsApp services, or Meta retries them for days.
        return account_event(&state, &body, signature.as_deref()).await;
    }
    let services: Vec<Service> = crate::core::directory::services_by_keys(&state, Channel::Whatsapp, &ids).await?;
    if services.is_empty() {
        // Nothing this installation serves, so nothing to verify it against.
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            Code::UnknownPhoneNumber,
            "no WhatsApp service has this phone_number_id",
        ));
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

    let mut stored = 0usize;
    for change in entries.iter().flat_map(|e| e.get("changes").and_then(Value::as_array).into_iter().flatten()) {
        if change.get("field").and_then(Value::as_str) != Some("messages") {
            continue; // other subscriptions (templates, account updates): valid, ignored
        }
        let value = &change["value"];
        let Some(phone_id) = value.pointer("/metadata/phone_number_id").and_then(Value::as_str) else { continue };
        let Some(service) = services.iter().find(|s| s.provider_key.as_deref() == Some(phone_id)) else { continue };
        for m in value.get("messages").and_then(Value::as_array).into_iter().flatten() {
            let Some(inbound) = parse_message(service, value, m) else { continue };
            let files = super::media::may_carry_files(&inbound).then(|| inbound.provider_message_id.clone()).flatten();
            if super::ingest_webhook(&state, inbound).await? {
                stored += 1;
            }
            if let Some(id) = files {
                super::media::request_fetches(&state, service, &id).await?;
            }
        }
        for s in value.get("statuses").and_then(Value::as_array).into_iter().flatten() {
            apply_status(&state, service, s).await?;
        }
    }
    Ok(HttpResponse::Ok().json(json!({"status": "ok", "stored": stored})))
}

/// A batch with nothing for a phone number: 200 when one of our WhatsApp services' app secrets
/// signed it (nothing is stored), 401 otherwise.
async fn account_event(state: &AppState, body: &[u8], signature: Option<&str>) -> Result<HttpResponse, ApiError> {
    let services = db(state, store::list_services).await?;
    let mut secrets: Vec<&str> = services
        .iter()
        .filter(|s| s.channel == Channel::Whatsapp)
        .filter_map(|s| s.provider.get("app_secret").and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .collect();
    secrets.sort_unstable();
    secrets.dedup();
    if secrets.is_empty() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, Code::UnknownAccount, "no WhatsApp service is set up"));
    }
    if !secrets.iter().any(|secret| signature_valid(secret, body, signature)) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            Code::InvalidSignature,
            "the signature does not match the body",
        ));
    }
    Ok(HttpResponse::Ok().json(json!({"status": "ok", "stored": 0})))
}

fn timestamp(v: &Value) -> Option<DateTime<Utc>> {
    let secs: i64 = v.as_str()?.parse().ok()?;
    Utc.timestamp_opt(secs, 0).single()
}

/// One inbound message in the Cloud API's shape; `None` for what is not a customer message.
pub fn parse_message(service: &Service, value: &Value, m: &Value) -> Option<InboundMessage> {
    let from = m.get("from").and_then(Value::as_str)?.trim();
    let id = m.get("id").and_then(Value::as_str)?;
    if from.is_empty() || from.len() > 32 || id.is_empty() || id.len() > 256 {
        return None;
    }
    let name = value
        .get("contacts")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c.get("wa_id").and_then(Value::as_str) == Some(from)))
        .and_then(|c| c.pointer("/profile/name"))
        .and_then(Value::as_str)
        .map(|n| n.chars().take(200).collect());
    let kind_word = m.get("type").and_then(Value::as_str)?;
    let text = |ptr: &str| m.pointer(ptr).and_then(Value::as_str).map(str::to_owned);
    let (kind, body, payload) = match kind_word {
        "text" => (MessageKind::Text, Some(text("/text/body")?), json!({})),
        "image" => (MessageKind::Image, text("/image/caption"), m["image"].clone()),
        "audio" => (MessageKind::Audio, None, m["audio"].clone()),
        "video" => (MessageKind::Video, text("/video/caption"), m["video"].clone()),
        "document" => (MessageKind::Document, text("/document/caption"), m["document"].clone()),
        "sticker" => (MessageKind::Sticker, None, m["sticker"].clone()),
        "location" => (MessageKind::Location, text("/location/name"), m["location"].clone()),
        "contacts" => (MessageKind::Contacts, None, json!({"contacts": m["contacts"].clone()})),
        "interactive" => {
            let reply = m.pointer("/interactive/button_reply").or_else(|| m.pointer("/interactive/list_reply"));
            (
                MessageKind::Interactive,
                reply.and_then(|r| r.get("title")).and_then(Value::as_str).map(str::to_owned),
                m["interactive"].clone(),
            )
        }
        "button" => (MessageKind::Interactive, text("/button/text"), m["button"].clone()),
        _ => (MessageKind::Text, Some(format!("[{kind_word}]")), json!({"unsupported": kind_word})),
    };
    let body = body.map(|b| b.chars().take(65_536).collect());
    Some(InboundMessage {
        service: service.id,
        channel: Channel::Whatsapp,
        address: from.to_owned(),
        customer_name: name,
        customer_id: None,
        provider_message_id: Some(id.to_owned()),
        kind,
        body,
        payload,
        sent_at: m.get("timestamp").and_then(timestamp),
        subject: None,
    })
}

/// A delivery status of a message we sent (D8): forward only, `failed` with the provider's error.
async fn apply_status(state: &AppState, service: &Service, s: &Value) -> Result<(), ApiError> {
    let (Some(id), Some(word)) = (s.get("id").and_then(Value::as_str), s.get("status").and_then(Value::as_str)) else {
        return Ok(());
    };
    let status = match word {
        "sent" => MessageStatus::Sent,
        "delivered" => MessageStatus::Delivered,
        "read" => MessageStatus::Read,
        "failed" => MessageStatus::Failed,
        _ => return Ok(()),
    };
    let at = s.get("timestamp").and_then(timestamp).unwrap_or_else(Utc::now);
    let error = s.pointer("/errors/0").map(|e| {
        let code = e.get("code").map(|c| c.to_string()).unwrap_or_default();
        let message = e.get("message").or_else(|| e.get("title")).and_then(Value::as_str).unwrap_or("").to_owned();
        (code, message)
    });
    let (service_id, provider_id) = (service.id, id.to_owned());
    let changed = db(state, move |c| match store::message_by_provider_id(c, service_id, &provider_id)? {
        Some(m) => store::advance_message_status(c, m.id, status, at, error),
        None => Ok(None),
    })
    .await?;
    if let Some(m) = changed {
        state.engine.publish_message(m.conversation_id, service_id, m).await;
    }
    Ok(())
}

/// The `X-Hub-Signature-256` value Meta sends for `body` (tests and the load harness sign with it).
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any size");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// WhatsApp: free text within 24 hours of the customer's last message, only a template after.
pub struct Whatsapp;

impl crate::channels::Provider for Whatsapp {
    fn window(
        &self,
        last: Option<chrono::DateTime<chrono::Utc>>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::channels::window::Window {
        use crate::channels::window::{STANDARD_WINDOW, Window, within};
        if within(last, now, STANDARD_WINDOW) { Window::Open } else { Window::TemplateOnly }
    }

    super::media_in_folder!();
}
