//! Events per second through the engine with durable commit (target: 20,000/s on 2 cores), and
//! per-command latency percentiles. Figures in docs/performance.md.
//!
//! A real `Engine` (system clock, actors, the journal committing batches through
//! `engine_apply_batch`) over a fresh database on the server of `DATABASE_URL`, driven by many
//! concurrent callers on this process's own thread. Events per second are the conversation events
//! the database holds afterwards divided by the wall time of the run; every command answers only
//! once its events are committed, so nothing is counted before it is durable. Scenarios:
//!
//! - `open`: `open_conversation` against free agents (large capacity): one INSERT of the
//!   conversation row (its own transaction), then `arrived` + `assigned` through the journal.
//! - `arrive`: the rows are stored beforehand in bulk; `Command::Arrive` then conclude by the
//!   owner: `arrived`, `assigned`, `concluded`, all through the journal. The engine's own path,
//!   without `open_conversation`'s INSERT.
//! - `cycle`: open, then the owner concludes: `arrived`, `assigned`, `concluded`.
//! - `saturated`: 1,000 agents full at capacity 3 with 10,000 waiting; each cycle an agent
//!   concludes (the head of the queue takes the slot) and a new conversation arrives at the tail:
//!   `concluded`, `assigned`, `arrived`, with the queue staying 10,000 deep.
//! - `ingest`: customer messages committed per second through `Engine::ingest` (the webhooks'
//!   path), `--messages` from new addresses (each opens a conversation, assigned on arrival) and
//!   `--messages` into `--open-addresses` open conversations; once through the grouped writer
//!   (`Engine::ingest`) and once the per-message way (one transaction per message, then the
//!   engine command), for comparison.
//!
//! Run it through `make bench`, or `scripts/pg.sh with bench cargo run --release -p
//! omniroute-benches --bin engine_throughput -- --help`.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use benches::store::{BenchDb, EventsSince, event_mark, events_since, setting};
use clap::{Parser, ValueEnum};
use engine::ingest::{InboundMessage, Ingested, Opening, store_inbound};
use engine::{By, Clock, Command, ConversationFacts, Engine, NewConversation, PresenceRequest};
use hdrhistogram::Histogram;
use schema::{AgentId, Channel, MessageKind, PoolOptions, build_pool};

/// The channel of the benchmark service.
const CHANNEL: Channel = Channel::Whatsapp;
/// Capacity that never fills in the `open`, `arrive` and `cycle` scenarios.
const LARGE_CAPACITY: i32 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Open,
    Arrive,
    Cycle,
    Saturated,
    Ingest,
    All,
}

/// Events per second through the engine with durable commit.
#[derive(Debug, Parser)]
#[command(name = "engine_throughput")]
struct Options {
    /// The load to run.
    #[arg(long, value_enum, default_value_t = Scenario::All)]
    scenario: Scenario,
    /// Conversations of the `open`, `arrive` and `cycle` scenarios.
    #[arg(long, default_value_t = 20_000)]
    conversations: usize,
    /// Agents available in the `open`, `arrive` and `cycle` scenarios (capacity never fills).
    #[arg(long, default_value_t = 100)]
    agents: usize,
    /// Callers with a command in flight at once (closed loop: each waits for its answer).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Connections in the engine's pool (the journal holds one; conversation INSERTs share the rest).
    #[arg(long, default_value_t = 16)]
    pool: u32,
    /// Agents of the `saturated` scenario, each with capacity 3.
    #[arg(long, default_value_t = 1_000)]
    saturated_agents: usize,
    /// Conversations waiting throughout the `saturated` scenario.
    #[arg(long, default_value_t = 10_000)]
    backlog: usize,
    /// Conclude-and-arrive cycles of the `saturated` scenario.
    #[arg(long, default_value_t = 10_000)]
    cycles: usize,
    /// Customer messages of each `ingest` measurement.
    #[arg(long, default_value_t = 20_000)]
    messages: usize,
    /// Open conversations the `ingest` scenario's messages into open conversations go to.
    #[arg(long, default_value_t = 1_000)]
    open_addresses: usize,
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    if options.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    // The server: the benchmark's own database is created on it (as the tests' are) and dropped.
    let server = std::env::var("DATABASE_URL")
        .context("DATABASE_URL must point at a PostgreSQL server (`make bench` starts a durable one)")?;
    print_setup(&server)?;
    actix_rt::System::new().block_on(run(options))
}

