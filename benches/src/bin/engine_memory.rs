//! Memory per open conversation (target: under 2 KB, its armed timers included) and the
//! time a restart takes to have 100,000 open conversations ready (target: under 3 s, R15).
//!
//! A real `Engine` (system clock, actors, journal) over a fresh database on the server of
//! `DATABASE_URL`, as `engine_throughput` sets one up. One WhatsApp service with the default
//! timeouts (30 min inactivity, 48 h abandonment), so every open conversation has a timer armed:
//! its inactivity timer once assigned, its abandonment timer while it waits. The agents (1,000 of
//! capacity 10 by default) are available, so 10,000 conversations are assigned and the rest wait.
//!
//! Memory is counted exactly by this binary's global allocator (bytes live in the heap, whoever
//! allocated them), and read as the process's RSS beside it:
//!
//! 1. engine started, agents available, nothing open: the baseline;
//! 2. the conversations' rows are stored in bulk (not counted: the rows live in PostgreSQL), then
//!    each arrives through the engine (`Command::Arrive`, committed through the journal), until
//!    every one holds its timer: (live bytes now − baseline) ÷ conversations is the figure;
//! 3. the engine stops and a new one starts on the same database: the restore (R15) is timed,
//!    until every conversation is in the book, has its actor and its timer armed.
//!
//! Run it through `make bench`, or `scripts/pg.sh with bench cargo run --release -p
//! omniroute-benches --bin engine_memory -- --help`.

use std::alloc::System;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use benches::store::BenchDb;
use clap::Parser;
use engine::{Clock, Command, ConversationFacts, Engine, PresenceRequest};
use schema::{Channel, PoolOptions, build_pool};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

/// Counts what the heap holds (the system allocator does the work).
#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The heap at one moment: exact live bytes and blocks, and the process's resident set.
#[derive(Debug, Clone, Copy)]
struct Heap {
    bytes: isize,
    blocks: isize,
    rss: Option<u64>,
}

impl Heap {
    fn now() -> Heap {
        let s = ALLOCATOR.stats();
        let signed = |n: usize| isize::try_from(n).unwrap_or(isize::MAX);
        Heap {
            // A realloc's growth counts in `bytes_allocated`, its shrinking in `bytes_deallocated`.
            bytes: signed(s.bytes_allocated) - signed(s.bytes_deallocated),
            blocks: signed(s.allocations) - signed(s.deallocations),
            rss: rss_bytes(),
        }
    }

    /// Bytes, blocks and RSS per unit grown from `base` to `self`.
    fn per(&self, base: &Heap, n: usize) -> String {
        let n = n.max(1) as f64;
        let rss = match (self.rss, base.rss) {
            (Some(a), Some(b)) => format!("{:.0} B of RSS", (a as f64 - b as f64) / n),
            _ => "RSS unknown".to_owned(),
        };
        format!(
            "{:.0} B in {:.1} blocks on the heap ({rss})",
            (self.bytes - base.bytes) as f64 / n,
            (self.blocks - base.blocks) as f64 / n
        )
    }

    fn show(&self) -> String {
        let rss = self.rss.map_or("?".to_owned(), |r| format!("{:.1} MiB", r as f64 / 1_048_576.0));
        format!("heap {:.1} MiB in {} blocks, RSS {rss}", self.bytes as f64 / 1_048_576.0, self.blocks)
    }
}

/// VmRSS of this process, from /proc (Linux).
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Memory per open conversation and restore time.
#[derive(Debug, Parser)]
#[command(name = "engine_memory")]
struct Options {
    /// Open conversations.
    #[arg(long, default_value_t = 100_000)]
    conversations: usize,
    /// Agents, available; each takes up to `--capacity` conversations, the rest wait.
    #[arg(long, default_value_t = 1_000)]
    agents: usize,
    /// Capacity of each agent on the service's channel.
    #[arg(long, default_value_t = 10)]
    capacity: i32,
    /// Callers with an `Arrive` in flight at once.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Restarts to time (each stops the engine and restores a new one from the database).
    #[arg(long, default_value_t = 3)]
    restarts: usize,
}

const CHANNEL: Channel = Channel::Whatsapp;

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    if options.concurrency == 0 || options.conversations == 0 {
        bail!("--concurrency and --conversations must be at least 1");
    }
    std::env::var("DATABASE_URL")
        .context("DATABASE_URL must point at a PostgreSQL server (`make bench` starts a durable one)")?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "engine_memory: {cores} cores; {} conversations, {} agents of capacity {} ({} assigned, {} waiting)",
        options.conversations,
        options.agents,
        options.capacity,
        assigned(&options),
        options.conversations - assigned(&options)
    );
    actix_rt::System::new().block_on(run(options))
}

fn assigned(options: &Options) -> usize {
    (options.agents * usize::try_from(options.capacity.max(0)).unwrap_or(0)).min(options.conversations)
}

