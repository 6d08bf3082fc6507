//! Timers with a controllable clock (no sleeping): inactivity (30 min), abandonment (48 h),
//! disconnect grace (R9), offer timeout (R7), alerts.

use std::time::Duration;

use engine::feed::{AlertKind, EngineEvent};
use engine::{By, NewConversation, Presence, PresenceRequest};
use schema::{Channel, ConversationState, SubState};

use crate::support::*;

#[actix_rt::test]
async fn inactivity_moves_to_the_inactive_tab_frees_capacity_and_a_message_brings_it_back() {
    let w = World::new();
    let s = w.service("Chat", Channel::Webchat, |_| {});
    let ana = w.agent("ana", &[s], Some(1));
    let engine = w.engine().await;
    engine.set_presence(ana, PresenceRequest::Available).await.unwrap();
    let first = engine.open_conversation(NewConversation::new(s, Channel::Webchat, "c1")).await.unwrap();
    let second = engine.open_conversation(NewConversation::new(s, Channel::Webchat, "c2")).await.unwrap();
    assert_eq!(engine.conversation(second).await.unwrap().state, ConversationState::Queued, "capacity 1");

    engine.advance_clock(29 * MINUTE).await;
    assert_eq!(engine.conversation(first).await.unwrap().sub_state, Some(SubState::Active));
    engine.advance_clock(2 * MINUTE).await;
    let c = engine.conversation(first).await.unwrap();
    assert_eq!(c.sub_state, Some(SubState::InactiveAtAgent), "30 minutes without a customer message");
    // The freed capacity went to the waiting customer at once (R4, R6).
    let c2 = engine.conversation(second).await.unwrap();
    assert_eq!((c2.state, c2.owner), (ConversationState::InService, Some(ana)));
    let stored = schema::models::Conversation::find(&mut w.db.conn(), first).unwrap();
    assert_eq!(stored.sub_state, Some(SubState::InactiveAtAgent));

    // The customer writes again: with the agent full, it waits at the head of the queue (R4);
    // once the agent concludes the other, it comes back to the same agent.
    engine.customer_message(first).await.unwrap();
    assert_eq!(engine.conversation(first).await.unwrap().state, ConversationState::Queued);
    engine.conclude(By::Agent(ana), second, None).await.unwrap();
    let c = engine.conversation(first).await.unwrap();
    assert_eq!((c.state, c.sub_state, c.owner), (ConversationState::InService, Some(SubState::Active), Some(ana)));
    engine.stop();
}

#[actix_rt::test]
async fn a_customer_message_reactivates_an_inactive_conversation_when_capacity_allows() {
    let w = World::new();
    let s = w.service("WhatsApp", Channel::Whatsapp, |_| {});
    let ana = w.agent("ana", &[s], None);
    let engine = w.engine().await;
    engine.set_presence(ana, PresenceRequest::Available).await.unwrap();
    let c = engine.open_conversation(NewConversation::new(s, Channel::Whatsapp, "5511")).await.unwrap();
    engine.advance_clock(31 * MINUTE).await;
    assert_eq!(engine.conversation(c).await.unwrap().sub_state, Some(SubState::InactiveAtAgent));
    engine.customer_message(c).await.unwrap();
    assert_eq!(engine.conversation(c).await.unwrap().sub_state, Some(SubState::Active));
    // The 30 minutes count again from the new message.
    engine.advance_clock(29 * MINUTE).await;
    assert_eq!(engine.conversation(c).await.unwrap().sub_state, Some(SubState::Active));
    engine.advance_clock(2 * MINUTE).await;
    assert_eq!(engine.conversation(c).await.unwrap().sub_state, Some(SubState::InactiveAtAgent));
    engine.stop();
}