fn print_setup(server: &str) -> anyhow::Result<()> {
    let mut conn = schema::connect(server).context("connect to DATABASE_URL")?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("engine_throughput: {cores} cores; PostgreSQL {}", setting(&mut conn, "server_version")?);
    let mut durable = true;
    let mut line = String::new();
    for name in ["fsync", "synchronous_commit", "full_page_writes", "wal_sync_method", "commit_delay", "shared_buffers"]
    {
        let value = setting(&mut conn, name)?;
        if (name == "fsync" || name == "synchronous_commit") && value != "on" {
            durable = false;
        }
        line.push_str(&format!(" {name}={value}"));
    }
    println!("server settings:{line}");
    if !durable {
        println!("WARNING: this server does not commit durably; the figures below do not measure durable commit");
    }
    Ok(())
}

async fn run(options: Options) -> anyhow::Result<()> {
    let scenarios = match options.scenario {
        Scenario::All => vec![Scenario::Open, Scenario::Arrive, Scenario::Cycle, Scenario::Saturated],
        one => vec![one],
    };
    for scenario in scenarios {
        let report = match scenario {
            Scenario::Open => open(&options).await?,
            Scenario::Arrive => arrive(&options).await?,
            Scenario::Cycle => cycle(&options).await?,
            Scenario::Ingest => {
                for report in ingest(&options).await? {
                    report.print();
                }
                continue;
            }
            Scenario::Saturated | Scenario::All => saturated(&options).await?,
        };
        report.print();
    }
    Ok(())
}

/// A running engine over a benchmark database, its agents logged in and available.
struct Rig {
    world: BenchDb,
    engine: Engine,
}

impl Rig {
    async fn start(options: &Options, agents: usize, capacity: i32, backlog: usize) -> anyhow::Result<Rig> {
        let world = BenchDb::seed(CHANNEL, agents, capacity)?;
        if backlog > 0 {
            world.store_queued(CHANNEL, backlog)?;
        }
        let pool = build_pool(
            world.db.url(),
            &PoolOptions { max_size: options.pool.max(2), connection_timeout: Duration::from_secs(30) },
        );
        let engine = Engine::start(pool, Clock::System).await.context("start the engine")?;
        let agents = Rc::new(world.agents.clone());
        let tickets = Tickets::new(agents.len());
        run_workers(options.concurrency, |_| {
            let (engine, agents, tickets) = (engine.clone(), agents.clone(), tickets.clone());
            async move {
                while let Some(i) = tickets.take() {
                    engine.set_presence(agents[i], PresenceRequest::Available).await?;
                }
                Ok(())
            }
        })
        .await?;
        engine.flush().await;
        Ok(Rig { world, engine })
    }

    /// Runs `commands` commands on `concurrency` callers and reports what was committed.
    async fn measure<F, Fut>(
        &self,
        title: String,
        commands: usize,
        concurrency: usize,
        latencies: Latencies,
        worker: F,
    ) -> anyhow::Result<Report>
    where
        F: Fn(usize) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + 'static,
    {
        let mut conn = self.world.conn();
        let mark = event_mark(&mut conn)?;
        let wall = run_workers(concurrency, worker).await?;
        let events = events_since(&mut conn, mark)?;
        Ok(Report { title, commands, wall, events, latencies, note: None })
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.engine.stop();
    }
}

async fn open(options: &Options) -> anyhow::Result<Report> {
    let rig = Rig::start(options, options.agents, LARGE_CAPACITY, 0).await?;
    let tickets = Tickets::new(options.conversations);
    let latencies = Latencies::new(&["open_conversation"]);
    let title = format!(
        "open: {} open_conversation, {} callers, {} free agents, pool {}",
        options.conversations, options.concurrency, options.agents, options.pool
    );
    let service = rig.world.service;
    rig.measure(title, options.conversations, options.concurrency, latencies.clone(), |_| {
        let (engine, tickets, latencies) = (rig.engine.clone(), tickets.clone(), latencies.clone());
        async move {
            while let Some(i) = tickets.take() {
                let started = Instant::now();
                engine.open_conversation(NewConversation::new(service, CHANNEL, customer(i))).await?;
                latencies.record(0, started.elapsed());
            }
            Ok(())
        }
    })
    .await
}

