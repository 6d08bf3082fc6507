//! Outbound (C2): agents' messages go out through the provider's API. A sender task claims due
//! `pending` messages (a lease per attempt, `FOR UPDATE SKIP LOCKED`, so two senders never take
//! the same one) up to [`CLAIM`] at once, sends them concurrently — up to [`IN_FLIGHT`]
//! conversations at once, the messages of one conversation one at a time in their order — and
//! records for each the provider's id and `sent`, or the provider's refusal
//! as `failed` with its error (D8), or — on 429, 5xx or no answer — another attempt later with
//! backoff. Only a crash between the provider's answer and the commit can repeat a send; the
//! providers offer no idempotency key to close that window.
//!
//! Media and templates (C7, C9): each file of a message goes out as its own provider message
//! (WhatsApp: uploaded to `/{phone_number_id}/media`, then sent by id; Messenger/Instagram: sent
//! with the file as multipart `filedata`; Telegram: `sendPhoto`/`sendVoice`/`sendDocument`
//! multipart), the text as the first file's caption where the kind takes one, else as a message
//! of its own after the files. A file that went out is marked with the provider's id, so a retry
//! sends only what is left. SMS carries no files. The reply window is checked again just before
//! sending, since it may close while a message waits: WhatsApp outside 24 hours sends only
//! templates; Messenger/Instagram tag a late reply `HUMAN_AGENT` and send nothing after 7 days.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use schema::models::{Attachment, Message};
use schema::store::OutboxContext;
use schema::{Channel, Connection, MessageId, MessageStatus, store};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tracing::warn;

use super::media::{Part, Window, multipart, window, window_refusal};
use crate::state::AppState;

/// Most attempts before a send is given up as failed.
pub const MAX_ATTEMPTS: i32 = 6;
/// How long an attempt holds its message before another sender may retry it.
pub const LEASE: Duration = Duration::from_secs(60);
/// Most messages claimed at once (one `UPDATE … FOR UPDATE SKIP LOCKED`).
const CLAIM: i64 = 128;
/// Most conversations sending at once; the messages of one conversation go one at a time, in order.
const IN_FLIGHT: usize = 64;

/// Hands the sender the messages agents just stored (besides its one-second scan for what is
/// due: retries, and what a previous process left).
#[derive(Clone, Default)]
pub struct OutboxSignal(Arc<Ready>);

#[derive(Default)]
struct Ready {
    notify: Notify,
    ids: std::sync::Mutex<Vec<MessageId>>,
    handed: std::sync::Mutex<Vec<Handed>>,
}

/// A message an agent just stored, with what sending it needs as the request that stored it had
/// them. It was stored already claimed — its first attempt counted and leased ([`LEASE`]) — so no
/// other sender takes it and the sender sends it without a statement; if this process dies before
/// recording the send, the lease runs out (or the next start releases it) and it is sent then.
pub struct Handed {
    pub message: Message,
    pub conversation: schema::models::Conversation,
    pub service: schema::models::Service,
    /// The customer's last message, for the reply window.
    pub last_customer_at: Option<DateTime<Utc>>,
}

impl OutboxSignal {
    /// A message was committed `pending` and due now: the sender claims it by id, without
    /// scanning for due messages.
    pub fn ready(&self, id: MessageId) {
        if let Ok(mut ids) = self.0.ids.lock() {
            ids.push(id);
        }
        self.0.notify.notify_one();
    }

    /// A message stored claimed, with its context: sent without a statement before it.
    pub fn hand(&self, handed: Handed) {
        if let Ok(mut all) = self.0.handed.lock() {
            all.push(handed);
        }
        self.0.notify.notify_one();
    }

    fn take(&self) -> Vec<MessageId> {
        self.0.ids.lock().map(|mut ids| std::mem::take(&mut *ids)).unwrap_or_default()
    }

