//! The distributor: the one actor that owns the routing book. Every command that can change who
//! has what passes through its mailbox, one at a time, so assignment needs no locks and no race
//! can break R3/R4. It applies the command to the book (microseconds), hands the resulting events
//! to the journal, and only when the journal reports them committed does it answer the caller and
//! tell desks, queues and subscribers (the persistence rule). Meanwhile it keeps serving commands:
//! the book is always the newest state, the database follows it in order.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use schema::{AgentId, ConversationId, PgPool, ServiceId, StoreError};
use tokio::sync::oneshot;
use tracing::{error, info};

use crate::agent::{AgentActor, Connect, Deliver, Disconnect, StartGrace};
use crate::book::{BookEvent, Command, Outcome, Reply, RoutingBook};
use crate::clock::Clock;
use crate::error::EngineError;
use crate::feed::{Alert, EngineEvent, Feed, QueueCounts};
use crate::journal::{Committed, Journal, Unit};
// Callers name the snapshot beside the actor that answers with it.
pub use crate::messages::AgentSnapshot;
use crate::messages::{
    ConnectAgent, CustomerMessageStored, DisconnectAgent, Execute, Flush, GetAgent, GetConversation, GetGauges,
    GetQueues, GetWaiting, PublishMessage, RaiseAlert, Subscribe, WatchQueue,
};
use crate::model::{ConversationFacts, Presence};
use crate::queue::{QueueActor, UpdateCounts, Watch};
use crate::timers::{Route, SetTimer, TimerKey, Timers, deadlines};

struct Pending {
    reply: Option<oneshot::Sender<Result<Reply, EngineError>>>,
    value: Reply,
    events: Vec<BookEvent>,
}

/// See the module documentation.
pub struct Distributor {
    book: RoutingBook,
    clock: Clock,
    pool: PgPool,
    journal: Option<Journal>,
    timers: Addr<Timers>,
    next_token: u64,
    pending: BTreeMap<u64, Pending>,
    flushes: Vec<(u64, oneshot::Sender<()>)>,
    /// The open conversations whose timers the wheel has been told of (a new one has none armed).
    timed: HashSet<ConversationId>,
    agents: HashMap<AgentId, Addr<AgentActor>>,
    connections: HashMap<AgentId, usize>,
    queues: HashMap<ServiceId, Addr<QueueActor>>,
    subscribers: Vec<(Recipient<EngineEvent>, Feed)>,
    /// Agents logged in when the engine started (R15): their grace starts now.
    restored_logged_in: Vec<AgentId>,
    /// Set when the database refused a write for good: commands wait until the book is rebuilt.
    resyncing: bool,
    /// The agent who held each recently ended conversation: a customer message committed just
    /// before the end but published just after still reaches that agent's screen.
    recently_closed: RecentlyClosed,
    /// Counters of committed events (S5), shared with the [`crate::Engine`] handle.
    stats: Arc<crate::stats::EngineStats>,
    services: Arc<ServiceMirror>,
}

/// A bounded memory of who held the last conversations that ended (oldest forgotten first).
#[derive(Default)]
struct RecentlyClosed {
    owners: HashMap<ConversationId, AgentId>,
    order: std::collections::VecDeque<ConversationId>,
}

impl RecentlyClosed {
    /// How many ended conversations are remembered: the race it covers lasts milliseconds.
    const CAPACITY: usize = 4096;

    fn remember(&mut self, conversation: ConversationId, agent: AgentId) {
        if self.owners.insert(conversation, agent).is_none() {
            self.order.push_back(conversation);
        }
        while self.order.len() > Self::CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.owners.remove(&old);
            }
        }
    }

    fn owner(&self, conversation: ConversationId) -> Option<AgentId> {
        self.owners.get(&conversation).copied()
    }
}

impl Distributor {
    /// A distributor over a restored book.
    pub fn new(book: RoutingBook, clock: Clock, pool: PgPool, timers: Addr<Timers>, logged_in: Vec<AgentId>) -> Self {
        Self::with_stats(book, clock, pool, timers, logged_in, Arc::default())
    }

