//! Property tests of the routing book (SPEC.md R1-R12) against a plain reference model.
//!
//! A small world (2-3 services on whatsapp/webchat/email, 3-6 agents with random teams and
//! capacities 0-3) is driven by random command sequences. After every command the harness checks:
//! a failed command changed nothing; every event is consistent with the conversation before it;
//! the model rebuilt from the events alone agrees with the book; and the routing invariants hold
//! (one agent per conversation, capacity, queue order, no idle eligible agent beside a waiting
//! conversation, pause, no re-offer to an agent who let an offer go).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use engine::EngineError;
use engine::book::{
    BookEvent, By, Command, ConversationEvent, EventKind, LogoffReason, Outcome, PresenceRequest, Reply, RoutingBook,
    abandon_deadline, inactivity_deadline,
};
use engine::model::{
    AgentProfile, AssignmentChange, CHANNELS, ConversationFacts, OfferChange, Presence, ServiceSettings,
    TransferTarget, channel_index,
};
use proptest::prelude::*;
use schema::{
    AgentId, AssignmentVia, Channel, ConversationId, ConversationState, DecisionMode, HoldReason, OfferOutcome,
    PauseReasonId, ServiceId, SubState,
};
use uuid::Uuid;

/// The channels of the generated worlds.
const WORLD_CHANNELS: [Channel; 3] = [Channel::Whatsapp, Channel::Webchat, Channel::Email];
/// R10 timers of every generated service.
const INACTIVITY: Duration = Duration::from_secs(300);
const ABANDON: Duration = Duration::from_secs(3600);

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 8, 0, 0).single().expect("a valid date")
}

fn agent_id(i: usize) -> AgentId {
    AgentId(Uuid::from_u128(0x100 + i as u128))
}

fn service_id(i: usize) -> ServiceId {
    ServiceId(Uuid::from_u128(0x200 + i as u128))
}

fn reason_id(i: u8) -> PauseReasonId {
    PauseReasonId(Uuid::from_u128(0x300 + u128::from(i)))
}

fn supervisor() -> AgentId {
    AgentId(Uuid::from_u128(0x900))
}

// ----- the generated world -----

#[derive(Debug, Clone)]
struct ServiceSpec {
    channel: usize,
    auto: bool,
    offer_timeout_s: Option<u64>,
    allow_cancel: bool,
}

#[derive(Debug, Clone)]
struct AgentSpec {
    member_of: Vec<bool>,
    capacity: [u32; 3],
    auto: Option<bool>,
    available: bool,
}

#[derive(Debug, Clone)]
struct World {
    services: Vec<ServiceSpec>,
    agents: Vec<AgentSpec>,
}

impl World {
    fn settings(&self) -> Vec<ServiceSettings> {
        self.services
            .iter()
            .enumerate()
            .map(|(i, s)| service(i, WORLD_CHANNELS[s.channel], s.auto, s.offer_timeout_s, s.allow_cancel))
            .collect()
    }

    fn profiles(&self) -> Vec<AgentProfile> {
        self.agents
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let services =
                    a.member_of.iter().enumerate().filter(|(_, m)| **m).map(|(s, _)| service_id(s)).collect();
                let mut p = profile(i, services, a.capacity);
                p.auto_distribution = a.auto;
                p
            })
            .collect()
    }
}

fn service(
    i: usize,
    channel: Channel,
    auto: bool,
    offer_timeout_s: Option<u64>,
    allow_cancel: bool,
) -> ServiceSettings {
    ServiceSettings {
        auto_distribution: auto,
        offer_timeout: offer_timeout_s.map(Duration::from_secs),
        inactivity: INACTIVITY,
        abandon: ABANDON,
        allow_cancel,
        ..ServiceSettings::new(service_id(i), channel)
    }
}

/// A profile with `capacity` on whatsapp, webchat and email, nothing elsewhere.
fn profile(i: usize, services: Vec<ServiceId>, capacity: [u32; 3]) -> AgentProfile {
    let mut p = AgentProfile::new(agent_id(i), services);
    p.capacity = [0; CHANNELS];
    for (ch, cap) in WORLD_CHANNELS.iter().zip(capacity) {
        p.capacity[channel_index(*ch)] = cap;
    }
    p
}

fn world_strategy() -> impl Strategy<Value = World> {
    let service = (0..3usize, any::<bool>(), prop::option::weighted(0.5, 10..60u64), prop::bool::weighted(0.7))
        .prop_map(|(channel, auto, offer_timeout_s, allow_cancel)| ServiceSpec {
            channel,
            // Mostly automatic: manual-only services are the less interesting case.
            auto: auto || channel != 2,
            offer_timeout_s,
            allow_cancel,
        });
    (prop::collection::vec(service, 2..=3), 3..=6usize).prop_flat_map(|(services, n_agents)| {
        let n_services = services.len();
        let agent = (
            prop::collection::vec(prop::bool::weighted(0.7), n_services),
            [0..=3u32, 0..=3u32, 0..=3u32],
            prop::option::weighted(0.3, any::<bool>()),
            prop::bool::weighted(0.8),
        )
            .prop_map(|(member_of, capacity, auto, available)| AgentSpec {
                member_of,
                capacity,
                auto,
                available,
            });
        (Just(services), prop::collection::vec(agent, n_agents))
            .prop_map(|(services, agents)| World { services, agents })
    })
}

// ----- the generated steps -----

/// Who issues an owner-only command.
#[derive(Debug, Clone, Copy)]
enum Who {
    /// The conversation's agent (or the first agent when it has none).
    Owner,
    Agent(u8),
    Supervisor,
    System,
}

#[derive(Debug, Clone, Copy)]
enum Want {
    Available,
    Paused(u8),
    Offline,
}

/// One generated step. Indices pick agents, services and conversations modulo what exists.
#[derive(Debug, Clone)]
enum Step {
    Advance {
        secs: u16,
    },
    Arrive {
        service: u8,
        priority: i32,
        held: bool,
    },
    Approve {
        conv: u8,
    },
    Reject {
        conv: u8,
    },
    PullNext {
        agent: u8,
        channel: u8,
    },
    PullChosen {
        agent: u8,
        conv: u8,
    },
    /// `other`: an agent who is not necessarily the one offered.
    Accept {
        conv: u8,
        other: Option<u8>,
    },
    Decline {
        conv: u8,
        other: Option<u8>,
    },
    OfferExpired {
        conv: u8,
        early: bool,
    },
    SetPresence {
        agent: u8,
        want: Want,
    },
    Logoff {
        agent: u8,
    },
    TransferToAgent {
        who: Who,
        conv: u8,
        to: u8,
    },
    TransferToService {
        who: Who,
        conv: u8,
        to: u8,
    },
    Return {
        who: Who,
        conv: u8,
    },
    Conclude {
        who: Who,
        conv: u8,
    },
    Cancel {
        who: Who,
        conv: u8,
    },
    CustomerMessage {
        conv: u8,
    },
    InactivityElapsed {
        conv: u8,
        early: bool,
    },
    AbandonElapsed {
        conv: u8,
        early: bool,
    },
    /// Upserts an agent with capacity raised on one channel (never lowered: R4 holds), its
    /// automatic-distribution override changed, or one membership toggled.
    ReviseAgent {
        agent: u8,
        raise: Option<u8>,
        auto: Option<Option<bool>>,
        toggle: Option<u8>,
    },
    /// Upserts a service with automatic distribution, cancel or the offer timeout changed.
    ReviseService {
        service: u8,
        auto: bool,
        allow_cancel: bool,
        offer_timeout_s: Option<Option<u64>>,
    },
}

fn who_strategy() -> impl Strategy<Value = Who> {
    prop_oneof![
        6 => Just(Who::Owner),
        2 => any::<u8>().prop_map(Who::Agent),
        1 => Just(Who::Supervisor),
        1 => Just(Who::System),
    ]
}

