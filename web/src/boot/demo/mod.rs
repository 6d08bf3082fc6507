//! Demo mode: a contact center that is alive on its first run. Only when the database holds the
//! demo seed (services marked `"demo": true` by `omniroute seed-demo`) and `OMNIROUTE_DEMO` is not
//! `off`, `omniroute serve` also starts
//! - a provider sandbox (`sandbox.rs`): an HTTP server on this machine speaking the outbound APIs
//!   the senders call (WhatsApp Cloud API, Messenger/Instagram Send API, Telegram Bot API, Twilio
//!   Messages) and an SMTP sink, which acknowledge each send in the provider's format, then report
//!   it delivered and read through the server's own signed status webhooks;
//! - simulated customers (`customers.rs`): now and then a demo customer writes on a channel
//!   through the real signed webhook, and answers an agent's reply once or twice.
//!
//! Everything goes through the same paths as a real provider's traffic: nothing here touches the
//! engine or the database except to read the demo services and count their open conversations.

mod customers;
mod sandbox;

use std::net::SocketAddr;
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use anyhow::{Context, anyhow};
use schema::models::Service;
use schema::{Channel, store};
use serde_json::Value;
use tracing::{info, warn};

use crate::core::db::db;
use crate::core::state::AppState;

/// How the demo behaves; `Config::demo` reads it from the environment (docs/configuration.md).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `OMNIROUTE_DEMO=off` keeps the demo off even on a seeded database.
    pub enabled: bool,
    /// Where the provider sandbox listens; the seeded services' `api_base_url` point here.
    pub sandbox_bind: SocketAddr,
    /// Where the SMTP sink listens; the seeded email service's `smtp_url` points here.
    pub smtp_bind: SocketAddr,
    /// When the first customer writes after the start.
    pub first: Duration,
    /// The mean time between customers: each gap is drawn between half and one and a half of it.
    pub every: Duration,
    /// Most open conversations in the demo services: no new customer writes while they are
    /// reached, so a demo left running overnight does not fill the disk.
    pub max_open: usize,
    /// A customer answers an agent between this and twice this after the agent's send.
    pub reply_after: Duration,
    /// A send is reported delivered this long after it is acknowledged, read twice this long.
    pub status_after: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            enabled: true,
            sandbox_bind: SocketAddr::from(([127, 0, 0, 1], 8089)),
            smtp_bind: SocketAddr::from(([127, 0, 0, 1], 2525)),
            first: Duration::from_secs(15),
            every: Duration::from_secs(60),
            max_open: 4,
            reply_after: Duration::from_secs(4),
            status_after: Duration::from_millis(1500),
        }
    }
}

/// A send the sandbox acknowledged: what the simulated provider reports on, and what a simulated
/// customer answers.
#[derive(Debug, Clone)]
pub struct Sent {
    pub service: schema::ServiceId,
    pub channel: Channel,
    /// The customer's address as the sender gave it (wa_id, PSID, chat id, phone, email address).
    pub to: String,
    /// The id the sandbox answered with (email: our Message-ID).
    pub provider_id: String,
    /// Email: the subject sent, so the customer's answer stays in the thread.
    pub subject: Option<String>,
}

/// The running demo: its addresses, and the sandbox to stop with the server.
pub struct Running {
    pub sandbox: SocketAddr,
    pub smtp: SocketAddr,
    handle: actix_web::dev::ServerHandle,
}

impl Running {
    /// Stops the sandbox's HTTP server (the SMTP sink and the customers end with the process).
    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}

/// Random hex for the ids the demo makes up (`wamid.DEMO…`, `SM…`, Message-IDs).
fn sandbox_hex() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

/// Whether a service was written by the demo seed.
pub fn is_demo(service: &Service) -> bool {
    service.provider.get("demo").and_then(Value::as_bool) == Some(true)
}

/// Starts the sandbox and the simulated customers when the database holds the demo seed;
/// `server` is where the server's webhooks are reached. `None` when the demo does not run.
pub async fn start(state: AppState, settings: Settings, server: SocketAddr) -> anyhow::Result<Option<Running>> {
    if !settings.enabled {
        info!("demo mode off (OMNIROUTE_DEMO=off)");
        return Ok(None);
    }
    let services: Vec<Service> = db(&state, store::list_services)
        .await
        .map_err(|e| anyhow!("listing services for the demo: {}", e.message))?
        .into_iter()
        .filter(|s| s.active && is_demo(s))
        .collect();
    if services.is_empty() {
        return Ok(None);
    }
    let (sent_tx, sent_rx) = tokio::sync::mpsc::channel(256);
    let sandbox = sandbox::Sandbox::new(services.clone(), sent_tx.clone());
    let http = HttpServer::new(move || App::new().app_data(web::Data::new(sandbox.clone())).configure(sandbox::routes))
        .workers(1)
        .disable_signals()
        .bind(settings.sandbox_bind)
        .with_context(|| {
            format!("the demo sandbox cannot listen on {} (OMNIROUTE_DEMO_SANDBOX_BIND)", settings.sandbox_bind)
        })?;
    let sandbox_addr = http.addrs()[0];
    let smtp_addr = sandbox::smtp_sink(settings.smtp_bind, services.clone(), sent_tx).await.with_context(|| {
        format!("the demo SMTP sink cannot listen on {} (OMNIROUTE_DEMO_SMTP_BIND)", settings.smtp_bind)
    })?;
    let server_http = http.run();
    let handle = server_http.handle();
    actix_web::rt::spawn(server_http);

    let sandbox_url = format!("http://{sandbox_addr}");
    for s in &services {
        let base = s.provider.get("api_base_url").and_then(Value::as_str).unwrap_or("");
        if !base.is_empty() && !base.starts_with(&sandbox_url) {
            warn!(service.id = %s.id, api_base_url = base, sandbox = %sandbox_url,
                "a demo service points elsewhere than the sandbox: its sends will fail (seed with the same OMNIROUTE_DEMO_SANDBOX_BIND)");
        }
    }
    let server_url = format!("http://{}", crate::boot::seed::loopback(server));
    info!(sandbox = %sandbox_url, smtp = %smtp_addr, services = services.len(),
        "demo mode: simulated customers and a provider sandbox at {sandbox_url}");
    println!(
        "Demo mode: simulated customers write on every channel; provider sandbox at {sandbox_url} (OMNIROUTE_DEMO=off turns it off)"
    );
    if let Some(chat) = services.iter().find(|s| s.channel == Channel::Webchat) {
        println!("Website chat (demo): {server_url}/webchat/{}", chat.id);
    }
    let simulator = customers::Simulator::new(state, services, settings, server_url);
    actix_web::rt::spawn(simulator.run(sent_rx));
    Ok(Some(Running { sandbox: sandbox_addr, smtp: smtp_addr, handle }))
}