    /// [`Distributor::new`] counting committed events into `stats`.
    pub fn with_stats(
        book: RoutingBook,
        clock: Clock,
        pool: PgPool,
        timers: Addr<Timers>,
        logged_in: Vec<AgentId>,
        stats: Arc<crate::stats::EngineStats>,
    ) -> Self {
        Self {
            book,
            clock,
            pool,
            journal: None,
            timers,
            next_token: 1,
            pending: BTreeMap::new(),
            flushes: Vec::new(),
            timed: HashSet::new(),
            agents: HashMap::new(),
            connections: HashMap::new(),
            queues: HashMap::new(),
            subscribers: Vec::new(),
            restored_logged_in: logged_in,
            resyncing: false,
            recently_closed: RecentlyClosed::default(),
            stats,
            services: Arc::default(),
        }
    }

    /// Keeps `services` equal to the book's services from now on.
    pub fn mirroring(mut self, services: Arc<ServiceMirror>) -> Self {
        services.fill(&self.book);
        self.services = services;
        self
    }

    fn grace_of(&self, agent: AgentId) -> Duration {
        self.book
            .agent(agent)
            .map(|a| a.profile.services.iter().filter_map(|s| self.book.service(*s)).map(|s| s.disconnect_grace).max())
            .and_then(|g| g)
            .unwrap_or(Duration::from_secs(60))
    }

    fn agent_actor(&mut self, agent: AgentId, ctx: &mut Context<Self>) -> Addr<AgentActor> {
        if let Some(addr) = self.agents.get(&agent) {
            return addr.clone();
        }
        let actor = AgentActor::new(
            agent,
            ctx.address().recipient(),
            self.timers.clone(),
            self.clock.clone(),
            self.grace_of(agent),
        );
        let addr = actor.start();
        self.agents.insert(agent, addr.clone());
        addr
    }

    fn queue_counts(&self, service: ServiceId) -> Option<QueueCounts> {
        let settings = self.book.service(service)?;
        let stats = self.book.queue_stats(service)?;
        let now = self.clock.now();
        Some(QueueCounts {
            service_id: service,
            channel: settings.channel,
            waiting: stats.waiting,
            inactive: stats.inactive,
            oldest_wait_s: stats.oldest_since.map_or(0, |o| (now - o).num_seconds().max(0)),
        })
    }

    fn queue_actor(&mut self, service: ServiceId) -> Option<Addr<QueueActor>> {
        if let Some(addr) = self.queues.get(&service) {
            return Some(addr.clone());
        }
        let counts = self.queue_counts(service)?;
        let addr = QueueActor::new(counts).start();
        self.queues.insert(service, addr.clone());
        Some(addr)
    }

    /// Brings actors and timers in step with the book after a command (before the commit: the
    /// timers follow the newest state, and the book re-checks every deadline when one fires).
    fn sync_conversation(&mut self, id: ConversationId, _: &mut Context<Self>) {
        let Some(facts) = self.book.conversation(id) else {
            if self.timed.remove(&id) {
                for key in [
                    TimerKey::Offer(id),
                    TimerKey::Inactivity(id),
                    TimerKey::Abandon(id),
                    TimerKey::AgentAlert(id),
                    TimerKey::CustomerReminder(id),
                    TimerKey::Opening(id),
                ] {
                    self.timers.do_send(SetTimer { key, at: None, target: None });
                }
            }
            return;
        };
        let Some(settings) = self.book.service(facts.service) else { return };
        // A new conversation has no timer armed yet: only the armed ones are sent (a restore of
        // 100,000 conversations sends 100,000 messages, not 600,000).
        let new = self.timed.insert(id);
        for (key, at) in deadlines(facts, settings) {
            if at.is_some() || !new {
                self.timers.do_send(SetTimer { key, at, target: None });
            }
        }
    }

    fn after_apply(
        &mut self,
        command_conversation: Option<ConversationId>,
        outcome: &Outcome,
        ctx: &mut Context<Self>,
    ) {
        let mut touched: BTreeSet<ConversationId> = command_conversation.into_iter().collect();
        for e in &outcome.events {
            if let BookEvent::Conversation(c) = e {
                touched.insert(c.facts.id);
                if let Some(crate::model::AssignmentChange::Closed { agent, .. }) = c.assignment
                    && c.facts.ended_at.is_some()
                {
                    self.recently_closed.remember(c.facts.id, agent);
                }
            }
        }
        for id in touched {
            self.sync_conversation(id, ctx);
        }
    }

