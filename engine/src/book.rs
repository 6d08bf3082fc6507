//! The routing book: the whole routing state (queues, agents, open conversations) and every rule
//! of R1-R13 as one deterministic state machine. `apply` takes a command and the current time and
//! returns the events it caused; it never does I/O. The distributor actor is the only owner of the
//! book, so commands are applied one at a time and no race can give a conversation two agents
//! (R3) or an agent more than its capacity (R4). Property tests drive it directly.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use schema::{
    Actor, AgentId, AssignmentVia, Channel, ClassificationId, ConversationId, ConversationState, DecisionMode,
    OfferOutcome, PauseReasonId, ServiceId, SubState,
};

use crate::error::EngineError;
use crate::model::{
    AgentProfile, AssignmentChange, CandidateView, ConversationFacts, DecisionRecord, OfferChange, Presence,
    ServiceSettings, TransferTarget, channel_index,
};
use crate::policy::{self, AgentView};

/// How many eligible candidates a routing decision records (R16).
const RECORDED_CANDIDATES: usize = 5;

/// Who asked for a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Agent(AgentId),
    Supervisor(AgentId),
    System,
}

impl By {
    fn actor(self) -> (Actor, Option<AgentId>) {
        match self {
            By::Agent(a) => (Actor::Agent, Some(a)),
            By::Supervisor(a) => (Actor::Supervisor, Some(a)),
            By::System => (Actor::System, None),
        }
    }
}

/// The presence an agent asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceRequest {
    Available,
    Paused(PauseReasonId),
    Offline,
}

/// Why an agent was logged off (R9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoffReason {
    /// The last connection dropped and the grace period ran out.
    Disconnected,
    /// The agent logged off (or set presence offline).
    LoggedOff,
}

/// Everything the routing book can be asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Adds or updates a service's settings.
    UpsertService(ServiceSettings),
    /// Adds or updates an agent's teams and capacities.
    UpsertAgent(AgentProfile),
    /// Presence change asked by the agent (R8) — `Offline` is a logoff (R9).
    SetPresence { agent: AgentId, presence: PresenceRequest },
    /// The grace period after an agent's last connection ended, or the agent logged off (R9).
    Logoff { agent: AgentId, reason: LogoffReason },
    /// The agent's last desk connection dropped (`away`: the grace period of R9 runs) or a desk
    /// is back. While away it keeps its conversations but is given nothing new, and its pending
    /// offers go back to their queues: no customer waits on a desk nobody is looking at.
    Away { agent: AgentId, away: bool },
    /// A new conversation, `queued` or held in `pre_opening` (R1, R14, C6).
    Arrive { conversation: ConversationFacts },
    /// A supervisor lets a held conversation into its queue (C6).
    Approve { conversation: ConversationId, by: By },
    /// A supervisor refuses a held email (C6).
    Reject { conversation: ConversationId, by: By },
    /// The agent takes the next conversation of a channel (R5).
    PullNext { agent: AgentId, channel: Channel },
    /// The agent takes one chosen waiting conversation (R5).
    PullChosen { agent: AgentId, conversation: ConversationId },
    /// The agent accepts an offer (R7).
    Accept { agent: AgentId, conversation: ConversationId },
    /// The agent turns an offer down (R7).
    Decline { agent: AgentId, conversation: ConversationId },
    /// An offer's timeout passed (R7).
    OfferExpired { conversation: ConversationId },
    /// Transfer to an agent, a service or an external extension (R11).
    Transfer { by: By, conversation: ConversationId, target: TransferTarget },
    /// Back to the queue, keeping its age (R12).
    Return { by: By, conversation: ConversationId },
    /// Finished (R12).
    Conclude { by: By, conversation: ConversationId, classification: Option<ClassificationId> },
    /// Cancelled, where the service allows it (R12).
    Cancel { by: By, conversation: ConversationId },
    /// Classification (R12).
    Classify { by: By, conversation: ConversationId, classification: Option<ClassificationId> },
    /// Due date (R12).
    SetDueDate { by: By, conversation: ConversationId, due_at: Option<DateTime<Utc>> },
    /// The customer wrote (R10: resets inactivity, reactivates).
    CustomerMessage { conversation: ConversationId, at: DateTime<Utc> },
    /// No customer message for the service's inactivity time (R10).
    InactivityElapsed { conversation: ConversationId },
    /// Inactive for the service's abandonment time (R10).
    AbandonElapsed { conversation: ConversationId },
    /// A call delivered by the phone system to an agent's extension (R13).
    VoiceCall { conversation: ConversationFacts, agent: AgentId },
    /// A conversation an agent starts (an outbound WhatsApp template, an email or an SMS sent from
    /// another conversation): theirs at once when they may take it, in one step, so automatic
    /// distribution never hands it to someone else first; else it waits in its queue for anyone.
    StartOutbound { conversation: ConversationFacts, agent: AgentId },
    /// The customer went away before being served (a caller hung up while waiting): a waiting or
    /// offered conversation ends as `abandoned`, its pending offer withdrawn.
    CustomerLeft { conversation: ConversationId, reason: String },
}

/// What a stored conversation event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Arrived,
    Held,
    Approved,
    Rejected,
    Offered,
    OfferAccepted,
    OfferDeclined,
    OfferLapsed,
    OfferWithdrawn,
    Assigned,
    Transferred,
    TransferredToService,
    TransferredOut,
    Returned,
    Requeued,
    BecameInactive,
    Reactivated,
    Concluded,
    Cancelled,
    Abandoned,
    Classified,
    DueDateSet,
}

impl EventKind {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Arrived => "arrived",
            EventKind::Held => "held",
            EventKind::Approved => "approved",
            EventKind::Rejected => "rejected",
            EventKind::Offered => "offered",
            EventKind::OfferAccepted => "offer_accepted",
            EventKind::OfferDeclined => "offer_declined",
            EventKind::OfferLapsed => "offer_lapsed",
            EventKind::OfferWithdrawn => "offer_withdrawn",
            EventKind::Assigned => "assigned",
            EventKind::Transferred => "transferred",
            EventKind::TransferredToService => "transferred_to_service",
            EventKind::TransferredOut => "transferred_out",
            EventKind::Returned => "returned",
            EventKind::Requeued => "requeued",
            EventKind::BecameInactive => "became_inactive",
            EventKind::Reactivated => "reactivated",
            EventKind::Concluded => "concluded",
            EventKind::Cancelled => "cancelled",
            EventKind::Abandoned => "abandoned",
            EventKind::Classified => "classified",
            EventKind::DueDateSet => "due_date_set",
        }
    }
}

/// One happening of a conversation: stored as a conversation event, pushed to desks.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationEvent {
    pub kind: EventKind,
    pub at: DateTime<Utc>,
    pub from_state: Option<ConversationState>,
    /// The conversation after the event.
    pub facts: ConversationFacts,
    pub actor: Actor,
    pub actor_agent: Option<AgentId>,
    /// The agent the event is about (assigned to, offered to, transferred to…).
    pub agent: Option<AgentId>,
    pub reason: Option<String>,
    pub assignment: Option<AssignmentChange>,
    pub offer: Option<OfferChange>,
    pub decision: Option<DecisionRecord>,
    /// An external extension a voice call goes to (R11).
    pub extension: Option<String>,
}

/// An agent's presence changed.
#[derive(Debug, Clone, PartialEq)]
pub struct PresenceEvent {
    pub agent: AgentId,
    pub presence: Presence,
    pub at: DateTime<Utc>,
}

