use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::ids::{AttachmentId, MessageId, ServiceId};
use crate::schema::media_fetches;

/// A file a customer sent, to fetch from the provider after its message was stored (C4, C9).
#[derive(Debug, Clone, PartialEq, Queryable, QueryableByName, Selectable, Identifiable)]
#[diesel(table_name = media_fetches, check_for_backend(diesel::pg::Pg))]
pub struct MediaFetch {
    pub id: i64,
    pub message_id: MessageId,
    pub service_id: ServiceId,
    /// The provider's handle of the file: a WhatsApp media id, a Telegram file_id, a media URL.
    pub source: String,
    /// The type the webhook announced.
    pub content_type: Option<String>,
    pub name: Option<String>,
    /// `pending`, `done`, `refused` (C9 limits) or `failed` (the provider never gave it).
    pub status: String,
    /// Written by the fetcher that claims the row.
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub error: Option<String>,
    pub attachment_id: Option<AttachmentId>,
    pub created_at: DateTime<Utc>,
}

/// A file to fetch, asked for by a webhook.
#[derive(Debug, Clone, PartialEq, Insertable)]
#[diesel(table_name = media_fetches, check_for_backend(diesel::pg::Pg))]
pub struct NewMediaFetch {
    pub message_id: MessageId,
    pub service_id: ServiceId,
    pub source: String,
    pub content_type: Option<String>,
    pub name: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
}
