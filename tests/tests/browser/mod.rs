//! What the browser tests share: chromedriver on a free port, a headless Chromium session
//! (Debian's chromium + chromium-driver; `make test` installs them), screenshots to
//! `target/e2e/`, and finding, clicking and reading elements by CSS selector while the page
//! re-renders live.
#![allow(dead_code)]

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// chromedriver in a process group of its own, killed with every browser it started and
/// reaped however the test ends (a failing test does not close its sessions, and a Chromium
/// orphaned by its driver would run on).
pub struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free local port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// chromedriver on a free port.
pub async fn driver() -> (Driver, u16) {
    let port = free_port();
    // Owned by `Driver` at once, so it is killed and reaped however the test ends.
    let driver = Driver(
        Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; `make test` installs it)"),
    );
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (driver, port);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("chromedriver did not start");
}

/// A headless Chromium session with a fresh profile, 1280×800 (unless `extra_args` sizes it), no
/// background networking;
/// `extra_args` and Chrome `prefs` added.
pub async fn browser(port: u16, extra_args: &[String], prefs: Value) -> Client {
    let profile = std::env::temp_dir().join(format!("omniroute-e2e-{}", uuid_like()));
    let mut args: Vec<String> = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if !extra_args.iter().any(|a| a.starts_with("--window-size=")) {
        args.push("--window-size=1280,800".into());
    }
    args.extend(extra_args.iter().cloned());
    args.push(format!("--user-data-dir={}", profile.display()));
    let caps = json!({"goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args, "prefs": prefs}});
    let caps = caps.as_object().unwrap().clone().into_iter().collect();
    ClientBuilder::native()
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a browser session")
}

/// A name unique to this process and instant.
pub fn uuid_like() -> String {
    format!("{:x}{:x}", std::process::id(), Utc::now().timestamp_nanos_opt().unwrap_or(0))
}

fn shots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/e2e");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A screenshot as `target/e2e/<name>.png`.
pub async fn shot(c: &Client, name: &str) {
    if let Ok(png) = c.screenshot().await {
        let _ = std::fs::write(shots_dir().join(format!("{name}.png")), png);
    }
}

/// The element `css` selects, waiting up to 10 s for it.
pub async fn find(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css}: {e}"))
}

/// Clicks an element, finding it again if the page re-rendered it in between (live updates
/// replace list items, so a found element can go stale before the click lands).
pub async fn click(c: &Client, css: &str) {
    let mut last = String::new();
    for _ in 0..50 {
        match c.find(Locator::Css(css)).await {
            Ok(el) => match el.click().await {
                Ok(()) => return,
                Err(e) => last = e.to_string(),
            },
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("could not click {css}: {last}");
}

/// Waits until the element's text satisfies `pred`.
pub async fn text_until(c: &Client, css: &str, pred: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    for _ in 0..100 {
        if let Ok(el) = c.find(Locator::Css(css)).await
            && let Ok(t) = el.text().await
        {
            if pred(&t) {
                return t;
            }
            last = t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} never matched; last text: {last:?}");
}

/// The demo contact center (`web::seed`) on a fresh database, served on a free port.
pub struct Demo {
    pub db: schema::testing::TestDb,
    /// The demo's service of the channel asked for.
    pub service: schema::ServiceId,
    pub engine: engine::Engine,
    pub state: web::core::state::AppState,
    /// `http://127.0.0.1:port/`.
    pub base: String,
}

/// Seeds the demo, starts the engine and serves every route, as `omniroute serve` would.
pub async fn demo_server(channel: schema::Channel) -> Demo {
    demo_server_with(channel, |_, _| {}).await
}

/// [`demo_server`] with the seeded database changed by `adjust` (given the service of `channel`)
/// before the engine starts.
pub async fn demo_server_with(
    channel: schema::Channel,
    adjust: impl FnOnce(&mut schema::PgConnection, schema::ServiceId),
) -> Demo {
    use schema::Connection;
    let db = schema::testing::TestDb::new();
    db.conn().transaction(web::boot::seed::seed).unwrap();
    let service =
        schema::store::list_services(&mut db.conn()).unwrap().into_iter().find(|s| s.channel == channel).unwrap().id;
    adjust(&mut db.conn(), service);
    let engine = engine::Engine::start(db.pool(), engine::Clock::System).await.unwrap();
    let state = web::boot::state(db.pool(), engine.clone());
    // The senders run as in `omniroute serve`, so a reply reaches the service's provider.
    web::channels::outbound::spawn(state.clone(), state.outbox.clone());
    let app_state = state.clone();
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(actix_web::web::Data::new(app_state.clone()))
            .configure(web::boot::routes::configure)
    })
    .workers(2)
    .bind("127.0.0.1:0")
    .unwrap();
    let base = format!("http://127.0.0.1:{}/", server.addrs()[0].port());
    actix_rt::spawn(server.run());
    Demo { db, service, engine, state, base }
}

/// The desk names its elements with `data-testid`.
pub fn tid(id: &str) -> String {
    format!("[data-testid=\"{id}\"]")
}

/// Signs `login` in with the demo password and waits for the desk.
pub async fn sign_in(c: &Client, base: &str, login: &str) {
    c.goto(base).await.unwrap();
    find(c, &tid("login-input")).await.send_keys(login).await.unwrap();
    find(c, &tid("password-input")).await.send_keys(&format!("{login}-demo1")).await.unwrap();
    click(c, &tid("login-submit")).await;
    find(c, &tid("presence-status")).await;
}

/// Becomes available through the presence control and waits for the desk to say so.
pub async fn go_available(c: &Client) {
    click(c, &tid("presence-status")).await;
    click(c, &tid("presence-available")).await;
    text_until(c, &tid("presence-status"), |t| t.to_lowercase().contains("dispon")).await;
}

/// A WhatsApp customer (`wa_id`, profile `name`) writes `text` as message `id`: a webhook in
/// Meta's format, signed with the demo service's app secret, to the running server.
pub async fn whatsapp_customer_writes(base: &str, wa_id: &str, name: &str, id: &str, text: &str) {
    let message = json!({"from": wa_id, "id": id, "timestamp": "1764000000", "type": "text", "text": {"body": text}});
    whatsapp_customer_sends(base, wa_id, name, message).await;
}

/// A WhatsApp customer sends `message` (one entry of the webhook's `messages`, any type).
pub async fn whatsapp_customer_sends(base: &str, wa_id: &str, name: &str, message: Value) {
    let payload = json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages",
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "5511900000000", "phone_number_id": "100000000000001"},
                  "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
                  "messages": [message]}}]}]});
    let body = payload.to_string();
    let res = awc::Client::new()
        .post(format!("{base}webhooks/whatsapp"))
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("X-Hub-Signature-256", web::channels::whatsapp::sign("demo-app-secret", body.as_bytes())))
        .send_body(body)
        .await
        .expect("webhook");
    assert_eq!(res.status(), 200);
}

