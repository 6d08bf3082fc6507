use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::Value;

use crate::ids::ServiceId;
use crate::schema::{mailbox_cursors, webhook_receipts};
use crate::types::WebhookOutcome;

/// A webhook request exactly as received.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = webhook_receipts, check_for_backend(diesel::pg::Pg))]
pub struct WebhookReceipt {
    pub id: i64,
    pub channel: String,
    pub service_id: Option<ServiceId>,
    pub received_at: DateTime<Utc>,
    pub headers: Value,
    pub body: Vec<u8>,
    pub signature_valid: bool,
    pub outcome: WebhookOutcome,
    pub detail: Option<String>,
}

/// A webhook receipt to store.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = webhook_receipts)]
pub struct NewWebhookReceipt {
    pub channel: String,
    pub service_id: Option<ServiceId>,
    pub received_at: DateTime<Utc>,
    pub headers: Value,
    pub body: Vec<u8>,
    pub signature_valid: bool,
    pub outcome: WebhookOutcome,
    pub detail: Option<String>,
}

/// How far an email service's mailbox has been read (IMAP UIDVALIDITY + last UID).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Identifiable)]
#[diesel(table_name = mailbox_cursors, primary_key(service_id), check_for_backend(diesel::pg::Pg))]
pub struct MailboxCursor {
    pub service_id: ServiceId,
    pub uid_validity: i64,
    pub last_uid: i64,
    pub updated_at: DateTime<Utc>,
}