/// What applying a command caused, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum BookEvent {
    Conversation(Box<ConversationEvent>),
    Presence(PresenceEvent),
}

/// The answer to a command.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Done,
    /// The conversation a pull gave, or `None` when nothing was waiting.
    Pulled(Option<ConversationId>),
    /// The agent's presence after the command.
    Presence(Presence),
}

/// The result of one command.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub reply: Reply,
    pub events: Vec<BookEvent>,
}

/// Queue order (R1): higher priority first, then original arrival, then id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct QueueKey {
    pub priority: Reverse<i32>,
    pub arrived_at: DateTime<Utc>,
    pub id: ConversationId,
}

impl QueueKey {
    fn of(c: &ConversationFacts) -> Self {
        Self { priority: Reverse(c.priority), arrived_at: c.arrived_at, id: c.id }
    }
}

/// An agent's place in a service's pool of free agents: the policy's ranking (fewest active on
/// the channel, then longest idle, then id), so the pool's first entry is the policy's choice.
type PoolKey = (u32, DateTime<Utc>, AgentId);

#[derive(Debug, Clone)]
struct ServiceEntry {
    settings: ServiceSettings,
    members: Vec<AgentId>,
    waiting: BTreeSet<QueueKey>,
    /// Members who could take a conversation now (R6 eligibility, declines aside), best first.
    /// Kept in step with every change of an agent, so a routing decision is O(log n) instead of a
    /// scan of the members.
    free: BTreeSet<PoolKey>,
    /// Of the waiting, how many are `inactive_in_queue`.
    inactive: usize,
    /// When each waiting conversation entered the queue (the oldest wait of S1 and D3).
    enqueued: BTreeSet<(DateTime<Utc>, ConversationId)>,
}

impl ServiceEntry {
    fn new(settings: ServiceSettings) -> Self {
        Self {
            settings,
            members: Vec::new(),
            waiting: BTreeSet::new(),
            free: BTreeSet::new(),
            inactive: 0,
            enqueued: BTreeSet::new(),
        }
    }

    fn add_waiting(&mut self, c: &ConversationFacts) {
        self.waiting.insert(QueueKey::of(c));
        self.enqueued.insert((c.enqueued_at.unwrap_or(c.arrived_at), c.id));
        if c.state == ConversationState::InactiveInQueue {
            self.inactive += 1;
        }
    }

    fn remove_waiting(&mut self, c: &ConversationFacts) {
        self.waiting.remove(&QueueKey::of(c));
        self.enqueued.remove(&(c.enqueued_at.unwrap_or(c.arrived_at), c.id));
        if c.state == ConversationState::InactiveInQueue {
            self.inactive = self.inactive.saturating_sub(1);
        }
    }
}

/// A queue's counts: waiting, of which inactive, and since when the oldest has waited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueStats {
    pub waiting: usize,
    pub inactive: usize,
    pub oldest_since: Option<DateTime<Utc>>,
}

/// An agent as the book tracks it.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentEntry {
    pub profile: AgentProfile,
    pub presence: Presence,
    pub presence_since: DateTime<Utc>,
    /// Conversations counting against capacity, per channel (R4).
    pub active: [u32; crate::model::CHANNELS],
    /// Conversations it owns, active or inactive.
    pub owned: BTreeSet<ConversationId>,
    /// Conversations offered to it and not yet answered.
    pub offers: BTreeSet<ConversationId>,
    /// Since when it has had nothing new (R6 "longest idle").
    pub idle_since: DateTime<Utc>,
    /// Its last desk connection dropped and the grace period runs (see [`Command::Away`]).
    pub away: bool,
    /// Where it stands in the pools of free agents of its services (see `ServiceEntry::free`).
    pool_keys: Vec<(ServiceId, PoolKey)>,
}

impl AgentEntry {
    fn logged_in(&self) -> bool {
        self.presence != Presence::Offline
    }
}

/// The routing state. See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct RoutingBook {
    services: HashMap<ServiceId, ServiceEntry>,
    agents: HashMap<AgentId, AgentEntry>,
    conversations: HashMap<ConversationId, ConversationFacts>,
}

/// Collects the events of one command and the services whose queues may now be served.
struct Tx {
    events: Vec<BookEvent>,
    dirty: BTreeSet<ServiceId>,
    now: DateTime<Utc>,
}

impl RoutingBook {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// An open conversation.
    pub fn conversation(&self, id: ConversationId) -> Option<&ConversationFacts> {
        self.conversations.get(&id)
    }

    /// Every open conversation.
    pub fn conversations(&self) -> impl Iterator<Item = &ConversationFacts> {
        self.conversations.values()
    }

    /// An agent.
    pub fn agent(&self, id: AgentId) -> Option<&AgentEntry> {
        self.agents.get(&id)
    }

    /// Every agent.
    pub fn agents(&self) -> impl Iterator<Item = &AgentEntry> {
        self.agents.values()
    }

    /// A service's settings.
    pub fn service(&self, id: ServiceId) -> Option<&ServiceSettings> {
        self.services.get(&id).map(|s| &s.settings)
    }

    /// Every service's settings.
    pub fn services(&self) -> impl Iterator<Item = &ServiceSettings> {
        self.services.values().map(|s| &s.settings)
    }

    /// A service's waiting conversations in queue order (R1).
    pub fn waiting(&self, service: ServiceId) -> impl Iterator<Item = &ConversationFacts> {
        self.services
            .get(&service)
            .into_iter()
            .flat_map(|s| s.waiting.iter())
            .filter_map(|k| self.conversations.get(&k.id))
    }

    /// How many wait in a service's queue.
    pub fn waiting_count(&self, service: ServiceId) -> usize {
        self.services.get(&service).map_or(0, |s| s.waiting.len())
    }

    /// A service's queue counts, in constant time.
    pub fn queue_stats(&self, service: ServiceId) -> Option<QueueStats> {
        let s = self.services.get(&service)?;
        Some(QueueStats {
            waiting: s.waiting.len(),
            inactive: s.inactive,
            oldest_since: s.enqueued.first().map(|(t, _)| *t),
        })
    }

    /// Restores an open conversation as stored (R15), without events. Loads are recomputed.
    pub fn restore_conversation(&mut self, facts: ConversationFacts) {
        let agent_id = match facts.state {
            ConversationState::InService => facts.owner,
            ConversationState::Offered => facts.offer.map(|(a, _)| a),
            _ => None,
        };
        if let Some(entry) = agent_id.and_then(|a| self.agents.get_mut(&a)) {
            if facts.counts_against_capacity() {
                entry.active[channel_index(facts.channel)] += 1;
            }
            match facts.state {
                ConversationState::InService => {
                    entry.owned.insert(facts.id);
                }
                _ => {
                    entry.offers.insert(facts.id);
                }
            }
        }
        if facts.state.is_waiting()
            && let Some(service) = self.services.get_mut(&facts.service)
        {
            service.add_waiting(&facts);
        }
        self.conversations.insert(facts.id, facts);
        if let Some(agent) = agent_id {
            self.refresh_pools(agent);
        }
    }

    /// Restores an agent's presence as stored (R15), without events.
    pub fn restore_presence(&mut self, agent: AgentId, presence: Presence, since: DateTime<Utc>) {
        if let Some(entry) = self.agents.get_mut(&agent) {
            entry.presence = presence;
            entry.presence_since = since;
            entry.idle_since = since;
        }
        self.refresh_pools(agent);
    }

