use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::Value;

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
pub fn open_conversations(conn: &mut PgConnection) -> StoreResult<Vec<Conversation>> {
    Ok(conversations::table
        .filter(conversations::state.eq_any(ConversationState::OPEN))
        .order((conversations::priority.desc(), conversations::arrived_at.asc()))
        .select(Conversation::as_select())
        .load(conn)?)
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
    Ok(diesel::sql_query("SELECT engine_apply_batch($1) AS seqs")
        .bind::<diesel::sql_types::Jsonb, _>(batch)
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
