//! The outbox signal: how a request that stored an agent's message hands it to the sender.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use schema::models::{Attachment, Message, Service};
use schema::store::OutboxContext;
use schema::{Channel, MessageId};
use tokio::sync::Notify;

use crate::core::error::Code;

/// Hands the sender the messages agents just stored (besides its one-second scan for what is
/// due: retries, and what a previous process left).
#[derive(Clone, Default)]
pub struct OutboxSignal(Arc<Ready>);

#[derive(Default)]
struct Ready {
    notify: Notify,
    ids: std::sync::Mutex<Vec<MessageId>>,
    handed: std::sync::Mutex<Vec<Handed>>,
}

/// A message an agent just stored, with what sending it needs as the request that stored it had
/// them. It was stored already claimed — its first attempt counted and leased ([`LEASE`]) — so no
/// other sender takes it and the sender sends it without a statement; if this process dies before
/// recording the send, the lease runs out (or the next start releases it) and it is sent then.
pub struct Handed {
    pub message: Message,
    pub conversation: schema::models::Conversation,
    pub service: schema::models::Service,
    /// The customer's last message, for the reply window.
    pub last_customer_at: Option<DateTime<Utc>>,
}

impl OutboxSignal {
    /// A message was committed `pending` and due now: the sender claims it by id, without
    /// scanning for due messages.
    pub fn ready(&self, id: MessageId) {
        if let Ok(mut ids) = self.0.ids.lock() {
            ids.push(id);
        }
        self.0.notify.notify_one();
    }

    /// Resolves when a message is ready or handed.
    pub async fn notified(&self) {
        self.0.notify.notified().await
    }

    /// Ids taken but not sent this turn: taken again on the next.
    pub fn put_back(&self, ids: Vec<MessageId>) {
        if let Ok(mut all) = self.0.ids.lock() {
            all.extend(ids);
        }
    }

    /// A message stored claimed, with its context: sent without a statement before it.
    pub fn hand(&self, handed: Handed) {
        if let Ok(mut all) = self.0.handed.lock() {
            all.push(handed);
        }
        self.0.notify.notify_one();
    }

    pub fn take(&self) -> Vec<MessageId> {
        self.0.ids.lock().map(|mut ids| std::mem::take(&mut *ids)).unwrap_or_default()
    }

    /// The handed messages, with their context.
    pub fn take_handed(&self) -> Option<(Vec<Message>, OutboxContext)> {
        let handed = self.0.handed.lock().map(|mut all| std::mem::take(&mut *all)).unwrap_or_default();
        if handed.is_empty() {
            return None;
        }
        let mut context = OutboxContext::default();
        let mut batch = Vec::with_capacity(handed.len());
        for h in handed {
            let key = (h.service.id, h.conversation.customer_address.clone());
            if let Some(at) = h.last_customer_at {
                let known = context.last_customer_at.entry(key).or_insert(at);
                *known = (*known).max(at);
            }
            context.services.insert(h.service.id, h.service);
            context.conversations.insert(h.conversation.id, h.conversation);
            batch.push(h.message);
        }
        Some((batch, context))
    }
}

/// What a provider said to one send.
#[derive(Debug)]
pub enum SendResult {
    /// Accepted, with the provider's message id.
    Sent(String),
    /// Refused for good: the error code and message shown to the agent.
    Refused(String, String),
    /// Try again later (429, 5xx, network).
    Retry(String),
    /// This channel has no sender yet: left pending.
    Unsupported,
    /// Webchat: the visitor is away; the message stays pending until its widget reconnects.
    AwaitingCustomer,
}

impl SendResult {
    /// Refused by us before any provider saw it: one of our own codes. A provider's own codes
    /// (WhatsApp's `131047`, an SMTP `550`) go in `Refused` as they came.
    pub fn refused(code: Code, message: impl Into<String>) -> Self {
        SendResult::Refused(code.as_str().to_owned(), message.into())
    }
}

/// What a sender needs besides the message: the customer's last message (the window) and the
/// message's files with their bytes.
pub struct Outgoing<'a> {
    pub last_customer_at: Option<DateTime<Utc>>,
    pub files: &'a [(Attachment, Vec<u8>)],
}

impl Outgoing<'_> {
    /// The files not sent yet (a retry skips the others).
    pub fn unsent(&self) -> impl Iterator<Item = &(Attachment, Vec<u8>)> {
        self.files.iter().filter(|(a, _)| a.provider_media_id.is_none())
    }
}

/// One message to send, with what a sender needs.
pub struct SendCall<'a> {
    pub state: &'a crate::core::state::AppState,
    /// The sender's HTTP client (one per sender task: its pool of connections to the providers).
    pub client: &'a awc::Client,
    pub service: &'a Service,
    /// The customer's address on the channel.
    pub address: &'a str,
    pub message: &'a Message,
    pub out: &'a Outgoing<'a>,
}

/// How messages of one channel go out: each provider's folder under `channels/` has one, and the
/// webchat is one more. The outbound task asks the registry, never a provider by name.
pub trait Sender: Send + Sync + 'static {
    /// Sends one message (and its files) and says what the provider answered.
    fn send<'a>(&'a self, call: SendCall<'a>) -> futures_util::future::LocalBoxFuture<'a, SendResult>;

    /// The sender itself, for the layer that registered it to find its own state again (the
    /// webchat's hub).
    fn as_any(&self) -> &dyn std::any::Any;
}

/// The senders, one per channel, registered when the server's state is built (`boot::state`).
#[derive(Clone, Default)]
pub struct Senders(Arc<HashMap<Channel, Arc<dyn Sender>>>);

impl Senders {
    /// A registry of these senders.
    pub fn new(senders: impl IntoIterator<Item = (Channel, Arc<dyn Sender>)>) -> Self {
        Self(Arc::new(senders.into_iter().collect()))
    }

    /// The sender of `channel`, if one is registered.
    pub fn get(&self, channel: Channel) -> Option<&dyn Sender> {
        self.0.get(&channel).map(|s| s.as_ref())
    }
}
