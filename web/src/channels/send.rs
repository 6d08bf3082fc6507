//! What the providers' senders share: reading a provider setting, telling a refusal from a retry,
//! reading an answer, recording a file that went out, the reply window just before sending.

use crate::core::error::Code;
use schema::models::{Attachment, Message};
use schema::store;
use serde_json::Value;

use super::media::{Window, window_refusal};
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
