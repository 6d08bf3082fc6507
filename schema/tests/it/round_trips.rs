//! Every table stores every column as written and returns it unchanged: each test inserts a
//! row with a non-default value in every column (`Some` for optionals, non-empty arrays and
//! JSON), reads it back and compares. Tables with a changeset also go through their update.

use diesel::prelude::*;
use schema::models::*;
use schema::testing::TestDb;
use schema::{
    Actor, AgentId, AssignmentVia, AttachmentId, CannedMessageId, CaseId, CaseStatus, Channel, ChannelIdentityId,
    ClassificationId, ConversationId, ConversationState, DecisionMode, Direction, EmailTemplateId, FieldType,
    FormAnswerId, FormFieldId, HoldReason, MessageDirection, MessageId, MessageKind, MessageStatus, OfferOutcome,
    PauseReasonId, PgConnection, PresenceStatus, Role, ServiceTypeId, StoreError, SubState, TemplateCategory,
    TemplateStatus, WhatsappContactId, WhatsappTemplateId, store,
};
use serde_json::json;

use crate::fixtures::{self, at};

#[test]
fn agents_round_trip() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let agent = Agent {
        login: "Ana.Souza".to_owned(),
        role: Role::Supervisor,
        active: false,
        extension: Some("2041".to_owned()),
        auto_distribution: Some(false),
        created_at: at(1),
        updated_at: at(2),
        ..fixtures::agent()
    };
    assert_eq!(agent.insert(&mut conn).expect("insert"), agent);
    assert_eq!(Agent::find(&mut conn, agent.id).expect("find"), agent);
}

#[test]
fn agents_update_changes_only_what_the_changeset_names() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let agent = Agent { extension: Some("2041".to_owned()), ..fixtures::agent() }.insert(&mut conn).expect("insert");
    let changes = AgentChangeset {
        name: Some("Ana Lima".to_owned()),
        role: Some(Role::Admin),
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$bm92bw$bm92b2hhc2g".to_owned()),
        active: Some(false),
        extension: Some(None),
        auto_distribution: Some(Some(true)),
        updated_at: Some(at(60)),
    };
    let expected = Agent {
        name: "Ana Lima".to_owned(),
        role: Role::Admin,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$bm92bw$bm92b2hhc2g".to_owned(),
        active: false,
        extension: None,
        auto_distribution: Some(true),
        updated_at: at(60),
        ..agent.clone()
    };
    assert_eq!(store::update_agent(&mut conn, agent.id, &changes).expect("update"), expected);
    assert_eq!(Agent::find(&mut conn, agent.id).expect("find"), expected);

    // An empty-but-for-one-field changeset leaves the rest alone.
    let rename = AgentChangeset { name: Some("Ana L.".to_owned()), ..Default::default() };
    let renamed = store::update_agent(&mut conn, agent.id, &rename).expect("rename");
    assert_eq!(renamed, Agent { name: "Ana L.".to_owned(), ..expected });

    assert!(matches!(store::update_agent(&mut conn, AgentId::new(), &rename), Err(StoreError::NotFound)));
}

#[test]
fn sessions_round_trip() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let agent = fixtures::insert_agent(&mut conn);
    let session = Session {
        created_at: at(1),
        last_seen_at: at(30),
        expires_at: at(7200),
        revoked_at: Some(at(45)),
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64)".to_owned()),
        remote_addr: Some("203.0.113.7".to_owned()),
        ..fixtures::session(agent.id, &[0xde, 0xad, 0x00, 0xbe, 0xef, 0xff])
    };
    assert_eq!(session.insert(&mut conn).expect("insert"), session);
    assert_eq!(Session::find(&mut conn, session.id).expect("find"), session);
}

fn full_service() -> Service {
    Service {
        active: false,
        auto_distribution: false,
        offer_timeout_s: Some(20),
        inactivity_minutes: 15,
        abandon_hours: 24,
        agent_alert_minutes: Some(5),
        customer_reminder_minutes: Some(10),
        customer_reminder_text: Some("Ainda está aí?".to_owned()),
        disconnect_grace_s: 30,
        allow_cancel: false,
        email_approval: true,
        business_hours: Some(json!({"mon": [["08:00", "12:00"], ["13:00", "18:00"]], "sat": []})),
        time_zone: "America/Manaus".to_owned(),
        out_of_hours_hold: true,
        out_of_hours_message: Some("Atendemos de segunda a sexta, das 8h às 18h.".to_owned()),
        automation_url: Some("https://bot.example.test/route".to_owned()),
        automation_timeout_ms: 1500,
        portfolio_wait_s: Some(120),
        provider: json!({"phone_number_id": "109876543210", "access_token": "EAAG-secret", "version": 21}),
        provider_key: Some("109876543210".to_owned()),
        created_at: at(1),
        updated_at: at(2),
        ..fixtures::service(Channel::Whatsapp)
    }
}

