//! The ingest writer: group commit of customer messages (C3, C4). Concurrent [`Engine::ingest`]
//! calls hand their message to a writer thread (one by default, [`WRITERS`]; with more, the
//! customer's address chooses it); a writer takes every message waiting for it and stores them
//! in one transaction with a handful of set-based statements: the open conversations of the
//! addresses, one INSERT of the conversations to open (when there are any), one INSERT … ON
//! CONFLICT DO NOTHING of the messages (a replay of a message stored before is the row it does
//! not insert; a trigger sets the conversations' last customer message). A batch that opens no
//! conversation is that one INSERT, with no transaction around it. Each caller is answered only
//! after the commit.
//!
//! The semantics are those of [`store_inbound`], which stays the path of a message the
//! batch cannot take: a replay (in the batch or stored before) stores nothing; the first messages
//! of one new address open one conversation (against another path opening it meanwhile, a call
//! or an agent's outbound start, the partial unique indexes decide, as between two
//! single-message transactions); a batch the database refuses (an extra refused) is written
//! again one message per transaction, so one message's refusal is that message's alone; with the
//! database down every caller of the batch gets the error and nothing is acknowledged.
//!
//! [`Engine::ingest`]: crate::Engine::ingest

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, mpsc};

use chrono::{DateTime, SubsecRound, Utc};
use schema::models::{Conversation, Message};
use schema::store::IntoOpen;
use schema::{
    Connection, ConversationId, MessageDirection, MessageStatus, PgConnection, PgPool, ServiceId, StoreError, store,
};
use tokio::sync::oneshot;

use crate::ingest::{
    InboundMessage, IngestExtras, Ingested, Opening, StoredInbound, identify, new_conversation, store_inbound,
};

/// Most messages stored in one transaction (well under PostgreSQL's 65,535 bind parameters).
const MAX_BATCH: usize = 500;
/// Under load (the previous batch held at least [`LINGER_FROM`] messages), a batch waits this
/// long after its first message for more. A batch costs PostgreSQL about as much for its
/// statement, plan and commit as for several messages, and without the wait a busy writer
/// commits every millisecond or so. Measured on 2 cores (`omniroute-load --scenario
/// ingest-ceiling --rates 10000`, fresh database): PostgreSQL 7.3–7.6 CPU-s per 10 s without
/// it, 5.7–6.9 with 2 ms; in the rising climb 6.4 instead of 8.5–9.2 CPU-s at 5,000/s. A
/// message waits at most this much more, and never when messages come one at a time.
const LINGER: std::time::Duration = std::time::Duration::from_millis(2);
/// The previous batch's size from which the writer lingers.
const LINGER_FROM: usize = 4;
/// Writer threads. One: while it commits, the next batch gathers, and larger batches cost the
/// database less per message. Measured on 2 cores (`omniroute-load --scenario ingest-ceiling
/// --rates 5000`): acknowledgement p99 22–27 ms and 8.3–8.6 CPU-s of PostgreSQL per 10 s with
/// one writer, 41–44 ms and 10 CPU-s with three. A larger machine may want more; whatever the
/// number, one address's messages stay with one writer.
const WRITERS: usize = 1;

/// One caller's message.
struct Request {
    inbound: InboundMessage,
    opening: Opening,
    now: DateTime<Utc>,
    extras: Arc<dyn IngestExtras>,
    reply: oneshot::Sender<Result<Outcome, StoreError>>,
}

/// What storing one message did.
pub(crate) struct Outcome {
    pub stored: StoredInbound,
    /// The message joined a conversation that another message of the same batch opened: that
    /// message's caller tells the engine it arrived, which covers this one.
    pub joined_new: bool,
}

/// A handle on the ingest writer threads. Each customer address has its writer, so one
/// customer's messages are stored in the order they came, and two writers never open the same
/// customer's conversation at once (one would wait for the other's commit, then redo its rows).
#[derive(Clone)]
pub(crate) struct Inbox {
    writers: Arc<[mpsc::Sender<Request>]>,
}

impl Inbox {
    /// Starts the writer threads storing through `pool`.
    pub fn spawn(pool: PgPool) -> Inbox {
        let writers: Vec<mpsc::Sender<Request>> = (0..WRITERS)
            .map(|n| {
                let (tx, rx) = mpsc::channel::<Request>();
                let pool = pool.clone();
                std::thread::Builder::new()
                    .name(format!("omniroute-inbox-{n}"))
                    .spawn(move || run(pool, rx))
                    .expect("spawn an ingest writer thread");
                tx
            })
            .collect();
        Inbox { writers: writers.into() }
    }

