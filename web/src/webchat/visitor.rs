//! What the webchat socket does, apart from the socket itself: starting and resuming a visitor,
//! storing its messages (through `Engine::ingest`: idempotent by client id, committed before the
//! ack), receipts of the agent's messages, and the outbound side — an agent's message is `sent`
//! when a socket of its visitor got it, and waits as `pending` while the visitor is away.

use chrono::Utc;
use engine::NewConversation;
use engine::ingest::{InboundMessage, Ingest, IngestExtras, Ingested};
use rand::RngCore;
use schema::models::{Attachment, Conversation, Message, Service, Visitor};
use schema::{
    AttachmentId, Channel, ConversationId, MessageDirection, MessageId, MessageKind, MessageStatus, VisitorId, store,
};
use serde_json::json;

use crate::core::db::db;
use crate::core::error::{ApiError, Code};
use crate::core::outbox::SendResult;
use crate::core::state::AppState;
use crate::webchat::protocol::{ChatMessage, FrameError, ReceiptStatus, ServerFrame, VisitorView};

/// Most messages replayed to a resuming widget.
pub const HISTORY: i64 = 200;

/// A started visitor, as its socket knows it.
#[derive(Debug, Clone)]
pub struct VisitorCtx {
    pub visitor: Visitor,
    /// The conversation its next message goes to, if one is open (or was last).
    pub conversation: Option<ConversationId>,
}

fn refusal(e: ApiError) -> FrameError {
    FrameError::new(e.code, e.message)
}

/// A new random resume token (256 bits, URL-safe).
fn new_token() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// K2: the one customer having this email; `None` when none or several have it.
fn identify(conn: &mut schema::PgConnection, email: &str) -> Result<Option<schema::CustomerId>, schema::StoreError> {
    let mut ids: Vec<schema::CustomerId> = store::customers_by_email(conn, email)?.into_iter().map(|c| c.id).collect();
    let lower = email.to_lowercase();
    if lower != email {
        ids.extend(store::customers_by_email(conn, &lower)?.into_iter().map(|c| c.id));
    }
    ids.sort();
    ids.dedup();
    Ok(if ids.len() == 1 { ids.first().copied() } else { None })
}

fn view(v: &Visitor) -> VisitorView {
    VisitorView { id: v.id.to_string(), name: v.name.clone(), email: v.email.clone() }
}

/// A new visitor: identified by email (K2), with a conversation opened and queued at once (the
/// customer is waiting for an agent). Answers the context and the `started` frame with the token.
pub async fn start(
    state: &AppState,
    service: &Service,
    name: String,
    email: String,
) -> Result<(VisitorCtx, ServerFrame), FrameError> {
    let token = new_token();
    let now = Utc::now();
    let row = Visitor {
        id: VisitorId::new(),
        service_id: service.id,
        name,
        email,
        customer_id: None,
        token_hash: crate::core::session::token_hash(&token),
        created_at: now,
        last_seen_at: now,
    };
    let visitor = db(state, move |c| {
        let customer_id = identify(c, &row.email)?;
        Visitor { customer_id, ..row }.insert(c)
    })
    .await
    .map_err(refusal)?;
    let mut new = NewConversation::new(service.id, Channel::Webchat, visitor.id.to_string());
    new.customer_name = Some(visitor.name.clone());
    new.customer_id = visitor.customer_id;
    let conversation =
        state.engine.open_conversation(new).await.map_err(|e| refusal(crate::channels::engine_unavailable(e)))?;
    let state_now = state.engine.conversation(conversation).await.map(|f| f.state.to_string());
    tracing::info!(visitor.id = %visitor.id, conversation.id = %conversation, "webchat started");
    let frame = ServerFrame::Started {
        token: Some(token),
        visitor: view(&visitor),
        conversation_id: Some(conversation.to_string()),
        state: state_now.or(Some("queued".into())),
        messages: Vec::new(),
    };
    Ok((VisitorCtx { visitor, conversation: Some(conversation) }, frame))
}

/// A returning visitor, found by its token, and its last conversation. The socket joins the hub
/// before [`resume`] reads what waited for the visitor: an agent's message sent in between is
/// then either pushed to the socket or still pending when the history is read, never neither.
pub async fn returning(
    state: &AppState,
    service: &Service,
    token: &str,
) -> Result<(Visitor, Option<Conversation>), FrameError> {
    let (service_id, hash) = (service.id, crate::core::session::token_hash(token));
    let found = db(state, move |c| {
        let Some(visitor) = store::visitor_by_token(c, service_id, &hash)? else { return Ok(None) };
        store::touch_visitor(c, visitor.id, Utc::now())?;
        let latest = store::latest_conversation_for(c, service_id, &visitor.id.to_string())?;
        Ok(Some((visitor, latest)))
    })
    .await
    .map_err(refusal)?;
    found.ok_or_else(|| FrameError::new(Code::InvalidToken, "this chat can no longer be resumed; start a new one"))
}