#[test]
fn services_round_trip() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let service = full_service();
    assert_eq!(service.insert(&mut conn).expect("insert"), service);
    assert_eq!(Service::find(&mut conn, service.id).expect("find"), service);
}

#[test]
fn services_update_changes_only_what_the_changeset_names() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let service = full_service().insert(&mut conn).expect("insert");
    let changes = ServiceChangeset {
        name: Some("Vendas WhatsApp".to_owned()),
        active: Some(true),
        auto_distribution: Some(true),
        offer_timeout_s: Some(None),
        inactivity_minutes: Some(45),
        abandon_hours: Some(72),
        agent_alert_minutes: Some(Some(7)),
        customer_reminder_minutes: Some(None),
        customer_reminder_text: Some(None),
        disconnect_grace_s: Some(0),
        allow_cancel: Some(true),
        email_approval: Some(false),
        business_hours: Some(None),
        time_zone: Some("America/Sao_Paulo".to_owned()),
        out_of_hours_hold: Some(false),
        out_of_hours_message: Some(None),
        automation_url: Some(None),
        automation_timeout_ms: Some(3000),
        portfolio_wait_s: Some(Some(0)),
        provider: Some(json!({"phone_number_id": "555", "access_token": "new"})),
        provider_key: Some(Some("555".to_owned())),
        updated_at: Some(at(90)),
    };
    let expected = Service {
        name: "Vendas WhatsApp".to_owned(),
        active: true,
        auto_distribution: true,
        offer_timeout_s: None,
        inactivity_minutes: 45,
        abandon_hours: 72,
        agent_alert_minutes: Some(7),
        customer_reminder_minutes: None,
        customer_reminder_text: None,
        disconnect_grace_s: 0,
        allow_cancel: true,
        email_approval: false,
        business_hours: None,
        time_zone: "America/Sao_Paulo".to_owned(),
        out_of_hours_hold: false,
        out_of_hours_message: None,
        automation_url: None,
        automation_timeout_ms: 3000,
        portfolio_wait_s: Some(0),
        provider: json!({"phone_number_id": "555", "access_token": "new"}),
        provider_key: Some("555".to_owned()),
        updated_at: at(90),
        ..service.clone()
    };
    assert_eq!(store::update_service(&mut conn, service.id, &changes).expect("update"), expected);
    assert_eq!(Service::find(&mut conn, service.id).expect("find"), expected);
    assert_eq!(
        store::service_by_provider_key(&mut conn, Channel::Whatsapp, "555").expect("by provider key"),
        Some(expected)
    );
    assert_eq!(store::service_by_provider_key(&mut conn, Channel::Whatsapp, "109876543210").expect("old key"), None);
}

#[test]
fn memberships_round_trip() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let agent = fixtures::insert_agent(&mut conn);
    let service = fixtures::insert_service(&mut conn, Channel::Email);
    store::add_membership(&mut conn, agent.id, service.id, at(7)).expect("add");
    let expected = vec![Membership { agent_id: agent.id, service_id: service.id, created_at: at(7) }];
    assert_eq!(store::list_memberships(&mut conn).expect("list"), expected);
    assert_eq!(store::services_of_agent(&mut conn, agent.id).expect("services of agent"), vec![service.id]);

    // Adding again is a no-op: still one row, with its first date.
    store::add_membership(&mut conn, agent.id, service.id, at(99)).expect("add again");
    assert_eq!(store::list_memberships(&mut conn).expect("list again"), expected);
}

#[test]
fn agent_capacities_round_trip() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let agent = fixtures::insert_agent(&mut conn);
    store::set_capacity(&mut conn, agent.id, Channel::Voice, 2).expect("set");
    assert_eq!(
        store::capacities_of_agent(&mut conn, agent.id).expect("read"),
        vec![AgentCapacity { agent_id: agent.id, channel: Channel::Voice, capacity: 2 }]
    );

    // Setting it again replaces the value instead of adding a row.
    store::set_capacity(&mut conn, agent.id, Channel::Voice, 0).expect("set again");
    assert_eq!(
        store::list_capacities(&mut conn).expect("list"),
        vec![AgentCapacity { agent_id: agent.id, channel: Channel::Voice, capacity: 0 }]
    );
}

#[test]
fn pause_reasons_round_trip() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let reason = PauseReason { id: PauseReasonId::new(), name: "Almoço".to_owned(), active: false, created_at: at(3) };
    assert_eq!(reason.insert(&mut conn).expect("insert"), reason);
    assert_eq!(PauseReason::find(&mut conn, reason.id).expect("find"), reason);
}