    fn submit(&mut self, outcome: Outcome, reply: Option<oneshot::Sender<Result<Reply, EngineError>>>) {
        if outcome.events.is_empty() {
            if let Some(r) = reply {
                let _ = r.send(Ok(outcome.reply));
            }
            return;
        }
        let token = self.next_token;
        self.next_token += 1;
        let submitted = self.journal.as_ref().is_some_and(|j| j.submit(Unit { token, events: outcome.events.clone() }));
        if !submitted {
            if let Some(r) = reply {
                let _ = r.send(Err(EngineError::Stopped));
            }
            return;
        }
        self.pending.insert(token, Pending { reply, value: outcome.reply, events: outcome.events });
    }

    fn publish(&mut self, events: Vec<BookEvent>, seqs: Vec<i64>) {
        let mut services: BTreeSet<ServiceId> = BTreeSet::new();
        for (event, seq) in events.into_iter().zip(seqs) {
            match event {
                BookEvent::Conversation(e) => {
                    services.insert(e.facts.service);
                    self.stats.conversation_event(&e);
                    let mut involved: Vec<AgentId> = Vec::with_capacity(3);
                    involved.extend(e.facts.owner);
                    involved.extend(e.agent);
                    involved.extend(e.actor_agent);
                    involved.extend(e.facts.offer.map(|(a, _)| a));
                    if let Some(crate::model::AssignmentChange::Closed { agent, .. }) = &e.assignment {
                        involved.push(*agent);
                    }
                    if let Some(crate::model::AssignmentChange::Moved { from, .. }) = &e.assignment {
                        involved.push(*from);
                    }
                    involved.sort();
                    involved.dedup();
                    let event = EngineEvent::Conversation { seq, event: Arc::new(*e) };
                    for agent in involved {
                        if let Some(addr) = self.agents.get(&agent) {
                            addr.do_send(Deliver(event.clone()));
                        }
                    }
                    self.broadcast(&event);
                }
                BookEvent::Presence(p) => {
                    let event = EngineEvent::Presence { agent: p.agent, presence: p.presence, at: p.at };
                    if let Some(addr) = self.agents.get(&p.agent) {
                        addr.do_send(Deliver(event.clone()));
                    }
                    self.broadcast(&event);
                    if p.presence == Presence::Offline && self.connections.get(&p.agent).copied().unwrap_or(0) == 0 {
                        // Nobody left to tell: the agent's actor ends with its session.
                        self.agents.remove(&p.agent);
                    }
                }
            }
        }
        for service in services {
            if let (Some(counts), Some(addr)) = (self.queue_counts(service), self.queue_actor(service)) {
                addr.do_send(UpdateCounts(counts.clone()));
                self.broadcast(&EngineEvent::Queue(counts));
            }
        }
    }

    fn broadcast(&mut self, event: &EngineEvent) {
        self.subscribers.retain(|(s, _)| s.connected());
        for (s, feed) in &self.subscribers {
            if feed.wants(event) {
                s.do_send(event.clone());
            }
        }
    }

    fn resolve_flushes(&mut self) {
        let done_below = self.pending.keys().next().copied().unwrap_or(self.next_token);
        let (ready, waiting): (Vec<_>, Vec<_>) = self.flushes.drain(..).partition(|(t, _)| *t <= done_below);
        self.flushes = waiting;
        for (_, tx) in ready {
            let _ = tx.send(());
        }
    }

