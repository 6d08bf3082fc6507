//! The outbox signal: how a request that stored an agent's message hands it to the sender.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use schema::MessageId;
use schema::models::Message;
use schema::store::OutboxContext;
use tokio::sync::Notify;

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