#[test]
fn presence_history_round_trip() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let agent = fixtures::insert_agent(&mut conn);
    let reason = PauseReason { id: PauseReasonId::new(), name: "Pausa".to_owned(), active: true, created_at: at(0) }
        .insert(&mut conn)
        .expect("insert a pause reason");
    let new = NewPresence {
        agent_id: agent.id,
        status: PresenceStatus::Paused,
        pause_reason_id: Some(reason.id),
        started_at: at(10),
    };
    let stored = new.insert(&mut conn).expect("insert");
    let open = Presence {
        id: stored.id,
        agent_id: agent.id,
        status: PresenceStatus::Paused,
        pause_reason_id: Some(reason.id),
        started_at: at(10),
        ended_at: None,
    };
    assert_eq!(stored, open);
    assert_eq!(store::open_presence(&mut conn, agent.id).expect("open presence"), Some(open.clone()));

    store::close_presence(&mut conn, agent.id, at(70)).expect("close");
    let closed = Presence { ended_at: Some(at(70)), ..open };
    assert_eq!(Presence::find(&mut conn, stored.id).expect("find"), closed);
    assert_eq!(store::open_presence(&mut conn, agent.id).expect("open presence after close"), None);
}

fn full_customer(portfolio_agent: AgentId) -> Customer {
    Customer {
        trade_name: Some("Padaria Oliveira".to_owned()),
        cpf: Some("52998224725".to_owned()),
        cnpj: Some("12ABC34501DE35".to_owned()),
        emails: vec!["maria@example.test".to_owned(), "compras@padaria.example.test".to_owned()],
        phones: vec!["+5511987654321".to_owned(), "+551133334444".to_owned()],
        notes: Some("Prefere contato à tarde".to_owned()),
        portfolio_agent_id: Some(portfolio_agent),
        created_at: at(1),
        updated_at: at(2),
        ..fixtures::customer()
    }
}

#[test]
fn customers_round_trip() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let agent = fixtures::insert_agent(&mut conn);
    let customer = full_customer(agent.id);
    assert_eq!(customer.insert(&mut conn).expect("insert"), customer);
    assert_eq!(Customer::find(&mut conn, customer.id).expect("find"), customer);
    assert_eq!(
        store::customers_by_email(&mut conn, "compras@padaria.example.test").expect("by email"),
        vec![customer.clone()]
    );
    assert_eq!(store::customers_by_phone(&mut conn, "+551133334444").expect("by phone"), vec![customer]);
}

#[test]
fn customers_update_changes_only_what_the_changeset_names() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let agent = fixtures::insert_agent(&mut conn);
    let customer = full_customer(agent.id).insert(&mut conn).expect("insert");
    let changes = CustomerChangeset {
        name: Some("Maria O. Santos".to_owned()),
        trade_name: Some(None),
        cpf: Some(None),
        cnpj: Some(Some("11222333000181".to_owned())),
        emails: Some(vec!["maria.santos@example.test".to_owned()]),
        phones: Some(Vec::new()),
        notes: Some(Some("Mudou de endereço".to_owned())),
        portfolio_agent_id: Some(None),
        updated_at: Some(at(120)),
    };
    let expected = Customer {
        name: "Maria O. Santos".to_owned(),
        trade_name: None,
        cpf: None,
        cnpj: Some("11222333000181".to_owned()),
        emails: vec!["maria.santos@example.test".to_owned()],
        phones: Vec::new(),
        notes: Some("Mudou de endereço".to_owned()),
        portfolio_agent_id: None,
        updated_at: at(120),
        ..customer.clone()
    };
    assert_eq!(store::update_customer(&mut conn, customer.id, &changes).expect("update"), expected);
    assert_eq!(Customer::find(&mut conn, customer.id).expect("find"), expected);
    assert_eq!(store::customers_by_email(&mut conn, "maria@example.test").expect("old email"), Vec::new());
}

#[test]
fn channel_identities_round_trip() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let customer = fixtures::insert_customer(&mut conn);
    let identity = ChannelIdentity {
        id: ChannelIdentityId::new(),
        channel: Channel::Telegram,
        address: "918273645".to_owned(),
        customer_id: customer.id,
        display_name: Some("Maria O.".to_owned()),
        created_at: at(4),
    };
    assert_eq!(identity.insert(&mut conn).expect("insert"), identity);
    assert_eq!(ChannelIdentity::find(&mut conn, identity.id).expect("find"), identity);
    assert_eq!(
        store::customer_by_identity(&mut conn, Channel::Telegram, "918273645").expect("by identity"),
        Some(customer)
    );
}

#[test]
fn whatsapp_contacts_round_trip() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let customer = fixtures::insert_customer(&mut conn);
    let contact = WhatsappContact {
        id: WhatsappContactId::new(),
        phone: "+5511987654321".to_owned(),
        wa_id: Some("551187654321".to_owned()),
        name: Some("Maria".to_owned()),
        customer_id: Some(customer.id),
        opted_in: true,
        opted_in_at: Some(at(4)),
        opt_in_source: Some("formulário do site".to_owned()),
        created_at: at(1),
        updated_at: at(5),
    };
    assert_eq!(contact.insert(&mut conn).expect("insert"), contact);
    assert_eq!(WhatsappContact::find(&mut conn, contact.id).expect("find"), contact);
    // Found by either number (Brazil's wa_id may lack the ninth digit).
    assert_eq!(store::whatsapp_contact_by_number(&mut conn, "551187654321").expect("by wa_id"), Some(contact.clone()));
    assert_eq!(store::whatsapp_contact_by_number(&mut conn, "+5511987654321").expect("by phone"), Some(contact));
}