    /// Serves every queue that has waiting conversations (after a restore).
    pub fn distribute_all(&mut self, now: DateTime<Utc>) -> Vec<BookEvent> {
        let mut tx = Tx { events: Vec::new(), dirty: self.services.keys().copied().collect(), now };
        self.distribute(&mut tx);
        tx.events
    }

    /// Applies one command at `now`. On error nothing changed.
    pub fn apply(&mut self, now: DateTime<Utc>, command: Command) -> Result<Outcome, EngineError> {
        let mut tx = Tx { events: Vec::new(), dirty: BTreeSet::new(), now };
        let reply = self.dispatch(&mut tx, command)?;
        self.distribute(&mut tx);
        Ok(Outcome { reply, events: tx.events })
    }

    fn dispatch(&mut self, tx: &mut Tx, command: Command) -> Result<Reply, EngineError> {
        match command {
            Command::UpsertService(settings) => {
                let id = settings.id;
                let entry = self.services.entry(id).or_insert_with(|| ServiceEntry::new(settings.clone()));
                entry.settings = settings;
                if entry.members.is_empty() {
                    entry.members = self
                        .agents
                        .values()
                        .filter(|a| a.profile.services.contains(&id))
                        .map(|a| a.profile.id)
                        .collect();
                }
                // Its auto-distribution, channel or activity may have changed: re-rank its members.
                for member in self.services[&id].members.clone() {
                    self.refresh_pools(member);
                }
                tx.dirty.insert(id);
                Ok(Reply::Done)
            }
            Command::UpsertAgent(profile) => {
                self.upsert_agent(tx, profile);
                Ok(Reply::Done)
            }
            Command::SetPresence { agent, presence } => self.set_presence(tx, agent, presence),
            Command::Logoff { agent, reason } => {
                self.logoff(tx, agent, reason)?;
                Ok(Reply::Presence(Presence::Offline))
            }
            Command::Away { agent, away } => self.set_away(tx, agent, away),
            Command::Arrive { conversation } => self.arrive(tx, conversation),
            Command::Approve { conversation, by } => self.approve(tx, conversation, by),
            Command::Reject { conversation, by } => self.reject(tx, conversation, by),
            Command::PullNext { agent, channel } => self.pull_next(tx, agent, channel),
            Command::PullChosen { agent, conversation } => self.pull_chosen(tx, agent, conversation),
            Command::Accept { agent, conversation } => self.accept(tx, agent, conversation),
            Command::Decline { agent, conversation } => {
                self.end_offer(tx, conversation, Some(agent), OfferOutcome::Rejected)
            }
            Command::OfferExpired { conversation } => {
                match self.conversations.get(&conversation).and_then(|c| c.offer) {
                    Some((_, deadline)) if deadline <= tx.now => {
                        self.end_offer(tx, conversation, None, OfferOutcome::Lapsed)
                    }
                    // A stale timer: the offer was answered or renewed meanwhile.
                    _ => Ok(Reply::Done),
                }
            }
            Command::Transfer { by, conversation, target } => self.transfer(tx, by, conversation, target),
            Command::Return { by, conversation } => self.return_to_queue(tx, by, conversation),
            Command::Conclude { by, conversation, classification } => {
                self.finish(tx, by, conversation, ConversationState::Concluded, classification)
            }
            Command::Cancel { by, conversation } => {
                let c = self.open(conversation)?;
                let allowed = self.services.get(&c.service).is_none_or(|s| s.settings.allow_cancel);
                if !allowed {
                    return Err(EngineError::CancelNotAllowed);
                }
                self.finish(tx, by, conversation, ConversationState::Cancelled, None)
            }
            Command::Classify { by, conversation, classification } => {
                let mut c = self.owned_by(by, conversation)?.clone();
                c.classification = classification;
                self.record(tx, EventKind::Classified, c, by, None, None, None);
                Ok(Reply::Done)
            }
            Command::SetDueDate { by, conversation, due_at } => {
                let mut c = self.owned_by(by, conversation)?.clone();
                c.due_at = due_at;
                self.record(tx, EventKind::DueDateSet, c, by, None, None, None);
                Ok(Reply::Done)
            }
            Command::CustomerMessage { conversation, at } => self.customer_message(tx, conversation, at),
            Command::InactivityElapsed { conversation } => self.inactivity_elapsed(tx, conversation),
            Command::AbandonElapsed { conversation } => self.abandon_elapsed(tx, conversation),
            Command::VoiceCall { conversation, agent } => self.voice_call(tx, conversation, agent),
            Command::StartOutbound { conversation, agent } => self.start_outbound(tx, conversation, agent),
            Command::CustomerLeft { conversation, reason } => self.customer_left(tx, conversation, reason),
        }
    }

    // ----- agents -----

    fn upsert_agent(&mut self, tx: &mut Tx, profile: AgentProfile) {
        let id = profile.id;
        let old_services = self.agents.get(&id).map(|a| a.profile.services.clone()).unwrap_or_default();
        for s in &old_services {
            if let Some(entry) = self.services.get_mut(s) {
                entry.members.retain(|m| *m != id);
            }
        }
        for s in &profile.services {
            if let Some(entry) = self.services.get_mut(s) {
                entry.members.push(id);
            }
            tx.dirty.insert(*s);
        }
        match self.agents.get_mut(&id) {
            Some(entry) => entry.profile = profile,
            None => {
                self.agents.insert(
                    id,
                    AgentEntry {
                        profile,
                        presence: Presence::Offline,
                        presence_since: tx.now,
                        active: [0; crate::model::CHANNELS],
                        owned: BTreeSet::new(),
                        offers: BTreeSet::new(),
                        idle_since: tx.now,
                        away: false,
                        pool_keys: Vec::new(),
                    },
                );
            }
        }
        self.refresh_pools(id);
    }

    /// Puts the agent where it now belongs in its services' pools of free agents. Called after
    /// every change of an agent's presence, load, idle time, teams or capacities.
    fn refresh_pools(&mut self, id: AgentId) {
        let Some(agent) = self.agents.get_mut(&id) else { return };
        let old = std::mem::take(&mut agent.pool_keys);
        let agent = &self.agents[&id];
        let mut keys = Vec::new();
        for s in &agent.profile.services {
            let Some(service) = self.services.get(s) else { continue };
            let view = agent_view(agent, &service.settings);
            if service.settings.active && policy::eligibility(&view, &[]).is_ok() {
                keys.push((*s, policy::rank_key(&view)));
            }
        }
        for (s, key) in old {
            if let Some(service) = self.services.get_mut(&s) {
                service.free.remove(&key);
            }
        }
        for (s, key) in &keys {
            if let Some(service) = self.services.get_mut(s) {
                service.free.insert(*key);
            }
        }
        if let Some(agent) = self.agents.get_mut(&id) {
            agent.pool_keys = keys;
        }
    }

    /// The agent received something new now (R6 "longest idle").
    fn touch_idle(&mut self, agent: AgentId, now: DateTime<Utc>) {
        if let Some(a) = self.agents.get_mut(&agent) {
            a.idle_since = now;
        }
        self.refresh_pools(agent);
    }

    fn agent_mut(&mut self, id: AgentId) -> Result<&mut AgentEntry, EngineError> {
        self.agents.get_mut(&id).ok_or(EngineError::AgentNotFound)
    }

