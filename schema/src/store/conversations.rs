use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::Value;

use super::prepared::prepared;
use crate::StoreResult;
use crate::ids::{AgentId, ConversationId, MessageId, ServiceId};
use crate::models::{
    Assignment, Attachment, Conversation, ConversationChangeset, ConversationEvent, Message, MessageChangeset,
    NewConversationEvent,
};
use crate::schema::{assignments, attachments, conversation_events, conversations, messages};
use crate::types::{Actor, ConversationState, MessageStatus};

/// The open conversation of this customer address in this service, if any.
pub fn open_conversation_for(
    conn: &mut PgConnection,
    service: ServiceId,
    address: &str,
) -> StoreResult<Option<Conversation>> {
    Ok(conversations::table
        .filter(conversations::service_id.eq(service))
        .filter(conversations::customer_address.eq(address))
        .filter(conversations::state.eq_any(ConversationState::OPEN))
        .select(Conversation::as_select())
        .first(conn)
        .optional()?)
}

/// Every open conversation (engine start-up, R15).
///
/// Each with its exact last customer message: the ingest moves the stored one at most once a
/// second (migration 000019), and the engine's timers run from it.
pub fn open_conversations(conn: &mut PgConnection) -> StoreResult<Vec<Conversation>> {
    use diesel::sql_types::{Array, Text, Timestamptz, Uuid};
    #[derive(QueryableByName)]
    struct Later {
        #[diesel(sql_type = Uuid)]
        id: ConversationId,
        #[diesel(sql_type = Timestamptz)]
        at: DateTime<Utc>,
    }
    let mut open: Vec<Conversation> = conversations::table
        .filter(conversations::state.eq_any(ConversationState::OPEN))
        .order((conversations::priority.desc(), conversations::arrived_at.asc()))
        .select(Conversation::as_select())
        .load(conn)?;
    let states: Vec<&str> = ConversationState::OPEN.iter().map(|s| s.as_str()).collect();
    // Only the customer messages after the stored time: an index range per conversation, most
    // of them empty.
    let later: std::collections::HashMap<ConversationId, DateTime<Utc>> = diesel::sql_query(
        "SELECT c.id, max(m.created_at) AS at
           FROM conversations c
           JOIN messages m ON m.conversation_id = c.id AND m.created_at > c.last_customer_message_at
          WHERE c.state = ANY($1) AND m.direction = 'in'
          GROUP BY c.id",
    )
    .bind::<Array<Text>, _>(states)
    .load::<Later>(conn)?
    .into_iter()
    .map(|l| (l.id, l.at))
    .collect();
    for c in &mut open {
        if let Some(at) = later.get(&c.id) {
            c.last_customer_message_at = Some(*at);
        }
    }
    Ok(open)
}

/// Applies changes to a conversation and returns it.
pub fn update_conversation(
    conn: &mut PgConnection,
    id: ConversationId,
    changes: &ConversationChangeset,
) -> StoreResult<Conversation> {
    Ok(diesel::update(conversations::table.find(id))
        .set(changes)
        .returning(Conversation::as_returning())
        .get_result(conn)?)
}

/// What to record about one happening of a conversation.
#[derive(Debug, Clone)]
pub struct EventRecord {
    pub kind: String,
    pub from_state: Option<ConversationState>,
    pub to_state: Option<ConversationState>,
    pub actor: Actor,
    pub actor_agent_id: Option<AgentId>,
    pub agent_id: Option<AgentId>,
    pub reason: Option<String>,
    pub data: Value,
}

/// Appends an event to a conversation with the next sequence number, bumping
/// `conversations.last_seq` in the same statement pair (call inside a transaction).
pub fn append_event(
    conn: &mut PgConnection,
    conversation: ConversationId,
    at: DateTime<Utc>,
    event: EventRecord,
) -> StoreResult<ConversationEvent> {
    let seq: i64 = diesel::update(conversations::table.find(conversation))
        .set((conversations::last_seq.eq(conversations::last_seq + 1), conversations::updated_at.eq(at)))
        .returning(conversations::last_seq)
        .get_result(conn)?;
    NewConversationEvent {
        conversation_id: conversation,
        seq,
        at,
        kind: event.kind,
        from_state: event.from_state,
        to_state: event.to_state,
        actor: event.actor,
        actor_agent_id: event.actor_agent_id,
        agent_id: event.agent_id,
        reason: event.reason,
        data: event.data,
    }
    .insert(conn)
}

