//! `omniroute-load`: the load harness. Drives an Omniroute server (one it starts on a
//! fresh database, or one already running) through its public interfaces only, and reports
//! latency percentiles, throughput, CPU, memory and correctness counters as a table and as JSON.
//!
//!     scripts/pg.sh with bench target/release/omniroute-load --scenario smoke
//!     scripts/pg.sh with bench target/release/omniroute-load --scenario steady --agents 200 --duration 30 --json target/load/steady.json
//!     target/release/omniroute-load --url http://127.0.0.1:8080 --admin admin:password --scenario smoke
//!     scripts/pg.sh with bench target/release/omniroute-load --target peer --scenario smoke
//!     scripts/pg.sh with bench target/release/omniroute-load --compare --scenario steady --agents 100 --duration 30
//!
//! `--target peer` starts the pg-boss + ws peer (`node benches/peer/server.js`) instead;
//! `--compare` runs Omniroute, peer, peer, Omniroute (ABBA), each on a fresh database, and reports
//! the ratios.
//!
//! Method and figures: docs/performance.md, sections "Load harness" and "Peer: pg-boss + ws".

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use benches::load::target::ServerCommand;
use benches::load::{self, Config, Scenario, Target, compare};

/// jemalloc, as the server has: the harness allocates and frees a little for every message it
/// sends and reads, and glibc's allocator was a tenth of its time.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
use clap::Parser;

/// Which server implementation is under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Implementation {
    /// Omniroute.
    Omniroute,
    /// The pg-boss + ws peer (`node <peer-dir>/server.js`).
    Peer,
}