/// A returning visitor's history (after [`returning`]). The agent's messages that waited for the
/// visitor are in it, so they count as sent now.
pub async fn resume(
    state: &AppState,
    visitor: Visitor,
    latest: Option<Conversation>,
) -> Result<(VisitorCtx, ServerFrame), FrameError> {
    let (service_id, address) = (visitor.service_id, visitor.id.to_string());
    let (history, files, now_sent) = db(state, move |c| {
        let (history, files) = store::customer_history(c, service_id, &address, HISTORY)?;
        let mut now_sent = Vec::new();
        for m in history.iter().filter(|m| m.direction == MessageDirection::Out && m.status == MessageStatus::Pending) {
            if let Some(sent) = store::mark_sent(c, m.id, &format!("webchat:{}", m.id), Utc::now())? {
                now_sent.push(sent);
            }
        }
        Ok((history, files, now_sent))
    })
    .await
    .map_err(refusal)?;
    publish_status(state, service_id, &now_sent).await;
    let frame = ServerFrame::Started {
        token: None,
        visitor: view(&visitor),
        conversation_id: latest.as_ref().map(|c| c.id.to_string()),
        state: latest.as_ref().map(|c| c.state.to_string()),
        messages: history.iter().map(|m| ChatMessage::from_row(m, &files)).collect(),
    };
    let conversation = latest.filter(|c| !c.state.is_final()).map(|c: Conversation| c.id);
    Ok((VisitorCtx { visitor, conversation }, frame))
}

/// Tells the desks about messages whose status changed.
async fn publish_status(state: &AppState, service: schema::ServiceId, changed: &[Message]) {
    for m in changed {
        state.engine.publish_message(m.conversation_id, service, m.clone()).await;
    }
}

fn kind_of(content_type: &str) -> MessageKind {
    match content_type.split('/').next() {
        Some("image") => MessageKind::Image,
        Some("audio") => MessageKind::Audio,
        Some("video") => MessageKind::Video,
        _ => MessageKind::Document,
    }
}

enum Check {
    Replay(Box<Message>),
    New(MessageKind),
}

/// A stored customer message: what the socket acks and shows the visitor's other tabs.
pub struct Stored {
    pub message: ChatMessage,
    pub conversation: ConversationId,
    /// False for a replay (nothing new was stored).
    pub new: bool,
}

/// Stores a customer message once per `client_id` (C3) and answers only after the commit (C4):
/// the message, and its attachments linked to it.
pub async fn message(
    state: &AppState,
    ctx: &VisitorCtx,
    client_id: String,
    text: Option<String>,
    attachment_ids: Vec<String>,
) -> Result<Stored, FrameError> {
    let v = &ctx.visitor;
    let (visitor, service) = (v.id, v.service_id);
    let provider_id = format!("{visitor}:{client_id}");
    let ids: Vec<AttachmentId> = attachment_ids.iter().filter_map(|a| a.parse().ok()).collect();
    let with_files = !ids.is_empty();
    let (pid, wanted, has_text) = (provider_id.clone(), ids.clone(), text.is_some());
    // A replay is answered with the stored message; a new message's files are checked first.
    // Without files there is nothing to check: the ingest itself tells a replay (a duplicate).
    let checked = if wanted.is_empty() {
        Check::New(MessageKind::Text)
    } else {
        db(state, move |c| {
            if let Some(m) = store::message_by_provider_id(c, service, &pid)? {
                return Ok(Ok(Check::Replay(Box::new(m))));
            }
            let files = store::uploads_of_visitor(c, visitor, &wanted)?;
            if files.len() != wanted.len() || files.iter().any(|f| f.message_id.is_some()) {
                return Ok(Err(FrameError::new(
                    Code::InvalidAttachment,
                    "attach files you uploaded and have not sent yet",
                )));
            }
            if let Some(f) = files.iter().find(|f| {
                usize::try_from(f.size_bytes).unwrap_or(usize::MAX)
                    > crate::core::files::channel_limit(Channel::Webchat, &f.content_type)
            }) {
                return Ok(Err(FrameError::new(
                    Code::AttachmentNotAllowed,
                    format!("{} is too large for the chat", f.name),
                )));
            }
            let kind = match (&has_text, files.as_slice()) {
                (true, _) | (false, []) => MessageKind::Text,
                (false, [one]) => kind_of(&one.content_type),
                (false, _) => MessageKind::Document,
            };
            Ok(Ok(Check::New(kind)))
        })
        .await
        .map_err(refusal)??
    };
    let (stored, new) = match checked {
        Check::Replay(existing) => (*existing, false),
        Check::New(kind) => {
            let inbound = InboundMessage {
                service,
                channel: Channel::Webchat,
                address: visitor.to_string(),
                customer_name: Some(v.name.clone()),
                customer_id: v.customer_id,
                provider_message_id: Some(provider_id.clone()),
                kind,
                body: text,
                payload: json!({"client_id": client_id}),
                sent_at: None,
                subject: None,
            };
            // The uploads are linked in the message's own transaction, so the desks are told
            // about the message with its files; without files, with the routing (one trip to the
            // distributor).
            let how = if with_files {
                Ingest::published().with_extras(LinkUploads { visitor, ids: ids.clone() })
            } else {
                Ingest::published()
            };
            let (outcome, message) = crate::channels::ingest(state, inbound, how).await.map_err(refusal)?;
            match (outcome, message) {
                (Ingested::Stored { .. }, Some(m)) => (m, true),
                _ => {
                    // A concurrent replay stored it first (and has committed: we waited on its row).
                    let pid = provider_id.clone();
                    let found =
                        db(state, move |c| store::message_by_provider_id(c, service, &pid)).await.map_err(refusal)?;
                    let found = found.ok_or_else(|| {
                        FrameError::new(Code::Unavailable, "the message was not stored; send it again")
                    })?;
                    (found, false)
                }
            }
        }
    };
    let (message_id, conversation) = (stored.id, stored.conversation_id);
    // A new message without uploads has no files: no trip to the database for them.
    let files = if ids.is_empty() && new {
        Vec::new()
    } else {
        db(state, move |c| store::attachments_of(c, message_id)).await.map_err(refusal)?
    };
    Ok(Stored { message: ChatMessage::from_row(&stored, &files), conversation, new })
}