fn step_strategy() -> impl Strategy<Value = Step> {
    let sel = any::<u8>;
    prop_oneof![
        6 => (1..300u16).prop_map(|secs| Step::Advance { secs }),
        10 => (sel(), 0..3i32, prop::bool::weighted(0.15))
            .prop_map(|(service, priority, held)| Step::Arrive { service, priority, held }),
        2 => sel().prop_map(|conv| Step::Approve { conv }),
        1 => sel().prop_map(|conv| Step::Reject { conv }),
        4 => (sel(), sel()).prop_map(|(agent, channel)| Step::PullNext { agent, channel }),
        3 => (sel(), sel()).prop_map(|(agent, conv)| Step::PullChosen { agent, conv }),
        5 => (sel(), prop::option::weighted(0.2, sel())).prop_map(|(conv, other)| Step::Accept { conv, other }),
        3 => (sel(), prop::option::weighted(0.2, sel())).prop_map(|(conv, other)| Step::Decline { conv, other }),
        3 => (sel(), prop::bool::weighted(0.2)).prop_map(|(conv, early)| Step::OfferExpired { conv, early }),
        5 => (sel(), prop_oneof![3 => Just(Want::Available), 2 => (0..2u8).prop_map(Want::Paused), 1 => Just(Want::Offline)])
            .prop_map(|(agent, want)| Step::SetPresence { agent, want }),
        1 => sel().prop_map(|agent| Step::Logoff { agent }),
        5 => (who_strategy(), sel(), sel()).prop_map(|(who, conv, to)| Step::TransferToAgent { who, conv, to }),
        3 => (who_strategy(), sel(), sel()).prop_map(|(who, conv, to)| Step::TransferToService { who, conv, to }),
        2 => (who_strategy(), sel()).prop_map(|(who, conv)| Step::Return { who, conv }),
        6 => (who_strategy(), sel()).prop_map(|(who, conv)| Step::Conclude { who, conv }),
        2 => (who_strategy(), sel()).prop_map(|(who, conv)| Step::Cancel { who, conv }),
        3 => sel().prop_map(|conv| Step::CustomerMessage { conv }),
        3 => (sel(), prop::bool::weighted(0.2)).prop_map(|(conv, early)| Step::InactivityElapsed { conv, early }),
        2 => (sel(), prop::bool::weighted(0.2)).prop_map(|(conv, early)| Step::AbandonElapsed { conv, early }),
        1 => (
            sel(),
            prop::option::weighted(0.4, sel()),
            prop::option::weighted(0.3, prop::option::of(any::<bool>())),
            prop::option::weighted(0.3, sel()),
        )
            .prop_map(|(agent, raise, auto, toggle)| Step::ReviseAgent { agent, raise, auto, toggle }),
        1 => (sel(), any::<bool>(), any::<bool>(), prop::option::weighted(0.3, prop::option::of(10..60u64)))
            .prop_map(|(service, auto, allow_cancel, offer_timeout_s)| {
                Step::ReviseService { service, auto, allow_cancel, offer_timeout_s }
            }),
    ]
}

// ----- snapshots and the reference model -----

/// Everything a command may change, in a comparable form.
#[derive(Debug, PartialEq)]
struct Snapshot {
    conversations: Vec<ConversationFacts>,
    agents: Vec<engine::book::AgentEntry>,
    services: Vec<(ServiceSettings, Vec<ConversationId>)>,
}

fn snapshot(book: &RoutingBook) -> Snapshot {
    let mut conversations: Vec<ConversationFacts> = book.conversations().cloned().collect();
    conversations.sort_by_key(|c| c.id);
    let mut agents: Vec<engine::book::AgentEntry> = book.agents().cloned().collect();
    agents.sort_by_key(|a| a.profile.id);
    let mut services: Vec<(ServiceSettings, Vec<ConversationId>)> =
        book.services().map(|s| (s.clone(), book.waiting(s.id).map(|c| c.id).collect())).collect();
    services.sort_by_key(|(s, _)| s.id);
    Snapshot { conversations, agents, services }
}

/// What the events alone say about the book.
#[derive(Debug, Default)]
struct Model {
    /// Every open conversation as its last event left it.
    conversations: BTreeMap<ConversationId, ConversationFacts>,
    presence: BTreeMap<AgentId, Presence>,
    /// When each agent's presence last changed (the pause clock of R8).
    presence_since: BTreeMap<AgentId, DateTime<Utc>>,
    /// Since when each agent has had nothing new (R6 "longest idle"): becoming available, or the
    /// last conversation assigned, offered or transferred to it.
    idle_since: BTreeMap<AgentId, DateTime<Utc>>,
    /// Agents a conversation must not be distributed to again: they let an offer of it lapse,
    /// declined it or returned it (R7). A transfer to another service starts afresh.
    not_again: BTreeMap<ConversationId, BTreeSet<AgentId>>,
}

/// The facts without the customer-message clock, which moves without an event (it is stored by
/// the ingest, not by the book).
fn without_clock(c: &ConversationFacts) -> ConversationFacts {
    ConversationFacts { last_customer_message_at: None, ..c.clone() }
}

fn queue_key(c: &ConversationFacts) -> (Reverse<i32>, DateTime<Utc>, ConversationId) {
    (Reverse(c.priority), c.arrived_at, c.id)
}

fn offered_to(c: &ConversationFacts) -> Option<AgentId> {
    c.offer.map(|(a, _)| a)
}

// ----- the harness -----

/// The last steps and commands, formatted only when an assertion fails.
struct At<'a>(&'a [String]);

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("after:")?;
        for line in &self.0[self.0.len().saturating_sub(4)..] {
            write!(f, "\n  {line}")?;
        }
        Ok(())
    }
}

struct Harness {
    book: RoutingBook,
    model: Model,
    now: DateTime<Utc>,
    services: Vec<ServiceSettings>,
    agents: Vec<AgentProfile>,
    /// Every conversation id ever used, so that steps also hit closed ones.
    known: Vec<ConversationId>,
    next_conversation: u128,
    /// The step being run, for failure messages.
    trace: Vec<String>,
}

impl Harness {
    fn new(services: Vec<ServiceSettings>, agents: Vec<AgentProfile>) -> Self {
        let mut h = Self {
            book: RoutingBook::new(),
            model: Model::default(),
            now: start(),
            services: services.clone(),
            agents: Vec::new(),
            known: Vec::new(),
            next_conversation: 0x1000,
            trace: Vec::new(),
        };
        for s in services {
            h.ok(Command::UpsertService(s));
        }
        for a in agents {
            h.model.presence.insert(a.id, Presence::Offline);
            h.model.presence_since.insert(a.id, h.now);
            h.model.idle_since.insert(a.id, h.now);
            h.agents.push(a.clone());
            h.ok(Command::UpsertAgent(a));
        }
        h
    }

    fn from_world(world: &World) -> Self {
        let mut h = Self::new(world.settings(), world.profiles());
        for (i, a) in world.agents.iter().enumerate() {
            if a.available {
                h.ok(Command::SetPresence { agent: agent_id(i), presence: PresenceRequest::Available });
            }
        }
        h
    }

