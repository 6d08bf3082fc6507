//! The demo contact center of `make run` (web's seed) routes through the engine (R6) as a user
//! trying Omniroute would expect: an available demo agent gets a new WhatsApp conversation.

use engine::{By, Clock, Engine, NewConversation, PresenceRequest};
use schema::testing::TestDb;
use schema::{Channel, Connection, ConversationState, store};

#[actix_rt::test]
async fn the_seeded_demo_routes_a_whatsapp_conversation_to_an_available_agent() {
    let db = TestDb::new();
    let mut conn = db.conn();
    conn.transaction(web::boot::seed::seed).unwrap();
    let whatsapp =
        store::list_services(&mut conn).unwrap().into_iter().find(|s| s.channel == Channel::Whatsapp).unwrap();
    let ana = store::agent_by_login(&mut conn, "ana").unwrap().unwrap();

    let engine = Engine::start(db.pool(), Clock::System).await.unwrap();
    engine.set_presence(ana.id, PresenceRequest::Available).await.unwrap();
    let c =
        engine.open_conversation(NewConversation::new(whatsapp.id, Channel::Whatsapp, "5511987654321")).await.unwrap();
    let facts = engine.conversation(c).await.unwrap();
    assert_eq!((facts.state, facts.owner), (ConversationState::InService, Some(ana.id)));

    engine.conclude(By::Agent(ana.id), c, None).await.unwrap();
    let row = schema::models::Conversation::find(&mut conn, c).unwrap();
    assert_eq!(
        (row.state, row.first_agent_id, row.concluded_by_id),
        (ConversationState::Concluded, Some(ana.id), Some(ana.id))
    );
    engine.stop();
}
