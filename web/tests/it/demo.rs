//! Demo mode (`boot::demo`): simulated customers through the real webhooks, and the provider
//! sandbox that acknowledges the senders and reports delivered and read, only on a demo seed.

use std::time::Duration;

use schema::models::{Message, Service};
use schema::{Channel, Connection, MessageDirection, MessageStatus};
use serde_json::json;
use web::boot::demo::{Running, Settings, start};
use web::boot::seed::{DemoUrls, seed_at};

use crate::api_support::TestApp;
use crate::mail_servers::free_port;

/// Settings with short intervals: the first customer at once, no second one during a test.
fn fast(max_open: usize) -> Settings {
    Settings {
        enabled: true,
        sandbox_bind: ([127, 0, 0, 1], free_port()).into(),
        smtp_bind: ([127, 0, 0, 1], free_port()).into(),
        first: Duration::from_millis(50),
        every: Duration::from_secs(3600),
        max_open,
        reply_after: Duration::from_millis(100),
        status_after: Duration::from_millis(100),
    }
}

/// A seeded demo whose services point at the sandbox of `settings`, with the outbound sender on.
async fn seeded(settings: &Settings) -> TestApp {
    let urls = DemoUrls {
        server: "http://127.0.0.1:8080".into(),
        sandbox: format!("http://{}", settings.sandbox_bind),
        smtp: settings.smtp_bind.to_string(),
    };
    TestApp::start_sending(|c| c.transaction(|c| seed_at(c, &urls)).expect("seed")).await.0
}

async fn run(app: &TestApp, settings: Settings) -> Option<Running> {
    let server = app.addr().parse().expect("server address");
    start(app.state.clone(), settings, server).await.expect("the demo starts")
}

fn messages(app: &TestApp) -> Vec<Message> {
    use diesel::prelude::*;
    schema::schema::messages::table
        .select(Message::as_select())
        .order(schema::schema::messages::created_at)
        .load(&mut app.conn())
        .unwrap()
}

fn service(app: &TestApp, channel: Channel) -> Service {
    schema::store::list_services(&mut app.conn()).unwrap().into_iter().find(|s| s.channel == channel).unwrap()
}

/// Polls `check` every 50 ms for up to 10 s.
async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(v) = check() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never: {what}");
}

#[actix_rt::test]
async fn demo_customer_writes_through_the_webhook_and_the_sandbox_acknowledges_the_reply_and_reports_it_read() {
    let settings = fast(4);
    let app = seeded(&settings).await;
    let whatsapp = service(&app, Channel::Whatsapp);
    let token = app.login_with("ana", "ana-demo1").await;
    app.put("/api/v1/me/presence", Some(&token), &json!({"status": "available"})).await.ok(200);
    let demo = run(&app, settings).await.expect("the demo runs on a seeded database");

    // The first customer writes on WhatsApp through the signed webhook; the message is stored
    // and routed to the only available agent.
    let first = eventually("a simulated customer's message", || {
        messages(&app).into_iter().find(|m| m.direction == MessageDirection::In)
    })
    .await;
    assert_eq!(first.service_id, whatsapp.id);
    assert!(first.provider_message_id.as_deref().unwrap_or("").starts_with("wamid.DEMOIN"), "{first:?}");
    assert!(first.body.as_deref().is_some_and(|b| !b.is_empty()));
    let c = first.conversation_id;
    let conversation = app.get(&format!("/api/v1/conversations/{c}"), Some(&token)).await;
    assert_eq!(conversation.ok(200)["state"], "in_service", "routed to ana: {}", conversation.text);
    assert!(conversation.text.contains("(demo)"), "the customer is named as a demo: {}", conversation.text);

    // Ana answers: the sandbox acknowledges in the Cloud API's format, then the signed status
    // webhook reports the message delivered, then read.
    let sent = app
        .post(&format!("/api/v1/conversations/{c}/messages"), Some(&token), &json!({"text": "Olá! Vou verificar."}))
        .await;
    let id: schema::MessageId = sent.ok(201)["id"].as_str().unwrap().parse().unwrap();
    let read = eventually("the reply read", || {
        let m = Message::find(&mut app.conn(), id).unwrap();
        (m.status == MessageStatus::Read).then_some(m)
    })
    .await;
    assert!(read.provider_message_id.as_deref().unwrap_or("").starts_with("wamid.DEMO"), "{read:?}");
    // Both steps were reported, delivered first.
    let (delivered_at, read_at) =
        (read.delivered_at.expect("delivered reported"), read.read_at.expect("read reported"));
    assert!(delivered_at <= read_at, "{read:?}");

    // The customer answers the agent on the same conversation.
    eventually("the customer's answer", || {
        let inbound: Vec<_> = messages(&app).into_iter().filter(|m| m.direction == MessageDirection::In).collect();
        (inbound.len() >= 2).then_some(())
    })
    .await;
    let inbound: Vec<_> = messages(&app).into_iter().filter(|m| m.direction == MessageDirection::In).collect();
    assert!(inbound.iter().all(|m| m.conversation_id == c), "the answer joins the conversation");
    demo.stop().await;
}

