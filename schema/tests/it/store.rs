//! Store functions that do more than one statement or carry a rule: event sequencing, status
//! and cursor monotonicity, session liveness, identity linking, login lookup.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use schema::models::{Agent, ChannelIdentity, Conversation, MailboxCursor, Message, Session};
use schema::store::{self, EventRecord};
use schema::testing::TestDb;
use schema::{
    Actor, Channel, ChannelIdentityId, Connection, ConversationState, MessageStatus, PgConnection, StoreError,
};
use serde_json::json;

use crate::fixtures::{self, at};

fn event(kind: &str, to_state: ConversationState) -> EventRecord {
    EventRecord {
        kind: kind.to_owned(),
        from_state: None,
        to_state: Some(to_state),
        actor: Actor::System,
        actor_agent_id: None,
        agent_id: None,
        reason: None,
        data: json!({"kind": kind}),
    }
}

#[test]
fn append_event_numbers_events_and_bumps_last_seq() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let service = fixtures::insert_service(&mut conn, Channel::Webchat);
    let conversation = fixtures::insert_queued(&mut conn, &service, "visitor-1");
    let other = fixtures::insert_queued(&mut conn, &service, "visitor-2");

    let steps = [
        ("offered", ConversationState::Offered),
        ("accepted", ConversationState::InService),
        ("concluded", ConversationState::Concluded),
    ];
    for (n, (kind, state)) in (1..).zip(steps) {
        let stored = store::append_event(&mut conn, conversation.id, at(n), event(kind, state)).expect("append");
        assert_eq!((stored.seq, stored.kind.as_str(), stored.to_state), (n, kind, Some(state)));
    }
    let after = Conversation::find(&mut conn, conversation.id).expect("find the conversation");
    assert_eq!(after.last_seq, 3);
    assert_eq!(after.updated_at, at(3), "appending an event touches the conversation");

    let resumed = store::events_after(&mut conn, conversation.id, 1).expect("events after 1");
    let seen: Vec<(i64, &str)> = resumed.iter().map(|e| (e.seq, e.kind.as_str())).collect();
    assert_eq!(seen, vec![(2, "accepted"), (3, "concluded")]);
    assert_eq!(resumed[1].data, json!({"kind": "concluded"}));
    assert_eq!(store::events_after(&mut conn, conversation.id, 3).expect("events after 3"), Vec::new());

    // Sequences are per conversation.
    let first_of_other = store::append_event(&mut conn, other.id, at(4), event("offered", ConversationState::Offered))
        .expect("append to the other conversation");
    assert_eq!(first_of_other.seq, 1);
    assert_eq!(Conversation::find(&mut conn, other.id).expect("find the other").last_seq, 1);
    assert_eq!(Conversation::find(&mut conn, conversation.id).expect("find again").last_seq, 3);

    let missing = store::append_event(
        &mut conn,
        schema::ConversationId::new(),
        at(5),
        event("offered", ConversationState::Offered),
    );
    assert!(matches!(missing, Err(StoreError::NotFound)), "got {missing:?}");
}

#[test]
fn message_status_never_moves_backwards() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let service = fixtures::insert_service(&mut conn, Channel::Whatsapp);
    let conversation = fixtures::insert_queued(&mut conn, &service, "5511987654321");
    let message = fixtures::outbound_message(&conversation).insert(&mut conn).expect("insert");

    let sent = store::advance_message_status(&mut conn, message.id, MessageStatus::Sent, at(30), None)
        .expect("sent")
        .expect("pending -> sent changes the message");
    assert_eq!((sent.status, sent.sent_at), (MessageStatus::Sent, Some(at(30))));

    let read = store::advance_message_status(&mut conn, message.id, MessageStatus::Read, at(32), None)
        .expect("read")
        .expect("sent -> read changes the message");
    assert_eq!((read.status, read.read_at), (MessageStatus::Read, Some(at(32))));

    // The "delivered" status arrives late: ignored.
    let late = store::advance_message_status(&mut conn, message.id, MessageStatus::Delivered, at(31), None)
        .expect("late delivered");
    assert_eq!(late, None);
    let late_sent =
        store::advance_message_status(&mut conn, message.id, MessageStatus::Sent, at(33), None).expect("late sent");
    assert_eq!(late_sent, None);
    let stored = Message::find(&mut conn, message.id).expect("find");
    assert_eq!(stored, read, "read stays read");
    assert_eq!(stored.delivered_at, None);
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Waits until some session of this database waits for a lock (no sleeping: a deadline only
/// turns a hang into a failure).
fn wait_for_a_lock_waiter(conn: &mut PgConnection) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting = diesel::sql_query(
            "SELECT count(*) AS n FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .get_result::<Count>(conn)
        .expect("look at pg_stat_activity")
        .n;
        if waiting > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "the second update never waited for the first");
        std::thread::yield_now();
    }
}

