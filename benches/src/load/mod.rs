//! The load harness (`omniroute-load`): drives a running server only through its
//! public interfaces — simulated agents over `/ws/agent` and the REST API, simulated customers
//! through signed provider webhooks, and a fake provider for outbound sends — and reports
//! latency percentiles, throughput, CPU and memory, and correctness counters that must read zero.
//!
//! The server is either started by the harness on a fresh database ([`Target::Spawn`]) or one
//! already running ([`Target::Url`]). Everything the harness does to it goes through SPEC A, so a
//! second server speaking the same subset (the pg-boss peer, `benches/peer/`) is
//! measured by the same code: started like Omniroute ([`target::ServerCommand::peer`]), and side
//! by side with it in [`compare`].
//!
//! Method and figures: docs/performance.md, section "Load harness".

pub mod agent;
pub mod api;
pub mod check;
pub mod compare;
pub mod customer;
pub mod post;
pub mod provider;
pub mod stats;
pub mod target;
pub mod webchat;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use agent::{Behaviour, Control, Identity, Observations, Shared};
use api::Api;
use check::Correctness;
use customer::{Channels, Customers, Sender, TG_SECRET, WA_APP_SECRET, WA_PHONE_ID};
use stats::{LatencySummary, Stats};
use target::{ADMIN_LOGIN, ADMIN_PASSWORD, Postgres, ProcSample, Spawned, sample_pid};
use webchat::Visitors;

/// Which server to load.
#[derive(Debug, Clone)]
pub enum Target {
    /// Start `server` (Omniroute or the peer) on a fresh database next to `database_url` (created
    /// and dropped by the harness). `pg_data` is the cluster's data directory, for PostgreSQL's CPU.
    Spawn { server: target::ServerCommand, database_url: String, pg_data: Option<PathBuf>, keep_db: bool },
    /// A server already running at `base` (`http://host:port`), with an admin's credentials.
    Url { base: String, admin_login: String, admin_password: String },
}

/// The load scenarios (docs/performance.md, "Load harness").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// Seconds: a few agents, a few conversations; fails unless every counter reads zero.
    Smoke,
    /// 1,000 agents, 50 new conversations/s, 1,000 messages/s (sizes can be overridden).
    Steady,
    /// Agents signed in, connected and available, no traffic: memory per idle connection.
    Idle,
    /// 10,000 conversations wait before any agent is connected; then 500 agents connect at once:
    /// drain time and order.
    Backlog,
    /// Steady load while 10% of the agents disconnect and reconnect each minute.
    Churn,
    /// Steps of rising message rate until p99 (acknowledgement or message → screen) passes
    /// 100 ms or the server stops keeping up: the sustained ingest ceiling.
    IngestCeiling,
    /// 100,000 open conversations with armed timers, traffic flowing, then `kill -9`: time to
    /// ready, zero loss (webhooks retried as providers do), every timer firing at its deadline.
    Restart,
}

/// The harness's WebSocket client settings. tungstenite zeroes its whole read buffer before each
/// read (128 KiB by default): with thousands of small frames a second that was the harness's
/// largest single cost. The frames here are a few hundred bytes; a larger one takes more reads.
pub(crate) fn ws_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4096)
}

/// The p99 (ms) past which the ingest-ceiling scenario stops raising the rate.
pub const CEILING_P99_MS: f64 = 100.0;

/// One run's settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub target: Target,
    pub scenario: Scenario,
    pub agents: usize,
    /// New conversations per second (Poisson).
    pub conversations_per_s: f64,
    /// Customer messages per second into open conversations (Poisson), besides first messages.
    pub messages_per_s: f64,
    pub duration: Duration,
    /// Mean time before each agent reply (exponential).
    pub think: Duration,
    /// How long agents keep a conversation.
    pub handling: Duration,
    /// Each agent's capacity on WhatsApp and on Telegram.
    pub capacity: u32,
    /// Fraction of agents that disconnect and reconnect each minute.
    pub churn_per_min: f64,
    /// Fraction of agents that pause (for `pause`) each minute.
    pub pause_per_min: f64,
    pub pause: Duration,
    /// Offer/accept (R7) on the Telegram service; WhatsApp always assigns directly.
    pub offers: bool,
    /// How long to wait after the load for every acknowledged message to reach an agent.
    pub drain: Duration,
    /// Concurrent agent creations and sign-ins (each is an argon2id hash on the server).
    pub login_concurrency: usize,
    /// Backlog: conversations opened before the agents connect.
    pub backlog: usize,
    /// Conversations opened (before the agents connect) in a service no agent serves: they stay
    /// open and waiting, timers armed — memory per open conversation; restart's 100,000.
    pub parked: usize,
    /// The services' customer inactivity time (R10); the server's default when `None`.
    pub inactivity_minutes: Option<i32>,
    /// Restart: `kill -9` the server this far into the load, and start it again.
    pub kill_at: Option<Duration>,
    /// Ingest ceiling: the message rates tried, each for `duration`.
    pub ceiling_rates: Vec<f64>,
    /// Every third customer is a website visitor on `/ws/webchat` (a server without webchat,
    /// such as the peer, runs with this off).
    pub webchat: bool,
    pub progress: bool,
    /// Write every customer message seen live here (CSV: when it was meant to go, its channel,
    /// whether it is the customer's first, acknowledgement and screen latency).
    pub samples: Option<std::path::PathBuf>,
}

impl Config {
    /// The scenario's defaults (the sizes of the performance targets) against `target`.
    pub fn preset(scenario: Scenario, target: Target) -> Self {
        let base = Self {
            target,
            scenario,
            agents: 1000,
            conversations_per_s: 50.0,
            messages_per_s: 1000.0,
            duration: Duration::from_secs(60),
            think: Duration::from_secs(3),
            handling: Duration::from_secs(30),
            capacity: 5,
            churn_per_min: 0.0,
            pause_per_min: 0.05,
            pause: Duration::from_secs(5),
            offers: true,
            drain: Duration::from_secs(20),
            login_concurrency: 4,
            backlog: 0,
            parked: 0,
            inactivity_minutes: None,
            kill_at: None,
            ceiling_rates: Vec::new(),
            webchat: true,
            progress: true,
            samples: None,
        };
        match scenario {
            Scenario::Smoke => Self {
                agents: 20,
                conversations_per_s: 5.0,
                messages_per_s: 50.0,
                duration: Duration::from_secs(5),
                think: Duration::from_millis(500),
                handling: Duration::from_secs(3),
                pause_per_min: 1.0,
                pause: Duration::from_secs(1),
                churn_per_min: 0.5,
                drain: Duration::from_secs(15),
                ..base
            },
            Scenario::Steady => base,
            Scenario::Backlog => Self {
                agents: 500,
                backlog: 10_000,
                conversations_per_s: 0.0,
                messages_per_s: 0.0,
                duration: Duration::from_secs(0),
                handling: Duration::from_secs(5),
                think: Duration::from_secs(60),
                pause_per_min: 0.0,
                drain: Duration::from_secs(300),
                ..base
            },
            Scenario::Idle => Self {
                agents: 10_000,
                parked: 100_000,
                conversations_per_s: 0.0,
                messages_per_s: 0.0,
                duration: Duration::from_secs(5),
                pause_per_min: 0.0,
                ..base
            },
            Scenario::Churn => Self { churn_per_min: 0.10, ..base },
            Scenario::IngestCeiling => Self {
                agents: 200,
                duration: Duration::from_secs(10),
                think: Duration::from_secs(5),
                pause_per_min: 0.0,
                ceiling_rates: vec![500.0, 1000.0, 2000.0, 3000.0, 4000.0, 5000.0, 6000.0, 8000.0, 10_000.0, 12_000.0],
                ..base
            },
            Scenario::Restart => Self {
                agents: 200,
                parked: 100_000,
                conversations_per_s: 20.0,
                messages_per_s: 200.0,
                duration: Duration::from_secs(20),
                kill_at: Some(Duration::from_secs(10)),
                // Agents reply but keep their conversations: the inactivity timers armed before
                // the crash must fire after it.
                handling: Duration::from_secs(3600),
                inactivity_minutes: Some(1),
                pause_per_min: 0.0,
                drain: Duration::from_secs(60),
                ..base
            },
        }
    }
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: Scenario,
    pub server: String,
    pub agents: usize,
    pub target_conversations_per_s: f64,
    pub target_messages_per_s: f64,
    pub duration_s: f64,
    pub setup: Setup,
    pub latency: Latencies,
    pub throughput: Throughput,
    pub resources: Resources,
    pub counts: Counts,
    pub backlog: Option<BacklogReport>,
    pub parked: Option<ParkedReport>,
    pub restart: Option<RestartReport>,
    pub ceiling: Option<CeilingReport>,
    pub correctness: Correctness,
}