#[actix_rt::test]
async fn after_48_hours_without_the_customer_it_is_abandoned_and_stored_so() {
    let w = World::new();
    let s = w.service("WhatsApp", Channel::Whatsapp, |_| {});
    let ana = w.agent("ana", &[s], None);
    let engine = w.engine().await;
    engine.set_presence(ana, PresenceRequest::Available).await.unwrap();
    let c = engine.open_conversation(NewConversation::new(s, Channel::Whatsapp, "5511")).await.unwrap();
    engine.advance_clock(47 * HOUR).await;
    assert!(engine.conversation(c).await.is_some());
    engine.advance_clock(2 * HOUR).await;
    assert!(engine.conversation(c).await.is_none(), "no longer open");
    let mut conn = w.db.conn();
    let row = schema::models::Conversation::find(&mut conn, c).unwrap();
    assert_eq!(row.state, ConversationState::Abandoned);
    assert!(schema::store::open_assignment(&mut conn, c).unwrap().is_none());
    assert!(engine.agent(ana).await.unwrap().conversations.is_empty());
    // The customer's next message starts a new conversation: the address is free again.
    let again = engine.open_conversation(NewConversation::new(s, Channel::Whatsapp, "5511")).await.unwrap();
    assert_ne!(again, c);
    engine.stop();
}

#[actix_rt::test]
async fn the_agent_is_warned_when_the_customer_is_silent() {
    let w = World::new();
    let s = w.service("Chat", Channel::Webchat, |s| {
        s.agent_alert_minutes = Some(5);
        s.customer_reminder_minutes = Some(10);
    });
    let ana = w.agent("ana", &[s], None);
    let engine = w.engine().await;
    let (recipient, seen) = desk();
    engine.connect(ana, recipient).await.unwrap();
    engine.set_presence(ana, PresenceRequest::Available).await.unwrap();
    let c = engine.open_conversation(NewConversation::new(s, Channel::Webchat, "c1")).await.unwrap();
    engine.advance_clock(6 * MINUTE).await;
    engine.advance_clock(5 * MINUTE).await;
    let alerts = || -> Vec<AlertKind> {
        seen.lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                EngineEvent::Alert(a) if a.conversation_id == c => Some(a.kind),
                _ => None,
            })
            .collect()
    };
    // An alert reaches the desk through the agent's actor, after the commit `advance_clock` waits for.
    for _ in 0..100 {
        if alerts().len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(alerts(), [AlertKind::CustomerSilent, AlertKind::CustomerReminder]);
    engine.stop();
}

#[actix_rt::test]
async fn a_lapsed_offer_goes_to_the_next_agent_and_never_back() {
    let w = World::new();
    let s = w.service("WhatsApp", Channel::Whatsapp, |s| s.offer_timeout_s = Some(20));
    let ana = w.agent("ana", &[s], None);
    let bruno = w.agent("bruno", &[s], None);
    let engine = w.engine().await;
    engine.set_presence(ana, PresenceRequest::Available).await.unwrap();
    w.clock.advance(Duration::from_secs(1));
    engine.set_presence(bruno, PresenceRequest::Available).await.unwrap();
    let c = engine.open_conversation(NewConversation::new(s, Channel::Whatsapp, "5511")).await.unwrap();
    let first = engine.conversation(c).await.unwrap();
    assert_eq!(first.state, ConversationState::Offered);
    let (offered_to, _) = first.offer.unwrap();
    assert_eq!(offered_to, ana, "the longest idle");

    engine.advance_clock(Duration::from_secs(21)).await;
    let second = engine.conversation(c).await.unwrap();
    assert_eq!(second.offer.map(|(a, _)| a), Some(bruno), "the next agent");
    engine.advance_clock(Duration::from_secs(21)).await;
    let third = engine.conversation(c).await.unwrap();
    assert_eq!(third.state, ConversationState::Queued, "nobody left who did not let it lapse");
    assert!(third.offer.is_none());
    // Manual pull still works for an agent who let it lapse.
    engine.pull_chosen(ana, c).await.unwrap();
    assert_eq!(engine.conversation(c).await.unwrap().owner, Some(ana));

    let mut conn = w.db.conn();
    use diesel::prelude::*;
    let outcomes: Vec<Option<String>> = schema::schema::offers::table
        .filter(schema::schema::offers::conversation_id.eq(c))
        .order(schema::schema::offers::offered_at.asc())
        .select(schema::schema::offers::outcome)
        .load(&mut conn)
        .unwrap();
    assert_eq!(outcomes, [Some("lapsed".to_owned()), Some("lapsed".to_owned())]);
    engine.stop();
}