/// Two status webhooks of one message handled at once ("read" and a late "delivered") must
/// still leave it read. Fails today: `advance_message_status` reads the status and then writes
/// without locking the row, so the "delivered" update that read "sent" before "read" committed
/// overwrites it once the row lock is released.
#[test]

fn concurrent_status_updates_never_move_backwards() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let service = fixtures::insert_service(&mut conn, Channel::Whatsapp);
    let conversation = fixtures::insert_queued(&mut conn, &service, "5511987654321");
    let message = fixtures::outbound_message(&conversation).insert(&mut conn).expect("insert");
    store::advance_message_status(&mut conn, message.id, MessageStatus::Sent, at(30), None).expect("sent");

    let mut first = db.conn();
    let url = db.url().to_owned();
    let id = message.id;
    let second = first
        .transaction::<_, StoreError, _>(|first| {
            store::advance_message_status(first, id, MessageStatus::Read, at(32), None)?;
            // Before "read" commits, another worker handles the late "delivered".
            let second = std::thread::spawn(move || {
                let mut second = PgConnection::establish(&url).expect("connect");
                store::advance_message_status(&mut second, id, MessageStatus::Delivered, at(31), None)
            });
            wait_for_a_lock_waiter(&mut conn);
            Ok(second)
        })
        .expect("the read update commits");
    second.join().expect("the delivered update does not panic").expect("the delivered update");

    let stored = Message::find(&mut conn, id).expect("find");
    assert_eq!(stored.status, MessageStatus::Read, "delivered_at {:?}", stored.delivered_at);
}

#[test]
fn a_failed_message_stays_failed_with_its_error() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let service = fixtures::insert_service(&mut conn, Channel::Whatsapp);
    let conversation = fixtures::insert_queued(&mut conn, &service, "5511987654321");
    let message = fixtures::outbound_message(&conversation).insert(&mut conn).expect("insert");

    let error = Some(("131026".to_owned(), "Message undeliverable".to_owned()));
    let failed = store::advance_message_status(&mut conn, message.id, MessageStatus::Failed, at(40), error)
        .expect("failed")
        .expect("pending -> failed changes the message");
    let expected = Message {
        status: MessageStatus::Failed,
        failed_at: Some(at(40)),
        error_code: Some("131026".to_owned()),
        error_message: Some("Message undeliverable".to_owned()),
        ..message
    };
    assert_eq!(failed, expected);

    for (status, seconds) in [(MessageStatus::Sent, 41), (MessageStatus::Delivered, 42), (MessageStatus::Read, 43)] {
        let after = store::advance_message_status(&mut conn, message.id, status, at(seconds), None).expect("advance");
        assert_eq!(after, None, "{status} after failed is ignored");
    }
    let again = Some(("0".to_owned(), "another error".to_owned()));
    let refail =
        store::advance_message_status(&mut conn, message.id, MessageStatus::Failed, at(44), again).expect("fail again");
    assert_eq!(refail, None, "a second failure does not replace the first");
    assert_eq!(Message::find(&mut conn, message.id).expect("find"), expected);
}

