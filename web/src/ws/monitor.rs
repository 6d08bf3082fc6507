//! What the supervisor's live monitor (`/ws/monitor`, S1) does, apart from the socket: the
//! protocol, and a view of the agents and queues a supervisor sees, kept up to date from the
//! engine's feed without asking the database. It starts from what the REST monitor routes return
//! (`api::supervisor`), and follows each conversation's owner and offer through the feed, so an
//! agent's counts change when a conversation is assigned, transferred, goes quiet or ends.
//! Changes are coalesced: the session sends each changed row at most once per flush.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use engine::distributor::AgentSnapshot;
use engine::{EngineEvent, Presence};
use schema::models::Agent;
use schema::{AgentId, Channel, ConversationId, ConversationState, ServiceId};
use serde::{Deserialize, Serialize};

use crate::api::agent::QueueDto;
use crate::api::supervisor::{MonitorAgentDto, sees_agent};
use crate::core::error::Code;
use crate::core::session::CurrentAgent;

/// What a monitor sends.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MonitorClientMsg {
    /// The monitor has processed everything up to now (resets the slow-client bound).
    Ack,
    /// Application-level ping; answered with `pong`.
    Ping,
}

/// What the server sends to a monitor.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MonitorMsg {
    /// First message after connecting: what `GET /api/v1/monitor/agents` and `/queues` return.
    Snapshot { agents: Vec<MonitorAgentDto>, queues: Vec<QueueDto> },
    /// An agent's row changed (presence, conversations, offers): the whole row, as in the snapshot.
    Agent(MonitorAgentDto),
    /// A queue's counts changed.
    Queue(QueueDto),
    /// A message was refused, or the monitor cannot go on.
    Error { error: Code, message: String },
    /// Answer to `ping`.
    Pong,
}

/// One agent as the view follows it.
struct Row {
    agent: Agent,
    presence: Presence,
    since: DateTime<Utc>,
    /// Open conversations it holds: channel, and whether it counts against capacity.
    conversations: HashMap<ConversationId, (Channel, bool)>,
    offers: HashSet<ConversationId>,
    connections: usize,
    /// The row as last sent, so an event that changes nothing visible sends nothing.
    sent: Option<MonitorAgentDto>,
}

impl Row {
    fn dto(&self) -> MonitorAgentDto {
        MonitorAgentDto::new(
            &self.agent,
            self.presence,
            self.since,
            self.conversations.values().copied(),
            self.offers.len(),
            self.connections,
        )
    }
}

/// The agents and queues one supervisor sees, and what changed since the last flush.
pub struct MonitorView {
    me: CurrentAgent,
    rows: HashMap<AgentId, Row>,
    /// Agents looked up and found outside this supervisor's services (or inactive).
    hidden: HashSet<AgentId>,
    /// Who holds each open conversation of a row (to take it away when it moves).
    holder: HashMap<ConversationId, AgentId>,
    /// To whom each pending offer of a row was made.
    offeree: HashMap<ConversationId, AgentId>,
    dirty_agents: BTreeSet<AgentId>,
    /// The newest counts of each queue that changed.
    dirty_queues: BTreeMap<ServiceId, engine::feed::QueueCounts>,
    sent_queues: HashMap<ServiceId, QueueDto>,
    /// Agents to look up (new to this view, or whose presence changed).
    lookups: BTreeSet<AgentId>,
}

impl MonitorView {
    /// An empty view for `me`.
    pub fn new(me: CurrentAgent) -> Self {
        Self {
            me,
            rows: HashMap::new(),
            hidden: HashSet::new(),
            holder: HashMap::new(),
            offeree: HashMap::new(),
            dirty_agents: BTreeSet::new(),
            dirty_queues: BTreeMap::new(),
            sent_queues: HashMap::new(),
            lookups: BTreeSet::new(),
        }
    }

    /// The snapshot message over what the REST routes returned; the view starts from it.
    pub fn start(&mut self, agents: Vec<(Agent, AgentSnapshot)>, queues: Vec<QueueDto>) -> MonitorMsg {
        let mut rows = Vec::with_capacity(agents.len());
        for (agent, snap) in agents {
            let id = agent.id;
            self.place(agent, &snap);
            if let Some(row) = self.rows.get_mut(&id) {
                let dto = row.dto();
                row.sent = Some(dto.clone());
                rows.push(dto);
            }
        }
        for q in &queues {
            if let Ok(service) = q.service_id.parse() {
                self.sent_queues.insert(service, q.clone());
            }
        }
        MonitorMsg::Snapshot { agents: rows, queues }
    }

    /// (Re)places an agent's row from a fresh look at it; an agent this supervisor does not see
    /// (or an inactive one, or one the engine does not hold) is remembered as hidden.
    pub fn looked_up(&mut self, id: AgentId, found: Option<(Agent, AgentSnapshot)>) {
        match found {
            Some((agent, snap)) if agent.active && sees_agent(&self.me, &snap.profile.services) => {
                self.place(agent, &snap);
                self.dirty_agents.insert(id);
            }
            _ => {
                self.forget(id);
                self.hidden.insert(id);
            }
        }
    }

