//! Outbound (C2): agents' messages go out through the provider's API. A sender task claims due
//! `pending` messages (a lease per attempt, `FOR UPDATE SKIP LOCKED`, so two senders never take
//! the same one), sends each, and records the provider's id and `sent`, or the provider's refusal
//! as `failed` with its error (D8), or — on 429, 5xx or no answer — another attempt later with
//! backoff. Only a crash between the provider's answer and the commit can repeat a send; the
//! providers offer no idempotency key to close that window.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use schema::models::{Message, Service};
use schema::{Channel, MessageStatus, store};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tracing::warn;

use crate::state::AppState;

/// Most attempts before a send is given up as failed.
pub const MAX_ATTEMPTS: i32 = 6;
/// How long an attempt holds its message before another sender may retry it.
const LEASE: Duration = Duration::from_secs(60);

/// Wakes the sender when an agent sends (besides its one-second tick).
#[derive(Clone, Default)]
pub struct OutboxSignal(Arc<Notify>);

impl OutboxSignal {
    /// Something new to send.
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// What a provider said to one send.
#[derive(Debug)]
pub enum SendResult {
    /// Accepted, with the provider's message id.
    Sent(String),
    /// Refused for good: the error code and message shown to the agent.
    Refused(String, String),
    /// Try again later (429, 5xx, network).
    Retry(String),
    /// This channel has no sender yet: left pending.
    Unsupported,
    /// Webchat: the visitor is away; the message stays pending until its widget reconnects.
    AwaitingCustomer,
}

/// Runs the sender until the system stops. Call inside the actix system (awc needs it).
pub fn spawn(state: AppState, signal: OutboxSignal) {
    actix_web::rt::spawn(async move {
        let client = awc::Client::builder().timeout(Duration::from_secs(20)).finish();
        loop {
            let _ = tokio::time::timeout(Duration::from_secs(1), signal.0.notified()).await;
            while let Ok(batch) = claim(&state).await {
                if batch.is_empty() {
                    break;
                }
                for m in batch {
                    send_one(&state, &client, m).await;
                }
            }
        }
    });
}

async fn claim(state: &AppState) -> Result<Vec<Message>, ()> {
    let pool = state.pool.clone();
    let lease = chrono::Duration::from_std(LEASE).unwrap_or(chrono::Duration::seconds(60));
    actix_web::web::block(move || -> Result<Vec<Message>, schema::StoreError> {
        store::claim_outbox(&mut *pool.get()?, Utc::now(), lease, 20)
    })
    .await
    .map_err(|_| ())?
    .map_err(|e| warn!(error = %e, "claiming outbound messages"))
}

async fn send_one(state: &AppState, client: &awc::Client, m: Message) {
    let pool = state.pool.clone();
    let (id, conversation) = (m.id, m.conversation_id);
    let Ok(Ok((service, address))) = actix_web::web::block(move || -> Result<(Service, String), schema::StoreError> {
        let mut c = pool.get()?;
        let conv = schema::models::Conversation::find(&mut c, conversation)?;
        Ok((Service::find(&mut c, conv.service_id)?, conv.customer_address))
    })
    .await
    else {
        return;
    };
    let result = match service.channel {
        Channel::Whatsapp => whatsapp_send(client, &service.provider, &address, &m).await,
        Channel::Telegram => telegram_send(client, &service.provider, &address, &m).await,
        Channel::Sms => twilio_send(client, &service.provider, &address, &m).await,
        Channel::Messenger | Channel::Instagram => meta_send(client, &service.provider, &address, &m).await,
        Channel::Webchat => crate::webchat::send(state, &address, &m).await,
        _ => SendResult::Unsupported,
    };
    let pool = state.pool.clone();
    let attempts = m.attempts;
    let now = Utc::now();
    let changed = actix_web::web::block(move || -> Result<Option<Message>, schema::StoreError> {
        let mut c = pool.get()?;
        match result {
            SendResult::Sent(provider_id) => store::mark_sent(&mut c, id, &provider_id, now),
            SendResult::Refused(code, message) => {
                store::advance_message_status(&mut c, id, MessageStatus::Failed, now, Some((code, message)))
            }
            SendResult::Retry(why) if attempts >= MAX_ATTEMPTS => store::advance_message_status(
                &mut c,
                id,
                MessageStatus::Failed,
                now,
                Some(("gave_up".into(), format!("no answer from the provider after {attempts} attempts: {why}"))),
            ),
            SendResult::Retry(_) => {
                let backoff = chrono::Duration::seconds(1i64 << attempts.clamp(0, 8));
                store::retry_at(&mut c, id, now + backoff)?;
                Ok(None)
            }
            SendResult::AwaitingCustomer => {
                // The widget's resume marks it sent; looked at again hourly meanwhile.
                store::retry_at(&mut c, id, now + chrono::Duration::hours(1))?;
                Ok(None)
            }
            SendResult::Unsupported => {
                // This channel has no sender in this version: looked at again hourly, so an
                // upgrade that adds it sends what waited.
                store::retry_at(&mut c, id, now + chrono::Duration::hours(1))?;
                Ok(None)
            }
        }
    })
    .await;
    if let Ok(Ok(Some(m))) = changed {
        let json = crate::api::messages::message_value(&m, &[]);
        state.engine.publish_message(m.conversation_id, service.id, json).await;
    }
}

/// `POST {api_base_url}/v21.0/{phone_number_id}/messages` with the service's access token.
async fn whatsapp_send(client: &awc::Client, provider: &Value, to: &str, m: &Message) -> SendResult {
    let field = |k: &str| provider_field(provider, k);
    let (base, phone_id, token) = (field("api_base_url"), field("phone_number_id"), field("access_token"));
    if base.is_empty() || phone_id.is_empty() || token.is_empty() {
        return SendResult::Refused("not_configured".into(), "the WhatsApp service has no API credentials".into());
    }
    let Some(text) = m.body.as_deref() else {
        return SendResult::Refused(
            "unsupported_content".into(),
            "only text messages are sent to WhatsApp so far".into(),
        );
    };
    let body = json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
                      "type": "text", "text": {"body": text, "preview_url": false}});
    let url = format!("{base}/v21.0/{phone_id}/messages");
    let (status, answer) = match exchange(client.post(&url).bearer_auth(&token).send_json(&body)).await {
        Ok(answered) => answered,
        Err(retry) => return retry,
    };
    if status.is_success() {
        return match answer.pointer("/messages/0/id").and_then(Value::as_str) {
            Some(id) => SendResult::Sent(id.to_owned()),
            None => SendResult::Retry("no message id in the answer".into()),
        };
    }
    let code = answer.pointer("/error/code").map(|c| c.to_string()).unwrap_or_else(|| status.as_u16().to_string());
    let message = answer
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or(status.canonical_reason().unwrap_or("error"))
        .to_owned();
    refusal_or_retry(status, code, message)
}

