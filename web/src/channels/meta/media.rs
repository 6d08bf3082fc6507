//! Messenger and Instagram media (C1, C9): attachments are CDN URLs, fetched without credentials.

use schema::models::{MediaFetch, Message, Service};
use serde_json::Value;

use crate::channels::media::{Fetched, Source, download, string};

/// The files an inbound message carries, read from its stored payload.
pub fn sources(m: &Message) -> Vec<Source> {
    let (s, p) = (string, &m.payload);
    p.get("attachments")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|a| matches!(a.get("type").and_then(Value::as_str), Some("image" | "audio" | "video" | "file")))
        .filter_map(|a| Some(Source { source: s(a.get("payload")?, "url")?, content_type: None, name: s(a, "name") }))
        .collect()
}

/// Fetches the file at `f.source`.
pub async fn fetch(client: &awc::Client, service: &Service, f: &MediaFetch, announced: Option<&str>) -> Fetched {
    download(client.get(&f.source), service.channel, announced).await
}
