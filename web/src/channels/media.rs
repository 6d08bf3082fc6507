//! The media fetcher of the messaging channels (C1, C9). Each provider says which files a stored
//! message carries and how to fetch one (its folder's `media.rs`, behind [`super::Provider`]);
//! this module records, schedules, retries, checks and stores them.
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

use std::time::Duration;

use chrono::Utc;
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

/// A file a stored message points at: the provider's handle, and what the webhook said of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub source: String,
    pub content_type: Option<String>,
    pub name: Option<String>,
}

/// A non-empty string field of a provider's JSON.
pub(super) fn string(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).filter(|x| !x.is_empty()).map(str::to_owned)
}

/// The files an inbound message carries, read from its stored payload by its provider.
pub fn sources(channel: Channel, m: &Message) -> Vec<Source> {
    super::provider(channel).map_or_else(Vec::new, |p| p.media(m))
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
pub enum Fetched {
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
pub(super) fn field(service: &Service, key: &str) -> String {
    service.provider.get(key).and_then(Value::as_str).unwrap_or("").trim_end_matches('/').to_owned()
}

async fn fetch(client: &awc::Client, service: &Service, f: &MediaFetch, announced: Option<&str>) -> Fetched {
    match super::provider(service.channel) {
        Some(p) => p.fetch(client, service, f, announced).await,
        None => Fetched::Failed(format!("{} has no media to fetch", service.channel)),
    }
}

/// The largest file of this type the channel takes (C9).
pub(super) fn limit(channel: Channel, content_type: &str) -> usize {
    crate::core::files::channel_limit(channel, content_type)
}

pub(super) fn too_large(channel: Channel, content_type: &str, size: u64) -> Fetched {
    Fetched::Refused(format!(
        "the file ({size} bytes) is larger than the {} MiB {channel} accepts for {content_type} (C9)",
        limit(channel, content_type) / 1024 / 1024
    ))
}

/// A provider's JSON answer; errors as what to do next.
pub(super) async fn json_get(req: awc::ClientRequest) -> Result<Value, Fetched> {
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
pub(super) async fn download(req: awc::ClientRequest, channel: Channel, content_type: Option<&str>) -> Fetched {
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
