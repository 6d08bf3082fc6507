//! `Engine`: the facade the web crate and tests call. Cheap to clone; every method is a message
//! to the distributor (or a store call off the actor threads) and answers after commit.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use schema::models::Conversation;
use schema::{
    AgentId, Channel, ClassificationId, ConversationId, ConversationState, CustomerId, Direction, PgPool, ServiceId,
    StoreError,
};

use crate::book::{By, Command, LogoffReason, PresenceRequest, Reply};
use crate::clock::Clock;
use crate::distributor::Distributor;
use crate::error::EngineError;
use crate::feed::{EngineEvent, Feed, PublishedMessage, QueueCounts};
use crate::messages::{
    AgentSnapshot, ConnectAgent, CustomerMessageStored, DisconnectAgent, Execute, Flush, GetAgent, GetConversation,
    GetGauges, GetQueues, GetWaiting, PublishMessage, Subscribe, WatchQueue,
};
use crate::model::{AgentProfile, ConversationFacts, Presence, ServiceSettings, TransferTarget};
use crate::timers::{CountTimers, Tick, Timers};

/// A handle on a running engine.
#[derive(Clone)]
pub struct Engine {
    distributor: Addr<Distributor>,
    timers: Addr<Timers>,
    clock: Clock,
    pool: PgPool,
    arbiter: ArbiterHandle,
    /// The ingest writer (group commit of customer messages).
    inbox: crate::inbox::Inbox,
    /// Monitoring counters (S5).
    stats: std::sync::Arc<crate::stats::EngineStats>,
    /// The services' settings, read by every ingest without asking the distributor.
    services: std::sync::Arc<crate::distributor::ServiceMirror>,
}

/// A new conversation to open (ingest, phone calls, tests).
#[derive(Debug, Clone)]
pub struct NewConversation {
    pub service: ServiceId,
    pub channel: Channel,
    pub customer_address: String,
    pub customer_name: Option<String>,
    pub customer_id: Option<CustomerId>,
    pub subject: Option<String>,
    pub priority: i32,
    /// Held in `pre_opening` (approval, out of hours) instead of queued.
    pub held: Option<schema::HoldReason>,
    pub out_of_hours: bool,
    /// Who started it: the customer (inbound) or an agent (outbound, e.g. a call dialled from the desk).
    pub direction: Direction,
}

impl NewConversation {
    /// A queued inbound conversation with defaults.
    pub fn new(service: ServiceId, channel: Channel, customer_address: impl Into<String>) -> Self {
        Self {
            service,
            channel,
            customer_address: customer_address.into(),
            customer_name: None,
            customer_id: None,
            subject: None,
            priority: 0,
            held: None,
            out_of_hours: false,
            direction: Direction::Inbound,
        }
    }
}

impl Engine {
    /// Rebuilds the routing state from the database (R15) and starts the engine's actors on a
    /// thread of their own. Call from within an actix system.
    pub async fn start(pool: PgPool, clock: Clock) -> Result<Engine, EngineError> {
        let now = clock.now();
        let load_pool = pool.clone();
        let restored = tokio::task::spawn_blocking(move || crate::restore::load(&load_pool, now))
            .await
            .map_err(|e| EngineError::Unavailable(e.to_string()))??;
        let arbiter = Arbiter::new().handle();
        let timers_clock = clock.clone();
        let timers = Timers::start_in_arbiter(&arbiter, move |_| Timers::new(timers_clock));
        let stats = std::sync::Arc::new(crate::stats::EngineStats::default());
        let (d_clock, d_pool, d_timers, d_stats) = (clock.clone(), pool.clone(), timers.clone(), stats.clone());
        let services = std::sync::Arc::new(crate::distributor::ServiceMirror::default());
        let d_services = services.clone();
        let distributor = Distributor::start_in_arbiter(&arbiter, move |_| {
            Distributor::with_stats(restored.book, d_clock, d_pool, d_timers, restored.logged_in, d_stats)
                .mirroring(d_services)
        });
        let inbox = crate::inbox::Inbox::spawn(pool.clone());
        let engine = Engine { distributor, timers, clock, pool, arbiter, inbox, stats, services };
        engine.flush().await;
        Ok(engine)
    }

