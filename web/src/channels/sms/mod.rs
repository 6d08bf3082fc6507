//! SMS through Twilio (C1): the form-encoded webhook with `X-Twilio-Signature` (base64 of
//! HMAC-SHA1 over the webhook's URL followed by every POST parameter, sorted, name then value,
//! keyed with the account's auth token), routed to the service whose number is `To`. The same
//! endpoint takes the status callbacks of the messages we send, whose `From` is that number.

pub mod media;
pub mod sender;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, post, web};
use base64::Engine as _;
use engine::ingest::InboundMessage;
use hmac::{KeyInit, Mac};
use schema::{Channel, MessageKind, MessageStatus, store};
use serde_json::{Map, Value, json};

use crate::core::db::db;
use crate::core::error::{ApiError, Code};
use crate::core::state::AppState;

/// Twilio's webhooks are small forms.
pub const MAX_BODY: usize = 256 * 1024;

/// The `X-Twilio-Signature` of a request to `url` with these POST parameters.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut data = url.to_owned();
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes keys of any size");
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn signature_valid(auth_token: &str, url: &str, params: &[(String, String)], header: &str) -> bool {
    crate::core::secrets::ct_eq(signature(auth_token, url, params).as_bytes(), header.trim().as_bytes())
}

/// An empty TwiML answer: nothing to say back automatically.
fn twiml() -> HttpResponse {
    HttpResponse::Ok().content_type("text/xml").body("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>")
}

/// An E.164 number (`+` optional) or a short code, as Twilio writes a sender.
fn is_phone(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or(s);
    (3..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Receives an inbound SMS or a status callback.
#[post("/webhooks/twilio/sms")]
pub async fn receive(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let header = super::signature_header(&req, "X-Twilio-Signature")?;
    let body = super::read_body(&state, &req, payload, MAX_BODY).await?;
    let params: Vec<(String, String)> =
        serde_urlencoded::from_bytes(&body).map_err(|e| ApiError::bad_request(Code::InvalidForm, e.to_string()))?;
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    // Our number is `To` of a customer's message and `From` of a status callback of one we sent.
    let callback = get("MessageStatus").is_some_and(|w| w != "received");
    let ours = if callback { get("From").or(get("To")) } else { get("To") };
    let ours = ours.ok_or_else(|| ApiError::bad_request(Code::InvalidPayload, "To is required"))?.trim().to_owned();
    let service = crate::core::directory::services_by_keys(&state, Channel::Sms, std::slice::from_ref(&ours))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, Code::UnknownNumber, "no SMS service has this number"))?;
    let token = service.provider.get("auth_token").and_then(Value::as_str).unwrap_or("");
    let url = service.provider.get("webhook_url").and_then(Value::as_str).unwrap_or("");
    if token.is_empty() || url.is_empty() || !signature_valid(token, url, &params, &header) {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, Code::InvalidSignature, "the signature does not match"));
    }
    let sid = get("MessageSid").or_else(|| get("SmsSid")).unwrap_or("").to_owned();
    if sid.len() < 2 || sid.len() > 64 || !sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ApiError::bad_request(Code::InvalidPayload, "MessageSid is required (letters and digits)"));
    }
    // A status callback of a message we sent.
    if let Some(word) = get("MessageStatus").filter(|w| *w != "received") {
        let status = match word {
            "sent" => MessageStatus::Sent,
            "delivered" => MessageStatus::Delivered,
            "read" => MessageStatus::Read,
            "failed" | "undelivered" => MessageStatus::Failed,
            _ => return Ok(twiml()), // queued, sending, accepted: nothing to show yet
        };
        let error = (status == MessageStatus::Failed)
            .then(|| (get("ErrorCode").unwrap_or(word).to_owned(), get("ErrorMessage").unwrap_or(word).to_owned()));
        let service_id = service.id;
        let changed = db(&state, move |c| match store::message_by_provider_id(c, service_id, &sid)? {
            Some(m) => store::advance_message_status(c, m.id, status, chrono::Utc::now(), error),
            None => Ok(None),
        })
        .await?;
        if let Some(m) = changed {
            state.engine.publish_message(m.conversation_id, service_id, m).await;
        }
        return Ok(twiml());
    }
    let from = get("From")
        .map(str::trim)
        .filter(|f| is_phone(f))
        .ok_or_else(|| ApiError::bad_request(Code::InvalidPayload, "From must be a phone number or short code"))?;
    let media: usize = get("NumMedia").and_then(|n| n.parse().ok()).unwrap_or(0).min(10);
    if get("Body").is_none() && media == 0 {
        return Err(ApiError::bad_request(Code::InvalidPayload, "Body is required when there is no media"));
    }
    let mut payload = Map::new();
    if media > 0 {
        let items: Vec<Value> = (0..media)
            .map(|i| json!({"url": get(&format!("MediaUrl{i}")), "content_type": get(&format!("MediaContentType{i}"))}))
            .collect();
        payload.insert("media".into(), Value::Array(items));
    }
    let inbound = InboundMessage {
        service: service.id,
        channel: Channel::Sms,
        address: from.to_owned(),
        customer_name: None,
        customer_id: None,
        provider_message_id: Some(sid),
        kind: if media > 0 && get("Body").unwrap_or("").is_empty() { MessageKind::Image } else { MessageKind::Text },
        body: get("Body").map(|b| b.chars().take(65_536).collect()),
        payload: Value::Object(payload),
        sent_at: None,
        subject: None,
    };
    let files = super::media::may_carry_files(&inbound).then(|| inbound.provider_message_id.clone()).flatten();
    super::ingest_webhook(&state, inbound).await?;
    if let Some(id) = files {
        super::media::request_fetches(&state, &service, &id).await?;
    }
    Ok(twiml())
}

/// Twilio SMS/MMS: no reply window.
pub struct Twilio;

impl crate::channels::Provider for Twilio {
    super::media_in_folder!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twilios_documented_example_signs_as_documented() {
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(signature("12345", url, &params), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        assert!(signature_valid("12345", url, &params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
        assert!(!signature_valid("12346", url, &params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
    }
}
