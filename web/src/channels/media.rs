//! Media of the messaging channels (C1, C9) and their reply windows (C7).
//!
//! Inbound: a webhook stores the customer's message first and answers only after the commit (C4);
//! the file itself is fetched afterwards by the media fetcher. The webhook records one
//! `media_fetches` row per file in its own short transaction before answering (a replay records
//! none twice, and a database that fails here answers 503 so the provider retries); the fetcher
//! claims due rows with a lease (`FOR UPDATE SKIP LOCKED`), downloads the file from the provider
//! (WhatsApp: `GET /{media_id}` then the URL it gives, with the access token; Telegram: `getFile`
//! then the file URL; Twilio: the `MediaUrl` with basic auth; Messenger/Instagram: the CDN URL),
//! checks the channel's size and type limits, stores it as an attachment of the message and pushes
//! the message, now with its attachment, to the desks. A 429, a 5xx or no answer is retried with
//! backoff; a file over the limits is `refused` and the message says so in `payload.media_error`.
//!
//! Windows: WhatsApp takes free text within 24 hours of the customer's last message and only a
//! template outside; Messenger and Instagram take a standard reply (`RESPONSE`) within 24 hours,
//! a human agent's reply (`MESSAGE_TAG` `HUMAN_AGENT`) within 7 days, nothing later.

use std::time::Duration;

use chrono::{DateTime, Utc};
use schema::models::{Attachment, MediaFetch, Message, NewMediaFetch, Service};
use schema::{AttachmentId, Channel, MessageKind, store};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tracing::warn;

use crate::core::db::db;
use crate::core::error::ApiError;
use crate::core::files::essence;
use crate::core::state::AppState;

/// How long a fetch attempt holds its row before another fetcher may retry it.
const LEASE: Duration = Duration::from_secs(120);
/// Most attempts before a file is given up as failed.
pub const MAX_FETCH_ATTEMPTS: i32 = 8;

/// The standard customer-service window of WhatsApp, Messenger and Instagram.
pub const STANDARD_WINDOW: chrono::Duration = chrono::Duration::hours(24);
/// How long after the customer's last message a human agent may still answer on Messenger and
/// Instagram (the `HUMAN_AGENT` tag).
pub const HUMAN_AGENT_WINDOW: chrono::Duration = chrono::Duration::days(7);

/// Where a conversation stands in its channel's reply window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Any message may be sent (and no window applies to the channel).
    Open,
    /// Messenger/Instagram after 24 hours: only a human agent's reply, tagged `HUMAN_AGENT`.
    HumanAgent,
    /// WhatsApp after 24 hours: only a template.
    TemplateOnly,
    /// Messenger/Instagram after 7 days: nothing may be sent.
    Closed,
}

/// The window of `channel` at `now`, the customer having last written at `last` (never: `None`).
pub fn window(channel: Channel, last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Window {
    let age = last.map(|t| now - t);
    let within = |d: chrono::Duration| age.is_some_and(|a| a < d);
    match channel {
        Channel::Whatsapp if within(STANDARD_WINDOW) => Window::Open,
        Channel::Whatsapp => Window::TemplateOnly,
        Channel::Messenger | Channel::Instagram if within(STANDARD_WINDOW) => Window::Open,
        Channel::Messenger | Channel::Instagram if within(HUMAN_AGENT_WINDOW) => Window::HumanAgent,
        Channel::Messenger | Channel::Instagram => Window::Closed,
        _ => Window::Open,
    }
}

/// The error for a message the window does not allow (the API's 422 and the sender's refusal).
pub const OUTSIDE_WINDOW: &str = "outside_window";

/// Why a message may not go out now, or `None` when it may.
pub fn window_refusal(window: Window, kind: MessageKind) -> Option<&'static str> {
    match window {
        Window::TemplateOnly if kind != MessageKind::Template => {
            Some("outside the 24-hour window: only a template can be sent")
        }
        Window::Closed => Some(
            "more than 7 days since the customer's last message: Messenger and Instagram accept no message until the customer writes again",
        ),
        _ => None,
    }
}

/// One part of a `multipart/form-data` body.
pub struct Part<'a> {
    pub name: &'a str,
    /// A file part's name; `None` for a plain field.
    pub filename: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub data: &'a [u8],
}

