//! The side-by-side comparison: Omniroute and its peer (pg-boss + ws, `benches/peer/`)
//! measured by the same harness in the same invocation, one after the other, each on a fresh
//! database, in ABBA order (Omniroute, peer, peer, Omniroute) so that a drift of the machine
//! (other work on it, a warming cache) weighs on both alike. The answer holds every run and the
//! ratios of the two means.

use serde::Serialize;

use super::stats::LatencySummary;
use super::target::ServerCommand;
use super::{Config, Report, Target};

/// Which implementation a run measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Omniroute,
    Peer,
}

/// The ABBA order.
pub const ORDER: [Side; 4] = [Side::Omniroute, Side::Peer, Side::Peer, Side::Omniroute];

/// One run of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub position: usize,
    pub side: Side,
    pub report: Report,
}

/// The ratios of the comparison, each from the mean of the two runs of each side. Latency and
/// CPU ratios are peer ÷ Omniroute (10 means the peer is ten times slower or costlier);
/// throughput is Omniroute ÷ peer (at one offered load both should read about 1 unless one falls
/// behind it). Agent replies per second are in each run's report but not compared: agents keep
/// replying through the drain, whose length depends on the server, so the rate is not comparable.
#[derive(Debug, Clone, Serialize)]
pub struct Ratios {
    pub throughput_webhooks_acked_omniroute_over_peer: Option<f64>,
    /// With `--scenario ingest-ceiling`: the sustained ingest ceilings, Omniroute ÷ peer (the
    /// throughput half of the peer target, docs/performance.md).
    pub ingest_ceiling_omniroute_over_peer: Option<f64>,
    pub p99_webhook_ack_peer_over_omniroute: Option<f64>,
    pub p99_message_to_screen_peer_over_omniroute: Option<f64>,
    pub p99_new_conversation_to_assignment_peer_over_omniroute: Option<f64>,
    pub p99_send_to_provider_peer_over_omniroute: Option<f64>,
    pub p50_message_to_screen_peer_over_omniroute: Option<f64>,
    pub server_cpu_per_1000_conversations_peer_over_omniroute: Option<f64>,
    pub postgres_cpu_per_1000_conversations_peer_over_omniroute: Option<f64>,
    pub total_cpu_per_1000_conversations_peer_over_omniroute: Option<f64>,
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub runs: Vec<Run>,
    /// From the mean of each side's two runs.
    pub ratios: Ratios,
    /// From each side's better run (the lower latency or CPU, the higher throughput): on a shared
    /// machine other work only ever adds latency, so the better run is the closer to each
    /// server's own figure.
    pub ratios_best_runs: Ratios,
    /// True when every correctness counter of every run read zero.
    pub all_correct: bool,
}

/// Runs `cfg` (whose target is ignored) four times, ABBA, each side on a fresh database.
pub async fn run(
    cfg: Config,
    omniroute: ServerCommand,
    peer: ServerCommand,
    database_url: String,
    pg_data: Option<std::path::PathBuf>,
    keep_db: bool,
) -> anyhow::Result<Comparison> {
    let mut runs = Vec::with_capacity(ORDER.len());
    for (position, side) in ORDER.into_iter().enumerate() {
        let server = match side {
            Side::Omniroute => omniroute.clone(),
            Side::Peer => peer.clone(),
        };
        let mut c = cfg.clone();
        c.target = Target::Spawn { server, database_url: database_url.clone(), pg_data: pg_data.clone(), keep_db };
        eprintln!("comparison run {} of {}: {side:?}", position + 1, ORDER.len());
        let report = super::run(c).await?;
        eprint!("{}", report.table());
        runs.push(Run { position: position + 1, side, report });
        // Let the cluster's autovacuum and checkpointer settle between runs.
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
    let all_correct = runs.iter().all(|r| r.report.correctness.all_zero());
    Ok(Comparison {
        ratios: ratios(&runs, Aggregate::Mean),
        ratios_best_runs: ratios(&runs, Aggregate::Best),
        runs,
        all_correct,
    })
}

/// How one side's two runs make one figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    Mean,
    /// The lower value (latency, CPU); for throughput the higher.
    Best,
}

fn side_value(
    runs: &[Run],
    side: Side,
    how: Aggregate,
    higher_is_better: bool,
    f: impl Fn(&Report) -> Option<f64>,
) -> Option<f64> {
    let values: Vec<f64> = runs.iter().filter(|r| r.side == side).filter_map(|r| f(&r.report)).collect();
    if values.is_empty() {
        return None;
    }
    Some(match how {
        Aggregate::Mean => values.iter().sum::<f64>() / values.len() as f64,
        Aggregate::Best if higher_is_better => values.iter().copied().fold(f64::MIN, f64::max),
        Aggregate::Best => values.iter().copied().fold(f64::MAX, f64::min),
    })
}

/// `num ÷ den` of one figure; throughput is the only figure where higher is better.
fn ratio(
    runs: &[Run],
    how: Aggregate,
    (num, den): (Side, Side),
    higher_is_better: bool,
    f: impl Fn(&Report) -> Option<f64> + Copy,
) -> Option<f64> {
    let a = side_value(runs, num, how, higher_is_better, f)?;
    let b = side_value(runs, den, how, higher_is_better, f)?;
    (b > 0.0).then(|| a / b)
}

fn p99(s: &LatencySummary) -> Option<f64> {
    (s.count > 0).then_some(s.p99_ms)
}