#[actix_rt::test]
async fn a_disconnected_agent_keeps_its_chats_through_the_grace_and_loses_them_after() {
    let w = World::new();
    let s = w.service("WhatsApp", Channel::Whatsapp, |_| {});
    let ana = w.agent("ana", &[s], None);
    let bruno = w.agent("bruno", &[s], None);
    let engine = w.engine().await;
    let (desk_a, _) = desk();
    let tab = engine.connect(ana, desk_a.clone()).await.unwrap();
    engine.set_presence(ana, PresenceRequest::Available).await.unwrap();
    let c = engine.open_conversation(NewConversation::new(s, Channel::Whatsapp, "5511")).await.unwrap();
    assert_eq!(engine.conversation(c).await.unwrap().owner, Some(ana));

    // The browser drops and comes back within the grace: nothing changes.
    engine.disconnect(ana, tab).await;
    engine.advance_clock(Duration::from_secs(50)).await;
    let tab = engine.connect(ana, desk_a).await.unwrap();
    engine.advance_clock(Duration::from_secs(30)).await;
    assert_eq!(engine.conversation(c).await.unwrap().owner, Some(ana));

    // It drops again and stays away past the 60-second grace.
    engine.disconnect(ana, tab).await;
    engine.set_presence(bruno, PresenceRequest::Available).await.unwrap();
    engine.advance_clock(Duration::from_secs(59)).await;
    assert_eq!(engine.conversation(c).await.unwrap().owner, Some(ana));
    engine.advance_clock(Duration::from_secs(2)).await;
    assert_eq!(engine.agent(ana).await.unwrap().presence, Presence::Offline);
    let c_now = engine.conversation(c).await.unwrap();
    assert_eq!(c_now.owner, Some(bruno), "redistributed to the logged-in agent, history kept");
    assert_eq!(c_now.first_agent, Some(ana));
    let events = schema::store::events_after(&mut w.db.conn(), c, 0).unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["arrived", "assigned", "requeued", "assigned"]);
    assert_eq!(events[2].to_state, Some(ConversationState::InactiveInQueue));
    engine.stop();
}

#[actix_rt::test]
async fn an_agent_whose_desk_dropped_gets_nothing_new_until_it_is_back() {
    let w = World::new();
    let s = w.service("Telegram", Channel::Telegram, |s| s.offer_timeout_s = Some(30));
    let ana = w.agent("ana", &[s], Some(1));
    let bruno = w.agent("bruno", &[s], Some(1));
    let engine = w.engine().await;
    let (desk_a, _) = desk();
    let (desk_b, _) = desk();
    let tab_a = engine.connect(ana, desk_a).await.unwrap();
    let tab_b = engine.connect(bruno, desk_b).await.unwrap();
    engine.set_presence(ana, PresenceRequest::Available).await.unwrap();
    engine.set_presence(bruno, PresenceRequest::Available).await.unwrap();
    let first = engine.open_conversation(NewConversation::new(s, Channel::Telegram, "1")).await.unwrap();
    let offered_to = engine.conversation(first).await.unwrap().offer.map(|(a, _)| a).unwrap();
    let (gone, other, gone_tab) = if offered_to == ana { (ana, bruno, tab_a) } else { (bruno, ana, tab_b) };

    // The desk with the offer drops: the offer goes to the colleague at once, not after 30 s.
    engine.disconnect(gone, gone_tab).await;
    let facts = settle(&engine, first, |f| f.offer.map(|(a, _)| a) == Some(other)).await;
    assert_eq!(facts.offer.map(|(a, _)| a), Some(other));
    assert_eq!(engine.agent(gone).await.unwrap().presence, Presence::Available, "still logged in (grace)");

    // The colleague is full; the one away is free but gets nothing: the next customer waits…
    engine.accept(other, first).await.unwrap();
    let second = engine.open_conversation(NewConversation::new(s, Channel::Telegram, "2")).await.unwrap();
    assert_eq!(engine.conversation(second).await.unwrap().state, ConversationState::Queued);

    // …and is offered the moment a desk is back.
    let (desk_again, _) = desk();
    engine.connect(gone, desk_again).await.unwrap();
    let facts = settle(&engine, second, |f| f.offer.map(|(a, _)| a) == Some(gone)).await;
    assert_eq!(facts.offer.map(|(a, _)| a), Some(gone));
    engine.stop();
}

