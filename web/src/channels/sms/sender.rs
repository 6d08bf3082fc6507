//! Sending through Twilio's Messages API (C2).

use crate::core::error::Code;
use schema::models::Message;
use serde_json::Value;

use crate::channels::send::{exchange, provider_field, refusal_or_retry};
use crate::core::outbox::{Outgoing, SendCall, SendResult, Sender};

/// This channel's [`Sender`].
pub struct TwilioSender;

impl Sender for TwilioSender {
    fn send<'a>(&'a self, call: SendCall<'a>) -> futures_util::future::LocalBoxFuture<'a, SendResult> {
        Box::pin(twilio_send(call.client, &call.service.provider, call.address, call.message, call.out))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// `POST {api_base_url}/2010-04-01/Accounts/{account_sid}/Messages.json`, form-encoded, with basic
/// auth and our webhook as the status callback.
async fn twilio_send(client: &awc::Client, provider: &Value, to: &str, m: &Message, out: &Outgoing<'_>) -> SendResult {
    let field = |k: &str| provider_field(provider, k);
    let (base, sid, token, from) =
        (field("api_base_url"), field("account_sid"), field("auth_token"), field("phone_number"));
    if base.is_empty() || sid.is_empty() || token.is_empty() || from.is_empty() {
        return SendResult::refused(Code::NotConfigured, "the SMS service has no Twilio credentials");
    }
    if !out.files.is_empty() {
        return SendResult::refused(
            Code::MediaNotSupported,
            "SMS carries text only: MMS needs the file at a public URL, which this installation does not publish",
        );
    }
    let Some(text) = m.body.as_deref() else {
        return SendResult::refused(Code::UnsupportedContent, "only text is sent by SMS");
    };
    let mut form = vec![("To", to.to_owned()), ("From", from), ("Body", text.to_owned())];
    let callback = field("webhook_url");
    if !callback.is_empty() {
        form.push(("StatusCallback", callback));
    }
    let url = format!("{base}/2010-04-01/Accounts/{sid}/Messages.json");
    let (status, answer) = match exchange(client.post(&url).basic_auth(&sid, &token).send_form(&form)).await {
        Ok(answered) => answered,
        Err(retry) => return retry,
    };
    if status.is_success() {
        return match answer.get("sid").and_then(Value::as_str) {
            Some(id) => SendResult::Sent(id.to_owned()),
            None => SendResult::Retry("no sid in the answer".into()),
        };
    }
    let code = answer.get("code").map(|c| c.to_string()).unwrap_or_else(|| status.as_u16().to_string());
    let message = answer.get("message").and_then(Value::as_str).unwrap_or("error").to_owned();
    refusal_or_retry(status, code, message)
}
