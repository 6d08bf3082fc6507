//! The worlds of the routing-decision benchmarks: plain data only, built the same way on every
//! run (a fixed-seed generator), so two runs measure the same thing.

use chrono::{DateTime, Duration, TimeZone, Utc};
use engine::book::{By, Command, Outcome, RoutingBook};
use engine::model::{AgentProfile, ConversationFacts, ServiceSettings, channel_index};
use engine::policy::AgentView;
use engine::{Presence, PresenceRequest};
use schema::models::Service;
use schema::{AgentId, Channel, ConversationId, ConversationState, PauseReasonId, ServiceId, SubState};
use uuid::Uuid;

/// The channel of the benchmark service (chat-like, so inactivity rules apply as in production).
pub const CHANNEL: Channel = Channel::Whatsapp;

/// 2026-03-02 09:00 UTC: the start of every benchmark world.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).single().unwrap_or_default()
}

/// A small deterministic generator (SplitMix64): the same world on every run.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A random (v4-shaped) UUID.
    pub fn uuid(&mut self) -> Uuid {
        let v = (u128::from(self.next_u64()) << 64) | u128::from(self.next_u64());
        uuid::Builder::from_random_bytes(v.to_le_bytes()).into_uuid()
    }
}

/// `n` members of a service as the policy sees them, in a realistic mix: about 10% not available
/// (paused or pause-pending), 5% manual-only, 40% at capacity, the rest with 0-2 of 3
/// conversations, idle for up to an hour.
pub fn agent_views(n: usize, seed: u64) -> Vec<AgentView> {
    let mut rng = SplitMix::new(seed);
    (0..n)
        .map(|_| {
            let roll = rng.below(100);
            let capacity = 3;
            AgentView {
                id: AgentId(rng.uuid()),
                available: roll >= 10,
                auto: !(10..15).contains(&roll),
                active: if (15..55).contains(&roll) {
                    capacity
                } else {
                    u32::try_from(rng.below(u64::from(capacity))).unwrap_or(0)
                },
                capacity,
                idle_since: t0() - Duration::seconds(i64::try_from(rng.below(3600)).unwrap_or(0)),
            }
        })
        .collect()
}

/// A contact center in overload: one service, every auto-distributed agent at capacity and a deep
/// queue. One in twenty agents is paused and one in twenty takes manual distribution only, so every
/// decision looks at ineligible members too.
pub struct SaturatedBook {
    pub book: RoutingBook,
    pub service: ServiceId,
    /// The agents automatic distribution may choose (available, auto, full).
    pub auto_agents: Vec<AgentId>,
    /// The time of the last command; moves by a millisecond per command.
    now: DateTime<Utc>,
    rng: SplitMix,
    next_agent: usize,
}

impl SaturatedBook {
    /// `agents` members with `capacity` conversations each on [`CHANNEL`] (all of it in use by the
    /// auto-distributed ones), and `waiting` conversations in the queue.
    pub fn new(agents: usize, capacity: u32, waiting: usize) -> Self {
        let mut rng = SplitMix::new(0x0A11_CE5E);
        let start = t0();
        let mut book = RoutingBook::new();
        // The defaults of a new service (SPEC.md): automatic distribution, direct assignment.
        let row = Service::with_defaults("Benchmark", CHANNEL, start);
        let service = row.id;
        let settings = ServiceSettings::from_row(&row);
        assert!(settings.auto_distribution && settings.offer_timeout.is_none(), "assigned directly");
        apply(&mut book, start, Command::UpsertService(settings));
        let pause = PauseReasonId(rng.uuid());
        let mut auto_agents = Vec::new();
        for i in 0..agents {
            let id = AgentId(rng.uuid());
            let mut profile = AgentProfile::new(id, vec![service]);
            profile.capacity[channel_index(CHANNEL)] = capacity;
            let manual_only = i % 20 == 1;
            if manual_only {
                profile.auto_distribution = Some(false);
            }
            apply(&mut book, start, Command::UpsertAgent(profile));
            let presence = if i % 20 == 0 { PresenceRequest::Paused(pause) } else { PresenceRequest::Available };
            apply(&mut book, start, Command::SetPresence { agent: id, presence });
            if presence == PresenceRequest::Available && !manual_only {
                auto_agents.push(id);
            }
        }
        // Conversations arrived one every 100 ms before the start: the ones in service first.
        let total = auto_agents.len() * capacity as usize + waiting;
        let mut arrived = start - Duration::milliseconds(100 * i64::try_from(total).unwrap_or(0));
        for agent in &auto_agents {
            for _ in 0..capacity {
                let mut facts = ConversationFacts::arriving(ConversationId(rng.uuid()), service, CHANNEL, 0, arrived);
                facts.state = ConversationState::InService;
                facts.sub_state = Some(SubState::Active);
                facts.owner = Some(*agent);
                facts.first_agent = Some(*agent);
                facts.assigned_at = Some(arrived);
                facts.enqueued_at = None;
                book.restore_conversation(facts);
                arrived += Duration::milliseconds(100);
            }
        }
        for _ in 0..waiting {
            book.restore_conversation(ConversationFacts::arriving(
                ConversationId(rng.uuid()),
                service,
                CHANNEL,
                0,
                arrived,
            ));
            arrived += Duration::milliseconds(100);
        }
        let world = Self { book, service, auto_agents, now: start, rng, next_agent: 0 };
        assert_eq!(world.book.waiting_count(service), waiting, "the fixture queue has the asked depth");
        world
    }

