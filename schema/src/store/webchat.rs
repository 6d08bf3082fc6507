use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::StoreResult;
use crate::ids::{AttachmentId, ConversationId, MessageId, ServiceId, VisitorId};
use crate::models::{Attachment, Conversation, Message, Visitor, WebchatUpload};
use crate::schema::{attachments, conversations, messages, webchat_uploads, webchat_visitors};
use crate::types::MessageDirection;

/// The visitor of this service holding the token with this SHA-256.
pub fn visitor_by_token(
    conn: &mut PgConnection,
    service: ServiceId,
    token_hash: &[u8],
) -> StoreResult<Option<Visitor>> {
    Ok(webchat_visitors::table
        .filter(webchat_visitors::service_id.eq(service))
        .filter(webchat_visitors::token_hash.eq(token_hash))
        .select(Visitor::as_select())
        .first(conn)
        .optional()?)
}

/// Records that a visitor came back.
pub fn touch_visitor(conn: &mut PgConnection, id: VisitorId, at: DateTime<Utc>) -> StoreResult<()> {
    diesel::update(webchat_visitors::table.find(id)).set(webchat_visitors::last_seen_at.eq(at)).execute(conn)?;
    Ok(())
}

/// The most recent conversation of this customer address in this service, open or ended.
pub fn latest_conversation_for(
    conn: &mut PgConnection,
    service: ServiceId,
    address: &str,
) -> StoreResult<Option<Conversation>> {
    Ok(conversations::table
        .filter(conversations::service_id.eq(service))
        .filter(conversations::customer_address.eq(address))
        .order((conversations::arrived_at.desc(), conversations::id.desc()))
        .select(Conversation::as_select())
        .first(conn)
        .optional()?)
}

/// The last `limit` customer and agent messages (never internal notes) of every conversation of
/// this address in this service, oldest first, with their attachments.
pub fn customer_history(
    conn: &mut PgConnection,
    service: ServiceId,
    address: &str,
    limit: i64,
) -> StoreResult<(Vec<Message>, Vec<Attachment>)> {
    let ids = conversations::table
        .filter(conversations::service_id.eq(service))
        .filter(conversations::customer_address.eq(address))
        .select(conversations::id);
    let mut history: Vec<Message> = messages::table
        .filter(messages::conversation_id.eq_any(ids))
        .filter(messages::direction.eq_any([MessageDirection::In, MessageDirection::Out]))
        .order((messages::created_at.desc(), messages::id.desc()))
        .limit(limit)
        .select(Message::as_select())
        .load(conn)?;
    history.reverse();
    let message_ids: Vec<MessageId> = history.iter().map(|m| m.id).collect();
    let files = attachments::table
        .filter(attachments::message_id.eq_any(message_ids))
        .order(attachments::created_at.asc())
        .select(Attachment::as_select())
        .load(conn)?;
    Ok((history, files))
}

/// Records which visitor uploaded an attachment.
pub fn record_upload(conn: &mut PgConnection, upload: &WebchatUpload) -> StoreResult<()> {
    diesel::insert_into(webchat_uploads::table).values(upload).execute(conn)?;
    Ok(())
}

/// The visitor who uploaded this attachment, if a visitor did.
pub fn uploader_of(conn: &mut PgConnection, attachment: AttachmentId) -> StoreResult<Option<VisitorId>> {
    Ok(webchat_uploads::table.find(attachment).select(webchat_uploads::visitor_id).first(conn).optional()?)
}

/// Those of `ids` that this visitor uploaded, as stored.
pub fn uploads_of_visitor(
    conn: &mut PgConnection,
    visitor: VisitorId,
    ids: &[AttachmentId],
) -> StoreResult<Vec<Attachment>> {
    Ok(attachments::table
        .inner_join(webchat_uploads::table)
        .filter(webchat_uploads::visitor_id.eq(visitor))
        .filter(attachments::id.eq_any(ids))
        .select(Attachment::as_select())
        .load(conn)?)
}

/// Links a visitor's not-yet-sent uploads to the message that carries them; those already
/// linked are left alone, so a replayed message links nothing twice. Returns how many changed.
pub fn link_uploads(
    conn: &mut PgConnection,
    visitor: VisitorId,
    ids: &[AttachmentId],
    message: MessageId,
    conversation: ConversationId,
) -> StoreResult<usize> {
    let mine =
        webchat_uploads::table.filter(webchat_uploads::visitor_id.eq(visitor)).select(webchat_uploads::attachment_id);
    Ok(diesel::update(
        attachments::table
            .filter(attachments::id.eq_any(ids))
            .filter(attachments::id.eq_any(mine))
            .filter(attachments::message_id.is_null()),
    )
    .set((attachments::message_id.eq(message), attachments::conversation_id.eq(conversation)))
    .execute(conn)?)
}
