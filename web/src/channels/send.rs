//! What the providers' senders share: reading a provider setting, telling a refusal from a retry,
//! reading an answer, recording a file that went out, the reply window just before sending, a
//! `multipart/form-data` body.

use crate::core::error::Code;
use schema::models::{Attachment, Message};
use schema::store;
use serde_json::Value;

use super::window::{Window, window_refusal};
use crate::core::outbox::{Outgoing, SendResult};
use crate::core::state::AppState;

/// Records that one file went out as the provider's message `provider_id` (a retry skips it).
pub async fn file_sent(state: &AppState, file: &Attachment, provider_id: &str) -> Result<(), SendResult> {
    let (pool, file, provider_id) = (state.pool.clone(), file.id, provider_id.to_owned());
    actix_web::web::block(move || -> Result<(), schema::StoreError> {
        store::mark_attachment_sent(&mut *pool.get()?, file, &provider_id)
    })
    .await
    .map_err(|e| SendResult::Retry(e.to_string()))?
    .map_err(|e| SendResult::Retry(e.to_string()))
}

/// Whether the text rides as the first file's caption (else it is a message of its own).
pub fn text_in_caption(m: &Message, out: &Outgoing<'_>, takes_caption: impl Fn(&str) -> bool) -> bool {
    m.body.is_some() && out.files.first().is_some_and(|(a, _)| takes_caption(&a.content_type))
}

/// The window refusal of a message about to go out, if any.
pub fn outside(window: Window, m: &Message) -> Option<SendResult> {
    window_refusal(window, m.kind).map(|why| SendResult::refused(Code::OutsideWindow, why))
}

/// A string setting of a service's provider, without a trailing slash.
pub fn provider_field(provider: &Value, key: &str) -> String {
    provider.get(key).and_then(Value::as_str).unwrap_or("").trim_end_matches('/').to_owned()
}

/// A provider's error answer: rate limits and server errors are retried, the rest is final.
pub fn refusal_or_retry(status: awc::http::StatusCode, code: String, message: String) -> SendResult {
    if status.as_u16() == 429 || status.is_server_error() {
        SendResult::Retry(format!("{code} {message}"))
    } else {
        SendResult::Refused(code, message)
    }
}

/// Sends a request and reads the provider's JSON answer; one that got no answer is retried.
pub async fn exchange(request: awc::SendClientRequest) -> Result<(awc::http::StatusCode, Value), SendResult> {
    let mut res = request.await.map_err(|e| SendResult::Retry(e.to_string()))?;
    let answer = res.json().limit(1 << 20).await.unwrap_or(Value::Null);
    Ok((res.status(), answer))
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

#[cfg(test)]
mod tests {
    use super::*;

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
