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

use crate::core::error::Code;
use std::time::Duration;

use chrono::{DateTime, Utc};
use schema::models::{Attachment, Message};
use schema::store::OutboxContext;
use schema::{Connection, MessageId, MessageStatus, store};
use tracing::warn;

use crate::core::outbox::{OutboxSignal, Outgoing, SendCall, SendResult};
use crate::core::state::AppState;

/// Most attempts before a send is given up as failed.
pub const MAX_ATTEMPTS: i32 = 6;
/// How long an attempt holds its message before another sender may retry it.
pub const LEASE: Duration = Duration::from_secs(60);
/// Most messages claimed at once (one `UPDATE … FOR UPDATE SKIP LOCKED`).
const CLAIM: i64 = 128;
/// Most conversations sending at once; the messages of one conversation go one at a time, in order.
const IN_FLIGHT: usize = 64;

/// Runs the sender until the system stops. Call inside the actix system (awc needs it).
pub fn spawn(state: AppState, signal: OutboxSignal) {
    let recorder = Recorder::spawn(state.clone());
    actix_web::rt::spawn(async move {
        let client = awc::Client::builder().timeout(Duration::from_secs(20)).finish();
        let mut scanned = std::time::Instant::now() - SCAN_EVERY;
        loop {
            let _ = tokio::time::timeout(SCAN_EVERY, signal.notified()).await;
            loop {
                // What agents just sent, handed over or by id; the scan for everything due once a
                // second.
                let ready = signal.take();
                let claimed = if let Some(handed) = signal.take_handed() {
                    // Ids handed without their context wait for the next turn of this loop.
                    signal.put_back(ready);
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
        let context = store::outbox_context(&mut c, &batch, Utc::now(), super::window::STANDARD_WINDOW)?;
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
    let result = match state.senders.get(service.channel) {
        Some(sender) => sender.send(SendCall { state, client, service, address, message: &m, out: &out }).await,
        None => SendResult::Unsupported,
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
                Some((
                    Code::GaveUp.as_str().to_owned(),
                    format!("no answer from the provider after {attempts} attempts: {why}"),
                )),
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