#[test]
fn live_session_ignores_revoked_expired_and_inactive() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let agent = fixtures::insert_agent(&mut conn);
    let inactive = Agent { active: false, ..fixtures::agent() }.insert(&mut conn).expect("inactive agent");
    let live = fixtures::session(agent.id, b"live").insert(&mut conn).expect("live session");
    Session { revoked_at: Some(at(10)), ..fixtures::session(agent.id, b"revoked") }
        .insert(&mut conn)
        .expect("revoked session");
    let expiring =
        Session { expires_at: at(100), ..fixtures::session(agent.id, b"expired") }.insert(&mut conn).expect("expiring");
    fixtures::session(inactive.id, b"inactive").insert(&mut conn).expect("session of an inactive agent");
    let now = at(200);

    assert_eq!(store::live_session(&mut conn, b"live", now).expect("live"), Some((live, agent.clone())));
    assert_eq!(store::live_session(&mut conn, b"revoked", now).expect("revoked"), None);
    assert_eq!(store::live_session(&mut conn, b"expired", now).expect("expired"), None);
    assert_eq!(store::live_session(&mut conn, b"inactive", now).expect("inactive"), None);
    assert_eq!(store::live_session(&mut conn, b"unknown", now).expect("unknown"), None);

    // Expiry is what hides the expired one: just before it, it was live; at it, it is not.
    assert_eq!(store::live_session(&mut conn, b"expired", at(99)).expect("before expiry"), Some((expiring, agent)));
    assert_eq!(store::live_session(&mut conn, b"expired", at(100)).expect("at expiry"), None);

    // Logging out hides a live session, once.
    assert!(store::revoke_session(&mut conn, b"live", at(210)).expect("revoke"));
    assert_eq!(store::live_session(&mut conn, b"live", at(220)).expect("after revoke"), None);
    assert!(!store::revoke_session(&mut conn, b"live", at(230)).expect("revoke again"));
}

#[test]
fn revoking_an_agents_sessions_ends_them_all() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let agent = fixtures::insert_agent(&mut conn);
    let other = fixtures::insert_agent(&mut conn);
    fixtures::session(agent.id, b"a1").insert(&mut conn).expect("session 1");
    fixtures::session(agent.id, b"a2").insert(&mut conn).expect("session 2");
    let kept = fixtures::session(other.id, b"b1").insert(&mut conn).expect("other's session");

    assert_eq!(store::revoke_sessions_of_agent(&mut conn, agent.id, at(50)).expect("revoke all"), 2);
    assert_eq!(store::live_session(&mut conn, b"a1", at(60)).expect("a1"), None);
    assert_eq!(store::live_session(&mut conn, b"a2", at(60)).expect("a2"), None);
    assert_eq!(store::live_session(&mut conn, b"b1", at(60)).expect("b1"), Some((kept, other)));
}

#[test]
fn mailbox_cursor_never_goes_backwards_within_one_uid_validity() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let service = fixtures::insert_service(&mut conn, Channel::Email);
    let cursor = |uid_validity: i64, last_uid: i64, seconds: i64| MailboxCursor {
        service_id: service.id,
        uid_validity,
        last_uid,
        updated_at: at(seconds),
    };
    let mut advance = |uid_validity: i64, last_uid: i64, seconds: i64| {
        store::advance_mailbox_cursor(&mut conn, service.id, uid_validity, last_uid, at(seconds)).expect("advance")
    };

    assert_eq!(advance(7, 100, 1), cursor(7, 100, 1), "the first position is stored");
    assert_eq!(advance(7, 50, 2), cursor(7, 100, 2), "an older uid does not move it back");
    assert_eq!(advance(7, 150, 3), cursor(7, 150, 3));
    // A new UIDVALIDITY means the mailbox was renumbered: start over from what was given.
    assert_eq!(advance(8, 3, 4), cursor(8, 3, 4));
    assert_eq!(advance(8, 2, 5), cursor(8, 3, 5));
    // Even a smaller UIDVALIDITY is a different numbering, not an older position.
    assert_eq!(advance(6, 1, 6), cursor(6, 1, 6));
    assert_eq!(MailboxCursor::find(&mut conn, service.id).expect("find"), cursor(6, 1, 6));
}