/// `POST {api_base_url}/bot{bot_token}/sendMessage` with `{chat_id, text}`.
async fn telegram_send(client: &awc::Client, provider: &Value, chat: &str, m: &Message) -> SendResult {
    let field = |k: &str| provider_field(provider, k);
    let (base, token) = (field("api_base_url"), field("bot_token"));
    if base.is_empty() || token.is_empty() {
        return SendResult::Refused("not_configured".into(), "the Telegram service has no bot token".into());
    }
    let Some(text) = m.body.as_deref() else {
        return SendResult::Refused(
            "unsupported_content".into(),
            "only text messages are sent to Telegram so far".into(),
        );
    };
    let chat_id: Value = chat.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::from(chat));
    let url = format!("{base}/bot{token}/sendMessage");
    let (status, answer) = match exchange(client.post(&url).send_json(&json!({"chat_id": chat_id, "text": text}))).await
    {
        Ok(answered) => answered,
        Err(retry) => return retry,
    };
    if answer.get("ok").and_then(Value::as_bool) == Some(true) {
        return match answer.pointer("/result/message_id").and_then(Value::as_i64) {
            Some(id) => SendResult::Sent(format!("{chat}:{id}")),
            None => SendResult::Retry("no message_id in the answer".into()),
        };
    }
    let code = answer.get("error_code").map(|c| c.to_string()).unwrap_or_else(|| status.as_u16().to_string());
    let message = answer.get("description").and_then(Value::as_str).unwrap_or("error").to_owned();
    refusal_or_retry(status, code, message)
}