    /// Stops the engine's actors (what is committed stays committed).
    pub fn stop(&self) {
        self.arbiter.stop();
    }

    /// The engine's clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The engine's monitoring counters (S5).
    pub fn stats(&self) -> &crate::stats::EngineStats {
        &self.stats
    }

    /// The engine's monitoring gauges (S5), counted in memory.
    pub async fn gauges(&self) -> crate::stats::Gauges {
        self.distributor.send(GetGauges).await.unwrap_or_default()
    }

    /// Runs a command; answers after its events are committed.
    pub async fn execute(&self, command: Command) -> Result<Reply, EngineError> {
        self.distributor.send(Execute(command)).await.map_err(|_| EngineError::Stopped)?
    }

    /// Waits until everything submitted so far is committed.
    pub async fn flush(&self) {
        let _ = self.distributor.send(Flush).await;
    }

    /// Moves a manual clock forward, fires what became due and waits for its effects (tests).
    pub async fn advance_clock(&self, by: Duration) {
        self.clock.advance(by);
        let _ = self.timers.send(Tick).await;
        self.flush().await;
    }

    /// How many timers are armed.
    pub async fn armed_timers(&self) -> usize {
        self.timers.send(CountTimers).await.unwrap_or(0)
    }

    /// Opens a conversation: stores its row, then queues it (or holds it) in the engine.
    pub async fn open_conversation(&self, mut new: NewConversation) -> Result<ConversationId, EngineError> {
        let now = self.clock.now();
        // R14: flagged when it arrives out of hours; held until the next opening if the service says so.
        let settings = self.services.get(new.service).ok_or(EngineError::ServiceNotFound)?;
        if settings.hours.as_ref().is_some_and(|h| !h.is_open(now)) {
            new.out_of_hours = true;
            if settings.out_of_hours_hold && new.held.is_none() {
                new.held = Some(schema::HoldReason::OutOfHours);
            }
        }
        let row = conversation_row(&new, now);
        let id = row.id;
        self.store_row(row).await?;
        let mut facts = ConversationFacts::arriving(id, new.service, new.channel, new.priority, now);
        if new.held.is_some() {
            facts.state = ConversationState::PreOpening;
            facts.hold = new.held;
        }
        self.execute(Command::Arrive { conversation: facts }).await?;
        Ok(id)
    }

    /// How a conversation opened now in `service` starts: held for a supervisor's approval (C6),
    /// or flagged out of hours and maybe held until the next opening (R14).
    async fn opening(&self, service: ServiceId, now: DateTime<Utc>) -> Result<crate::ingest::Opening, EngineError> {
        let settings = self.services.get(service).ok_or(EngineError::ServiceNotFound)?;
        let out_of_hours = settings.hours.as_ref().is_some_and(|h| !h.is_open(now));
        let held = if settings.email_approval {
            Some(schema::HoldReason::Approval)
        } else {
            (out_of_hours && settings.out_of_hours_hold).then_some(schema::HoldReason::OutOfHours)
        };
        Ok(crate::ingest::Opening { out_of_hours, held })
    }