async fn run(options: Options) -> anyhow::Result<()> {
    let world = BenchDb::seed(CHANNEL, options.agents, options.capacity)?;
    let pool = build_pool(world.db.url(), &PoolOptions { max_size: 16, connection_timeout: Duration::from_secs(30) });

    // 1. The baseline: an engine with its agents available, nothing open.
    let engine = Engine::start(pool.clone(), Clock::System).await.context("start the engine")?;
    for agent in &world.agents {
        engine.set_presence(*agent, PresenceRequest::Available).await?;
    }
    engine.flush().await;
    let timers_before = engine.armed_timers().await;
    settle().await;
    let base = Heap::now();
    println!("baseline (engine, {} agents available, no conversation): {}", options.agents, base.show());

    // 2. The conversations arrive.
    let t = Instant::now();
    let ids = Rc::new(world.store_queued(CHANNEL, options.conversations)?);
    println!("{} rows stored in {:.1} s", ids.len(), t.elapsed().as_secs_f64());
    let t = Instant::now();
    let next = Rc::new(std::cell::Cell::new(0usize));
    let service = world.service;
    let callers: Vec<_> = (0..options.concurrency)
        .map(|_| {
            let (engine, ids, next) = (engine.clone(), ids.clone(), next.clone());
            actix_rt::spawn(async move {
                loop {
                    let i = next.get();
                    let Some(id) = ids.get(i) else { return Ok::<_, anyhow::Error>(()) };
                    next.set(i + 1);
                    let facts = ConversationFacts::arriving(*id, service, CHANNEL, 0, engine.clock().now());
                    engine.execute(Command::Arrive { conversation: facts }).await?;
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await??;
    }
    engine.flush().await;
    let expected = timers_before + options.conversations;
    wait_for_timers(&engine, expected).await?;
    println!(
        "{} conversations arrived in {:.1} s ({:.0}/s)",
        ids.len(),
        t.elapsed().as_secs_f64(),
        ids.len() as f64 / t.elapsed().as_secs_f64()
    );
    let waiting = engine.waiting(service).await.len();
    settle().await;
    let open = Heap::now();
    println!("open: {} ({waiting} waiting)", open.show());
    println!("PER OPEN CONVERSATION: {}", open.per(&base, options.conversations));
    drop(ids);

    // 3. Restarts: the restore of R15, timed until everything is in place.
    engine.stop();
    drop(engine);
    released(&base).await;
    let stopped = Heap::now();
    println!("engine stopped: {}", stopped.show());
    let mut times = Vec::new();
    for round in 1..=options.restarts {
        let t = Instant::now();
        let load_pool = pool.clone();
        let now = chrono::Utc::now();
        let restored = tokio_blocking(move || engine::restore::load(&load_pool, now)).await??;
        let read = t.elapsed();
        drop(restored);
        let t = Instant::now();
        let engine = Engine::start(pool.clone(), Clock::System).await.context("restart the engine")?;
        let started = t.elapsed();
        wait_for_timers(&engine, options.conversations).await?;
        let ready = t.elapsed();
        settle().await;
        let after = Heap::now();
        println!(
            "restart {round}: ready in {:.2} s (Engine::start returned after {:.2} s; restore::load alone {:.2} s); \
             per conversation after restore: {}",
            ready.as_secs_f64(),
            started.as_secs_f64(),
            read.as_secs_f64(),
            after.per(&stopped, options.conversations)
        );
        times.push(ready.as_secs_f64());
        engine.stop();
        drop(engine);
        released(&base).await;
    }
    if !times.is_empty() {
        times.sort_by(f64::total_cmp);
        println!(
            "RESTART WITH {} OPEN CONVERSATIONS READY: median {:.2} s (min {:.2}, max {:.2})",
            options.conversations,
            times[times.len() / 2],
            times[0],
            times[times.len() - 1]
        );
    }
    Ok(())
}

/// Runs `f` on the blocking pool (the restore's reads are blocking diesel calls).
async fn tokio_blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
    actix_rt::task::spawn_blocking(f).await.context("the blocking task panicked")
}

/// Until the engine holds at least `n` armed timers (its timer actor has handled every `SetTimer`).
async fn wait_for_timers(engine: &Engine, n: usize) -> anyhow::Result<()> {
    let until = Instant::now() + Duration::from_secs(600);
    while engine.armed_timers().await < n {
        if Instant::now() > until {
            bail!("fewer than {n} timers armed after 10 minutes");
        }
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Waits until a stopped engine's thread has dropped its actors: the heap is back within 10,000
/// blocks of `base` (at most 60 s; on a busy machine that thread can take seconds).
async fn released(base: &Heap) {
    let until = Instant::now() + Duration::from_secs(60);
    while Heap::now().blocks > base.blocks + 10_000 {
        if Instant::now() > until {
            println!("WARNING: the stopped engine's memory was not released within 60 s");
            return;
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    settle().await;
}

/// Lets in-flight messages finish and a stopped engine's thread drop its actors before the heap
/// is read: waits until the count of live blocks holds still for half a second (at most 60 s).
async fn settle() {
    let until = Instant::now() + Duration::from_secs(60);
    let mut last = Heap::now().blocks;
    loop {
        actix_rt::time::sleep(Duration::from_millis(500)).await;
        let now = Heap::now().blocks;
        if (now - last).abs() < 64 || Instant::now() > until {
            return;
        }
        last = now;
    }
}
