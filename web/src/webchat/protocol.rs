//! The webchat widget's WebSocket protocol (docs/protocol.md, "Webchat"): serde-tagged JSON, one
//! object per text frame. [`parse`] is the one door for client frames: whatever a browser (or
//! anyone) sends, it answers a [`ClientFrame`] or a [`FrameError`] naming what is wrong, and
//! checks every limit, so the session never sees an oversized name or a malformed id.

use crate::core::error::Code;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest name a visitor may give.
pub const MAX_NAME: usize = 200;
/// Longest email address (RFC 5321).
pub const MAX_EMAIL: usize = 254;
/// Longest message text (the desk's own limit).
pub const MAX_TEXT: usize = crate::core::files::MAX_TEXT;
/// Most attachments in one message.
pub const MAX_ATTACHMENTS: usize = crate::core::files::MAX_ATTACHMENTS;
/// Longest client message id.
pub const MAX_CLIENT_ID: usize = 64;
/// Most message ids in one receipt.
pub const MAX_RECEIPT_IDS: usize = 100;

/// What the widget sends, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    /// A new visitor: name and email from the start form.
    Start { service_id: Option<String>, name: String, email: String },
    /// A returning visitor (after a reload), with the token `started` gave it.
    Resume { token: String },
    /// A customer message. `client_id` is the widget's own id for it: sending it again (after a
    /// reconnect) stores nothing new.
    Message { client_id: String, text: Option<String>, attachment_ids: Vec<String> },
    /// The customer's page received (or showed) the agent's messages.
    Receipt { status: ReceiptStatus, message_ids: Vec<String> },
    /// Application-level ping; answered with `pong`.
    Ping,
}

/// How far an agent's message got on the customer's side (D8 ticks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptStatus {
    /// The page has it.
    Delivered,
    /// The page showed it to the customer.
    Read,
}

/// The wire shape, before the limits are checked.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Wire {
    Start {
        #[serde(default)]
        service_id: Option<String>,
        name: String,
        email: String,
    },
    Resume {
        token: String,
    },
    Message {
        client_id: String,
        #[serde(default)]
        text: Option<String>,
        #[serde(default)]
        attachment_ids: Vec<String>,
    },
    Receipt {
        status: ReceiptStatus,
        message_ids: Vec<String>,
    },
    Ping,
}

/// Why a frame was refused: a stable code and a readable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub code: Code,
    pub message: String,
}

impl FrameError {
    /// A refusal with this code.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// Parses and checks one text frame.
pub fn parse(text: &str) -> Result<ClientFrame, FrameError> {
    let wire: Wire = serde_json::from_str(text).map_err(|e| FrameError::new(Code::InvalidMessage, e.to_string()))?;
    Ok(match wire {
        Wire::Start { service_id, name, email } => {
            let name = name.trim().to_owned();
            if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
                return Err(FrameError::new(
                    Code::InvalidName,
                    format!("a name has 1 to {MAX_NAME} visible characters"),
                ));
            }
            let email = email.trim().to_owned();
            if !valid_email(&email) {
                return Err(FrameError::new(Code::InvalidEmail, "type an email address like name@example.com"));
            }
            ClientFrame::Start { service_id, name, email }
        }
        Wire::Resume { token } => {
            if token.is_empty() || token.len() > 128 || !token.bytes().all(token_byte) {
                return Err(FrameError::new(Code::InvalidToken, "this chat can no longer be resumed"));
            }
            ClientFrame::Resume { token }
        }
        Wire::Message { client_id, text, attachment_ids } => {
            if client_id.is_empty() || client_id.len() > MAX_CLIENT_ID || !client_id.bytes().all(token_byte) {
                return Err(FrameError::new(
                    Code::InvalidClientId,
                    format!("client_id is 1 to {MAX_CLIENT_ID} letters, digits, '-' or '_'"),
                ));
            }
            let text = text.map(|t| t.trim_end().to_owned()).filter(|t| !t.trim().is_empty());
            if text.as_ref().is_some_and(|t| t.chars().count() > MAX_TEXT) {
                return Err(FrameError::new(Code::TextTooLong, format!("a message has at most {MAX_TEXT} characters")));
            }
            if text.as_ref().is_some_and(|t| t.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))) {
                return Err(FrameError::new(Code::InvalidText, "a message has no control characters"));
            }
            if attachment_ids.len() > MAX_ATTACHMENTS {
                return Err(FrameError::new(
                    Code::TooManyAttachments,
                    format!("at most {MAX_ATTACHMENTS} attachments"),
                ));
            }
            if attachment_ids.iter().any(|a| a.parse::<schema::AttachmentId>().is_err()) {
                return Err(FrameError::new(Code::InvalidId, "attachment_ids holds attachment ids"));
            }
            if text.is_none() && attachment_ids.is_empty() {
                return Err(FrameError::new(Code::EmptyMessage, "send text, attachments or both"));
            }
            ClientFrame::Message { client_id, text, attachment_ids }
        }
        Wire::Receipt { status, message_ids } => {
            if message_ids.is_empty() || message_ids.len() > MAX_RECEIPT_IDS {
                return Err(FrameError::new(Code::InvalidReceipt, format!("1 to {MAX_RECEIPT_IDS} message ids")));
            }
            if message_ids.iter().any(|m| m.parse::<schema::MessageId>().is_err()) {
                return Err(FrameError::new(Code::InvalidId, "message_ids holds message ids"));
            }
            ClientFrame::Receipt { status, message_ids }
        }
        Wire::Ping => ClientFrame::Ping,
    })
}