    /// A customer's message from a channel (C3, C4): stored idempotently, then routed — a new
    /// conversation queued (or held), a message in an open one resets its inactivity (R10). When
    /// it returns, the message is committed; a replay returns `Duplicate` and stores nothing.
    /// `how` says what the channel stores beside the message and whether the desks are told.
    pub async fn ingest(
        &self,
        inbound: crate::ingest::InboundMessage,
        how: crate::ingest::Ingest,
    ) -> Result<(crate::ingest::Ingested, Option<schema::models::Message>), EngineError> {
        use crate::ingest::{Ingested, move_to_new_conversation, store_inbound};
        let crate::ingest::Ingest { extras, publish: publishing } = how;
        // Extras that store more may store files: the desks get the message with them, read
        // after the commit; without extras the row is the whole message.
        let with_files = extras.stores_more();
        let inbound = inbound.without_nul();
        let service = inbound.service;
        let publish = |message: &Option<schema::models::Message>| {
            let published = message.as_ref().filter(|_| publishing).cloned();
            async move {
                if let Some(m) = published {
                    let conversation = m.conversation_id;
                    let message = if with_files { self.with_attachments(m).await } else { PublishedMessage::from(m) };
                    self.publish_message(conversation, service, message).await;
                }
            }
        };
        let now = self.clock.now();
        let opening = self.opening(inbound.service, now).await?;
        let ((ingested, message, opened), joined_new) = if inbound.channel == Channel::Voice {
            // Calls are not grouped: two calls from one number at once are two conversations (R13).
            let (pool, m) = (self.pool.clone(), inbound.clone());
            let stored = tokio::task::spawn_blocking(move || {
                let mut conn = pool.get()?;
                store_inbound(&mut conn, &m, opening, now, extras.as_ref())
            })
            .await
            .map_err(|e| EngineError::Unavailable(e.to_string()))??;
            (stored, false)
        } else {
            let outcome =
                self.inbox.store(inbound.clone(), opening, now, extras).await.ok_or(EngineError::Stopped)??;
            (outcome.stored, outcome.joined_new)
        };
        let Ingested::Stored { conversation, message: message_id, .. } = ingested.clone() else {
            return Ok((ingested, None));
        };
        self.stats.message_ingested(inbound.channel);
        if joined_new {
            // Another message of the same commit opened this conversation: its caller tells the
            // engine it arrived (the engine may not know it yet, so no CustomerMessage here).
            publish(&message).await;
            return Ok((ingested, message));
        }
        let arrive = |row: &Conversation| {
            let mut facts =
                ConversationFacts::arriving(row.id, row.service_id, row.channel, row.priority, row.arrived_at);
            if row.state == ConversationState::PreOpening {
                facts.state = ConversationState::PreOpening;
                facts.hold = row.hold_reason;
            }
            facts
        };
        if let Some(row) = opened {
            self.execute(Command::Arrive { conversation: arrive(&row) }).await?;
            publish(&message).await;
            return Ok((ingested, message));
        }
        let routed = match &message {
            Some(m) if publishing && !with_files => {
                let message = Arc::new(PublishedMessage::from(m.clone()));
                let fused = CustomerMessageStored { conversation, at: now, service, message };
                self.distributor.send(fused).await.map_err(|_| EngineError::Stopped)?
            }
            _ => {
                let routed = self.execute(Command::CustomerMessage { conversation, at: now }).await;
                if routed.is_ok() {
                    publish(&message).await;
                }
                routed
            }
        };
        match routed {
            Err(EngineError::ConversationNotFound) => {
                // The conversation ended in the engine while this message was being stored: the
                // message starts a new one, as the customer's next message would (R10). The end
                // may not be committed yet: wait for it, or the store would still see the
                // conversation open and put the message back into it (the load harness saw 404s).
                self.flush().await;
                let (pool, m) = (self.pool.clone(), inbound);
                let (row, opened) = tokio::task::spawn_blocking(move || {
                    let mut conn = pool.get()?;
                    move_to_new_conversation(&mut conn, &m, message_id, opening, now)
                })
                .await
                .map_err(|e| EngineError::Unavailable(e.to_string()))??;
                if opened {
                    self.execute(Command::Arrive { conversation: arrive(&row) }).await?;
                } else {
                    match self.execute(Command::CustomerMessage { conversation: row.id, at: now }).await {
                        // Open in the database after the flush, unknown to the engine: another
                        // caller opened it and its arrival is on its way, which covers this message.
                        Ok(_) | Err(EngineError::ConversationNotFound) => {}
                        Err(e) => return Err(e),
                    }
                }
                let message = message.map(|mut m| {
                    m.conversation_id = row.id;
                    m
                });
                publish(&message).await;
                Ok((Ingested::Stored { conversation: row.id, message: message_id, opened }, message))
            }
            Err(e) => Err(e),
            Ok(_) => Ok((ingested, message)),
        }
    }

