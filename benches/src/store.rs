//! The database of the throughput benchmark: a fresh, migrated database of its own on the server
//! of `DATABASE_URL` (cloned from the migrated template, as the tests do, and dropped at the end),
//! one service, its agents, and counts read back from what was committed.

use anyhow::Context as _;
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use schema::models::{Conversation, Service};
use schema::testing::TestDb;
use schema::{AgentId, Channel, ConversationId, ConversationState, Direction, PgConnection, ServiceId, store};

/// A benchmark database with one service and its agents.
pub struct BenchDb {
    pub db: TestDb,
    pub service: ServiceId,
    pub agents: Vec<AgentId>,
}

impl BenchDb {
    /// A new database with one service on `channel` and `agents` members with `capacity` on it,
    /// written in one transaction.
    pub fn seed(channel: Channel, agents: usize, capacity: i32) -> anyhow::Result<BenchDb> {
        let db = TestDb::new();
        let mut conn = db.conn();
        let now = Utc::now();
        let (service, agents) = conn.transaction::<_, anyhow::Error, _>(|conn| {
            let service = Service::with_defaults("Benchmark", channel, now).insert(conn)?.id;
            let mut ids = Vec::with_capacity(agents);
            for i in 0..agents {
                let agent = schema::testing::fixtures::person(&format!("bench{i:05}"))
                    .name(format!("Bench agent {i}"))
                    .created_at(now)
                    .in_services(&[service])
                    .insert(conn)?;
                store::set_capacity(conn, agent.id, channel, capacity)?;
                ids.push(agent.id);
            }
            Ok((service, ids))
        })?;
        Ok(BenchDb { db, service, agents })
    }

    /// A new connection to the benchmark database.
    pub fn conn(&self) -> PgConnection {
        self.db.conn()
    }

    /// Stores `n` queued conversation rows (arrived one every 10 ms up to now) in one transaction
    /// of multi-row inserts, and returns their ids. Stored before the engine starts, they are a
    /// backlog it finds waiting (R15); stored after, rows for `Command::Arrive` without a
    /// per-conversation INSERT.
    pub fn store_queued(&self, channel: Channel, n: usize) -> anyhow::Result<Vec<ConversationId>> {
        use schema::schema::conversations;
        let now = Utc::now();
        let rows: Vec<Conversation> = (0..n)
            .map(|i| {
                let behind = i64::try_from(n - i).unwrap_or(0);
                queued_row(self.service, channel, format!("stored-{i}"), now - Duration::milliseconds(10 * behind))
            })
            .collect();
        let mut conn = self.conn();
        conn.transaction::<_, anyhow::Error, _>(|conn| {
            // 30 columns a row: 1,000 rows stay well under PostgreSQL's 65,535 bind parameters.
            for chunk in rows.chunks(1000) {
                diesel::insert_into(conversations::table).values(chunk).execute(conn)?;
            }
            Ok(())
        })
        .context("store queued conversations")?;
        Ok(rows.into_iter().map(|r| r.id).collect())
    }
}

/// A conversation row as the engine's `open_conversation` stores it, queued since `at`.
fn queued_row(service: ServiceId, channel: Channel, address: String, at: DateTime<Utc>) -> Conversation {
    Conversation {
        id: ConversationId::new(),
        service_id: service,
        channel,
        direction: Direction::Inbound,
        customer_id: None,
        customer_address: address,
        customer_name: None,
        subject: None,
        state: ConversationState::Queued,
        sub_state: None,
        hold_reason: None,
        priority: 0,
        arrived_at: at,
        enqueued_at: Some(at),
        first_agent_id: None,
        current_agent_id: None,
        concluded_by_id: None,
        classification_id: None,
        service_type_id: None,
        case_id: None,
        due_at: None,
        out_of_hours: false,
        last_customer_message_at: Some(at),
        last_agent_message_at: None,
        assigned_at: None,
        ended_at: None,
        last_seq: 0,
        created_at: at,
        updated_at: at,
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Setting {
    #[diesel(sql_type = Text)]
    v: String,
}

/// What the database holds of the committed conversation events.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventMark {
    /// The highest event id so far (events after a mark are the ones committed since).
    pub last_id: i64,
}

/// Events committed after `mark`: how many, and in how many transactions (rows written by one
/// transaction share its `xmin`, so this counts the journal's batches).
#[derive(Debug, Clone, Copy)]
pub struct EventsSince {
    pub events: i64,
    pub transactions: i64,
}

/// The current end of the event table.
pub fn event_mark(conn: &mut PgConnection) -> anyhow::Result<EventMark> {
    let n = diesel::sql_query("SELECT coalesce(max(id), 0) AS n FROM conversation_events").get_result::<Count>(conn)?.n;
    Ok(EventMark { last_id: n })
}

/// The events committed after `mark`.
pub fn events_since(conn: &mut PgConnection, mark: EventMark) -> anyhow::Result<EventsSince> {
    let events = diesel::sql_query("SELECT count(*) AS n FROM conversation_events WHERE id > $1")
        .bind::<BigInt, _>(mark.last_id)
        .get_result::<Count>(conn)?
        .n;
    let transactions =
        diesel::sql_query("SELECT count(DISTINCT xmin::text) AS n FROM conversation_events WHERE id > $1")
            .bind::<BigInt, _>(mark.last_id)
            .get_result::<Count>(conn)?
            .n;
    Ok(EventsSince { events, transactions })
}

/// A server setting (`SHOW`), to report what durability the figures were measured with.
pub fn setting(conn: &mut PgConnection, name: &str) -> anyhow::Result<String> {
    Ok(diesel::sql_query("SELECT current_setting($1) AS v").bind::<Text, _>(name).get_result::<Setting>(conn)?.v)
}