    /// The writer of an address.
    fn writer_of(&self, m: &InboundMessage) -> &mpsc::Sender<Request> {
        let mut h = std::hash::DefaultHasher::new();
        (m.service, &m.address).hash(&mut h);
        &self.writers[(h.finish() % self.writers.len() as u64) as usize]
    }

    /// Stores one message with those of the other callers; answers after the commit. `None`
    /// when the writer has stopped.
    pub async fn store(
        &self,
        inbound: InboundMessage,
        opening: Opening,
        now: DateTime<Utc>,
        extras: Arc<dyn IngestExtras>,
    ) -> Option<Result<Outcome, StoreError>> {
        let (reply, answer) = oneshot::channel();
        self.writer_of(&inbound).send(Request { inbound, opening, now, extras, reply }).ok()?;
        answer.await.ok()
    }
}

fn run(pool: PgPool, rx: mpsc::Receiver<Request>) {
    let mut last = 0usize;
    // Everything that waits, in one batch; under load, what comes within `LINGER` too.
    while let Ok(first) = rx.recv() {
        let until = std::time::Instant::now() + LINGER;
        let mut batch = vec![first];
        let lingering = last >= LINGER_FROM;
        while batch.len() < MAX_BATCH {
            let next = rx.try_recv().ok().or_else(|| {
                let left = until.checked_duration_since(std::time::Instant::now()).filter(|_| lingering)?;
                rx.recv_timeout(left).ok()
            });
            let Some(request) = next else { break };
            batch.push(request);
        }
        last = batch.len();
        let results = write(&pool, &batch);
        for (request, result) in batch.into_iter().zip(results) {
            let _ = request.reply.send(result);
        }
    }
}

/// Stores a batch: first, in one statement, every message whose address has an open
/// conversation (nearly all of them under load); then, in one transaction, those that open a
/// conversation or store more than the message. When the database refuses a part (not merely
/// unreachable), that part's messages are stored again each in a transaction of its own.
fn write(pool: &PgPool, batch: &[Request]) -> Vec<Result<Outcome, StoreError>> {
    let mut conn = match pool.get() {
        Ok(conn) => conn,
        Err(e) => {
            let why = e.to_string();
            return batch.iter().map(|_| Err(StoreError::Unavailable(why.clone()))).collect();
        }
    };
    let live = live_of(batch);
    // An address with a message that stores more keeps all its messages of the batch together,
    // in order, on the transaction path.
    let apart: HashSet<Address> =
        live.iter().filter(|&&i| batch[i].extras.stores_more()).map(|&i| address_of(&batch[i].inbound)).collect();
    let (mut rest, simple): (Vec<usize>, Vec<usize>) =
        live.iter().partition(|&&i| apart.contains(&address_of(&batch[i].inbound)));
    // A message answered `None` was a replay: `Duplicate`.
    let mut results: Vec<Option<Result<Outcome, StoreError>>> = (0..batch.len()).map(|_| None).collect();

    match into_open(&mut conn, batch, &simple) {
        Ok(placed) => {
            for (i, outcome) in placed {
                match outcome {
                    Some(outcome) => results[i] = Some(Ok(outcome)),
                    None => rest.push(i),
                }
            }
        }
        // Nothing was stored, and the rest would fail alike.
        Err(StoreError::Unavailable(why)) => {
            return batch.iter().map(|_| Err(StoreError::Unavailable(why.clone()))).collect();
        }
        Err(e) => refused(pool, batch, &simple, e, &mut results),
    }

    if !rest.is_empty() {
        rest.sort_unstable();
        let attempt = plan_batch(&mut conn, batch, rest.clone())
            .and_then(|plan| conn.transaction(|c| store_batch(c, batch, plan)));
        match attempt {
            Ok(mut outcomes) => {
                for &i in &rest {
                    results[i] = Some(Ok(std::mem::replace(&mut outcomes[i], duplicate())));
                }
            }
            Err(e) => refused(pool, batch, &rest, e, &mut results),
        }
    }
    results.into_iter().map(|r| r.unwrap_or_else(|| Ok(duplicate()))).collect()
}

/// The answers of the messages `idx` of a part the database did not store: with the database
/// unreachable, its error; refused, each message stored again in a transaction of its own.
fn refused(
    pool: &PgPool,
    batch: &[Request],
    idx: &[usize],
    e: StoreError,
    results: &mut [Option<Result<Outcome, StoreError>>],
) {
    let answers = match e {
        StoreError::Unavailable(why) => idx.iter().map(|_| Err(StoreError::Unavailable(why.clone()))).collect(),
        e => {
            tracing::warn!(error = %e, messages = idx.len(), "ingest batch refused; storing its messages one by one");
            write_each(pool, batch, idx)
        }
    };
    for (&i, answer) in idx.iter().zip(answers) {
        results[i] = Some(answer);
    }
}

