//! The journal: the engine's single database writer. It takes the events of many commands,
//! writes them in one transaction (one round trip: `engine_apply_batch`), and reports back which
//! committed with which sequence numbers. Nothing is told to a caller or a desk before that report
//! (the persistence rule of docs/architecture.md). A single writer also means the sequence
//! numbers of a conversation are committed in the order they were given.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use schema::{Connection, PgPool, StoreError, store};
use serde_json::{Value, json};
use tracing::{error, warn};

use crate::book::{BookEvent, ConversationEvent};
use crate::model::{AssignmentChange, OfferChange};

/// Most events written in one transaction.
const MAX_BATCH_EVENTS: usize = 2000;
/// When busy (see [`BUSY`]), a batch waits this long after its first unit for more. Each
/// `engine_apply_batch` call costs PostgreSQL about 0.7 ms whatever it holds, and
/// under load the commands come a few milliseconds apart, one per call.
const LINGER: Duration = Duration::from_millis(2);
/// The journal counts as busy when a unit arrives within this long of the previous write; a
/// command that comes alone is written at once.
const BUSY: Duration = Duration::from_millis(10);

/// The events of one command, to be committed together.
pub struct Unit {
    pub token: u64,
    pub events: Vec<BookEvent>,
}

/// What became of the units of one batch, in submission order.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Committed {
    /// Per unit: the sequence number of each of its events (0 for presence), or why it failed.
    pub results: Vec<(u64, Result<Vec<i64>, StoreError>)>,
}

/// A handle to send units to the journal thread.
#[derive(Clone)]
pub struct Journal {
    tx: mpsc::Sender<Unit>,
}

impl Journal {
    /// Starts the journal thread writing through `pool` and reporting to `report`.
    pub fn spawn(pool: PgPool, report: Recipient<Committed>) -> Journal {
        let (tx, rx) = mpsc::channel::<Unit>();
        std::thread::Builder::new()
            .name("omniroute-journal".into())
            .spawn(move || run(pool, rx, report))
            .expect("spawn the journal thread");
        Journal { tx }
    }

    /// Queues a unit; false when the journal has stopped.
    pub fn submit(&self, unit: Unit) -> bool {
        self.tx.send(unit).is_ok()
    }
}

fn run(pool: PgPool, rx: mpsc::Receiver<Unit>, report: Recipient<Committed>) {
    let mut last_write: Option<Instant> = None;
    while let Ok(first) = rx.recv() {
        let arrived = Instant::now();
        // Busy: the previous batch was written moments ago, so more units are on their way.
        let until = last_write.filter(|w| arrived.duration_since(*w) < BUSY).map(|_| arrived + LINGER);
        let mut units = vec![first];
        let mut count = units[0].events.len();
        while count < MAX_BATCH_EVENTS {
            let next = rx.try_recv().ok().or_else(|| {
                let left = until?.checked_duration_since(Instant::now())?;
                rx.recv_timeout(left).ok()
            });
            let Some(unit) = next else { break };
            count += unit.events.len();
            units.push(unit);
        }
        let results = write_batch(&pool, &units);
        last_write = Some(Instant::now());
        report.do_send(Committed { results });
    }
}

/// Writes the units in one transaction; a unit the database refuses for good is set apart and
/// the others are written without it.
fn write_batch(pool: &PgPool, units: &[Unit]) -> Vec<(u64, Result<Vec<i64>, StoreError>)> {
    let all: Vec<&Unit> = units.iter().collect();
    match write_with_retry(pool, &all) {
        Ok(seqs) => split(&all, seqs).into_iter().map(|(t, s)| (t, Ok(s))).collect(),
        Err(_) if units.len() > 1 => {
            // One unit is refused: find it by writing them one at a time.
            units.iter().map(|u| (u.token, write_with_retry(pool, &[u]))).collect()
        }
        Err(e) => vec![(units[0].token, Err(e))],
    }
}

