//! Store functions: every read and write the rest of Omniroute makes, as plain functions over a
//! `&mut PgConnection`. Callers own transactions (`conn.transaction(|c| ...)`), so one commit
//! can group many writes; nothing here opens a transaction of its own unless it says so.

use diesel::prelude::*;

mod agents;
mod content;
mod conversations;
mod customers;
mod email;
mod inbound;
mod media;
mod outbox;
mod prepared;
mod webchat;
mod webhooks;

pub use crate::error::is_transient;
pub use agents::*;
pub use content::*;
pub use conversations::*;
pub use customers::*;
pub use email::*;
pub use inbound::*;
pub use media::*;
pub use outbox::*;
pub use webchat::*;
pub use webhooks::*;

/// `insert` and `find` for a row type whose id the application chooses.
macro_rules! row_store {
    ($($row:ident in $table:ident by $id:ty;)*) => {$(
        impl crate::models::$row {
            /// Inserts this row and returns it as stored.
            pub fn insert(&self, conn: &mut PgConnection) -> crate::StoreResult<Self> {
                Ok(diesel::insert_into(crate::schema::$table::table)
                    .values(self)
                    .returning(Self::as_returning())
                    .get_result(conn)?)
            }

            /// The row with this id.
            pub fn find(conn: &mut PgConnection, id: $id) -> crate::StoreResult<Self> {
                Ok(crate::schema::$table::table.find(id).select(Self::as_select()).first(conn)?)
            }
        }
    )*};
}

/// `insert` for a new row whose id the database assigns, and `find` on the stored row.
macro_rules! serial_store {
    ($($new:ident => $row:ident in $table:ident;)*) => {$(
        impl crate::models::$new {
            /// Inserts this row and returns it as stored, with its id.
            pub fn insert(&self, conn: &mut PgConnection) -> crate::StoreResult<crate::models::$row> {
                Ok(diesel::insert_into(crate::schema::$table::table)
                    .values(self)
                    .returning(crate::models::$row::as_returning())
                    .get_result(conn)?)
            }
        }

        impl crate::models::$row {
            /// The row with this id.
            pub fn find(conn: &mut PgConnection, id: i64) -> crate::StoreResult<Self> {
                Ok(crate::schema::$table::table.find(id).select(Self::as_select()).first(conn)?)
            }
        }
    )*};
}

row_store! {
    Agent in agents by crate::AgentId;
    Session in sessions by crate::SessionId;
    Service in services by crate::ServiceId;
    PauseReason in pause_reasons by crate::PauseReasonId;
    Customer in customers by crate::CustomerId;
    ChannelIdentity in channel_identities by crate::ChannelIdentityId;
    WhatsappContact in whatsapp_contacts by crate::WhatsappContactId;
    Classification in classifications by crate::ClassificationId;
    ServiceType in service_types by crate::ServiceTypeId;
    Case in cases by crate::CaseId;
    Conversation in conversations by crate::ConversationId;
    Message in messages by crate::MessageId;
    Attachment in attachments by crate::AttachmentId;
    AttachmentContent in attachment_contents by crate::AttachmentId;
    CannedMessage in canned_messages by crate::CannedMessageId;
    EmailTemplate in email_templates by crate::EmailTemplateId;
    WhatsappTemplate in whatsapp_templates by crate::WhatsappTemplateId;
    FormField in form_fields by crate::FormFieldId;
    FormAnswer in form_answers by crate::FormAnswerId;
    MailboxCursor in mailbox_cursors by crate::ServiceId;
    Visitor in webchat_visitors by crate::VisitorId;
}

serial_store! {
    NewPresence => Presence in presence_history;
    NewConversationEvent => ConversationEvent in conversation_events;
    NewAssignment => Assignment in assignments;
    NewOffer => Offer in offers;
    NewRoutingDecision => RoutingDecision in routing_decisions;
}