    fn at(&self) -> At<'_> {
        At(&self.trace)
    }

    fn advance(&mut self, secs: i64) {
        self.now += chrono::Duration::seconds(secs);
    }

    fn advance_to(&mut self, t: DateTime<Utc>) {
        self.now = self.now.max(t);
    }

    /// Applies a command that must succeed.
    fn ok(&mut self, command: Command) -> Outcome {
        let trace = format!("{command:?}");
        self.apply(command).unwrap_or_else(|e| panic!("{trace} failed: {e:?}"))
    }

    /// Applies a command and checks everything: on error nothing changed; on success the events
    /// are consistent and the model built from them agrees with the book; the invariants hold.
    fn apply(&mut self, command: Command) -> Result<Outcome, EngineError> {
        self.trace.push(format!("{command:?}"));
        let before = self.book.clone();
        let result = self.book.apply(self.now, command.clone());
        match &result {
            Err(e) => {
                assert_eq!(
                    snapshot(&before),
                    snapshot(&self.book),
                    "{command:?} failed with {e:?} but changed the book; {}",
                    self.at()
                );
            }
            Ok(outcome) => {
                for event in &outcome.events {
                    self.absorb(&command, event);
                }
                let quiet = matches!(
                    command,
                    Command::CustomerMessage { .. } | Command::UpsertAgent(_) | Command::UpsertService(_)
                );
                if outcome.events.is_empty() && !quiet {
                    assert_eq!(snapshot(&before), snapshot(&self.book), "{command:?} changed the book silently");
                }
            }
        }
        self.check_reply(&before, &command, &result);
        self.check_invariants();
        result
    }

    /// Checks one event against the conversation before it and records it in the model.
    fn absorb(&mut self, command: &Command, event: &BookEvent) {
        let e = match event {
            BookEvent::Presence(p) => {
                assert_eq!(p.at, self.now);
                let old = self.model.presence.insert(p.agent, p.presence);
                self.model.presence_since.insert(p.agent, self.now);
                if p.presence == Presence::Available {
                    self.model.idle_since.insert(p.agent, self.now);
                }
                assert_ne!(old, Some(p.presence), "a presence event that changes nothing: {p:?}; {}", self.at());
                if let Presence::Paused { .. } = p.presence
                    && let Some(Presence::PausePending { .. }) = old
                {
                    // R8: the pause starts once nothing is left.
                    let a = self.book.agent(p.agent).expect("known agent");
                    assert!(a.offers.is_empty(), "paused with offers; {}", self.at());
                }
                return;
            }
            BookEvent::Conversation(e) => e.as_ref(),
        };
        let at = At(&self.trace);
        let f = &e.facts;
        assert_eq!(e.at, self.now, "{at}");
        let prev = self.model.conversations.get(&f.id).cloned();
        // Shape of the facts after the event.
        assert_eq!(f.owner.is_some(), f.state == ConversationState::InService, "owner iff in service: {e:#?}; {at}");
        assert_eq!(f.sub_state.is_some(), f.state == ConversationState::InService, "{e:#?}; {at}");
        assert_eq!(f.offer.is_some(), f.state == ConversationState::Offered, "offer iff offered: {e:#?}; {at}");
        match &prev {
            None => {
                assert!(matches!(e.kind, EventKind::Arrived | EventKind::Held), "first event {e:#?}; {at}");
                assert_eq!(e.from_state, None);
                self.model.not_again.insert(f.id, BTreeSet::new());
            }
            Some(p) => {
                assert_eq!(e.from_state, Some(p.state), "from_state of {e:#?}; {at}");
                assert_eq!(f.arrived_at, p.arrived_at, "R1: a conversation keeps its age: {e:#?}; {at}");
                assert_eq!(f.priority, p.priority, "{at}");
                if p.first_agent.is_some() {
                    assert_eq!(f.first_agent, p.first_agent, "R11: started by stays: {e:#?}; {at}");
                }
            }
        }
        let prev_owner = prev.as_ref().and_then(|p| p.owner);
        let prev_offer = prev.as_ref().and_then(offered_to);
        let prev_state = prev.as_ref().map(|p| p.state);
        let closed_for = |agent: Option<AgentId>| -> bool {
            matches!((&e.assignment, agent), (Some(AssignmentChange::Closed { agent: a, .. }), Some(o)) if *a == o)
        };
        match e.kind {
            EventKind::Arrived => {
                assert_eq!(f.state, ConversationState::Queued);
                assert_eq!(f.hold, None);
            }
            EventKind::Held => assert_eq!(f.state, ConversationState::PreOpening),
            EventKind::Approved => {
                assert_eq!(prev_state, Some(ConversationState::PreOpening));
                assert_eq!(f.state, ConversationState::Queued);
                assert_eq!(f.hold, None, "no longer held once approved");
            }
            EventKind::Rejected => {
                assert_eq!(prev_state, Some(ConversationState::PreOpening));
                assert_eq!(f.state, ConversationState::Rejected);
            }
            EventKind::Assigned => {
                let owner = f.owner.expect("assigned has an owner");
                assert!(prev_state.is_some_and(ConversationState::is_waiting), "assigned from {prev_state:?}; {at}");
                assert_eq!(f.sub_state, Some(SubState::Active));
                assert_eq!(e.agent, Some(owner));
                let Some(AssignmentChange::Opened { agent, via }) = e.assignment.clone() else {
                    panic!("assigned without an opened assignment: {e:#?}; {at}");
                };
                assert_eq!(agent, owner, "{at}");
                assert_eq!(self.model.presence.get(&owner), Some(&Presence::Available), "R8: {e:#?}; {at}");
                match via {
                    AssignmentVia::Auto => {
                        let decision = e.decision.as_ref().expect("auto assignment records its decision (R16)");
                        assert_eq!(decision.mode, DecisionMode::Auto);
                        assert_eq!(decision.agent, Some(owner));
                        assert_eq!(self.service(f.service).offer_timeout, None, "assigned on an offer service; {at}");
                        self.check_distributed_to(owner, f, "assigned");
                    }
                    AssignmentVia::Pull => match command {
                        Command::PullNext { agent, .. } | Command::PullChosen { agent, .. } => {
                            assert_eq!(*agent, owner, "{at}");
                        }
                        other => panic!("pulled by {other:?}; {at}"),
                    },
                    other => panic!("assigned via {other:?}; {at}"),
                }
            }
            EventKind::Offered => {
                let Some(OfferChange::Made { agent, expires_at }) = e.offer.clone() else {
                    panic!("offered without an offer: {e:#?}; {at}");
                };
                assert_eq!(f.offer, Some((agent, expires_at)));
                assert!(prev_state.is_some_and(ConversationState::is_waiting), "offered from {prev_state:?}; {at}");
                let timeout = self.service(f.service).offer_timeout.expect("offers only on offer services (R7)");
                assert_eq!(expires_at, self.now + chrono::Duration::from_std(timeout).expect("small"));
                assert_eq!(self.model.presence.get(&agent), Some(&Presence::Available), "R8: {e:#?}; {at}");
                assert_eq!(e.decision.as_ref().map(|d| d.mode), Some(DecisionMode::Offer));
                self.check_distributed_to(agent, f, "offered");
            }
            EventKind::OfferAccepted => {
                assert_eq!(prev_state, Some(ConversationState::Offered));
                assert_eq!(f.owner, prev_offer, "accepted by another than the one offered; {at}");
                assert_eq!(f.sub_state, Some(SubState::Active));
                assert_eq!(
                    e.assignment,
                    Some(AssignmentChange::Opened { agent: f.owner.expect("owner"), via: AssignmentVia::Offer })
                );
                assert!(matches!(
                    e.offer,
                    Some(OfferChange::Resolved { outcome: OfferOutcome::Accepted, agent }) if Some(agent) == prev_offer
                ));
            }
            EventKind::OfferDeclined | EventKind::OfferLapsed | EventKind::OfferWithdrawn => {
                assert_eq!(prev_state, Some(ConversationState::Offered));
                assert_eq!(f.state, ConversationState::Queued, "{at}");
                let Some(OfferChange::Resolved { agent, outcome }) = e.offer.clone() else {
                    panic!("offer end without its outcome: {e:#?}; {at}");
                };
                assert_eq!(Some(agent), prev_offer);
                let expected = match e.kind {
                    EventKind::OfferDeclined => OfferOutcome::Rejected,
                    EventKind::OfferLapsed => OfferOutcome::Lapsed,
                    _ => OfferOutcome::Withdrawn,
                };
                assert_eq!(outcome, expected);
                if outcome != OfferOutcome::Withdrawn {
                    self.model.not_again.entry(f.id).or_default().insert(agent);
                }
            }
            EventKind::Transferred => {
                assert_eq!(prev_state, Some(ConversationState::InService));
                let to = f.owner.expect("transferred to someone");
                assert_eq!(
                    e.assignment,
                    Some(AssignmentChange::Moved {
                        from: prev_owner.expect("had an owner"),
                        to,
                        via: AssignmentVia::Transfer
                    }),
                    "{at}"
                );
                assert_eq!(f.sub_state, Some(SubState::Active));
                assert!(
                    matches!(command, Command::Transfer { target: TransferTarget::Agent(a), .. } if *a == to),
                    "{at}"
                );
            }
            EventKind::TransferredToService => {
                assert_eq!(prev_state, Some(ConversationState::InService));
                assert!(closed_for(prev_owner), "{e:#?}; {at}");
                assert_eq!(f.state, ConversationState::Queued);
                let from = prev.as_ref().map(|p| p.service);
                assert_ne!(Some(f.service), from);
                assert_eq!(self.service(f.service).channel, f.channel, "transferred across channels; {at}");
                self.model.not_again.insert(f.id, BTreeSet::new());
            }
            EventKind::Returned => {
                assert_eq!(prev_state, Some(ConversationState::InService));
                assert!(closed_for(prev_owner), "{e:#?}; {at}");
                assert_eq!(f.state, ConversationState::Queued);
                self.model.not_again.entry(f.id).or_default().insert(prev_owner.expect("had an owner"));
            }
            EventKind::Requeued => {
                assert_eq!(prev_state, Some(ConversationState::InService));
                assert!(closed_for(prev_owner), "{e:#?}; {at}");
                match command {
                    // R9: back to the queue as inactive_in_queue, keeping its age.
                    Command::Logoff { .. } | Command::SetPresence { presence: PresenceRequest::Offline, .. } => {
                        assert_eq!(f.state, ConversationState::InactiveInQueue, "{at}");
                    }
                    Command::CustomerMessage { .. } => assert_eq!(f.state, ConversationState::Queued),
                    other => panic!("requeued by {other:?}; {at}"),
                }
            }
            EventKind::BecameInactive => {
                assert_eq!(prev.as_ref().and_then(|p| p.sub_state), Some(SubState::Active));
                assert_eq!(f.sub_state, Some(SubState::InactiveAtAgent));
                assert_eq!(f.owner, prev_owner);
            }
            EventKind::Reactivated => {
                assert_eq!(prev.as_ref().and_then(|p| p.sub_state), Some(SubState::InactiveAtAgent));
                assert_eq!(f.sub_state, Some(SubState::Active));
                assert_eq!(f.owner, prev_owner);
            }
            EventKind::Concluded | EventKind::Cancelled => {
                assert_eq!(prev_state, Some(ConversationState::InService));
                assert!(closed_for(prev_owner), "{e:#?}; {at}");
                let by = match command {
                    Command::Conclude { by, .. } | Command::Cancel { by, .. } => *by,
                    other => panic!("concluded by {other:?}; {at}"),
                };
                let expected = match by {
                    By::Agent(a) | By::Supervisor(a) => a,
                    By::System => prev_owner.expect("had an owner"),
                };
                assert_eq!(f.concluded_by, Some(expected), "R11: concluded by whoever ends it; {at}");
                let state = if e.kind == EventKind::Cancelled {
                    ConversationState::Cancelled
                } else {
                    ConversationState::Concluded
                };
                assert_eq!(f.state, state);
                if e.kind == EventKind::Cancelled {
                    assert!(self.service(f.service).allow_cancel, "R12: cancelled where cancel is off; {at}");
                }
            }
            EventKind::Abandoned => {
                assert!(matches!(command, Command::AbandonElapsed { .. }), "{at}");
                assert_eq!(f.state, ConversationState::Abandoned);
                assert!(
                    prev.as_ref().is_some_and(
                        |p| !(p.state == ConversationState::InService && p.sub_state == Some(SubState::Active))
                    ),
                    "abandoned while active at its agent: {prev:#?}; {at}"
                );
                if prev_owner.is_some() {
                    assert!(closed_for(prev_owner), "{e:#?}; {at}");
                }
                if let Some(agent) = prev_offer {
                    assert_eq!(
                        e.offer,
                        Some(OfferChange::Resolved { agent, outcome: OfferOutcome::Withdrawn }),
                        "{at}"
                    );
                }
            }
            other => panic!("unexpected event {other:?}; {at}"),
        }
        // R6: whoever gets something new stops being idle.
        let took = match e.kind {
            EventKind::Assigned | EventKind::OfferAccepted | EventKind::Transferred => f.owner,
            EventKind::Offered => offered_to(f),
            _ => None,
        };
        if let Some(agent) = took {
            self.model.idle_since.insert(agent, self.now);
        }
        // R7: the facts carry exactly the agents not to distribute it to again.
        let declined: BTreeSet<AgentId> = f.declined_by.iter().copied().collect();
        assert_eq!(declined.len(), f.declined_by.len(), "declined_by has duplicates");
        if !f.state.is_final() {
            assert_eq!(
                Some(&declined),
                self.model.not_again.get(&f.id),
                "declined_by of {:?} after {:?}; {at}",
                f.id,
                e.kind
            );
            self.model.conversations.insert(f.id, f.clone());
        } else {
            self.model.conversations.remove(&f.id);
            self.model.not_again.remove(&f.id);
        }
    }

    /// R6-R8: distribution only goes to an available member taking automatic distribution who has
    /// not let this conversation go before.
    fn check_distributed_to(&self, agent: AgentId, f: &ConversationFacts, what: &str) {
        let at = self.at();
        let settings = self.service(f.service);
        let profile = self.agents.iter().find(|a| a.id == agent).expect("known agent");
        assert!(profile.services.contains(&f.service), "{what} to a non-member; {at}");
        assert!(profile.auto_distribution.unwrap_or(settings.auto_distribution), "{what} to a manual agent; {at}");
        let not_again = self.model.not_again.get(&f.id).cloned().unwrap_or_default();
        assert!(!not_again.contains(&agent), "R7: {what} {:?} again to {agent:?} who let it go; {at}", f.id);
        // R6: among eligible members, the fewest active conversations on the channel.
        let load = self.model_load(agent, f.channel);
        let i = channel_index(f.channel);
        assert!(load < profile.capacity[i] as usize, "R4: {what} to a full agent; {at}");
        for other in self.agents.iter().filter(|a| a.id != agent && a.services.contains(&f.service)) {
            let eligible = self.model.presence.get(&other.id) == Some(&Presence::Available)
                && other.auto_distribution.unwrap_or(settings.auto_distribution)
                && !not_again.contains(&other.id)
                && self.model_load(other.id, f.channel) < other.capacity[i] as usize;
            if eligible {
                let other_load = self.model_load(other.id, f.channel);
                assert!(
                    load <= other_load,
                    "R6: {what} to {agent:?} with {load} active while {:?} has fewer; {at}",
                    other.id
                );
                if load == other_load {
                    assert!(
                        (self.model.idle_since[&agent], agent) < (self.model.idle_since[&other.id], other.id),
                        "R6: {what} to {agent:?} while {:?} was idle longer; {at}",
                        other.id
                    );
                }
            }
        }
        // R1/R6: nothing more urgent or older that this agent could take was passed over.
        for waiting in self.model.conversations.values() {
            if waiting.id == f.id || !waiting.state.is_waiting() || waiting.channel != f.channel {
                continue;
            }
            let s = self.service(waiting.service);
            let could = profile.services.contains(&s.id)
                && s.active
                && profile.auto_distribution.unwrap_or(s.auto_distribution)
                && !waiting.declined_by.contains(&agent);
            assert!(
                !could || queue_key(waiting) > queue_key(f),
                "R1: {what} {:?} to {agent:?} while {:?} waits ahead of it; {at}",
                f.id,
                waiting.id
            );
        }
    }

    /// The conversations counting against `agent`'s capacity on `channel`, as the events tell.
    fn model_load(&self, agent: AgentId, channel: Channel) -> usize {
        self.model
            .conversations
            .values()
            .filter(|c| c.channel == channel)
            .filter(|c| {
                (c.owner == Some(agent) && c.sub_state == Some(SubState::Active)) || offered_to(c) == Some(agent)
            })
            .count()
    }

    fn service(&self, id: ServiceId) -> &ServiceSettings {
        self.services.iter().find(|s| s.id == id).expect("known service")
    }

    /// What the reply and the error must be, given the book before the command.
    fn check_reply(&self, before: &RoutingBook, command: &Command, result: &Result<Outcome, EngineError>) {
        let at = self.at();
        let open_before = |id: ConversationId| before.conversation(id);
        match command {
            Command::SetPresence { agent, .. } | Command::Logoff { agent, .. } => {
                let presence = self.book.agent(*agent).expect("known agent").presence;
                match result {
                    Ok(Outcome { reply: Reply::Presence(p), .. }) => assert_eq!(*p, presence, "{at}"),
                    other => panic!("presence change answered {other:?}; {at}"),
                }
            }
            Command::Arrive { .. } | Command::UpsertAgent(_) | Command::UpsertService(_) => {
                assert!(result.is_ok(), "{result:?}; {at}");
            }
            Command::OfferExpired { .. } | Command::InactivityElapsed { .. } | Command::AbandonElapsed { .. } => {
                assert!(result.is_ok(), "a timer failed: {result:?}; {at}");
            }
            Command::Approve { conversation, .. } | Command::Reject { conversation, .. } => {
                let held = open_before(*conversation).is_some_and(|c| c.state == ConversationState::PreOpening);
                assert_eq!(result.is_ok(), held, "{result:?}; {at}");
            }
            Command::PullNext { agent, channel } => {
                let a = before.agent(*agent).expect("known agent");
                let i = channel_index(*channel);
                let can_take = a.presence == Presence::Available && a.active[i] < a.profile.capacity[i];
                let head = a
                    .profile
                    .services
                    .iter()
                    .filter(|s| before.service(**s).is_some_and(|s| s.channel == *channel && s.active))
                    .filter_map(|s| before.waiting(*s).next())
                    .min_by_key(|c| queue_key(c))
                    .map(|c| c.id);
                match result {
                    Ok(Outcome { reply: Reply::Pulled(got), .. }) => {
                        assert!(can_take, "pulled while unable to take: {a:#?}; {at}");
                        assert_eq!(*got, head, "R5: the pull takes the head of the agent's queues; {at}");
                        if let Some(id) = got {
                            let c = self.book.conversation(*id).expect("pulled conversation is open");
                            assert_eq!(c.owner, Some(*agent), "{at}");
                        }
                    }
                    Ok(other) => panic!("pull answered {other:?}; {at}"),
                    Err(_) => assert!(!can_take, "pull refused: {result:?}; {at}"),
                }
            }
            Command::PullChosen { agent, conversation } => {
                let member = before
                    .agent(*agent)
                    .expect("known")
                    .profile
                    .services
                    .iter()
                    .any(|s| open_before(*conversation).is_some_and(|c| c.service == *s));
                match open_before(*conversation) {
                    Some(c) if member && c.state == ConversationState::InService && c.owner != Some(*agent) => {
                        assert!(matches!(result, Err(EngineError::AlreadyTaken)), "{result:?}; {at}");
                    }
                    Some(c) if member && c.state == ConversationState::Offered && offered_to(c) != Some(*agent) => {
                        assert!(matches!(result, Err(EngineError::AlreadyTaken)), "{result:?}; {at}");
                    }
                    _ => {}
                }
                if let Ok(outcome) = result {
                    assert_eq!(outcome.reply, Reply::Pulled(Some(*conversation)));
                    let c = self.book.conversation(*conversation).expect("pulled conversation is open");
                    assert_eq!(c.owner, Some(*agent), "{at}");
                }
            }
            Command::Accept { agent, conversation } => {
                // An offer past its deadline is gone even before its timer fires.
                let live =
                    open_before(*conversation).and_then(|c| c.offer).filter(|(_, deadline)| *deadline >= self.now);
                assert_eq!(result.is_ok(), live.map(|(a, _)| a) == Some(*agent), "{result:?}; {at}");
            }
            Command::Decline { agent, conversation } => {
                let offered = open_before(*conversation).and_then(offered_to);
                assert_eq!(result.is_ok(), offered == Some(*agent), "{result:?}; {at}");
            }
            Command::Transfer { by, conversation, target } => {
                let c = open_before(*conversation);
                if let By::Agent(a) = by {
                    let owner = c.and_then(|c| c.owner);
                    if owner != Some(*a) {
                        assert!(matches!(result, Err(EngineError::NotOwner | EngineError::ConversationNotFound)));
                    }
                }
                if let TransferTarget::Agent(to) = target
                    && before.agent(*to).is_some_and(|a| a.presence == Presence::Offline)
                {
                    assert!(result.is_err(), "R11: transferred to an agent who is not logged in; {at}");
                }
            }
            Command::Return { by, conversation } | Command::Conclude { by, conversation, .. } => {
                if let By::Agent(a) = by
                    && open_before(*conversation).and_then(|c| c.owner) != Some(*a)
                {
                    assert!(result.is_err(), "an agent acted on a conversation it does not own; {at}");
                }
            }
            Command::Cancel { by, conversation } => {
                if let Some(c) = open_before(*conversation)
                    && !self.service(c.service).allow_cancel
                {
                    assert!(matches!(result, Err(EngineError::CancelNotAllowed)), "R12: {result:?}; {at}");
                }
                if let By::Agent(a) = by
                    && open_before(*conversation).and_then(|c| c.owner) != Some(*a)
                {
                    assert!(result.is_err(), "an agent cancelled a conversation it does not own; {at}");
                }
            }
            Command::CustomerMessage { conversation, .. } => {
                assert_eq!(result.is_ok(), open_before(*conversation).is_some(), "{result:?}; {at}");
            }
            _ => {}
        }
    }

    fn check_invariants(&self) {
        let at = self.at();
        let conversations: BTreeMap<ConversationId, &ConversationFacts> =
            self.book.conversations().map(|c| (c.id, c)).collect();
        // 5. The model built from the events agrees with the book.
        assert_eq!(
            conversations.keys().collect::<Vec<_>>(),
            self.model.conversations.keys().collect::<Vec<_>>(),
            "open conversations differ from the events; {at}"
        );
        for (id, c) in &conversations {
            assert_eq!(
                without_clock(c),
                without_clock(&self.model.conversations[id]),
                "changed without an event; {at}"
            );
            // 1. Owner iff in service, offer iff offered.
            assert_eq!(c.owner.is_some(), c.state == ConversationState::InService, "{c:#?}; {at}");
            assert_eq!(c.offer.is_some(), c.state == ConversationState::Offered, "{c:#?}; {at}");
            assert!(!c.state.is_final());
            assert_eq!(self.service(c.service).channel, c.channel, "R1: {c:#?}; {at}");
        }
        for profile in &self.agents {
            let a = self.book.agent(profile.id).expect("known agent");
            assert_eq!(a.profile, *profile, "{at}");
            assert_eq!(Some(&a.presence), self.model.presence.get(&profile.id), "presence changed silently; {at}");
            assert_eq!(Some(&a.presence_since), self.model.presence_since.get(&profile.id), "{at}");
            assert_eq!(
                Some(&a.idle_since),
                self.model.idle_since.get(&profile.id),
                "idle_since of {:?}; {at}",
                profile.id
            );
            // 1. Conversations held, recomputed from the conversations.
            let owned: BTreeSet<ConversationId> = conversations
                .values()
                .filter(|c| c.state == ConversationState::InService && c.owner == Some(profile.id))
                .map(|c| c.id)
                .collect();
            let offers: BTreeSet<ConversationId> =
                conversations.values().filter(|c| offered_to(c) == Some(profile.id)).map(|c| c.id).collect();
            assert_eq!(a.owned, owned, "owned of {:?}; {at}", profile.id);
            assert_eq!(a.offers, offers, "offers of {:?}; {at}", profile.id);
            // 2. R4: loads are exact and within capacity.
            for ch in WORLD_CHANNELS {
                let i = channel_index(ch);
                let load = conversations
                    .values()
                    .filter(|c| c.channel == ch)
                    .filter(|c| {
                        (c.owner == Some(profile.id) && c.sub_state == Some(SubState::Active))
                            || offered_to(c) == Some(profile.id)
                    })
                    .count();
                assert_eq!(a.active[i] as usize, load, "load of {:?} on {ch:?}; {at}", profile.id);
                assert!(a.active[i] <= profile.capacity[i], "R4: {:?} over capacity on {ch:?}; {at}", profile.id);
            }
            // 6. R8/R9: what each presence may hold.
            match a.presence {
                Presence::Offline => {
                    assert!(owned.is_empty() && offers.is_empty(), "R9: offline with conversations: {a:#?}; {at}");
                }
                Presence::PausePending { .. } => {
                    assert!(!owned.is_empty(), "R8: pause pending with nothing open: {a:#?}; {at}");
                    assert!(offers.is_empty(), "R8: pause pending with offers: {a:#?}; {at}");
                }
                Presence::Paused { .. } => assert!(offers.is_empty(), "R8: paused with offers: {a:#?}; {at}"),
                Presence::Available => {}
            }
        }
        for s in &self.services {
            let waiting: Vec<&ConversationFacts> = self.book.waiting(s.id).collect();
            assert_eq!(waiting.len(), self.book.waiting_count(s.id), "{at}");
            // 3. R1: priority first, then the original arrival.
            for pair in waiting.windows(2) {
                assert!(queue_key(pair[0]) < queue_key(pair[1]), "R1: queue out of order: {pair:#?}; {at}");
            }
            let queued: BTreeSet<ConversationId> = waiting.iter().map(|c| c.id).collect();
            let expected: BTreeSet<ConversationId> =
                conversations.values().filter(|c| c.service == s.id && c.state.is_waiting()).map(|c| c.id).collect();
            assert_eq!(queued, expected, "the queue of {:?} is not its waiting conversations; {at}", s.id);
            // 4. R6: nothing waits while an eligible member is free.
            let i = channel_index(s.channel);
            for c in &waiting {
                for member in self.agents.iter().filter(|a| a.services.contains(&s.id)) {
                    let a = self.book.agent(member.id).expect("known agent");
                    let eligible = a.presence == Presence::Available
                        && member.auto_distribution.unwrap_or(s.auto_distribution)
                        && a.active[i] < member.capacity[i]
                        && !c.declined_by.contains(&member.id);
                    assert!(!eligible, "R6: {:?} waits while {:?} is free: {a:#?}; {at}", c.id, member.id);
                }
            }
        }
    }

    // ----- running generated steps -----

    /// Open conversations matching `pred` in id order, or sometimes any id ever used.
    fn pick(&self, sel: u8, pred: impl Fn(&ConversationFacts) -> bool) -> Option<ConversationId> {
        let mut preferred: Vec<ConversationId> = self.book.conversations().filter(|c| pred(c)).map(|c| c.id).collect();
        preferred.sort();
        let sel = usize::from(sel);
        if sel % 8 == 7 || preferred.is_empty() {
            if self.known.is_empty() {
                return None;
            }
            Some(self.known[sel % self.known.len()])
        } else {
            Some(preferred[(sel / 8) % preferred.len()])
        }
    }

    fn agent_at(&self, sel: u8) -> AgentId {
        self.agents[usize::from(sel) % self.agents.len()].id
    }

    fn in_service(c: &ConversationFacts) -> bool {
        c.state == ConversationState::InService
    }

    fn by(&self, who: Who, conversation: ConversationId) -> By {
        match who {
            Who::Owner => By::Agent(self.book.conversation(conversation).and_then(|c| c.owner).unwrap_or(agent_id(0))),
            Who::Agent(i) => By::Agent(self.agent_at(i)),
            Who::Supervisor => By::Supervisor(supervisor()),
            Who::System => By::System,
        }
    }

    fn run(&mut self, step: &Step) {
        match *step {
            Step::Advance { secs } => self.advance(i64::from(secs)),
            Step::Arrive { service, priority, held } => {
                let s = self.services[usize::from(service) % self.services.len()].clone();
                let id = ConversationId(Uuid::from_u128(self.next_conversation));
                self.next_conversation += 1;
                self.known.push(id);
                let mut facts = ConversationFacts::arriving(id, s.id, s.channel, priority, self.now);
                if held {
                    facts.state = ConversationState::PreOpening;
                    facts.hold = Some(HoldReason::Approval);
                    facts.enqueued_at = None;
                }
                self.ok(Command::Arrive { conversation: facts });
            }
            Step::Approve { conv } => {
                if let Some(id) = self.pick(conv, |c| c.state == ConversationState::PreOpening) {
                    let _ = self.apply(Command::Approve { conversation: id, by: By::Supervisor(supervisor()) });
                }
            }
            Step::Reject { conv } => {
                if let Some(id) = self.pick(conv, |c| c.state == ConversationState::PreOpening) {
                    let _ = self.apply(Command::Reject { conversation: id, by: By::Supervisor(supervisor()) });
                }
            }
            Step::PullNext { agent, channel } => {
                let channel = WORLD_CHANNELS[usize::from(channel) % WORLD_CHANNELS.len()];
                let _ = self.apply(Command::PullNext { agent: self.agent_at(agent), channel });
            }
            Step::PullChosen { agent, conv } => {
                if let Some(id) = self.pick(conv, |c| c.state.is_waiting()) {
                    let _ = self.apply(Command::PullChosen { agent: self.agent_at(agent), conversation: id });
                }
            }
            Step::Accept { conv, other } | Step::Decline { conv, other } => {
                let Some(id) = self.pick(conv, |c| c.state == ConversationState::Offered) else {
                    return;
                };
                let offered = self.book.conversation(id).and_then(offered_to);
                let agent = match (other, offered) {
                    (None, Some(a)) => a,
                    (Some(i), _) => self.agent_at(i),
                    (None, None) => self.agent_at(conv),
                };
                let command = if matches!(step, Step::Accept { .. }) {
                    Command::Accept { agent, conversation: id }
                } else {
                    Command::Decline { agent, conversation: id }
                };
                let _ = self.apply(command);
            }
            Step::OfferExpired { conv, early } => {
                let Some(id) = self.pick(conv, |c| c.state == ConversationState::Offered) else {
                    return;
                };
                let deadline = self.book.conversation(id).and_then(|c| c.offer).map(|(_, d)| d);
                if !early && let Some(d) = deadline {
                    self.advance_to(d);
                }
                let due = deadline.is_some_and(|d| d <= self.now);
                let outcome = self.ok(Command::OfferExpired { conversation: id });
                let lapsed = outcome.events.iter().any(|e| is_kind(e, id, EventKind::OfferLapsed));
                assert_eq!(lapsed, due, "R7: an offer lapses exactly at its deadline; {}", self.at());
            }
            Step::SetPresence { agent, want } => {
                let presence = match want {
                    Want::Available => PresenceRequest::Available,
                    Want::Paused(r) => PresenceRequest::Paused(reason_id(r)),
                    Want::Offline => PresenceRequest::Offline,
                };
                self.ok(Command::SetPresence { agent: self.agent_at(agent), presence });
            }
            Step::Logoff { agent } => {
                self.ok(Command::Logoff { agent: self.agent_at(agent), reason: LogoffReason::Disconnected });
            }
            Step::TransferToAgent { who, conv, to } => {
                let Some(id) = self.pick(conv, Self::in_service) else {
                    return;
                };
                let by = self.by(who, id);
                let target = TransferTarget::Agent(self.agent_at(to));
                let _ = self.apply(Command::Transfer { by, conversation: id, target });
            }
            Step::TransferToService { who, conv, to } => {
                let Some(id) = self.pick(conv, Self::in_service) else {
                    return;
                };
                let by = self.by(who, id);
                let target = TransferTarget::Service(self.services[usize::from(to) % self.services.len()].id);
                let _ = self.apply(Command::Transfer { by, conversation: id, target });
            }
            Step::Return { who, conv } => {
                if let Some(id) = self.pick(conv, Self::in_service) {
                    let _ = self.apply(Command::Return { by: self.by(who, id), conversation: id });
                }
            }
            Step::Conclude { who, conv } => {
                if let Some(id) = self.pick(conv, Self::in_service) {
                    let by = self.by(who, id);
                    let _ = self.apply(Command::Conclude { by, conversation: id, classification: None });
                }
            }
            Step::Cancel { who, conv } => {
                if let Some(id) = self.pick(conv, Self::in_service) {
                    let _ = self.apply(Command::Cancel { by: self.by(who, id), conversation: id });
                }
            }
            Step::CustomerMessage { conv } => {
                let inactive = |c: &ConversationFacts| c.sub_state == Some(SubState::InactiveAtAgent);
                let picked = if conv % 2 == 0 { self.pick(conv / 2, inactive) } else { self.pick(conv / 2, |_| true) };
                if let Some(id) = picked {
                    let _ = self.apply(Command::CustomerMessage { conversation: id, at: self.now });
                }
            }
            Step::InactivityElapsed { conv, early } => {
                let Some(id) = self.pick(conv, |c| c.sub_state == Some(SubState::Active)) else {
                    return;
                };
                let deadline = self.deadline(id, inactivity_deadline);
                if !early && let Some(d) = deadline {
                    self.advance_to(d);
                }
                let due = deadline.is_some_and(|d| d <= self.now);
                let outcome = self.ok(Command::InactivityElapsed { conversation: id });
                let went = outcome.events.iter().any(|e| is_kind(e, id, EventKind::BecameInactive));
                assert_eq!(went, due, "R10: inactive exactly at the deadline; {}", self.at());
            }
            Step::AbandonElapsed { conv, early } => {
                let Some(id) = self.pick(conv, |c| c.sub_state != Some(SubState::Active)) else {
                    return;
                };
                let deadline = self.deadline(id, abandon_deadline);
                if !early && let Some(d) = deadline {
                    self.advance_to(d);
                }
                let due = deadline.is_some_and(|d| d <= self.now);
                let outcome = self.ok(Command::AbandonElapsed { conversation: id });
                let went = outcome.events.iter().any(|e| is_kind(e, id, EventKind::Abandoned));
                assert_eq!(went, due, "R10: abandoned exactly at the deadline; {}", self.at());
                if went {
                    assert!(self.book.conversation(id).is_none());
                }
            }
            Step::ReviseAgent { agent, raise, auto, toggle } => {
                let i = usize::from(agent) % self.agents.len();
                let mut p = self.agents[i].clone();
                if let Some(ch) = raise {
                    p.capacity[channel_index(WORLD_CHANNELS[usize::from(ch) % WORLD_CHANNELS.len()])] += 1;
                }
                if let Some(auto) = auto {
                    p.auto_distribution = auto;
                }
                if let Some(s) = toggle {
                    let s = self.services[usize::from(s) % self.services.len()].id;
                    if p.services.contains(&s) {
                        p.services.retain(|x| *x != s);
                    } else {
                        p.services.push(s);
                    }
                }
                self.upsert_agent(p);
            }
            Step::ReviseService { service, auto, allow_cancel, offer_timeout_s } => {
                let i = usize::from(service) % self.services.len();
                let mut s = self.services[i].clone();
                s.auto_distribution = auto;
                s.allow_cancel = allow_cancel;
                if let Some(timeout) = offer_timeout_s {
                    s.offer_timeout = timeout.map(Duration::from_secs);
                }
                self.services[i] = s.clone();
                self.ok(Command::UpsertService(s));
            }
        }
    }

    fn deadline(
        &self,
        id: ConversationId,
        f: fn(&ConversationFacts, &ServiceSettings) -> Option<DateTime<Utc>>,
    ) -> Option<DateTime<Utc>> {
        let c = self.book.conversation(id)?;
        f(c, self.service(c.service))
    }
}