fn total_cpu(r: &Report) -> Option<f64> {
    Some(
        r.resources.server_cpu_s_per_1000_conversations?
            + r.resources.postgres_cpu_s_per_1000_conversations.unwrap_or(0.0),
    )
}

/// The ratios of each side's figures, aggregated `how`.
pub fn ratios(runs: &[Run], how: Aggregate) -> Ratios {
    const OP: (Side, Side) = (Side::Omniroute, Side::Peer);
    const PO: (Side, Side) = (Side::Peer, Side::Omniroute);
    let lat = |f: fn(&Report) -> Option<f64>| ratio(runs, how, PO, false, f);
    Ratios {
        throughput_webhooks_acked_omniroute_over_peer: ratio(runs, how, OP, true, |r| {
            Some(r.throughput.webhooks_acked_per_s)
        }),
        ingest_ceiling_omniroute_over_peer: ratio(runs, how, OP, true, |r| {
            r.ceiling.as_ref().map(|c| c.ceiling_messages_per_s)
        }),
        p99_webhook_ack_peer_over_omniroute: lat(|r| p99(&r.latency.webhook_ack)),
        p99_message_to_screen_peer_over_omniroute: lat(|r| p99(&r.latency.customer_message_to_agent_screen)),
        p99_new_conversation_to_assignment_peer_over_omniroute: lat(|r| {
            p99(&r.latency.new_conversation_to_offer_or_assignment)
        }),
        p99_send_to_provider_peer_over_omniroute: lat(|r| p99(&r.latency.agent_send_to_provider)),
        p50_message_to_screen_peer_over_omniroute: lat(|r| {
            let s = &r.latency.customer_message_to_agent_screen;
            (s.count > 0).then_some(s.p50_ms)
        }),
        server_cpu_per_1000_conversations_peer_over_omniroute: lat(|r| r.resources.server_cpu_s_per_1000_conversations),
        postgres_cpu_per_1000_conversations_peer_over_omniroute: lat(|r| {
            r.resources.postgres_cpu_s_per_1000_conversations
        }),
        total_cpu_per_1000_conversations_peer_over_omniroute: lat(total_cpu),
    }
}

impl Comparison {
    /// The human-readable summary: one line per run, then the ratios.
    pub fn table(&self) -> String {
        let mut out = String::from("\nABBA comparison (each run on a fresh database)\n");
        out.push_str(&format!(
            "{:<3} {:<10} {:>10} {:>10} {:>11} {:>11} {:>11} {:>11} {:>12} {:>9}\n",
            "#",
            "server",
            "acked/s",
            "replies/s",
            "ack p99",
            "screen p99",
            "assign p99",
            "send p99",
            "CPU s/1000c",
            "correct"
        ));
        for r in &self.runs {
            let rep = &r.report;
            let l = &rep.latency;
            out.push_str(&format!(
                "{:<3} {:<10} {:>10.1} {:>10.1} {:>9.1}ms {:>9.1}ms {:>9.1}ms {:>9.1}ms {:>12} {:>9}\n",
                r.position,
                format!("{:?}", r.side).to_lowercase(),
                rep.throughput.webhooks_acked_per_s,
                rep.throughput.replies_per_s,
                l.webhook_ack.p99_ms,
                l.customer_message_to_agent_screen.p99_ms,
                l.new_conversation_to_offer_or_assignment.p99_ms,
                l.agent_send_to_provider.p99_ms,
                total_cpu(rep).map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into()),
                if rep.correctness.all_zero() { "yes" } else { "NO" },
            ));
        }
        let ceilings: Vec<String> = self
            .runs
            .iter()
            .filter_map(|r| r.report.ceiling.as_ref().map(|c| (r, c)))
            .map(|(r, c)| format!("#{} {:.0}/s", r.position, c.ceiling_messages_per_s))
            .collect();
        if !ceilings.is_empty() {
            out.push_str(&format!("ingest ceiling of each run: {}\n", ceilings.join(" · ")));
        }
        let f = |v: Option<f64>| v.map(|v| format!("{v:.2}×")).unwrap_or_else(|| "-".into());
        for (name, k) in [("means of two runs each", &self.ratios), ("each side's better run", &self.ratios_best_runs)]
        {
            if let Some(c) = k.ingest_ceiling_omniroute_over_peer {
                out.push_str(&format!("\nratios ({name}): ingest ceiling Omniroute/peer {c:.2}×"));
            }
            out.push_str(&format!(
                "\nratios ({name}): throughput Omniroute/peer {} (webhooks acknowledged)\n\
                 p99 peer/Omniroute: webhook ack {} · message → screen {} · new conversation → assignment {} · send → provider {}\n\
                 p50 message → screen peer/Omniroute {} · CPU per 1,000 conversations peer/Omniroute: server {} · PostgreSQL {} · both {}\n",
                f(k.throughput_webhooks_acked_omniroute_over_peer),
                f(k.p99_webhook_ack_peer_over_omniroute),
                f(k.p99_message_to_screen_peer_over_omniroute),
                f(k.p99_new_conversation_to_assignment_peer_over_omniroute),
                f(k.p99_send_to_provider_peer_over_omniroute),
                f(k.p50_message_to_screen_peer_over_omniroute),
                f(k.server_cpu_per_1000_conversations_peer_over_omniroute),
                f(k.postgres_cpu_per_1000_conversations_peer_over_omniroute),
                f(k.total_cpu_per_1000_conversations_peer_over_omniroute),
            ));
        }
        if !self.all_correct {
            out.push_str("a correctness counter of some run is not zero (see its table above)\n");
        }
        out
    }
}
