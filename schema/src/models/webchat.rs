use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::ids::{AttachmentId, CustomerId, ServiceId, VisitorId};
use crate::schema::{webchat_uploads, webchat_visitors};

/// A person who started a chat in a webchat service's widget; its id is the customer address
/// of its conversations.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Identifiable)]
#[diesel(table_name = webchat_visitors, check_for_backend(diesel::pg::Pg))]
pub struct Visitor {
    pub id: VisitorId,
    pub service_id: ServiceId,
    pub name: String,
    /// As the visitor typed it (trimmed).
    pub email: String,
    /// K2: the one customer with this email when the visitor started.
    pub customer_id: Option<CustomerId>,
    /// SHA-256 of the widget's resume token.
    pub token_hash: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

/// A file a visitor uploaded (the attachment row itself names no agent).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = webchat_uploads, check_for_backend(diesel::pg::Pg))]
pub struct WebchatUpload {
    pub attachment_id: AttachmentId,
    pub visitor_id: VisitorId,
}