/// A TCP relay in front of the server that can lose the connection like a network does: cut,
/// every open connection through it is dropped and new ones are refused until it is restored.
pub struct Relay {
    pub base: String,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    epoch: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Relay {
    /// Relays a free local port to `target` (`http://127.0.0.1:port/`).
    pub async fn start(target: &str) -> Relay {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let to: std::net::SocketAddr =
            target.trim_start_matches("http://").trim_end_matches('/').parse().expect("a local address");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/", listener.local_addr().unwrap());
        let up = std::sync::Arc::new(AtomicBool::new(true));
        let epoch = std::sync::Arc::new(AtomicU64::new(0));
        let (up2, epoch2) = (up.clone(), epoch.clone());
        actix_rt::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // refused: dropped at once
                }
                let (up, epoch) = (up2.clone(), epoch2.clone());
                let born = epoch.load(Ordering::SeqCst);
                actix_rt::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(to).await else { return };
                    let relay = tokio::io::copy_bidirectional(&mut client, &mut server);
                    let cut = async {
                        while up.load(Ordering::SeqCst) && epoch.load(Ordering::SeqCst) == born {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    };
                    tokio::select! { _ = relay => {}, _ = cut => {} }
                });
            }
        });
        Relay { base, up, epoch }
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        use std::sync::atomic::Ordering;
        self.up.store(false, Ordering::SeqCst);
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The demo email service's webhook receives a mail from `from` with this subject and text.
pub async fn email_customer_writes(base: &str, service: schema::ServiceId, from: &str, subject: &str, text: &str) {
    let id = format!("<{}@customer.example>", uuid_like());
    let mail = format!(
        "From: {from}\r\nTo: atendimento@omniroute.example\r\nSubject: {subject}\r\nMessage-ID: {id}\r\nDate: Tue, 8 Dec 2026 09:00:00 -0300\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"
    );
    let res = awc::Client::new()
        .post(format!("{base}webhooks/email/{service}"))
        .insert_header(("Content-Type", "message/rfc822"))
        .insert_header((web::channels::email::SECRET_HEADER, "demo-email-secret"))
        .send_body(mail)
        .await
        .expect("email webhook");
    assert!(res.status().is_success(), "the mail was taken: {}", res.status());
}

/// The value of a script run in the page.
pub async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.unwrap()
}