    /// Start-up (R15): an agent logged in before the restart has no desk yet, so it is away —
    /// quietly: its pending offers keep their deadlines (a restart alone routes nothing).
    pub fn restored_away(&mut self, agent: AgentId) {
        if let Some(entry) = self.agents.get_mut(&agent) {
            entry.away = true;
            self.refresh_pools(agent);
        }
    }

    fn set_away(&mut self, tx: &mut Tx, agent: AgentId, away: bool) -> Result<Reply, EngineError> {
        let entry = self.agent_mut(agent)?;
        if entry.away == away {
            return Ok(Reply::Done);
        }
        entry.away = away;
        if away {
            let offers: Vec<_> = entry.offers.iter().copied().collect();
            for c in offers {
                self.end_offer(tx, c, Some(agent), OfferOutcome::Withdrawn)?;
            }
        } else {
            // Back: what waited in its services may be its now.
            tx.dirty.extend(entry.profile.services.iter().copied());
        }
        self.refresh_pools(agent);
        Ok(Reply::Done)
    }

    fn set_presence(&mut self, tx: &mut Tx, agent: AgentId, request: PresenceRequest) -> Result<Reply, EngineError> {
        let entry = self.agents.get(&agent).ok_or(EngineError::AgentNotFound)?;
        let next = match request {
            PresenceRequest::Offline => {
                self.logoff(tx, agent, LogoffReason::LoggedOff)?;
                return Ok(Reply::Presence(Presence::Offline));
            }
            PresenceRequest::Available => Presence::Available,
            PresenceRequest::Paused(reason) => {
                if entry.owned.is_empty() && entry.offers.is_empty() {
                    Presence::Paused { reason }
                } else {
                    Presence::PausePending { reason }
                }
            }
        };
        if entry.presence == next {
            return Ok(Reply::Presence(next));
        }
        if matches!(next, Presence::PausePending { .. }) {
            // Receives nothing new: pending offers go back to their queues.
            let offers: Vec<_> = entry.offers.iter().copied().collect();
            for c in offers {
                self.end_offer(tx, c, Some(agent), OfferOutcome::Withdrawn)?;
            }
            // With no conversation left after the withdrawals, the pause starts at once.
        }
        let entry = self.agent_mut(agent)?;
        let next = match next {
            Presence::PausePending { reason } if entry.owned.is_empty() => Presence::Paused { reason },
            other => other,
        };
        self.change_presence(tx, agent, next);
        Ok(Reply::Presence(next))
    }

    fn change_presence(&mut self, tx: &mut Tx, agent: AgentId, presence: Presence) {
        let Some(entry) = self.agents.get_mut(&agent) else {
            return;
        };
        if entry.presence == presence {
            return;
        }
        entry.presence = presence;
        entry.presence_since = tx.now;
        if presence == Presence::Available {
            entry.idle_since = tx.now;
            tx.dirty.extend(entry.profile.services.iter().copied());
        }
        tx.events.push(BookEvent::Presence(PresenceEvent { agent, presence, at: tx.now }));
        self.refresh_pools(agent);
    }

    fn logoff(&mut self, tx: &mut Tx, agent: AgentId, reason: LogoffReason) -> Result<(), EngineError> {
        let entry = self.agents.get(&agent).ok_or(EngineError::AgentNotFound)?;
        let offers: Vec<_> = entry.offers.iter().copied().collect();
        let owned: Vec<_> = entry.owned.iter().copied().collect();
        for c in offers {
            self.end_offer(tx, c, Some(agent), OfferOutcome::Withdrawn)?;
        }
        let why = match reason {
            LogoffReason::Disconnected => "agent_disconnected",
            LogoffReason::LoggedOff => "agent_logged_off",
        };
        for id in owned {
            let Some(before) = self.conversations.get(&id).cloned() else {
                continue;
            };
            let mut c = before.clone();
            c.state = ConversationState::InactiveInQueue;
            c.sub_state = None;
            c.owner = None;
            c.assigned_at = None;
            c.enqueued_at = Some(tx.now);
            self.record(
                tx,
                EventKind::Requeued,
                c,
                By::System,
                Some(agent),
                Some(why.to_owned()),
                Some(AssignmentChange::Closed { agent, reason: why }),
            );
        }
        self.change_presence(tx, agent, Presence::Offline);
        Ok(())
    }

    // ----- arrivals and approval -----

    fn arrive(&mut self, tx: &mut Tx, mut c: ConversationFacts) -> Result<Reply, EngineError> {
        if !self.services.contains_key(&c.service) {
            return Err(EngineError::ServiceNotFound);
        }
        if self.conversations.contains_key(&c.id) {
            return Ok(Reply::Done);
        }
        let kind = match c.state {
            ConversationState::PreOpening => EventKind::Held,
            _ => {
                c.hold = None;
                c.state = ConversationState::Queued;
                c.enqueued_at = Some(tx.now);
                EventKind::Arrived
            }
        };
        c.sub_state = None;
        c.owner = None;
        c.offer = None;
        self.record_new(tx, kind, c);
        Ok(Reply::Done)
    }

    fn approve(&mut self, tx: &mut Tx, id: ConversationId, by: By) -> Result<Reply, EngineError> {
        let mut c = self.open(id)?.clone();
        if c.state != ConversationState::PreOpening {
            return Err(EngineError::InvalidState("only a held conversation can be approved"));
        }
        c.state = ConversationState::Queued;
        c.hold = None;
        c.enqueued_at = Some(tx.now);
        self.record(tx, EventKind::Approved, c, by, None, None, None);
        Ok(Reply::Done)
    }

    fn reject(&mut self, tx: &mut Tx, id: ConversationId, by: By) -> Result<Reply, EngineError> {
        let mut c = self.open(id)?.clone();
        if c.state != ConversationState::PreOpening {
            return Err(EngineError::InvalidState("only a held conversation can be rejected"));
        }
        c.state = ConversationState::Rejected;
        c.ended_at = Some(tx.now);
        self.record(tx, EventKind::Rejected, c, by, None, None, None);
        Ok(Reply::Done)
    }

    // ----- pulls and offers -----

    fn check_can_take(&self, agent: AgentId, channel: Channel) -> Result<(), EngineError> {
        let a = self.agents.get(&agent).ok_or(EngineError::AgentNotFound)?;
        if a.presence != Presence::Available {
            return Err(EngineError::NotAvailable);
        }
        let i = channel_index(channel);
        if a.active[i] >= a.profile.capacity[i] {
            return Err(EngineError::AtCapacity);
        }
        Ok(())
    }

    fn pull_next(&mut self, tx: &mut Tx, agent: AgentId, channel: Channel) -> Result<Reply, EngineError> {
        self.check_can_take(agent, channel)?;
        let services = &self.agents[&agent].profile.services;
        let next = services
            .iter()
            .filter_map(|s| self.services.get(s))
            .filter(|s| s.settings.channel == channel && s.settings.active)
            .filter_map(|s| s.waiting.first())
            .min()
            .copied();
        let Some(key) = next else {
            return Ok(Reply::Pulled(None));
        };
        let decision = DecisionRecord {
            mode: DecisionMode::Pull,
            agent: Some(agent),
            reason: "the agent pulled the next conversation of the channel".into(),
            candidates: Vec::new(),
            ineligible: Vec::new(),
        };
        self.assign(tx, key.id, agent, AssignmentVia::Pull, Some(decision), By::Agent(agent));
        Ok(Reply::Pulled(Some(key.id)))
    }