/// A conversation's events after `after_seq`, in order (the desk's resume, D11).
pub fn events_after(
    conn: &mut PgConnection,
    conversation: ConversationId,
    after_seq: i64,
) -> StoreResult<Vec<ConversationEvent>> {
    Ok(conversation_events::table
        .filter(conversation_events::conversation_id.eq(conversation))
        .filter(conversation_events::seq.gt(after_seq))
        .order(conversation_events::seq.asc())
        .select(ConversationEvent::as_select())
        .load(conn)?)
}

/// The open assignment of a conversation, if any.
pub fn open_assignment(conn: &mut PgConnection, conversation: ConversationId) -> StoreResult<Option<Assignment>> {
    Ok(assignments::table
        .filter(assignments::conversation_id.eq(conversation))
        .filter(assignments::ended_at.is_null())
        .select(Assignment::as_select())
        .first(conn)
        .optional()?)
}

/// Every open assignment (engine start-up).
pub fn open_assignments(conn: &mut PgConnection) -> StoreResult<Vec<Assignment>> {
    Ok(assignments::table.filter(assignments::ended_at.is_null()).select(Assignment::as_select()).load(conn)?)
}

/// Ends the open assignment of a conversation; returns whether one was open.
pub fn end_assignment(
    conn: &mut PgConnection,
    conversation: ConversationId,
    at: DateTime<Utc>,
    reason: &str,
) -> StoreResult<bool> {
    let n = diesel::update(
        assignments::table
            .filter(assignments::conversation_id.eq(conversation))
            .filter(assignments::ended_at.is_null()),
    )
    .set((assignments::ended_at.eq(at), assignments::end_reason.eq(reason)))
    .execute(conn)?;
    Ok(n > 0)
}

/// Stores an inbound message unless the provider already delivered it (C3): returns `None` for
/// a replay of the same provider message id in the same service.
pub fn insert_message_once(conn: &mut PgConnection, message: &Message) -> StoreResult<Option<Message>> {
    use diesel::upsert::DecoratableTarget;
    Ok(diesel::insert_into(messages::table)
        .values(message)
        .on_conflict((messages::service_id, messages::provider_message_id))
        .filter_target(messages::provider_message_id.is_not_null())
        .do_nothing()
        .returning(Message::as_returning())
        .get_result(conn)
        .optional()?)
}

/// The message of this service with this provider id.
pub fn message_by_provider_id(
    conn: &mut PgConnection,
    service: ServiceId,
    provider_id: &str,
) -> StoreResult<Option<Message>> {
    Ok(messages::table
        .filter(messages::service_id.eq(service))
        .filter(messages::provider_message_id.eq(provider_id))
        .select(Message::as_select())
        .first(conn)
        .optional()?)
}

/// A conversation's messages, oldest first.
pub fn messages_of(conn: &mut PgConnection, conversation: ConversationId) -> StoreResult<Vec<Message>> {
    Ok(messages::table
        .filter(messages::conversation_id.eq(conversation))
        .order((messages::created_at.asc(), messages::id.asc()))
        .select(Message::as_select())
        .load(conn)?)
}

/// Applies delivery changes to a message and returns it.
pub fn update_message(conn: &mut PgConnection, id: MessageId, changes: &MessageChangeset) -> StoreResult<Message> {
    Ok(diesel::update(messages::table.find(id)).set(changes).returning(Message::as_returning()).get_result(conn)?)
}

