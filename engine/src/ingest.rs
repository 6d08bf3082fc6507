//! Ingest (C3, C4): one customer message, stored idempotently in one transaction — the open
//! conversation of that customer address found or opened, the message inserted unless the provider
//! already delivered it — and only then handed to the routing engine. A replay, sequential or
//! concurrent, stores one message and one conversation: the partial unique indexes decide.
//! `Engine::ingest` stores many callers' messages in one transaction (the group commit of
//! `inbox.rs`), with the same outcomes; [`store_inbound`] is the one-message path it falls back
//! to, and the path of phone calls. What varies between channels (what is stored beside the
//! message, whether the desks are told) is an [`Ingest`], the one parameter of that path.

use chrono::{DateTime, Utc};
use schema::models::{Conversation, ConversationChangeset, Customer, Message};
use schema::{
    Channel, Connection, ConversationId, ConversationState, CustomerId, Direction, MessageDirection, MessageId,
    MessageKind, MessageStatus, PgConnection, ServiceId, StoreError, store,
};
use serde_json::Value;
use std::sync::Arc;

/// A message from a customer, as a channel adapter parsed it.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    pub service: ServiceId,
    pub channel: Channel,
    /// The customer's address on the channel (wa_id, phone, email, chat id).
    pub address: String,
    pub customer_name: Option<String>,
    pub customer_id: Option<CustomerId>,
    /// The provider's id of the message: the idempotency key (C3).
    pub provider_message_id: Option<String>,
    pub kind: MessageKind,
    pub body: Option<String>,
    pub payload: Value,
    /// When the provider says it was sent.
    pub sent_at: Option<DateTime<Utc>>,
    pub subject: Option<String>,
}

impl InboundMessage {
    /// Removes the NUL characters PostgreSQL cannot store in text or JSON (a customer's app may
    /// send one): the rest of the message is kept and stored, so the provider, which would retry a
    /// refused message forever, gets its acknowledgement.
    pub fn without_nul(mut self) -> Self {
        for text in [Some(&mut self.address), self.customer_name.as_mut(), self.provider_message_id.as_mut()]
            .into_iter()
            .chain([self.body.as_mut(), self.subject.as_mut()])
            .flatten()
        {
            strip_nul(text);
        }
        strip_nul_in_json(&mut self.payload);
        self
    }
}

fn strip_nul(text: &mut String) {
    if text.contains('\0') {
        text.retain(|c| c != '\0');
    }
}

/// Iterative, so a deeply nested payload cannot exhaust the stack.
fn strip_nul_in_json(value: &mut Value) {
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) => strip_nul(s),
            Value::Array(items) => stack.extend(items.iter_mut()),
            Value::Object(map) => {
                if map.keys().any(|k| k.contains('\0')) {
                    let entries = std::mem::take(map);
                    map.extend(entries.into_iter().map(|(mut k, v)| {
                        strip_nul(&mut k);
                        (k, v)
                    }));
                }
                stack.extend(map.values_mut());
            }
            _ => {}
        }
    }
}

/// What storing a message did.
#[derive(Debug, Clone, PartialEq)]
pub enum Ingested {
    /// Stored; `opened` when it started a new conversation.
    Stored { conversation: ConversationId, message: MessageId, opened: bool },
    /// The provider had delivered it before: nothing was stored.
    Duplicate,
}

/// How a conversation opened by a message starts (R14): flagged out of hours, maybe held.
#[derive(Debug, Clone, Copy, Default)]
pub struct Opening {
    pub out_of_hours: bool,
    pub held: Option<schema::HoldReason>,
}

/// What [`store_inbound`] stored: the outcome, the message, and the conversation it opened.
pub type StoredInbound = (Ingested, Option<Message>, Option<Conversation>);

/// What a channel stores beside an inbound message, inside the transaction that stores it, so
/// that the message and its parts commit together (C4).
pub trait IngestExtras: Send + Sync {
    /// Fills channel-specific columns of the message before it is inserted (email headers).
    fn prepare(&self, _message: &mut Message) {}
    /// Stores what belongs to the inserted message (attachments).
    fn stored(&self, _conn: &mut PgConnection, _message: &Message) -> Result<(), StoreError> {
        Ok(())
    }
    /// Whether [`IngestExtras::stored`] writes anything (then the message is stored inside a
    /// transaction with it).
    fn stores_more(&self) -> bool {
        false
    }
}

