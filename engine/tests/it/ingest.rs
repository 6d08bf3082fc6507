//! Ingest's group commit: many customer messages at once are stored together, each
//! caller answered after the commit holding its message, with the outcomes of the one-message
//! path: a replay stores nothing, one new address opens one conversation, and the engine knows
//! every conversation opened by the time its messages' callers are answered.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;
use engine::ingest::{InboundMessage, Ingested};
use schema::{Channel, ConversationId, ConversationState, MessageKind, ServiceId};

use crate::support::World;

fn inbound(service: ServiceId, customer: usize, n: usize) -> InboundMessage {
    InboundMessage {
        service,
        channel: Channel::Whatsapp,
        address: format!("55119{customer:08}"),
        customer_name: None,
        customer_id: None,
        provider_message_id: Some(format!("wamid.{customer}.{n}")),
        kind: MessageKind::Text,
        body: Some(format!("message {n}")),
        payload: serde_json::json!({}),
        sent_at: None,
        subject: None,
    }
}

/// Ingests every message at once; the outcomes in the same order.
async fn all_at_once(engine: &engine::Engine, messages: Vec<InboundMessage>) -> Vec<Ingested> {
    let handles: Vec<_> = messages
        .into_iter()
        .map(|m| {
            let engine = engine.clone();
            actix_rt::spawn(async move { engine.ingest(m, Default::default()).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for h in handles {
        outcomes.push(h.await.unwrap().expect("stored or a duplicate").0);
    }
    outcomes
}

#[actix_rt::test]
async fn many_messages_at_once_are_stored_once_each_with_one_conversation_per_address() {
    let world = World::new();
    let service = world.service("WA", Channel::Whatsapp, |_| {});
    let engine = world.engine().await;

    // 20 new customers writing 5 messages each, every message delivered 3 times, all at once.
    let mut wave = Vec::new();
    for _copy in 0..3 {
        for customer in 0..20 {
            for n in 0..5 {
                wave.push(inbound(service, customer, n));
            }
        }
    }
    let outcomes = all_at_once(&engine, wave).await;
    let stored: Vec<(ConversationId, bool)> = outcomes
        .iter()
        .filter_map(|o| match o {
            Ingested::Stored { conversation, opened, .. } => Some((*conversation, *opened)),
            Ingested::Duplicate => None,
        })
        .collect();
    assert_eq!(stored.len(), 100, "each message stored once; the other 200 deliveries are duplicates");
    let conversations: HashSet<ConversationId> = stored.iter().map(|(c, _)| *c).collect();
    assert_eq!(conversations.len(), 20, "one conversation per customer");
    let openers: Vec<ConversationId> = stored.iter().filter(|(_, opened)| *opened).map(|(c, _)| *c).collect();
    assert_eq!(openers.len(), 20, "each conversation opened by exactly one message");
    assert_eq!(openers.iter().collect::<HashSet<_>>().len(), 20);
    for id in &conversations {
        let facts = engine.conversation(*id).await.expect("the engine knows every conversation opened");
        assert_eq!(facts.state, ConversationState::Queued);
    }

    // What the database holds: 20 conversations of 5 messages each.
    let mut conn = world.db.conn();
    let per_conversation: HashMap<ConversationId, i64> = {
        use schema::schema::messages::dsl::*;
        messages.group_by(conversation_id).select((conversation_id, diesel::dsl::count_star())).load(&mut conn).unwrap()
    }
    .into_iter()
    .collect();
    assert_eq!(per_conversation.len(), 20);
    assert!(per_conversation.values().all(|n| *n == 5), "{per_conversation:?}");
    let open: i64 = {
        use schema::schema::conversations::dsl::*;
        conversations.filter(last_customer_message_at.is_not_null()).count().get_result(&mut conn).unwrap()
    };
    assert_eq!(open, 20);

    // A second wave: the first wave again (all duplicates) and one new message per customer,
    // which joins the customer's open conversation.
    let mut wave: Vec<InboundMessage> =
        (0..20).flat_map(|c| (0..5).map(move |n| (c, n))).map(|(c, n)| inbound(service, c, n)).collect();
    wave.extend((0..20).map(|c| inbound(service, c, 5)));
    let outcomes = all_at_once(&engine, wave).await;
    assert!(outcomes[..100].iter().all(|o| *o == Ingested::Duplicate), "replays of stored messages store nothing");
    for o in &outcomes[100..] {
        match o {
            Ingested::Stored { conversation, opened: false, .. } => assert!(conversations.contains(conversation)),
            other => panic!("a new message of an open conversation joins it: {other:?}"),
        }
    }
    let total: i64 = schema::schema::messages::table.count().get_result(&mut conn).unwrap();
    assert_eq!(total, 120);
}

#[actix_rt::test]
async fn a_replay_after_the_conversation_ended_stores_nothing_and_opens_nothing() {
    let world = World::new();
    let service = world.service("WA", Channel::Whatsapp, |_| {});
    let ana = world.agent("ana", &[service], None);
    let engine = world.engine().await;
    engine.set_presence(ana, engine::PresenceRequest::Available).await.unwrap();
    let Ingested::Stored { conversation, .. } =
        engine.ingest(inbound(service, 1, 0), Default::default()).await.unwrap().0
    else {
        panic!("the first delivery is stored");
    };
    assert_eq!(engine.conversation(conversation).await.unwrap().owner, Some(ana));
    engine.conclude(engine::By::Agent(ana), conversation, None).await.expect("ana concludes it");

    // The provider delivers the same message again (alone, then with a new one of the customer).
    assert_eq!(engine.ingest(inbound(service, 1, 0), Default::default()).await.unwrap().0, Ingested::Duplicate);
    let outcomes = all_at_once(&engine, vec![inbound(service, 1, 0), inbound(service, 1, 1)]).await;
    assert_eq!(outcomes[0], Ingested::Duplicate);
    let Ingested::Stored { conversation: second, opened: true, .. } = outcomes[1] else {
        panic!("the new message opens a new conversation: {:?}", outcomes[1]);
    };
    assert_ne!(second, conversation);

    let mut conn = world.db.conn();
    let conversations: i64 = schema::schema::conversations::table.count().get_result(&mut conn).unwrap();
    assert_eq!(conversations, 2, "the ended one and the one the new message opened, no other");
    let messages: i64 = schema::schema::messages::table.count().get_result(&mut conn).unwrap();
    assert_eq!(messages, 2);
}

/// A customer's text with a NUL character (which PostgreSQL cannot store) is stored without it,
/// and acknowledged: the provider would otherwise retry it forever. Nothing else of its batch,
/// into open conversations and into new ones, is held back by it.
#[actix_rt::test]
async fn a_message_with_a_nul_is_stored_without_it_and_its_batch_with_it() {
    let world = World::new();
    let service = world.service("WA", Channel::Whatsapp, |_| {});
    let engine = world.engine().await;
    // Ten customers with an open conversation.
    all_at_once(&engine, (0..10).map(|c| inbound(service, c, 0)).collect()).await;

    // All at once: each writes again, one of them with a NUL in every text, and five new customers write.
    let poisoned = InboundMessage {
        body: Some("tudo\0bem".into()),
        customer_name: Some("Ana\0".into()),
        payload: serde_json::json!({"caption": "a\0b", "nested": [{"k\0": "\0"}]}),
        ..inbound(service, 3, 1)
    };
    let mut wave: Vec<InboundMessage> = (0..10).filter(|c| *c != 3).map(|c| inbound(service, c, 1)).collect();
    wave.push(poisoned);
    wave.extend((10..15).map(|c| inbound(service, c, 0)));
    let handles: Vec<_> = wave
        .into_iter()
        .map(|m| {
            let engine = engine.clone();
            let pid = m.provider_message_id.clone().unwrap();
            actix_rt::spawn(async move { (pid, engine.ingest(m, Default::default()).await.map(|(o, _)| o)) })
        })
        .collect();
    for h in handles {
        match h.await.unwrap() {
            (_, Ok(Ingested::Stored { .. })) => {}
            (pid, other) => panic!("{pid} is stored: {other:?}"),
        }
    }

    let mut conn = world.db.conn();
    use schema::schema::messages::dsl as m;
    let stored: Vec<Option<String>> = m::messages.select(m::provider_message_id).load(&mut conn).unwrap();
    assert_eq!(stored.len(), 10 + 10 + 5);
    let (body, payload): (Option<String>, serde_json::Value) = m::messages
        .filter(m::provider_message_id.eq("wamid.3.1"))
        .select((m::body, m::payload))
        .first(&mut conn)
        .unwrap();
    assert_eq!(body.as_deref(), Some("tudobem"), "the text around the NUL is kept");
    assert_eq!(payload, serde_json::json!({"caption": "ab", "nested": [{"k": ""}]}));
}