/// The conversation once `done` holds (the agent actor tells the book asynchronously), or as it
/// is after a while.
async fn settle(
    engine: &engine::Engine,
    c: schema::ConversationId,
    done: impl Fn(&engine::ConversationFacts) -> bool,
) -> engine::ConversationFacts {
    for _ in 0..200 {
        let facts = engine.conversation(c).await.unwrap();
        if done(&facts) {
            return facts;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    engine.conversation(c).await.unwrap()
}

#[actix_rt::test]
async fn a_pause_asked_with_open_chats_waits_for_the_last_one() {
    let w = World::new();
    let s = w.service("WhatsApp", Channel::Whatsapp, |_| {});
    let ana = w.agent("ana", &[s], None);
    let mut conn = w.db.conn();
    let lunch = schema::models::PauseReason {
        id: schema::PauseReasonId::new(),
        name: "Almoço".into(),
        active: true,
        created_at: t0(),
    }
    .insert(&mut conn)
    .unwrap()
    .id;
    let engine = w.engine().await;
    engine.set_presence(ana, PresenceRequest::Available).await.unwrap();
    let c = engine.open_conversation(NewConversation::new(s, Channel::Whatsapp, "5511")).await.unwrap();
    let p = engine.set_presence(ana, PresenceRequest::Paused(lunch)).await.unwrap();
    assert_eq!(p, Presence::PausePending { reason: lunch });
    // Nothing new while pause-pending.
    let other = engine.open_conversation(NewConversation::new(s, Channel::Whatsapp, "5512")).await.unwrap();
    assert_eq!(engine.conversation(other).await.unwrap().state, ConversationState::Queued);
    engine.conclude(By::Agent(ana), c, None).await.unwrap();
    assert_eq!(engine.agent(ana).await.unwrap().presence, Presence::Paused { reason: lunch });
    let open = schema::store::open_presence(&mut conn, ana).unwrap().unwrap();
    assert_eq!((open.status, open.pause_reason_id), (schema::PresenceStatus::Paused, Some(lunch)));
    // Ending the pause makes the agent available and the waiting customer arrives.
    engine.set_presence(ana, PresenceRequest::Available).await.unwrap();
    assert_eq!(engine.conversation(other).await.unwrap().owner, Some(ana));
    engine.stop();
}

#[actix_rt::test]
async fn out_of_hours_arrivals_are_flagged_and_held_until_the_opening() {
    let w = World::new();
    // Open 08:00-18:00 São Paulo time (11:00-21:00 UTC); t0 is 06:00 there.
    let hours = serde_json::json!({"mon": [["08:00", "18:00"]], "tue": [["08:00", "18:00"]]});
    let held = w.service("WhatsApp", Channel::Whatsapp, |s| {
        s.business_hours = Some(hours.clone());
        s.out_of_hours_hold = true;
    });
    let flagged = w.service("Chat", Channel::Webchat, |s| s.business_hours = Some(hours.clone()));
    let ana = w.agent("ana", &[held, flagged], None);
    let engine = w.engine().await;
    engine.set_presence(ana, PresenceRequest::Available).await.unwrap();

    let c1 = engine.open_conversation(NewConversation::new(held, Channel::Whatsapp, "5511")).await.unwrap();
    let c2 = engine.open_conversation(NewConversation::new(flagged, Channel::Webchat, "visitor")).await.unwrap();
    let mut conn = w.db.conn();
    let row1 = schema::models::Conversation::find(&mut conn, c1).unwrap();
    assert!(row1.out_of_hours);
    assert_eq!((row1.state, row1.hold_reason), (ConversationState::PreOpening, Some(schema::HoldReason::OutOfHours)));
    let row2 = schema::models::Conversation::find(&mut conn, c2).unwrap();
    assert!(row2.out_of_hours, "flagged even when not held");
    assert_eq!(engine.conversation(c2).await.unwrap().owner, Some(ana));

    engine.advance_clock(HOUR + 59 * MINUTE).await;
    assert_eq!(engine.conversation(c1).await.unwrap().state, ConversationState::PreOpening);
    engine.advance_clock(2 * MINUTE).await;
    let c = engine.conversation(c1).await.unwrap();
    assert_eq!((c.state, c.owner), (ConversationState::InService, Some(ana)), "released at 08:00 and routed");
    let row1 = schema::models::Conversation::find(&mut conn, c1).unwrap();
    assert_eq!(row1.hold_reason, None);
    engine.stop();
}
