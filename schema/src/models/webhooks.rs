use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::ids::ServiceId;
use crate::schema::mailbox_cursors;

/// How far an email service's mailbox has been read (IMAP UIDVALIDITY + last UID).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Identifiable)]
#[diesel(table_name = mailbox_cursors, primary_key(service_id), check_for_backend(diesel::pg::Pg))]
pub struct MailboxCursor {
    pub service_id: ServiceId,
    pub uid_validity: i64,
    pub last_uid: i64,
    pub updated_at: DateTime<Utc>,
}