fn is_kind(event: &BookEvent, id: ConversationId, kind: EventKind) -> bool {
    matches!(event, BookEvent::Conversation(e) if e.facts.id == id && e.kind == kind)
}

fn conversation_events(outcome: &Outcome) -> Vec<&ConversationEvent> {
    outcome
        .events
        .iter()
        .filter_map(|e| match e {
            BookEvent::Conversation(e) => Some(e.as_ref()),
            BookEvent::Presence(_) => None,
        })
        .collect()
}

// ----- the properties -----

proptest! {
    // 256 sequences of up to 200 commands (`PROPTEST_CASES=20000` for a longer hunt); a failure
    // shrinks to a short sequence and is printed in full (no regression file is written).
    #![proptest_config(ProptestConfig {
        max_shrink_iters: 4096,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Every invariant after every command of random command sequences.
    #[test]
    fn routing_invariants_hold(world in world_strategy(), steps in prop::collection::vec(step_strategy(), 1..200)) {
        let mut h = Harness::from_world(&world);
        for step in &steps {
            h.trace.push(format!("step {step:?}"));
            h.run(step);
        }
    }
}

// ----- examples of tricky rules -----

/// A world of explicit services and agents, every agent available.
fn fixture(services: Vec<ServiceSettings>, agents: Vec<AgentProfile>) -> Harness {
    let ids: Vec<AgentId> = agents.iter().map(|a| a.id).collect();
    let mut h = Harness::new(services, agents);
    for a in ids {
        h.ok(Command::SetPresence { agent: a, presence: PresenceRequest::Available });
    }
    h
}