impl<'a> Part<'a> {
    /// A plain text field.
    pub fn field(name: &'a str, value: &'a str) -> Self {
        Self { name, filename: None, content_type: None, data: value.as_bytes() }
    }

    /// A file.
    pub fn file(name: &'a str, filename: &'a str, content_type: &'a str, data: &'a [u8]) -> Self {
        Self { name, filename: Some(filename), content_type: Some(content_type), data }
    }
}

/// A `multipart/form-data` body (RFC 7578) and its `Content-Type` with a fresh boundary.
pub fn multipart(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    use rand::RngCore;
    let mut nonce = [0u8; 16];
    rand::rng().fill_bytes(&mut nonce);
    let boundary = format!("omniroute-{}", hex::encode(nonce));
    let quoted = |s: &str| s.replace(['"', '\\', '\r', '\n'], "_");
    let mut body = Vec::new();
    for p in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{}\"", quoted(p.name));
        if let Some(f) = p.filename {
            disposition.push_str(&format!("; filename=\"{}\"", quoted(f)));
        }
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"\r\n");
        if let Some(ct) = p.content_type {
            body.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(p.data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A file a stored message points at: the provider's handle, and what the webhook said of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub source: String,
    pub content_type: Option<String>,
    pub name: Option<String>,
}

/// The files an inbound message carries, read from its stored payload.
pub fn sources(channel: Channel, m: &Message) -> Vec<Source> {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).filter(|x| !x.is_empty()).map(str::to_owned);
    let p = &m.payload;
    match channel {
        Channel::Whatsapp => match m.kind {
            MessageKind::Image
            | MessageKind::Audio
            | MessageKind::Video
            | MessageKind::Document
            | MessageKind::Sticker => s(p, "id")
                .map(|id| Source { source: id, content_type: s(p, "mime_type"), name: s(p, "filename") })
                .into_iter()
                .collect(),
            _ => Vec::new(),
        },
        Channel::Telegram => s(p, "file_id")
            .map(|id| {
                let ct = s(p, "mime_type").or_else(|| (m.kind == MessageKind::Image).then(|| "image/jpeg".to_owned()));
                Source { source: id, content_type: ct, name: s(p, "file_name") }
            })
            .into_iter()
            .collect(),
        Channel::Sms => p
            .get("media")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|x| Some(Source { source: s(x, "url")?, content_type: s(x, "content_type"), name: None }))
            .collect(),
        Channel::Messenger | Channel::Instagram => p
            .get("attachments")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|a| matches!(a.get("type").and_then(Value::as_str), Some("image" | "audio" | "video" | "file")))
            .filter_map(|a| {
                Some(Source { source: s(a.get("payload")?, "url")?, content_type: None, name: s(a, "name") })
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether an inbound message may carry files (the others skip [`request_fetches`]).
pub fn may_carry_files(m: &engine::ingest::InboundMessage) -> bool {
    matches!(
        m.kind,
        MessageKind::Image | MessageKind::Audio | MessageKind::Video | MessageKind::Document | MessageKind::Sticker
    ) || m.payload.get("media").is_some()
        || m.payload.get("attachments").is_some()
}

/// After a webhook's message is stored (or found stored by a replay): records the fetch of each
/// of its files, once. Call before answering the provider; an error answers 503, so the
/// provider retries and the replay records what this call could not.
pub async fn request_fetches(state: &AppState, service: &Service, provider_message_id: &str) -> Result<(), ApiError> {
    let (service_id, channel, id) = (service.id, service.channel, provider_message_id.to_owned());
    db(state, move |c| {
        let Some(m) = store::message_by_provider_id(c, service_id, &id)? else { return Ok(()) };
        for s in sources(channel, &m) {
            store::ensure_media_fetch(
                c,
                &NewMediaFetch {
                    message_id: m.id,
                    service_id,
                    source: s.source.chars().take(2048).collect(),
                    content_type: s.content_type,
                    name: s.name.map(|n| n.chars().take(200).collect()),
                    next_attempt_at: Utc::now(),
                },
            )?;
        }
        Ok(())
    })
    .await
}

/// Runs the media fetcher until the system stops. Call inside the actix system (awc needs it).
pub fn spawn(state: AppState) {
    actix_web::rt::spawn(async move {
        let client = awc::Client::builder().timeout(Duration::from_secs(60)).max_redirects(5).finish();
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            while let Ok(batch) = claim(&state).await {
                if batch.is_empty() {
                    break;
                }
                for f in batch {
                    fetch_one(&state, &client, f).await;
                }
            }
        }
    });
}

async fn claim(state: &AppState) -> Result<Vec<MediaFetch>, ()> {
    let pool = state.pool.clone();
    let lease = chrono::Duration::from_std(LEASE).unwrap_or(chrono::Duration::seconds(120));
    actix_web::web::block(move || -> Result<Vec<MediaFetch>, schema::StoreError> {
        store::claim_media_fetches(&mut *pool.get()?, Utc::now(), lease, 10)
    })
    .await
    .map_err(|_| ())?
    .map_err(|e| warn!(error = %e, "claiming media fetches"))
}

/// What fetching a file gave.
enum Fetched {
    File {
        data: Vec<u8>,
        content_type: String,
    },
    /// Over the limits (C9): never stored.
    Refused(String),
    /// The provider will never give it (expired, unknown).
    Failed(String),
    Retry(String),
}

async fn fetch_one(state: &AppState, client: &awc::Client, f: MediaFetch) {
    let pool = state.pool.clone();
    let (service_id, message_id) = (f.service_id, f.message_id);
    let Ok(Ok((service, message))) =
        actix_web::web::block(move || -> Result<(Service, Message), schema::StoreError> {
            let mut c = pool.get()?;
            Ok((Service::find(&mut c, service_id)?, Message::find(&mut c, message_id)?))
        })
        .await
    else {
        return;
    };
    let announced = f.content_type.as_deref().map(essence);
    // Refused before any download when the webhook already says the type is not accepted.
    let fetched = match announced.as_deref() {
        Some(t) if !crate::core::files::accepted_type(t) => {
            Fetched::Refused(format!("files of type {t} are not accepted (C9)"))
        }
        _ => fetch(client, &service, &f, announced.as_deref()).await,
    };
    let pool = state.pool.clone();
    let (id, attempts, now) = (f.id, f.attempts, Utc::now());
    let name = f.name.clone();
    let conversation = message.conversation_id;
    let channel = service.channel;
    let source = f.source.clone();
    let changed = actix_web::web::block(move || -> Result<Option<Message>, schema::StoreError> {
        let mut c = pool.get()?;
        match fetched {
            Fetched::File { data, content_type } => {
                let extension = mime_guess::get_mime_extensions_str(&content_type)
                    .and_then(|e| e.first())
                    .map(|e| format!(".{e}"))
                    .unwrap_or_default();
                let row = Attachment {
                    id: AttachmentId::new(),
                    message_id: Some(message_id),
                    conversation_id: Some(conversation),
                    uploaded_by: None,
                    name: name.unwrap_or_else(|| format!("{}{extension}", message_kind_word(&content_type))),
                    content_type,
                    size_bytes: data.len() as i64,
                    sha256: Sha256::digest(&data).to_vec(),
                    provider_media_id: Some(source.chars().take(512).collect()),
                    created_at: now,
                };
                store::complete_media_fetch(&mut c, id, &row, data).map(Some)
            }
            Fetched::Refused(why) => store::end_media_fetch(&mut c, id, "refused", &why).map(Some),
            Fetched::Failed(why) => store::end_media_fetch(&mut c, id, "failed", &why).map(Some),
            Fetched::Retry(why) if attempts >= MAX_FETCH_ATTEMPTS => store::end_media_fetch(
                &mut c,
                id,
                "failed",
                &format!("the {channel} file could not be fetched after {attempts} attempts: {why}"),
            )
            .map(Some),
            Fetched::Retry(why) => {
                let backoff = chrono::Duration::seconds(1i64 << attempts.clamp(0, 10));
                store::retry_media_fetch(&mut c, id, now + backoff, &why)?;
                Ok(None)
            }
        }
    })
    .await;
    match changed {
        Ok(Ok(Some(m))) => {
            if let Ok(published) = crate::core::dto::with_attachments(state, m).await {
                state.engine.publish_message(conversation, service_id, published).await;
            }
        }
        Ok(Err(e)) => warn!(error = %e, media_fetch.id = id, "storing a fetched file"),
        _ => {}
    }
}

fn message_kind_word(content_type: &str) -> &'static str {
    match content_type.split('/').next() {
        Some("image") => "image",
        Some("audio") => "audio",
        Some("video") => "video",
        _ => "document",
    }
}

