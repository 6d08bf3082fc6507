//! Sending through WhatsApp Cloud API (C2).

use crate::core::error::Code;
use chrono::Utc;
use schema::Channel;
use schema::models::Message;
use serde_json::{Value, json};

use crate::channels::send::{Part, multipart};
use crate::channels::send::{exchange, file_sent, outside, provider_field, refusal_or_retry, text_in_caption};
use crate::channels::window::window;
use crate::core::outbox::{Outgoing, SendCall, SendResult, Sender};
use crate::core::state::AppState;

/// This channel's [`Sender`].
pub struct WhatsappSender;

impl Sender for WhatsappSender {
    fn send<'a>(&'a self, call: SendCall<'a>) -> futures_util::future::LocalBoxFuture<'a, SendResult> {
        Box::pin(whatsapp_send(call.state, call.client, &call.service.provider, call.address, call.message, call.out))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The WhatsApp message type of a file.
fn whatsapp_type(content_type: &str) -> &'static str {
    match crate::core::files::essence(content_type).as_str() {
        "image/webp" => "sticker",
        t if t.starts_with("image/") => "image",
        t if t.starts_with("audio/") => "audio",
        t if t.starts_with("video/") => "video",
        _ => "document",
    }
}

/// `POST {api_base_url}/v21.0/{phone_number_id}/messages` with the service's access token: a
/// text, a template (`type: template`), or each file uploaded to `/{phone_number_id}/media` and
/// sent by its media id.
async fn whatsapp_send(
    state: &AppState,
    client: &awc::Client,
    provider: &Value,
    to: &str,
    m: &Message,
    out: &Outgoing<'_>,
) -> SendResult {
    let field = |k: &str| provider_field(provider, k);
    let (base, phone_id, token) = (field("api_base_url"), field("phone_number_id"), field("access_token"));
    if base.is_empty() || phone_id.is_empty() || token.is_empty() {
        return SendResult::refused(Code::NotConfigured, "the WhatsApp service has no API credentials");
    }
    if let Some(refused) = outside(window(Channel::Whatsapp, out.last_customer_at, Utc::now()), m) {
        return refused;
    }
    let envelope = |kind: &str, content: Value| {
        let mut body = json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": kind});
        body[kind] = content;
        body
    };
    if m.kind == schema::MessageKind::Template {
        let Some(t) = m.payload.get("template") else {
            return SendResult::refused(Code::InvalidTemplate, "the template message has no template");
        };
        let mut template = json!({"name": t["name"], "language": {"code": t["language"]}});
        let parameters: Vec<Value> =
            t["parameters"].as_array().into_iter().flatten().map(|p| json!({"type": "text", "text": p})).collect();
        if !parameters.is_empty() {
            template["components"] = json!([{"type": "body", "parameters": parameters}]);
        }
        return whatsapp_post(client, &base, &phone_id, &token, &envelope("template", template)).await;
    }
    let caption_first = text_in_caption(m, out, |ct| matches!(whatsapp_type(ct), "image" | "video" | "document"));
    let mut last = None;
    for (i, (file, data)) in out.files.iter().enumerate() {
        if file.provider_media_id.is_some() {
            continue;
        }
        let kind = whatsapp_type(&file.content_type);
        // A voice note recorded in Chromium is Opus in WebM; WhatsApp takes Opus in Ogg.
        let converted;
        let (name, file_type, data) = if crate::core::files::essence(&file.content_type) == "audio/webm" {
            converted = match crate::channels::audio::webm_opus_to_ogg(data) {
                Ok(ogg) => ogg,
                Err(why) => {
                    return SendResult::refused(
                        Code::AttachmentNotAllowed,
                        format!("{} is not an Opus recording WhatsApp can take ({why:?})", file.name),
                    );
                }
            };
            let stem = file.name.strip_suffix(".webm").unwrap_or(&file.name);
            (format!("{stem}.ogg"), "audio/ogg", &converted[..])
        } else {
            (file.name.clone(), file.content_type.as_str(), &data[..])
        };
        let (content_type, form) = multipart(&[
            Part::field("messaging_product", "whatsapp"),
            Part::field("type", file_type),
            Part::file("file", &name, file_type, data),
        ]);
        let url = format!("{base}/v21.0/{phone_id}/media");
        let request =
            client.post(&url).bearer_auth(&token).insert_header(("Content-Type", content_type)).send_body(form);
        let media_id = match exchange(request).await {
            Ok((status, answer)) if status.is_success() => match answer.get("id").and_then(Value::as_str) {
                Some(id) => id.to_owned(),
                None => return SendResult::Retry("no media id in the upload's answer".into()),
            },
            Ok((status, answer)) => return whatsapp_error(status, &answer),
            Err(retry) => return retry,
        };
        let mut content = json!({"id": media_id});
        if i == 0 && caption_first {
            content["caption"] = json!(m.body);
        }
        if kind == "document" {
            content["filename"] = json!(file.name);
        }
        match whatsapp_post(client, &base, &phone_id, &token, &envelope(kind, content)).await {
            SendResult::Sent(id) => {
                if let Err(retry) = file_sent(state, file, &id).await {
                    return retry;
                }
                last = Some(id);
            }
            other => return other,
        }
    }
    match m.body.as_deref() {
        Some(text) if !caption_first => {
            whatsapp_post(
                client,
                &base,
                &phone_id,
                &token,
                &envelope("text", json!({"body": text, "preview_url": false})),
            )
            .await
        }
        _ => match last.or_else(|| out.files.last().and_then(|(a, _)| a.provider_media_id.clone())) {
            Some(id) => SendResult::Sent(id),
            None => SendResult::refused(Code::EmptyMessage, "nothing to send"),
        },
    }
}

/// One `POST /{phone_number_id}/messages`.
async fn whatsapp_post(client: &awc::Client, base: &str, phone_id: &str, token: &str, body: &Value) -> SendResult {
    let url = format!("{base}/v21.0/{phone_id}/messages");
    let (status, answer) = match exchange(client.post(&url).bearer_auth(token).send_json(body)).await {
        Ok(answered) => answered,
        Err(retry) => return retry,
    };
    if status.is_success() {
        return match answer.pointer("/messages/0/id").and_then(Value::as_str) {
            Some(id) => SendResult::Sent(id.to_owned()),
            None => SendResult::Retry("no message id in the answer".into()),
        };
    }
    whatsapp_error(status, &answer)
}

/// A Graph API error answer.
fn whatsapp_error(status: awc::http::StatusCode, answer: &Value) -> SendResult {
    let code = answer.pointer("/error/code").map(|c| c.to_string()).unwrap_or_else(|| status.as_u16().to_string());
    let message = answer
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or(status.canonical_reason().unwrap_or("error"))
        .to_owned();
    refusal_or_retry(status, code, message)
}
