//! A customer who goes away before being served (a caller hanging up in the queue): the waiting or
//! offered conversation ends `abandoned`, a pending offer is withdrawn, and it survives a restart;
//! a conversation in service is not the customer's to abandon.

use engine::{By, EngineError, PresenceRequest};
use schema::models::Conversation;
use schema::{Channel, ConversationState, store};

use crate::support::*;

#[actix_rt::test]
async fn a_caller_who_hangs_up_while_waiting_or_offered_is_abandoned_and_frees_the_offer() {
    let w = World::new();
    let voice = w.service("Central", Channel::Voice, |s| s.offer_timeout_s = Some(20));
    let ana = w.agent("ana", &[voice], None);
    let engine = w.engine().await;
    let call = |n: &str| engine::NewConversation::new(voice, Channel::Voice, n);

    // Nobody logged in: it waits; the caller hangs up.
    let waiting = engine.open_conversation(call("+5511900000001")).await.unwrap();
    engine.customer_left(waiting, "caller_hung_up").await.unwrap();
    assert!(engine.conversation(waiting).await.is_none(), "no longer open");
    let mut conn = w.db.conn();
    let row = Conversation::find(&mut conn, waiting).unwrap();
    assert_eq!((row.state, row.current_agent_id), (ConversationState::Abandoned, None));
    assert!(row.ended_at.is_some());
    let events = store::events_after(&mut conn, waiting, 0).unwrap();
    let last = events.last().unwrap();
    assert_eq!((last.kind.as_str(), last.reason.as_deref()), ("abandoned", Some("caller_hung_up")));

    // Offered to Ana: the offer is withdrawn and she is free for the next call at once.
    let offered = engine.open_conversation(call("+5511900000002")).await.unwrap();
    engine.set_presence(ana, PresenceRequest::Available).await.unwrap();
    assert_eq!(engine.conversation(offered).await.unwrap().state, ConversationState::Offered);
    engine.customer_left(offered, "caller_hung_up").await.unwrap();
    assert!(engine.agent(ana).await.unwrap().offers.is_empty());
    assert!(store::offers_of_open_conversations(&mut conn).unwrap().is_empty(), "no pending offer stored");
    let next = engine.open_conversation(call("+5511900000003")).await.unwrap();
    let facts = engine.conversation(next).await.unwrap();
    assert_eq!((facts.state, facts.offer.map(|(a, _)| a)), (ConversationState::Offered, Some(ana)));

    // Once in service it is not abandoned by the customer: the caller's hang-up concludes it.
    engine.accept(ana, next).await.unwrap();
    let refused = engine.customer_left(next, "caller_hung_up").await;
    assert!(matches!(refused, Err(EngineError::InvalidState(_))), "{refused:?}");
    assert_eq!(engine.conversation(next).await.unwrap().owner, Some(ana));
    engine.conclude(By::System, next, None).await.unwrap();
    assert!(matches!(engine.customer_left(next, "caller_hung_up").await, Err(EngineError::ConversationNotFound)));
    engine.stop();

    // After a restart the abandoned conversations stay ended.
    let engine = w.engine().await;
    assert!(engine.conversation(waiting).await.is_none());
    assert!(engine.conversation(offered).await.is_none());
    engine.stop();
}