    /// The handed messages, with their context.
    fn take_handed(&self) -> Option<(Vec<Message>, OutboxContext)> {
        let handed = self.0.handed.lock().map(|mut all| std::mem::take(&mut *all)).unwrap_or_default();
        if handed.is_empty() {
            return None;
        }
        let mut context = OutboxContext::default();
        let mut batch = Vec::with_capacity(handed.len());
        for h in handed {
            let key = (h.service.id, h.conversation.customer_address.clone());
            if let Some(at) = h.last_customer_at {
                let known = context.last_customer_at.entry(key).or_insert(at);
                *known = (*known).max(at);
            }
            context.services.insert(h.service.id, h.service);
            context.conversations.insert(h.conversation.id, h.conversation);
            batch.push(h.message);
        }
        Some((batch, context))
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

/// What a sender needs besides the message: the customer's last message (the window) and the
/// message's files with their bytes.
struct Outgoing<'a> {
    last_customer_at: Option<DateTime<Utc>>,
    files: &'a [(Attachment, Vec<u8>)],
}

impl Outgoing<'_> {
    /// The files not sent yet (a retry skips the others).
    fn unsent(&self) -> impl Iterator<Item = &(Attachment, Vec<u8>)> {
        self.files.iter().filter(|(a, _)| a.provider_media_id.is_none())
    }
}

/// Runs the sender until the system stops. Call inside the actix system (awc needs it).
pub fn spawn(state: AppState, signal: OutboxSignal) {
    let recorder = Recorder::spawn(state.clone());
    actix_web::rt::spawn(async move {
        let client = awc::Client::builder().timeout(Duration::from_secs(20)).finish();
        let mut scanned = std::time::Instant::now() - SCAN_EVERY;
        loop {
            let _ = tokio::time::timeout(SCAN_EVERY, signal.0.notify.notified()).await;
            loop {
                // What agents just sent, handed over or by id; the scan for everything due once a
                // second.
                let ready = signal.take();
                let claimed = if let Some(handed) = signal.take_handed() {
                    // Ids handed without their context wait for the next turn of this loop.
                    if let Ok(mut ids) = signal.0.ids.lock() {
                        ids.extend(ready);
                    }
                    Ok(handed)
                } else if !ready.is_empty() {
                    claim(&state, Claim::These(ready)).await
                } else if scanned.elapsed() >= SCAN_EVERY {
                    scanned = std::time::Instant::now();
                    claim(&state, Claim::Due).await
                } else {
                    break;
                };
                let Ok((batch, context)) = claimed else { break };
                if batch.is_empty() {
                    continue;
                }
                use futures_util::StreamExt as _;
                let context = &context;
                futures_util::stream::iter(by_conversation(batch))
                    .for_each_concurrent(IN_FLIGHT, |messages| {
                        let (state, client, recorder) = (&state, &client, &recorder);
                        async move {
                            for m in messages {
                                send_one(state, client, recorder, context, m).await;
                            }
                        }
                    })
                    .await;
            }
        }
    });
}

/// How often the sender looks for due messages nobody handed it (retries after a backoff, what
/// a previous process left).
const SCAN_EVERY: Duration = Duration::from_secs(1);

/// Which messages a claim takes.
enum Claim {
    /// These, if still pending and due (by primary key).
    These(Vec<MessageId>),
    /// Any due, oldest first (an index scan).
    Due,
}

/// A claimed batch as one list per conversation, each in the conversation's order (the claim's
/// `UPDATE … RETURNING` keeps no order), the conversations in the order of their oldest message.
fn by_conversation(mut batch: Vec<Message>) -> Vec<Vec<Message>> {
    batch.sort_by_key(|m| (m.created_at, m.id));
    let mut groups: Vec<Vec<Message>> = Vec::new();
    let mut index: std::collections::HashMap<schema::ConversationId, usize> = std::collections::HashMap::new();
    for m in batch {
        match index.get(&m.conversation_id) {
            Some(&i) => groups[i].push(m),
            None => {
                index.insert(m.conversation_id, groups.len());
                groups.push(vec![m]);
            }
        }
    }
    groups
}

