//! `omniroute seed-demo`: a small, believable contact center to try the desk with.
//! Idempotent: running it again changes nothing and prints the same logins.

use anyhow::Context;
use chrono::Utc;
use schema::models::{Agent, CannedMessage, Classification, PauseReason, Service};
use schema::{
    AgentId, CannedMessageId, Channel, ClassificationId, Connection, PauseReasonId, PgConnection, Role, store,
};
use serde_json::json;

use crate::boot::config::Config;

/// The demo people: login, name, role, extension. Their password is `<login>-demo1`.
const PEOPLE: &[(&str, &str, Role, Option<&str>)] = &[
    ("ana", "Ana Souza", Role::Agent, Some("2001")),
    ("bruno", "Bruno Lima", Role::Agent, Some("2002")),
    ("carla", "Carla Dias", Role::Agent, Some("2003")),
    ("sofia", "Sofia Martins", Role::Supervisor, Some("2100")),
    ("admin", "Administrador", Role::Admin, None),
];

const PAUSE_REASONS: &[&str] = &["Almoço", "Café", "Treinamento", "Feedback com supervisor", "Pausa pessoal"];

const CLASSIFICATIONS: &[&str] =
    &["Dúvida resolvida", "Reclamação", "Venda realizada", "Suporte técnico", "Cliente não respondeu"];

const CANNED: &[(&str, &str)] = &[
    ("Saudação", "Olá! Obrigado por entrar em contato. Como posso ajudar?"),
    ("Aguarde", "Um momento, por favor, estou verificando para você."),
    ("Protocolo", "Seu atendimento foi registrado. Guarde este protocolo para futuras consultas."),
    ("Encerramento", "Posso ajudar em algo mais? Obrigado pelo contato e tenha um ótimo dia!"),
];

/// The demo password of a seeded login.
pub fn demo_password(login: &str) -> String {
    format!("{login}-demo1")
}

/// Where the demo services point: the server itself (webhook URLs, the webchat's origin) and the
/// demo's provider sandbox (the providers' APIs and an SMTP sink), all on this machine.
#[derive(Debug, Clone)]
pub struct DemoUrls {
    /// `http://host:port` of the server, as `OMNIROUTE_BIND` says.
    pub server: String,
    /// `http://host:port` of the sandbox (`OMNIROUTE_DEMO_SANDBOX_BIND`).
    pub sandbox: String,
    /// `host:port` of the sandbox's SMTP sink (`OMNIROUTE_DEMO_SMTP_BIND`).
    pub smtp: String,
}

impl DemoUrls {
    /// The addresses the configuration names.
    pub fn of(config: &Config) -> Self {
        Self {
            server: format!("http://{}", loopback(config.bind)),
            sandbox: format!("http://{}", config.demo.sandbox_bind),
            smtp: config.demo.smtp_bind.to_string(),
        }
    }
}

/// A wildcard listen address as the address this machine reaches it at.
pub fn loopback(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    if addr.ip().is_unspecified() { std::net::SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr }
}

impl Default for DemoUrls {
    fn default() -> Self {
        Self {
            server: "http://127.0.0.1:8080".into(),
            sandbox: "http://127.0.0.1:8089".into(),
            smtp: "127.0.0.1:2525".into(),
        }
    }
}

/// Seeds the demo and prints the logins.
pub fn seed_demo(config: &Config) -> anyhow::Result<()> {
    let mut conn = crate::boot::server::connect(config)?;
    schema::migrate::run_pending(&mut conn).context("migrating the database")?;
    let urls = DemoUrls::of(config);
    conn.transaction(|c| seed_at(c, &urls)).context("seeding the demo")?;
    println!("Demo contact center ready. Sign in with (login / password):");
    for (login, name, role, _) in PEOPLE {
        println!("  {login:<6} / {:<12} {name} ({role})", demo_password(login));
    }
    Ok(())
}

/// Writes the demo rows that are missing, the services pointing at the default addresses.
pub fn seed(conn: &mut PgConnection) -> Result<(), schema::StoreError> {
    seed_at(conn, &DemoUrls::default())
}