#[derive(Parser, Debug)]
#[command(name = "omniroute-load", about = "Load harness: simulated agents and customers against a running Omniroute")]
struct Args {
    /// The scenario (its defaults can be overridden by the flags below).
    #[arg(long, value_enum, default_value = "smoke")]
    scenario: Scenario,
    /// Which implementation is under load.
    #[arg(long, value_enum, default_value = "omniroute")]
    target: Implementation,
    /// Run Omniroute, the peer, the peer, Omniroute (ABBA), each on a fresh database, and report
    /// the ratios (spawn mode only; --target is ignored).
    #[arg(long)]
    compare: bool,
    /// The peer's directory (its server.js; `npm ci` runs there when node_modules is missing).
    #[arg(long, default_value = "benches/peer")]
    peer_dir: PathBuf,
    /// A server already running (http://host:port); without it the harness starts one.
    #[arg(long)]
    url: Option<String>,
    /// Admin credentials of the --url server, `login:password`.
    #[arg(long, env = "LOAD_ADMIN")]
    admin: Option<String>,
    /// The server binary to start (spawn mode).
    #[arg(long, default_value = "target/release/omniroute")]
    server_bin: PathBuf,
    /// PostgreSQL to create the fresh database in (spawn mode); a fresh `load_*` database is
    /// created next to the one named and dropped afterwards.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// The cluster's data directory, to read PostgreSQL's CPU time from /proc.
    #[arg(long, default_value = ".omniroute/bench/data")]
    pg_data: PathBuf,
    /// Keep the run's database.
    #[arg(long)]
    keep_db: bool,
    #[arg(long)]
    agents: Option<usize>,
    /// New conversations per second.
    #[arg(long)]
    conversations: Option<f64>,
    /// Customer messages per second into open conversations.
    #[arg(long)]
    messages: Option<f64>,
    /// Seconds of load.
    #[arg(long)]
    duration: Option<u64>,
    /// Seconds an agent keeps a conversation.
    #[arg(long)]
    handling: Option<u64>,
    /// Mean milliseconds before each agent reply.
    #[arg(long)]
    think_ms: Option<u64>,
    /// Each agent's capacity per channel.
    #[arg(long)]
    capacity: Option<u32>,
    /// Fraction of agents that disconnect and reconnect each minute.
    #[arg(long)]
    churn: Option<f64>,
    /// Fraction of agents that pause each minute.
    #[arg(long)]
    pauses: Option<f64>,
    /// No website visitors (for a server without `/ws/webchat`, such as the peer).
    #[arg(long)]
    no_webchat: bool,
    /// Direct assignment on every service (no offer/accept on Telegram).
    #[arg(long)]
    no_offers: bool,
    /// Backlog scenario: conversations waiting before the agents connect.
    #[arg(long)]
    backlog: Option<usize>,
    /// Conversations parked (open, waiting, timers armed) in a service no agent serves before
    /// the agents connect: memory per open conversation (idle) and the restart's 100,000.
    #[arg(long)]
    parked: Option<usize>,
    /// The services' customer inactivity time in minutes (R10).
    #[arg(long)]
    inactivity_minutes: Option<i32>,
    /// Restart scenario: seconds into the load at which the server gets `kill -9`.
    #[arg(long)]
    kill_at: Option<u64>,
    /// Ingest ceiling: the message rates to try, e.g. `500,1000,2000` (each for --duration).
    #[arg(long, value_delimiter = ',')]
    rates: Option<Vec<f64>>,
    /// Concurrent agent creations/sign-ins (each an argon2id hash on the server).
    #[arg(long)]
    login_concurrency: Option<usize>,
    /// Write the report as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write every customer message seen live on a desk here, one CSV line each (when it was
    /// meant to go, its channel, whether it is the customer's first, ack and screen latency in µs;
    /// with --compare, the last run's).
    #[arg(long)]
    samples: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let target = match (&args.url, args.target) {
        (Some(url), _) => {
            let admin = args.admin.clone().context("--url needs --admin login:password")?;
            let (login, password) = admin.split_once(':').context("--admin is login:password")?;
            Target::Url { base: url.clone(), admin_login: login.into(), admin_password: password.into() }
        }
        (None, implementation) => Target::Spawn {
            server: match implementation {
                Implementation::Omniroute => ServerCommand::omniroute(&args.server_bin),
                Implementation::Peer => ServerCommand::peer(&args.peer_dir)?,
            },
            database_url: args
                .database_url
                .clone()
                .context("spawn mode needs DATABASE_URL (scripts/pg.sh with bench …)")?,
            pg_data: Some(args.pg_data.clone()),
            keep_db: args.keep_db,
        },
    };
    let mut cfg = Config::preset(args.scenario, target);
    if let Some(v) = args.agents {
        cfg.agents = v;
    }
    if let Some(v) = args.conversations {
        cfg.conversations_per_s = v;
    }
    if let Some(v) = args.messages {
        cfg.messages_per_s = v;
    }
    if let Some(v) = args.duration {
        cfg.duration = Duration::from_secs(v);
    }
    if let Some(v) = args.handling {
        cfg.handling = Duration::from_secs(v);
    }
    if let Some(v) = args.think_ms {
        cfg.think = Duration::from_millis(v);
    }
    if let Some(v) = args.capacity {
        cfg.capacity = v;
    }
    if let Some(v) = args.churn {
        cfg.churn_per_min = v;
    }
    if let Some(v) = args.pauses {
        cfg.pause_per_min = v;
    }
    if let Some(v) = args.login_concurrency {
        cfg.login_concurrency = v;
    }
    if let Some(v) = args.backlog {
        cfg.backlog = v;
    }
    if let Some(v) = args.parked {
        cfg.parked = v;
    }
    if let Some(v) = args.inactivity_minutes {
        cfg.inactivity_minutes = Some(v);
    }
    if let Some(v) = args.kill_at {
        cfg.kill_at = Some(Duration::from_secs(v));
    }
    if let Some(v) = args.rates {
        cfg.ceiling_rates = v;
    }
    if cfg.kill_at.is_some() && args.url.is_some() {
        bail!("a restart needs a server the harness started (no --url)");
    }
    cfg.offers = !args.no_offers;
    // The peer has no webchat: it and any comparison with it run WhatsApp and Telegram only, so
    // both sides get the same load.
    cfg.webchat = !args.no_webchat && !args.compare && args.target != Implementation::Peer;
    cfg.progress = !args.quiet;
    cfg.samples = args.samples.clone();
    raise_fd_limit_hint(cfg.agents);

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if args.compare {
        let Target::Spawn { database_url, pg_data, keep_db, .. } = cfg.target.clone() else {
            bail!("--compare starts both servers itself: drop --url");
        };
        let omniroute = ServerCommand::omniroute(&args.server_bin);
        let peer = ServerCommand::peer(&args.peer_dir)?;
        let comparison = runtime.block_on(compare::run(cfg, omniroute, peer, database_url, pg_data, keep_db))?;
        print!("{}", comparison.table());
        if let Some(path) = &args.json {
            write_json(path, &comparison)?;
        }
        if args.scenario == Scenario::Smoke && !comparison.all_correct {
            bail!("a correctness counter is not zero");
        }
        return Ok(());
    }
    let report = runtime.block_on(load::run(cfg))?;
    print!("{}", report.table());
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    if args.scenario == Scenario::Smoke && !report.correctness.all_zero() {
        bail!("a correctness counter is not zero");
    }
    Ok(())
}

fn write_json(path: &std::path::Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(value)?)?;
    println!("report written to {}", path.display());
    Ok(())
}

/// Thousands of agents need thousands of sockets on each side.
fn raise_fd_limit_hint(agents: usize) {
    if agents > 400 {
        eprintln!(
            "note: {agents} agents need about {} open files in the harness and in the server (ulimit -n)",
            agents * 2 + 200
        );
    }
}
