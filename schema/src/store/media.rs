//! Media fetches (C9) and the customer-service windows of the messaging channels (C7).

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::StoreResult;
use crate::ids::{MessageId, ServiceId};
use crate::models::{Attachment, AttachmentContent, MediaFetch, Message, NewMediaFetch};
use crate::schema::{conversations, media_fetches, messages};

/// Asks for a file to be fetched; a replayed webhook asking again changes nothing. Returns
/// whether a row was added.
pub fn ensure_media_fetch(conn: &mut PgConnection, fetch: &NewMediaFetch) -> StoreResult<bool> {
    let n = diesel::insert_into(media_fetches::table).values(fetch).on_conflict_do_nothing().execute(conn)?;
    Ok(n > 0)
}

/// Claims up to `limit` due fetches: each gets one more attempt and a lease (its next attempt
/// moves to `now + lease`), so two fetchers never take the same one and a fetcher that dies
/// leaves it to be retried after the lease.
pub fn claim_media_fetches(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    lease: chrono::Duration,
    limit: i64,
) -> StoreResult<Vec<MediaFetch>> {
    use diesel::sql_types::{BigInt, Timestamptz};
    Ok(diesel::sql_query(
        "UPDATE media_fetches SET attempts = attempts + 1, next_attempt_at = $2
          WHERE id IN (SELECT id FROM media_fetches
                        WHERE status = 'pending' AND next_attempt_at <= $1
                        ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED)
          RETURNING *",
    )
    .bind::<Timestamptz, _>(now)
    .bind::<Timestamptz, _>(now + lease)
    .bind::<BigInt, _>(limit)
    .load::<MediaFetch>(conn)?)
}

/// Stores a fetched file as an attachment of its message and closes the fetch, in one
/// transaction. Returns the message.
pub fn complete_media_fetch(
    conn: &mut PgConnection,
    fetch: i64,
    attachment: &Attachment,
    data: Vec<u8>,
) -> StoreResult<Message> {
    conn.transaction(|c| {
        let a = attachment.insert(c)?;
        AttachmentContent { attachment_id: a.id, data }.insert(c)?;
        diesel::update(media_fetches::table.find(fetch))
            .set((
                media_fetches::status.eq("done"),
                media_fetches::attachment_id.eq(Some(a.id)),
                media_fetches::error.eq(None::<String>),
            ))
            .execute(c)?;
        Message::find(c, attachment.message_id.ok_or(crate::StoreError::Retry)?)
    })
}

/// Ends a fetch without a file (`refused` by the limits, or `failed`) and notes why on the
/// message's payload (`media_error`), where the desk shows it. Returns the message.
pub fn end_media_fetch(conn: &mut PgConnection, fetch: i64, status: &str, error: &str) -> StoreResult<Message> {
    conn.transaction(|c| {
        let f: MediaFetch = media_fetches::table.find(fetch).select(MediaFetch::as_select()).first(c)?;
        diesel::update(media_fetches::table.find(fetch))
            .set((media_fetches::status.eq(status), media_fetches::error.eq(Some(error))))
            .execute(c)?;
        let m = Message::find(c, f.message_id)?;
        let mut payload = m.payload.clone();
        if let Some(o) = payload.as_object_mut() {
            o.insert("media_error".into(), serde_json::Value::from(error));
        }
        Ok(diesel::update(messages::table.find(f.message_id))
            .set(messages::payload.eq(payload))
            .returning(Message::as_returning())
            .get_result(c)?)
    })
}

/// Schedules another attempt of a fetch at `at`, keeping what went wrong.
pub fn retry_media_fetch(conn: &mut PgConnection, fetch: i64, at: DateTime<Utc>, error: &str) -> StoreResult<()> {
    diesel::update(media_fetches::table.find(fetch).filter(media_fetches::status.eq("pending")))
        .set((media_fetches::next_attempt_at.eq(at), media_fetches::error.eq(Some(error))))
        .execute(conn)?;
    Ok(())
}

/// The fetches of a message (tests, support).
pub fn media_fetches_of(conn: &mut PgConnection, message: MessageId) -> StoreResult<Vec<MediaFetch>> {
    Ok(media_fetches::table
        .filter(media_fetches::message_id.eq(message))
        .order(media_fetches::id.asc())
        .select(MediaFetch::as_select())
        .load(conn)?)
}

/// When this customer address last wrote to this service, in any of its conversations: the
/// start of the provider's customer-service window (C7).
pub fn last_customer_message_at(
    conn: &mut PgConnection,
    service: ServiceId,
    address: &str,
) -> StoreResult<Option<DateTime<Utc>>> {
    Ok(conversations::table
        .filter(conversations::service_id.eq(service))
        .filter(conversations::customer_address.eq(address))
        .select(diesel::dsl::max(conversations::last_customer_message_at))
        .first::<Option<DateTime<Utc>>>(conn)?)
}

/// Marks a conversation as started by us (C7 "ativo"): the customer has not written in it, so
/// it opens no reply window.
pub fn mark_outbound(conn: &mut PgConnection, conversation: crate::ids::ConversationId) -> StoreResult<()> {
    diesel::update(conversations::table.find(conversation))
        .set((
            conversations::direction.eq(crate::types::Direction::Outbound),
            conversations::last_customer_message_at.eq(None::<DateTime<Utc>>),
        ))
        .execute(conn)?;
    Ok(())
}

/// The WhatsApp contact of a customer, opted-in ones first (C7, K6).
pub fn whatsapp_contact_of_customer(
    conn: &mut PgConnection,
    customer: crate::ids::CustomerId,
) -> StoreResult<Option<crate::models::WhatsappContact>> {
    use crate::schema::whatsapp_contacts;
    Ok(whatsapp_contacts::table
        .filter(whatsapp_contacts::customer_id.eq(customer))
        .order((whatsapp_contacts::opted_in.desc(), whatsapp_contacts::created_at.asc()))
        .select(crate::models::WhatsappContact::as_select())
        .first(conn)
        .optional()?)
}

/// Records that one file of an outbound message went out as the provider's message `id`, so a
/// retried send skips it.
pub fn mark_attachment_sent(
    conn: &mut PgConnection,
    attachment: crate::ids::AttachmentId,
    id: &str,
) -> StoreResult<()> {
    use crate::schema::attachments;
    diesel::update(attachments::table.find(attachment))
        .set(attachments::provider_media_id.eq(Some(id)))
        .execute(conn)?;
    Ok(())
}