/// Capacities in the order of [`WORLD_CHANNELS`].
fn caps(whatsapp: u32, webchat: u32, email: u32) -> [u32; 3] {
    [whatsapp, webchat, email]
}

impl Harness {
    fn arrive(&mut self, service: usize, priority: i32) -> ConversationId {
        let s = self.services[service].clone();
        let id = ConversationId(Uuid::from_u128(self.next_conversation));
        self.next_conversation += 1;
        self.known.push(id);
        self.ok(Command::Arrive { conversation: ConversationFacts::arriving(id, s.id, s.channel, priority, self.now) });
        id
    }

    /// Upserts an agent the harness knows, keeping its copy of the profile in step.
    fn upsert_agent(&mut self, p: AgentProfile) {
        let known = self.agents.iter_mut().find(|a| a.id == p.id).expect("known agent");
        *known = p.clone();
        self.ok(Command::UpsertAgent(p));
    }

    fn facts(&self, id: ConversationId) -> ConversationFacts {
        self.book.conversation(id).cloned().expect("open conversation")
    }

    fn owner(&self, id: ConversationId) -> Option<AgentId> {
        self.book.conversation(id).and_then(|c| c.owner)
    }
}

#[test]
fn transfer_keeps_the_first_agent_and_concluded_by_goes_to_whoever_concludes() {
    let s = service(0, Channel::Whatsapp, true, None, true);
    let mut h =
        fixture(vec![s.clone()], vec![profile(0, vec![s.id], caps(1, 0, 0)), profile(1, vec![s.id], caps(1, 0, 0))]);
    let c = h.arrive(0, 0);
    let first = h.owner(c).expect("auto-assigned on arrival");
    let second = if first == agent_id(0) { agent_id(1) } else { agent_id(0) };
    h.ok(Command::Transfer { by: By::Agent(first), conversation: c, target: TransferTarget::Agent(second) });
    assert_eq!(h.owner(c), Some(second));
    assert_eq!(h.facts(c).first_agent, Some(first), "R11: started by stays with the first agent");
    // The first agent cannot end it any more; the second can.
    assert!(matches!(
        h.apply(Command::Conclude { by: By::Agent(first), conversation: c, classification: None }),
        Err(EngineError::NotOwner)
    ));
    let outcome = h.ok(Command::Conclude { by: By::Agent(second), conversation: c, classification: None });
    let concluded = conversation_events(&outcome).into_iter().find(|e| e.kind == EventKind::Concluded).expect("event");
    assert_eq!(concluded.facts.first_agent, Some(first));
    assert_eq!(concluded.facts.concluded_by, Some(second), "R11: concluded by whoever ends it");
    assert!(h.book.conversation(c).is_none(), "a concluded conversation leaves the book");
}

