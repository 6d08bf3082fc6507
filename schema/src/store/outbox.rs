//! Set-based reads and writes of the outbound sender: what a claimed batch needs loaded in a
//! handful of statements, and the sends the providers accepted marked in one.
//!
//! [`claim_outbox`]: crate::store::claim_outbox

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::prepared::prepared;
use crate::Channel;
use crate::StoreResult;
use crate::ids::{ConversationId, MessageId, ServiceId};
use crate::models::{Attachment, Conversation, Message, Service};
use crate::schema::{attachment_contents, attachments, conversations, services};

/// What the sender needs to send a claimed batch: its conversations, their services, the
/// customer's last message per (service, address) (the reply windows of C7) and the messages'
/// files with their bytes, in their order. A customer's last message is looked up across all
/// their conversations only where it can decide something (see [`outbox_context`]); elsewhere it
/// is their conversation's own.
#[derive(Debug, Default)]
pub struct OutboxContext {
    pub conversations: HashMap<ConversationId, Conversation>,
    pub services: HashMap<ServiceId, Service>,
    pub last_customer_at: HashMap<(ServiceId, String), DateTime<Utc>>,
    pub files: HashMap<MessageId, Vec<(Attachment, Vec<u8>)>>,
}

#[derive(QueryableByName)]
struct LastCustomer {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    service_id: ServiceId,
    #[diesel(sql_type = diesel::sql_types::Text)]
    customer_address: String,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    at: DateTime<Utc>,
}

/// Loads the context of a batch: four statements at most, whatever its size. The customer's
/// last message across all their conversations is looked up only for a channel with a reply
/// window (WhatsApp, Messenger, Instagram) and only when the conversation itself shows none in
/// the last `fresh` (the shortest window): a later message elsewhere would change no decision.
pub fn outbox_context(
    conn: &mut PgConnection,
    batch: &[Message],
    now: DateTime<Utc>,
    fresh: chrono::Duration,
) -> StoreResult<OutboxContext> {
    use diesel::sql_types::{Array, Text, Uuid};
    if batch.is_empty() {
        return Ok(OutboxContext::default());
    }
    let conversation_ids: Vec<ConversationId> = batch.iter().map(|m| m.conversation_id).collect();
    let conversations: HashMap<ConversationId, Conversation> = conversations::table
        .filter(conversations::id.eq_any(&conversation_ids))
        .select(Conversation::as_select())
        .load(conn)?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    let mut service_ids: Vec<ServiceId> = conversations.values().map(|c| c.service_id).collect();
    service_ids.sort();
    service_ids.dedup();
    let services = services::table
        .filter(services::id.eq_any(&service_ids))
        .select(Service::as_select())
        .load(conn)?
        .into_iter()
        .map(|s| (s.id, s))
        .collect();
    let windowed = |c: &Conversation| matches!(c.channel, Channel::Whatsapp | Channel::Messenger | Channel::Instagram);
    let mut last_customer_at: HashMap<(ServiceId, String), DateTime<Utc>> = HashMap::new();
    let mut keys: Vec<(ServiceId, &str)> = Vec::new();
    for c in conversations.values() {
        match c.last_customer_message_at {
            Some(at) if !windowed(c) || now - at < fresh => {
                let entry = last_customer_at.entry((c.service_id, c.customer_address.clone())).or_insert(at);
                *entry = (*entry).max(at);
            }
            _ if windowed(c) => keys.push((c.service_id, c.customer_address.as_str())),
            _ => {}
        }
    }
    keys.sort();
    keys.dedup();
    if !keys.is_empty() {
        let (key_services, key_addresses): (Vec<ServiceId>, Vec<&str>) = keys.into_iter().unzip();
        let found = diesel::sql_query(
            "SELECT k.service_id, k.customer_address, max(c.last_customer_message_at) AS at
               FROM unnest($1::uuid[], $2::text[]) AS k(service_id, customer_address)
               JOIN conversations c ON c.service_id = k.service_id AND c.customer_address = k.customer_address
              WHERE c.last_customer_message_at IS NOT NULL
              GROUP BY k.service_id, k.customer_address",
        )
        .bind::<Array<Uuid>, _>(key_services)
        .bind::<Array<Text>, _>(key_addresses)
        .load::<LastCustomer>(conn)?;
        for r in found {
            last_customer_at.insert((r.service_id, r.customer_address), r.at);
        }
    }
    let message_ids: Vec<MessageId> = batch.iter().map(|m| m.id).collect();
    let mut files: HashMap<MessageId, Vec<(Attachment, Vec<u8>)>> = HashMap::new();
    let loaded: Vec<(Attachment, Vec<u8>)> = attachments::table
        .inner_join(attachment_contents::table)
        .filter(attachments::message_id.eq_any(&message_ids))
        .order((attachments::created_at.asc(), attachments::id.asc()))
        .select((Attachment::as_select(), attachment_contents::data))
        .load(conn)?;
    for (a, data) in loaded {
        if let Some(m) = a.message_id {
            files.entry(m).or_default().push((a, data));
        }
    }
    Ok(OutboxContext { conversations, services, last_customer_at, files })
}

/// Marks these messages `sent` with the provider's id each, in one statement; a message whose
/// status has already moved past `sent` (a delivery receipt that overtook the answer) keeps
/// its status but gets its provider id. Returns the messages whose status changed.
pub fn mark_many_sent(
    conn: &mut PgConnection,
    sent: &[(MessageId, String)],
    at: DateTime<Utc>,
) -> StoreResult<Vec<Message>> {
    use chrono::SubsecRound;
    use diesel::sql_types::{Array, Text, Timestamptz, Uuid};
    if sent.is_empty() {
        return Ok(Vec::new());
    }
    // As stored (microseconds), so that the rows this statement moved are known by it.
    let at = at.trunc_subsecs(6);
    let (ids, provider_ids): (Vec<MessageId>, Vec<&str>) = sent.iter().map(|(id, p)| (*id, p.as_str())).unzip();
    // Status ranks as in `advance_message_status`: `sent` is progress only from `pending`.
    // A function (migration 000018): its plan is prepared once per connection.
    Ok(prepared(
        diesel::sql_query("SELECT * FROM mark_messages_sent($1, $2, $3)")
            .bind::<Array<Uuid>, _>(ids)
            .bind::<Array<Text>, _>(provider_ids)
            .bind::<Timestamptz, _>(at),
    )
    .load::<Message>(conn)?
    .into_iter()
    .filter(|m| m.sent_at == Some(at))
    .collect())
}

/// Claims these outbound messages for one attempt (a lease until `now + lease`) if they are
/// still pending and due: by primary key, for the messages the sender was handed as they were
/// stored (the scan of [`claim_outbox`] finds the rest).
pub fn claim_outbox_ids(
    conn: &mut PgConnection,
    ids: &[MessageId],
    now: DateTime<Utc>,
    lease: chrono::Duration,
) -> StoreResult<Vec<Message>> {
    use diesel::sql_types::{Array, Timestamptz, Uuid};
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(diesel::sql_query(
        "UPDATE messages SET attempts = attempts + 1, next_attempt_at = $3
          WHERE id = ANY($1) AND status = 'pending' AND direction = 'out' AND next_attempt_at <= $2
          RETURNING *",
    )
    .bind::<Array<Uuid>, _>(ids)
    .bind::<Timestamptz, _>(now)
    .bind::<Timestamptz, _>(now + lease)
    .load::<Message>(conn)?)
}