/// Writes the demo rows that are missing, the services pointing at `urls`.
pub fn seed_at(conn: &mut PgConnection, urls: &DemoUrls) -> Result<(), schema::StoreError> {
    let now = Utc::now();
    let existing: Vec<String> = store::list_services(conn)?.into_iter().map(|s| s.name).collect();
    for channel in Channel::ALL {
        let name = service_name(*channel);
        if existing.iter().any(|n| n == name) {
            continue;
        }
        let mut service = Service::with_defaults(name, *channel, now);
        (service.provider, service.provider_key) = demo_provider(*channel, urls);
        service.email_approval = false;
        service.insert(conn)?;
    }
    let services = store::list_services(conn)?;

    for (login, name, role, extension) in PEOPLE {
        let agent = match store::agent_by_login(conn, login)? {
            Some(agent) => agent,
            None => Agent {
                id: AgentId::new(),
                login: (*login).to_owned(),
                name: (*name).to_owned(),
                role: *role,
                password_hash: crate::core::password::hash(&demo_password(login)),
                active: true,
                extension: extension.map(str::to_owned),
                auto_distribution: None,
                created_at: now,
                updated_at: now,
            }
            .insert(conn)?,
        };
        if agent.role != Role::Admin {
            for service in &services {
                store::add_membership(conn, agent.id, service.id, now)?;
            }
        }
    }

    let reasons: Vec<String> = store::list_pause_reasons(conn)?.into_iter().map(|r| r.name).collect();
    for name in PAUSE_REASONS.iter().filter(|n| !reasons.iter().any(|r| r == *n)) {
        PauseReason { id: PauseReasonId::new(), name: (*name).to_owned(), active: true, created_at: now }
            .insert(conn)?;
    }
    let classes: Vec<String> = store::classifications_for(conn, None)?.into_iter().map(|c| c.name).collect();
    for name in CLASSIFICATIONS.iter().filter(|n| !classes.iter().any(|c| c == *n)) {
        Classification {
            id: ClassificationId::new(),
            name: (*name).to_owned(),
            service_id: None,
            active: true,
            created_at: now,
        }
        .insert(conn)?;
    }
    let canned: Vec<String> = store::canned_messages_for(conn, None)?.into_iter().map(|c| c.title).collect();
    for (title, text) in CANNED.iter().filter(|(t, _)| !canned.iter().any(|c| c == t)) {
        CannedMessage {
            id: CannedMessageId::new(),
            title: (*title).to_owned(),
            text: (*text).to_owned(),
            service_id: None,
            created_at: now,
        }
        .insert(conn)?;
    }
    Ok(())
}

fn service_name(channel: Channel) -> &'static str {
    match channel {
        Channel::Email => "E-mail Atendimento",
        Channel::Webchat => "Chat do Site",
        Channel::Whatsapp => "WhatsApp Atendimento",
        Channel::Messenger => "Facebook Messenger",
        Channel::Instagram => "Instagram Direct",
        Channel::Telegram => "Telegram Bot",
        Channel::Sms => "SMS",
        Channel::Voice => "Central Telefônica",
    }
}

/// Demo credentials in the shape of SPEC.md's `provider` object, marked `"demo": true` (the mark
/// `boot::demo` looks for before simulating anything). The providers' APIs are the demo's sandbox
/// on this machine, so nothing leaves it until an admin configures a real provider.
fn demo_provider(channel: Channel, urls: &DemoUrls) -> (serde_json::Value, Option<String>) {
    let (server, sandbox, smtp) = (&urls.server, &urls.sandbox, &urls.smtp);
    let (mut provider, key) = match channel {
        Channel::Whatsapp => (
            json!({"phone_number_id": "100000000000001", "app_secret": "demo-app-secret",
                   "verify_token": "demo-verify-token", "access_token": "demo-access-token",
                   "api_base_url": format!("{sandbox}/graph")}),
            Some("100000000000001".into()),
        ),
        Channel::Messenger => (
            json!({"page_id": "200000000000001", "app_secret": "demo-app-secret",
                   "verify_token": "demo-verify-token", "access_token": "demo-access-token",
                   "api_base_url": format!("{sandbox}/graph")}),
            Some("200000000000001".into()),
        ),
        Channel::Instagram => (
            json!({"account_id": "300000000000001", "app_secret": "demo-app-secret",
                   "verify_token": "demo-verify-token", "access_token": "demo-access-token",
                   "api_base_url": format!("{sandbox}/graph")}),
            Some("300000000000001".into()),
        ),
        Channel::Telegram => (
            json!({"bot_token": "000000:demo-bot-token", "secret_token": "demo-secret-token",
                   "api_base_url": format!("{sandbox}/telegram")}),
            None,
        ),
        Channel::Sms => (
            json!({"account_sid": "AC00000000000000000000000000000000", "auth_token": "demo-auth-token",
                   "phone_number": "+5511900000000", "webhook_url": format!("{server}/webhooks/twilio/sms"),
                   "api_base_url": format!("{sandbox}/twilio")}),
            Some("+5511900000000".into()),
        ),
        // Mail arrives through the raw-MIME webhook, so there is no mailbox to poll.
        Channel::Email => (
            json!({"address": "atendimento@omniroute.example", "smtp_url": format!("smtp://{smtp}"),
                   "webhook_secret": "demo-email-secret"}),
            Some("atendimento@omniroute.example".into()),
        ),
        Channel::Webchat => {
            let port = server.rsplit(':').next().unwrap_or("8080");
            (json!({"allowed_origins": [server, format!("http://localhost:{port}")]}), None)
        }
        Channel::Voice => (json!({"cti_token": "demo-cti-token"}), None),
    };
    provider["demo"] = json!(true);
    (provider, key)
}
