//! The shared row builders (`schema::testing::fixtures`), and what only the schema's own tests use.

pub use schema::testing::fixtures::*;

/// Every table of the data model (the migrations must create exactly these).
pub const TABLES: [&str; 31] = [
    "agent_capacities",
    "agents",
    "assignments",
    "attachment_contents",
    "attachments",
    "canned_messages",
    "cases",
    "channel_identities",
    "classifications",
    "conversation_events",
    "conversations",
    "customers",
    "email_templates",
    "form_answers",
    "form_fields",
    "mailbox_cursors",
    "media_fetches",
    "memberships",
    "messages",
    "offers",
    "pause_reasons",
    "presence_history",
    "raw_emails",
    "routing_decisions",
    "service_types",
    "services",
    "sessions",
    "webchat_uploads",
    "webchat_visitors",
    "whatsapp_contacts",
    "whatsapp_templates",
];
