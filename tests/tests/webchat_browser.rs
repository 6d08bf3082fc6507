//! The customer chat widget in a real headless Chromium (Debian's chromium + chromium-driver),
//! against a real server and database: a customer opens `/webchat/{service_id}`, types a name and
//! email and a message; the agent (automatic distribution) answers through the REST API and the
//! answer appears on the page live; after a reload the page resumes the same conversation with the
//! whole history; a voice note recorded with a (fake) microphone arrives as audio. Screenshots of every step go to `target/e2e/`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use actix_web::{App, HttpServer, web as aw};
use chrono::Utc;
use engine::{Clock, Engine};
use fantoccini::{Client, ClientBuilder, Locator};
use schema::testing::TestDb;
use schema::{Channel, Connection, MessageStatus, store};
use serde_json::{Value, json};
use web::state::AppState;

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// chromedriver on a free port (`make test` installs Debian's chromium-driver when missing).
async fn driver() -> (Driver, u16) {
    let port = free_port();
    // Owned by `Driver` at once, so it is killed and reaped however the test ends.
    let driver = Driver(
        Command::new("chromedriver")
            .arg(format!("--port={port}"))
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

async fn browser(port: u16, lang: &str) -> Client {
    let profile = std::env::temp_dir().join(format!("omniroute-e2e-{}", uuid_like()));
    let caps = json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1280,800",
                // A fake microphone, granted without a prompt: the page records a real voice note.
                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                format!("--lang={lang}"),
                format!("--user-data-dir={}", profile.display()),
            ],
            "prefs": {"intl.accept_languages": lang}
        }
    });
    let caps = caps.as_object().unwrap().clone().into_iter().collect();
    ClientBuilder::native()
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a browser session")
}

fn uuid_like() -> String {
    format!("{:x}{:x}", std::process::id(), Utc::now().timestamp_nanos_opt().unwrap_or(0))
}

fn shots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/e2e");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    if let Ok(png) = c.screenshot().await {
        let _ = std::fs::write(shots_dir().join(format!("{name}.png")), png);
    }
}

fn tid(id: &str) -> String {
    format!("#{id}")
}

async fn find(c: &Client, id: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(&tid(id)))
        .await
        .unwrap_or_else(|e| panic!("no element {id}: {e}"))
}

