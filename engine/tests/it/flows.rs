//! Routing flows an agent would notice, through the `Engine` facade.

use engine::{By, PresenceRequest};
use schema::{Channel, ConversationState, MessageDirection, MessageKind, MessageStatus, SubState};

use crate::support::*;

#[actix_rt::test]
async fn a_new_conversation_goes_to_the_free_agent_and_is_stored() {
    let w = World::new();
    let s = w.service("WhatsApp", Channel::Whatsapp, |_| {});
    let ana = w.agent("ana", &[s], None);
    let engine = w.engine().await;
    engine.set_presence(ana, PresenceRequest::Available).await.unwrap();
    let c =
        engine.open_conversation(engine::NewConversation::new(s, Channel::Whatsapp, "5511999990000")).await.unwrap();
    let facts = engine.conversation(c).await.unwrap();
    assert_eq!(facts.state, ConversationState::InService);
    assert_eq!(facts.owner, Some(ana));
    let mut conn = w.db.conn();
    let row = schema::models::Conversation::find(&mut conn, c).unwrap();
    assert_eq!(row.state, ConversationState::InService);
    assert_eq!(row.sub_state, Some(SubState::Active));
    assert_eq!(row.current_agent_id, Some(ana));
    assert_eq!(row.first_agent_id, Some(ana));
    let open = schema::store::open_assignment(&mut conn, c).unwrap().unwrap();
    assert_eq!(open.agent_id, ana);
    let events = schema::store::events_after(&mut conn, c, 0).unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["arrived", "assigned"]);
    assert_eq!(row.last_seq, 2);
    engine.conclude(By::Agent(ana), c, None).await.unwrap();
    let row = schema::models::Conversation::find(&mut conn, c).unwrap();
    assert_eq!(row.state, ConversationState::Concluded);
    assert_eq!(row.concluded_by_id, Some(ana));
    assert!(schema::store::open_assignment(&mut conn, c).unwrap().is_none());
    engine.stop();
}

#[actix_rt::test]
async fn a_conversation_an_agent_starts_is_theirs_at_once_else_it_waits_for_anyone() {
    let w = World::new();
    let s = w.service("WhatsApp", Channel::Whatsapp, |_| {});
    let ana = w.agent("ana", &[s], None);
    let bruno = w.agent("bruno", &[s], None);
    let engine = w.engine().await;
    // Bruno is idle the longest: automatic distribution would choose him.
    engine.set_presence(bruno, PresenceRequest::Available).await.unwrap();
    engine.set_presence(ana, PresenceRequest::Available).await.unwrap();
    let new = |to: &str| engine::NewConversation::new(s, Channel::Whatsapp, to);
    let (mine, taken) = engine.open_outbound(new("5511911110000"), ana).await.unwrap();
    assert!(taken);
    let facts = engine.conversation(mine).await.unwrap();
    assert_eq!((facts.state, facts.owner), (ConversationState::InService, Some(ana)));
    let mut conn = w.db.conn();
    let row = schema::models::Conversation::find(&mut conn, mine).unwrap();
    assert_eq!((row.direction, row.first_agent_id), (schema::Direction::Outbound, Some(ana)));
    let events = schema::store::events_after(&mut conn, mine, 0).unwrap();
    let assigned: Vec<_> = events.iter().map(|e| (e.kind.as_str(), e.actor_agent_id)).collect();
    assert_eq!(assigned, [("assigned", Some(ana))], "opened in her hands, by her");

    // Signed out, she cannot take it: it waits in the queue, and Bruno gets it.
    engine.set_presence(ana, PresenceRequest::Offline).await.unwrap();
    let (waiting, taken) = engine.open_outbound(new("5511922220000"), ana).await.unwrap();
    assert!(!taken);
    assert_eq!(engine.conversation(waiting).await.unwrap().owner, Some(bruno));
    engine.stop();
}

#[actix_rt::test]
async fn a_call_goes_straight_to_the_agent_at_the_extension_and_can_leave_to_an_external_one() {
    let w = World::new();
    let voice = w.service("Central", Channel::Voice, |_| {});
    let ana = w.agent("ana", &[voice], None);
    let engine = w.engine().await;
    let new = || engine::NewConversation::new(voice, Channel::Voice, "+5511912345678");
    // Not logged in: the phone system is told no.
    assert!(matches!(engine.voice_call(new(), ana).await, Err(engine::EngineError::NotAvailable)));
    engine.set_presence(ana, PresenceRequest::Available).await.unwrap();
    let call = engine.voice_call(new(), ana).await.unwrap();
    let facts = engine.conversation(call).await.unwrap();
    assert_eq!((facts.state, facts.owner), (ConversationState::InService, Some(ana)));
    // Voice capacity is 1 (R4): a second call at the same time is refused, and leaves nothing open.
    let second = engine.voice_call(engine::NewConversation::new(voice, Channel::Voice, "+5511900000001"), ana).await;
    assert!(matches!(second, Err(engine::EngineError::AtCapacity)));
    let mut conn = w.db.conn();
    let open = schema::store::open_conversations(&mut conn).unwrap();
    assert_eq!(open.len(), 1);

    engine.transfer(By::Agent(ana), call, engine::TransferTarget::Extension("4002".into())).await.unwrap();
    let row = schema::models::Conversation::find(&mut conn, call).unwrap();
    assert_eq!((row.state, row.concluded_by_id), (ConversationState::Concluded, Some(ana)));
    let events = schema::store::events_after(&mut conn, call, 0).unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.kind, "transferred_out");
    assert_eq!(last.data["extension"], "4002");
    engine.stop();
}

