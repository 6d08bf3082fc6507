//! Set-based writes of the ingest's group commit: many customer messages stored with a handful of
//! statements in one transaction (the engine's ingest writer), instead of a transaction each.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::StoreResult;
use crate::ids::{ConversationId, ServiceId};
use crate::models::{Conversation, Message};
use crate::schema::{conversations, messages};
use crate::types::ConversationState;

/// Which of these (service, provider message id) pairs are stored already (C3): one query.
pub fn stored_provider_ids(
    conn: &mut PgConnection,
    keys: &[(ServiceId, String)],
) -> StoreResult<HashSet<(ServiceId, String)>> {
    if keys.is_empty() {
        return Ok(HashSet::new());
    }
    let services: Vec<ServiceId> = distinct(keys.iter().map(|(s, _)| *s));
    let ids: Vec<String> = keys.iter().map(|(_, id)| id.clone()).collect();
    let found: Vec<(ServiceId, Option<String>)> = messages::table
        .filter(messages::service_id.eq_any(services))
        .filter(messages::provider_message_id.eq_any(ids))
        .select((messages::service_id, messages::provider_message_id))
        .load(conn)?;
    let wanted: HashSet<&(ServiceId, String)> = keys.iter().collect();
    Ok(found.into_iter().filter_map(|(s, id)| id.map(|id| (s, id))).filter(|k| wanted.contains(k)).collect())
}

/// The open conversations of these (service, customer address) pairs: one query.
pub fn open_conversations_for(conn: &mut PgConnection, keys: &[(ServiceId, String)]) -> StoreResult<Vec<Conversation>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let services: Vec<ServiceId> = distinct(keys.iter().map(|(s, _)| *s));
    let addresses: Vec<String> = keys.iter().map(|(_, a)| a.clone()).collect();
    let wanted: HashSet<(ServiceId, &str)> = keys.iter().map(|(s, a)| (*s, a.as_str())).collect();
    let found: Vec<Conversation> = conversations::table
        .filter(conversations::service_id.eq_any(services))
        .filter(conversations::customer_address.eq_any(addresses))
        .filter(conversations::state.eq_any(ConversationState::OPEN))
        .select(Conversation::as_select())
        .load(conn)?;
    Ok(found.into_iter().filter(|c| wanted.contains(&(c.service_id, c.customer_address.as_str()))).collect())
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

/// Sets `last_customer_message_at` of many conversations in one statement.
pub fn set_last_customer_messages(
    conn: &mut PgConnection,
    changes: &[(ConversationId, DateTime<Utc>)],
) -> StoreResult<()> {
    use diesel::sql_types::{Array, Timestamptz, Uuid};
    if changes.is_empty() {
        return Ok(());
    }
    let ids: Vec<ConversationId> = changes.iter().map(|(id, _)| *id).collect();
    let ats: Vec<DateTime<Utc>> = changes.iter().map(|(_, at)| *at).collect();
    diesel::sql_query(
        "UPDATE conversations c SET last_customer_message_at = v.at
           FROM unnest($1::uuid[], $2::timestamptz[]) AS v(id, at)
          WHERE c.id = v.id",
    )
    .bind::<Array<Uuid>, _>(ids)
    .bind::<Array<Timestamptz>, _>(ats)
    .execute(conn)?;
    Ok(())
}

fn distinct<T: Eq + std::hash::Hash + Copy>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut seen = HashSet::new();
    items.filter(|x| seen.insert(*x)).collect()
}
