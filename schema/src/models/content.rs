use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::Value;

use crate::ids::{
    AgentId, CannedMessageId, ConversationId, EmailTemplateId, FormAnswerId, FormFieldId, ServiceId, ServiceTypeId,
    WhatsappTemplateId,
};
use crate::schema::{canned_messages, email_templates, form_answers, form_fields, whatsapp_templates};
use crate::types::{FieldType, TemplateCategory, TemplateStatus};

/// A saved reply ("msg. padrão").
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Identifiable)]
#[diesel(table_name = canned_messages, check_for_backend(diesel::pg::Pg))]
pub struct CannedMessage {
    pub id: CannedMessageId,
    pub title: String,
    pub text: String,
    pub service_id: Option<ServiceId>,
    pub created_at: DateTime<Utc>,
}

/// An email reply template (C5).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Identifiable)]
#[diesel(table_name = email_templates, check_for_backend(diesel::pg::Pg))]
pub struct EmailTemplate {
    pub id: EmailTemplateId,
    pub name: String,
    pub service_id: Option<ServiceId>,
    pub subject: String,
    pub body_text: String,
    pub body_html: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A WhatsApp message template approved by Meta (C7).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Identifiable)]
#[diesel(table_name = whatsapp_templates, check_for_backend(diesel::pg::Pg))]
pub struct WhatsappTemplate {
    pub id: WhatsappTemplateId,
    pub service_id: ServiceId,
    pub name: String,
    pub language: String,
    pub category: TemplateCategory,
    pub body: String,
    pub components: Value,
    pub status: TemplateStatus,
    pub created_at: DateTime<Utc>,
}

/// A typed field of a service type's form (K5).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Identifiable)]
#[diesel(table_name = form_fields, check_for_backend(diesel::pg::Pg))]
pub struct FormField {
    pub id: FormFieldId,
    pub service_type_id: ServiceTypeId,
    pub key: String,
    pub label: String,
    pub field_type: FieldType,
    pub required: bool,
    pub options: Value,
    pub position: i32,
}

/// One answer of a conversation's form.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Identifiable)]
#[diesel(table_name = form_answers, check_for_backend(diesel::pg::Pg))]
pub struct FormAnswer {
    pub id: FormAnswerId,
    pub conversation_id: ConversationId,
    pub field_id: FormFieldId,
    pub value: Value,
    pub answered_by: Option<AgentId>,
    pub updated_at: DateTime<Utc>,
}