    /// A stored message with the attachments stored beside it; without them when the database
    /// does not answer (the desk reads them with the conversation).
    async fn with_attachments(&self, row: schema::models::Message) -> PublishedMessage {
        let (pool, id) = (self.pool.clone(), row.id);
        let read = tokio::task::spawn_blocking(move || schema::store::attachments_of(&mut *pool.get()?, id)).await;
        match read {
            Ok(Ok(attachments)) => PublishedMessage::new(row, attachments),
            _ => PublishedMessage::from(row),
        }
    }

    /// A call the phone system delivered to an agent (R13): opens a voice conversation assigned
    /// to that agent.
    pub async fn voice_call(&self, new: NewConversation, agent: AgentId) -> Result<ConversationId, EngineError> {
        let now = self.clock.now();
        let row = conversation_row(&NewConversation { channel: Channel::Voice, ..new.clone() }, now);
        let id = row.id;
        self.store_row(row).await?;
        let facts = ConversationFacts::arriving(id, new.service, Channel::Voice, new.priority, now);
        if let Err(e) = self.execute(Command::VoiceCall { conversation: facts, agent }).await {
            // The call was refused: its row, which nothing has seen, goes away (refusals change nothing).
            let pool = self.pool.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let mut conn = pool.get()?;
                schema::store::delete_unseen_conversation(&mut conn, id)
            })
            .await;
            return Err(e);
        }
        Ok(id)
    }

    /// A conversation `agent` starts with a customer (C7, D6): stored as outbound and theirs at
    /// once when they may take it (logged in, a member, a free slot on its channel), else queued
    /// for anyone. Returns it and whether it is the agent's.
    pub async fn open_outbound(
        &self,
        new: NewConversation,
        agent: AgentId,
    ) -> Result<(ConversationId, bool), EngineError> {
        if self.services.get(new.service).is_none() {
            return Err(EngineError::ServiceNotFound);
        }
        let now = self.clock.now();
        let mut row =
            conversation_row(&NewConversation { direction: Direction::Outbound, held: None, ..new.clone() }, now);
        // The customer has not written: the channel's reply window is closed until they do.
        row.last_customer_message_at = None;
        let id = row.id;
        self.store_row(row).await?;
        let facts = ConversationFacts::arriving(id, new.service, new.channel, new.priority, now);
        self.execute(Command::StartOutbound { conversation: facts, agent }).await?;
        let taken = self.conversation(id).await.is_some_and(|c| c.owner == Some(agent));
        Ok((id, taken))
    }

    async fn store_row(&self, row: Conversation) -> Result<(), EngineError> {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            let mut conn = pool.get()?;
            row.insert(&mut conn)?;
            Ok(())
        })
        .await
        .map_err(|e| EngineError::Unavailable(e.to_string()))??;
        Ok(())
    }

    /// Adds or updates a service.
    pub async fn upsert_service(&self, settings: ServiceSettings) -> Result<(), EngineError> {
        self.execute(Command::UpsertService(settings)).await.map(|_| ())
    }

    /// Adds or updates an agent's teams and capacities.
    pub async fn upsert_agent(&self, profile: AgentProfile) -> Result<(), EngineError> {
        self.execute(Command::UpsertAgent(profile)).await.map(|_| ())
    }

    /// Sets an agent's presence (R8, R9); returns the presence it ended in.
    pub async fn set_presence(&self, agent: AgentId, presence: PresenceRequest) -> Result<Presence, EngineError> {
        match self.execute(Command::SetPresence { agent, presence }).await? {
            Reply::Presence(p) => Ok(p),
            _ => Err(EngineError::InvalidState("unexpected reply")),
        }
    }

    /// Logs an agent off at once (R9).
    pub async fn logoff(&self, agent: AgentId) -> Result<(), EngineError> {
        self.execute(Command::Logoff { agent, reason: LogoffReason::LoggedOff }).await.map(|_| ())
    }

    /// The next conversation of a channel for this agent (R5); `None` when nothing waits.
    pub async fn pull_next(&self, agent: AgentId, channel: Channel) -> Result<Option<ConversationId>, EngineError> {
        pulled(self.execute(Command::PullNext { agent, channel }).await?)
    }

    /// One chosen waiting conversation (R5).
    pub async fn pull_chosen(&self, agent: AgentId, conversation: ConversationId) -> Result<(), EngineError> {
        self.execute(Command::PullChosen { agent, conversation }).await.map(|_| ())
    }

    /// Accepts an offer (R7).
    pub async fn accept(&self, agent: AgentId, conversation: ConversationId) -> Result<(), EngineError> {
        self.execute(Command::Accept { agent, conversation }).await.map(|_| ())
    }

    /// Declines an offer (R7).
    pub async fn decline(&self, agent: AgentId, conversation: ConversationId) -> Result<(), EngineError> {
        self.execute(Command::Decline { agent, conversation }).await.map(|_| ())
    }

    /// Transfers a conversation (R11).
    pub async fn transfer(
        &self,
        by: By,
        conversation: ConversationId,
        target: TransferTarget,
    ) -> Result<(), EngineError> {
        self.execute(Command::Transfer { by, conversation, target }).await.map(|_| ())
    }

    /// Puts a conversation back in its queue, keeping its age (R12).
    pub async fn return_to_queue(&self, by: By, conversation: ConversationId) -> Result<(), EngineError> {
        self.execute(Command::Return { by, conversation }).await.map(|_| ())
    }

    /// Concludes a conversation (R12).
    pub async fn conclude(
        &self,
        by: By,
        conversation: ConversationId,
        classification: Option<ClassificationId>,
    ) -> Result<(), EngineError> {
        self.execute(Command::Conclude { by, conversation, classification }).await.map(|_| ())
    }

    /// Cancels a conversation where the service allows it (R12).
    pub async fn cancel(&self, by: By, conversation: ConversationId) -> Result<(), EngineError> {
        self.execute(Command::Cancel { by, conversation }).await.map(|_| ())
    }

    /// Classifies a conversation (R12).
    pub async fn classify(
        &self,
        by: By,
        conversation: ConversationId,
        classification: Option<ClassificationId>,
    ) -> Result<(), EngineError> {
        self.execute(Command::Classify { by, conversation, classification }).await.map(|_| ())
    }

    /// Sets a conversation's due date (R12).
    pub async fn set_due_date(
        &self,
        by: By,
        conversation: ConversationId,
        due_at: Option<DateTime<Utc>>,
    ) -> Result<(), EngineError> {
        self.execute(Command::SetDueDate { by, conversation, due_at }).await.map(|_| ())
    }

    /// The customer wrote in this conversation (R10).
    pub async fn customer_message(&self, conversation: ConversationId) -> Result<(), EngineError> {
        let at = self.clock.now();
        self.execute(Command::CustomerMessage { conversation, at }).await.map(|_| ())
    }

    /// Approves a held conversation (C6).
    pub async fn approve(&self, by: By, conversation: ConversationId) -> Result<(), EngineError> {
        self.execute(Command::Approve { conversation, by }).await.map(|_| ())
    }

    /// Rejects a held conversation (C6).
    pub async fn reject(&self, by: By, conversation: ConversationId) -> Result<(), EngineError> {
        self.execute(Command::Reject { conversation, by }).await.map(|_| ())
    }

    /// The customer went away before being served (a caller hung up in the queue): the waiting
    /// conversation ends as `abandoned` with this reason.
    pub async fn customer_left(&self, conversation: ConversationId, reason: &str) -> Result<(), EngineError> {
        self.execute(Command::CustomerLeft { conversation, reason: reason.to_owned() }).await.map(|_| ())
    }

    /// Tells the conversation's desks (its agent, supervisors) about a stored message: a row
    /// (`Message`), or a row with its attachments (`PublishedMessage::new`).
    pub async fn publish_message(
        &self,
        conversation: ConversationId,
        service: ServiceId,
        message: impl Into<PublishedMessage>,
    ) {
        let message = Arc::new(message.into());
        let _ = self.distributor.send(PublishMessage { conversation, service, message }).await;
    }

    /// A desk connected: its events go to `desk` from now on.
    pub async fn connect(&self, agent: AgentId, desk: Recipient<EngineEvent>) -> Result<u64, EngineError> {
        self.distributor.send(ConnectAgent { agent, desk }).await.map_err(|_| EngineError::Stopped)?
    }

    /// A desk disconnected (the grace period starts with the last one, R9).
    pub async fn disconnect(&self, agent: AgentId, connection: u64) {
        let _ = self.distributor.send(DisconnectAgent { agent, connection }).await;
    }

    /// The committed events of `feed` go to `subscriber` from now on.
    pub async fn subscribe(&self, subscriber: Recipient<EngineEvent>, feed: Feed) {
        let _ = self.distributor.send(Subscribe(subscriber, feed)).await;
    }

    /// A service's queue counts go to `watcher` when they change.
    pub async fn watch_queue(&self, service: ServiceId, watcher: Recipient<EngineEvent>) {
        let _ = self.distributor.send(WatchQueue { service, watcher }).await;
    }

    /// An open conversation as the engine holds it.
    pub async fn conversation(&self, id: ConversationId) -> Option<ConversationFacts> {
        self.distributor.send(GetConversation(id)).await.ok().flatten()
    }

    /// An agent as the engine holds it.
    pub async fn agent(&self, id: AgentId) -> Option<AgentSnapshot> {
        self.distributor.send(GetAgent(id)).await.ok().flatten()
    }

    /// Every queue's counts.
    pub async fn queues(&self) -> Vec<QueueCounts> {
        self.distributor.send(GetQueues).await.unwrap_or_default()
    }

    /// A service's waiting conversations in queue order.
    pub async fn waiting(&self, service: ServiceId) -> Vec<ConversationFacts> {
        self.distributor.send(GetWaiting(service)).await.unwrap_or_default()
    }
}