    /// Rebuilds the book from the database after a refused write (the same path as a restart).
    fn resync(&mut self, ctx: &mut Context<Self>) {
        let pool = self.pool.clone();
        let now = self.clock.now();
        let load = async move {
            tokio::task::spawn_blocking(move || crate::restore::load(&pool, now))
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))?
        };
        ctx.wait(actix::fut::wrap_future::<_, Self>(load).map(|result, this, ctx| match result {
            Ok(restored) => {
                info!("routing book rebuilt from the database");
                this.book = restored.book;
                this.services.fill(&this.book);
                this.resyncing = false;
                let ids: Vec<_> = this.book.conversations().map(|c| c.id).collect();
                for id in ids {
                    this.sync_conversation(id, ctx);
                }
                let now = this.clock.now();
                let events = this.book.distribute_all(now);
                this.submit(Outcome { reply: Reply::Done, events }, None);
            }
            Err(e) => {
                error!(error = %e, "rebuilding the routing book failed; retrying");
                ctx.run_later(Duration::from_secs(1), |this, ctx| this.resync(ctx));
            }
        }));
    }
}

/// The services' settings as the book has them, readable without a trip to the distributor (a
/// customer's message reads its service's hours and approval rule on every ingest). The
/// distributor writes it when it changes a service, before it answers.
#[derive(Default)]
pub struct ServiceMirror(std::sync::RwLock<HashMap<ServiceId, Arc<crate::model::ServiceSettings>>>);

impl ServiceMirror {
    /// A service's settings.
    pub fn get(&self, id: ServiceId) -> Option<Arc<crate::model::ServiceSettings>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).get(&id).cloned()
    }

    fn fill(&self, book: &RoutingBook) {
        let all = book.services().map(|s| (s.id, Arc::new(s.clone()))).collect();
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = all;
    }

    fn set(&self, id: ServiceId, settings: Option<&crate::model::ServiceSettings>) {
        let mut all = self.0.write().unwrap_or_else(|e| e.into_inner());
        match settings {
            Some(s) => all.insert(id, Arc::new(s.clone())),
            None => all.remove(&id),
        };
    }
}

impl Actor for Distributor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Commands arrive faster than one at a time under load; a larger mailbox avoids
        // back-pressuring senders on bursts (senders still wait for their answer).
        ctx.set_mailbox_capacity(4096);
        // The conversations' timers fire here, as the commands (or alerts) they stand for.
        self.timers.do_send(Route { execute: ctx.address().recipient(), alert: ctx.address().recipient() });
        self.journal = Some(Journal::spawn(self.pool.clone(), ctx.address().recipient()));
        let ids: Vec<_> = self.book.conversations().map(|c| c.id).collect();
        for id in ids {
            self.sync_conversation(id, ctx);
        }
        for agent in std::mem::take(&mut self.restored_logged_in) {
            // Nobody is connected yet: nothing new goes to a desk until it reconnects.
            self.book.restored_away(agent);
            let addr = self.agent_actor(agent, ctx);
            addr.do_send(StartGrace);
        }
        let services: Vec<_> = self.book.services().map(|s| s.id).collect();
        for s in services {
            self.queue_actor(s);
        }
        let now = self.clock.now();
        let events = self.book.distribute_all(now);
        let ids: Vec<ConversationId> = events
            .iter()
            .filter_map(|e| match e {
                BookEvent::Conversation(c) => Some(c.facts.id),
                _ => None,
            })
            .collect();
        for id in ids {
            self.sync_conversation(id, ctx);
        }
        self.submit(Outcome { reply: Reply::Done, events }, None);
    }
}

impl Handler<Execute> for Distributor {
    type Result = ResponseFuture<Result<Reply, EngineError>>;

    fn handle(&mut self, Execute(command): Execute, ctx: &mut Context<Self>) -> Self::Result {
        if self.resyncing {
            return Box::pin(async { Err(EngineError::Unavailable("the engine is rebuilding its state".into())) });
        }
        let conversation = command_conversation(&command);
        let upserted_service = match &command {
            Command::UpsertService(s) => Some(s.id),
            _ => None,
        };
        let now = self.clock.now();
        let outcome = match self.book.apply(now, command) {
            Ok(outcome) => outcome,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        if let Some(s) = upserted_service {
            self.services.set(s, self.book.service(s));
            self.queue_actor(s);
            // New timeouts apply to the service's open conversations at once.
            let ids: Vec<_> = self.book.conversations().filter(|c| c.service == s).map(|c| c.id).collect();
            for id in ids {
                self.sync_conversation(id, ctx);
            }
        }
        self.after_apply(conversation, &outcome, ctx);
        let (tx, rx) = oneshot::channel();
        self.submit(outcome, Some(tx));
        Box::pin(async move { rx.await.unwrap_or(Err(EngineError::Stopped)) })
    }
}

impl Handler<Committed> for Distributor {
    type Result = ();