/// Claims due messages and loads what sending them needs, in one trip to the database.
async fn claim(state: &AppState, which: Claim) -> Result<(Vec<Message>, OutboxContext), ()> {
    let pool = state.pool.clone();
    let lease = chrono::Duration::from_std(LEASE).unwrap_or(chrono::Duration::seconds(60));
    actix_web::web::block(move || -> Result<(Vec<Message>, OutboxContext), schema::StoreError> {
        let mut c = pool.get()?;
        let batch = match which {
            Claim::These(ids) => store::claim_outbox_ids(&mut c, &ids, Utc::now(), lease)?,
            Claim::Due => store::claim_outbox(&mut c, Utc::now(), lease, CLAIM)?,
        };
        let context = store::outbox_context(&mut c, &batch, Utc::now(), super::media::STANDARD_WINDOW)?;
        Ok((batch, context))
    })
    .await
    .map_err(|_| ())?
    .map_err(|e| warn!(error = %e, "claiming outbound messages"))
}

async fn send_one(state: &AppState, client: &awc::Client, recorder: &Recorder, context: &OutboxContext, m: Message) {
    let (Some(conv), files) = (context.conversations.get(&m.conversation_id), context.files.get(&m.id)) else {
        return;
    };
    let Some(service) = context.services.get(&conv.service_id) else { return };
    let address = conv.customer_address.as_str();
    let files = files.map_or(&[][..], Vec::as_slice);
    let last_customer_at = context.last_customer_at.get(&(conv.service_id, conv.customer_address.clone())).copied();
    let out = Outgoing { last_customer_at, files };
    let result = match service.channel {
        Channel::Whatsapp => whatsapp_send(state, client, &service.provider, address, &m, &out).await,
        Channel::Telegram => telegram_send(state, client, &service.provider, address, &m, &out).await,
        Channel::Sms => twilio_send(client, &service.provider, address, &m, &out).await,
        Channel::Messenger | Channel::Instagram => meta_send(state, client, &service.provider, address, &m, &out).await,
        Channel::Email => super::email::smtp::send(state, service, address, &m).await,
        Channel::Webchat => {
            let attached: Vec<Attachment> = out.files.iter().map(|(a, _)| a.clone()).collect();
            crate::webchat::send(state, address, &m, &attached).await
        }
        _ => SendResult::Unsupported,
    };
    if let Some(changed) = recorder.record(m.id, m.attempts, result).await {
        state.counters.outbound(service.channel, changed.status);
        let attached: Vec<Attachment> = out.files.iter().map(|(a, _)| a.clone()).collect();
        let published = engine::PublishedMessage::new(changed, attached);
        state.engine.publish_message(m.conversation_id, service.id, published).await;
    }
}

/// Records what the providers answered: every answer waiting is written in one transaction (the
/// accepted sends in one statement), so a busy sender costs the database a few statements per
/// batch of answers instead of a transaction per message. Each sender waits for its answer's
/// commit before the conversation's next message goes out.
#[derive(Clone)]
struct Recorder {
    tx: tokio::sync::mpsc::UnboundedSender<Answer>,
}

struct Answer {
    id: schema::MessageId,
    attempts: i32,
    result: SendResult,
    reply: tokio::sync::oneshot::Sender<Option<Message>>,
}

/// Most answers written in one transaction.
const RECORD_BATCH: usize = 256;

impl Recorder {
    fn spawn(state: AppState) -> Recorder {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Answer>();
        actix_web::rt::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut answers = vec![first];
                while answers.len() < RECORD_BATCH {
                    match rx.try_recv() {
                        Ok(a) => answers.push(a),
                        Err(_) => break,
                    }
                }
                let (work, replies): (Vec<_>, Vec<_>) =
                    answers.into_iter().map(|a| ((a.id, a.attempts, a.result), (a.id, a.reply))).unzip();
                let pool = state.pool.clone();
                let written = actix_web::web::block(move || -> Result<Vec<Message>, schema::StoreError> {
                    let mut c = pool.get()?;
                    // Accepted sends alone are one statement, atomic without a transaction.
                    if work.iter().all(|(_, _, result)| matches!(result, SendResult::Sent(_))) {
                        write_answers(&mut c, work, Utc::now())
                    } else {
                        c.transaction(|c| write_answers(c, work, Utc::now()))
                    }
                })
                .await;
                let mut changed: std::collections::HashMap<schema::MessageId, Message> = match written {
                    Ok(Ok(changed)) => changed.into_iter().map(|m| (m.id, m)).collect(),
                    // Not recorded: the lease runs out and the message is sent again.
                    Ok(Err(e)) => {
                        warn!(error = %e, "recording outbound answers");
                        Default::default()
                    }
                    Err(_) => Default::default(),
                };
                for (id, reply) in replies {
                    let _ = reply.send(changed.remove(&id));
                }
            }
        });
        Recorder { tx }
    }

    /// Records one answer; the message as changed when its status moved.
    async fn record(&self, id: schema::MessageId, attempts: i32, result: SendResult) -> Option<Message> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.tx.send(Answer { id, attempts, result, reply }).ok()?;
        answer.await.ok().flatten()
    }
}