    fn pull_chosen(&mut self, tx: &mut Tx, agent: AgentId, id: ConversationId) -> Result<Reply, EngineError> {
        let c = self.open(id)?;
        if self.services.get(&c.service).is_none_or(|s| !s.settings.active) {
            return Err(EngineError::ServiceNotFound);
        }
        if !self.agents.get(&agent).ok_or(EngineError::AgentNotFound)?.profile.services.contains(&c.service) {
            return Err(EngineError::NotMember);
        }
        match c.state {
            ConversationState::Queued | ConversationState::InactiveInQueue => {}
            // Taking what one already has is a no-op, not a conflict.
            ConversationState::InService if c.owner == Some(agent) => return Ok(Reply::Pulled(Some(id))),
            ConversationState::Offered if c.offer.map(|(a, _)| a) == Some(agent) => {
                return self.accept(tx, agent, id).map(|_| Reply::Pulled(Some(id)));
            }
            ConversationState::Offered | ConversationState::InService => {
                return Err(EngineError::AlreadyTaken);
            }
            _ => {
                return Err(EngineError::InvalidState("the conversation is not waiting in a queue"));
            }
        }
        self.check_can_take(agent, c.channel)?;
        let decision = DecisionRecord {
            mode: DecisionMode::PullChosen,
            agent: Some(agent),
            reason: "the agent chose this conversation from the queue".into(),
            candidates: Vec::new(),
            ineligible: Vec::new(),
        };
        self.assign(tx, id, agent, AssignmentVia::Pull, Some(decision), By::Agent(agent));
        Ok(Reply::Pulled(Some(id)))
    }

    fn accept(&mut self, tx: &mut Tx, agent: AgentId, id: ConversationId) -> Result<Reply, EngineError> {
        let before = self.open(id)?.clone();
        match before.offer {
            // Past its deadline an offer is gone, even if its timer has not fired yet (R7).
            Some((a, deadline)) if a == agent && deadline < tx.now => return Err(EngineError::OfferGone),
            Some((a, _)) if a == agent => {}
            Some(_) => return Err(EngineError::AlreadyTaken),
            None if before.owner.is_some() && before.owner != Some(agent) => {
                return Err(EngineError::AlreadyTaken);
            }
            None => return Err(EngineError::OfferGone),
        }
        let mut c = before;
        into_service(&mut c, agent, tx.now);
        let event = ConversationEvent {
            offer: Some(OfferChange::Resolved { agent, outcome: OfferOutcome::Accepted }),
            ..self.event(tx, EventKind::OfferAccepted, c, By::Agent(agent), Some(agent), None)
        };
        let event = ConversationEvent {
            assignment: Some(AssignmentChange::Opened { agent, via: AssignmentVia::Offer }),
            ..event
        };
        self.commit(tx, event);
        self.touch_idle(agent, tx.now);
        Ok(Reply::Done)
    }

    /// Ends a pending offer: declined, lapsed or withdrawn. The conversation goes back to its
    /// queue keeping its place, and is not offered to that agent again (R7).
    fn end_offer(
        &mut self,
        tx: &mut Tx,
        id: ConversationId,
        expected_agent: Option<AgentId>,
        outcome: OfferOutcome,
    ) -> Result<Reply, EngineError> {
        let before = self.open(id)?.clone();
        let Some((agent, _)) = before.offer else {
            return Err(EngineError::OfferGone);
        };
        if expected_agent.is_some_and(|a| a != agent) {
            return Err(EngineError::OfferGone);
        }
        let mut c = before;
        c.offer = None;
        c.state = ConversationState::Queued;
        if outcome != OfferOutcome::Withdrawn && !c.declined_by.contains(&agent) {
            c.declined_by.push(agent);
        }
        let kind = match outcome {
            OfferOutcome::Rejected => EventKind::OfferDeclined,
            OfferOutcome::Lapsed => EventKind::OfferLapsed,
            _ => EventKind::OfferWithdrawn,
        };
        let by = if outcome == OfferOutcome::Rejected { By::Agent(agent) } else { By::System };
        let event = ConversationEvent {
            offer: Some(OfferChange::Resolved { agent, outcome }),
            ..self.event(tx, kind, c, by, Some(agent), None)
        };
        self.commit(tx, event);
        Ok(Reply::Done)
    }

    // ----- transfer, return, finish -----

    fn transfer(
        &mut self,
        tx: &mut Tx,
        by: By,
        id: ConversationId,
        target: TransferTarget,
    ) -> Result<Reply, EngineError> {
        let before = self.owned_by(by, id)?.clone();
        let from = before.owner.ok_or(EngineError::NotOwner)?;
        match target {
            TransferTarget::Agent(to) => {
                if to == from {
                    return Err(EngineError::InvalidTransfer("the conversation is already with that agent"));
                }
                let target = self.agents.get(&to).ok_or(EngineError::AgentNotFound)?;
                if !target.logged_in() {
                    return Err(EngineError::NotAvailable);
                }
                if !target.profile.services.contains(&before.service) {
                    return Err(EngineError::NotMember);
                }
                let i = channel_index(before.channel);
                if target.active[i] >= target.profile.capacity[i] {
                    return Err(EngineError::AtCapacity);
                }
                let mut c = before;
                c.owner = Some(to);
                c.sub_state = Some(SubState::Active);
                c.assigned_at = Some(tx.now);
                let decision = DecisionRecord {
                    mode: DecisionMode::Transfer,
                    agent: Some(to),
                    reason: "transferred by its agent".into(),
                    candidates: Vec::new(),
                    ineligible: Vec::new(),
                };
                let event = ConversationEvent {
                    assignment: Some(AssignmentChange::Moved { from, to, via: AssignmentVia::Transfer }),
                    decision: Some(decision),
                    ..self.event(tx, EventKind::Transferred, c, by, Some(to), None)
                };
                self.commit(tx, event);
                self.touch_idle(to, tx.now);
            }
            TransferTarget::Service(service) => {
                let settings = &self.services.get(&service).ok_or(EngineError::ServiceNotFound)?.settings;
                if service == before.service {
                    return Err(EngineError::InvalidTransfer("the conversation is already in that service"));
                }
                if settings.channel != before.channel {
                    return Err(EngineError::InvalidTransfer("the service is on another channel"));
                }
                if !settings.active {
                    return Err(EngineError::InvalidTransfer("the service is inactive"));
                }
                let mut c = before;
                c.service = service;
                c.state = ConversationState::Queued;
                c.sub_state = None;
                c.owner = None;
                c.assigned_at = None;
                c.enqueued_at = Some(tx.now);
                c.declined_by.clear();
                let event = ConversationEvent {
                    assignment: Some(AssignmentChange::Closed { agent: from, reason: "transferred_to_service" }),
                    ..self.event(tx, EventKind::TransferredToService, c, by, None, None)
                };
                self.commit(tx, event);
            }
            TransferTarget::Extension(extension) => {
                if before.channel != Channel::Voice {
                    return Err(EngineError::InvalidTransfer("only calls can go to an extension"));
                }
                if extension.trim().is_empty() {
                    return Err(EngineError::InvalidTransfer("the extension is empty"));
                }
                let mut c = before;
                c.state = ConversationState::Concluded;
                c.sub_state = None;
                c.owner = None;
                c.concluded_by = Some(from);
                c.ended_at = Some(tx.now);
                let event = ConversationEvent {
                    assignment: Some(AssignmentChange::Closed { agent: from, reason: "transferred_out" }),
                    extension: Some(extension),
                    ..self.event(tx, EventKind::TransferredOut, c, by, None, None)
                };
                self.commit(tx, event);
            }
        }
        Ok(Reply::Done)
    }

