//! WhatsApp media (C1, C9): a message's file is a media id; the Graph API gives its short-lived
//! URL and facts (`GET /{media_id}`), then the bytes, both with the access token.

use schema::MessageKind;
use schema::models::{MediaFetch, Message, Service};
use serde_json::Value;

use crate::channels::media::{Fetched, Source, download, field, json_get, limit, string, too_large};
use crate::core::files::essence;

/// The file an inbound message carries, read from its stored payload.
pub fn sources(m: &Message) -> Vec<Source> {
    let (s, p) = (string, &m.payload);
    match m.kind {
        MessageKind::Image | MessageKind::Audio | MessageKind::Video | MessageKind::Document | MessageKind::Sticker => {
            s(p, "id")
                .map(|id| Source { source: id, content_type: s(p, "mime_type"), name: s(p, "filename") })
                .into_iter()
                .collect()
        }
        _ => Vec::new(),
    }
}

/// Fetches the file of media id `f.source`.
pub async fn fetch(client: &awc::Client, service: &Service, f: &MediaFetch, announced: Option<&str>) -> Fetched {
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