#[test]
fn link_identity_is_idempotent() {
    use schema::schema::channel_identities;

    let db = TestDb::new();
    let mut conn = db.conn();
    let customer = fixtures::insert_customer(&mut conn);
    let someone_else = fixtures::insert_customer(&mut conn);
    let identity = ChannelIdentity {
        id: ChannelIdentityId::new(),
        channel: Channel::Whatsapp,
        address: "5511987654321".to_owned(),
        customer_id: customer.id,
        display_name: Some("Maria".to_owned()),
        created_at: at(1),
    };
    assert_eq!(store::link_identity(&mut conn, &identity).expect("link"), identity);
    assert_eq!(store::link_identity(&mut conn, &identity).expect("link again"), identity);

    // The same address again, even claimed for another customer, returns the existing link.
    let claim = ChannelIdentity {
        id: ChannelIdentityId::new(),
        customer_id: someone_else.id,
        display_name: None,
        created_at: at(2),
        ..identity.clone()
    };
    assert_eq!(store::link_identity(&mut conn, &claim).expect("link a claim"), identity);
    let rows: i64 = channel_identities::table.count().get_result(&mut conn).expect("count identities");
    assert_eq!(rows, 1);
    assert_eq!(
        store::customer_by_identity(&mut conn, Channel::Whatsapp, "5511987654321").expect("by identity"),
        Some(customer.clone())
    );

    // The same address on another channel is another identity.
    let sms = ChannelIdentity { id: ChannelIdentityId::new(), channel: Channel::Sms, ..identity.clone() };
    assert_eq!(store::link_identity(&mut conn, &sms).expect("link on sms"), sms);
}

#[test]
fn agent_by_login_ignores_case() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let agent = Agent { login: "Ana.Souza".to_owned(), ..fixtures::agent() }.insert(&mut conn).expect("insert");
    let other = Agent { login: "bruno".to_owned(), ..fixtures::agent() }.insert(&mut conn).expect("insert other");

    for login in ["Ana.Souza", "ana.souza", "ANA.SOUZA", "aNa.sOuZa"] {
        assert_eq!(store::agent_by_login(&mut conn, login).expect("lookup"), Some(agent.clone()), "login {login}");
    }
    assert_eq!(store::agent_by_login(&mut conn, "BRUNO").expect("lookup"), Some(other));
    assert_eq!(store::agent_by_login(&mut conn, "ana").expect("lookup"), None);
    assert_eq!(store::agent_by_login(&mut conn, "ana.souza ").expect("lookup"), None);
}

#[test]
fn a_conversation_follows_its_last_customer_and_agent_messages_forward_only() {
    use schema::models::{Conversation, Message};
    let db = schema::testing::TestDb::new();
    let mut conn = db.conn();
    let agent = crate::fixtures::insert_agent(&mut conn);
    let service = crate::fixtures::insert_service(&mut conn, schema::Channel::Whatsapp);
    let conversation = crate::fixtures::queued_conversation(&service, "5511912345678");
    let conversation = Conversation { last_customer_message_at: None, ..conversation }.insert(&mut conn).unwrap();
    let times = |conn: &mut diesel::PgConnection| {
        let c = Conversation::find(conn, conversation.id).unwrap();
        (c.last_customer_message_at, c.last_agent_message_at)
    };
    let inbound = |id: &str, seconds: i64| Message {
        created_at: crate::fixtures::at(seconds),
        ..crate::fixtures::inbound_message(&conversation, id)
    };
    let from_agent = |seconds: i64, agent: Option<schema::AgentId>| Message {
        created_at: crate::fixtures::at(seconds),
        sender_agent_id: agent,
        ..crate::fixtures::outbound_message(&conversation)
    };
    let at = |s| Some(crate::fixtures::at(s));

    // Two customer messages in one statement (the ingest's batch): the later one counts.
    schema::store::insert_messages_once(&mut conn, &[inbound("wamid.1", 30), inbound("wamid.2", 40)]).unwrap();
    assert_eq!(times(&mut conn), (at(40), None));
    // An earlier one arriving late does not move it back.
    inbound("wamid.3", 35).insert(&mut conn).unwrap();
    assert_eq!(times(&mut conn), (at(40), None));
    // An agent's message sets the last agent message; a system message (no agent) does not.
    from_agent(50, Some(agent.id)).insert(&mut conn).unwrap();
    assert_eq!(times(&mut conn), (at(40), at(50)));
    from_agent(60, None).insert(&mut conn).unwrap();
    assert_eq!(times(&mut conn), (at(40), at(50)));
    from_agent(45, Some(agent.id)).insert(&mut conn).unwrap();
    assert_eq!(times(&mut conn), (at(40), at(50)));
    inbound("wamid.4", 70).insert(&mut conn).unwrap();
    assert_eq!(times(&mut conn), (at(70), at(50)));
}

