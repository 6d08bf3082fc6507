//! The event feed: what the engine tells the world after each commit. The web layer (desk and
//! monitor WebSocket sessions) and tests subscribe with a `Recipient<EngineEvent>`.

use std::sync::Arc;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use schema::models::{Attachment, Message};
use schema::{AgentId, Channel, ConversationId, MessageDirection, ServiceId};

use crate::book::ConversationEvent;
use crate::model::Presence;

/// One committed happening.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub enum EngineEvent {
    /// A conversation changed; `seq` is its event sequence number (desks resume from it).
    Conversation { seq: i64, event: Arc<ConversationEvent> },
    /// An agent's presence changed.
    Presence { agent: AgentId, presence: Presence, at: DateTime<Utc> },
    /// A queue's counts changed (D3 live counts, S1).
    Queue(QueueCounts),
    /// A timer-driven alert (R10).
    Alert(Alert),
    /// A message was stored in a conversation (or its delivery status changed). The web layer
    /// renders it for each socket it goes to: the engine knows rows, not the API's shapes.
    Message {
        conversation_id: ConversationId,
        service_id: ServiceId,
        owner: Option<AgentId>,
        message: Arc<PublishedMessage>,
    },
}

/// A stored message as the engine publishes it: its row and, when the publisher has them, its
/// attachments (empty when the message has none or the publisher did not read them).
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedMessage {
    pub row: Message,
    pub attachments: Vec<Attachment>,
}

impl PublishedMessage {
    /// A message with the attachments the publisher read with it.
    pub fn new(row: Message, attachments: Vec<Attachment>) -> Self {
        Self { row, attachments }
    }
}

impl From<Message> for PublishedMessage {
    /// A message published without its attachments.
    fn from(row: Message) -> Self {
        Self { row, attachments: Vec::new() }
    }
}

/// Which committed events a subscriber is sent. Every `do_send` to an actor on another thread
/// wakes that thread, and under load nearly every event is a customer's message, which only desks
/// (their agent's, and supervisors') show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// Every event.
    Everything,
    /// Every event but customers' messages.
    WithoutCustomerMessages,
    /// Every event but messages.
    WithoutMessages,
}

impl Feed {
    /// Whether a subscriber of this feed is sent `event`.
    pub fn wants(self, event: &EngineEvent) -> bool {
        match (self, event) {
            (Feed::WithoutMessages, EngineEvent::Message { .. }) => false,
            (Feed::WithoutCustomerMessages, EngineEvent::Message { message, .. }) => {
                message.row.direction != MessageDirection::In
            }
            _ => true,
        }
    }
}

/// The live counts of one service's queue.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct QueueCounts {
    pub service_id: ServiceId,
    pub channel: Channel,
    /// Conversations waiting (queued or inactive_in_queue).
    pub waiting: usize,
    /// Of those, the ones whose agent left (inactive_in_queue).
    pub inactive: usize,
    /// How long the oldest one has waited, in seconds.
    pub oldest_wait_s: i64,
}

/// An alert about a conversation (R10).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Alert {
    pub conversation_id: ConversationId,
    pub agent_id: Option<AgentId>,
    pub kind: AlertKind,
    pub at: DateTime<Utc>,
}

/// Which alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Warn the agent: the customer has not written for the service's alert time.
    CustomerSilent,
    /// Remind the customer (the channel adapter sends the service's reminder text).
    CustomerReminder,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(direction: MessageDirection) -> EngineEvent {
        let (conversation_id, service_id) = (ConversationId::new(), ServiceId::new());
        let row = Message::new(
            conversation_id,
            service_id,
            direction,
            schema::MessageKind::Text,
            schema::MessageStatus::Received,
            Utc::now(),
        );
        EngineEvent::Message { conversation_id, service_id, owner: None, message: Arc::new(row.into()) }
    }

    #[test]
    fn each_feed_leaves_out_only_the_messages_it_says() {
        let queue = EngineEvent::Queue(QueueCounts {
            service_id: ServiceId::new(),
            channel: Channel::Whatsapp,
            waiting: 1,
            inactive: 0,
            oldest_wait_s: 0,
        });
        let (customer, agent) = (message(MessageDirection::In), message(MessageDirection::Out));
        let sent = |feed: Feed| [&customer, &agent, &queue].map(|e| feed.wants(e));
        assert_eq!(sent(Feed::Everything), [true, true, true]);
        assert_eq!(sent(Feed::WithoutCustomerMessages), [false, true, true]);
        assert_eq!(sent(Feed::WithoutMessages), [false, false, true]);
    }
}