/// Retries while the database is unreachable (nothing is acknowledged meanwhile); returns the
/// first refusal that retrying cannot cure.
fn write_with_retry(pool: &PgPool, units: &[&Unit]) -> Result<Vec<i64>, StoreError> {
    let batch = Value::Array(units.iter().flat_map(|u| u.events.iter().map(encode)).collect());
    let mut backoff = Duration::from_millis(50);
    loop {
        let attempt = pool
            .get()
            .map_err(StoreError::from)
            .and_then(|mut conn| conn.transaction::<_, StoreError, _>(|c| store::apply_engine_batch(c, &batch)));
        match attempt {
            Ok(seqs) => return Ok(seqs),
            Err(e @ (StoreError::Unavailable(_) | StoreError::Retry)) => {
                warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "journal write failed; retrying");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(StoreError::Database(e)) if store::is_transient(&e) => {
                warn!(error = %e, "journal write failed; retrying");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                error!(error = %e, "journal write refused");
                return Err(e);
            }
        }
    }
}

fn split(units: &[&Unit], seqs: Vec<i64>) -> Vec<(u64, Vec<i64>)> {
    let mut it = seqs.into_iter();
    units.iter().map(|u| (u.token, it.by_ref().take(u.events.len()).collect())).collect()
}

/// One element of `engine_apply_batch`'s input.
pub fn encode(event: &BookEvent) -> Value {
    match event {
        BookEvent::Presence(p) => json!({
            "t": "presence",
            "agent": p.agent,
            "status": p.presence.status(),
            "reason": p.presence.reason(),
            "at": p.at,
        }),
        BookEvent::Conversation(e) => encode_conversation(e),
    }
}

fn encode_conversation(e: &ConversationEvent) -> Value {
    let f = &e.facts;
    let mut v = json!({
        "t": "conv",
        "id": f.id,
        "kind": e.kind.as_str(),
        "at": e.at,
        "from": e.from_state,
        "to": f.state,
        "sub": f.sub_state,
        "hold": f.hold,
        "service": f.service,
        "priority": f.priority,
        "owner": f.owner,
        "first": f.first_agent,
        "concluded_by": f.concluded_by,
        "classification": f.classification,
        "due_at": f.due_at,
        "enqueued_at": f.enqueued_at,
        "assigned_at": f.assigned_at,
        "ended_at": f.ended_at,
        "actor": e.actor,
        "actor_agent": e.actor_agent,
        "agent": e.agent,
        "reason": e.reason,
    });
    let mut data = serde_json::Map::new();
    if let Some(x) = &e.extension {
        data.insert("extension".into(), json!(x));
    }
    if let Some(d) = &e.decision {
        v["decision"] = json!({
            "mode": d.mode,
            "agent": d.agent,
            "reason": d.reason,
            "candidates": d.candidates,
        });
        if !d.ineligible.is_empty() {
            data.insert(
                "ineligible".into(),
                json!(d.ineligible.iter().map(|(k, n)| json!({"why": k, "count": n})).collect::<Vec<_>>()),
            );
        }
    }
    v["data"] = Value::Object(data);
    let channel = f.channel;
    match &e.assignment {
        Some(AssignmentChange::Opened { agent, via }) => {
            v["asg_open"] = json!({"agent": agent, "via": via, "channel": channel});
        }
        Some(AssignmentChange::Closed { reason, .. }) => {
            v["asg_close"] = json!({"reason": reason});
        }
        Some(AssignmentChange::Moved { to, via, .. }) => {
            v["asg_close"] = json!({"reason": "transferred"});
            v["asg_open"] = json!({"agent": to, "via": via, "channel": channel});
        }
        None => {}
    }
    match &e.offer {
        Some(OfferChange::Made { agent, expires_at }) => {
            v["offer_make"] = json!({"agent": agent, "expires_at": expires_at});
        }
        Some(OfferChange::Resolved { outcome, .. }) => {
            v["offer_resolve"] = json!({"outcome": outcome});
        }
        None => {}
    }
    v
}