fn token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// A plausible address: one `@`, a local part, a dotted domain, no spaces or controls. (The
/// only proof of an address is a mail that arrives; this catches typos.)
pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else { return false };
    email.len() <= MAX_EMAIL
        && !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && email.chars().all(|c| !c.is_whitespace() && !c.is_control() && !matches!(c, '<' | '>' | '"' | ',' | ';'))
}

/// What the server sends.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The chat is open (after `start` or `resume`): the token to resume with, the current
    /// conversation and the history, oldest first.
    Started {
        token: Option<String>,
        visitor: VisitorView,
        conversation_id: Option<String>,
        /// queued, offered, in_service…, or the final state of the last conversation.
        state: Option<String>,
        messages: Vec<ChatMessage>,
    },
    /// A customer message is stored (committed): `client_id` is the widget's id for it.
    Ack { client_id: String, message_id: String, conversation_id: String },
    /// A message: the agent's, live, or the customer's own sent from another tab.
    Message { message: ChatMessage },
    /// The conversation changed state (queued, in_service…).
    State { conversation_id: String, state: String },
    /// The agent ended the conversation; a new message starts a new one.
    Ended { conversation_id: String, state: String },
    /// A frame was refused; nothing was stored. `client_id` names the refused message.
    Error {
        #[serde(skip_serializing_if = "Option::is_none", default)]
        client_id: Option<String>,
        error: Code,
        message: String,
    },
    /// Answer to `ping`.
    Pong,
}

impl ServerFrame {
    /// An error frame.
    pub fn error(client_id: Option<String>, e: FrameError) -> Self {
        Self::Error { client_id, error: e.code, message: e.message }
    }
}

/// The visitor as the widget shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VisitorView {
    pub id: String,
    pub name: String,
    pub email: String,
}

/// One message as the customer sees it: no agent ids, no internal notes, no provider data.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChatMessage {
    pub id: String,
    pub conversation_id: String,
    /// `customer` or `agent`.
    pub from: String,
    /// text, image, audio, video, document.
    pub kind: String,
    pub text: Option<String>,
    pub attachments: Vec<ChatAttachment>,
    /// The widget's id of a customer message.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub client_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A file of a message; the widget downloads it from `url` with its token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChatAttachment {
    pub id: String,
    pub name: String,
    pub content_type: String,
    pub size: i64,
    pub url: String,
}

