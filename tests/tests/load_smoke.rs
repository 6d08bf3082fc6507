//! The load harness's smoke scenario (N4) against a real server on a real socket and a
//! real PostgreSQL: simulated agents over `/ws/agent`, customers through signed WhatsApp and
//! Telegram webhooks, a fake provider for the replies. What it checks is what a contact center
//! would notice — no conversation held by two agents, no agent over capacity, no offer to a
//! paused agent, nobody waiting while an agent is free, no acknowledged message missing from an
//! agent's screen, every reply at the provider. It asserts no time.

use std::time::Duration;

use benches::load::{self, Config, Scenario, Target};
use schema::testing::TestDb;

const ADMIN: &str = "smokeadmin";
const PASSWORD: &str = "smoke-admin-password";

/// Starts `omniroute serve` (the same code path as the binary) on `db` in a thread of its own;
/// answers its base URL. It runs until the test process ends.
fn serve(db: &TestDb) -> String {
    // A free port, released for the server to take.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = db.url().to_owned();
    let config = web::boot::config::Config::from_lookup(|name| match name {
        "DATABASE_URL" => Some(url.clone()),
        "OMNIROUTE_BIND" => Some(format!("127.0.0.1:{port}")),
        "OMNIROUTE_BOOTSTRAP_ADMIN" => Some(format!("{ADMIN}:{PASSWORD}")),
        "OMNIROUTE_WORKERS" => Some("2".into()),
        _ => None,
    })
    .unwrap();
    std::thread::spawn(move || {
        if let Err(e) = web::boot::server::serve(config) {
            eprintln!("server: {e:#}");
        }
    });
    format!("http://127.0.0.1:{port}")
}

#[test]
fn the_smoke_scenario_keeps_every_counter_at_zero_and_loses_no_message() {
    let db = TestDb::new();
    let base = serve(&db);
    let target = Target::Url { base, admin_login: ADMIN.into(), admin_password: PASSWORD.into() };
    let mut cfg = Config::preset(Scenario::Smoke, target);
    cfg.progress = false;
    cfg.duration = Duration::from_secs(4);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let report = runtime.block_on(load::run(cfg)).unwrap();
    println!("{}", report.table());

    let c = &report.counts;
    assert!(c.webhooks_sent > 20, "the customers wrote: {c:?}");
    assert_eq!((c.webhooks_acked, c.webhooks_refused, c.webhooks_failed), (c.webhooks_sent, 0, 0), "{c:?}");
    assert!(c.assignments > 0 && c.offers > 0, "both offer/accept (Telegram) and direct assignment (WhatsApp): {c:?}");
    assert!(c.replies_sent > 0 && c.concluded > 0, "the agents worked: {c:?}");
    assert_eq!(c.replies_at_provider, c.replies_sent, "every reply reached the provider: {c:?}");
    assert_eq!(c.agent_api_errors, 0, "{c:?}");
    assert!(report.latency.customer_message_to_agent_screen.count > 0, "messages reached the agents' screens live");
    assert!(c.monitor_samples > 0, "the waiting-while-free check had samples: {c:?}");
    assert!(report.correctness.all_zero(), "correctness counters: {:?}", report.correctness);
}