    fn place(&mut self, agent: Agent, snap: &AgentSnapshot) {
        let id = agent.id;
        self.forget(id);
        let mut row = Row {
            agent,
            presence: snap.presence,
            since: snap.presence_since,
            conversations: HashMap::new(),
            offers: HashSet::new(),
            connections: snap.connections,
            sent: None,
        };
        for c in &snap.conversations {
            row.conversations.insert(c.id, (c.channel, c.counts_against_capacity()));
            self.holder.insert(c.id, id);
        }
        for c in &snap.offers {
            row.offers.insert(c.id);
            self.offeree.insert(c.id, id);
        }
        if let Some(old) = self.rows.insert(id, row)
            && let Some(row) = self.rows.get_mut(&id)
        {
            row.sent = old.sent;
        }
        self.hidden.remove(&id);
    }

    fn forget(&mut self, id: AgentId) {
        if let Some(row) = self.rows.get_mut(&id) {
            for c in row.conversations.keys() {
                self.holder.remove(c);
            }
            for c in &row.offers {
                self.offeree.remove(c);
            }
            row.conversations.clear();
            row.offers.clear();
        }
        self.rows.remove(&id);
    }

    /// Takes in one engine event.
    pub fn apply(&mut self, event: &EngineEvent) {
        match event {
            EngineEvent::Conversation { event, .. } => {
                let f = &event.facts;
                if let Some(prev) = self.holder.remove(&f.id) {
                    if let Some(row) = self.rows.get_mut(&prev) {
                        row.conversations.remove(&f.id);
                    }
                    self.dirty_agents.insert(prev);
                }
                if let Some(prev) = self.offeree.remove(&f.id) {
                    if let Some(row) = self.rows.get_mut(&prev) {
                        row.offers.remove(&f.id);
                    }
                    self.dirty_agents.insert(prev);
                }
                // As the book counts them: an agent holds what is in service with it, and is
                // offered what is in `offered` with its offer.
                if let (ConversationState::InService, Some(owner)) = (f.state, f.owner) {
                    if let Some(row) = self.rows.get_mut(&owner) {
                        row.conversations.insert(f.id, (f.channel, f.counts_against_capacity()));
                        self.holder.insert(f.id, owner);
                        self.dirty_agents.insert(owner);
                    } else {
                        self.look_up(owner);
                    }
                }
                if let (ConversationState::Offered, Some((agent, _))) = (f.state, f.offer) {
                    if let Some(row) = self.rows.get_mut(&agent) {
                        row.offers.insert(f.id);
                        self.offeree.insert(f.id, agent);
                        self.dirty_agents.insert(agent);
                    } else {
                        self.look_up(agent);
                    }
                }
            }
            EngineEvent::Presence { agent, presence, at } => {
                if let Some(row) = self.rows.get_mut(agent) {
                    row.presence = *presence;
                    row.since = *at;
                    self.dirty_agents.insert(*agent);
                }
                // A presence change is rare: a fresh look also refreshes its connections.
                self.look_up(*agent);
            }
            EngineEvent::Queue(q) if self.me.sees_service(q.service_id) => {
                self.dirty_queues.insert(q.service_id, q.clone());
            }
            EngineEvent::Queue(_) | EngineEvent::Alert(_) | EngineEvent::Message { .. } => {}
        }
    }

    fn look_up(&mut self, agent: AgentId) {
        if !self.hidden.contains(&agent) {
            self.lookups.insert(agent);
        }
    }

    /// The agents to look up, once each, with their stored row when the view has it (then only
    /// the engine is asked).
    pub fn take_lookups(&mut self) -> Vec<(AgentId, Option<Agent>)> {
        std::mem::take(&mut self.lookups)
            .into_iter()
            .map(|id| (id, self.rows.get(&id).map(|r| r.agent.clone())))
            .collect()
    }

    /// Whether a flush may have something to send.
    pub fn has_changes(&self) -> bool {
        !self.dirty_agents.is_empty() || !self.dirty_queues.is_empty()
    }

    /// What changed since the last flush, one message per changed row.
    pub fn changes(&mut self) -> Vec<MonitorMsg> {
        let mut out = Vec::new();
        for id in std::mem::take(&mut self.dirty_agents) {
            let Some(row) = self.rows.get_mut(&id) else { continue };
            let dto = row.dto();
            if row.sent.as_ref() != Some(&dto) {
                row.sent = Some(dto.clone());
                out.push(MonitorMsg::Agent(dto));
            }
        }
        for (service, counts) in std::mem::take(&mut self.dirty_queues) {
            let dto = QueueDto::from(counts);
            if self.sent_queues.get(&service) != Some(&dto) {
                self.sent_queues.insert(service, dto.clone());
                out.push(MonitorMsg::Queue(dto));
            }
        }
        out
    }
}