async fn arrive(options: &Options) -> anyhow::Result<Report> {
    let rig = Rig::start(options, options.agents, LARGE_CAPACITY, 0).await?;
    // The rows exist beforehand (one bulk insert, not timed): only the engine's own path is timed.
    let ids = Rc::new(rig.world.store_queued(CHANNEL, options.conversations)?);
    let tickets = Tickets::new(ids.len());
    let latencies = Latencies::new(&["execute(Arrive)", "conclude"]);
    let title = format!(
        "arrive: {} x (Command::Arrive of a stored row, conclude by its agent), {} callers, {} free agents, pool {}",
        options.conversations, options.concurrency, options.agents, options.pool
    );
    let service = rig.world.service;
    rig.measure(title, options.conversations * 2, options.concurrency, latencies.clone(), |_| {
        let (engine, tickets, latencies, ids) = (rig.engine.clone(), tickets.clone(), latencies.clone(), ids.clone());
        async move {
            while let Some(i) = tickets.take() {
                let id = ids[i];
                let started = Instant::now();
                let facts = ConversationFacts::arriving(id, service, CHANNEL, 0, engine.clock().now());
                engine.execute(Command::Arrive { conversation: facts }).await?;
                latencies.record(0, started.elapsed());
                let owner = engine.conversation(id).await.and_then(|c| c.owner).context("assigned on arrival")?;
                let started = Instant::now();
                engine.conclude(By::Agent(owner), id, None).await?;
                latencies.record(1, started.elapsed());
            }
            Ok(())
        }
    })
    .await
}

async fn cycle(options: &Options) -> anyhow::Result<Report> {
    let rig = Rig::start(options, options.agents, LARGE_CAPACITY, 0).await?;
    let tickets = Tickets::new(options.conversations);
    let latencies = Latencies::new(&["open_conversation", "conclude"]);
    let title = format!(
        "cycle: {} x (open_conversation, conclude by its agent), {} callers, {} free agents, pool {}",
        options.conversations, options.concurrency, options.agents, options.pool
    );
    let service = rig.world.service;
    rig.measure(title, options.conversations * 2, options.concurrency, latencies.clone(), |_| {
        let (engine, tickets, latencies) = (rig.engine.clone(), tickets.clone(), latencies.clone());
        async move {
            while let Some(i) = tickets.take() {
                let started = Instant::now();
                let id = engine.open_conversation(NewConversation::new(service, CHANNEL, customer(i))).await?;
                latencies.record(0, started.elapsed());
                let owner = engine.conversation(id).await.and_then(|c| c.owner).context("assigned on arrival")?;
                let started = Instant::now();
                engine.conclude(By::Agent(owner), id, None).await?;
                latencies.record(1, started.elapsed());
            }
            Ok(())
        }
    })
    .await
}

async fn saturated(options: &Options) -> anyhow::Result<Report> {
    const CAPACITY: i32 = 3;
    let agents = options.saturated_agents.max(1);
    let in_service = agents * CAPACITY as usize;
    let rig = Rig::start(options, agents, CAPACITY, in_service + options.backlog).await?;
    let waiting = rig.engine.waiting(rig.world.service).await.len();
    if waiting != options.backlog {
        bail!("expected {} waiting after the agents logged in, found {waiting}", options.backlog);
    }
    // Each caller speaks for its own agents, so two callers never conclude the same conversation.
    let concurrency = options.concurrency.min(agents);
    let tickets = Tickets::new(options.cycles);
    let latencies = Latencies::new(&["conclude (+ assign from queue)", "open_conversation (queued)"]);
    let title = format!(
        "saturated: {} x (conclude, open_conversation), {agents} agents full at capacity {CAPACITY}, {} waiting, \
         {concurrency} callers, pool {}",
        options.cycles, options.backlog, options.pool
    );
    let service = rig.world.service;
    let all_agents = Rc::new(rig.world.agents.clone());
    let report = rig
        .measure(title, options.cycles * 2, concurrency, latencies.clone(), |w| {
            let own: Vec<AgentId> = all_agents.iter().skip(w).step_by(concurrency).copied().collect();
            let (engine, tickets, latencies) = (rig.engine.clone(), tickets.clone(), latencies.clone());
            async move {
                let mut turn = 0;
                while let Some(i) = tickets.take() {
                    let agent = own[turn % own.len()];
                    turn += 1;
                    let snapshot = engine.agent(agent).await.context("a logged-in agent")?;
                    let conversation = snapshot.conversations.first().context("a full agent owns conversations")?.id;
                    let started = Instant::now();
                    engine.conclude(By::Agent(agent), conversation, None).await?;
                    latencies.record(0, started.elapsed());
                    let started = Instant::now();
                    engine.open_conversation(NewConversation::new(service, CHANNEL, customer(i))).await?;
                    latencies.record(1, started.elapsed());
                }
                Ok(())
            }
        })
        .await?;
    let waiting = rig.engine.waiting(rig.world.service).await.len();
    Ok(Report { note: Some(format!("{waiting} conversations waiting at the end")), ..report })
}