    fn return_to_queue(&mut self, tx: &mut Tx, by: By, id: ConversationId) -> Result<Reply, EngineError> {
        let before = self.owned_by(by, id)?.clone();
        let from = before.owner.ok_or(EngineError::NotOwner)?;
        let mut c = before;
        c.state = ConversationState::Queued;
        c.sub_state = None;
        c.owner = None;
        c.assigned_at = None;
        c.enqueued_at = Some(tx.now);
        if !c.declined_by.contains(&from) {
            c.declined_by.push(from);
        }
        self.record(
            tx,
            EventKind::Returned,
            c,
            by,
            Some(from),
            None,
            Some(AssignmentChange::Closed { agent: from, reason: "returned" }),
        );
        Ok(Reply::Done)
    }

    fn finish(
        &mut self,
        tx: &mut Tx,
        by: By,
        id: ConversationId,
        state: ConversationState,
        classification: Option<ClassificationId>,
    ) -> Result<Reply, EngineError> {
        let before = self.owned_by(by, id)?.clone();
        let from = before.owner.ok_or(EngineError::NotOwner)?;
        let mut c = before;
        c.state = state;
        c.sub_state = None;
        c.owner = None;
        c.concluded_by = Some(match by {
            By::Agent(a) | By::Supervisor(a) => a,
            By::System => from,
        });
        if classification.is_some() {
            c.classification = classification;
        }
        c.ended_at = Some(tx.now);
        let kind = if state == ConversationState::Cancelled { EventKind::Cancelled } else { EventKind::Concluded };
        let reason = if state == ConversationState::Cancelled { "cancelled" } else { "concluded" };
        self.record(tx, kind, c, by, Some(from), None, Some(AssignmentChange::Closed { agent: from, reason }));
        Ok(Reply::Done)
    }

    // ----- customer activity and timers (R10) -----

    fn customer_message(&mut self, tx: &mut Tx, id: ConversationId, at: DateTime<Utc>) -> Result<Reply, EngineError> {
        let before = self.open(id)?.clone();
        let mut c = before.clone();
        c.last_customer_message_at = Some(c.last_customer_message_at.map_or(at, |t| t.max(at)));
        if before.state == ConversationState::InService && before.sub_state == Some(SubState::InactiveAtAgent) {
            let owner = before.owner.ok_or(EngineError::NotOwner)?;
            let a = &self.agents[&owner];
            let i = channel_index(c.channel);
            if a.active[i] < a.profile.capacity[i] {
                c.sub_state = Some(SubState::Active);
                self.record(tx, EventKind::Reactivated, c, By::System, Some(owner), None, None);
            } else {
                // R4 is absolute: with its agent full, the conversation waits at the head of the
                // queue (it keeps its age) for whoever frees up first, the same agent included.
                c.state = ConversationState::Queued;
                c.sub_state = None;
                c.owner = None;
                c.assigned_at = None;
                c.enqueued_at = Some(tx.now);
                self.record(
                    tx,
                    EventKind::Requeued,
                    c,
                    By::System,
                    Some(owner),
                    Some("agent_at_capacity_on_reactivation".into()),
                    Some(AssignmentChange::Closed { agent: owner, reason: "agent_at_capacity" }),
                );
            }
        } else {
            // Only the clock moved: kept in memory so timers re-arm; stored by the ingest itself.
            self.conversations.insert(id, c);
        }
        Ok(Reply::Done)
    }

    fn inactivity_elapsed(&mut self, tx: &mut Tx, id: ConversationId) -> Result<Reply, EngineError> {
        let Some(before) = self.conversations.get(&id).cloned() else {
            return Ok(Reply::Done);
        };
        let Some(settings) = self.services.get(&before.service).map(|s| s.settings.clone()) else {
            return Ok(Reply::Done);
        };
        let due = inactivity_deadline(&before, &settings);
        if before.state != ConversationState::InService
            || before.sub_state != Some(SubState::Active)
            || due.is_none_or(|d| d > tx.now)
        {
            return Ok(Reply::Done);
        }
        let mut c = before;
        c.sub_state = Some(SubState::InactiveAtAgent);
        let owner = c.owner;
        self.record(tx, EventKind::BecameInactive, c, By::System, owner, None, None);
        Ok(Reply::Done)
    }

    fn abandon_elapsed(&mut self, tx: &mut Tx, id: ConversationId) -> Result<Reply, EngineError> {
        let Some(before) = self.conversations.get(&id).cloned() else {
            return Ok(Reply::Done);
        };
        let Some(settings) = self.services.get(&before.service).map(|s| s.settings.clone()) else {
            return Ok(Reply::Done);
        };
        if abandon_deadline(&before, &settings).is_none_or(|d| d > tx.now) {
            return Ok(Reply::Done);
        }
        let owner = before.owner;
        let offered = before.offer.map(|(a, _)| a);
        let mut c = before;
        c.state = ConversationState::Abandoned;
        c.sub_state = None;
        c.owner = None;
        c.offer = None;
        c.ended_at = Some(tx.now);
        let mut event = self.event(tx, EventKind::Abandoned, c, By::System, owner, Some("customer_inactive".into()));
        event.assignment = owner.map(|agent| AssignmentChange::Closed { agent, reason: "abandoned" });
        event.offer = offered.map(|agent| OfferChange::Resolved { agent, outcome: OfferOutcome::Withdrawn });
        self.commit(tx, event);
        Ok(Reply::Done)
    }

    fn customer_left(&mut self, tx: &mut Tx, id: ConversationId, reason: String) -> Result<Reply, EngineError> {
        let before = self.open(id)?.clone();
        match before.state {
            ConversationState::PreOpening
            | ConversationState::Queued
            | ConversationState::Offered
            | ConversationState::InactiveInQueue => {}
            _ => return Err(EngineError::InvalidState("only a waiting conversation can be left by its customer")),
        }
        let offered = before.offer.map(|(a, _)| a);
        let mut c = before;
        c.state = ConversationState::Abandoned;
        c.sub_state = None;
        c.offer = None;
        c.ended_at = Some(tx.now);
        let mut event = self.event(tx, EventKind::Abandoned, c, By::System, offered, Some(reason));
        event.offer = offered.map(|agent| OfferChange::Resolved { agent, outcome: OfferOutcome::Withdrawn });
        self.commit(tx, event);
        Ok(Reply::Done)
    }

    fn voice_call(&mut self, tx: &mut Tx, c: ConversationFacts, agent: AgentId) -> Result<Reply, EngineError> {
        if c.channel != Channel::Voice {
            return Err(EngineError::InvalidState("only calls are delivered straight to an agent"));
        }
        if !self.services.contains_key(&c.service) {
            return Err(EngineError::ServiceNotFound);
        }
        if self.conversations.contains_key(&c.id) {
            return Ok(Reply::Done);
        }
        let a = self.agents.get(&agent).ok_or(EngineError::AgentNotFound)?;
        if !a.logged_in() {
            return Err(EngineError::NotAvailable);
        }
        let i = channel_index(Channel::Voice);
        if a.active[i] >= a.profile.capacity[i] {
            return Err(EngineError::AtCapacity);
        }
        let why = "the phone system delivered the call to the agent's extension";
        self.open_with(tx, c, agent, (By::System, AssignmentVia::Voice, DecisionMode::Voice, why));
        Ok(Reply::Done)
    }