#[test]
fn classifications_round_trip() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let service = fixtures::insert_service(&mut conn, Channel::Webchat);
    let classification = Classification {
        id: ClassificationId::new(),
        name: "Resolvido".to_owned(),
        service_id: Some(service.id),
        active: false,
        created_at: at(6),
    };
    assert_eq!(classification.insert(&mut conn).expect("insert"), classification);
    assert_eq!(Classification::find(&mut conn, classification.id).expect("find"), classification);
}

#[test]
fn service_types_round_trip() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let service = fixtures::insert_service(&mut conn, Channel::Webchat);
    let service_type = ServiceType {
        id: ServiceTypeId::new(),
        name: "Troca de produto".to_owned(),
        service_id: Some(service.id),
        active: false,
        created_at: at(6),
    };
    assert_eq!(service_type.insert(&mut conn).expect("insert"), service_type);
    assert_eq!(ServiceType::find(&mut conn, service_type.id).expect("find"), service_type);
}

/// A stored service type (a form) to point at.
fn insert_service_type(conn: &mut PgConnection) -> ServiceType {
    ServiceType {
        id: ServiceTypeId::new(),
        name: fixtures::unique("tipo"),
        service_id: None,
        active: true,
        created_at: at(0),
    }
    .insert(conn)
    .expect("insert a service type")
}

#[test]
fn cases_round_trip() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let agent = fixtures::insert_agent(&mut conn);
    let customer = fixtures::insert_customer(&mut conn);
    let service_type = insert_service_type(&mut conn);
    let case = Case {
        id: CaseId::new(),
        customer_id: customer.id,
        service_type_id: Some(service_type.id),
        title: "Pedido 4512 não entregue".to_owned(),
        description: Some("Cliente aguarda desde segunda".to_owned()),
        status: CaseStatus::Closed,
        due_at: Some(at(86_400)),
        created_by: Some(agent.id),
        created_at: at(8),
        closed_at: Some(at(9_000)),
    };
    assert_eq!(case.insert(&mut conn).expect("insert"), case);
    assert_eq!(Case::find(&mut conn, case.id).expect("find"), case);
}

/// Everything a fully populated conversation points at.
struct ConversationWorld {
    agent: Agent,
    supervisor: Agent,
    service: Service,
    customer: Customer,
    classification: Classification,
    service_type: ServiceType,
    case: Case,
}

impl ConversationWorld {
    fn insert(conn: &mut PgConnection) -> Self {
        let agent = fixtures::insert_agent(conn);
        let supervisor = Agent { role: Role::Supervisor, ..fixtures::agent() }.insert(conn).expect("insert supervisor");
        let service = fixtures::insert_service(conn, Channel::Whatsapp);
        let customer = fixtures::insert_customer(conn);
        let classification = Classification {
            id: ClassificationId::new(),
            name: "Dúvida".to_owned(),
            service_id: None,
            active: true,
            created_at: at(0),
        }
        .insert(conn)
        .expect("insert a classification");
        let service_type = insert_service_type(conn);
        let case = Case {
            id: CaseId::new(),
            customer_id: customer.id,
            service_type_id: None,
            title: "Pedido".to_owned(),
            description: None,
            status: CaseStatus::Open,
            due_at: None,
            created_by: None,
            created_at: at(0),
            closed_at: None,
        }
        .insert(conn)
        .expect("insert a case");
        Self { agent, supervisor, service, customer, classification, service_type, case }
    }

    /// A conversation in service with every column set that an open conversation may have
    /// (`ended_at` only exists on a final state, see the conversation CHECKs).
    fn full_conversation(&self) -> Conversation {
        Conversation {
            id: ConversationId::new(),
            service_id: self.service.id,
            channel: Channel::Whatsapp,
            direction: Direction::Outbound,
            customer_id: Some(self.customer.id),
            customer_address: "5511987654321".to_owned(),
            customer_name: Some("Maria".to_owned()),
            subject: Some("Segunda via do boleto".to_owned()),
            state: ConversationState::InService,
            sub_state: Some(SubState::InactiveAtAgent),
            hold_reason: Some(HoldReason::Automation),
            priority: 3,
            arrived_at: at(10),
            enqueued_at: Some(at(11)),
            first_agent_id: Some(self.supervisor.id),
            current_agent_id: Some(self.agent.id),
            concluded_by_id: Some(self.supervisor.id),
            classification_id: Some(self.classification.id),
            service_type_id: Some(self.service_type.id),
            case_id: Some(self.case.id),
            due_at: Some(at(3_600)),
            out_of_hours: true,
            last_customer_message_at: Some(at(12)),
            last_agent_message_at: Some(at(13)),
            assigned_at: Some(at(14)),
            ended_at: None,
            last_seq: 4,
            created_at: at(10),
            updated_at: at(15),
        }
    }
}