fn duplicate() -> Outcome {
    Outcome { stored: (Ingested::Duplicate, None, None), joined_new: false }
}

/// The messages of `idx` whose address has an open conversation, stored in one statement. For
/// each message: its outcome (stored, or a replay of a stored one), or `None` when its address
/// has no open conversation (nothing stored).
fn into_open(
    c: &mut PgConnection,
    batch: &[Request],
    idx: &[usize],
) -> Result<Vec<(usize, Option<Outcome>)>, StoreError> {
    if idx.is_empty() {
        return Ok(Vec::new());
    }
    let messages: Vec<Message> = idx.iter().map(|&i| message_of(&batch[i], None)).collect();
    let addresses: Vec<&str> = idx.iter().map(|&i| batch[i].inbound.address.as_str()).collect();
    let placed = store::ingest_into_open(c, &messages, &addresses)?;
    Ok(idx
        .iter()
        .zip(messages)
        .zip(placed)
        .map(|((&i, mut message), place)| {
            let outcome = match place {
                IntoOpen::Stored(conversation) => {
                    message.conversation_id = conversation;
                    let ingested = Ingested::Stored { conversation, message: message.id, opened: false };
                    Some(Outcome { stored: (ingested, Some(message), None), joined_new: false })
                }
                IntoOpen::Duplicate(_) => Some(duplicate()),
                IntoOpen::NoConversation => None,
            };
            (i, outcome)
        })
        .collect())
}

/// A request's message as it is stored: in `conversation` (set later when `None`), its time to
/// the microsecond as PostgreSQL keeps it.
fn message_of(r: &Request, conversation: Option<ConversationId>) -> Message {
    let m = &r.inbound;
    let mut message = Message::new(
        conversation.unwrap_or_else(|| ConversationId(uuid::Uuid::nil())),
        m.service,
        MessageDirection::In,
        m.kind,
        MessageStatus::Received,
        r.now.trunc_subsecs(6),
    );
    message.body = m.body.clone();
    message.payload = m.payload.clone();
    message.provider_message_id = m.provider_message_id.clone();
    message.email_subject = m.subject.clone();
    r.extras.prepare(&mut message);
    message
}

/// Each message of `idx` in a transaction of its own (the one-message path).
fn write_each(pool: &PgPool, batch: &[Request], idx: &[usize]) -> Vec<Result<Outcome, StoreError>> {
    idx.iter()
        .map(|&i| {
            let r = &batch[i];
            let mut conn = pool.get()?;
            let stored = store_inbound(&mut conn, &r.inbound, r.opening, r.now, r.extras.as_ref())?;
            Ok(Outcome { stored, joined_new: false })
        })
        .collect()
}

/// The requests of a batch that are not replays of an earlier one of the same batch (same
/// service and provider id), in order. A replay of a message stored before is not looked for
/// here: its INSERT does nothing and its caller hears `Duplicate`.
fn live_of(batch: &[Request]) -> Vec<usize> {
    let mut first_of: HashSet<(ServiceId, &str)> = HashSet::new();
    batch
        .iter()
        .enumerate()
        .filter(|(_, r)| match &r.inbound.provider_message_id {
            Some(id) => first_of.insert((r.inbound.service, id.as_str())),
            None => true,
        })
        .map(|(i, _)| i)
        .collect()
}

type Address = (ServiceId, String);

/// The conversation a batch's messages of one address go to.
struct Target {
    conversation: Conversation,
    /// Opened by this batch.
    new: bool,
}

/// What a batch will store: the messages that are not replays within the batch, the open
/// conversation of each address, and the conversations to open.
struct Plan {
    live: Vec<usize>,
    targets: HashMap<Address, Target>,
    rows: Vec<Conversation>,
}