#[actix_rt::test]
async fn demo_customers_arrive_on_every_channel_through_its_webhook() {
    let mut settings = fast(10);
    settings.every = Duration::from_millis(100);
    let app = seeded(&settings).await;
    let demo = run(&app, settings).await.expect("the demo runs");
    let channels = eventually("six customers on six channels", || {
        let ins: Vec<_> = messages(&app).into_iter().filter(|m| m.direction == MessageDirection::In).collect();
        (ins.len() >= 6).then_some(ins)
    })
    .await;
    let services = schema::store::list_services(&mut app.conn()).unwrap();
    let mut arrived: Vec<Channel> =
        channels.iter().map(|m| services.iter().find(|s| s.id == m.service_id).unwrap().channel).collect();
    arrived.sort_by_key(|c| c.to_string());
    arrived.dedup();
    let mut expected = vec![
        Channel::Whatsapp,
        Channel::Messenger,
        Channel::Telegram,
        Channel::Sms,
        Channel::Instagram,
        Channel::Email,
    ];
    expected.sort_by_key(|c| c.to_string());
    assert_eq!(arrived, expected, "one customer on every channel the webhooks serve");
    demo.stop().await;
}

#[actix_rt::test]
async fn demo_stops_adding_customers_at_its_bound_of_open_conversations() {
    let mut settings = fast(2);
    settings.every = Duration::from_millis(60);
    let app = seeded(&settings).await;
    let demo = run(&app, settings).await.expect("the demo runs");
    eventually("two customers", || {
        (messages(&app).iter().filter(|m| m.direction == MessageDirection::In).count() >= 2).then_some(())
    })
    .await;
    // Ten more arrival times pass: nobody new writes while two demo conversations are open.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let open = schema::store::open_conversations(&mut app.conn()).unwrap();
    assert_eq!(open.len(), 2, "{open:?}");
    demo.stop().await;
}

#[actix_rt::test]
async fn demo_does_not_run_without_the_demo_seed_or_when_turned_off() {
    // A database an admin set up: no service is marked as a demo.
    let (app, _) = TestApp::start(|c| {
        schema::testing::fixtures::service(Channel::Whatsapp).insert(c).unwrap();
    })
    .await;
    let settings = fast(4);
    let sandbox = settings.sandbox_bind;
    assert!(run(&app, settings).await.is_none(), "no demo on a database without the demo seed");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(std::net::TcpStream::connect(sandbox).is_err(), "no sandbox listens");
    assert!(messages(&app).is_empty(), "no simulated customer wrote");

    // The demo seed with OMNIROUTE_DEMO=off.
    let mut settings = fast(4);
    settings.enabled = false;
    let app = seeded(&settings).await;
    assert!(run(&app, settings).await.is_none(), "OMNIROUTE_DEMO=off keeps it off");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(messages(&app).is_empty(), "no simulated customer wrote");
}