#[test]
fn conversations_round_trip() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let world = ConversationWorld::insert(&mut conn);
    let conversation = world.full_conversation();
    assert_eq!(conversation.insert(&mut conn).expect("insert"), conversation);
    assert_eq!(Conversation::find(&mut conn, conversation.id).expect("find"), conversation);
    assert_eq!(
        store::open_conversation_for(&mut conn, world.service.id, "5511987654321").expect("open for address"),
        Some(conversation.clone())
    );
    assert_eq!(store::open_conversations(&mut conn).expect("open conversations"), vec![conversation]);
}

#[test]
fn conversations_update_concludes_and_sets_every_changed_column() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let world = ConversationWorld::insert(&mut conn);
    let conversation = world.full_conversation().insert(&mut conn).expect("insert");
    let other_customer = fixtures::insert_customer(&mut conn);
    let other_service = fixtures::insert_service(&mut conn, Channel::Whatsapp);
    let changes = ConversationChangeset {
        customer_id: Some(Some(other_customer.id)),
        customer_name: Some(None),
        service_id: Some(other_service.id),
        state: Some(ConversationState::Concluded),
        sub_state: Some(None),
        hold_reason: Some(None),
        priority: Some(-1),
        enqueued_at: Some(None),
        first_agent_id: Some(Some(world.agent.id)),
        current_agent_id: Some(None),
        concluded_by_id: Some(Some(world.agent.id)),
        classification_id: Some(None),
        service_type_id: Some(None),
        case_id: Some(None),
        due_at: Some(None),
        out_of_hours: Some(false),
        last_customer_message_at: Some(Some(at(200))),
        last_agent_message_at: Some(Some(at(210))),
        assigned_at: Some(None),
        ended_at: Some(Some(at(300))),
        last_seq: Some(9),
        updated_at: Some(at(300)),
    };
    let expected = Conversation {
        customer_id: Some(other_customer.id),
        customer_name: None,
        service_id: other_service.id,
        state: ConversationState::Concluded,
        sub_state: None,
        hold_reason: None,
        priority: -1,
        enqueued_at: None,
        first_agent_id: Some(world.agent.id),
        current_agent_id: None,
        concluded_by_id: Some(world.agent.id),
        classification_id: None,
        service_type_id: None,
        case_id: None,
        due_at: None,
        out_of_hours: false,
        last_customer_message_at: Some(at(200)),
        last_agent_message_at: Some(at(210)),
        assigned_at: None,
        ended_at: Some(at(300)),
        last_seq: 9,
        updated_at: at(300),
        ..conversation.clone()
    };
    assert_eq!(store::update_conversation(&mut conn, conversation.id, &changes).expect("update"), expected);
    assert_eq!(Conversation::find(&mut conn, conversation.id).expect("find"), expected);
    assert_eq!(store::open_conversations(&mut conn).expect("open conversations"), Vec::new());
}

#[test]
fn conversation_events_round_trip() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let agent = fixtures::insert_agent(&mut conn);
    let supervisor = fixtures::insert_agent(&mut conn);
    let service = fixtures::insert_service(&mut conn, Channel::Webchat);
    let conversation = fixtures::insert_queued(&mut conn, &service, "visitor-1");
    let new = NewConversationEvent {
        conversation_id: conversation.id,
        seq: 1,
        at: at(30),
        kind: "transferred".to_owned(),
        from_state: Some(ConversationState::Queued),
        to_state: Some(ConversationState::InService),
        actor: Actor::Supervisor,
        actor_agent_id: Some(supervisor.id),
        agent_id: Some(agent.id),
        reason: Some("cliente VIP".to_owned()),
        data: json!({"from_queue": service.id, "wait_ms": 15_000, "notes": ["a", "b"]}),
    };
    let stored = new.insert(&mut conn).expect("insert");
    let expected = ConversationEvent {
        id: stored.id,
        conversation_id: new.conversation_id,
        seq: new.seq,
        at: new.at,
        kind: new.kind.clone(),
        from_state: new.from_state,
        to_state: new.to_state,
        actor: new.actor,
        actor_agent_id: new.actor_agent_id,
        agent_id: new.agent_id,
        reason: new.reason.clone(),
        data: new.data.clone(),
    };
    assert_eq!(stored, expected);
    assert_eq!(ConversationEvent::find(&mut conn, stored.id).expect("find"), expected);
}

