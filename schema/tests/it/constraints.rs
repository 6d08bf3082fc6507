//! The invariants the engine relies on are also constraints in PostgreSQL: each test makes the
//! write they must refuse, checks the error says which constraint refused it, and checks that
//! what stays allowed is still accepted.

use diesel::prelude::*;
use schema::models::{
    Agent, Conversation, ConversationChangeset, Customer, Message, NewAssignment, NewOffer, NewPresence,
};
use schema::testing::TestDb;
use schema::{
    AgentId, AssignmentVia, Channel, ConversationState, MessageId, OfferOutcome, PresenceStatus, StoreError, SubState,
    store,
};

use crate::fixtures::{self, assert_conflict, assert_invalid, at};

#[test]
fn a_conversation_has_at_most_one_open_assignment() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let first_agent = fixtures::insert_agent(&mut conn);
    let second_agent = fixtures::insert_agent(&mut conn);
    let service = fixtures::insert_service(&mut conn, Channel::Whatsapp);
    let conversation = fixtures::in_service(fixtures::queued_conversation(&service, "5511987654321"), first_agent.id)
        .insert(&mut conn)
        .expect("insert a conversation");
    let assign = |agent: AgentId, seconds: i64| NewAssignment {
        conversation_id: conversation.id,
        agent_id: agent,
        channel: Channel::Whatsapp,
        via: AssignmentVia::Auto,
        assigned_at: at(seconds),
    };
    let first = assign(first_agent.id, 10).insert(&mut conn).expect("first assignment");

    assert_conflict(assign(second_agent.id, 20).insert(&mut conn), "assignments_one_open_per_conversation");
    assert_eq!(store::open_assignment(&mut conn, conversation.id).expect("open assignment"), Some(first));

    assert!(store::end_assignment(&mut conn, conversation.id, at(30), "transfer").expect("end the first"));
    let second = assign(second_agent.id, 30).insert(&mut conn).expect("a new one once the first ended");
    assert_eq!(store::open_assignment(&mut conn, conversation.id).expect("open assignment"), Some(second));
    assert_eq!(store::open_assignments(&mut conn).expect("open assignments").len(), 1);
}

#[test]
fn a_provider_message_id_is_stored_once_per_service() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let service = fixtures::insert_service(&mut conn, Channel::Whatsapp);
    let other_service = fixtures::insert_service(&mut conn, Channel::Whatsapp);
    let conversation = fixtures::insert_queued(&mut conn, &service, "5511987654321");
    let other_conversation = fixtures::insert_queued(&mut conn, &other_service, "5511987654321");

    let first = fixtures::inbound_message(&conversation, "wamid.ABC");
    assert_eq!(store::insert_message_once(&mut conn, &first).expect("first delivery"), Some(first.clone()));

    // The provider delivers the same message again (webhook retry): nothing new is stored.
    let replay = Message { id: MessageId::new(), created_at: at(11), ..first.clone() };
    assert_eq!(store::insert_message_once(&mut conn, &replay).expect("replay"), None);
    assert_eq!(fixtures::count_provider_id(&mut conn, service.id, "wamid.ABC"), 1);
    assert_eq!(store::messages_of(&mut conn, conversation.id).expect("messages"), vec![first.clone()]);

    // The same id in another service is another message.
    let elsewhere = fixtures::inbound_message(&other_conversation, "wamid.ABC");
    assert_eq!(store::insert_message_once(&mut conn, &elsewhere).expect("other service"), Some(elsewhere));
    assert_eq!(fixtures::count_provider_id(&mut conn, other_service.id, "wamid.ABC"), 1);

    // A plain insert of the replay is refused by the index that makes the above work.
    assert_conflict(replay.insert(&mut conn), "messages_provider_id_key");
    assert_eq!(fixtures::count_provider_id(&mut conn, service.id, "wamid.ABC"), 1);
}

#[test]
fn an_idempotency_key_is_used_once_per_conversation() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let service = fixtures::insert_service(&mut conn, Channel::Webchat);
    let conversation = fixtures::insert_queued(&mut conn, &service, "visitor-1");
    let send = || Message { idempotency_key: Some("key-1".to_owned()), ..fixtures::outbound_message(&conversation) };
    send().insert(&mut conn).expect("first send");
    assert_conflict(send().insert(&mut conn), "messages_idempotency_key");
}