    fn handle(&mut self, msg: Committed, ctx: &mut Context<Self>) {
        for (token, result) in msg.results {
            let Some(pending) = self.pending.remove(&token) else { continue };
            match result {
                Ok(seqs) => {
                    self.publish(pending.events, seqs);
                    if let Some(r) = pending.reply {
                        let _ = r.send(Ok(pending.value));
                    }
                }
                Err(e) => {
                    error!(error = %e, "the database refused routing events; rebuilding from the database");
                    self.resyncing = true;
                    if let Some(r) = pending.reply {
                        let _ = r.send(Err(EngineError::Storage(e)));
                    }
                }
            }
        }
        self.resolve_flushes();
        if self.resyncing && self.pending.is_empty() {
            self.resync(ctx);
        }
    }
}

impl Handler<ConnectAgent> for Distributor {
    type Result = ResponseFuture<Result<u64, EngineError>>;

    fn handle(&mut self, msg: ConnectAgent, ctx: &mut Context<Self>) -> Self::Result {
        if self.book.agent(msg.agent).is_none() {
            return Box::pin(async { Err(EngineError::AgentNotFound) });
        }
        *self.connections.entry(msg.agent).or_default() += 1;
        let addr = self.agent_actor(msg.agent, ctx);
        Box::pin(async move { addr.send(Connect(msg.desk)).await.map_err(|_| EngineError::Stopped) })
    }
}

impl Handler<DisconnectAgent> for Distributor {
    type Result = ();

    fn handle(&mut self, msg: DisconnectAgent, _: &mut Context<Self>) {
        if let Some(n) = self.connections.get_mut(&msg.agent) {
            *n = n.saturating_sub(1);
        }
        if let Some(addr) = self.agents.get(&msg.agent) {
            addr.do_send(Disconnect(msg.connection));
        }
    }
}

impl Handler<Subscribe> for Distributor {
    type Result = ();

    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) {
        self.subscribers.push((msg.0, msg.1));
    }
}

impl Handler<WatchQueue> for Distributor {
    type Result = ();

    fn handle(&mut self, msg: WatchQueue, _: &mut Context<Self>) {
        if let Some(addr) = self.queue_actor(msg.service) {
            addr.do_send(Watch(msg.watcher));
        }
    }
}

impl Handler<Flush> for Distributor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Flush, _: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.flushes.push((self.next_token, tx));
        self.resolve_flushes();
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<RaiseAlert> for Distributor {
    type Result = ();

    fn handle(&mut self, msg: RaiseAlert, _: &mut Context<Self>) {
        let Some(c) = self.book.conversation(msg.conversation) else { return };
        let alert = Alert { conversation_id: c.id, agent_id: c.owner, kind: msg.kind, at: self.clock.now() };
        let event = EngineEvent::Alert(alert);
        if let Some(addr) = c.owner.and_then(|a| self.agents.get(&a)) {
            addr.do_send(Deliver(event.clone()));
        }
        self.broadcast(&event);
    }
}

impl Handler<PublishMessage> for Distributor {
    type Result = ();

    fn handle(&mut self, msg: PublishMessage, _: &mut Context<Self>) {
        let owner = match self.book.conversation(msg.conversation) {
            Some(c) => c.owner,
            // Ended between the message's commit and now: its agent still sees it.
            None => self.recently_closed.owner(msg.conversation),
        };
        let event = EngineEvent::Message {
            conversation_id: msg.conversation,
            service_id: msg.service,
            owner,
            message: msg.message,
        };
        if let Some(addr) = owner.and_then(|a| self.agents.get(&a)) {
            addr.do_send(Deliver(event.clone()));
        }
        self.broadcast(&event);
    }
}

impl Handler<CustomerMessageStored> for Distributor {
    type Result = ResponseActFuture<Self, Result<Reply, EngineError>>;

