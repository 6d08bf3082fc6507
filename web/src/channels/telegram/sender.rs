//! Sending through Telegram Bot API (C2).

use crate::core::error::Code;
use schema::models::Message;
use serde_json::{Value, json};

use crate::channels::send::{Part, multipart};
use crate::channels::send::{exchange, file_sent, provider_field, refusal_or_retry, text_in_caption};
use crate::core::outbox::{Outgoing, SendCall, SendResult, Sender};
use crate::core::state::AppState;

/// This channel's [`Sender`].
pub struct TelegramSender;

impl Sender for TelegramSender {
    fn send<'a>(&'a self, call: SendCall<'a>) -> futures_util::future::LocalBoxFuture<'a, SendResult> {
        Box::pin(telegram_send(call.state, call.client, &call.service.provider, call.address, call.message, call.out))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The Bot API method and file field for a file: a photo, a voice note (OGG/Opus) or a document.
fn telegram_method(content_type: &str) -> (&'static str, &'static str) {
    match crate::core::files::essence(content_type).as_str() {
        "image/jpeg" | "image/png" | "image/webp" => ("sendPhoto", "photo"),
        "audio/ogg" => ("sendVoice", "voice"),
        _ => ("sendDocument", "document"),
    }
}

/// `POST {api_base_url}/bot{bot_token}/sendMessage` with `{chat_id, text}`; each file with
/// `sendPhoto` / `sendVoice` / `sendDocument` as multipart, the text as the first one's caption.
async fn telegram_send(
    state: &AppState,
    client: &awc::Client,
    provider: &Value,
    chat: &str,
    m: &Message,
    out: &Outgoing<'_>,
) -> SendResult {
    let field = |k: &str| provider_field(provider, k);
    let (base, token) = (field("api_base_url"), field("bot_token"));
    if base.is_empty() || token.is_empty() {
        return SendResult::refused(Code::NotConfigured, "the Telegram service has no bot token");
    }
    let caption_first = text_in_caption(m, out, |_| true);
    let mut last = None;
    for (i, (file, data)) in out.files.iter().enumerate() {
        if file.provider_media_id.is_some() {
            continue;
        }
        let (method, part) = telegram_method(&file.content_type);
        let caption = m.body.as_deref().filter(|_| i == 0 && caption_first);
        let mut parts = vec![Part::field("chat_id", chat)];
        if let Some(c) = caption {
            parts.push(Part::field("caption", c));
        }
        parts.push(Part::file(part, &file.name, &file.content_type, data));
        let (content_type, form) = multipart(&parts);
        let url = format!("{base}/bot{token}/{method}");
        let request = client.post(&url).insert_header(("Content-Type", content_type)).send_body(form);
        match telegram_answer(chat, exchange(request).await) {
            SendResult::Sent(id) => {
                if let Err(retry) = file_sent(state, file, &id).await {
                    return retry;
                }
                last = Some(id);
            }
            other => return other,
        }
    }
    let text = match m.body.as_deref() {
        Some(text) if !caption_first => text,
        _ => {
            return match last.or_else(|| out.files.last().and_then(|(a, _)| a.provider_media_id.clone())) {
                Some(id) => SendResult::Sent(id),
                None => SendResult::refused(Code::EmptyMessage, "nothing to send"),
            };
        }
    };
    let chat_id: Value = chat.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::from(chat));
    let url = format!("{base}/bot{token}/sendMessage");
    telegram_answer(chat, exchange(client.post(&url).send_json(&json!({"chat_id": chat_id, "text": text}))).await)
}

/// A Bot API answer: `{ok: true, result: {message_id}}` or `{ok: false, error_code, description}`.
fn telegram_answer(chat: &str, answered: Result<(awc::http::StatusCode, Value), SendResult>) -> SendResult {
    let (status, answer) = match answered {
        Ok(answered) => answered,
        Err(retry) => return retry,
    };
    if answer.get("ok").and_then(Value::as_bool) == Some(true) {
        return match answer.pointer("/result/message_id").and_then(Value::as_i64) {
            Some(id) => SendResult::Sent(format!("{chat}:{id}")),
            None => SendResult::Retry("no message_id in the answer".into()),
        };
    }
    let code = answer.get("error_code").map(|c| c.to_string()).unwrap_or_else(|| status.as_u16().to_string());
    let message = answer.get("description").and_then(Value::as_str).unwrap_or("error").to_owned();
    refusal_or_retry(status, code, message)
}