/// `POST {api_base_url}/2010-04-01/Accounts/{account_sid}/Messages.json`, form-encoded, with basic
/// auth and our webhook as the status callback.
async fn twilio_send(client: &awc::Client, provider: &Value, to: &str, m: &Message) -> SendResult {
    let field = |k: &str| provider_field(provider, k);
    let (base, sid, token, from) =
        (field("api_base_url"), field("account_sid"), field("auth_token"), field("phone_number"));
    if base.is_empty() || sid.is_empty() || token.is_empty() || from.is_empty() {
        return SendResult::Refused("not_configured".into(), "the SMS service has no Twilio credentials".into());
    }
    let Some(text) = m.body.as_deref() else {
        return SendResult::Refused("unsupported_content".into(), "only text is sent by SMS".into());
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

/// Messenger / Instagram Send API: `POST {api_base_url}/v21.0/{page_id | account_id}/messages`
/// with `{recipient: {id}, messaging_type: "RESPONSE", message: {text}}`.
async fn meta_send(client: &awc::Client, provider: &Value, to: &str, m: &Message) -> SendResult {
    let field = |k: &str| provider_field(provider, k);
    let (base, token) = (field("api_base_url"), field("access_token"));
    let sender = Some(field("page_id")).filter(|p| !p.is_empty()).unwrap_or_else(|| field("account_id"));
    if base.is_empty() || token.is_empty() || sender.is_empty() {
        return SendResult::Refused("not_configured".into(), "the service has no Send API credentials".into());
    }
    let Some(text) = m.body.as_deref() else {
        return SendResult::Refused("unsupported_content".into(), "only text messages are sent so far".into());
    };
    let body = json!({"recipient": {"id": to}, "messaging_type": "RESPONSE", "message": {"text": text}});
    let url = format!("{base}/v21.0/{sender}/messages");
    let (status, answer) = match exchange(client.post(&url).bearer_auth(&token).send_json(&body)).await {
        Ok(answered) => answered,
        Err(retry) => return retry,
    };
    if status.is_success() {
        return match answer.get("message_id").and_then(Value::as_str) {
            Some(id) => SendResult::Sent(id.to_owned()),
            None => SendResult::Retry("no message_id in the answer".into()),
        };
    }
    let code = answer.pointer("/error/code").map(|c| c.to_string()).unwrap_or_else(|| status.as_u16().to_string());
    let message = answer.pointer("/error/message").and_then(Value::as_str).unwrap_or("error").to_owned();
    refusal_or_retry(status, code, message)
}

/// A string setting of a service's provider, without a trailing slash.
fn provider_field(provider: &Value, key: &str) -> String {
    provider.get(key).and_then(Value::as_str).unwrap_or("").trim_end_matches('/').to_owned()
}

/// A provider's error answer: rate limits and server errors are retried, the rest is final.
fn refusal_or_retry(status: awc::http::StatusCode, code: String, message: String) -> SendResult {
    if status.as_u16() == 429 || status.is_server_error() {
        SendResult::Retry(format!("{code} {message}"))
    } else {
        SendResult::Refused(code, message)
    }
}

/// Sends a request and reads the provider's JSON answer; one that got no answer is retried.
async fn exchange(request: awc::SendClientRequest) -> Result<(awc::http::StatusCode, Value), SendResult> {
    let mut res = request.await.map_err(|e| SendResult::Retry(e.to_string()))?;
    let answer = res.json().limit(1 << 20).await.unwrap_or(Value::Null);
    Ok((res.status(), answer))
}
