use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::Value;

use crate::ids::{
    AgentId, AttachmentId, CaseId, ClassificationId, ConversationId, CustomerId, MessageId, ServiceId, ServiceTypeId,
};
use crate::schema::{
    assignments, attachment_contents, attachments, cases, classifications, conversation_events, conversations,
    messages, offers, raw_emails, routing_decisions, service_types,
};
use crate::types::{
    Actor, AssignmentVia, CaseStatus, Channel, ConversationState, DecisionMode, Direction, HoldReason,
    MessageDirection, MessageKind, MessageStatus, OfferOutcome, SubState,
};

/// A label on a finished conversation.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Identifiable)]
#[diesel(table_name = classifications, check_for_backend(diesel::pg::Pg))]
pub struct Classification {
    pub id: ClassificationId,
    pub name: String,
    pub service_id: Option<ServiceId>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
}

/// A service type: the form an agent fills (K5).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Identifiable)]
#[diesel(table_name = service_types, check_for_backend(diesel::pg::Pg))]
pub struct ServiceType {
    pub id: ServiceTypeId,
    pub name: String,
    pub service_id: Option<ServiceId>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
}

/// A customer matter that may span many conversations (K4).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Identifiable)]
#[diesel(table_name = cases, check_for_backend(diesel::pg::Pg))]
pub struct Case {
    pub id: CaseId,
    pub customer_id: CustomerId,
    pub service_type_id: Option<ServiceTypeId>,
    pub title: String,
    pub description: Option<String>,
    pub status: CaseStatus,
    pub due_at: Option<DateTime<Utc>>,
    pub created_by: Option<AgentId>,
    pub created_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
}

/// One contact of one customer on one channel, from arrival to end.
#[derive(Debug, Clone, PartialEq, Queryable, QueryableByName, Selectable, Insertable, Identifiable)]
#[diesel(table_name = conversations, check_for_backend(diesel::pg::Pg))]
pub struct Conversation {
    pub id: ConversationId,
    pub service_id: ServiceId,
    pub channel: Channel,
    pub direction: Direction,
    pub customer_id: Option<CustomerId>,
    pub customer_address: String,
    pub customer_name: Option<String>,
    pub subject: Option<String>,
    pub state: ConversationState,
    pub sub_state: Option<SubState>,
    pub hold_reason: Option<HoldReason>,
    pub priority: i32,
    /// Original arrival: the queue order, kept when put back (R1).
    pub arrived_at: DateTime<Utc>,
    pub enqueued_at: Option<DateTime<Utc>>,
    pub first_agent_id: Option<AgentId>,
    pub current_agent_id: Option<AgentId>,
    pub concluded_by_id: Option<AgentId>,
    pub classification_id: Option<ClassificationId>,
    pub service_type_id: Option<ServiceTypeId>,
    pub case_id: Option<CaseId>,
    pub due_at: Option<DateTime<Utc>>,
    pub out_of_hours: bool,
    pub last_customer_message_at: Option<DateTime<Utc>>,
    pub last_agent_message_at: Option<DateTime<Utc>>,
    pub assigned_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Sequence number of the latest conversation event.
    pub last_seq: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Changes to a conversation; `None` leaves a column as it is.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = conversations)]
pub struct ConversationChangeset {
    pub customer_id: Option<Option<CustomerId>>,
    pub customer_name: Option<Option<String>>,
    pub service_id: Option<ServiceId>,
    pub state: Option<ConversationState>,
    pub sub_state: Option<Option<SubState>>,
    pub hold_reason: Option<Option<HoldReason>>,
    pub priority: Option<i32>,
    pub enqueued_at: Option<Option<DateTime<Utc>>>,
    pub first_agent_id: Option<Option<AgentId>>,
    pub current_agent_id: Option<Option<AgentId>>,
    pub concluded_by_id: Option<Option<AgentId>>,
    pub classification_id: Option<Option<ClassificationId>>,
    pub service_type_id: Option<Option<ServiceTypeId>>,
    pub case_id: Option<Option<CaseId>>,
    pub due_at: Option<Option<DateTime<Utc>>>,
    pub out_of_hours: Option<bool>,
    pub last_customer_message_at: Option<Option<DateTime<Utc>>>,
    pub last_agent_message_at: Option<Option<DateTime<Utc>>>,
    pub assigned_at: Option<Option<DateTime<Utc>>>,
    pub ended_at: Option<Option<DateTime<Utc>>>,
    pub last_seq: Option<i64>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// One stored transition or happening of a conversation (R2).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = conversation_events, check_for_backend(diesel::pg::Pg))]
pub struct ConversationEvent {
    pub id: i64,
    pub conversation_id: ConversationId,
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub from_state: Option<ConversationState>,
    pub to_state: Option<ConversationState>,
    pub actor: Actor,
    pub actor_agent_id: Option<AgentId>,
    pub agent_id: Option<AgentId>,
    pub reason: Option<String>,
    pub data: Value,
}

/// A conversation event to store.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = conversation_events)]
pub struct NewConversationEvent {
    pub conversation_id: ConversationId,
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub from_state: Option<ConversationState>,
    pub to_state: Option<ConversationState>,
    pub actor: Actor,
    pub actor_agent_id: Option<AgentId>,
    pub agent_id: Option<AgentId>,
    pub reason: Option<String>,
    pub data: Value,
}

/// An interval during which an agent owns a conversation (R3).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = assignments, check_for_backend(diesel::pg::Pg))]
pub struct Assignment {
    pub id: i64,
    pub conversation_id: ConversationId,
    pub agent_id: AgentId,
    pub channel: Channel,
    pub via: AssignmentVia,
    pub assigned_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub end_reason: Option<String>,
}

/// An assignment to open.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = assignments)]
pub struct NewAssignment {
    pub conversation_id: ConversationId,
    pub agent_id: AgentId,
    pub channel: Channel,
    pub via: AssignmentVia,
    pub assigned_at: DateTime<Utc>,
}

/// An offer of a conversation to an agent, with its deadline (R7).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = offers, check_for_backend(diesel::pg::Pg))]
pub struct Offer {
    pub id: i64,
    pub conversation_id: ConversationId,
    pub agent_id: AgentId,
    pub offered_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub outcome: Option<OfferOutcome>,
}

/// An offer to make.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = offers)]
pub struct NewOffer {
    pub conversation_id: ConversationId,
    pub agent_id: AgentId,
    pub offered_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Why an agent got a conversation (R16).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = routing_decisions, check_for_backend(diesel::pg::Pg))]