/// Writes a batch of answers (inside a transaction); the messages whose status moved.
fn write_answers(
    c: &mut schema::PgConnection,
    answers: Vec<(schema::MessageId, i32, SendResult)>,
    now: DateTime<Utc>,
) -> Result<Vec<Message>, schema::StoreError> {
    let mut sent = Vec::new();
    let mut changed = Vec::new();
    for (id, attempts, result) in answers {
        match result {
            SendResult::Sent(provider_id) => sent.push((id, provider_id)),
            SendResult::Refused(code, message) => {
                changed.extend(store::advance_message_status(c, id, MessageStatus::Failed, now, Some((code, message)))?)
            }
            SendResult::Retry(why) if attempts >= MAX_ATTEMPTS => changed.extend(store::advance_message_status(
                c,
                id,
                MessageStatus::Failed,
                now,
                Some(("gave_up".into(), format!("no answer from the provider after {attempts} attempts: {why}"))),
            )?),
            SendResult::Retry(_) => {
                let backoff = chrono::Duration::seconds(1i64 << attempts.clamp(0, 8));
                store::retry_at(c, id, now + backoff)?;
            }
            // Webchat: the widget's resume marks it sent; looked at again hourly meanwhile.
            // Unsupported: this channel has no sender in this version: looked at again hourly, so
            // an upgrade that adds it sends what waited.
            SendResult::AwaitingCustomer | SendResult::Unsupported => {
                store::retry_at(c, id, now + chrono::Duration::hours(1))?;
            }
        }
    }
    changed.extend(store::mark_many_sent(c, &sent, now)?);
    Ok(changed)
}

/// Records that one file went out as the provider's message `provider_id` (a retry skips it).
async fn file_sent(state: &AppState, file: &Attachment, provider_id: &str) -> Result<(), SendResult> {
    let (pool, file, provider_id) = (state.pool.clone(), file.id, provider_id.to_owned());
    actix_web::web::block(move || -> Result<(), schema::StoreError> {
        store::mark_attachment_sent(&mut *pool.get()?, file, &provider_id)
    })
    .await
    .map_err(|e| SendResult::Retry(e.to_string()))?
    .map_err(|e| SendResult::Retry(e.to_string()))
}

/// Whether the text rides as the first file's caption (else it is a message of its own).
fn text_in_caption(m: &Message, out: &Outgoing<'_>, takes_caption: impl Fn(&str) -> bool) -> bool {
    m.body.is_some() && out.files.first().is_some_and(|(a, _)| takes_caption(&a.content_type))
}

/// The window refusal of a message about to go out, if any.
fn outside(window: Window, m: &Message) -> Option<SendResult> {
    window_refusal(window, m.kind).map(|why| SendResult::Refused(super::media::OUTSIDE_WINDOW.into(), why.into()))
}

/// The WhatsApp message type of a file.
fn whatsapp_type(content_type: &str) -> &'static str {
    match super::media::essence(content_type).as_str() {
        "image/webp" => "sticker",
        t if t.starts_with("image/") => "image",
        t if t.starts_with("audio/") => "audio",
        t if t.starts_with("video/") => "video",
        _ => "document",
    }
}