#[test]
fn a_supervisor_who_concludes_is_recorded_as_concluding() {
    let s = service(0, Channel::Webchat, true, None, true);
    let mut h = fixture(vec![s.clone()], vec![profile(0, vec![s.id], caps(0, 1, 0))]);
    let c = h.arrive(0, 0);
    let outcome = h.ok(Command::Conclude { by: By::Supervisor(supervisor()), conversation: c, classification: None });
    let e = conversation_events(&outcome).into_iter().find(|e| e.kind == EventKind::Concluded).expect("event");
    assert_eq!(e.facts.concluded_by, Some(supervisor()));
    assert_eq!(e.facts.first_agent, Some(agent_id(0)));
}

#[test]
fn logoff_requeues_as_inactive_in_queue_keeping_age_and_redistributes() {
    let s = service(0, Channel::Webchat, true, None, true);
    // Agent 1 is full with an older conversation, agent 0 takes the next one; agent 2 is paused.
    let mut h = fixture(
        vec![s.clone()],
        vec![
            profile(0, vec![s.id], caps(0, 2, 0)),
            profile(1, vec![s.id], caps(0, 1, 0)),
            profile(2, vec![s.id], caps(0, 3, 0)),
        ],
    );
    h.ok(Command::SetPresence { agent: agent_id(2), presence: PresenceRequest::Paused(reason_id(0)) });
    h.ok(Command::SetPresence { agent: agent_id(1), presence: PresenceRequest::Paused(reason_id(0)) });
    let first = h.arrive(0, 0);
    assert_eq!(h.owner(first), Some(agent_id(0)));
    h.advance(60);
    let second = h.arrive(0, 0);
    assert_eq!(h.owner(second), Some(agent_id(0)));
    let arrived = h.facts(first).arrived_at;
    // Agent 1 comes back free, agent 0 disconnects: both conversations go back and on to agent 1
    // as far as its capacity allows, oldest first.
    h.ok(Command::SetPresence { agent: agent_id(1), presence: PresenceRequest::Available });
    h.advance(30);
    let outcome = h.ok(Command::Logoff { agent: agent_id(0), reason: LogoffReason::Disconnected });
    let requeued: Vec<_> =
        conversation_events(&outcome).into_iter().filter(|e| e.kind == EventKind::Requeued).collect();
    assert_eq!(requeued.len(), 2);
    for e in &requeued {
        assert_eq!(e.facts.state, ConversationState::InactiveInQueue, "R9");
        assert_eq!(e.facts.first_agent, Some(agent_id(0)));
    }
    assert_eq!(h.owner(first), Some(agent_id(1)), "R9: redistributed to another logged-in member");
    assert_eq!(h.facts(first).arrived_at, arrived, "R1: keeps its age");
    assert_eq!(h.facts(first).first_agent, Some(agent_id(0)));
    // The younger one waits (agent 1 is full, agent 2 paused), still as inactive_in_queue.
    let waiting: Vec<_> = h.book.waiting(s.id).map(|c| (c.id, c.state)).collect();
    assert_eq!(waiting, vec![(second, ConversationState::InactiveInQueue)]);
    // Agent 2's pause ends: it gets it.
    h.ok(Command::SetPresence { agent: agent_id(2), presence: PresenceRequest::Available });
    assert_eq!(h.owner(second), Some(agent_id(2)));
}