fn pulled(reply: Reply) -> Result<Option<ConversationId>, EngineError> {
    match reply {
        Reply::Pulled(c) => Ok(c),
        _ => Err(EngineError::InvalidState("unexpected reply")),
    }
}

fn conversation_row(new: &NewConversation, now: DateTime<Utc>) -> Conversation {
    Conversation {
        id: ConversationId::new(),
        service_id: new.service,
        channel: new.channel,
        direction: new.direction,
        customer_id: new.customer_id,
        customer_address: new.customer_address.clone(),
        customer_name: new.customer_name.clone(),
        subject: new.subject.clone(),
        state: if new.held.is_some() { ConversationState::PreOpening } else { ConversationState::Queued },
        sub_state: None,
        hold_reason: new.held,
        priority: new.priority,
        arrived_at: now,
        enqueued_at: new.held.is_none().then_some(now),
        first_agent_id: None,
        current_agent_id: None,
        concluded_by_id: None,
        classification_id: None,
        service_type_id: None,
        case_id: None,
        due_at: None,
        out_of_hours: new.out_of_hours,
        last_customer_message_at: Some(now),
        last_agent_message_at: None,
        assigned_at: None,
        ended_at: None,
        last_seq: 0,
        created_at: now,
        updated_at: now,
    }
}