#[actix_rt::test]
async fn transfer_to_an_agent_keeps_who_started_and_records_who_concluded() {
    let w = World::new();
    let s = w.service("WhatsApp", Channel::Whatsapp, |_| {});
    let other = w.service("WhatsApp Vendas", Channel::Whatsapp, |_| {});
    let ana = w.agent("ana", &[s, other], None);
    let bruno = w.agent("bruno", &[s], None);
    let engine = w.engine().await;
    engine.set_presence(ana, PresenceRequest::Available).await.unwrap();
    let c = engine.open_conversation(engine::NewConversation::new(s, Channel::Whatsapp, "5511")).await.unwrap();
    assert_eq!(engine.conversation(c).await.unwrap().owner, Some(ana));
    // Bruno is not logged in: refused.
    let refused = engine.transfer(By::Agent(ana), c, engine::TransferTarget::Agent(bruno)).await;
    assert!(matches!(refused, Err(engine::EngineError::NotAvailable)));
    engine.set_presence(bruno, PresenceRequest::Available).await.unwrap();
    // Bruno may not act on Ana's conversation (N3).
    assert!(matches!(engine.conclude(By::Agent(bruno), c, None).await, Err(engine::EngineError::NotOwner)));
    engine.transfer(By::Agent(ana), c, engine::TransferTarget::Agent(bruno)).await.unwrap();
    engine.conclude(By::Agent(bruno), c, None).await.unwrap();
    let mut conn = w.db.conn();
    let row = schema::models::Conversation::find(&mut conn, c).unwrap();
    assert_eq!((row.first_agent_id, row.concluded_by_id), (Some(ana), Some(bruno)));
    use diesel::prelude::*;
    let owners: Vec<(schema::AgentId, String)> = schema::schema::assignments::table
        .filter(schema::schema::assignments::conversation_id.eq(c))
        .order(schema::schema::assignments::id.asc())
        .select((schema::schema::assignments::agent_id, schema::schema::assignments::via))
        .load(&mut conn)
        .unwrap();
    assert_eq!(owners, [(ana, "auto".to_owned()), (bruno, "transfer".to_owned())]);
    // Why did Bruno get it? The decisions say so (R16).
    let reasons: Vec<(String, Option<schema::AgentId>)> = schema::schema::routing_decisions::table
        .filter(schema::schema::routing_decisions::conversation_id.eq(c))
        .order(schema::schema::routing_decisions::id.asc())
        .select((schema::schema::routing_decisions::mode, schema::schema::routing_decisions::agent_id))
        .load(&mut conn)
        .unwrap();
    assert_eq!(reasons, [("auto".to_owned(), Some(ana)), ("transfer".to_owned(), Some(bruno))]);

    // Transfer to another service's queue keeps the original arrival (R1, R11).
    let c2 = engine.open_conversation(engine::NewConversation::new(s, Channel::Whatsapp, "5512")).await.unwrap();
    let owner = engine.conversation(c2).await.unwrap().owner.unwrap();
    let arrived = engine.conversation(c2).await.unwrap().arrived_at;
    engine.set_presence(ana, PresenceRequest::Offline).await.unwrap();
    engine.set_presence(bruno, PresenceRequest::Offline).await.unwrap();
    let waiting = engine.conversation(c2).await.unwrap();
    assert_eq!(waiting.state, ConversationState::InactiveInQueue, "its agent {owner} left");
    engine.set_presence(ana, PresenceRequest::Available).await.unwrap();
    engine.transfer(By::Agent(ana), c2, engine::TransferTarget::Service(other)).await.unwrap_or_else(|e| panic!("{e}"));
    let moved = engine.conversation(c2).await.unwrap();
    assert_eq!(moved.service, other);
    assert_eq!(moved.arrived_at, arrived);
    engine.stop();
}

#[actix_rt::test]
async fn a_customer_message_committed_just_before_the_conclusion_still_reaches_the_agent() {
    let w = World::new();
    let s = w.service("WhatsApp", Channel::Whatsapp, |_| {});
    let ana = w.agent("ana", &[s], None);
    let engine = w.engine().await;
    let (recipient, seen) = desk();
    engine.connect(ana, recipient).await.unwrap();
    engine.set_presence(ana, PresenceRequest::Available).await.unwrap();
    let c =
        engine.open_conversation(engine::NewConversation::new(s, Channel::Whatsapp, "5511988887777")).await.unwrap();
    // The message is stored; before it is pushed to the desks, Ana's conclusion commits.
    engine.conclude(By::Agent(ana), c, None).await.unwrap();
    let (direction, kind, status) = (MessageDirection::In, MessageKind::Text, MessageStatus::Received);
    let mut message = schema::models::Message::new(c, s, direction, kind, status, chrono::Utc::now());
    message.body = Some("one last thing".into());
    engine.publish_message(c, s, message).await;
    let pushed = || {
        seen.lock().unwrap().iter().any(|e| {
            matches!(e, engine::feed::EngineEvent::Message { conversation_id, owner, message, .. }
                if *conversation_id == c && *owner == Some(ana) && message.row.body.as_deref() == Some("one last thing"))
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !pushed() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(pushed(), "the message reached Ana's desk");
    engine.stop();
}
