//! Routing flows an agent would notice, through the `Engine` facade.

use engine::{By, PresenceRequest};
use schema::{Channel, ConversationState, SubState};

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