/// Clicks an element, finding it again if the page re-rendered it in between.
async fn click(c: &Client, id: &str) {
    let mut last = String::new();
    for _ in 0..50 {
        match c.find(Locator::Css(&tid(id))).await {
            Ok(el) => match el.click().await {
                Ok(()) => return,
                Err(e) => last = e.to_string(),
            },
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("could not click {id}: {last}");
}

/// Waits until the element's text satisfies `pred`.
async fn text_until(c: &Client, id: &str, pred: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    for _ in 0..100 {
        if let Ok(el) = c.find(Locator::Css(&tid(id))).await
            && let Ok(t) = el.text().await
        {
            if pred(&t) {
                return t;
            }
            last = t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{id} never matched; last text: {last:?}");
}

/// Waits until an element's attribute has this value.
async fn text_until_attr(c: &Client, id: &str, attr: &str, value: &str) {
    for _ in 0..100 {
        if find(c, id).await.attr(attr).await.ok().flatten().as_deref() == Some(value) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{id}[{attr}] never became {value:?}");
}

/// Whether an element is not displayed.
async fn hidden(c: &Client, id: &str) -> bool {
    !find(c, id).await.is_displayed().await.unwrap()
}

/// Waits until an element is displayed (or not).
async fn shown_until(c: &Client, id: &str, displayed: bool) {
    for _ in 0..100 {
        if hidden(c, id).await != displayed {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{id} never became {}", if displayed { "visible" } else { "hidden" });
}

/// Signs an agent in through the API and makes them available; returns the token.
async fn agent_ready(base: &str, login: &str) -> String {
    let client = awc::Client::new();
    let mut res = client
        .post(format!("{base}api/v1/auth/login"))
        .send_json(&json!({"login": login, "password": web::seed::demo_password(login)}))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let token = res.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    let res = client
        .put(format!("{base}api/v1/me/presence"))
        .bearer_auth(&token)
        .send_json(&json!({"status": "available"}))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    token
}

#[actix_rt::test]
async fn a_customer_chats_on_the_page_gets_the_agents_answer_live_and_keeps_it_after_a_reload() {
    let db = TestDb::new();
    db.conn().transaction(web::seed::seed).unwrap();
    let service =
        store::list_services(&mut db.conn()).unwrap().into_iter().find(|s| s.channel == Channel::Webchat).unwrap().id;
    let engine = Engine::start(db.pool(), Clock::System).await.unwrap();
    let state = AppState::new(db.pool(), engine.clone());
    web::channels::outbound::spawn(state.clone(), state.outbox.clone());
    let app_state = state.clone();
    let server = HttpServer::new(move || {
        App::new().app_data(aw::Data::new(app_state.clone())).configure(web::routes::configure)
    })
    .workers(2)
    .bind("127.0.0.1:0")
    .unwrap();
    let base = format!("http://127.0.0.1:{}/", server.addrs()[0].port());
    actix_rt::spawn(server.run());
    let ana = agent_ready(&base, "ana").await;

    let (_driver, port) = driver().await;
    let page = browser(port, "en-US").await;
    page.goto(&format!("{base}webchat/{service}")).await.unwrap();
    find(&page, "name").await;
    assert!(hidden(&page, "conversation").await, "only the start form at first");
    shot(&page, "webchat-01-start-form").await;

    // A wrong email is caught on the page; then the chat starts.
    find(&page, "name").await.send_keys("Marina Costa").await.unwrap();
    find(&page, "email").await.send_keys("marina@").await.unwrap();
    click(&page, "start-button").await;
    text_until(&page, "email-error", |t| !t.trim().is_empty()).await;
    shot(&page, "webchat-02-invalid-email").await;
    find(&page, "email").await.send_keys("example.com").await.unwrap();
    click(&page, "start-button").await;
    shown_until(&page, "start", false).await;
    shown_until(&page, "conversation", true).await;
    text_until(&page, "status", |t| !t.trim().is_empty()).await;

    // The customer writes; it is stored (acknowledged) and shown as sent.
    find(&page, "text").await.send_keys("Olá! Meu pedido 4521 não chegou.").await.unwrap();
    click(&page, "send").await;
    text_until(&page, "messages", |t| t.contains("pedido 4521")).await;
    let mut sent = false;
    for _ in 0..100 {
        sent = page
            .execute("return !!document.querySelector('#messages .msg.customer[data-id]:not(.sending)')", vec![])
            .await
            .unwrap()
            .as_bool()
            .unwrap_or(false);
        if sent {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sent, "the message is shown as stored once the server acknowledged it");
    let conversation = {
        let mut found = None;
        for _ in 0..100 {
            found = store::open_conversations(&mut db.conn()).unwrap().into_iter().find(|c| c.service_id == service);
            if found.as_ref().is_some_and(|c| c.current_agent_id.is_some()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        found.expect("the chat's conversation")
    };
    assert_eq!(conversation.customer_name.as_deref(), Some("Marina Costa"));
    let texts: Vec<String> =
        store::messages_of(&mut db.conn(), conversation.id).unwrap().into_iter().filter_map(|m| m.body).collect();
    assert_eq!(texts, ["Olá! Meu pedido 4521 não chegou."]);
    text_until(&page, "status", |t| t.contains("atendente") || t.contains("agent")).await;
    shot(&page, "webchat-03-customer-wrote").await;

    // The agent answers through the REST API: it appears on the page without a reload.
    let mut res = awc::Client::new()
        .post(format!("{base}api/v1/conversations/{}/messages", conversation.id))
        .bearer_auth(&ana)
        .send_json(&json!({"text": "Olá, Marina! Sou a Ana, vou verificar o pedido 4521."}))
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let reply: Value = res.json().await.unwrap();
    text_until(&page, "messages", |t| t.contains("Sou a Ana")).await;
    shot(&page, "webchat-04-agent-answered").await;
    // The desk's ticks: the page received and showed it.
    let reply_id: schema::MessageId = reply["id"].as_str().unwrap().parse().unwrap();
    let mut status = MessageStatus::Pending;
    for _ in 0..100 {
        status = schema::models::Message::find(&mut db.conn(), reply_id).unwrap().status;
        if status == MessageStatus::Read {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, MessageStatus::Read);

    // A reload resumes the same conversation with its history.
    page.refresh().await.unwrap();
    text_until(&page, "messages", |t| t.contains("pedido 4521") && t.contains("Sou a Ana")).await;
    shown_until(&page, "conversation", true).await;
    assert!(hidden(&page, "start").await, "no start form again");
    shot(&page, "webchat-05-after-reload").await;
    let open = store::open_conversations(&mut db.conn()).unwrap();
    assert_eq!(open.iter().filter(|c| c.service_id == service).count(), 1, "still one conversation");

    // A voice note: record with the (fake) microphone, stop, and it is sent as audio.
    click(&page, "record").await;
    text_until_attr(&page, "record", "aria-pressed", "true").await;
    tokio::time::sleep(Duration::from_millis(1500)).await; // something to record
    click(&page, "record").await;
    let mut audio = None;
    for _ in 0..100 {
        audio = store::messages_of(&mut db.conn(), conversation.id)
            .unwrap()
            .into_iter()
            .find(|m| m.kind == schema::MessageKind::Audio);
        if audio.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let audio = audio.expect("the voice note is stored as an audio message");
    let files = store::attachments_of(&mut db.conn(), audio.id).unwrap();
    assert_eq!(files.len(), 1);
    assert!(files[0].content_type.starts_with("audio/") && files[0].size_bytes > 0, "{:?}", files[0]);
    find(&page, "messages").await.find(Locator::Css("audio")).await.expect("a player for the voice note");
    shot(&page, "webchat-06-voice-note").await;

    let _ = page.close().await;

    // A Brazilian browser gets the page in Portuguese.
    let pt = browser(port, "pt-BR").await;
    pt.goto(&format!("{base}webchat/{service}")).await.unwrap();
    text_until(&pt, "start-button", |t| t == "Iniciar conversa").await;
    text_until(&pt, "title", |t| t == "Fale conosco").await;
    shot(&pt, "webchat-07-pt-br").await;
    let _ = pt.close().await;
    engine.stop();
}