/// How a customer message is stored: through `Engine::ingest` (the grouped writer), or the
/// per-message way (`store_inbound` in a transaction of its own, then the engine command), as
/// `Engine::ingest` did before the group commit.
#[derive(Debug, Clone, Copy)]
enum IngestPath {
    Grouped,
    PerMessage,
}

async fn ingest(options: &Options) -> anyhow::Result<Vec<Report>> {
    let mut reports = Vec::new();
    for path in [IngestPath::PerMessage, IngestPath::Grouped] {
        for into_open in [false, true] {
            reports.push(ingest_one(options, path, into_open).await?);
        }
    }
    Ok(reports)
}

async fn ingest_one(options: &Options, path: IngestPath, into_open: bool) -> anyhow::Result<Report> {
    let rig = Rig::start(options, options.agents, LARGE_CAPACITY, 0).await?;
    let pool = build_pool(
        rig.world.db.url(),
        &PoolOptions { max_size: options.pool.max(2), connection_timeout: Duration::from_secs(30) },
    );
    let service = rig.world.service;
    let addresses = options.open_addresses.max(1);
    if into_open {
        // The conversations exist beforehand (not timed).
        let tickets = Tickets::new(addresses);
        run_workers(options.concurrency, |_| {
            let (engine, tickets) = (rig.engine.clone(), tickets.clone());
            async move {
                while let Some(i) = tickets.take() {
                    engine.ingest(inbound(service, customer(i), format!("wamid.open-{i}")), Default::default()).await?;
                }
                Ok(())
            }
        })
        .await?;
        rig.engine.flush().await;
    }
    let tickets = Tickets::new(options.messages);
    let latencies = Latencies::new(&["ingest"]);
    let title = format!(
        "ingest ({path:?}): {} messages {}, {} callers, {} free agents, pool {}",
        options.messages,
        if into_open { format!("into {addresses} open conversations") } else { "from new addresses".into() },
        options.concurrency,
        options.agents,
        options.pool
    );
    let report = rig
        .measure(title, options.messages, options.concurrency, latencies.clone(), |_| {
            let (engine, tickets, latencies, pool) =
                (rig.engine.clone(), tickets.clone(), latencies.clone(), pool.clone());
            async move {
                while let Some(i) = tickets.take() {
                    let address = if into_open { customer(i % addresses) } else { customer(i) };
                    let m = inbound(service, address, format!("wamid.{i}"));
                    let started = Instant::now();
                    match path {
                        IngestPath::Grouped => {
                            engine.ingest(m, Default::default()).await?;
                        }
                        IngestPath::PerMessage => per_message(&engine, &pool, m).await?,
                    }
                    latencies.record(0, started.elapsed());
                }
                Ok(())
            }
        })
        .await?;
    let mut conn = rig.world.conn();
    let stored: i64 = {
        use diesel::prelude::*;
        schema::schema::messages::table.count().get_result(&mut conn)?
    };
    Ok(Report { note: Some(format!("{stored} messages stored in all")), ..report })
}