#[test]
fn assignments_round_trip() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let agent = fixtures::insert_agent(&mut conn);
    let service = fixtures::insert_service(&mut conn, Channel::Instagram);
    let conversation = fixtures::in_service(fixtures::queued_conversation(&service, "ig-77"), agent.id)
        .insert(&mut conn)
        .expect("insert a conversation");
    let new = NewAssignment {
        conversation_id: conversation.id,
        agent_id: agent.id,
        channel: Channel::Instagram,
        via: AssignmentVia::Transfer,
        assigned_at: at(40),
    };
    let stored = new.insert(&mut conn).expect("insert");
    let open = Assignment {
        id: stored.id,
        conversation_id: conversation.id,
        agent_id: agent.id,
        channel: Channel::Instagram,
        via: AssignmentVia::Transfer,
        assigned_at: at(40),
        ended_at: None,
        end_reason: None,
    };
    assert_eq!(stored, open);
    assert_eq!(store::open_assignment(&mut conn, conversation.id).expect("open assignment"), Some(open.clone()));

    // The end columns are written by `end_assignment`.
    assert!(store::end_assignment(&mut conn, conversation.id, at(90), "concluded").expect("end"));
    let ended = Assignment { ended_at: Some(at(90)), end_reason: Some("concluded".to_owned()), ..open };
    assert_eq!(Assignment::find(&mut conn, stored.id).expect("find"), ended);
    assert_eq!(store::open_assignments(&mut conn).expect("open assignments"), Vec::new());
}

#[test]
fn offers_round_trip() {
    use schema::schema::offers;

    let db = TestDb::new();
    let mut conn = db.conn();
    let agent = fixtures::insert_agent(&mut conn);
    let service = fixtures::insert_service(&mut conn, Channel::Messenger);
    let conversation =
        Conversation { state: ConversationState::Offered, ..fixtures::queued_conversation(&service, "psid-1") }
            .insert(&mut conn)
            .expect("insert a conversation");
    let new = NewOffer { conversation_id: conversation.id, agent_id: agent.id, offered_at: at(50), expires_at: at(70) };
    let stored = new.insert(&mut conn).expect("insert");
    let pending = Offer {
        id: stored.id,
        conversation_id: conversation.id,
        agent_id: agent.id,
        offered_at: at(50),
        expires_at: at(70),
        resolved_at: None,
        outcome: None,
    };
    assert_eq!(stored, pending);

    // The store has no function that resolves an offer; write the two columns directly.
    diesel::update(offers::table.find(stored.id))
        .set((offers::resolved_at.eq(at(65)), offers::outcome.eq(OfferOutcome::Rejected)))
        .execute(&mut conn)
        .expect("resolve the offer");
    let resolved = Offer { resolved_at: Some(at(65)), outcome: Some(OfferOutcome::Rejected), ..pending };
    assert_eq!(Offer::find(&mut conn, stored.id).expect("find"), resolved);
}

#[test]
fn routing_decisions_round_trip() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let agent = fixtures::insert_agent(&mut conn);
    let service = fixtures::insert_service(&mut conn, Channel::Sms);
    let conversation = fixtures::insert_queued(&mut conn, &service, "+5511912345678");
    let new = NewRoutingDecision {
        conversation_id: conversation.id,
        decided_at: at(55),
        mode: DecisionMode::PullChosen,
        agent_id: Some(agent.id),
        reason: "chosen by the agent from the queue".to_owned(),
        candidates: json!([{"agent_id": agent.id, "active": 2, "capacity": 5, "eligible": true, "why_not": null}]),
    };
    let stored = new.insert(&mut conn).expect("insert");
    let expected = RoutingDecision {
        id: stored.id,
        conversation_id: conversation.id,
        decided_at: at(55),
        mode: DecisionMode::PullChosen,
        agent_id: Some(agent.id),
        reason: new.reason.clone(),
        candidates: new.candidates.clone(),
    };
    assert_eq!(stored, expected);
    assert_eq!(RoutingDecision::find(&mut conn, stored.id).expect("find"), expected);
}

/// A failed outbound email with every column set (`failed_at` goes with status `failed`).
fn full_message(conversation: &Conversation, sender: AgentId) -> Message {
    Message {
        id: MessageId::new(),
        conversation_id: conversation.id,
        service_id: conversation.service_id,
        direction: MessageDirection::Out,
        kind: MessageKind::Email,
        body: Some("Segue a segunda via.".to_owned()),
        payload: json!({"attachments": 1, "location": {"latitude": -23.5505, "longitude": -46.6333}}),
        sender_agent_id: Some(sender),
        email_from: Some("atendimento@example.test".to_owned()),
        email_to: vec!["maria@example.test".to_owned()],
        email_cc: vec!["financeiro@example.test".to_owned(), "gerente@example.test".to_owned()],
        email_subject: Some("Re: Boleto".to_owned()),
        email_message_id: Some("<abc123@example.test>".to_owned()),
        email_in_reply_to: Some("<xyz789@mail.example.test>".to_owned()),
        email_references: vec!["<xyz789@mail.example.test>".to_owned()],
        email_html: Some("<p>Segue a segunda via.</p>".to_owned()),
        provider_message_id: Some("smtp-250-2.0.0-ok".to_owned()),
        status: MessageStatus::Failed,
        error_code: Some("550".to_owned()),
        error_message: Some("mailbox unavailable".to_owned()),
        idempotency_key: Some("c0ffee-1".to_owned()),
        attempts: 3,
        next_attempt_at: Some(at(400)),
        created_at: at(100),
        sent_at: Some(at(101)),
        delivered_at: Some(at(102)),
        read_at: Some(at(103)),
        failed_at: Some(at(104)),
    }
}