/// `POST {api_base_url}/v21.0/{phone_number_id}/messages` with the service's access token: a
/// text, a template (`type: template`), or each file uploaded to `/{phone_number_id}/media` and
/// sent by its media id.
async fn whatsapp_send(
    state: &AppState,
    client: &awc::Client,
    provider: &Value,
    to: &str,
    m: &Message,
    out: &Outgoing<'_>,
) -> SendResult {
    let field = |k: &str| provider_field(provider, k);
    let (base, phone_id, token) = (field("api_base_url"), field("phone_number_id"), field("access_token"));
    if base.is_empty() || phone_id.is_empty() || token.is_empty() {
        return SendResult::Refused("not_configured".into(), "the WhatsApp service has no API credentials".into());
    }
    if let Some(refused) = outside(window(Channel::Whatsapp, out.last_customer_at, Utc::now()), m) {
        return refused;
    }
    let envelope = |kind: &str, content: Value| {
        let mut body = json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": kind});
        body[kind] = content;
        body
    };
    if m.kind == schema::MessageKind::Template {
        let Some(t) = m.payload.get("template") else {
            return SendResult::Refused("invalid_template".into(), "the template message has no template".into());
        };
        let mut template = json!({"name": t["name"], "language": {"code": t["language"]}});
        let parameters: Vec<Value> =
            t["parameters"].as_array().into_iter().flatten().map(|p| json!({"type": "text", "text": p})).collect();
        if !parameters.is_empty() {
            template["components"] = json!([{"type": "body", "parameters": parameters}]);
        }
        return whatsapp_post(client, &base, &phone_id, &token, &envelope("template", template)).await;
    }
    let caption_first = text_in_caption(m, out, |ct| matches!(whatsapp_type(ct), "image" | "video" | "document"));
    let mut last = None;
    for (i, (file, data)) in out.files.iter().enumerate() {
        if file.provider_media_id.is_some() {
            continue;
        }
        let kind = whatsapp_type(&file.content_type);
        let (content_type, form) = multipart(&[
            Part::field("messaging_product", "whatsapp"),
            Part::field("type", &file.content_type),
            Part::file("file", &file.name, &file.content_type, data),
        ]);
        let url = format!("{base}/v21.0/{phone_id}/media");
        let request =
            client.post(&url).bearer_auth(&token).insert_header(("Content-Type", content_type)).send_body(form);
        let media_id = match exchange(request).await {
            Ok((status, answer)) if status.is_success() => match answer.get("id").and_then(Value::as_str) {
                Some(id) => id.to_owned(),
                None => return SendResult::Retry("no media id in the upload's answer".into()),
            },
            Ok((status, answer)) => return whatsapp_error(status, &answer),
            Err(retry) => return retry,
        };
        let mut content = json!({"id": media_id});
        if i == 0 && caption_first {
            content["caption"] = json!(m.body);
        }
        if kind == "document" {
            content["filename"] = json!(file.name);
        }
        match whatsapp_post(client, &base, &phone_id, &token, &envelope(kind, content)).await {
            SendResult::Sent(id) => {
                if let Err(retry) = file_sent(state, file, &id).await {
                    return retry;
                }
                last = Some(id);
            }
            other => return other,
        }
    }
    match m.body.as_deref() {
        Some(text) if !caption_first => {
            whatsapp_post(
                client,
                &base,
                &phone_id,
                &token,
                &envelope("text", json!({"body": text, "preview_url": false})),
            )
            .await
        }
        _ => match last.or_else(|| out.files.last().and_then(|(a, _)| a.provider_media_id.clone())) {
            Some(id) => SendResult::Sent(id),
            None => SendResult::Refused("empty_message".into(), "nothing to send".into()),
        },
    }
}

/// One `POST /{phone_number_id}/messages`.
async fn whatsapp_post(client: &awc::Client, base: &str, phone_id: &str, token: &str, body: &Value) -> SendResult {
    let url = format!("{base}/v21.0/{phone_id}/messages");
    let (status, answer) = match exchange(client.post(&url).bearer_auth(token).send_json(body)).await {
        Ok(answered) => answered,
        Err(retry) => return retry,
    };
    if status.is_success() {
        return match answer.pointer("/messages/0/id").and_then(Value::as_str) {
            Some(id) => SendResult::Sent(id.to_owned()),
            None => SendResult::Retry("no message id in the answer".into()),
        };
    }
    whatsapp_error(status, &answer)
}