#[test]
fn pull_chosen_of_a_conversation_someone_else_has_is_already_taken() {
    let s = service(0, Channel::Email, false, None, true);
    let mut h =
        fixture(vec![s.clone()], vec![profile(0, vec![s.id], caps(0, 0, 3)), profile(1, vec![s.id], caps(0, 0, 3))]);
    let c = h.arrive(0, 0);
    assert_eq!(h.book.waiting(s.id).count(), 1, "manual service: it waits");
    let outcome = h.ok(Command::PullChosen { agent: agent_id(0), conversation: c });
    assert_eq!(outcome.reply, Reply::Pulled(Some(c)));
    let before = snapshot(&h.book);
    assert!(matches!(
        h.apply(Command::PullChosen { agent: agent_id(1), conversation: c }),
        Err(EngineError::AlreadyTaken)
    ));
    assert_eq!(snapshot(&h.book), before);
    assert_eq!(h.owner(c), Some(agent_id(0)));
}

#[test]
fn pull_chosen_of_an_offer_to_someone_else_is_already_taken() {
    let s = service(0, Channel::Whatsapp, true, Some(30), true);
    let mut h =
        fixture(vec![s.clone()], vec![profile(0, vec![s.id], caps(1, 0, 0)), profile(1, vec![s.id], caps(0, 0, 0))]);
    let c = h.arrive(0, 0);
    assert_eq!(h.facts(c).offer.map(|(a, _)| a), Some(agent_id(0)));
    h.upsert_agent(profile(1, vec![s.id], caps(1, 0, 0)));
    assert!(matches!(
        h.apply(Command::PullChosen { agent: agent_id(1), conversation: c }),
        Err(EngineError::AlreadyTaken)
    ));
}