    fn handle(&mut self, msg: CustomerMessageStored, ctx: &mut Context<Self>) -> Self::Result {
        let command = Command::CustomerMessage { conversation: msg.conversation, at: msg.at };
        let executed = <Self as Handler<Execute>>::handle(self, Execute(command), ctx);
        let publish = PublishMessage { conversation: msg.conversation, service: msg.service, message: msg.message };
        Box::pin(executed.into_actor(self).map(move |result, this, ctx| {
            if result.is_ok() {
                <Self as Handler<PublishMessage>>::handle(this, publish, ctx);
            }
            result
        }))
    }
}

impl Handler<GetConversation> for Distributor {
    type Result = Option<ConversationFacts>;

    fn handle(&mut self, msg: GetConversation, _: &mut Context<Self>) -> Self::Result {
        self.book.conversation(msg.0).cloned()
    }
}

impl Handler<GetAgent> for Distributor {
    type Result = Option<AgentSnapshot>;

    fn handle(&mut self, msg: GetAgent, _: &mut Context<Self>) -> Self::Result {
        let a = self.book.agent(msg.0)?;
        Some(AgentSnapshot {
            profile: a.profile.clone(),
            presence: a.presence,
            presence_since: a.presence_since,
            conversations: a.owned.iter().filter_map(|c| self.book.conversation(*c).cloned()).collect(),
            offers: a.offers.iter().filter_map(|c| self.book.conversation(*c).cloned()).collect(),
            connections: self.connections.get(&msg.0).copied().unwrap_or(0),
        })
    }
}

impl Handler<GetQueues> for Distributor {
    type Result = Vec<QueueCounts>;

    fn handle(&mut self, _: GetQueues, _: &mut Context<Self>) -> Self::Result {
        let ids: Vec<_> = self.book.services().map(|s| s.id).collect();
        ids.into_iter().filter_map(|s| self.queue_counts(s)).collect()
    }
}

impl Handler<GetGauges> for Distributor {
    type Result = MessageResult<GetGauges>;

    fn handle(&mut self, _: GetGauges, _: &mut Context<Self>) -> Self::Result {
        use schema::{ConversationState, PresenceStatus, SubState};
        let open = ConversationState::OPEN;
        let mut per_service: HashMap<ServiceId, (Vec<usize>, usize)> = HashMap::new();
        for c in self.book.conversations() {
            let (by_state, inactive) = per_service.entry(c.service).or_insert_with(|| (vec![0; open.len()], 0));
            if let Some(i) = open.iter().position(|s| *s == c.state) {
                by_state[i] += 1;
            }
            if c.state == ConversationState::InService && c.sub_state == Some(SubState::InactiveAtAgent) {
                *inactive += 1;
            }
        }
        let mut services = Vec::new();
        for s in self.book.services() {
            let (by_state, inactive_at_agent) = per_service.remove(&s.id).unwrap_or_else(|| (vec![0; open.len()], 0));
            services.push(crate::stats::ServiceGauges {
                service_id: s.id,
                channel: s.channel,
                by_state: open.iter().copied().zip(by_state).collect(),
                inactive_at_agent,
                oldest_wait_s: self.queue_counts(s.id).map_or(0, |q| q.oldest_wait_s),
            });
        }
        let mut agents: Vec<(PresenceStatus, usize)> = PresenceStatus::ALL.iter().map(|s| (*s, 0)).collect();
        for a in self.book.agents() {
            if let Some(entry) = agents.iter_mut().find(|(s, _)| *s == a.presence.status()) {
                entry.1 += 1;
            }
        }
        MessageResult(crate::stats::Gauges { services, agents })
    }
}

impl Handler<GetWaiting> for Distributor {
    type Result = Vec<ConversationFacts>;

    fn handle(&mut self, msg: GetWaiting, _: &mut Context<Self>) -> Self::Result {
        self.book.waiting(msg.0).cloned().collect()
    }
}

/// The conversation a command is about, for re-arming its timers even when nothing was stored
/// (a customer message that only moved the clock).
fn command_conversation(command: &Command) -> Option<ConversationId> {
    match command {
        Command::CustomerMessage { conversation, .. }
        | Command::InactivityElapsed { conversation }
        | Command::AbandonElapsed { conversation }
        | Command::OfferExpired { conversation } => Some(*conversation),
        _ => None,
    }
}