/// A Graph API error answer.
fn whatsapp_error(status: awc::http::StatusCode, answer: &Value) -> SendResult {
    let code = answer.pointer("/error/code").map(|c| c.to_string()).unwrap_or_else(|| status.as_u16().to_string());
    let message = answer
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or(status.canonical_reason().unwrap_or("error"))
        .to_owned();
    refusal_or_retry(status, code, message)
}

/// The Bot API method and file field for a file: a photo, a voice note (OGG/Opus) or a document.
fn telegram_method(content_type: &str) -> (&'static str, &'static str) {
    match super::media::essence(content_type).as_str() {
        "image/jpeg" | "image/png" | "image/webp" => ("sendPhoto", "photo"),
        "audio/ogg" => ("sendVoice", "voice"),
        _ => ("sendDocument", "document"),
    }
}

/// `POST {api_base_url}/bot{bot_token}/sendMessage` with `{chat_id, text}`; each file with
/// `sendPhoto` / `sendVoice` / `sendDocument` as multipart, the text as the first one's caption.
async fn telegram_send(
    state: &AppState,
    client: &awc::Client,
    provider: &Value,
    chat: &str,
    m: &Message,
    out: &Outgoing<'_>,
) -> SendResult {
    let field = |k: &str| provider_field(provider, k);
    let (base, token) = (field("api_base_url"), field("bot_token"));
    if base.is_empty() || token.is_empty() {
        return SendResult::Refused("not_configured".into(), "the Telegram service has no bot token".into());
    }
    let caption_first = text_in_caption(m, out, |_| true);
    let mut last = None;
    for (i, (file, data)) in out.files.iter().enumerate() {
        if file.provider_media_id.is_some() {
            continue;
        }
        let (method, part) = telegram_method(&file.content_type);
        let caption = m.body.as_deref().filter(|_| i == 0 && caption_first);
        let mut parts = vec![Part::field("chat_id", chat)];
        if let Some(c) = caption {
            parts.push(Part::field("caption", c));
        }
        parts.push(Part::file(part, &file.name, &file.content_type, data));
        let (content_type, form) = multipart(&parts);
        let url = format!("{base}/bot{token}/{method}");
        let request = client.post(&url).insert_header(("Content-Type", content_type)).send_body(form);
        match telegram_answer(chat, exchange(request).await) {
            SendResult::Sent(id) => {
                if let Err(retry) = file_sent(state, file, &id).await {
                    return retry;
                }
                last = Some(id);
            }
            other => return other,
        }
    }
    let text = match m.body.as_deref() {
        Some(text) if !caption_first => text,
        _ => {
            return match last.or_else(|| out.files.last().and_then(|(a, _)| a.provider_media_id.clone())) {
                Some(id) => SendResult::Sent(id),
                None => SendResult::Refused("empty_message".into(), "nothing to send".into()),
            };
        }
    };
    let chat_id: Value = chat.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::from(chat));
    let url = format!("{base}/bot{token}/sendMessage");
    telegram_answer(chat, exchange(client.post(&url).send_json(&json!({"chat_id": chat_id, "text": text}))).await)
}