#[test]
fn cpf_and_cnpj_are_unique_and_well_formed() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let with_cpf = |cpf: &str| Customer { cpf: Some(cpf.to_owned()), ..fixtures::customer() };
    let with_cnpj = |cnpj: &str| Customer { cnpj: Some(cnpj.to_owned()), ..fixtures::customer() };

    with_cpf("52998224725").insert(&mut conn).expect("first customer with the CPF");
    assert_conflict(with_cpf("52998224725").insert(&mut conn), "customers_cpf_key");

    with_cnpj("12ABC34501DE35").insert(&mut conn).expect("first company with the CNPJ");
    assert_conflict(with_cnpj("12ABC34501DE35").insert(&mut conn), "customers_cnpj_key");

    assert_invalid(with_cpf("529.982.247-25").insert(&mut conn), "customers_cpf_check");
    assert_invalid(with_cpf("5299822472").insert(&mut conn), "customers_cpf_check");
    assert_invalid(with_cpf("529982247250").insert(&mut conn), "customers_cpf_check");
    assert_invalid(with_cnpj("12.ABC.345/01DE-35").insert(&mut conn), "customers_cnpj_check");

    // Customers without documents do not collide with each other.
    fixtures::insert_customer(&mut conn);
    fixtures::insert_customer(&mut conn);
}

#[test]
fn one_open_conversation_per_service_and_address() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let agent = fixtures::insert_agent(&mut conn);
    let service = fixtures::insert_service(&mut conn, Channel::Whatsapp);
    let other_service = fixtures::insert_service(&mut conn, Channel::Whatsapp);
    let address = "5511987654321";
    let first = fixtures::in_service(fixtures::queued_conversation(&service, address), agent.id)
        .insert(&mut conn)
        .expect("first conversation");

    let second = fixtures::queued_conversation(&service, address);
    assert_conflict(second.insert(&mut conn), "conversations_one_open_per_address");
    // Another address, or the same address in another service, is another conversation.
    fixtures::insert_queued(&mut conn, &service, "5511912345678");
    fixtures::insert_queued(&mut conn, &other_service, address);

    // Concluding needs the row to stop looking in service (CHECKs), then frees the address.
    let keep_owner = ConversationChangeset {
        state: Some(ConversationState::Concluded),
        sub_state: Some(None),
        ended_at: Some(Some(at(100))),
        ..Default::default()
    };
    assert_invalid(store::update_conversation(&mut conn, first.id, &keep_owner), "conversations_check1");
    let conclude =
        ConversationChangeset { current_agent_id: Some(None), concluded_by_id: Some(Some(agent.id)), ..keep_owner };
    store::update_conversation(&mut conn, first.id, &conclude).expect("conclude the first");

    let stored = second.insert(&mut conn).expect("a new open conversation once the first concluded");
    assert_eq!(store::open_conversation_for(&mut conn, service.id, address).expect("open for address"), Some(stored));
}

#[test]
fn logins_are_unique_ignoring_case_and_extensions_are_unique() {
    let db = TestDb::new();
    let mut conn = db.conn();
    Agent { login: "Maria.Silva".to_owned(), ..fixtures::agent() }.insert(&mut conn).expect("first login");
    assert_conflict(
        Agent { login: "maria.SILVA".to_owned(), ..fixtures::agent() }.insert(&mut conn),
        "agents_login_key",
    );
    assert_invalid(Agent { login: "   ".to_owned(), ..fixtures::agent() }.insert(&mut conn), "agents_login_not_blank");

    Agent { extension: Some("2001".to_owned()), ..fixtures::agent() }.insert(&mut conn).expect("first extension");
    assert_conflict(
        Agent { extension: Some("2001".to_owned()), ..fixtures::agent() }.insert(&mut conn),
        "agents_extension_key",
    );
    // Agents without an extension do not collide.
    fixtures::insert_agent(&mut conn);
    fixtures::insert_agent(&mut conn);
}