#[test]
fn cancel_where_the_service_forbids_it_is_refused() {
    let s = service(0, Channel::Webchat, true, None, false);
    let mut h = fixture(vec![s.clone()], vec![profile(0, vec![s.id], caps(0, 1, 0))]);
    let c = h.arrive(0, 0);
    let before = snapshot(&h.book);
    assert!(matches!(
        h.apply(Command::Cancel { by: By::Agent(agent_id(0)), conversation: c }),
        Err(EngineError::CancelNotAllowed)
    ));
    assert_eq!(snapshot(&h.book), before, "a refused command changes nothing");
    h.ok(Command::Conclude { by: By::Agent(agent_id(0)), conversation: c, classification: None });
}

#[test]
fn a_lapsed_offer_goes_to_the_next_agent_and_never_back() {
    let s = service(0, Channel::Whatsapp, true, Some(20), true);
    let mut h =
        fixture(vec![s.clone()], vec![profile(0, vec![s.id], caps(1, 0, 0)), profile(1, vec![s.id], caps(1, 0, 0))]);
    let c = h.arrive(0, 0);
    let (first, deadline) = h.facts(c).offer.expect("offered");
    h.advance_to(deadline);
    h.ok(Command::OfferExpired { conversation: c });
    let (second, _) = h.facts(c).offer.expect("offered to the next agent (R7)");
    assert_ne!(second, first);
    h.ok(Command::Decline { agent: second, conversation: c });
    // Both let it go: it waits, and stays waiting when they free up or come back.
    assert_eq!(h.facts(c).state, ConversationState::Queued);
    h.ok(Command::SetPresence { agent: first, presence: PresenceRequest::Paused(reason_id(0)) });
    h.ok(Command::SetPresence { agent: first, presence: PresenceRequest::Available });
    assert_eq!(h.facts(c).state, ConversationState::Queued, "R7: not offered again to who let it lapse");
    // Manually it can still be pulled.
    h.ok(Command::PullNext { agent: first, channel: Channel::Whatsapp });
    assert_eq!(h.owner(c), Some(first));
}

#[test]
fn pause_pending_becomes_paused_when_the_last_conversation_ends() {
    let s = service(0, Channel::Webchat, true, None, true);
    let mut h = fixture(vec![s.clone()], vec![profile(0, vec![s.id], caps(0, 2, 0))]);
    let a = h.arrive(0, 0);
    let b = h.arrive(0, 0);
    let reply = h.ok(Command::SetPresence { agent: agent_id(0), presence: PresenceRequest::Paused(reason_id(1)) });
    assert_eq!(reply.reply, Reply::Presence(Presence::PausePending { reason: reason_id(1) }));
    // Nothing new while pause-pending, even with free capacity.
    h.ok(Command::Conclude { by: By::Agent(agent_id(0)), conversation: a, classification: None });
    let waiting = h.arrive(0, 0);
    assert_eq!(h.facts(waiting).state, ConversationState::Queued, "R8: receives nothing new");
    let outcome = h.ok(Command::Conclude { by: By::Agent(agent_id(0)), conversation: b, classification: None });
    assert!(outcome.events.iter().any(|e| matches!(
        e,
        BookEvent::Presence(p) if p.agent == agent_id(0) && p.presence == Presence::Paused { reason: reason_id(1) }
    )));
    h.ok(Command::SetPresence { agent: agent_id(0), presence: PresenceRequest::Available });
    assert_eq!(h.owner(waiting), Some(agent_id(0)), "R6: the pause end redistributes");
}

/// Found by `routing_invariants_hold` (fixed in 8938511): a transfer moves an active
/// conversation to another agent, which frees the sender's capacity although the conversation
/// still counts against someone; the sender's queues must be served at once (R6).
#[test]
fn a_transfer_to_an_agent_redistributes_the_senders_freed_capacity() {
    let s = service(0, Channel::Webchat, true, None, true);
    let mut h =
        fixture(vec![s.clone()], vec![profile(0, vec![s.id], caps(0, 1, 0)), profile(1, vec![s.id], caps(0, 1, 0))]);
    // Agent 1 is logged in but paused: a transfer may still go to it (R11: "must be logged in").
    h.ok(Command::SetPresence { agent: agent_id(1), presence: PresenceRequest::Paused(reason_id(0)) });
    let c1 = h.arrive(0, 0);
    let c2 = h.arrive(0, 0);
    assert_eq!(h.owner(c1), Some(agent_id(0)));
    assert_eq!(h.facts(c2).state, ConversationState::Queued, "agent 0 is full");
    h.ok(Command::Transfer {
        by: By::Agent(agent_id(0)),
        conversation: c1,
        target: TransferTarget::Agent(agent_id(1)),
    });
    assert_eq!(h.owner(c1), Some(agent_id(1)));
    assert_eq!(h.owner(c2), Some(agent_id(0)), "R6: the capacity the transfer freed is used at once");
}
