//! JSON shapes of the API (SPEC.md section A). Ids are opaque strings (UUIDs).

use chrono::{DateTime, Utc};
use schema::models::Attachment;
use schema::models::{Conversation, Message};
use schema::store;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::core::db::db;
use crate::core::error::ApiError;
use crate::core::state::AppState;

/// A conversation as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConversationDto {
    pub id: String,
    pub service_id: String,
    #[schema(example = "whatsapp")]
    pub channel: String,
    #[schema(example = "in_service")]
    pub state: String,
    #[schema(example = "active")]
    pub sub_state: Option<String>,
    pub priority: i32,
    pub customer: CustomerRef,
    pub subject: Option<String>,
    /// The agent who has it now.
    pub agent_id: Option<String>,
    /// "Started by" (D2).
    pub first_agent_id: Option<String>,
    /// "Concluded by" (D2).
    pub concluded_by_id: Option<String>,
    pub classification_id: Option<String>,
    pub due_at: Option<DateTime<Utc>>,
    pub out_of_hours: bool,
    pub arrived_at: DateTime<Utc>,
    pub enqueued_at: Option<DateTime<Utc>>,
    pub assigned_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub last_customer_message_at: Option<DateTime<Utc>>,
    /// Sequence number of the latest conversation event (the desk resumes from it).
    pub last_seq: i64,
    /// Present on `GET /conversations/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<MessageDto>>,
}

/// Who the customer is, as far as the conversation knows.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CustomerRef {
    pub id: Option<String>,
    pub name: Option<String>,
    /// Their address on the channel: phone, email, user id.
    pub address: String,
}

impl ConversationDto {
    /// The API view of a stored conversation.
    pub fn from_row(c: &Conversation) -> Self {
        Self {
            id: c.id.to_string(),
            service_id: c.service_id.to_string(),
            channel: c.channel.to_string(),
            state: c.state.to_string(),
            sub_state: c.sub_state.map(|s| s.to_string()),
            priority: c.priority,
            customer: CustomerRef {
                id: c.customer_id.map(|i| i.to_string()),
                name: c.customer_name.clone(),
                address: c.customer_address.clone(),
            },
            subject: c.subject.clone(),
            agent_id: c.current_agent_id.map(|i| i.to_string()),
            first_agent_id: c.first_agent_id.map(|i| i.to_string()),
            concluded_by_id: c.concluded_by_id.map(|i| i.to_string()),
            classification_id: c.classification_id.map(|i| i.to_string()),
            due_at: c.due_at,
            out_of_hours: c.out_of_hours,
            arrived_at: c.arrived_at,
            enqueued_at: c.enqueued_at,
            assigned_at: c.assigned_at,
            ended_at: c.ended_at,
            last_customer_message_at: c.last_customer_message_at,
            last_seq: c.last_seq,
            messages: None,
        }
    }
}

/// A message as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessageDto {
    pub id: String,
    pub conversation_id: String,
    #[schema(example = "in")]
    pub direction: String,
    #[schema(example = "text")]
    pub kind: String,
    pub body: Option<String>,
    pub payload: Value,
    pub sender_agent_id: Option<String>,
    /// received | pending | sent | delivered | read | failed
    pub status: String,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub read_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailHeaders>,
}

/// Email headers of an email message (D5).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EmailHeaders {
    pub from: Option<String>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: Option<String>,
    pub message_id: Option<String>,
    /// The sender's `Date`, when it had one.
    pub date: Option<String>,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    /// The HTML body, sanitised when it was received (no scripts, handlers or `javascript:`).
    pub html: Option<String>,
}

impl MessageDto {
    /// The API view of a stored message.
    pub fn from_row(m: &Message) -> Self {
        Self {
            id: m.id.to_string(),
            conversation_id: m.conversation_id.to_string(),
            direction: m.direction.to_string(),
            kind: m.kind.to_string(),
            body: m.body.clone(),
            payload: m.payload.clone(),
            sender_agent_id: m.sender_agent_id.map(|a| a.to_string()),
            status: m.status.to_string(),
            error_code: m.error_code.clone(),
            error_message: m.error_message.clone(),
            created_at: m.created_at,
            sent_at: m.sent_at,
            delivered_at: m.delivered_at,
            read_at: m.read_at,
            email: (m.kind == schema::MessageKind::Email).then(|| EmailHeaders {
                from: m.email_from.clone(),
                to: m.email_to.clone(),
                cc: m.email_cc.clone(),
                subject: m.email_subject.clone(),
                message_id: m.email_message_id.clone(),
                date: m.payload.get("date").and_then(Value::as_str).map(str::to_owned),
                in_reply_to: m.email_in_reply_to.clone(),
                references: m.email_references.clone(),
                html: m.email_html.clone(),
            }),
        }
    }
}

/// For a request field that must be present but may be null (null clears): with it, serde
/// refuses a body that leaves the field out instead of reading it as null.
pub fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    Option::<T>::deserialize(d)
}

/// A message with its attachments read from the database, as the desks are told of it.
pub async fn with_attachments(state: &AppState, m: Message) -> Result<engine::PublishedMessage, ApiError> {
    let id = m.id;
    let attachments = db(state, move |c| store::attachments_of(c, id)).await?;
    Ok(engine::PublishedMessage::new(m, attachments))
}

/// A message as JSON with those of `files` that belong to it.
pub fn message_value(m: &Message, files: &[Attachment]) -> serde_json::Value {
    let mut v = serde_json::to_value(MessageDto::from_row(m)).unwrap_or_default();
    v["attachments"] = serde_json::to_value(
        files.iter().filter(|a| a.message_id == Some(m.id)).map(AttachmentDto::from_row).collect::<Vec<_>>(),
    )
    .unwrap_or_default();
    v
}

/// An uploaded file.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttachmentDto {
    pub id: String,
    pub name: String,
    pub content_type: String,
    pub size: i64,
    pub created_at: DateTime<Utc>,
}

impl AttachmentDto {
    /// The API view of a stored attachment.
    pub fn from_row(a: &Attachment) -> Self {
        Self {
            id: a.id.to_string(),
            name: a.name.clone(),
            content_type: a.content_type.clone(),
            size: a.size_bytes,
            created_at: a.created_at,
        }
    }
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`) in a PATCH body.
pub fn double_option<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    serde::Deserialize::deserialize(d).map(Some)
}