/// A Bot API answer: `{ok: true, result: {message_id}}` or `{ok: false, error_code, description}`.
fn telegram_answer(chat: &str, answered: Result<(awc::http::StatusCode, Value), SendResult>) -> SendResult {
    let (status, answer) = match answered {
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
async fn twilio_send(client: &awc::Client, provider: &Value, to: &str, m: &Message, out: &Outgoing<'_>) -> SendResult {
    let field = |k: &str| provider_field(provider, k);
    let (base, sid, token, from) =
        (field("api_base_url"), field("account_sid"), field("auth_token"), field("phone_number"));
    if base.is_empty() || sid.is_empty() || token.is_empty() || from.is_empty() {
        return SendResult::Refused("not_configured".into(), "the SMS service has no Twilio credentials".into());
    }
    if !out.files.is_empty() {
        return SendResult::Refused(
            "media_not_supported".into(),
            "SMS carries text only: MMS needs the file at a public URL, which this installation does not publish"
                .into(),
        );
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

/// The Send API attachment type of a file.
fn meta_type(content_type: &str) -> &'static str {
    match content_type.split('/').next() {
        Some("image") => "image",
        Some("audio") => "audio",
        Some("video") => "video",
        _ => "file",
    }
}

/// Messenger / Instagram Send API: `POST {api_base_url}/v21.0/{page_id | account_id}/messages`
/// with `{recipient: {id}, messaging_type, message: {text}}`: `RESPONSE` within 24 hours of the
/// customer's last message, `MESSAGE_TAG` with `tag: HUMAN_AGENT` within 7 days. Each file goes
/// first as a multipart request (`recipient`, `messaging_type`, `message` with an attachment of
/// that type, and the file in `filedata`); the text follows as a message of its own.
async fn meta_send(
    state: &AppState,
    client: &awc::Client,
    provider: &Value,
    to: &str,
    m: &Message,
    out: &Outgoing<'_>,
) -> SendResult {
    let field = |k: &str| provider_field(provider, k);
    let (base, token) = (field("api_base_url"), field("access_token"));
    let sender = Some(field("page_id")).filter(|p| !p.is_empty()).unwrap_or_else(|| field("account_id"));
    if base.is_empty() || token.is_empty() || sender.is_empty() {
        return SendResult::Refused("not_configured".into(), "the service has no Send API credentials".into());
    }
    // Messenger and Instagram share the rules; the channel only names the service.
    let w = window(Channel::Messenger, out.last_customer_at, Utc::now());
    if let Some(refused) = outside(w, m) {
        return refused;
    }
    let tagged = |mut body: Value| {
        if w == Window::HumanAgent {
            body["messaging_type"] = json!("MESSAGE_TAG");
            body["tag"] = json!("HUMAN_AGENT");
        } else {
            body["messaging_type"] = json!("RESPONSE");
        }
        body
    };
    let url = format!("{base}/v21.0/{sender}/messages");
    let mut last = None;
    for (file, data) in out.unsent() {
        let recipient = json!({"id": to}).to_string();
        let message = json!({"attachment": {"type": meta_type(&file.content_type), "payload": {"is_reusable": false}}})
            .to_string();
        let head = tagged(json!({}));
        let messaging_type = head["messaging_type"].as_str().unwrap_or("RESPONSE").to_owned();
        let mut parts = vec![Part::field("recipient", &recipient), Part::field("messaging_type", &messaging_type)];
        if w == Window::HumanAgent {
            parts.push(Part::field("tag", "HUMAN_AGENT"));
        }
        parts.push(Part::field("message", &message));
        parts.push(Part::file("filedata", &file.name, &file.content_type, data));
        let (content_type, form) = multipart(&parts);
        let request =
            client.post(&url).bearer_auth(&token).insert_header(("Content-Type", content_type)).send_body(form);
        match meta_answer(exchange(request).await) {
            SendResult::Sent(id) => {
                if let Err(retry) = file_sent(state, file, &id).await {
                    return retry;
                }
                last = Some(id);
            }
            other => return other,
        }
    }
    let Some(text) = m.body.as_deref() else {
        return match last.or_else(|| out.files.last().and_then(|(a, _)| a.provider_media_id.clone())) {
            Some(id) => SendResult::Sent(id),
            None => SendResult::Refused("empty_message".into(), "nothing to send".into()),
        };
    };
    let body = tagged(json!({"recipient": {"id": to}, "message": {"text": text}}));
    meta_answer(exchange(client.post(&url).bearer_auth(&token).send_json(&body)).await)
}

/// A Send API answer: `{recipient_id, message_id}` or `{error: {code, message}}`.
fn meta_answer(answered: Result<(awc::http::StatusCode, Value), SendResult>) -> SendResult {
    let (status, answer) = match answered {
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