    /// The time of the next command.
    pub fn tick(&mut self) -> DateTime<Utc> {
        self.now += Duration::milliseconds(1);
        self.now
    }

    /// The next auto-distributed agent in turn and one of its conversations: concluding it frees a
    /// slot that the head of the queue fills at once.
    pub fn next_conclusion(&mut self) -> Command {
        let agent = self.auto_agents[self.next_agent % self.auto_agents.len()];
        self.next_agent += 1;
        let conversation = self
            .book
            .agent(agent)
            .and_then(|a| a.owned.first().copied())
            .expect("a saturated agent always owns a conversation");
        Command::Conclude { by: By::Agent(agent), conversation, classification: None }
    }

    /// A new conversation arriving now (nobody is free: it waits at the tail of the queue).
    pub fn next_arrival(&mut self) -> Command {
        let id = ConversationId(self.rng.uuid());
        Command::Arrive { conversation: ConversationFacts::arriving(id, self.service, CHANNEL, 0, self.now) }
    }

    /// Puts one more conversation at the tail of the queue without a command (no events): keeps the
    /// queue at its depth between measured decisions.
    pub fn refill(&mut self) {
        let id = ConversationId(self.rng.uuid());
        self.book.restore_conversation(ConversationFacts::arriving(id, self.service, CHANNEL, 0, self.now));
    }

    /// Applies `command` at the next tick, panicking if the book refuses it (a broken fixture).
    pub fn apply(&mut self, command: Command) -> Outcome {
        let now = self.tick();
        apply(&mut self.book, now, command)
    }

    /// Checks that the fixture does what the benchmark says: a conclusion gives the freed slot to
    /// the head of the queue, an arrival only queues.
    pub fn check(&mut self) {
        let depth = self.book.waiting_count(self.service);
        let head = self.book.waiting(self.service).next().map(|c| c.id);
        let command = self.next_conclusion();
        let Command::Conclude { by: By::Agent(agent), .. } = command else { unreachable!() };
        let outcome = self.apply(command);
        let kinds: Vec<_> = outcome.events.iter().map(kind_of).collect();
        assert_eq!(kinds, ["concluded", "assigned"], "a conclusion refills the freed slot");
        let assigned = self.book.conversation(head.expect("a queue head")).and_then(|c| c.owner);
        assert_eq!(assigned, Some(agent), "the head of the queue goes to the agent who freed a slot");
        self.refill();
        let command = self.next_arrival();
        let outcome = self.apply(command);
        let kinds: Vec<_> = outcome.events.iter().map(kind_of).collect();
        assert_eq!(kinds, ["arrived"], "with everybody full an arrival only queues");
        let command = self.next_conclusion();
        self.apply(command);
        assert_eq!(self.book.waiting_count(self.service), depth, "the queue keeps its depth");
        let paused = self.book.agents().filter(|a| matches!(a.presence, Presence::Paused { .. })).count();
        assert!(paused > 0, "some members are paused");
    }
}

fn kind_of(event: &engine::book::BookEvent) -> &'static str {
    match event {
        engine::book::BookEvent::Conversation(e) => e.kind.as_str(),
        engine::book::BookEvent::Presence(_) => "presence",
    }
}

fn apply(book: &mut RoutingBook, now: DateTime<Utc>, command: Command) -> Outcome {
    match book.apply(now, command) {
        Ok(outcome) => outcome,
        Err(e) => panic!("the benchmark fixture issued a command the book refused: {e}"),
    }
}