#[test]
fn messages_round_trip() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let agent = fixtures::insert_agent(&mut conn);
    let service = fixtures::insert_service(&mut conn, Channel::Email);
    let conversation = fixtures::insert_queued(&mut conn, &service, "maria@example.test");
    let message = full_message(&conversation, agent.id);
    assert_eq!(message.insert(&mut conn).expect("insert"), message);
    assert_eq!(Message::find(&mut conn, message.id).expect("find"), message);
    assert_eq!(store::messages_of(&mut conn, conversation.id).expect("messages of"), vec![message.clone()]);
    assert_eq!(
        store::message_by_provider_id(&mut conn, service.id, "smtp-250-2.0.0-ok").expect("by provider id"),
        Some(message)
    );
}

#[test]
fn messages_update_changes_only_what_the_changeset_names() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let service = fixtures::insert_service(&mut conn, Channel::Whatsapp);
    let conversation = fixtures::insert_queued(&mut conn, &service, "5511987654321");
    let message = Message {
        attempts: 1,
        next_attempt_at: Some(at(25)),
        error_code: Some("131047".to_owned()),
        error_message: Some("re-engagement window closed".to_owned()),
        ..fixtures::outbound_message(&conversation)
    }
    .insert(&mut conn)
    .expect("insert");
    let changes = MessageChangeset {
        provider_message_id: Some(Some("wamid.HBgNNTUxMTk4NzY1NDMyMRUCABEYEjQ".to_owned())),
        status: Some(MessageStatus::Delivered),
        error_code: Some(None),
        error_message: Some(None),
        attempts: Some(2),
        next_attempt_at: Some(None),
        sent_at: Some(Some(at(26))),
        delivered_at: Some(Some(at(27))),
        read_at: Some(None),
        failed_at: Some(None),
    };
    let expected = Message {
        provider_message_id: Some("wamid.HBgNNTUxMTk4NzY1NDMyMRUCABEYEjQ".to_owned()),
        status: MessageStatus::Delivered,
        error_code: None,
        error_message: None,
        attempts: 2,
        next_attempt_at: None,
        sent_at: Some(at(26)),
        delivered_at: Some(at(27)),
        ..message.clone()
    };
    assert_eq!(store::update_message(&mut conn, message.id, &changes).expect("update"), expected);
    assert_eq!(Message::find(&mut conn, message.id).expect("find"), expected);
}

#[test]
fn attachments_round_trip() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let agent = fixtures::insert_agent(&mut conn);
    let service = fixtures::insert_service(&mut conn, Channel::Whatsapp);
    let conversation = fixtures::insert_queued(&mut conn, &service, "5511987654321");
    let message = fixtures::outbound_message(&conversation).insert(&mut conn).expect("insert a message");
    let attachment = Attachment {
        id: AttachmentId::new(),
        message_id: Some(message.id),
        conversation_id: Some(conversation.id),
        uploaded_by: Some(agent.id),
        name: "boleto-novembro.pdf".to_owned(),
        content_type: "application/pdf".to_owned(),
        size_bytes: 48_213,
        sha256: (0u8..32).collect(),
        provider_media_id: Some("media-1234567890".to_owned()),
        created_at: at(21),
    };
    assert_eq!(attachment.insert(&mut conn).expect("insert"), attachment);
    assert_eq!(Attachment::find(&mut conn, attachment.id).expect("find"), attachment);
    assert_eq!(store::attachments_of(&mut conn, message.id).expect("attachments of"), vec![attachment]);
}

#[test]
fn attachment_contents_round_trip() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let attachment = Attachment {
        id: AttachmentId::new(),
        message_id: None,
        conversation_id: None,
        uploaded_by: None,
        name: "foto.jpg".to_owned(),
        content_type: "image/jpeg".to_owned(),
        size_bytes: 6,
        sha256: vec![7; 32],
        provider_media_id: None,
        created_at: at(0),
    }
    .insert(&mut conn)
    .expect("insert an attachment");
    // Every byte value survives, NUL and high bytes included.
    let content = AttachmentContent { attachment_id: attachment.id, data: vec![0xff, 0xd8, 0x00, 0x0a, 0x5c, 0xd9] };
    assert_eq!(content.insert(&mut conn).expect("insert"), content);
    assert_eq!(AttachmentContent::find(&mut conn, attachment.id).expect("find"), content);
}

