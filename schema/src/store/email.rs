//! Reads and writes of the email channel (C1, C5): threading by Message-ID, the mailbox cursor,
//! the headers of an outgoing reply and the attachments it carries.

use diesel::prelude::*;

use crate::StoreResult;
use crate::ids::{ConversationId, MessageId, ServiceId};
use crate::models::{Attachment, Conversation, MailboxCursor, Message};
use crate::schema::{attachment_contents, attachments, conversations, mailbox_cursors, messages, raw_emails};
use crate::types::{ConversationState, MessageDirection, MessageKind};

/// The open conversation of `service` holding a message with one of these Message-IDs (the
/// customer's own mail or our reply to it): where a reply with `In-Reply-To` / `References`
/// belongs. The most recent one when several match.
pub fn open_conversation_by_message_ids(
    conn: &mut PgConnection,
    service: ServiceId,
    ids: &[String],
) -> StoreResult<Option<Conversation>> {
    if ids.is_empty() {
        return Ok(None);
    }
    Ok(conversations::table
        .inner_join(messages::table)
        .filter(messages::service_id.eq(service))
        .filter(messages::provider_message_id.eq_any(ids).or(messages::email_message_id.eq_any(ids)))
        .filter(conversations::state.eq_any([
            ConversationState::PreOpening,
            ConversationState::Queued,
            ConversationState::Offered,
            ConversationState::InService,
            ConversationState::InactiveInQueue,
        ]))
        .order(messages::created_at.desc())
        .select(Conversation::as_select())
        .first(conn)
        .optional()?)
}

/// Whether `service` already stored a message with this provider id (an email's Message-ID): the
/// replay check a mail passes before its body is parsed. Reads only the unique index.
pub fn provider_message_exists(conn: &mut PgConnection, service: ServiceId, provider_id: &str) -> StoreResult<bool> {
    Ok(diesel::select(diesel::dsl::exists(
        messages::table.filter(messages::service_id.eq(service)).filter(messages::provider_message_id.eq(provider_id)),
    ))
    .get_result(conn)?)
}

/// Keeps the raw bytes of the inbound email stored as `message`, in the caller's transaction.
/// Nothing is read back: the bytes can be megabytes.
pub fn keep_raw_email(conn: &mut PgConnection, message: MessageId, raw: &[u8]) -> StoreResult<()> {
    diesel::insert_into(raw_emails::table)
        .values((raw_emails::message_id.eq(message), raw_emails::data.eq(raw)))
        .execute(conn)?;
    Ok(())
}

/// How far an email service's mailbox has been read, if it ever was.
pub fn mailbox_cursor(conn: &mut PgConnection, service: ServiceId) -> StoreResult<Option<MailboxCursor>> {
    Ok(mailbox_cursors::table.find(service).select(MailboxCursor::as_select()).first(conn).optional()?)
}

/// The customer's latest email in a conversation: what a reply answers.
pub fn latest_inbound_email(conn: &mut PgConnection, conversation: ConversationId) -> StoreResult<Option<Message>> {
    Ok(messages::table
        .filter(messages::conversation_id.eq(conversation))
        .filter(messages::direction.eq(MessageDirection::In))
        .filter(messages::kind.eq(MessageKind::Email))
        .order((messages::created_at.desc(), messages::id.desc()))
        .select(Message::as_select())
        .first(conn)
        .optional()?)
}

/// The headers of an outgoing email, recorded before it is sent so the desk shows them (D5).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutgoingEmail {
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    pub message_id: String,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub html: Option<String>,
}

/// Records an outgoing email's headers on its message (which becomes of kind `email`).
pub fn set_outgoing_email(conn: &mut PgConnection, id: MessageId, email: &OutgoingEmail) -> StoreResult<Message> {
    Ok(diesel::update(messages::table.find(id))
        .set((
            messages::kind.eq(MessageKind::Email),
            messages::email_from.eq(&email.from),
            messages::email_to.eq(&email.to),
            messages::email_cc.eq(&email.cc),
            messages::email_subject.eq(&email.subject),
            messages::email_message_id.eq(&email.message_id),
            messages::email_in_reply_to.eq(&email.in_reply_to),
            messages::email_references.eq(&email.references),
            messages::email_html.eq(&email.html),
        ))
        .returning(Message::as_returning())
        .get_result(conn)?)
}

/// A message's attachments with their bytes, oldest first (what an email carries).
pub fn attachments_with_content(
    conn: &mut PgConnection,
    message: MessageId,
) -> StoreResult<Vec<(Attachment, Vec<u8>)>> {
    Ok(attachments::table
        .inner_join(attachment_contents::table)
        .filter(attachments::message_id.eq(message))
        .order(attachments::created_at.asc())
        .select((Attachment::as_select(), attachment_contents::data))
        .load(conn)?)
}
