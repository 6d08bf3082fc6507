//! Set-based writes of the ingest's group commit: many customer messages stored with a handful of
//! statements in one transaction (the engine's ingest writer), instead of a transaction each.

use diesel::prelude::*;

use super::prepared::prepared;
use crate::StoreResult;
use crate::ids::{ConversationId, ServiceId};
use crate::models::{Conversation, Message};
use crate::schema::{conversations, messages};
use crate::types::ConversationState;

/// The open conversations of these (service, customer address) pairs: one query, an index
/// lookup per pair.
pub fn open_conversations_for(conn: &mut PgConnection, keys: &[(ServiceId, String)]) -> StoreResult<Vec<Conversation>> {
    use diesel::sql_types::{Array, Text, Uuid};
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let services: Vec<ServiceId> = keys.iter().map(|(s, _)| *s).collect();
    let addresses: Vec<&str> = keys.iter().map(|(_, a)| a.as_str()).collect();
    let open: Vec<&str> = ConversationState::OPEN.iter().map(|s| s.as_str()).collect();
    // A function (migration 000015): its plan is prepared once per connection.
    Ok(prepared(
        diesel::sql_query("SELECT * FROM open_conversations_of($1, $2, $3)")
            .bind::<Array<Uuid>, _>(services)
            .bind::<Array<Text>, _>(addresses)
            .bind::<Array<Text>, _>(open),
    )
    .load::<Conversation>(conn)?)
}

/// Inserts new conversations in one statement and returns them as stored. A conflict (another
/// writer opened one of them meanwhile) fails the whole statement: call inside a savepoint.
pub fn insert_conversations(conn: &mut PgConnection, rows: &[Conversation]) -> StoreResult<Vec<Conversation>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    Ok(diesel::insert_into(conversations::table)
        .values(rows)
        .returning(Conversation::as_returning())
        .get_results(conn)?)
}

/// Inserts inbound messages in one statement, skipping those whose provider id the service
/// already holds (C3); returns those inserted.
pub fn insert_messages_once(conn: &mut PgConnection, rows: &[Message]) -> StoreResult<Vec<Message>> {
    use diesel::upsert::DecoratableTarget;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    Ok(diesel::insert_into(messages::table)
        .values(rows)
        .on_conflict((messages::service_id, messages::provider_message_id))
        .filter_target(messages::provider_message_id.is_not_null())
        .do_nothing()
        .returning(Message::as_returning())
        .get_results(conn)?)
}

/// Where [`ingest_into_open`] put one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntoOpen {
    /// Stored in this open conversation.
    Stored(ConversationId),
    /// Its address has this open conversation, but the service already holds its provider id.
    Duplicate(ConversationId),
    /// Its address has no open conversation: nothing stored.
    NoConversation,
}

#[derive(QueryableByName)]
struct IntoOpenRow {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Uuid>)]
    conversation_id: Option<ConversationId>,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    stored: bool,
}

/// Stores in one statement each message whose customer address (`addresses`, in the same order)
/// has an open conversation, skipping provider ids the service already holds (C3); says for
/// each message, in order, what became of it. The messages' `conversation_id` is ignored; their
/// timestamps are stored to the microsecond. A function (migration 000017): one call whose plan
/// is prepared once per connection, where a many-row INSERT was parsed and planned per batch.
pub fn ingest_into_open(conn: &mut PgConnection, rows: &[Message], addresses: &[&str]) -> StoreResult<Vec<IntoOpen>> {
    use diesel::sql_types::{Array, Text};
    assert_eq!(rows.len(), addresses.len(), "one address per message");
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let batch = serde_json::to_string(rows)
        .map_err(|e| crate::StoreError::Invalid { constraint: format!("message as JSON: {e}") })?;
    let open: Vec<&str> = ConversationState::OPEN.iter().map(|s| s.as_str()).collect();
    let found = prepared(
        diesel::sql_query("SELECT conversation_id, stored FROM ingest_into_open($1::json, $2, $3)")
            .bind::<Text, _>(batch)
            .bind::<Array<Text>, _>(addresses)
            .bind::<Array<Text>, _>(open),
    )
    .load::<IntoOpenRow>(conn)?;
    Ok(found
        .into_iter()
        .map(|r| match (r.conversation_id, r.stored) {
            (Some(c), true) => IntoOpen::Stored(c),
            (Some(c), false) => IntoOpen::Duplicate(c),
            (None, _) => IntoOpen::NoConversation,
        })
        .collect())
}