/// Nothing besides the message.
pub struct NoExtras;

impl IngestExtras for NoExtras {}

/// How `Engine::ingest` stores and announces a customer's message: what the channel stores
/// beside it in the same transaction, and whether the conversation's desks are told about it.
#[derive(Clone)]
pub struct Ingest {
    pub(crate) extras: Arc<dyn IngestExtras>,
    pub(crate) publish: bool,
}

impl Default for Ingest {
    /// The message alone, routed without telling the desks (the caller does, or nobody needs to).
    fn default() -> Self {
        Self { extras: Arc::new(NoExtras), publish: false }
    }
}

impl Ingest {
    /// Also tells the conversation's desks (its agent, its supervisors) about the stored message,
    /// with the attachments the extras stored. A message into an open conversation without
    /// extras — the common case — is routed and published in one trip to the distributor.
    pub fn published() -> Self {
        Self { publish: true, ..Self::default() }
    }

    /// Stores `extras` with the message, in its transaction.
    pub fn with_extras(self, extras: impl IngestExtras + 'static) -> Self {
        Self { extras: Arc::new(extras), ..self }
    }
}

/// Stores the message (and opens its conversation when none is open) in one transaction, with a
/// channel's extras.
pub fn store_inbound(
    conn: &mut PgConnection,
    m: &InboundMessage,
    opening: Opening,
    now: DateTime<Utc>,
    extras: &dyn IngestExtras,
) -> Result<StoredInbound, StoreError> {
    conn.transaction(|c| {
        if let Some(id) = &m.provider_message_id
            && store::message_by_provider_id(c, m.service, id)?.is_some()
        {
            return Ok((Ingested::Duplicate, None, None));
        }
        let (conversation, opened) = match store::open_conversation_for(c, m.service, &m.address)? {
            Some(open) => (open, None),
            None => {
                let mut row = new_conversation(m, opening, now);
                if row.customer_id.is_none()
                    && let Some(known) = identify(c, m.channel, &m.address)?
                {
                    (row.customer_id, row.customer_name) = (Some(known.id), Some(known.name));
                }
                // Two first messages of a new customer at once: the partial unique index lets
                // one open the conversation; the other joins it (savepoint, so this transaction
                // survives the refusal).
                match c.transaction(|c| row.insert(c)) {
                    Ok(inserted) => (inserted.clone(), Some(inserted)),
                    Err(StoreError::Conflict { .. }) => {
                        (store::open_conversation_for(c, m.service, &m.address)?.ok_or(StoreError::Retry)?, None)
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        let mut message =
            Message::new(conversation.id, m.service, MessageDirection::In, m.kind, MessageStatus::Received, now);
        message.body = m.body.clone();
        message.payload = m.payload.clone();
        message.provider_message_id = m.provider_message_id.clone();
        message.email_subject = m.subject.clone();
        extras.prepare(&mut message);
        let Some(stored) = store::insert_message_once(c, &message)? else {
            // A concurrent replay won the race: undo the conversation this one may have opened.
            return Err(StoreError::Conflict { constraint: "messages_provider_id_key".into() });
        };
        extras.stored(c, &stored)?;
        store::update_conversation(
            c,
            conversation.id,
            &ConversationChangeset { last_customer_message_at: Some(Some(now)), ..Default::default() },
        )?;
        let ingested = Ingested::Stored { conversation: conversation.id, message: stored.id, opened: opened.is_some() };
        Ok((ingested, Some(stored), opened))
    })
    .or_else(|e| match e {
        StoreError::Conflict { constraint } if constraint == "messages_provider_id_key" => {
            Ok((Ingested::Duplicate, None, None))
        }
        other => Err(other),
    })
}

/// Automatic identification (K2): the customer linked to this channel address, else — by phone
/// for WhatsApp, SMS and voice, by the sender for email — the one customer having it. Two
/// customers with the same phone or email identify nobody: the agent links one by hand.
pub fn identify(conn: &mut PgConnection, channel: Channel, address: &str) -> Result<Option<Customer>, StoreError> {
    if let Some(linked) = store::customer_by_identity(conn, channel, address)? {
        return Ok(Some(linked));
    }
    let found = match channel {
        Channel::Whatsapp | Channel::Sms | Channel::Voice => {
            let forms = phone_forms(address);
            if forms.is_empty() {
                return Ok(None);
            }
            store::customers_by_any_phone(conn, &forms)?
        }
        Channel::Email => store::customers_by_email(conn, &address.trim().to_lowercase())?,
        // Telegram, Messenger, Instagram: only once linked; webchat: by the typed email, by its adapter.
        _ => return Ok(None),
    };
    Ok(match <[Customer; 1]>::try_from(found) {
        Ok([one]) => Some(one),
        Err(_) => None,
    })
}

/// The ways one phone number may be written in a customer's record: with and without `+`, and for
/// Brazilian mobiles with and without the ninth digit (WhatsApp's wa_id often lacks it).
pub fn phone_forms(address: &str) -> Vec<String> {
    let digits: String = address.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 7 || digits.len() > 15 {
        return Vec::new();
    }
    let mut numbers = vec![digits.clone()];
    if let Some(rest) = digits.strip_prefix("55") {
        let (area, local) = rest.split_at(rest.len().min(2));
        if local.len() == 8 && local.starts_with(['6', '7', '8', '9']) {
            numbers.push(format!("55{area}9{local}"));
        } else if local.len() == 9 && local.starts_with('9') {
            numbers.push(format!("55{area}{}", &local[1..]));
        }
    }
    numbers.iter().flat_map(|n| [n.clone(), format!("+{n}")]).collect()
}

pub(crate) fn new_conversation(m: &InboundMessage, opening: Opening, now: DateTime<Utc>) -> Conversation {
    Conversation {
        id: ConversationId::new(),
        service_id: m.service,
        channel: m.channel,
        direction: Direction::Inbound,
        customer_id: m.customer_id,
        customer_address: m.address.clone(),
        customer_name: m.customer_name.clone(),
        subject: m.subject.clone(),
        state: if opening.held.is_some() { ConversationState::PreOpening } else { ConversationState::Queued },
        sub_state: None,
        hold_reason: opening.held,
        priority: 0,
        arrived_at: now,
        enqueued_at: opening.held.is_none().then_some(now),
        first_agent_id: None,
        current_agent_id: None,
        concluded_by_id: None,
        classification_id: None,
        service_type_id: None,
        case_id: None,
        due_at: None,
        out_of_hours: opening.out_of_hours,
        last_customer_message_at: Some(now),
        last_agent_message_at: None,
        assigned_at: None,
        ended_at: None,
        last_seq: 0,
        created_at: now,
        updated_at: now,
    }
}

/// Moves a message to a new conversation of the same customer: the one it was stored in ended in
/// the engine before the storing committed (a conclusion racing the customer's message). Returns
/// the new conversation.
pub fn move_to_new_conversation(
    conn: &mut PgConnection,
    m: &InboundMessage,
    message: MessageId,
    opening: Opening,
    now: DateTime<Utc>,
) -> Result<(Conversation, bool), StoreError> {
    conn.transaction(|c| {
        let (row, opened) = match store::open_conversation_for(c, m.service, &m.address)? {
            Some(open) => (open, false),
            None => {
                let mut row = new_conversation(m, opening, now);
                if row.customer_id.is_none()
                    && let Some(known) = identify(c, m.channel, &m.address)?
                {
                    (row.customer_id, row.customer_name) = (Some(known.id), Some(known.name));
                }
                // Another message of this customer may open one at the same moment (a batch of
                // the ingest writer): the partial unique index lets one open it; this joins it.
                match c.transaction(|c| row.insert(c)) {
                    Ok(inserted) => (inserted, true),
                    Err(StoreError::Conflict { .. }) => {
                        (store::open_conversation_for(c, m.service, &m.address)?.ok_or(StoreError::Retry)?, false)
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        store::move_message(c, message, row.id)?;
        Ok((row, opened))
    })
}