/// One INSERT of messages of several conversations moves each conversation's last customer
/// message (the trigger's set-based UPDATE), and the sender's context finds a customer's last
/// message in another of their conversations when their own is too old for the reply window.
#[test]
fn the_reply_window_counts_the_customers_last_message_in_any_conversation() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let whatsapp = fixtures::insert_service(&mut conn, Channel::Whatsapp);
    let webchat = fixtures::insert_service(&mut conn, Channel::Webchat);
    let agent = fixtures::insert_agent(&mut conn);
    // Yesterday's chat (concluded) and today's, both from 5511.
    let earlier = fixtures::concluded(fixtures::queued_conversation(&whatsapp, "5511"), agent.id, at(200))
        .insert(&mut conn)
        .unwrap();
    let today =
        fixtures::in_service(fixtures::queued_conversation(&whatsapp, "5511"), agent.id).insert(&mut conn).unwrap();
    let visitor = fixtures::insert_queued(&mut conn, &webchat, "visitor-1");
    let inbound = |c: &Conversation, id: &str, seconds: i64| Message {
        created_at: at(seconds),
        ..fixtures::inbound_message(c, id)
    };
    store::insert_messages_once(
        &mut conn,
        &[inbound(&earlier, "wamid.a", 100), inbound(&today, "wamid.b", 50), inbound(&visitor, "wc.1", 60)],
    )
    .unwrap();
    let last =
        |conn: &mut PgConnection, c: &Conversation| Conversation::find(conn, c.id).unwrap().last_customer_message_at;
    assert_eq!(
        (last(&mut conn, &earlier), last(&mut conn, &today), last(&mut conn, &visitor)),
        (Some(at(100)), Some(at(50)), Some(at(60)))
    );

    let reply = fixtures::outbound_message(&today).insert(&mut conn).unwrap();
    let to_visitor = fixtures::outbound_message(&visitor).insert(&mut conn).unwrap();
    let key = |s: &schema::models::Service, a: &str| (s.id, a.to_owned());
    // A day later today's own message is outside a 24-hour window: the later one of yesterday's
    // chat counts. The visitor's channel has no window: its conversation's own is enough.
    let day = chrono::Duration::hours(24);
    let context = store::outbox_context(&mut conn, &[reply.clone(), to_visitor.clone()], at(70) + day, day).unwrap();
    assert_eq!(context.last_customer_at.get(&key(&whatsapp, "5511")), Some(&at(100)));
    assert_eq!(context.last_customer_at.get(&key(&webchat, "visitor-1")), Some(&at(60)));
    // Within the window, the reply is open whichever message counts.
    let context = store::outbox_context(&mut conn, &[reply], at(70), day).unwrap();
    assert!(context.last_customer_at.get(&key(&whatsapp, "5511")).is_some_and(|t| at(70) - *t < day));
}