/// Moves a message's status forward only (statuses arrive out of order and concurrently):
/// sent < delivered < read; `failed` only from pending or sent, and final. One conditional
/// `UPDATE`, so two concurrent updates can never move it backwards. Returns the message when
/// it changed.
pub fn advance_message_status(
    conn: &mut PgConnection,
    id: MessageId,
    status: MessageStatus,
    at: DateTime<Utc>,
    error: Option<(String, String)>,
) -> StoreResult<Option<Message>> {
    use diesel::dsl::sql;
    use diesel::sql_types::Integer;
    let mut changes = MessageChangeset { status: Some(status), ..Default::default() };
    // The highest current rank from which this status is still progress.
    let below = match status {
        MessageStatus::Received | MessageStatus::Pending => return Ok(None),
        MessageStatus::Sent => {
            changes.sent_at = Some(Some(at));
            1
        }
        MessageStatus::Delivered => {
            changes.delivered_at = Some(Some(at));
            2
        }
        MessageStatus::Read => {
            changes.read_at = Some(Some(at));
            3
        }
        MessageStatus::Failed => {
            changes.failed_at = Some(Some(at));
            if let Some((code, message)) = error {
                changes.error_code = Some(Some(code));
                changes.error_message = Some(Some(message));
            }
            2
        }
    };
    let rank = sql::<Integer>(
        "(CASE messages.status WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 WHEN 'read' THEN 3 \
         WHEN 'failed' THEN 9 ELSE 0 END)",
    );
    Ok(diesel::update(messages::table.find(id))
        .filter(rank.lt(below))
        .set(&changes)
        .returning(Message::as_returning())
        .get_result(conn)
        .optional()?)
}

/// The attachments of a message.
pub fn attachments_of(conn: &mut PgConnection, message: MessageId) -> StoreResult<Vec<Attachment>> {
    Ok(attachments::table
        .filter(attachments::message_id.eq(message))
        .order(attachments::created_at.asc())
        .select(Attachment::as_select())
        .load(conn)?)
}

#[derive(QueryableByName)]
struct Seqs {
    #[diesel(sql_type = diesel::sql_types::Array<diesel::sql_types::BigInt>)]
    seqs: Vec<i64>,
}

/// Applies a batch of routing events in one round trip (the `engine_apply_batch` function of the
/// migrations) and returns the sequence number of each element (0 for presence changes).
/// Call inside a transaction: the batch is all or nothing.
pub fn apply_engine_batch(conn: &mut PgConnection, batch: &Value) -> StoreResult<Vec<i64>> {
    Ok(prepared(diesel::sql_query("SELECT engine_apply_batch($1) AS seqs").bind::<diesel::sql_types::Jsonb, _>(batch))
        .get_result::<Seqs>(conn)?
        .seqs)
}

/// Every offer of every open conversation, oldest first (engine start-up: pending offers and
/// the agents who must not be offered a conversation again).
pub fn offers_of_open_conversations(conn: &mut PgConnection) -> StoreResult<Vec<crate::models::Offer>> {
    use crate::schema::offers;
    Ok(offers::table
        .inner_join(conversations::table)
        .filter(conversations::state.eq_any(ConversationState::OPEN))
        .order(offers::offered_at.asc())
        .select(crate::models::Offer::as_select())
        .load(conn)?)
}

/// Filters of a queue list (D4) and of the conversations menu (S2).
#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    /// Only these services (the caller's, N3); `None` = all.
    pub services: Option<Vec<ServiceId>>,
    pub channel: Option<crate::types::Channel>,
    pub states: Vec<ConversationState>,
    pub service: Option<ServiceId>,
    /// Owned by this agent now.
    pub agent: Option<AgentId>,
    pub subject: Option<String>,
    /// Part of the customer's address (email, phone, id).
    pub address: Option<String>,
    pub name: Option<String>,
    /// A message of the conversation contains this text.
    pub content: Option<String>,
    pub arrived_from: Option<DateTime<Utc>>,
    pub arrived_to: Option<DateTime<Utc>>,
    pub newest_first: bool,
    pub limit: i64,
}

