//! Builders for the rows tests need, shared by every crate's tests (`schema::testing::fixtures`).
//! A builder returns a valid row with fresh ids and unique names, not yet stored; a test changes
//! what it is about with struct-update syntax (`Agent { extension: Some("2041".into()),
//! ..fixtures::agent() }`) and inserts it. The `insert_*` helpers store a plain row when a test
//! only needs something to point at.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::models::{Agent, Conversation, Customer, Message, Service, Session};
use crate::{
    AgentId, Channel, ConversationId, ConversationState, CustomerId, Direction, MessageDirection, MessageKind,
    MessageStatus, PgConnection, Role, ServiceId, SessionId, StoreError, SubState,
};

/// A fixed instant `seconds` after 2026-11-24T12:00:00.123456Z. PostgreSQL keeps microseconds,
/// so these compare equal after a round trip; the non-zero fraction catches lost precision.
pub fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(1_795_521_600_123_456 + seconds * 1_000_000)
        .expect("a 2026 instant is within chrono's range")
}

/// A name no other row of the test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Asserts that a write was refused by a unique constraint with this name.
#[track_caller]
pub fn assert_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>, constraint: &str) {
    match result {
        Err(StoreError::Conflict { constraint: c }) => {
            assert_eq!(c, constraint, "refused by another constraint")
        }
        other => panic!("expected a conflict on {constraint}, got {other:?}"),
    }
}

/// Asserts that a write was refused by a CHECK (or NOT NULL) constraint with this name.
#[track_caller]
pub fn assert_invalid<T: std::fmt::Debug>(result: Result<T, StoreError>, constraint: &str) {
    match result {
        Err(StoreError::Invalid { constraint: c }) => {
            assert_eq!(c, constraint, "refused by another constraint")
        }
        other => panic!("expected {constraint} to refuse the value, got {other:?}"),
    }
}

/// An active agent with a unique login and no extension.
pub fn agent() -> Agent {
    Agent {
        id: AgentId::new(),
        login: unique("agent"),
        name: "Ana Souza".to_owned(),
        role: Role::Agent,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".to_owned(),
        active: true,
        extension: None,
        auto_distribution: None,
        created_at: at(0),
        updated_at: at(0),
    }
}

/// A service on `channel` with the defaults of SPEC.md and a unique name.
pub fn service(channel: Channel) -> Service {
    Service::with_defaults(unique("service"), channel, at(0))
}

/// A customer with only a name.
pub fn customer() -> Customer {
    Customer {
        id: CustomerId::new(),
        name: "Maria Oliveira".to_owned(),
        trade_name: None,
        cpf: None,
        cnpj: None,
        emails: Vec::new(),
        phones: Vec::new(),
        notes: None,
        portfolio_agent_id: None,
        created_at: at(0),
        updated_at: at(0),
    }
}

/// A conversation from `address` waiting in `service`'s queue.
pub fn queued_conversation(service: &Service, address: &str) -> Conversation {
    Conversation {
        id: ConversationId::new(),
        service_id: service.id,
        channel: service.channel,
        direction: Direction::Inbound,
        customer_id: None,
        customer_address: address.to_owned(),
        customer_name: None,
        subject: None,
        state: ConversationState::Queued,
        sub_state: None,
        hold_reason: None,
        priority: 0,
        arrived_at: at(0),
        enqueued_at: Some(at(0)),
        first_agent_id: None,
        current_agent_id: None,
        concluded_by_id: None,
        classification_id: None,
        service_type_id: None,
        case_id: None,
        due_at: None,
        out_of_hours: false,
        last_customer_message_at: None,
        last_agent_message_at: None,
        assigned_at: None,
        ended_at: None,
        last_seq: 0,
        created_at: at(0),
        updated_at: at(0),
    }
}

/// The same conversation, in service with `agent` (the CHECKs want a sub-state and an owner).
pub fn in_service(conversation: Conversation, agent: AgentId) -> Conversation {
    Conversation {
        state: ConversationState::InService,
        sub_state: Some(SubState::Active),
        first_agent_id: Some(agent),
        current_agent_id: Some(agent),
        assigned_at: Some(at(5)),
        ..conversation
    }
}

/// The same conversation, concluded by `agent` at `ended_at`.
pub fn concluded(conversation: Conversation, agent: AgentId, ended_at: DateTime<Utc>) -> Conversation {
    Conversation {
        state: ConversationState::Concluded,
        first_agent_id: Some(agent),
        concluded_by_id: Some(agent),
        enqueued_at: None,
        ended_at: Some(ended_at),
        ..conversation
    }
}