/// Reads what the messages `live` of the batch need (outside any transaction: read committed
/// would see the same).
fn plan_batch(c: &mut PgConnection, batch: &[Request], live: Vec<usize>) -> Result<Plan, StoreError> {
    // The conversation of each address: the open one, else one opened now by its first message.
    let mut addresses: Vec<Address> = Vec::new();
    let mut seen: HashSet<Address> = HashSet::new();
    for &i in &live {
        let key = address_of(&batch[i].inbound);
        if seen.insert(key.clone()) {
            addresses.push(key);
        }
    }
    let targets: HashMap<Address, Target> = store::open_conversations_for(c, &addresses)?
        .into_iter()
        .map(|conv| ((conv.service_id, conv.customer_address.clone()), Target { conversation: conv, new: false }))
        .collect();
    let mut rows = Vec::new();
    for &i in &live {
        let r = &batch[i];
        if targets.contains_key(&address_of(&r.inbound)) || !seen.remove(&address_of(&r.inbound)) {
            continue;
        }
        let mut row = new_conversation(&r.inbound, r.opening, r.now);
        if row.customer_id.is_none()
            && let Some(known) = identify(c, r.inbound.channel, &r.inbound.address)?
        {
            (row.customer_id, row.customer_name) = (Some(known.id), Some(known.name));
        }
        rows.push(row);
    }
    // In key order, so that two writers inserting the same keys wait for each other instead of
    // deadlocking.
    rows.sort_by_key(address_of_row);
    Ok(Plan { live, targets, rows })
}

/// Stores every message of the batch as planned (inside a transaction when it opens
/// conversations or stores more than messages); one outcome per request.
fn store_batch(c: &mut PgConnection, batch: &[Request], plan: Plan) -> Result<Vec<Outcome>, StoreError> {
    let Plan { live, mut targets, rows } = plan;
    // One INSERT; when another writer opened one of them meanwhile (its own savepoint refused),
    // row by row, joining the conversation that won.
    let inserted =
        if rows.is_empty() { Ok(Vec::new()) } else { c.transaction(|c| store::insert_conversations(c, &rows)) };
    let opened = match inserted {
        Ok(inserted) => inserted.into_iter().map(|row| (row, true)).collect(),
        Err(StoreError::Conflict { .. }) => {
            let mut each = Vec::with_capacity(rows.len());
            for row in &rows {
                match c.transaction(|c| row.insert(c)) {
                    Ok(inserted) => each.push((inserted, true)),
                    Err(StoreError::Conflict { .. }) => {
                        let open = store::open_conversation_for(c, row.service_id, &row.customer_address)?
                            .ok_or(StoreError::Retry)?;
                        each.push((open, false));
                    }
                    Err(e) => return Err(e),
                }
            }
            each
        }
        Err(e) => return Err(e),
    };
    for (conv, new) in opened {
        targets.insert(address_of_row(&conv), Target { conversation: conv, new });
    }

    // The messages, in one INSERT that skips what a concurrent writer stored meanwhile.
    let messages: Vec<Message> = live
        .iter()
        .map(|&i| message_of(&batch[i], Some(targets[&address_of(&batch[i].inbound)].conversation.id)))
        .collect();
    let mut in_key_order: Vec<&Message> = messages.iter().collect();
    in_key_order.sort_by(|a, b| (a.service_id, &a.provider_message_id).cmp(&(b.service_id, &b.provider_message_id)));
    let in_key_order: Vec<Message> = in_key_order.into_iter().cloned().collect();
    let mut inserted: HashMap<schema::MessageId, Message> =
        store::insert_messages_once(c, &in_key_order)?.into_iter().map(|m| (m.id, m)).collect();

    // Who opened each new conversation: its first message stored (a new conversation none of
    // whose messages was stored goes away, as the single-message path rolls it back).
    let mut opener: HashMap<ConversationId, usize> = HashMap::new();
    let mut stored: Vec<Option<Message>> = (0..batch.len()).map(|_| None).collect();
    for (k, &i) in live.iter().enumerate() {
        let Some(message) = inserted.remove(&messages[k].id) else { continue };
        let conversation = message.conversation_id;
        if targets[&address_of(&batch[i].inbound)].new {
            opener.entry(conversation).or_insert(i);
        }
        batch[i].extras.stored(c, &message)?;
        stored[i] = Some(message);
    }
    for target in targets.values().filter(|t| t.new && !opener.contains_key(&t.conversation.id)) {
        store::delete_unseen_conversation(c, target.conversation.id)?;
    }

    Ok(batch
        .iter()
        .enumerate()
        .map(|(i, r)| match stored[i].take() {
            None => Outcome { stored: (Ingested::Duplicate, None, None), joined_new: false },
            Some(message) => {
                let target = &targets[&address_of(&r.inbound)];
                let opened = opener.get(&message.conversation_id) == Some(&i);
                let ingested = Ingested::Stored { conversation: message.conversation_id, message: message.id, opened };
                Outcome {
                    stored: (ingested, Some(message), opened.then(|| target.conversation.clone())),
                    joined_new: target.new && !opened,
                }
            }
        })
        .collect())
}

fn address_of(m: &InboundMessage) -> Address {
    (m.service, m.address.clone())
}

fn address_of_row(row: &Conversation) -> Address {
    (row.service_id, row.customer_address.clone())
}