pub struct RoutingDecision {
    pub id: i64,
    pub conversation_id: ConversationId,
    pub decided_at: DateTime<Utc>,
    pub mode: DecisionMode,
    pub agent_id: Option<AgentId>,
    pub reason: String,
    pub candidates: Value,
}

/// A routing decision to record.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = routing_decisions)]
pub struct NewRoutingDecision {
    pub conversation_id: ConversationId,
    pub decided_at: DateTime<Utc>,
    pub mode: DecisionMode,
    pub agent_id: Option<AgentId>,
    pub reason: String,
    pub candidates: Value,
}

/// A message in, out, or internal to a conversation.
/// Serialises as its row, without the absent values (`json_populate_recordset(NULL::messages, …)`
/// reads it back: a missing key is NULL).
/// Inserted with every column bound (an absent value as NULL, never `DEFAULT`: no nullable
/// column has a default), so the `INSERT` has one text and diesel keeps it prepared; with
/// `DEFAULT` for absent values its text varied and it was parsed and planned on every reply.
#[derive(
    Debug, Clone, PartialEq, Queryable, QueryableByName, Selectable, Insertable, Identifiable, serde::Serialize,
)]
#[diesel(table_name = messages, check_for_backend(diesel::pg::Pg), treat_none_as_default_value = false)]
pub struct Message {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub service_id: ServiceId,
    pub direction: MessageDirection,
    pub kind: MessageKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    pub payload: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_agent_id: Option<AgentId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_from: Option<String>,
    pub email_to: Vec<String>,
    pub email_cc: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_in_reply_to: Option<String>,
    pub email_references: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_html: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    pub status: MessageStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    pub attempts: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<DateTime<Utc>>,
}

impl Message {
    /// A message with only the common fields set; the rest empty.
    pub fn new(
        conversation_id: ConversationId,
        service_id: ServiceId,
        direction: MessageDirection,
        kind: MessageKind,
        status: MessageStatus,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: MessageId::new(),
            conversation_id,
            service_id,
            direction,
            kind,
            body: None,
            payload: Value::Object(Default::default()),
            sender_agent_id: None,
            email_from: None,
            email_to: Vec::new(),
            email_cc: Vec::new(),
            email_subject: None,
            email_message_id: None,
            email_in_reply_to: None,
            email_references: Vec::new(),
            email_html: None,
            provider_message_id: None,
            status,
            error_code: None,
            error_message: None,
            idempotency_key: None,
            attempts: 0,
            next_attempt_at: None,
            created_at: now,
            sent_at: None,
            delivered_at: None,
            read_at: None,
            failed_at: None,
        }
    }
}

/// Changes to a message's delivery; `None` leaves a column as it is.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = messages)]
pub struct MessageChangeset {
    pub provider_message_id: Option<Option<String>>,
    pub status: Option<MessageStatus>,
    pub error_code: Option<Option<String>>,
    pub error_message: Option<Option<String>>,
    pub attempts: Option<i32>,
    pub next_attempt_at: Option<Option<DateTime<Utc>>>,
    pub sent_at: Option<Option<DateTime<Utc>>>,
    pub delivered_at: Option<Option<DateTime<Utc>>>,
    pub read_at: Option<Option<DateTime<Utc>>>,
    pub failed_at: Option<Option<DateTime<Utc>>>,
}

/// A file sent or received (C9); its bytes live in [`AttachmentContent`].
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Identifiable)]
#[diesel(table_name = attachments, check_for_backend(diesel::pg::Pg))]
pub struct Attachment {
    pub id: AttachmentId,
    pub message_id: Option<MessageId>,
    pub conversation_id: Option<ConversationId>,
    pub uploaded_by: Option<AgentId>,
    pub name: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: Vec<u8>,
    pub provider_media_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The bytes of an attachment.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = attachment_contents, check_for_backend(diesel::pg::Pg))]
pub struct AttachmentContent {
    pub attachment_id: AttachmentId,
    pub data: Vec<u8>,
}

/// The raw RFC 5322 bytes of an inbound email as received, kept so it can be parsed again.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = raw_emails, check_for_backend(diesel::pg::Pg))]
pub struct RawEmail {
    pub message_id: MessageId,
    pub data: Vec<u8>,
}