/// An inbound text message of `conversation`, received from the provider as `provider_id`.
pub fn inbound_message(conversation: &Conversation, provider_id: &str) -> Message {
    Message {
        body: Some("Olá, meu pedido não chegou".to_owned()),
        provider_message_id: Some(provider_id.to_owned()),
        ..Message::new(
            conversation.id,
            conversation.service_id,
            MessageDirection::In,
            MessageKind::Text,
            MessageStatus::Received,
            at(10),
        )
    }
}

/// An outbound text message of `conversation`, waiting to be sent.
pub fn outbound_message(conversation: &Conversation) -> Message {
    Message {
        body: Some("Vou verificar, um momento".to_owned()),
        ..Message::new(
            conversation.id,
            conversation.service_id,
            MessageDirection::Out,
            MessageKind::Text,
            MessageStatus::Pending,
            at(20),
        )
    }
}

/// A live session of `agent` (expires an hour after [`at`]`(0)`) for this token hash.
pub fn session(agent: AgentId, token_hash: &[u8]) -> Session {
    Session {
        id: SessionId::new(),
        agent_id: agent,
        token_hash: token_hash.to_vec(),
        created_at: at(0),
        last_seen_at: at(0),
        expires_at: at(3600),
        revoked_at: None,
        user_agent: None,
        remote_addr: None,
    }
}

/// Stores a plain agent.
pub fn insert_agent(conn: &mut PgConnection) -> Agent {
    agent().insert(conn).expect("insert an agent")
}

/// Stores a plain service on `channel`.
pub fn insert_service(conn: &mut PgConnection, channel: Channel) -> Service {
    service(channel).insert(conn).expect("insert a service")
}

/// Stores a plain customer.
pub fn insert_customer(conn: &mut PgConnection) -> Customer {
    customer().insert(conn).expect("insert a customer")
}

/// Stores a queued conversation from `address` in `service`.
pub fn insert_queued(conn: &mut PgConnection, service: &Service, address: &str) -> Conversation {
    queued_conversation(service, address).insert(conn).expect("insert a queued conversation")
}

/// How many messages of `service` carry this provider message id.
pub fn count_provider_id(conn: &mut PgConnection, service: ServiceId, provider_id: &str) -> i64 {
    use crate::schema::messages;
    messages::table
        .filter(messages::service_id.eq(service))
        .filter(messages::provider_message_id.eq(provider_id))
        .count()
        .get_result(conn)
        .expect("count messages")
}

/// A person to store: [`person`] gives an active agent named after its login; the setters change
/// what a test is about; [`PersonBuilder::insert`] stores it with its memberships.
#[must_use]
pub struct PersonBuilder {
    row: Agent,
    services: Vec<ServiceId>,
}

/// An active agent `login`, named after it, in no service, with a placeholder password hash (set
/// a real one with [`PersonBuilder::password_hash`] to sign in).
pub fn person(login: &str) -> PersonBuilder {
    let now = Utc::now();
    PersonBuilder {
        row: Agent { login: login.to_owned(), name: login.to_owned(), created_at: now, updated_at: now, ..agent() },
        services: Vec::new(),
    }
}

impl PersonBuilder {
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.row.name = name.into();
        self
    }

    pub fn role(mut self, role: Role) -> Self {
        self.row.role = role;
        self
    }

    pub fn password_hash(mut self, hash: impl Into<String>) -> Self {
        self.row.password_hash = hash.into();
        self
    }

    pub fn extension(mut self, extension: Option<&str>) -> Self {
        self.row.extension = extension.map(str::to_owned);
        self
    }

    pub fn created_at(mut self, at: DateTime<Utc>) -> Self {
        (self.row.created_at, self.row.updated_at) = (at, at);
        self
    }

    /// A member of these services.
    pub fn in_services(mut self, services: &[ServiceId]) -> Self {
        self.services.extend_from_slice(services);
        self
    }

    /// Stores the person and their memberships.
    pub fn insert(self, conn: &mut PgConnection) -> Result<Agent, StoreError> {
        let at = self.row.created_at;
        let stored = self.row.insert(conn)?;
        for s in self.services {
            crate::store::add_membership(conn, stored.id, s, at)?;
        }
        Ok(stored)
    }
}