#[test]
fn an_agent_has_one_open_presence_interval() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let agent = fixtures::insert_agent(&mut conn);
    let presence = |status: PresenceStatus, seconds: i64| NewPresence {
        agent_id: agent.id,
        status,
        pause_reason_id: None,
        started_at: at(seconds),
    };
    presence(PresenceStatus::Available, 0).insert(&mut conn).expect("first interval");
    assert_conflict(presence(PresenceStatus::Offline, 5).insert(&mut conn), "presence_history_one_open");

    store::close_presence(&mut conn, agent.id, at(10)).expect("close");
    let next = presence(PresenceStatus::Offline, 10).insert(&mut conn).expect("next interval once closed");
    assert_eq!(store::open_presence(&mut conn, agent.id).expect("open presence"), Some(next));

    // A pause names its reason; other statuses have none.
    store::close_presence(&mut conn, agent.id, at(20)).expect("close again");
    assert_invalid(presence(PresenceStatus::Paused, 20).insert(&mut conn), "presence_history_check1");
}

#[test]
fn a_conversation_has_one_pending_offer() {
    use schema::schema::offers;

    let db = TestDb::new();
    let mut conn = db.conn();
    let first_agent = fixtures::insert_agent(&mut conn);
    let second_agent = fixtures::insert_agent(&mut conn);
    let service = fixtures::insert_service(&mut conn, Channel::Telegram);
    let conversation =
        Conversation { state: ConversationState::Offered, ..fixtures::queued_conversation(&service, "chat-42") }
            .insert(&mut conn)
            .expect("insert a conversation");
    let offer = |agent: AgentId, seconds: i64| NewOffer {
        conversation_id: conversation.id,
        agent_id: agent,
        offered_at: at(seconds),
        expires_at: at(seconds + 20),
    };
    let first = offer(first_agent.id, 0).insert(&mut conn).expect("first offer");
    assert_conflict(offer(second_agent.id, 5).insert(&mut conn), "offers_one_pending_per_conversation");

    diesel::update(offers::table.find(first.id))
        .set((offers::resolved_at.eq(at(20)), offers::outcome.eq(OfferOutcome::Lapsed)))
        .execute(&mut conn)
        .expect("the first offer lapses");
    offer(second_agent.id, 20).insert(&mut conn).expect("a new offer once the first is resolved");
}

#[test]
fn conversation_checks_tie_sub_state_owner_and_end_to_the_state() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let agent = fixtures::insert_agent(&mut conn);
    let service = fixtures::insert_service(&mut conn, Channel::Webchat);
    let in_service = || fixtures::in_service(fixtures::queued_conversation(&service, "visitor-7"), agent.id);

    assert_invalid(Conversation { sub_state: None, ..in_service() }.insert(&mut conn), "conversations_check");
    assert_invalid(
        Conversation { sub_state: Some(SubState::Active), ..fixtures::queued_conversation(&service, "visitor-7") }
            .insert(&mut conn),
        "conversations_check",
    );
    assert_invalid(Conversation { current_agent_id: None, ..in_service() }.insert(&mut conn), "conversations_check1");
    assert_invalid(
        Conversation { state: ConversationState::Abandoned, ..fixtures::queued_conversation(&service, "visitor-7") }
            .insert(&mut conn),
        "conversations_check2",
    );
    assert_invalid(
        Conversation { ended_at: Some(at(9)), ..fixtures::queued_conversation(&service, "visitor-7") }
            .insert(&mut conn),
        "conversations_check2",
    );
    // The well-formed row is accepted.
    in_service().insert(&mut conn).expect("a conversation in service with sub-state and owner");
}

#[test]
fn references_to_missing_rows_are_refused() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let service = fixtures::insert_service(&mut conn, Channel::Email);
    let result = store::add_membership(&mut conn, AgentId::new(), service.id, at(0));
    match result {
        Err(StoreError::Reference { constraint }) => {
            assert_eq!(constraint, "memberships_agent_id_fkey")
        }
        other => panic!("expected a reference error, got {other:?}"),
    }
    assert_eq!(store::list_memberships(&mut conn).expect("memberships"), Vec::new());
}