/// Records that the visitor's page received or showed the agent's messages (D8 ticks).
pub async fn receipt(
    state: &AppState,
    ctx: &VisitorCtx,
    status: ReceiptStatus,
    message_ids: Vec<String>,
) -> Result<(), FrameError> {
    let ids: Vec<MessageId> = message_ids.iter().filter_map(|m| m.parse().ok()).collect();
    let (service, address) = (ctx.visitor.service_id, ctx.visitor.id.to_string());
    let status = match status {
        ReceiptStatus::Delivered => MessageStatus::Delivered,
        ReceiptStatus::Read => MessageStatus::Read,
    };
    let changed = db(state, move |c| {
        let mut mine = Vec::new();
        for id in ids {
            let m = match Message::find(c, id) {
                Ok(m) => m,
                Err(schema::StoreError::NotFound) => return Ok(Err(())),
                Err(e) => return Err(e),
            };
            let conv = Conversation::find(c, m.conversation_id)?;
            if m.direction != MessageDirection::Out || conv.service_id != service || conv.customer_address != address {
                return Ok(Err(()));
            }
            mine.push(id);
        }
        let mut changed = Vec::new();
        for id in mine {
            changed.extend(store::advance_message_status(c, id, status, Utc::now(), None)?);
        }
        Ok(Ok(changed))
    })
    .await
    .map_err(refusal)?
    .map_err(|()| FrameError::new(Code::UnknownMessage, "a receipt names the agent's messages of this chat"))?;
    publish_status(state, service, &changed).await;
    Ok(())
}

/// The outbound sender's webchat channel: pushes an agent's message to its visitor's sockets.
/// `Sent` when at least one got it; otherwise it waits as `pending` (the visitor's next resume
/// replays it and marks it sent).
pub async fn send(state: &AppState, address: &str, m: &Message, files: &[Attachment]) -> SendResult {
    let Ok(visitor) = address.parse::<VisitorId>() else {
        return SendResult::refused(Code::InvalidAddress, "this conversation has no webchat visitor");
    };
    let frame = ServerFrame::Message { message: ChatMessage::from_row(m, files) };
    let Some(hub) = super::hub(state) else { return SendResult::AwaitingCustomer };
    if hub.deliver(visitor, frame, None).await > 0 {
        SendResult::Sent(format!("webchat:{}", m.id))
    } else {
        SendResult::AwaitingCustomer
    }
}

/// A visitor's uploads attached to the message they were sent with, in its transaction.
struct LinkUploads {
    visitor: VisitorId,
    ids: Vec<AttachmentId>,
}

impl IngestExtras for LinkUploads {
    fn stored(&self, c: &mut schema::PgConnection, m: &Message) -> Result<(), schema::StoreError> {
        store::link_uploads(c, self.visitor, &self.ids, m.id, m.conversation_id).map(drop)
    }

    fn stores_more(&self) -> bool {
        true
    }
}