/// The ingest as it was before the group commit: one transaction per message, then the command.
async fn per_message(engine: &Engine, pool: &schema::PgPool, m: InboundMessage) -> anyhow::Result<()> {
    let now = engine.clock().now();
    let pool = pool.clone();
    let (ingested, _, opened) = tokio::task::spawn_blocking(move || -> Result<_, schema::StoreError> {
        let mut conn = pool.get()?;
        store_inbound(&mut conn, &m, Opening::default(), now, &engine::ingest::NoExtras)
    })
    .await??;
    match (ingested, opened) {
        (_, Some(row)) => {
            let facts = ConversationFacts::arriving(row.id, row.service_id, row.channel, row.priority, row.arrived_at);
            engine.execute(Command::Arrive { conversation: facts }).await?;
        }
        (Ingested::Stored { conversation, .. }, None) => {
            engine.execute(Command::CustomerMessage { conversation, at: now }).await?;
        }
        (Ingested::Duplicate, None) => {}
    }
    Ok(())
}

fn inbound(service: schema::ServiceId, address: String, provider_id: String) -> InboundMessage {
    InboundMessage {
        service,
        channel: CHANNEL,
        address,
        customer_name: None,
        customer_id: None,
        provider_message_id: Some(provider_id),
        kind: MessageKind::Text,
        body: Some("Olá, preciso de ajuda".into()),
        payload: serde_json::json!({}),
        sent_at: None,
        subject: None,
    }
}

fn customer(i: usize) -> String {
    format!("+55119{i:08}")
}

/// Hands out the numbers `0..total` to the callers (they all run on this thread).
#[derive(Clone)]
struct Tickets {
    next: Rc<Cell<usize>>,
    total: usize,
}

impl Tickets {
    fn new(total: usize) -> Self {
        Self { next: Rc::new(Cell::new(0)), total }
    }

    fn take(&self) -> Option<usize> {
        let i = self.next.get();
        (i < self.total).then(|| {
            self.next.set(i + 1);
            i
        })
    }
}

/// One kind of command and its latencies (µs).
type Named = (&'static str, Histogram<u64>);

/// Latency histograms per kind of command, shared by the callers of one run.
#[derive(Clone)]
struct Latencies(Rc<RefCell<Vec<Named>>>);

impl Latencies {
    fn new(names: &[&'static str]) -> Self {
        // 1 µs to 10 min at 3 significant digits: the bounds are valid constants.
        let histograms =
            names.iter().map(|n| (*n, Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds"))).collect();
        Self(Rc::new(RefCell::new(histograms)))
    }

    fn record(&self, which: usize, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        self.0.borrow_mut()[which].1.saturating_record(micros);
    }
}

/// Starts `concurrency` callers on this thread and waits for all; returns the wall time.
async fn run_workers<F, Fut>(concurrency: usize, worker: F) -> anyhow::Result<Duration>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + 'static,
{
    let started = Instant::now();
    let handles: Vec<_> = (0..concurrency).map(|w| actix_rt::spawn(worker(w))).collect();
    for handle in handles {
        handle.await??;
    }
    Ok(started.elapsed())
}

struct Report {
    title: String,
    commands: usize,
    wall: Duration,
    events: EventsSince,
    latencies: Latencies,
    note: Option<String>,
}

impl Report {
    fn print(&self) {
        let secs = self.wall.as_secs_f64();
        let per_s = |n: f64| if secs > 0.0 { n / secs } else { 0.0 };
        println!();
        println!("== {}", self.title);
        println!(
            "   {} events committed in {secs:.2} s = {:.0} events/s ({:.0} commands/s)",
            self.events.events,
            per_s(self.events.events as f64),
            per_s(self.commands as f64),
        );
        let per_tx = if self.events.transactions > 0 {
            self.events.events as f64 / self.events.transactions as f64
        } else {
            0.0
        };
        println!(
            "   {} journal transactions ({per_tx:.1} events each, {:.0} commits/s)",
            self.events.transactions,
            per_s(self.events.transactions as f64)
        );
        println!(
            "   {:<34} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "latency (ms)", "p50", "p90", "p99", "p99.9", "max", "n"
        );
        for (name, h) in self.latencies.0.borrow().iter() {
            let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
            println!(
                "   {name:<34} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8}",
                ms(0.5),
                ms(0.9),
                ms(0.99),
                ms(0.999),
                h.max() as f64 / 1000.0,
                h.len()
            );
        }
        if let Some(note) = &self.note {
            println!("   ({note})");
        }
    }
}