    /// A new conversation opened straight into `agent`'s hands: who opened it, how, and why.
    fn open_with(
        &mut self,
        tx: &mut Tx,
        mut c: ConversationFacts,
        agent: AgentId,
        (by, via, mode, why): (By, AssignmentVia, DecisionMode, &str),
    ) {
        c.state = ConversationState::InService;
        c.sub_state = Some(SubState::Active);
        c.owner = Some(agent);
        c.first_agent = Some(agent);
        c.assigned_at = Some(tx.now);
        c.enqueued_at = None;
        c.offer = None;
        let decision = DecisionRecord {
            mode,
            agent: Some(agent),
            reason: why.into(),
            candidates: Vec::new(),
            ineligible: Vec::new(),
        };
        let mut event = self.event(tx, EventKind::Assigned, c, by, Some(agent), None);
        event.assignment = Some(AssignmentChange::Opened { agent, via });
        event.decision = Some(decision);
        event.from_state = None;
        self.commit(tx, event);
    }

    fn start_outbound(&mut self, tx: &mut Tx, c: ConversationFacts, agent: AgentId) -> Result<Reply, EngineError> {
        if !self.services.contains_key(&c.service) {
            return Err(EngineError::ServiceNotFound);
        }
        if self.conversations.contains_key(&c.id) {
            return Ok(Reply::Done);
        }
        // The same rule as taking a conversation from the queue: available, below capacity.
        let member = self.agents.get(&agent).is_some_and(|a| a.profile.services.contains(&c.service));
        if !member || self.check_can_take(agent, c.channel).is_err() {
            return self.arrive(tx, c);
        }
        let why = "the agent started the conversation";
        self.open_with(tx, c, agent, (By::Agent(agent), AssignmentVia::Outbound, DecisionMode::PullChosen, why));
        Ok(Reply::Done)
    }

    // ----- distribution (R6, R7) -----

    /// Serves the dirty queues: their waiting conversations, most urgent and oldest first across
    /// those queues (a merge of the queues, no copy), each to the best free agent of its service,
    /// until no free agent is left for what waits. Each decision is O(log n).
    fn distribute(&mut self, tx: &mut Tx) {
        use std::ops::Bound::{Excluded, Unbounded};
        while !tx.dirty.is_empty() {
            // Per queue that can be served: how far the merge has skipped in it (conversations that
            // only agents who declined them could take stay in place, R7).
            let mut live: Vec<(ServiceId, Option<QueueKey>)> = std::mem::take(&mut tx.dirty)
                .into_iter()
                .filter(|s| {
                    self.services
                        .get(s)
                        .is_some_and(|e| e.settings.active && !e.waiting.is_empty() && !e.free.is_empty())
                })
                .map(|s| (s, None))
                .collect();
            while !live.is_empty() {
                let mut next: Option<(QueueKey, usize)> = None;
                for (i, (service, skipped_to)) in live.iter().enumerate() {
                    let waiting = &self.services[service].waiting;
                    let head = match skipped_to {
                        None => waiting.first(),
                        Some(k) => waiting.range((Excluded(*k), Unbounded)).next(),
                    };
                    if let Some(k) = head
                        && next.is_none_or(|(best, _)| *k < best)
                    {
                        next = Some((*k, i));
                    }
                }
                let Some((key, i)) = next else { break };
                match self.route_one(tx, key.id, live[i].0) {
                    RouteResult::Routed => {}
                    RouteResult::SkippedDeclined => live[i].1 = Some(key),
                    RouteResult::NoAgentFree => {
                        live.swap_remove(i);
                    }
                }
            }
        }
    }