/// A string setting of a service's provider, without a trailing slash.
fn field(service: &Service, key: &str) -> String {
    service.provider.get(key).and_then(Value::as_str).unwrap_or("").trim_end_matches('/').to_owned()
}

async fn fetch(client: &awc::Client, service: &Service, f: &MediaFetch, announced: Option<&str>) -> Fetched {
    match service.channel {
        Channel::Whatsapp => {
            let (base, token) = (field(service, "api_base_url"), field(service, "access_token"));
            if base.is_empty() || token.is_empty() {
                return Fetched::Failed("the WhatsApp service has no API credentials".into());
            }
            // A media id is an opaque number-like token; anything else would be a path of our choosing.
            if f.source.is_empty() || !f.source.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) {
                return Fetched::Failed("not a WhatsApp media id".into());
            }
            // The media's URL (short-lived) and facts, then the bytes, both with the token.
            let url = format!("{base}/v21.0/{}", f.source);
            let meta = match json_get(client.get(&url).bearer_auth(&token)).await {
                Ok(v) => v,
                Err(e) => return e,
            };
            let Some(file_url) = meta.get("url").and_then(Value::as_str) else {
                return Fetched::Failed("the Graph API gave no URL for this media".into());
            };
            let declared = meta.get("mime_type").and_then(Value::as_str).map(essence);
            let ct = declared.as_deref().or(announced).unwrap_or("application/octet-stream").to_owned();
            if let Some(size) = meta.get("file_size").and_then(Value::as_u64)
                && usize::try_from(size).unwrap_or(usize::MAX) > limit(service.channel, &ct)
            {
                return too_large(service.channel, &ct, size);
            }
            download(client.get(file_url).bearer_auth(&token), service.channel, Some(&ct)).await
        }
        Channel::Telegram => {
            let (base, token) = (field(service, "api_base_url"), field(service, "bot_token"));
            if base.is_empty() || token.is_empty() {
                return Fetched::Failed("the Telegram service has no bot token".into());
            }
            let query = serde_urlencoded::to_string([("file_id", f.source.as_str())]).unwrap_or_default();
            let answer = match json_get(client.get(format!("{base}/bot{token}/getFile?{query}"))).await {
                Ok(v) => v,
                Err(e) => return e,
            };
            let Some(path) = answer.pointer("/result/file_path").and_then(Value::as_str) else {
                let why = answer.get("description").and_then(Value::as_str).unwrap_or("no file_path");
                return Fetched::Failed(format!("Telegram gave no file: {why}"));
            };
            let guessed = mime_guess::from_path(path).first().map(|m| m.essence_str().to_owned());
            let ct = announced.map(str::to_owned).or(guessed);
            download(client.get(format!("{base}/file/bot{token}/{path}")), service.channel, ct.as_deref()).await
        }
        Channel::Sms => {
            let (base, sid, token) =
                (field(service, "api_base_url"), field(service, "account_sid"), field(service, "auth_token"));
            // The credentials go to Twilio's own API only (redirects elsewhere drop them, as awc
            // does for any other origin).
            let request = if !base.is_empty() && f.source.starts_with(&format!("{base}/")) {
                client.get(&f.source).basic_auth(&sid, &token)
            } else {
                client.get(&f.source)
            };
            download(request, service.channel, announced).await
        }
        Channel::Messenger | Channel::Instagram => download(client.get(&f.source), service.channel, announced).await,
        other => Fetched::Failed(format!("{other} has no media to fetch")),
    }
}

