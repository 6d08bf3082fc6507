//! Set-based writes of the ingest's group commit: many customer messages stored with a handful of
//! statements in one transaction (the engine's ingest writer), instead of a transaction each.

use diesel::prelude::*;

use crate::StoreResult;
use crate::ids::ServiceId;
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
    Ok(diesel::sql_query("SELECT * FROM open_conversations_of($1, $2, $3)")
        .bind::<Array<Uuid>, _>(services)
        .bind::<Array<Text>, _>(addresses)
        .bind::<Array<Text>, _>(open)
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