    fn route_one(&mut self, tx: &mut Tx, id: ConversationId, service: ServiceId) -> RouteResult {
        let Some(entry) = self.services.get(&service) else {
            return RouteResult::NoAgentFree;
        };
        if entry.free.is_empty() {
            return RouteResult::NoAgentFree;
        }
        let Some(conversation) = self.conversations.get(&id) else {
            return RouteResult::SkippedDeclined;
        };
        let declined = &conversation.declined_by;
        // The pool is in the policy's order: the first who did not decline it is the choice.
        let mut eligible = entry.free.iter().filter(|(_, _, a)| !declined.contains(a));
        let Some(&(active, _, agent)) = eligible.next() else {
            return RouteResult::SkippedDeclined;
        };
        let channel = channel_index(entry.settings.channel);
        let capacity_of = |a: &AgentId| self.agents.get(a).map_or(0, |e| e.profile.capacity[channel]);
        let candidates: Vec<CandidateView> = entry
            .free
            .iter()
            .filter(|(_, _, a)| !declined.contains(a))
            .take(RECORDED_CANDIDATES)
            .map(|(active, idle_since, a)| CandidateView {
                agent_id: *a,
                active: *active,
                capacity: capacity_of(a),
                idle_since: *idle_since,
            })
            .collect();
        let declined_free = entry.free.iter().filter(|(_, _, a)| declined.contains(a)).count() as u32;
        let eligible_count = entry.free.len() as u32 - declined_free;
        let mut ineligible = vec![("not_free", (entry.members.len() - entry.free.len()) as u32)];
        if declined_free > 0 {
            ineligible.push(("declined", declined_free));
        }
        let offer_timeout = entry.settings.offer_timeout;
        let decision = DecisionRecord {
            mode: if offer_timeout.is_some() { DecisionMode::Offer } else { DecisionMode::Auto },
            agent: Some(agent),
            reason: format!(
                "fewest active conversations ({active} of {}), then longest idle, among {eligible_count} eligible agents",
                capacity_of(&agent)
            ),
            candidates,
            ineligible,
        };
        match offer_timeout {
            Some(timeout) => {
                let expires_at = tx.now + chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::seconds(30));
                let mut c = conversation.clone();
                c.state = ConversationState::Offered;
                c.offer = Some((agent, expires_at));
                let event = ConversationEvent {
                    offer: Some(OfferChange::Made { agent, expires_at }),
                    decision: Some(decision),
                    ..self.event(tx, EventKind::Offered, c, By::System, Some(agent), None)
                };
                self.commit(tx, event);
            }
            None => self.assign(tx, id, agent, AssignmentVia::Auto, Some(decision), By::System),
        }
        self.touch_idle(agent, tx.now);
        RouteResult::Routed
    }

    fn assign(
        &mut self,
        tx: &mut Tx,
        id: ConversationId,
        agent: AgentId,
        via: AssignmentVia,
        decision: Option<DecisionRecord>,
        by: By,
    ) {
        let Some(before) = self.conversations.get(&id).cloned() else {
            return;
        };
        let mut c = before;
        into_service(&mut c, agent, tx.now);
        let event = ConversationEvent {
            assignment: Some(AssignmentChange::Opened { agent, via }),
            decision,
            ..self.event(tx, EventKind::Assigned, c, by, Some(agent), None)
        };
        self.commit(tx, event);
        self.touch_idle(agent, tx.now);
    }

    // ----- bookkeeping -----

    fn open(&self, id: ConversationId) -> Result<&ConversationFacts, EngineError> {
        self.conversations.get(&id).ok_or(EngineError::ConversationNotFound)
    }

    /// The conversation, if `by` may act on it as its owner (supervisors and the system may act
    /// on any conversation in service).
    fn owned_by(&self, by: By, id: ConversationId) -> Result<&ConversationFacts, EngineError> {
        let c = self.open(id)?;
        if c.state != ConversationState::InService {
            return Err(EngineError::NotOwner);
        }
        match by {
            By::Agent(a) if c.owner != Some(a) => Err(EngineError::NotOwner),
            _ => Ok(c),
        }
    }

    fn event(
        &self,
        tx: &Tx,
        kind: EventKind,
        facts: ConversationFacts,
        by: By,
        agent: Option<AgentId>,
        reason: Option<String>,
    ) -> ConversationEvent {
        let (actor, actor_agent) = by.actor();
        let from_state = self.conversations.get(&facts.id).map(|c| c.state);
        ConversationEvent {
            kind,
            at: tx.now,
            from_state,
            facts,
            actor,
            actor_agent,
            agent,
            reason,
            assignment: None,
            offer: None,
            decision: None,
            extension: None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        tx: &mut Tx,
        kind: EventKind,
        facts: ConversationFacts,
        by: By,
        agent: Option<AgentId>,
        reason: Option<String>,
        assignment: Option<AssignmentChange>,
    ) {
        let event = ConversationEvent { assignment, ..self.event(tx, kind, facts, by, agent, reason) };
        self.commit(tx, event);
    }

    fn record_new(&mut self, tx: &mut Tx, kind: EventKind, facts: ConversationFacts) {
        let mut event = self.event(tx, kind, facts, By::System, None, None);
        event.from_state = None;
        self.commit(tx, event);
    }

    /// Replaces the conversation with `event.facts`, keeps queues, loads and agent lists in step
    /// with the change, and emits the event. Every state change goes through here.
    fn commit(&mut self, tx: &mut Tx, event: ConversationEvent) {
        let after = &event.facts;
        let before = self.conversations.get(&after.id).cloned();
        if let Some(b) = &before {
            self.unaccount(b);
            if b.state.is_waiting()
                && let Some(s) = self.services.get_mut(&b.service)
            {
                s.remove_waiting(b);
            }
        }
        if after.state.is_final() {
            self.conversations.remove(&after.id);
        } else {
            self.account(after);
            if after.state.is_waiting()
                && let Some(s) = self.services.get_mut(&after.service)
            {
                s.add_waiting(after);
            }
            self.conversations.insert(after.id, after.clone());
        }
        // Loads changed: the agents on both sides move in their pools.
        let holders = [before.as_ref().and_then(holder), holder(after)];
        for agent in holders.into_iter().flatten() {
            self.refresh_pools(agent);
        }
        // Whatever freed capacity or filled a queue may make an assignment possible (R6): capacity
        // is freed when it stops counting, or when it moves to another agent (a transfer).
        let freed = before.as_ref().is_some_and(|b| {
            b.counts_against_capacity() && (!after.counts_against_capacity() || holder(b) != holder(after))
        });
        if after.state.is_waiting() {
            tx.dirty.insert(after.service);
        }
        if let Some(agent) = before.as_ref().and_then(holder)
            && let Some(entry) = self.agents.get(&agent)
        {
            if freed || entry.owned.is_empty() {
                tx.dirty.extend(entry.profile.services.iter().copied());
            }
            // R8: the pending pause starts when the last conversation ends.
            if let Presence::PausePending { reason } = entry.presence
                && entry.owned.is_empty()
                && entry.offers.is_empty()
            {
                tx.events.push(BookEvent::Conversation(Box::new(event)));
                self.change_presence(tx, agent, Presence::Paused { reason });
                return;
            }
        }
        tx.events.push(BookEvent::Conversation(Box::new(event)));
    }

    fn account(&mut self, c: &ConversationFacts) {
        let i = channel_index(c.channel);
        match c.state {
            ConversationState::InService => {
                if let Some(a) = c.owner.and_then(|o| self.agents.get_mut(&o)) {
                    a.owned.insert(c.id);
                    if c.counts_against_capacity() {
                        a.active[i] += 1;
                    }
                }
            }
            ConversationState::Offered => {
                if let Some(a) = c.offer.and_then(|(o, _)| self.agents.get_mut(&o)) {
                    a.offers.insert(c.id);
                    a.active[i] += 1;
                }
            }
            _ => {}
        }
    }

    fn unaccount(&mut self, c: &ConversationFacts) {
        let i = channel_index(c.channel);
        match c.state {
            ConversationState::InService => {
                if let Some(a) = c.owner.and_then(|o| self.agents.get_mut(&o)) {
                    a.owned.remove(&c.id);
                    if c.counts_against_capacity() {
                        a.active[i] = a.active[i].saturating_sub(1);
                    }
                }
            }
            ConversationState::Offered => {
                if let Some(a) = c.offer.and_then(|(o, _)| self.agents.get_mut(&o)) {
                    a.offers.remove(&c.id);
                    a.active[i] = a.active[i].saturating_sub(1);
                }
            }
            _ => {}
        }
    }
}

/// The agent a conversation counts against: its owner in service, its offeree when offered.
fn holder(c: &ConversationFacts) -> Option<AgentId> {
    match c.state {
        ConversationState::InService => c.owner,
        ConversationState::Offered => c.offer.map(|(a, _)| a),
        _ => None,
    }
}

enum RouteResult {
    Routed,
    /// Only agents who declined it are free: later conversations of the queue may still go.
    SkippedDeclined,
    /// Nobody in the service can take anything now.
    NoAgentFree,
}

/// When a conversation in service goes inactive (R10): chat-like channels only.
pub fn inactivity_deadline(c: &ConversationFacts, s: &ServiceSettings) -> Option<DateTime<Utc>> {
    if !c.channel.is_chat_like() || c.state != ConversationState::InService || c.sub_state != Some(SubState::Active) {
        return None;
    }
    let from = c.last_customer_message_at.max(c.assigned_at)?;
    Some(from + chrono::Duration::from_std(s.inactivity).ok()?)
}

/// When an open chat-like conversation is abandoned (R10): counted from the customer's last
/// message, for conversations that went inactive at their agent or wait in the queue.
pub fn abandon_deadline(c: &ConversationFacts, s: &ServiceSettings) -> Option<DateTime<Utc>> {
    if !c.channel.is_chat_like() || c.state == ConversationState::PreOpening {
        return None;
    }
    if c.state == ConversationState::InService && c.sub_state == Some(SubState::Active) {
        return None;
    }
    let from = c.last_customer_message_at.unwrap_or(c.arrived_at);
    Some(from + chrono::Duration::from_std(s.abandon).ok()?)
}

/// The conversation goes to `agent`, active, now; "started by" stays with the first agent (R11).
fn into_service(c: &mut ConversationFacts, agent: AgentId, now: DateTime<Utc>) {
    c.state = ConversationState::InService;
    c.sub_state = Some(SubState::Active);
    c.owner = Some(agent);
    c.first_agent.get_or_insert(agent);
    c.assigned_at = Some(now);
    c.enqueued_at = None;
    c.offer = None;
}

/// How the policy sees an agent for a service.
fn agent_view(a: &AgentEntry, s: &ServiceSettings) -> AgentView {
    let i = channel_index(s.channel);
    AgentView {
        id: a.profile.id,
        available: a.presence == Presence::Available && !a.away,
        auto: a.profile.auto_distribution.unwrap_or(s.auto_distribution),
        active: a.active[i],
        capacity: a.profile.capacity[i],
        idle_since: a.idle_since,
    }
}