/// The ingest's one-statement batch: a message whose address has an open conversation is stored
/// in it, exactly as sent (payload, email fields, time to the microsecond); a replay of a stored
/// provider id stores nothing; an address whose conversation has ended, or that never wrote,
/// stores nothing and is reported without a conversation, for the caller to open one.
#[test]
fn ingest_into_open_stores_what_has_an_open_conversation_and_reports_the_rest() {
    use schema::store::IntoOpen;
    let db = TestDb::new();
    let mut conn = db.conn();
    let whatsapp = fixtures::insert_service(&mut conn, Channel::Whatsapp);
    let agent = fixtures::insert_agent(&mut conn);
    let open = fixtures::insert_queued(&mut conn, &whatsapp, "5511");
    let ended = fixtures::concluded(fixtures::queued_conversation(&whatsapp, "5522"), agent.id, at(5))
        .insert(&mut conn)
        .unwrap();
    let stored_before = fixtures::inbound_message(&open, "wamid.0").insert(&mut conn).unwrap();

    // `conversation_id` is not read: the function finds it from the address.
    let nowhere = |m: Message| Message { conversation_id: ended.id, ..m };
    let first = Message {
        payload: json!({"location": {"latitude": -23.5, "longitude": -46.6}, "name": "Loja"}),
        email_to: vec!["a@b".into(), "c@d".into()],
        created_at: at(40) + chrono::Duration::microseconds(123_456),
        ..nowhere(fixtures::inbound_message(&open, "wamid.1"))
    };
    let replay = nowhere(fixtures::inbound_message(&open, "wamid.0"));
    let to_ended = nowhere(fixtures::inbound_message(&ended, "wamid.2"));
    let stranger = nowhere(fixtures::inbound_message(&open, "wamid.3"));
    let no_provider_id = Message { provider_message_id: None, ..nowhere(fixtures::inbound_message(&open, "-")) };
    let placed = store::ingest_into_open(
        &mut conn,
        &[first.clone(), replay, to_ended, stranger, no_provider_id.clone()],
        &["5511", "5511", "5522", "5599", "5511"],
    )
    .unwrap();
    assert_eq!(
        placed,
        vec![
            IntoOpen::Stored(open.id),
            IntoOpen::Duplicate(open.id),
            IntoOpen::NoConversation,
            IntoOpen::NoConversation,
            IntoOpen::Stored(open.id)
        ]
    );
    let mut stored = store::messages_of(&mut conn, open.id).unwrap();
    assert_eq!(stored.len(), 3);
    assert_eq!(stored.remove(0), stored_before);
    assert_eq!(
        stored,
        vec![Message { conversation_id: open.id, ..no_provider_id }, Message { conversation_id: open.id, ..first }]
    );
    assert!(store::messages_of(&mut conn, ended.id).unwrap().is_empty());
    // The trigger kept the conversation's last customer message.
    assert_eq!(
        Conversation::find(&mut conn, open.id).unwrap().last_customer_message_at,
        Some(at(40) + chrono::Duration::microseconds(123_456))
    );
}

/// A customer writing in a burst moves the stored time of their last message once a second,
/// not once per message; the engine's restore still reads the exact time (its timers run from
/// it), and a message a second or more later moves the stored time again.
#[test]
fn the_ingest_moves_the_last_customer_message_once_a_second_and_the_restore_reads_it_exactly() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let whatsapp = fixtures::insert_service(&mut conn, Channel::Whatsapp);
    let open =
        Conversation { last_customer_message_at: Some(at(10)), ..fixtures::queued_conversation(&whatsapp, "5511") }
            .insert(&mut conn)
            .unwrap();
    let message = |id: &str, when| Message { created_at: when, ..fixtures::inbound_message(&open, id) };
    let stored = |conn: &mut PgConnection| Conversation::find(conn, open.id).unwrap().last_customer_message_at;
    let restored = |conn: &mut PgConnection| {
        store::open_conversations(conn).unwrap().into_iter().find(|c| c.id == open.id).unwrap().last_customer_message_at
    };
    let half = chrono::Duration::milliseconds(500);

    store::ingest_into_open(&mut conn, &[message("wamid.1", at(20))], &["5511"]).unwrap();
    assert_eq!((stored(&mut conn), restored(&mut conn)), (Some(at(20)), Some(at(20))));
    // Half a second later: the row is left alone, the restore finds the message.
    store::ingest_into_open(&mut conn, &[message("wamid.2", at(20) + half)], &["5511"]).unwrap();
    assert_eq!((stored(&mut conn), restored(&mut conn)), (Some(at(20)), Some(at(20) + half)));
    // A second after the stored time: moved.
    store::ingest_into_open(&mut conn, &[message("wamid.3", at(21))], &["5511"]).unwrap();
    assert_eq!((stored(&mut conn), restored(&mut conn)), (Some(at(21)), Some(at(21))));
    // A conversation whose customer has not written since is read as stored.
    let quiet = fixtures::insert_queued(&mut conn, &whatsapp, "5522");
    let quiet_restored = store::open_conversations(&mut conn).unwrap().into_iter().find(|c| c.id == quiet.id).unwrap();
    assert_eq!(quiet_restored.last_customer_message_at, quiet.last_customer_message_at);
}
