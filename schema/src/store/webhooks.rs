use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::StoreResult;
use crate::ids::ServiceId;
use crate::models::MailboxCursor;
use crate::schema::mailbox_cursors;

/// Moves an email service's mailbox cursor forward (never backwards for the same UIDVALIDITY).
pub fn advance_mailbox_cursor(
    conn: &mut PgConnection,
    service: ServiceId,
    uid_validity: i64,
    last_uid: i64,
    now: DateTime<Utc>,
) -> StoreResult<MailboxCursor> {
    let row = MailboxCursor { service_id: service, uid_validity, last_uid, updated_at: now };
    Ok(diesel::insert_into(mailbox_cursors::table)
        .values(&row)
        .on_conflict(mailbox_cursors::service_id)
        .do_update()
        .set((
            mailbox_cursors::last_uid.eq(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                "CASE WHEN mailbox_cursors.uid_validity = excluded.uid_validity \
                 THEN greatest(mailbox_cursors.last_uid, excluded.last_uid) ELSE excluded.last_uid END",
            )),
            mailbox_cursors::uid_validity.eq(uid_validity),
            mailbox_cursors::updated_at.eq(now),
        ))
        .returning(MailboxCursor::as_returning())
        .get_result(conn)?)
}
