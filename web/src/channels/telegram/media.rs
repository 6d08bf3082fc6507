//! Telegram media (C1, C9): `getFile` gives the file's path, then the bytes from the bot's file URL.

use schema::MessageKind;
use schema::models::{MediaFetch, Message, Service};
use serde_json::Value;

use crate::channels::media::{Fetched, Source, download, field, json_get, string};

/// The file an inbound message carries, read from its stored payload.
pub fn sources(m: &Message) -> Vec<Source> {
    let (s, p) = (string, &m.payload);
    s(p, "file_id")
        .map(|id| {
            let ct = s(p, "mime_type").or_else(|| (m.kind == MessageKind::Image).then(|| "image/jpeg".to_owned()));
            Source { source: id, content_type: ct, name: s(p, "file_name") }
        })
        .into_iter()
        .collect()
}

/// Fetches the file of `file_id` `f.source`.
pub async fn fetch(client: &awc::Client, service: &Service, f: &MediaFetch, announced: Option<&str>) -> Fetched {
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