fn like(s: &str) -> String {
    let escaped = s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

/// Conversations matching a filter, by arrival.
pub fn find_conversations(conn: &mut PgConnection, f: &ConversationFilter) -> StoreResult<Vec<Conversation>> {
    let mut q = conversations::table.into_boxed();
    if let Some(services) = &f.services {
        q = q.filter(conversations::service_id.eq_any(services.clone()));
    }
    if let Some(c) = f.channel {
        q = q.filter(conversations::channel.eq(c));
    }
    if !f.states.is_empty() {
        q = q.filter(conversations::state.eq_any(f.states.clone()));
    }
    if let Some(s) = f.service {
        q = q.filter(conversations::service_id.eq(s));
    }
    if let Some(a) = f.agent {
        q = q.filter(conversations::current_agent_id.eq(a));
    }
    if let Some(s) = &f.subject {
        q = q.filter(conversations::subject.ilike(like(s)));
    }
    if let Some(s) = &f.address {
        q = q.filter(conversations::customer_address.ilike(like(s)));
    }
    if let Some(s) = &f.name {
        q = q.filter(conversations::customer_name.ilike(like(s)));
    }
    if let Some(s) = &f.content {
        let matching = messages::table.filter(messages::body.ilike(like(s))).select(messages::conversation_id);
        q = q.filter(conversations::id.eq_any(matching));
    }
    if let Some(t) = f.arrived_from {
        q = q.filter(conversations::arrived_at.ge(t));
    }
    if let Some(t) = f.arrived_to {
        q = q.filter(conversations::arrived_at.le(t));
    }
    q = if f.newest_first {
        q.order((conversations::arrived_at.desc(), conversations::id.desc()))
    } else {
        q.order((conversations::priority.desc(), conversations::arrived_at.asc(), conversations::id.asc()))
    };
    Ok(q.limit(f.limit.clamp(1, 1000)).select(Conversation::as_select()).load(conn)?)
}

#[derive(QueryableByName)]
struct DeclinedRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    conversation_id: ConversationId,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    agent_id: AgentId,
}

/// For every open conversation, the agents it must not be offered to again (R7): those who
/// declined an offer of it, let one lapse, or returned it — since it last moved to another service.
pub fn declined_agents_of_open_conversations(conn: &mut PgConnection) -> StoreResult<Vec<(ConversationId, AgentId)>> {
    let rows = diesel::sql_query(
        "SELECT DISTINCT e.conversation_id, e.agent_id
           FROM conversation_events e
           JOIN conversations c ON c.id = e.conversation_id
          WHERE c.state IN ('pre_opening', 'queued', 'offered', 'in_service', 'inactive_in_queue')
            AND e.kind IN ('offer_declined', 'offer_lapsed', 'returned')
            AND e.agent_id IS NOT NULL
            AND e.seq > coalesce((SELECT max(t.seq) FROM conversation_events t
                                   WHERE t.conversation_id = e.conversation_id
                                     AND t.kind = 'transferred_to_service'), 0)",
    )
    .load::<DeclinedRow>(conn)?;
    Ok(rows.into_iter().map(|r| (r.conversation_id, r.agent_id)).collect())
}

/// One side (started or concluded) of an agent's day (D2).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct DayFigures {
    pub count: i64,
    /// Mean seconds from the first assignment to the end, over the concluded ones.
    pub avg_handling_s: Option<f64>,
    /// Count per channel.
    pub by_channel: std::collections::BTreeMap<String, i64>,
    /// Count per hour of the day (0-23) in the requested time zone.
    pub by_hour: Vec<i64>,
}

#[derive(QueryableByName)]
struct DayRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    channel: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    hour: i32,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    ended: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    handling_s: Option<f64>,
}

