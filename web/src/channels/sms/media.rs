//! Twilio MMS media (C1, C9): each `MediaUrl` of the webhook, fetched with the account's basic
//! auth when it is Twilio's own API.

use schema::models::{MediaFetch, Message, Service};
use serde_json::Value;

use crate::channels::media::{Fetched, Source, download, field, string};

/// The files an inbound message carries, read from its stored payload.
pub fn sources(m: &Message) -> Vec<Source> {
    let (s, p) = (string, &m.payload);
    p.get("media")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|x| Some(Source { source: s(x, "url")?, content_type: s(x, "content_type"), name: None }))
        .collect()
}

/// Fetches the file at `f.source`.
pub async fn fetch(client: &awc::Client, service: &Service, f: &MediaFetch, announced: Option<&str>) -> Fetched {
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