/// Conversations parked in a service no agent serves: open, waiting, timers armed.
#[derive(Debug, Clone, Serialize)]
pub struct ParkedReport {
    /// Acknowledged first messages, so open conversations.
    pub conversations: u64,
    pub fill_s: f64,
    pub rss_before_mb: Option<f64>,
    pub rss_after_mb: Option<f64>,
    /// Server RSS growth per open conversation (message stored, conversation routed and queued,
    /// its actor and abandonment timer armed).
    pub bytes_per_open_conversation: Option<f64>,
}

/// The restart scenario's figures.
#[derive(Debug, Clone, Serialize)]
pub struct RestartReport {
    /// Open conversations when the server was killed (parked + the customers' open ones).
    pub open_conversations_at_kill: u64,
    /// Seconds into the load when `kill -9` was sent.
    pub killed_at_s: f64,
    /// New process `exec` → serving (routing book rebuilt, timers re-armed, port bound).
    pub time_to_ready_s: f64,
    /// Kill → every agent connected and available again.
    pub agents_back_s: f64,
    /// Parked conversations the monitor shows waiting after the restart (must equal
    /// `conversations` of the parked report).
    pub parked_waiting_after: u64,
    /// Conversations agents held whose inactivity timer was checked after the restart.
    pub timers_checked: u64,
}

/// The ingest-ceiling scenario: one row per message rate tried.
#[derive(Debug, Clone, Serialize)]
pub struct CeilingReport {
    pub steps: Vec<CeilingStep>,
    /// The highest acknowledged rate of a step whose p99s stayed under 100 ms and that kept up
    /// (≥ 90% of the planned rate acknowledged).
    pub ceiling_messages_per_s: f64,
}

/// One step of the ingest ceiling.
#[derive(Debug, Clone, Serialize)]
pub struct CeilingStep {
    pub target_messages_per_s: f64,
    pub acked_per_s: f64,
    pub webhook_ack: LatencySummary,
    pub customer_message_to_agent_screen: LatencySummary,
    pub server_cpu_s: Option<f64>,
    pub postgres_cpu_s: Option<f64>,
    /// The harness's own CPU: it shares the machine, so a saturated harness shows here.
    pub harness_cpu_s: Option<f64>,
    pub kept_up: bool,
}

/// The backlog scenario's figures.
#[derive(Debug, Clone, Serialize)]
pub struct BacklogReport {
    pub waiting: u64,
    /// Filling the queues: first webhook → last acknowledgement.
    pub fill_s: f64,
    /// Agents start connecting → every waiting conversation offered or assigned.
    pub drain_s: f64,
    /// Offers/assignments of a conversation that arrived earlier than one already served on
    /// the same channel (R1: the queue is served in arrival order; all priorities are equal).
    pub out_of_order: u64,
    /// How far out of order at worst, in seconds of arrival time.
    pub worst_inversion_s: f64,
}

/// How long getting ready took.
#[derive(Debug, Clone, Serialize)]
pub struct Setup {
    /// Spawned server: exec → serving (includes migrations on the fresh database).
    pub server_start_s: Option<f64>,
    pub agents_created_s: f64,
    pub agents_signed_in_s: f64,
    /// All WebSockets open and every agent available (seen on the monitor).
    pub agents_connected_s: f64,
    /// The machine's speed just before the run: the median time of a fixed piece of work
    /// ([`cpu_probe_ms`]). Shared machines vary; two runs compare only at similar probes.
    pub cpu_probe_ms: f64,
}