impl ChatMessage {
    /// The customer's view of a stored message with those of `files` that belong to it.
    pub fn from_row(m: &schema::models::Message, files: &[schema::models::Attachment]) -> Self {
        let from = if m.direction == schema::MessageDirection::In { "customer" } else { "agent" };
        let client_id = (m.direction == schema::MessageDirection::In)
            .then(|| m.payload.get("client_id").and_then(Value::as_str).map(str::to_owned))
            .flatten();
        Self {
            id: m.id.to_string(),
            conversation_id: m.conversation_id.to_string(),
            from: from.to_owned(),
            kind: m.kind.to_string(),
            text: m.body.clone(),
            attachments: files
                .iter()
                .filter(|a| a.message_id == Some(m.id))
                .map(|a| ChatAttachment {
                    id: a.id.to_string(),
                    name: a.name.clone(),
                    content_type: a.content_type.clone(),
                    size: a.size_bytes,
                    url: format!("/webchat/{}/attachments/{}", m.service_id, a.id),
                })
                .collect(),
            client_id,
            created_at: m.created_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_and_limits_hold() {
        assert_eq!(
            parse(r#"{"type":"start","name":" Ana ","email":"ana@example.com"}"#),
            Ok(ClientFrame::Start { service_id: None, name: "Ana".into(), email: "ana@example.com".into() })
        );
        assert_eq!(parse(r#"{"type":"ping"}"#), Ok(ClientFrame::Ping));
        assert_eq!(parse(r#"{"type":"start","name":"","email":"a@b.co"}"#).unwrap_err().code, Code::InvalidName);
        assert_eq!(parse(r#"{"type":"start","name":"A","email":"a@b"}"#).unwrap_err().code, Code::InvalidEmail);
        assert_eq!(parse(r#"{"type":"message","client_id":"c1","text":"  "}"#).unwrap_err().code, Code::EmptyMessage);
        assert_eq!(
            parse(r#"{"type":"message","client_id":"c 1","text":"x"}"#).unwrap_err().code,
            Code::InvalidClientId
        );
        assert_eq!(parse(r#"{"type":"nope"}"#).unwrap_err().code, Code::InvalidMessage);
        assert!(valid_email("j.silva+chat@mail.example.com.br"));
        for bad in ["", "a", "a@", "@b.c", "a@b", "a@@b.c", "a b@c.d", "a@b..c", "a@.b.c", "<a@b.c>"] {
            assert!(!valid_email(bad), "{bad:?}");
        }
    }

    mod fuzz {
        use proptest::prelude::*;

        use super::super::*;

        fn json_value() -> impl Strategy<Value = serde_json::Value> {
            let leaf = prop_oneof![
                Just(serde_json::Value::Null),
                any::<bool>().prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                ".{0,40}".prop_map(serde_json::Value::from),
            ];
            leaf.prop_recursive(4, 32, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                    prop::collection::btree_map(
                        prop_oneof![
                            Just("type".to_owned()),
                            Just("name".to_owned()),
                            Just("email".to_owned()),
                            Just("token".to_owned()),
                            Just("client_id".to_owned()),
                            Just("text".to_owned()),
                            Just("attachment_ids".to_owned()),
                            Just("message_ids".to_owned()),
                            Just("status".to_owned()),
                            ".{0,8}"
                        ],
                        inner,
                        0..6
                    )
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn frame_type() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("start".to_owned()),
                Just("resume".to_owned()),
                Just("message".to_owned()),
                Just("receipt".to_owned()),
                Just("ping".to_owned()),
                ".{0,10}"
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Any string: a frame or a refusal, never a panic.
            #[test]
            fn any_text_is_parsed_or_refused(text in ".{0,300}") {
                let _ = parse(&text);
            }

            /// Objects that look like frames: whatever is accepted respects every limit.
            #[test]
            fn accepted_frames_respect_the_limits(t in frame_type(), mut body in json_value()) {
                if let serde_json::Value::Object(m) = &mut body {
                    m.insert("type".into(), t.into());
                }
                match parse(&body.to_string()) {
                    Ok(ClientFrame::Start { name, email, .. }) => {
                        prop_assert!(!name.is_empty() && name.chars().count() <= MAX_NAME);
                        prop_assert!(valid_email(&email));
                    }
                    Ok(ClientFrame::Message { client_id, text, attachment_ids }) => {
                        prop_assert!(!client_id.is_empty() && client_id.len() <= MAX_CLIENT_ID);
                        prop_assert!(text.is_some() || !attachment_ids.is_empty());
                        prop_assert!(text.map_or(0, |t| t.chars().count()) <= MAX_TEXT);
                        prop_assert!(attachment_ids.len() <= MAX_ATTACHMENTS);
                    }
                    Ok(ClientFrame::Receipt { message_ids, .. }) => {
                        prop_assert!(!message_ids.is_empty() && message_ids.len() <= MAX_RECEIPT_IDS);
                    }
                    Ok(ClientFrame::Resume { token }) => prop_assert!(!token.is_empty() && token.len() <= 128),
                    Ok(ClientFrame::Ping) => {}
                    Err(e) => prop_assert!(!e.message.is_empty()),
                }
            }

            /// Valid frames with arbitrary names and texts round-trip their content.
            #[test]
            fn valid_messages_keep_their_text(id in "[a-zA-Z0-9_-]{1,64}", text in "[^\\p{Cc}]{1,200}") {
                let frame = serde_json::json!({"type": "message", "client_id": id, "text": text});
                match parse(&frame.to_string()) {
                    Ok(ClientFrame::Message { client_id, text: Some(t), .. }) => {
                        prop_assert_eq!(client_id, id);
                        prop_assert_eq!(t, text.trim_end());
                    }
                    Err(e) => prop_assert_eq!(e.code, Code::EmptyMessage, "only blank texts are refused"),
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
        }
    }
}
