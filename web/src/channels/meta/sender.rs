//! Sending through the Messenger and Instagram Send API (C2).

use crate::core::error::Code;
use chrono::Utc;
use schema::Channel;
use schema::models::Message;
use serde_json::{Value, json};

use crate::channels::send::{Part, multipart};
use crate::channels::send::{exchange, file_sent, outside, provider_field, refusal_or_retry};
use crate::channels::window::{Window, window};
use crate::core::outbox::{Outgoing, SendCall, SendResult, Sender};
use crate::core::state::AppState;

/// This channel's [`Sender`].
pub struct MetaSender;

impl Sender for MetaSender {
    fn send<'a>(&'a self, call: SendCall<'a>) -> futures_util::future::LocalBoxFuture<'a, SendResult> {
        Box::pin(meta_send(call.state, call.client, &call.service.provider, call.address, call.message, call.out))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The Send API attachment type of a file.
fn meta_type(content_type: &str) -> &'static str {
    match content_type.split('/').next() {
        Some("image") => "image",
        Some("audio") => "audio",
        Some("video") => "video",
        _ => "file",
    }
}

/// Messenger / Instagram Send API: `POST {api_base_url}/v21.0/{page_id | account_id}/messages`
/// with `{recipient: {id}, messaging_type, message: {text}}`: `RESPONSE` within 24 hours of the
/// customer's last message, `MESSAGE_TAG` with `tag: HUMAN_AGENT` within 7 days. Each file goes
/// first as a multipart request (`recipient`, `messaging_type`, `message` with an attachment of
/// that type, and the file in `filedata`); the text follows as a message of its own.
async fn meta_send(
    state: &AppState,
    client: &awc::Client,
    provider: &Value,
    to: &str,
    m: &Message,
    out: &Outgoing<'_>,
) -> SendResult {
    let field = |k: &str| provider_field(provider, k);
    let (base, token) = (field("api_base_url"), field("access_token"));
    let sender = Some(field("page_id")).filter(|p| !p.is_empty()).unwrap_or_else(|| field("account_id"));
    if base.is_empty() || token.is_empty() || sender.is_empty() {
        return SendResult::refused(Code::NotConfigured, "the service has no Send API credentials");
    }
    // Messenger and Instagram share the rules; the channel only names the service.
    let w = window(Channel::Messenger, out.last_customer_at, Utc::now());
    if let Some(refused) = outside(w, m) {
        return refused;
    }
    let tagged = |mut body: Value| {
        if w == Window::HumanAgent {
            body["messaging_type"] = json!("MESSAGE_TAG");
            body["tag"] = json!("HUMAN_AGENT");
        } else {
            body["messaging_type"] = json!("RESPONSE");
        }
        body
    };
    let url = format!("{base}/v21.0/{sender}/messages");
    let mut last = None;
    for (file, data) in out.unsent() {
        let recipient = json!({"id": to}).to_string();
        let message = json!({"attachment": {"type": meta_type(&file.content_type), "payload": {"is_reusable": false}}})
            .to_string();
        let head = tagged(json!({}));
        let messaging_type = head["messaging_type"].as_str().unwrap_or("RESPONSE").to_owned();
        let mut parts = vec![Part::field("recipient", &recipient), Part::field("messaging_type", &messaging_type)];
        if w == Window::HumanAgent {
            parts.push(Part::field("tag", "HUMAN_AGENT"));
        }
        parts.push(Part::field("message", &message));
        parts.push(Part::file("filedata", &file.name, &file.content_type, data));
        let (content_type, form) = multipart(&parts);
        let request =
            client.post(&url).bearer_auth(&token).insert_header(("Content-Type", content_type)).send_body(form);
        match meta_answer(exchange(request).await) {
            SendResult::Sent(id) => {
                if let Err(retry) = file_sent(state, file, &id).await {
                    return retry;
                }
                last = Some(id);
            }
            other => return other,
        }
    }
    let Some(text) = m.body.as_deref() else {
        return match last.or_else(|| out.files.last().and_then(|(a, _)| a.provider_media_id.clone())) {
            Some(id) => SendResult::Sent(id),
            None => SendResult::refused(Code::EmptyMessage, "nothing to send"),
        };
    };
    let body = tagged(json!({"recipient": {"id": to}, "message": {"text": text}}));
    meta_answer(exchange(client.post(&url).bearer_auth(&token).send_json(&body)).await)
}

/// A Send API answer: `{recipient_id, message_id}` or `{error: {code, message}}`.
fn meta_answer(answered: Result<(awc::http::StatusCode, Value), SendResult>) -> SendResult {
    let (status, answer) = match answered {
        Ok(answered) => answered,
        Err(retry) => return retry,
    };
    if status.is_success() {
        return match answer.get("message_id").and_then(Value::as_str) {
            Some(id) => SendResult::Sent(id.to_owned()),
            None => SendResult::Retry("no message_id in the answer".into()),
        };
    }
    let code = answer.pointer("/error/code").map(|c| c.to_string()).unwrap_or_else(|| status.as_u16().to_string());
    let message = answer.pointer("/error/message").and_then(Value::as_str).unwrap_or("error").to_owned();
    refusal_or_retry(status, code, message)
}