/// Times a fixed piece of work on one core (SHA-256 over 128 MiB), three times, and answers the
/// median in milliseconds: lower is a faster machine at that moment. The shared 2-core machine of
/// docs/performance.md runs a fixed loop anywhere from 116 to 171 ms over a few hours, and climbs
/// measured at the slow end fail steps that climbs at the fast end hold.
pub fn cpu_probe_ms() -> f64 {
    use sha2::Digest as _;
    let block = vec![0x5au8; 64 * 1024];
    let mut times: Vec<f64> = (0..3)
        .map(|_| {
            let started = Instant::now();
            let mut hasher = sha2::Sha256::new();
            for _ in 0..2048 {
                hasher.update(&block);
            }
            std::hint::black_box(hasher.finalize());
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[1]
}

/// The latencies the performance targets are stated in.
#[derive(Debug, Clone, Serialize)]
pub struct Latencies {
    pub webhook_ack: LatencySummary,
    /// Webchat visitors: `message` frame → `ack` (committed).
    pub webchat_ack: LatencySummary,
    pub new_conversation_to_offer_or_assignment: LatencySummary,
    pub customer_message_to_agent_screen: LatencySummary,
    pub customer_message_to_history_on_assignment: LatencySummary,
    pub agent_send_to_provider: LatencySummary,
    pub agent_send_api: LatencySummary,
}

/// What got through.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub webhooks_acked_per_s: f64,
    pub conversations_per_s: f64,
    pub replies_per_s: f64,
}

/// CPU and memory (spawned server only; PostgreSQL when its data directory is known).
#[derive(Debug, Clone, Serialize)]
pub struct Resources {
    pub server_cpu_s: Option<f64>,
    pub server_cpu_s_per_1000_conversations: Option<f64>,
    pub postgres_cpu_s: Option<f64>,
    pub postgres_cpu_s_per_1000_conversations: Option<f64>,
    pub server_rss_before_agents_mb: Option<f64>,
    pub server_rss_agents_connected_mb: Option<f64>,
    pub server_rss_end_mb: Option<f64>,
    pub rss_per_idle_agent_connection_kb: Option<f64>,
    /// TCP connections the server held on its port when the RSS with the agents connected was
    /// read (the agents' WebSockets alone once the setup's pooled connections are closed).
    pub server_connections_at_measurement: Option<usize>,
    pub open_conversations_at_end: usize,
}

/// Raw counts.
#[derive(Debug, Clone, Serialize)]
pub struct Counts {
    pub webhooks_sent: u64,
    pub webhooks_acked: u64,
    pub webhooks_refused: u64,
    pub webhooks_failed: u64,
    pub conversations_started: u64,
    pub offers: u64,
    pub assignments: u64,
    pub concluded: u64,
    pub replies_sent: u64,
    pub replies_at_provider: u64,
    pub pauses: u64,
    pub reconnects: u64,
    pub agent_api_errors: u64,
    pub monitor_samples: u64,
    pub webhook_retries: u64,
    /// Webchat messages sent whose widget closed (its chat had ended) before an `ack`.
    pub webchat_unanswered: u64,
    /// Webchat messages not sent: the visitor's chat had ended and its widget had closed.
    pub webchat_gone: u64,
}

/// An exponentially distributed duration with the given mean (Poisson inter-arrival times).
pub fn exponential(mean: Duration) -> Duration {
    let u: f64 = rand::random::<f64>();
    mean.mul_f64(-(1.0 - u).ln())
}

static NEXT_REPLY: AtomicU64 = AtomicU64::new(1);

/// A fresh agent-reply number (its tag follows the reply to the provider).
pub fn next_reply() -> u64 {
    NEXT_REPLY.fetch_add(1, Ordering::Relaxed)
}

const AGENT_PASSWORD: &str = "load-agent-password";

/// Runs one scenario and answers its report. The caller decides what a non-zero counter means
/// (the binary exits non-zero for `smoke`).
pub async fn run(cfg: Config) -> anyhow::Result<Report> {
    let probe = cpu_probe_ms();
    let stats = Arc::new(Stats::default());
    if cfg.samples.is_some() {
        stats.keep_samples();
    }
    let (spawned, base, admin_login, admin_password, pg) = match &cfg.target {
        Target::Spawn { server, database_url, pg_data, keep_db } => {
            let s = Spawned::start(server, database_url, *keep_db).await?;
            let pg = pg_data.as_deref().and_then(Postgres::find);
            let base = s.base.clone();
            (Some(s), base, ADMIN_LOGIN.to_owned(), ADMIN_PASSWORD.to_owned(), pg)
        }
        Target::Url { base, admin_login, admin_password } => {
            (None, base.clone(), admin_login.clone(), admin_password.clone(), None)
        }
    };
    let result = drive(&cfg, stats, &base, &admin_login, &admin_password, spawned.as_ref(), pg.as_ref()).await;
    if let Some(s) = spawned {
        s.stop().await?;
    }
    result.map(|mut report| {
        report.setup.cpu_probe_ms = probe;
        report
    })
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    cfg: &Config,
    stats: Arc<Stats>,
    base: &str,
    admin_login: &str,
    admin_password: &str,
    spawned: Option<&Spawned>,
    pg: Option<&Postgres>,
) -> anyhow::Result<Report> {
    let api = Api::new(base)?;
    api.wait_ready(Duration::from_secs(30)).await?;
    let admin = api.login(admin_login, admin_password).await.context("admin sign-in")?;
    let provider = provider::start(stats.clone()).await?;
    let provider_base = format!("http://{provider}");

    // Services, a pause reason, agents: all through the admin API.
    let wa = api
        .expect(
            Method::POST,
            "/api/v1/admin/services",
            Some(&admin),
            Some(&json!({"name": "Load WhatsApp", "channel": "whatsapp", "auto_distribution": true,
                "provider": {"phone_number_id": WA_PHONE_ID, "app_secret": WA_APP_SECRET, "verify_token": "load-verify",
                             "access_token": "load-token", "api_base_url": provider_base},
                "inactivity_minutes": cfg.inactivity_minutes.unwrap_or(30)})),
            StatusCode::CREATED,
        )
        .await?;
    let telegram = |name: &str| {
        let mut body = json!({"name": name, "channel": "telegram", "auto_distribution": true,
            "provider": {"bot_token": "123456:LOAD", "secret_token": TG_SECRET, "api_base_url": provider_base}});
        if let Some(m) = cfg.inactivity_minutes {
            body["inactivity_minutes"] = json!(m);
        }
        body
    };
    let mut tg_body = telegram("Load Telegram");
    if cfg.offers {
        tg_body["offer_timeout_s"] = json!(30);
    }
    let tg =
        api.expect(Method::POST, "/api/v1/admin/services", Some(&admin), Some(&tg_body), StatusCode::CREATED).await?;
    let mut service_ids = vec![id_of(&wa)?, id_of(&tg)?];
    let webchat_service_id = if cfg.webchat {
        let mut body = json!({"name": "Load Webchat", "channel": "webchat", "auto_distribution": true,
            "provider": {"allowed_origins": ["*"]}});
        if let Some(m) = cfg.inactivity_minutes {
            body["inactivity_minutes"] = json!(m);
        }
        let id = id_of(
            &api.expect(Method::POST, "/api/v1/admin/services", Some(&admin), Some(&body), StatusCode::CREATED).await?,
        )?;
        service_ids.push(id.clone());
        Some(id)
    } else {
        None
    };
    let parking_service_id = if cfg.parked > 0 {
        let body = telegram("Load Parking (no agents)");
        Some(id_of(
            &api.expect(Method::POST, "/api/v1/admin/services", Some(&admin), Some(&body), StatusCode::CREATED).await?,
        )?)
    } else {
        None
    };
    let pause = api
        .expect(
            Method::POST,
            "/api/v1/admin/pause-reasons",
            Some(&admin),
            Some(&json!({"name": "Load pause"})),
            StatusCode::CREATED,
        )
        .await?;
    let pause_reason_id = id_of(&pause)?;

    let bar = progress_bar(cfg.progress);
    bar.set_message(format!("creating {} agents", cfg.agents));
    let t = Instant::now();
    let run_id = chrono::Utc::now().timestamp_millis();
    let logins: Vec<String> = (0..cfg.agents).map(|i| format!("load{run_id}a{i}")).collect();
    let capacity = json!({"whatsapp": cfg.capacity, "telegram": cfg.capacity, "webchat": cfg.capacity});
    let services = json!(service_ids);
    let created =
        bounded(logins.clone(), cfg.login_concurrency, |login| {
            let api = api.clone();
            let admin = admin.clone();
            let body = json!({"login": login, "name": login, "password": AGENT_PASSWORD, "role": "agent",
                          "services": services, "capacity": capacity});
            async move {
                api.expect(Method::POST, "/api/v1/admin/agents", Some(&admin), Some(&body), StatusCode::CREATED).await
            }
        })
        .await;
    for c in created {
        c?;
    }
    let agents_created_s = t.elapsed().as_secs_f64();
    bar.set_message(format!("signing in {} agents", cfg.agents));
    let t = Instant::now();
    let signed = bounded(logins.clone(), cfg.login_concurrency, |login| {
        let api = api.clone();
        async move {
            let v = api
                .expect(
                    Method::POST,
                    "/api/v1/auth/login",
                    None,
                    Some(&json!({"login": login, "password": AGENT_PASSWORD})),
                    StatusCode::OK,
                )
                .await?;
            Ok::<_, anyhow::Error>((
                v["token"].as_str().context("no token")?.to_owned(),
                v["agent"]["id"].as_str().context("no agent id")?.to_owned(),
            ))
        }
    })
    .await;
    let mut identities = Vec::with_capacity(cfg.agents);
    for (index, s) in signed.into_iter().enumerate() {
        let (token, id) = s?;
        identities.push(Identity { index, id, token });
    }
    let agents_signed_in_s = t.elapsed().as_secs_f64();
    let server_pid = spawned.map(|s| s.pid());
    // Sign-in leaves argon2id's memory behind for the allocator to give back: let it settle.
    if server_pid.is_some() {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let customers = Arc::new(Customers::default());
    let sender = Arc::new(Sender::new(
        api.clone(),
        stats.clone(),
        customers.clone(),
        Channels {
            telegram_service_id: service_ids[1].clone(),
            parking_service_id: parking_service_id.clone(),
            webchat: webchat_service_id.as_deref().map(|id| Arc::new(Visitors::new(base, id, stats.clone()))),
        },
        1,
    ));
    let parked = if cfg.parked > 0 { Some(park(cfg, &sender, &bar, server_pid).await) } else { None };
    let parked_acked = parked.as_ref().map_or(0, |p| p.conversations);
    // Settled too, or pages the sign-ins and the parking left would count against the agents.
    let rss_before = match server_pid {
        Some(pid) => settled_rss(pid, cfg.scenario == Scenario::Idle).await,
        None => None,
    };
    let mut fill_s = 0.0;
    if cfg.backlog > 0 {
        bar.set_message(format!("opening {} waiting conversations", cfg.backlog));
        let t = Instant::now();
        let permits = Arc::new(tokio::sync::Semaphore::new(64));
        let mut sends = Vec::with_capacity(cfg.backlog);
        for _ in 0..cfg.backlog {
            let permit = permits.clone().acquire_owned().await.expect("never closed");
            let s = sender.clone();
            sends.push(tokio::spawn(async move {
                s.new_conversation(Instant::now()).await;
                drop(permit);
            }));
        }
        for s in sends {
            let _ = s.await;
        }
        fill_s = t.elapsed().as_secs_f64();
        eprintln!("backlog: {} conversations opened in {fill_s:.1} s", stats.conversations_started.get());
    }

    // Agents connect and go available.
    bar.set_message(format!("connecting {} agents", cfg.agents));
    let t = Instant::now();
    let shared = Arc::new(Shared {
        api: api.clone(),
        stats: stats.clone(),
        customers: customers.clone(),
        behaviour: Behaviour { think: cfg.think, handling: cfg.handling, pause_reason_id },
        stopping: AtomicBool::new(false),
    });
    let mut controls = Vec::with_capacity(cfg.agents);
    let mut tasks = Vec::with_capacity(cfg.agents);
    for me in identities.iter().cloned() {
        let (tx, rx) = mpsc::unbounded_channel();
        controls.push(tx);
        tasks.push(tokio::spawn(agent::run(me, shared.clone(), rx)));
    }
    let mut drain_s = 0.0;
    if cfg.backlog > 0 {
        // Every waiting conversation offered or assigned (or the drain limit).
        let until = Instant::now() + cfg.drain;
        let monitor = tokio::spawn(sample_monitor(
            api.clone(),
            admin.clone(),
            cfg.capacity,
            service_ids.to_vec(),
            stats.clone(),
            stop_flag(),
        ));
        while stats.reached() < stats.conversations_started.get() && Instant::now() < until {
            bar.set_message(format!(
                "backlog: {} of {} reached an agent",
                stats.reached(),
                stats.conversations_started.get()
            ));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drain_s = t.elapsed().as_secs_f64();
        monitor.abort();
        eprintln!(
            "backlog: {} of {} reached an agent after {drain_s:.1} s",
            stats.reached(),
            stats.conversations_started.get()
        );
    }
    wait_available(&api, &admin, cfg.agents, Duration::from_secs(120 + cfg.agents as u64 / 20)).await?;
    let agents_connected_s = t.elapsed().as_secs_f64();
    // Let the server settle (buffers grown, pings exchanged) before reading its memory, and the
    // harness's pooled HTTP connections of the setup retire (2 s idle): each holds the server's
    // per-connection buffers, which are not an agent connection's. The server's side of its port
    // is counted: memory is read once it holds the agents' WebSockets and nothing else (the
    // visitors' sockets too, in scenarios that have them), or after 20 s.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let port = base.rsplit_once(':').and_then(|(_, p)| p.trim_end_matches('/').parse::<u16>().ok());
    let mut server_connections = None;
    if server_pid.is_some()
        && let Some(port) = port
    {
        let until = Instant::now() + Duration::from_secs(16);
        loop {
            server_connections = target::established_on_port(port);
            if server_connections.is_none_or(|n| n <= cfg.agents) || Instant::now() > until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let rss_connected = match server_pid {
        Some(pid) => settled_rss(pid, cfg.scenario == Scenario::Idle).await,
        None => None,
    };

    // The load.
    let cpu0 = server_pid.and_then(sample_pid);
    // Rates count the load phase only (not the backlog or the parked conversations).
    let (acked_before_load, conversations_before_load) =
        (stats.webhooks_acked.get(), stats.conversations_started.get());
    let pg0 = pg.map(Postgres::sample);
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    // The ingest ceiling drives its own steps (see `climb`).
    let (conversation_rate, message_rate) =
        if cfg.ceiling_rates.is_empty() { (cfg.conversations_per_s, cfg.messages_per_s) } else { (0.0, 0.0) };
    let arrivals = tokio::spawn(customer::poisson(sender.clone(), conversation_rate, cfg.duration, true, stop.clone()));
    let messages = tokio::spawn(customer::poisson(sender.clone(), message_rate, cfg.duration, false, stop.clone()));
    let monitor = tokio::spawn(sample_monitor(
        api.clone(),
        admin.clone(),
        cfg.capacity,
        service_ids.to_vec(),
        stats.clone(),
        stop.clone(),
    ));
    let chaos = tokio::spawn(disturb(controls.clone(), cfg.churn_per_min, cfg.pause_per_min, cfg.pause, stop.clone()));
    bar.set_length(cfg.duration.as_secs().max(1));
    let ticker = {
        let (bar, stats, customers, stop) = (bar.clone(), stats.clone(), customers.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                bar.set_position(started.elapsed().as_secs());
                bar.set_message(format!(
                    "webhooks {}/{} acked · conversations {} · assigned {} · concluded {} · open {} · unseen {}",
                    stats.webhooks_acked.get(),
                    stats.webhooks_sent.get(),
                    stats.conversations_started.get(),
                    stats.assignments.get(),
                    stats.concluded.get(),
                    customers.open_count(),
                    stats.unseen_acked(),
                ));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    let ceiling =
        if cfg.ceiling_rates.is_empty() { None } else { Some(climb(cfg, &sender, &stats, server_pid, pg, &bar).await) };
    let mut restart = None;
    if let (Some(at), Some(server)) = (cfg.kill_at, spawned) {
        tokio::time::sleep(at).await;
        let open_at_kill = customers.open_count() as u64 + parked_acked;
        bar.set_message(format!("kill -9 with {open_at_kill} open conversations; restarting"));
        let killed = Instant::now();
        let ready = server.crash_and_restart().await?;
        eprintln!(
            "restart: killed with {open_at_kill} open conversations; ready {:.2} s after exec",
            ready.as_secs_f64()
        );
        wait_available(&api, &admin, cfg.agents, Duration::from_secs(120 + cfg.agents as u64 / 20)).await?;
        restart = Some(RestartReport {
            open_conversations_at_kill: open_at_kill,
            killed_at_s: at.as_secs_f64(),
            time_to_ready_s: ready.as_secs_f64(),
            agents_back_s: killed.elapsed().as_secs_f64(),
            parked_waiting_after: 0,
            timers_checked: 0,
        });
    }
    let _ = arrivals.await;
    let _ = messages.await;
    let load_s = started.elapsed().as_secs_f64();
    // Drain: every acknowledged message should reach an agent, every reply the provider.
    let drain_until = Instant::now() + cfg.drain;
    while Instant::now() < drain_until && (stats.unseen_acked() > 0 || stats.replies_missing() > 0) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let missing = stats.missing_replies(10);
    if !missing.is_empty() {
        // Their tags, to look them up in the database (`--keep-db`): `body LIKE '%[rp:N]%'`.
        let tags: Vec<String> = missing
            .iter()
            .map(|(n, age)| format!("{} ({:.1} s ago)", stats::reply_tag(*n), age.as_secs_f64()))
            .collect();
        eprintln!("replies the provider has not received (first {}): {}", tags.len(), tags.join(", "));
    }
    if let Some(r) = restart.as_mut() {
        // Every customer has been silent since the load ended: once the inactivity time has
        // passed (plus a margin), each conversation an agent holds must have gone inactive —
        // by a timer armed before the crash and re-armed by the restart.
        let wait = Duration::from_secs(60 * cfg.inactivity_minutes.unwrap_or(30).max(0) as u64 + 15)
            .saturating_sub(started.elapsed().saturating_sub(Duration::from_secs_f64(load_s)));
        bar.set_message(format!("waiting {} s for the inactivity timers", wait.as_secs()));
        tokio::time::sleep(wait).await;
        r.parked_waiting_after = waiting_in(&api, &admin, parking_service_id.as_deref()).await?;
    }
    let checked_at = chrono::Utc::now();
    stop.store(true, Ordering::Relaxed);
    shared.stopping.store(true, Ordering::Relaxed);
    // After a restart the process is another one: its CPU is not comparable.
    let cpu1 = server_pid.filter(|pid| spawned.map(|s| s.pid()) == Some(*pid)).and_then(sample_pid);
    // A restart closes the server's connections, and their backends take their CPU time along.
    let pg1 = pg.filter(|_| restart.is_none()).map(Postgres::sample);
    let rss_end = cpu1.map(|s| s.rss_bytes);
    let _ = monitor.await;
    let _ = chaos.await;
    let _ = ticker.await;
    drop(controls);
    let mut observations: Vec<Observations> = Vec::with_capacity(tasks.len());
    for t in tasks {
        observations.push(t.await.unwrap_or_default());
    }
    bar.finish_and_clear();

    let backlog = (cfg.backlog > 0).then(|| {
        let (out_of_order, worst_inversion_s) = check::drain_order(&observations);
        BacklogReport { waiting: stats.conversations_started.get(), fill_s, drain_s, out_of_order, worst_inversion_s }
    });
    let ids: Vec<String> = identities.iter().map(|i| i.id.clone()).collect();
    let mut correctness = check::replay(&observations, &ids, cfg.capacity);
    correctness.waiting_while_free = stats.waiting_while_free.get();
    correctness.acknowledged_messages_lost = lost_messages(&api, &admin, &stats).await;
    correctness.replies_not_delivered = stats.replies_missing();
    if let Some(r) = restart.as_mut() {
        r.timers_checked = check::held(&observations);
        // Held since before (the check − the inactivity time − 10 s): its deadline has passed.
        let minutes = i64::from(cfg.inactivity_minutes.unwrap_or(30));
        let due = checked_at - chrono::Duration::minutes(minutes) - chrono::Duration::seconds(10);
        correctness.timers_not_fired = check::still_active(&observations, due);
        // A parked conversation missing after the restart is an acknowledged message lost.
        correctness.acknowledged_messages_lost += parked_acked.saturating_sub(r.parked_waiting_after);
    }

    let conversations = stats.conversations_started.get();
    // Rates over a load phase too short to mean anything (backlog, idle) read 0.
    let rate = |n: u64| if load_s >= 1.0 { n as f64 / load_s } else { 0.0 };
    let per_1000 = |cpu: Option<f64>| cpu.filter(|_| conversations > 0).map(|c| c * 1000.0 / conversations as f64);
    let cpu_delta = |a: Option<ProcSample>, b: Option<ProcSample>| Some(b?.cpu_s - a?.cpu_s);
    let server_cpu = cpu_delta(cpu0, cpu1);
    let pg_cpu = cpu_delta(pg0, pg1);
    let mb = |b: Option<u64>| b.map(|b| b as f64 / 1_048_576.0);
    let per_agent_kb = match (rss_before, rss_connected) {
        (Some(a), Some(b)) if cfg.agents > 0 => Some((b as f64 - a as f64) / cfg.agents as f64 / 1024.0),
        _ => None,
    };
    if let Some(path) = &cfg.samples {
        write_samples(path, &stats.take_samples(), cfg.webchat)?;
    }
    Ok(Report {
        scenario: cfg.scenario,
        server: base.to_owned(),
        agents: cfg.agents,
        target_conversations_per_s: cfg.conversations_per_s,
        target_messages_per_s: cfg.messages_per_s,
        duration_s: load_s,
        setup: Setup {
            server_start_s: spawned.map(|s| s.start_time.as_secs_f64()),
            agents_created_s,
            agents_signed_in_s,
            agents_connected_s,
            // Taken before the server starts; `run` fills it in.
            cpu_probe_ms: 0.0,
        },
        latency: Latencies {
            webhook_ack: stats.webhook_ack.summary(),
            webchat_ack: stats.webchat_ack.summary(),
            new_conversation_to_offer_or_assignment: stats.offer_or_assign.summary(),
            customer_message_to_agent_screen: stats.message_to_screen.summary(),
            customer_message_to_history_on_assignment: stats.message_to_history.summary(),
            agent_send_to_provider: stats.send_to_provider.summary(),
            agent_send_api: stats.agent_send_api.summary(),
        },
        throughput: Throughput {
            webhooks_acked_per_s: rate(stats.webhooks_acked.get() - acked_before_load),
            conversations_per_s: rate(conversations - conversations_before_load),
            replies_per_s: rate(stats.replies_sent.get()),
        },
        resources: Resources {
            server_cpu_s: server_cpu,
            server_cpu_s_per_1000_conversations: per_1000(server_cpu),
            postgres_cpu_s: pg_cpu,
            postgres_cpu_s_per_1000_conversations: per_1000(pg_cpu),
            server_rss_before_agents_mb: mb(rss_before),
            server_rss_agents_connected_mb: mb(rss_connected),
            server_rss_end_mb: mb(rss_end),
            rss_per_idle_agent_connection_kb: per_agent_kb,
            server_connections_at_measurement: server_connections,
            open_conversations_at_end: customers.open_count(),
        },
        counts: Counts {
            webhooks_sent: stats.webhooks_sent.get(),
            webhooks_acked: stats.webhooks_acked.get(),
            webhooks_refused: stats.webhooks_refused.get(),
            webhooks_failed: stats.webhooks_failed.get(),
            conversations_started: conversations,
            offers: stats.offers.get(),
            assignments: stats.assignments.get(),
            concluded: stats.concluded.get(),
            replies_sent: stats.replies_sent.get(),
            replies_at_provider: stats.replies_at_provider.get(),
            pauses: stats.pauses.get(),
            reconnects: stats.reconnects.get(),
            agent_api_errors: stats.agent_api_errors.get(),
            monitor_samples: stats.monitor_samples.get(),
            webhook_retries: stats.webhook_retries.get(),
            webchat_unanswered: stats.webchat_unanswered.get(),
            webchat_gone: stats.webchat_gone.get(),
        },
        backlog,
        parked,
        restart,
        ceiling,
        correctness,
    })
}

/// The server's resident memory once it has settled. The burst of connecting leaves pages the
/// allocator has freed but not yet handed back (jemalloc purges them over its decay time, 10 s by
/// default, in steps): with `wait`, RSS is read every second for at least 12 s and then until it
/// has fallen by less than 0.5% over 3 s (at most 40 s), so the figure is what the connections
/// hold, not what connecting them left behind.
async fn settled_rss(pid: u32, wait: bool) -> Option<u64> {
    let mut readings = vec![sample_pid(pid)?.rss_bytes];
    let until = Instant::now() + Duration::from_secs(40);
    while wait && Instant::now() < until {
        if readings.len() > 12
            && let [.., before, _, _, now] = readings[..]
            && (before as f64 - now as f64) < before as f64 * 0.005
        {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        readings.push(sample_pid(pid)?.rss_bytes);
    }
    if readings.len() > 1 {
        let mb: Vec<String> = readings.iter().map(|b| format!("{:.1}", *b as f64 / 1_048_576.0)).collect();
        eprintln!("server RSS settling (MB, every second): {}", mb.join(" "));
    }
    readings.last().copied()
}

fn stop_flag() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}

fn id_of(v: &Value) -> anyhow::Result<String> {
    v["id"].as_str().map(str::to_owned).with_context(|| format!("no id in {v}"))
}

fn progress_bar(show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(1);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:20} {pos}/{len}s {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Runs `f` over `items` with at most `n` at a time; answers the results in order.
async fn bounded<I, F, Fut, T>(items: Vec<I>, n: usize, f: F) -> Vec<T>
where
    F: Fn(I) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let permits = Arc::new(tokio::sync::Semaphore::new(n.max(1)));
    let mut handles = Vec::with_capacity(items.len());
    for item in items {
        let permit = permits.clone().acquire_owned().await.expect("the semaphore is never closed");
        let fut = f(item);
        handles.push(tokio::spawn(async move {
            let out = fut.await;
            drop(permit);
            out
        }));
    }
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("a setup task panicked"));
    }
    out
}

/// Opens `cfg.parked` conversations in the parking service (64 webhooks at a time) and measures
/// the server's memory before and after.
async fn park(cfg: &Config, sender: &Arc<Sender>, bar: &ProgressBar, server_pid: Option<u32>) -> ParkedReport {
    let rss_before = server_pid.and_then(sample_pid).map(|s| s.rss_bytes);
    let t = Instant::now();
    let permits = Arc::new(tokio::sync::Semaphore::new(64));
    let acked = Arc::new(AtomicU64::new(0));
    let mut sends = Vec::with_capacity(cfg.parked);
    for i in 0..cfg.parked {
        let permit = permits.clone().acquire_owned().await.expect("never closed");
        let (s, acked) = (sender.clone(), acked.clone());
        sends.push(tokio::spawn(async move {
            if s.park().await {
                acked.fetch_add(1, Ordering::Relaxed);
            }
            drop(permit);
        }));
        if i % 1000 == 0 {
            bar.set_message(format!("parking conversations: {i} of {}", cfg.parked));
        }
    }
    for s in sends {
        let _ = s.await;
    }
    let fill_s = t.elapsed().as_secs_f64();
    let conversations = acked.load(Ordering::Relaxed);
    eprintln!("parked: {conversations} open conversations in {fill_s:.1} s");
    // Let the write-behind work (media fetcher, journal) settle before reading memory.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_after = server_pid.and_then(sample_pid).map(|s| s.rss_bytes);
    let mb = |b: Option<u64>| b.map(|b| b as f64 / 1_048_576.0);
    ParkedReport {
        conversations,
        fill_s,
        rss_before_mb: mb(rss_before),
        rss_after_mb: mb(rss_after),
        bytes_per_open_conversation: match (rss_before, rss_after) {
            (Some(a), Some(b)) if conversations > 0 => Some((b as f64 - a as f64) / conversations as f64),
            _ => None,
        },
    }
}

/// The ingest ceiling: new conversations arrive at the configured rate throughout; after a
/// 10-second warm-up (so customers have open conversations to write to), customer messages
/// come in steps of rising rate, each `cfg.duration` long, until a step's p99 (webhook
/// acknowledgement or message → agent screen) passes [`CEILING_P99_MS`] or less than 90% of
/// its planned messages were acknowledged.
async fn climb(
    cfg: &Config,
    sender: &Arc<Sender>,
    stats: &Arc<Stats>,
    server_pid: Option<u32>,
    pg: Option<&Postgres>,
    bar: &ProgressBar,
) -> CeilingReport {
    let stop = Arc::new(AtomicBool::new(false));
    let arrivals = tokio::spawn(customer::poisson(
        sender.clone(),
        cfg.conversations_per_s,
        Duration::from_secs(24 * 3600),
        true,
        stop.clone(),
    ));
    bar.set_message("ingest ceiling: warm-up (conversations only)".to_owned());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let mut steps = Vec::new();
    let mut ceiling = 0.0f64;
    let harness = std::process::id();
    for &rate in &cfg.ceiling_rates {
        bar.set_message(format!("ingest ceiling: {rate:.0} messages/s"));
        stats.window_ack.take();
        stats.window_screen.take();
        let acked0 = stats.webhooks_acked.get();
        let (cpu0, pg0, me0) = (server_pid.and_then(sample_pid), pg.map(Postgres::sample), sample_pid(harness));
        let t = Instant::now();
        customer::poisson(sender.clone(), rate, cfg.duration, false, stop.clone()).await;
        let elapsed = t.elapsed().as_secs_f64();
        // Sends still in flight finish inside this step's window.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (cpu1, pg1, me1) = (server_pid.and_then(sample_pid), pg.map(Postgres::sample), sample_pid(harness));
        let delta = |a: Option<ProcSample>, b: Option<ProcSample>| Some(b?.cpu_s - a?.cpu_s);
        let acked_per_s = (stats.webhooks_acked.get() - acked0) as f64 / elapsed;
        let ack = stats.window_ack.take();
        let screen = stats.window_screen.take();
        let kept_up = acked_per_s >= 0.9 * rate && ack.p99_ms <= CEILING_P99_MS && screen.p99_ms <= CEILING_P99_MS;
        eprintln!(
            "ceiling step {rate:.0}/s: {acked_per_s:.0} acked/s · ack p99 {:.1} ms · screen p99 {:.1} ms",
            ack.p99_ms, screen.p99_ms
        );
        steps.push(CeilingStep {
            target_messages_per_s: rate,
            acked_per_s,
            webhook_ack: ack,
            customer_message_to_agent_screen: screen,
            server_cpu_s: delta(cpu0, cpu1),
            postgres_cpu_s: delta(pg0, pg1),
            harness_cpu_s: delta(me0, me1),
            kept_up,
        });
        if !kept_up {
            break;
        }
        ceiling = ceiling.max(acked_per_s);
    }
    stop.store(true, Ordering::Relaxed);
    let _ = arrivals.await;
    CeilingReport { steps, ceiling_messages_per_s: ceiling }
}

/// How many conversations the monitor shows waiting in `service` (0 when none is given).
async fn waiting_in(api: &Api, admin: &str, service: Option<&str>) -> anyhow::Result<u64> {
    let Some(service) = service else { return Ok(0) };
    let queues = api.expect(Method::GET, "/api/v1/monitor/queues", Some(admin), None, StatusCode::OK).await?;
    Ok(queues
        .as_array()
        .into_iter()
        .flatten()
        .filter(|q| q["service_id"] == service)
        .map(|q| q["waiting"].as_u64().unwrap_or(0))
        .sum())
}

/// Waits until the monitor shows `n` agents available with a connection.
async fn wait_available(api: &Api, admin: &str, n: usize, deadline: Duration) -> anyhow::Result<()> {
    let until = Instant::now() + deadline;
    loop {
        let agents = api.expect(Method::GET, "/api/v1/monitor/agents", Some(admin), None, StatusCode::OK).await?;
        let ready = agents
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["status"] == "available" && a["connections"].as_u64().unwrap_or(0) > 0)
            .count();
        if ready >= n {
            return Ok(());
        }
        if Instant::now() > until {
            bail!("only {ready} of {n} agents were connected and available after {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every second, reads the monitor's queues and agents. A channel counts as "waiting while an
/// eligible agent is free" when a conversation of the agents' `services` has waited at least a second while some agent is
/// available with room (active conversations plus pending offers under capacity) on that
/// channel, in two samples in a row — so a routing decision in flight is not counted. The two
/// reads are not one snapshot; the two-in-a-row rule also absorbs that.
async fn sample_monitor(
    api: Api,
    admin: String,
    capacity: u32,
    services: Vec<String>,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) {
    let mut flagged_before: Vec<String> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let queues = api.call(Method::GET, "/api/v1/monitor/queues", Some(&admin), None).await;
        let agents = api.call(Method::GET, "/api/v1/monitor/agents", Some(&admin), None).await;
        let (Ok((StatusCode::OK, queues)), Ok((StatusCode::OK, agents))) = (queues, agents) else { continue };
        stats.monitor_samples.inc();
        let mut flagged = Vec::new();
        for q in queues.as_array().into_iter().flatten() {
            let channel = q["channel"].as_str().unwrap_or_default();
            // Every simulated agent serves exactly these services (not the parking one).
            if !q["service_id"].as_str().is_some_and(|s| services.iter().any(|m| m == s)) {
                continue;
            }
            if q["waiting"].as_u64().unwrap_or(0) == 0 || q["oldest_wait_s"].as_f64().unwrap_or(0.0) < 1.0 {
                continue;
            }
            let free = agents.as_array().into_iter().flatten().any(|a| {
                let active = a["conversations"][channel]["active"].as_u64().unwrap_or(0);
                let offers = a["offers"].as_u64().unwrap_or(0);
                a["status"] == "available"
                    && a["connections"].as_u64().unwrap_or(0) > 0
                    && active + offers < capacity as u64
            });
            if free {
                flagged.push(channel.to_owned());
            }
        }
        for ch in &flagged {
            if flagged_before.contains(ch) {
                stats.waiting_while_free.inc();
                eprintln!("monitor: a {ch} conversation waits while an agent is free");
            }
        }
        flagged_before = flagged;
    }
}

/// Churn and pauses: every second, each agent disconnects (and comes back 1–5 s later) or
/// pauses with the per-minute probabilities given.
async fn disturb(
    controls: Vec<mpsc::UnboundedSender<Control>>,
    churn_per_min: f64,
    pause_per_min: f64,
    pause: Duration,
    stop: Arc<AtomicBool>,
) {
    if controls.is_empty() || (churn_per_min <= 0.0 && pause_per_min <= 0.0) {
        return;
    }
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        for c in &controls {
            let r: f64 = rand::random();
            if r < churn_per_min / 60.0 {
                let away = Duration::from_millis(1000 + (rand::random::<u64>() % 4000));
                let _ = c.send(Control::Reconnect(away));
            } else if r < (churn_per_min + pause_per_min) / 60.0 {
                let _ = c.send(Control::Pause(pause));
            }
        }
    }
}

/// Acknowledged messages that are not stored: those no agent saw are looked for where a desk
/// would — in the newest conversations the admin can list with their histories, in the
/// conversations agents were given for that customer (ended ones too), and in the queues
/// (`GET /api/v1/queues/{channel}/items?content=<tag>`, the conversations still waiting). One
/// found is stored but was not on a screen when the run ended (its conversation still waiting,
/// say): printed, not counted; one absent from storage is lost.
async fn lost_messages(api: &Api, admin: &str, stats: &Stats) -> u64 {
    let missing = stats.unseen_acked_tags();
    if missing.is_empty() {
        return 0;
    }
    eprintln!("{} acknowledged messages were not seen by an agent; looking for them in storage", missing.len());
    let mut stored = std::collections::HashSet::new();
    if let Ok(list) =
        api.expect(Method::GET, "/api/v1/conversations?limit=1000", Some(admin), None, StatusCode::OK).await
    {
        let items = list.as_array().cloned().or_else(|| list["items"].as_array().cloned()).unwrap_or_default();
        for c in items {
            let Some(id) = c["id"].as_str() else { continue };
            if let Ok(detail) =
                api.expect(Method::GET, &format!("/api/v1/conversations/{id}"), Some(admin), None, StatusCode::OK).await
            {
                for m in detail["messages"].as_array().into_iter().flatten() {
                    if let Some((_, tag)) = m["body"].as_str().and_then(stats::parse_customer_tag) {
                        stored.insert(tag);
                    }
                }
            }
        }
    }
    // The conversations agents were given for those customers (ended ones included).
    let mut read: std::collections::HashSet<String> = std::collections::HashSet::new();
    let unknown: Vec<(u64, u64)> = missing.iter().filter(|(_, t)| !stored.contains(t)).take(5000).copied().collect();
    for &(customer, _) in &unknown {
        for id in stats.conversations_of(customer) {
            if !read.insert(id.clone()) {
                continue;
            }
            if let Ok(detail) =
                api.expect(Method::GET, &format!("/api/v1/conversations/{id}"), Some(admin), None, StatusCode::OK).await
            {
                for m in detail["messages"].as_array().into_iter().flatten() {
                    if let Some((_, tag)) = m["body"].as_str().and_then(stats::parse_customer_tag) {
                        stored.insert(tag);
                    }
                }
            }
        }
    }
    // The rest are looked for in the queues, one search each (bounded: a run that leaves more
    // unseen has a bigger problem).
    let unknown: Vec<(u64, u64)> = unknown.into_iter().filter(|(_, t)| !stored.contains(t)).collect();
    for (customer, tag) in unknown {
        let needle = stats::customer_tag(customer, tag);
        for channel in ["whatsapp", "telegram", "webchat"] {
            let path = format!("/api/v1/queues/{channel}/items?limit=1&content={}", urlencode(&needle));
            if let Ok(found) = api.expect(Method::GET, &path, Some(admin), None, StatusCode::OK).await
                && found.as_array().is_some_and(|a| !a.is_empty())
            {
                stored.insert(tag);
                break;
            }
        }
    }
    let in_storage = missing.iter().filter(|(_, t)| stored.contains(t)).count();
    let absent: Vec<String> = missing
        .iter()
        .filter(|(_, t)| !stored.contains(t))
        .take(10)
        .map(|(c, t)| stats::customer_tag(*c, *t))
        .collect();
    if !absent.is_empty() {
        eprintln!("not found in storage (first 10): {}", absent.join(" "));
    }
    eprintln!("of those, {in_storage} are stored (not on an agent's screen when the run ended)");
    (missing.len() - in_storage) as u64
}

/// Percent-encodes a query value (the tags hold `[`, `]` and `:`).
fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

impl Report {
    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let l = &self.latency;
        out.push_str(&format!(
            "scenario {:?} · {} agents · {:.0} new conversations/s · {:.0} messages/s · {:.1} s of load\n",
            self.scenario, self.agents, self.target_conversations_per_s, self.target_messages_per_s, self.duration_s
        ));
        out.push_str(&format!(
            "setup: server start {} · agents created {:.1} s · signed in {:.1} s · connected+available {:.1} s · CPU probe {:.0} ms\n\n",
            self.setup.server_start_s.map(|s| format!("{s:.2} s")).unwrap_or_else(|| "-".into()),
            self.setup.agents_created_s,
            self.setup.agents_signed_in_s,
            self.setup.agents_connected_s,
            self.setup.cpu_probe_ms
        ));
        out.push_str(&format!(
            "{:<44} {:>8} {:>9} {:>9} {:>9} {:>9}\n",
            "latency (ms)", "count", "p50", "p99", "p99.9", "max"
        ));
        for (name, s) in [
            ("webhook acknowledgement", &l.webhook_ack),
            ("webchat message → ack", &l.webchat_ack),
            ("new conversation → offer/assignment", &l.new_conversation_to_offer_or_assignment),
            ("customer message → agent screen", &l.customer_message_to_agent_screen),
            ("customer message → history on assignment", &l.customer_message_to_history_on_assignment),
            ("agent send → provider", &l.agent_send_to_provider),
            ("agent send API (201)", &l.agent_send_api),
        ] {
            out.push_str(&format!(
                "{name:<44} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2}\n",
                s.count, s.p50_ms, s.p99_ms, s.p999_ms, s.max_ms
            ));
        }
        let t = &self.throughput;
        out.push_str(&format!(
            "\nthroughput: {:.0} webhooks acked/s · {:.1} conversations/s · {:.0} agent replies/s\n",
            t.webhooks_acked_per_s, t.conversations_per_s, t.replies_per_s
        ));
        let r = &self.resources;
        let f = |v: Option<f64>, unit: &str| v.map(|v| format!("{v:.2} {unit}")).unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "server CPU {} ({} per 1,000 conversations) · PostgreSQL CPU {} ({} per 1,000 conversations)\n",
            f(r.server_cpu_s, "s"),
            f(r.server_cpu_s_per_1000_conversations, "s"),
            f(r.postgres_cpu_s, "s"),
            f(r.postgres_cpu_s_per_1000_conversations, "s"),
        ));
        out.push_str(&format!(
            "server RSS: {} before agents · {} agents connected ({} TCP connections) · {} at end · {} per idle agent connection\n",
            f(r.server_rss_before_agents_mb, "MB"),
            f(r.server_rss_agents_connected_mb, "MB"),
            r.server_connections_at_measurement.map_or_else(|| "-".to_owned(), |n| n.to_string()),
            f(r.server_rss_end_mb, "MB"),
            f(r.rss_per_idle_agent_connection_kb, "KB"),
        ));
        let c = &self.counts;
        out.push_str(&format!(
            "counts: customer messages {} sent / {} acked / {} refused / {} failed / {} to a closing widget unanswered / {} to a closed widget · conversations {} · offers {} · assignments {} · concluded {} · replies {} sent / {} at provider · pauses {} · reconnects {} · agent API errors {}\n",
            c.webhooks_sent, c.webhooks_acked, c.webhooks_refused, c.webhooks_failed, c.webchat_unanswered, c.webchat_gone,
            c.conversations_started, c.offers, c.assignments, c.concluded, c.replies_sent, c.replies_at_provider, c.pauses,
            c.reconnects, c.agent_api_errors
        ));
        if let Some(p) = &self.parked {
            out.push_str(&format!(
                "parked: {} open conversations (no agent serves them) in {:.1} s · server RSS {} → {} · {} per open conversation\n",
                p.conversations,
                p.fill_s,
                f(p.rss_before_mb, "MB"),
                f(p.rss_after_mb, "MB"),
                p.bytes_per_open_conversation.map(|b| format!("{b:.0} bytes")).unwrap_or_else(|| "-".into()),
            ));
        }
        if let Some(r) = &self.restart {
            out.push_str(&format!(
                "restart: kill -9 at {:.0} s with {} open conversations · ready {:.2} s after exec · every agent back {:.1} s after the kill · {} parked waiting after (expected {}) · {} held conversations' inactivity timers checked · webhook retries {}\n",
                r.killed_at_s,
                r.open_conversations_at_kill,
                r.time_to_ready_s,
                r.agents_back_s,
                r.parked_waiting_after,
                self.parked.as_ref().map_or(0, |p| p.conversations),
                r.timers_checked,
                c.webhook_retries,
            ));
        }
        if let Some(ceiling) = &self.ceiling {
            out.push_str(&format!(
                "\ningest ceiling (p99 limit {CEILING_P99_MS} ms): {:.0} messages/s\n{:>10} {:>10} {:>12} {:>12} {:>14} {:>10} {:>10} {:>10}\n",
                ceiling.ceiling_messages_per_s, "target/s", "acked/s", "ack p99 ms", "ack max ms", "screen p99 ms", "server s", "pg s", "harness s"
            ));
            for st in &ceiling.steps {
                out.push_str(&format!(
                    "{:>10.0} {:>10.0} {:>12.2} {:>12.2} {:>14.2} {:>10} {:>10} {:>10}{}\n",
                    st.target_messages_per_s,
                    st.acked_per_s,
                    st.webhook_ack.p99_ms,
                    st.webhook_ack.max_ms,
                    st.customer_message_to_agent_screen.p99_ms,
                    f(st.server_cpu_s, ""),
                    f(st.postgres_cpu_s, ""),
                    f(st.harness_cpu_s, ""),
                    if st.kept_up { "" } else { "  ← over the limit" },
                ));
            }
        }
        if let Some(b) = &self.backlog {
            out.push_str(&format!(
                "backlog: {} waiting filled in {:.1} s · drained in {:.1} s after the agents started connecting · {} served out of arrival order (worst {:.3} s)\n",
                b.waiting, b.fill_s, b.drain_s, b.out_of_order, b.worst_inversion_s
            ));
        }
        let k = &self.correctness;
        out.push_str(&format!(
            "\ncorrectness (must be 0): double assignments {} · capacity exceeded {} · offers to unavailable agents {} · waiting while an agent was free {} ({} monitor samples) · acknowledged messages lost {} · replies not delivered {} · timers not fired after restart {}\n",
            k.double_assignments, k.capacity_exceeded, k.offers_to_unavailable, k.waiting_while_free, c.monitor_samples,
            k.acknowledged_messages_lost, k.replies_not_delivered, k.timers_not_fired
        ));
        out
    }
}

/// `--samples`: one CSV line per customer message seen live on a desk, in the order they were
/// meant to be sent, to see where a tail comes from (a stall hits every channel at one moment; a
/// slow path shows in one channel or in the messages that open a conversation).
fn write_samples(path: &std::path::Path, samples: &[stats::Sample], webchat: bool) -> anyhow::Result<()> {
    use std::fmt::Write as _;
    let start = samples.first().map(|s| s.intended);
    // Wall-clock time of each, to line it up with the server's and PostgreSQL's logs.
    let (now, wall_now) = (Instant::now(), chrono::Utc::now());
    let mut opened = HashSet::new();
    let mut out = String::from("sent_ms,sent_at,customer,channel,customer_first,ack_us,screen_us\n");
    for s in samples {
        let at = start.map_or(0.0, |t| s.intended.duration_since(t).as_secs_f64() * 1000.0);
        let wall = wall_now - chrono::Duration::from_std(now.duration_since(s.intended)).unwrap_or_default();
        let channel = customer::channel_of(s.customer, webchat);
        let first = opened.insert(s.customer);
        let wall = wall.format("%H:%M:%S%.3f");
        let _ = writeln!(out, "{at:.3},{wall},{},{channel:?},{first},{},{}", s.customer, s.ack_us, s.screen_us);
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}