/// "My conversations today" (D2): those the agent started (was first to take) and those it
/// concluded, between `from` and `to`, hours counted in `time_zone`. A conversation transferred
/// from A to B counts as started by A and concluded by B.
pub fn agent_day(
    conn: &mut PgConnection,
    agent: AgentId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    time_zone: &str,
) -> StoreResult<(DayFigures, DayFigures)> {
    use diesel::sql_types::{Text, Timestamptz, Uuid};
    let started = diesel::sql_query(
        "SELECT c.channel, extract(hour FROM (a.first_at AT TIME ZONE $4))::int AS hour, count(*) AS n, count(c.ended_at) AS ended,
                avg(extract(epoch FROM (c.ended_at - a.first_at)))::float8 AS handling_s
           FROM conversations c
           JOIN LATERAL (SELECT min(assigned_at) AS first_at FROM assignments x WHERE x.conversation_id = c.id) a ON true
          WHERE c.first_agent_id = $1 AND a.first_at >= $2 AND a.first_at < $3
          GROUP BY 1, 2",
    )
    .bind::<Uuid, _>(agent)
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .bind::<Text, _>(time_zone)
    .load::<DayRow>(conn)?;
    let concluded = diesel::sql_query(
        "SELECT c.channel, extract(hour FROM (c.ended_at AT TIME ZONE $4))::int AS hour, count(*) AS n, count(c.ended_at) AS ended,
                avg(extract(epoch FROM (c.ended_at - a.first_at)))::float8 AS handling_s
           FROM conversations c
           JOIN LATERAL (SELECT min(assigned_at) AS first_at FROM assignments x WHERE x.conversation_id = c.id) a ON true
          WHERE c.concluded_by_id = $1 AND c.state IN ('concluded', 'cancelled')
            AND c.ended_at >= $2 AND c.ended_at < $3
          GROUP BY 1, 2",
    )
    .bind::<Uuid, _>(agent)
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .bind::<Text, _>(time_zone)
    .load::<DayRow>(conn)?;
    Ok((figures(started), figures(concluded)))
}

fn figures(rows: Vec<DayRow>) -> DayFigures {
    let mut f = DayFigures { by_hour: vec![0; 24], ..Default::default() };
    let (mut weighted, mut weight) = (0.0, 0i64);
    for r in rows {
        f.count += r.n;
        *f.by_channel.entry(r.channel).or_default() += r.n;
        if let Some(slot) = usize::try_from(r.hour).ok().and_then(|h| f.by_hour.get_mut(h)) {
            *slot += r.n;
        }
        if let Some(h) = r.handling_s {
            weighted += h * r.ended as f64;
            weight += r.ended;
        }
    }
    f.avg_handling_s = (weight > 0).then(|| weighted / weight as f64);
    f
}

/// The message an agent stored under an `Idempotency-Key` in any conversation: an email or SMS
/// sent from a conversation lands in a conversation the first request opened, which a retry does
/// not know (index `messages_sender_idempotency_idx`).
pub fn message_by_sender_key(conn: &mut PgConnection, agent: AgentId, key: &str) -> StoreResult<Option<Message>> {
    Ok(messages::table
        .filter(messages::sender_agent_id.eq(agent))
        .filter(messages::idempotency_key.eq(key))
        .select(Message::as_select())
        .first(conn)
        .optional()?)
}

/// The message a conversation already has for this client idempotency key.
pub fn message_by_idempotency_key(
    conn: &mut PgConnection,
    conversation: ConversationId,
    key: &str,
) -> StoreResult<Option<Message>> {
    Ok(messages::table
        .filter(messages::conversation_id.eq(conversation))
        .filter(messages::idempotency_key.eq(key))
        .select(Message::as_select())
        .first(conn)
        .optional()?)
}

/// Attaches an uploaded file to the message that sends it.
pub fn link_attachment(
    conn: &mut PgConnection,
    attachment: crate::ids::AttachmentId,
    message: MessageId,
    conversation: ConversationId,
) -> StoreResult<()> {
    diesel::update(attachments::table.find(attachment))
        .set((attachments::message_id.eq(message), attachments::conversation_id.eq(conversation)))
        .execute(conn)?;
    Ok(())
}

/// Every attachment of a conversation's messages.
pub fn attachments_of_conversation(
    conn: &mut PgConnection,
    conversation: ConversationId,
) -> StoreResult<Vec<Attachment>> {
    Ok(attachments::table
        .filter(attachments::conversation_id.eq(conversation))
        .order(attachments::created_at.asc())
        .select(Attachment::as_select())
        .load(conn)?)
}