/// The largest file of this type the channel takes (C9).
fn limit(channel: Channel, content_type: &str) -> usize {
    crate::core::files::channel_limit(channel, content_type)
}

fn too_large(channel: Channel, content_type: &str, size: u64) -> Fetched {
    Fetched::Refused(format!(
        "the file ({size} bytes) is larger than the {} MiB {channel} accepts for {content_type} (C9)",
        limit(channel, content_type) / 1024 / 1024
    ))
}

/// A provider's JSON answer; errors as what to do next.
async fn json_get(req: awc::ClientRequest) -> Result<Value, Fetched> {
    let mut res = req.send().await.map_err(|e| Fetched::Retry(e.to_string()))?;
    let status = res.status();
    let answer = res.json::<Value>().limit(1 << 20).await.unwrap_or(Value::Null);
    if status.as_u16() == 429 || status.is_server_error() {
        return Err(Fetched::Retry(format!("{status}")));
    }
    if !status.is_success() {
        let why = answer.pointer("/error/message").or_else(|| answer.get("description")).and_then(Value::as_str);
        return Err(Fetched::Failed(format!("{status}: {}", why.unwrap_or("refused"))));
    }
    Ok(answer)
}

/// Downloads a file within the channel's limit for its type.
async fn download(req: awc::ClientRequest, channel: Channel, content_type: Option<&str>) -> Fetched {
    let mut res = match req.send().await {
        Ok(r) => r,
        Err(e) => return Fetched::Retry(e.to_string()),
    };
    let status = res.status();
    if status.as_u16() == 429 || status.is_server_error() {
        return Fetched::Retry(format!("{status}"));
    }
    if !status.is_success() {
        return Fetched::Failed(format!("the file answered {status}"));
    }
    let header = res.headers().get("content-type").and_then(|v| v.to_str().ok()).map(essence);
    let ct = content_type
        .map(str::to_owned)
        .or(header.filter(|h| h != "application/octet-stream"))
        .unwrap_or_else(|| "application/octet-stream".into());
    if !crate::core::files::accepted_type(&ct) {
        return Fetched::Refused(format!("files of type {ct} are not accepted (C9)"));
    }
    let max = limit(channel, &ct);
    match res.body().limit(max).await {
        Ok(bytes) if bytes.is_empty() => Fetched::Failed("the file is empty".into()),
        Ok(bytes) => Fetched::File { data: bytes.to_vec(), content_type: ct },
        Err(awc::error::PayloadError::Overflow) => too_large(channel, &ct, max as u64 + 1),
        Err(e) => Fetched::Retry(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_open_narrow_and_close_at_their_edges() {
        let now = Utc::now();
        let ago = |h: i64| Some(now - chrono::Duration::hours(h));
        assert_eq!(window(Channel::Whatsapp, ago(23), now), Window::Open);
        assert_eq!(window(Channel::Whatsapp, ago(24), now), Window::TemplateOnly);
        assert_eq!(window(Channel::Whatsapp, None, now), Window::TemplateOnly, "a customer who never wrote");
        assert_eq!(window(Channel::Instagram, ago(23), now), Window::Open);
        assert_eq!(window(Channel::Messenger, ago(24), now), Window::HumanAgent);
        assert_eq!(window(Channel::Messenger, ago(7 * 24 - 1), now), Window::HumanAgent);
        assert_eq!(window(Channel::Messenger, ago(7 * 24), now), Window::Closed);
        assert_eq!(window(Channel::Telegram, ago(1000), now), Window::Open);
        assert_eq!(window_refusal(Window::TemplateOnly, MessageKind::Template), None);
        assert!(window_refusal(Window::TemplateOnly, MessageKind::Image).is_some());
        assert_eq!(window_refusal(Window::HumanAgent, MessageKind::Text), None);
    }

    #[test]
    fn content_types_lose_their_parameters() {
        assert_eq!(essence("Audio/OGG; codecs=opus"), "audio/ogg");
        assert_eq!(essence(""), "");
    }

    #[test]
    fn a_multipart_body_is_rfc_7578() {
        let (ct, body) = multipart(&[Part::field("a", "1"), Part::file("f", "x\"y.txt", "text/plain", b"hi")]);
        let boundary = ct.strip_prefix("multipart/form-data; boundary=").unwrap();
        let expected = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x_y.txt\"\r\nContent-Type: text/plain\r\n\r\nhi\r\n--{boundary}--\r\n"
        );
        assert_eq!(String::from_utf8(body).unwrap(), expected);
    }
}