#[test]
fn canned_messages_round_trip() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let service = fixtures::insert_service(&mut conn, Channel::Webchat);
    let canned = CannedMessage {
        id: CannedMessageId::new(),
        title: "Saudação".to_owned(),
        text: "Olá! Em que posso ajudar?".to_owned(),
        service_id: Some(service.id),
        created_at: at(2),
    };
    assert_eq!(canned.insert(&mut conn).expect("insert"), canned);
    assert_eq!(CannedMessage::find(&mut conn, canned.id).expect("find"), canned);
    assert_eq!(store::canned_messages_for(&mut conn, Some(service.id)).expect("for service"), vec![canned]);
}

#[test]
fn email_templates_round_trip() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let service = fixtures::insert_service(&mut conn, Channel::Email);
    let template = EmailTemplate {
        id: EmailTemplateId::new(),
        name: "Resposta padrão".to_owned(),
        service_id: Some(service.id),
        subject: "Re: {{subject}}".to_owned(),
        body_text: "Olá,\n\n{{body}}\n\nAtenciosamente".to_owned(),
        body_html: Some("<p>Olá,</p><p>{{body}}</p>".to_owned()),
        created_at: at(2),
    };
    assert_eq!(template.insert(&mut conn).expect("insert"), template);
    assert_eq!(EmailTemplate::find(&mut conn, template.id).expect("find"), template);
}

#[test]
fn whatsapp_templates_round_trip() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let service = fixtures::insert_service(&mut conn, Channel::Whatsapp);
    let template = WhatsappTemplate {
        id: WhatsappTemplateId::new(),
        service_id: service.id,
        name: "promo_black_friday".to_owned(),
        language: "en_US".to_owned(),
        category: TemplateCategory::Marketing,
        body: "Hi {{1}}, {{2}}% off today".to_owned(),
        components: json!([{"type": "BODY", "text": "Hi {{1}}, {{2}}% off today"}]),
        status: TemplateStatus::Paused,
        created_at: at(2),
    };
    assert_eq!(template.insert(&mut conn).expect("insert"), template);
    assert_eq!(WhatsappTemplate::find(&mut conn, template.id).expect("find"), template);
    assert_eq!(store::whatsapp_templates_for(&mut conn, service.id).expect("for service"), vec![template]);
}

/// A stored select field of a fresh service type.
fn insert_form_field(conn: &mut PgConnection) -> FormField {
    FormField {
        id: FormFieldId::new(),
        service_type_id: insert_service_type(conn).id,
        key: "motivo".to_owned(),
        label: "Motivo do contato".to_owned(),
        field_type: FieldType::Select,
        required: true,
        options: json!(["troca", "devolução", "dúvida"]),
        position: 2,
    }
    .insert(conn)
    .expect("insert a form field")
}

#[test]
fn form_fields_round_trip() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let service_type = insert_service_type(&mut conn);
    let field = FormField {
        id: FormFieldId::new(),
        service_type_id: service_type.id,
        key: "motivo".to_owned(),
        label: "Motivo do contato".to_owned(),
        field_type: FieldType::Select,
        required: true,
        options: json!(["troca", "devolução", "dúvida"]),
        position: 2,
    };
    assert_eq!(field.insert(&mut conn).expect("insert"), field);
    assert_eq!(FormField::find(&mut conn, field.id).expect("find"), field);
    assert_eq!(store::form_of(&mut conn, service_type.id).expect("form of"), vec![field]);
}

#[test]
fn form_answers_round_trip() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let agent = fixtures::insert_agent(&mut conn);
    let service = fixtures::insert_service(&mut conn, Channel::Webchat);
    let conversation = fixtures::insert_queued(&mut conn, &service, "visitor-9");
    let field = insert_form_field(&mut conn);
    let answer = FormAnswer {
        id: FormAnswerId::new(),
        conversation_id: conversation.id,
        field_id: field.id,
        value: json!({"choice": "troca", "other": null}),
        answered_by: Some(agent.id),
        updated_at: at(33),
    };
    assert_eq!(answer.insert(&mut conn).expect("insert"), answer);
    assert_eq!(FormAnswer::find(&mut conn, answer.id).expect("find"), answer);

    // Saving again replaces the value of the same field (K5: editable), keeping one row.
    let edited =
        FormAnswer { id: FormAnswerId::new(), value: json!("devolução"), updated_at: at(44), ..answer.clone() };
    let saved = store::save_form_answer(&mut conn, &edited).expect("save again");
    let expected = FormAnswer { value: json!("devolução"), updated_at: at(44), ..answer };
    assert_eq!(saved, expected);
    assert_eq!(store::form_answers_of(&mut conn, conversation.id).expect("answers of"), vec![expected]);
}

#[test]
fn mailbox_cursors_round_trip() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let service = fixtures::insert_service(&mut conn, Channel::Email);
    let cursor =
        MailboxCursor { service_id: service.id, uid_validity: 1_700_000_001, last_uid: 4_242, updated_at: at(88) };
    assert_eq!(cursor.insert(&mut conn).expect("insert"), cursor);
    assert_eq!(MailboxCursor::find(&mut conn, service.id).expect("find"), cursor);
}