/// Moves a message to another conversation (a customer message that raced its conversation's end).
pub fn move_message(conn: &mut PgConnection, message: MessageId, conversation: ConversationId) -> StoreResult<()> {
    diesel::update(messages::table.find(message)).set(messages::conversation_id.eq(conversation)).execute(conn)?;
    diesel::update(attachments::table.filter(attachments::message_id.eq(message)))
        .set(attachments::conversation_id.eq(conversation))
        .execute(conn)?;
    Ok(())
}

/// Claims up to `limit` outbound messages due for a send attempt: each gets one more attempt and
/// a lease (its next attempt moves to `now + lease`), so concurrent senders never take the same
/// one (`FOR UPDATE SKIP LOCKED`) and a sender that dies leaves it to be retried after the lease.
pub fn claim_outbox(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    lease: chrono::Duration,
    limit: i64,
) -> StoreResult<Vec<Message>> {
    use diesel::sql_types::{BigInt, Timestamptz};
    Ok(diesel::sql_query(
        "UPDATE messages SET attempts = attempts + 1, next_attempt_at = $2
          WHERE id IN (SELECT id FROM messages
                        WHERE status = 'pending' AND direction = 'out' AND next_attempt_at <= $1
                        ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED)
          RETURNING *",
    )
    .bind::<Timestamptz, _>(now)
    .bind::<Timestamptz, _>(now + lease)
    .bind::<BigInt, _>(limit)
    .load::<Message>(conn)?)
}

/// At start-up, before the senders run: every pending outbound message and media fetch is due
/// now. Omniroute runs as one process per database (the routing book lives in it), so a lease
/// still running was taken by the process that just died: without this, what it was sending
/// would wait out the lease (a minute) before anyone tried again. Backoffs in progress are cut
/// short too: one early attempt. Answers how many messages and fetches were made due.
pub fn release_after_restart(conn: &mut PgConnection, now: DateTime<Utc>) -> StoreResult<(usize, usize)> {
    use diesel::sql_types::Timestamptz;
    let messages = diesel::sql_query(
        "UPDATE messages SET next_attempt_at = $1
          WHERE status = 'pending' AND direction = 'out' AND next_attempt_at > $1",
    )
    .bind::<Timestamptz, _>(now)
    .execute(conn)?;
    let fetches = diesel::sql_query(
        "UPDATE media_fetches SET next_attempt_at = $1 WHERE status = 'pending' AND next_attempt_at > $1",
    )
    .bind::<Timestamptz, _>(now)
    .execute(conn)?;
    Ok((messages, fetches))
}

/// Records a send: the provider's id and `sent`, unless a status already moved it further.
pub fn mark_sent(
    conn: &mut PgConnection,
    id: MessageId,
    provider_id: &str,
    at: DateTime<Utc>,
) -> StoreResult<Option<Message>> {
    Ok(super::mark_many_sent(conn, &[(id, provider_id.to_owned())], at)?.into_iter().next())
}

/// Schedules another attempt of a send at `at`.
pub fn retry_at(conn: &mut PgConnection, id: MessageId, at: DateTime<Utc>) -> StoreResult<()> {
    diesel::update(messages::table.find(id).filter(messages::status.eq(MessageStatus::Pending)))
        .set(messages::next_attempt_at.eq(at))
        .execute(conn)?;
    Ok(())
}

/// Deletes a conversation nothing has happened to yet (no event, no message): a call the engine
/// refused right after its row was written. Returns whether it was deleted.
pub fn delete_unseen_conversation(conn: &mut PgConnection, id: ConversationId) -> StoreResult<bool> {
    let n = diesel::delete(
        conversations::table
            .find(id)
            .filter(conversations::last_seq.eq(0))
            .filter(diesel::dsl::not(diesel::dsl::exists(messages::table.filter(messages::conversation_id.eq(id))))),
    )
    .execute(conn)?;
    Ok(n > 0)
}
