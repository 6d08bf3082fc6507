//! The supervisor's live monitor over a real WebSocket (`/ws/monitor`, SPEC.md A "Supervisor",
//! S1) and the Prometheus endpoint (`GET /metrics`, S5), against a real server and database,
//! with customers writing through signed WhatsApp webhooks.

use std::time::Duration;

use awc::http::Method;
use awc::ws;
use diesel::prelude::*;
use futures_util::{SinkExt, StreamExt};
use schema::{ConversationId, ServiceId};
use serde_json::{Value, json};
use web::channels::whatsapp::sign;

use crate::api_support::{TestApp, World};

const PHONE_ID: &str = "106540352242999";
const SECRET: &str = "monitor-app-secret";

/// Gives the World's first WhatsApp service the credentials of a signed webhook.
fn whatsapp_webhook(app: &TestApp, service: ServiceId) {
    use schema::schema::services::dsl;
    diesel::update(dsl::services.find(service))
        .set((
            dsl::provider.eq(json!({"phone_number_id": PHONE_ID, "app_secret": SECRET, "verify_token": "tok",
                                    "access_token": "x", "api_base_url": "http://127.0.0.1:9"})),
            dsl::provider_key.eq(Some(PHONE_ID)),
        ))
        .execute(&mut app.conn())
        .unwrap();
}

/// A WhatsApp webhook body with one customer text message.
fn webhook_body(wamid: &str, from: &str, text: &str) -> Vec<u8> {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages",
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_ID},
                  "contacts": [{"profile": {"name": "Customer"}, "wa_id": from}],
                  "messages": [{"from": from, "id": wamid, "timestamp": "1749416383", "type": "text", "text": {"body": text}}]}}]}]})
    .to_string()
    .into_bytes()
}

/// A customer's text message through the signed webhook (200 once it is committed): how many
/// messages were stored (0 for a replay).
async fn customer_writes(app: &TestApp, wamid: &str, from: &str, text: &str) -> u64 {
    let body = webhook_body(wamid, from, text);
    let signature = sign(SECRET, &body);
    let headers = [("Content-Type", "application/json"), ("X-Hub-Signature-256", signature.as_str())];
    app.raw(Method::POST, "/webhooks/whatsapp", &headers, &body).await.ok(200)["stored"].as_u64().unwrap()
}

fn conversation_of(app: &TestApp, address: &str) -> ConversationId {
    use schema::schema::conversations::dsl;
    dsl::conversations.filter(dsl::customer_address.eq(address)).select(dsl::id).first(&mut app.conn()).unwrap()
}

type Conn = actix_codec::Framed<awc::BoxedSocket, ws::Codec>;

async fn connect(app: &TestApp, token: Option<&str>) -> Result<Conn, awc::error::WsClientError> {
    let mut req = awc::Client::new().ws(app.url("ws", "/ws/monitor"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.connect().await.map(|(_, conn)| conn)
}

/// The next JSON message, answering pings on the way.
async fn next(conn: &mut Conn) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), conn.next()).await.expect("a message in time");
        match frame.expect("open").expect("frame") {
            ws::Frame::Text(bytes) => return serde_json::from_slice(&bytes).unwrap(),
            ws::Frame::Ping(p) => conn.send(ws::Message::Pong(p)).await.unwrap(),
            _ => {}
        }
    }
}

/// Messages until one matches (within 20 s); none on the way may mention `never` (N3).
async fn until(conn: &mut Conn, never: &[String], pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        let m = match tokio::time::timeout_at(deadline, next(conn)).await {
            Ok(m) => m,
            Err(_) => panic!("no matching message in time; got {seen:#?}"),
        };
        seen.push(m.clone());
        let text = m.to_string();
        for n in never {
            assert!(!text.contains(n.as_str()), "N3: {n} leaked in {text}");
        }
        if pred(&m) {
            return m;
        }
    }
}

fn row<'a>(snapshot: &'a Value, id: &str) -> Option<&'a Value> {
    snapshot["agents"].as_array().unwrap().iter().find(|a| a["id"] == id)
}

fn sorted_logins(agents: &Value) -> Vec<String> {
    let mut out: Vec<String> =
        agents.as_array().unwrap().iter().map(|a| a["login"].as_str().unwrap().to_owned()).collect();
    out.sort();
    out
}

#[actix_rt::test]
async fn a_supervisor_sees_the_snapshot_then_presence_queue_and_assignment_changes_live() {
    let w = World::start().await;
    let app = &w.app;
    whatsapp_webhook(app, w.wa_a);
    let (ana, sofia, zoe) = (app.login("ana").await, app.login("sofia").await, app.login("zoe").await);

    let mut conn = connect(app, Some(&sofia)).await.expect("a supervisor opens the monitor");
    let snap = next(&mut conn).await;
    assert_eq!(snap["type"], "snapshot");
    // The snapshot is what the REST routes return for her.
    assert_eq!(snap["agents"], *app.get("/api/v1/monitor/agents", Some(&sofia)).await.ok(200));
    assert_eq!(snap["queues"], *app.get("/api/v1/monitor/queues", Some(&sofia)).await.ok(200));
    assert_eq!(sorted_logins(&snap["agents"]), ["ana", "bruno", "sofia"], "S1: the agents of her services only");
    assert_eq!(row(&snap, &w.ana.to_string()).unwrap()["status"], "offline");
    assert!(!snap.to_string().contains(&w.wa_b.to_string()), "N3: {snap}");
    let never = vec![w.zoe.to_string(), w.wa_b.to_string()];

    // Things in a service she is not in never reach her.
    w.available(&zoe).await;
    app.open(w.wa_b, schema::Channel::Whatsapp, "+5511900000009", "Other team's customer").await;

    // An agent goes available.
    w.available(&ana).await;
    let m = until(&mut conn, &never, |m| m["type"] == "agent" && m["id"] == w.ana.to_string()).await;
    assert_eq!(m["status"], "available");
    assert_eq!(m["login"], "ana");
    assert!(m["since"].is_string());

    // A customer writes through the signed webhook: her queue counts one waiting.
    assert_eq!(customer_writes(app, "wamid.M1", "5511987650001", "Hello?").await, 1);
    let m = until(&mut conn, &never, |m| m["type"] == "queue" && m["service_id"] == w.wa_a.to_string()).await;
    assert_eq!((m["waiting"].as_u64(), m["channel"].as_str()), (Some(1), Some("whatsapp")), "{m}");

    // Ana takes it: her WhatsApp count goes to one active, the queue back to zero.
    let id = conversation_of(app, "5511987650001");
    app.post_empty(&format!("/api/v1/conversations/{id}/pull"), Some(&ana)).await.ok(200);
    let m = until(&mut conn, &never, |m| m["type"] == "agent" && m["id"] == w.ana.to_string()).await;
    assert_eq!(m["conversations"]["whatsapp"], json!({"active": 1, "inactive": 0}), "{m}");
    let m = until(&mut conn, &never, |m| m["type"] == "queue" && m["service_id"] == w.wa_a.to_string()).await;
    assert_eq!(m["waiting"], 0);

    // She asks for a pause with a conversation open (pause_pending), then transfers it to Bruno.
    app.put("/api/v1/me/presence", Some(&ana), &json!({"status": "paused", "pause_reason_id": w.lunch})).await.ok(200);
    let m = until(&mut conn, &never, |m| m["type"] == "agent" && m["id"] == w.ana.to_string()).await;
    assert_eq!(m["status"], "pause_pending");
    assert_eq!(m["pause_reason_id"], w.lunch.to_string());
    let bruno = app.login("bruno").await;
    w.available(&bruno).await;
    app.post(&format!("/api/v1/conversations/{id}/transfer"), Some(&ana), &json!({"agent_id": w.bruno})).await.ok(200);
    // Bruno's row and Ana's may come in either order (one flush).
    let (mut bruno_row, mut ana_row) = (None, None);
    while bruno_row.is_none() || ana_row.is_none() {
        let m = until(&mut conn, &never, |m| m["type"] == "agent").await;
        if m["id"] == w.bruno.to_string() && m["conversations"]["whatsapp"]["active"] == 1 {
            bruno_row = Some(m);
        } else if m["id"] == w.ana.to_string() && m["status"] == "paused" {
            ana_row = Some(m);
        }
    }
    assert_eq!(bruno_row.unwrap()["status"], "available");
    // Ana has nothing left: her pause begins (R8) and her row shows no conversation.
    assert_eq!(ana_row.unwrap()["conversations"], json!({}));

    // Bruno concludes it: his count goes back to zero.
    app.post(&format!("/api/v1/conversations/{id}/conclude"), Some(&bruno), &json!({})).await.ok(200);
    let m = until(&mut conn, &never, |m| m["type"] == "agent" && m["id"] == w.bruno.to_string()).await;
    assert_eq!(m["conversations"], json!({}), "{m}");

    // After all that, a fresh snapshot says the same as REST again.
    let mut again = connect(app, Some(&sofia)).await.unwrap();
    let snap = next(&mut again).await;
    assert_eq!(snap["agents"], *app.get("/api/v1/monitor/agents", Some(&sofia)).await.ok(200));
    // The socket answers pings and refuses what it does not understand.
    again.send(ws::Message::Text(r#"{"type":"ping"}"#.into())).await.unwrap();
    assert_eq!(next(&mut again).await["type"], "pong");
    again.send(ws::Message::Text(r#"{"type":"accept"}"#.into())).await.unwrap();
    assert_eq!(next(&mut again).await["error"], "invalid_message");
}

#[actix_rt::test]
async fn the_monitor_refuses_agents_and_strangers_and_shows_each_supervisor_their_teams() {
    let w = World::start().await;
    let app = &w.app;
    let (ana, sam, admin) = (app.login("ana").await, app.login("sam").await, app.login("admin").await);

    let status = |r: Result<Conn, awc::error::WsClientError>| match r {
        Err(awc::error::WsClientError::InvalidResponseStatus(s)) => s.as_u16(),
        Err(e) => panic!("unexpected {e}"),
        Ok(_) => 101,
    };
    assert_eq!(status(connect(app, None).await), 401, "no session");
    assert_eq!(status(connect(app, Some("not-a-token")).await), 401, "a made-up token");
    assert_eq!(status(connect(app, Some(&ana)).await), 403, "role agent");
    // A page elsewhere cannot open it with a supervisor's session.
    let foreign = awc::Client::new()
        .ws(app.url("ws", "/ws/monitor"))
        .bearer_auth(&sam)
        .origin("https://evil.example")
        .connect()
        .await
        .map(|(_, c)| c);
    assert_eq!(status(foreign), 403, "a foreign Origin");

    let mut conn = connect(app, Some(&sam)).await.unwrap();
    let snap = next(&mut conn).await;
    assert_eq!(sorted_logins(&snap["agents"]), ["sam", "zoe"]);
    let queues = snap["queues"].as_array().unwrap();
    assert_eq!(queues.len(), 1);
    assert_eq!(queues[0]["service_id"], w.wa_b.to_string());
    // Ana's team is not his: her going available is not sent; Zoe's is.
    w.available(&ana).await;
    let zoe = app.login("zoe").await;
    w.available(&zoe).await;
    let m = until(&mut conn, &[w.ana.to_string(), w.wa_a.to_string()], |m| m["type"] == "agent").await;
    assert_eq!(m["id"], w.zoe.to_string());

    let mut conn = connect(app, Some(&admin)).await.unwrap();
    let snap = next(&mut conn).await;
    assert_eq!(sorted_logins(&snap["agents"]), ["admin", "ana", "bruno", "sam", "sofia", "zoe"]);
    assert_eq!(snap["queues"].as_array().unwrap().len(), 3);
}

/// `/metrics` parsed line by line: every family has HELP then TYPE, every sample belongs to the
/// family declared before it and has a number. Returns the samples by their full name and labels.
fn parse_metrics(text: &str) -> std::collections::HashMap<String, f64> {
    let mut samples = std::collections::HashMap::new();
    let (mut helped, mut family): (Option<String>, Option<String>) = (None, None);
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            assert!(name.starts_with("omniroute_") && !help.is_empty(), "{line}");
            helped = Some(name.to_owned());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert_eq!(helped.as_deref(), Some(name), "TYPE after its HELP: {line}");
            assert!(["gauge", "counter"].contains(&kind), "{line}");
            if kind == "counter" {
                assert!(name.ends_with("_total"), "{line}");
            }
            family = Some(name.to_owned());
        } else {
            assert!(!line.is_empty() && !line.starts_with('#'), "unexpected line {line:?}");
            let (series, value) = line.rsplit_once(' ').expect("a sample is series and value");
            let name = series.split('{').next().unwrap();
            assert_eq!(Some(name), family.as_deref(), "a sample of the declared family: {line}");
            if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
                let inner = labels.strip_prefix('{').and_then(|l| l.strip_suffix('}')).expect("{labels}");
                for pair in inner.split(',') {
                    let (k, v) = pair.split_once('=').expect("label=value");
                    assert!(k.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{line}");
                    assert!(v.len() >= 2 && v.starts_with('"') && v.ends_with('"'), "{line}");
                }
            }
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("a number in {line:?}"));
            assert!(samples.insert(series.to_owned(), value).is_none(), "one sample per series: {line}");
        }
    }
    samples
}

#[actix_rt::test]
async fn metrics_are_prometheus_text_and_move_when_a_customer_writes() {
    let w = World::start().await;
    let app = &w.app;
    whatsapp_webhook(app, w.wa_a);
    let ana = app.login("ana").await;
    w.available(&ana).await;

    let res = app.get("/metrics", None).await;
    assert_eq!(res.status, 200, "open like /healthz: {}", res.text);
    let content_type = res.headers.get("content-type").unwrap().to_str().unwrap();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let before = parse_metrics(&res.text);
    let service = format!(r#"service="{}",channel="whatsapp""#, w.wa_a);
    assert_eq!(before[r#"omniroute_messages_ingested_total{channel="whatsapp"}"#], 0.0);
    assert_eq!(before[&format!("omniroute_conversations_waiting{{{service}}}")], 0.0);
    assert_eq!(before[r#"omniroute_agents{state="available"}"#], 1.0);

    assert_eq!(customer_writes(app, "wamid.X1", "5511987650002", "Hi").await, 1);
    assert_eq!(customer_writes(app, "wamid.X2", "5511987650002", "Anyone?").await, 1);
    assert_eq!(customer_writes(app, "wamid.X2", "5511987650002", "Anyone?").await, 0, "a replay");
    // A forged request is refused and counted.
    let body = webhook_body("wamid.F1", "5511987650003", "forged");
    let forged = sign("not-the-app-secret", &body);
    let headers = [("Content-Type", "application/json"), ("X-Hub-Signature-256", forged.as_str())];
    app.raw(Method::POST, "/webhooks/whatsapp", &headers, &body).await.err(401, "invalid_signature");

    let after = parse_metrics(&app.get("/metrics", None).await.text);
    assert_eq!(after[r#"omniroute_messages_ingested_total{channel="whatsapp"}"#], 2.0);
    assert_eq!(after[r#"omniroute_conversations_opened_total{channel="whatsapp"}"#], 1.0);
    assert_eq!(after[&format!("omniroute_conversations_waiting{{{service}}}")], 1.0);
    assert_eq!(after[&format!(r#"omniroute_conversations{{{service},state="queued"}}"#)], 1.0);
    assert_eq!(after[r#"omniroute_webhooks_refused_total{source="whatsapp",status="401"}"#], 1.0);

    // Ana takes it and concludes it.
    let id = conversation_of(app, "5511987650002");
    app.post_empty(&format!("/api/v1/conversations/{id}/pull"), Some(&ana)).await.ok(200);
    let taken = parse_metrics(&app.get("/metrics", None).await.text);
    assert_eq!(taken[&format!("omniroute_conversations_assigned{{{service}}}")], 1.0);
    assert_eq!(taken[&format!("omniroute_conversations_waiting{{{service}}}")], 0.0);
    app.post(&format!("/api/v1/conversations/{id}/conclude"), Some(&ana), &json!({})).await.ok(200);
    let done = parse_metrics(&app.get("/metrics", None).await.text);
    assert_eq!(done[r#"omniroute_conversations_ended_total{channel="whatsapp",state="concluded"}"#], 1.0);
    assert_eq!(done[&format!("omniroute_conversations_assigned{{{service}}}")], 0.0);
}

/// A fake Graph API: answers each send with the next queued answer (then 200 with an id).
async fn fake_graph(answers: Vec<(u16, Value)>) -> String {
    use actix_web::{App, HttpResponse, HttpServer, web as aw};
    let answers = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::from(answers)));
    let server = HttpServer::new(move || {
        let answers = answers.clone();
        App::new().route(
            "/v21.0/{phone}/messages",
            aw::post().to(move || {
                let answers = answers.clone();
                async move {
                    let (status, answer) = answers
                        .lock()
                        .unwrap()
                        .pop_front()
                        .unwrap_or((200, json!({"messaging_product": "whatsapp", "messages": [{"id": "wamid.OUT"}]})));
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).json(answer)
                }
            }),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let base = format!("http://127.0.0.1:{}", server.addrs()[0].port());
    actix_rt::spawn(server.run());
    base
}

/// Polls `/metrics` until `series` has `want` (the sender works in the background).
async fn until_metric(app: &TestApp, series: &str, want: f64) {
    let mut last = None;
    for _ in 0..100 {
        last = parse_metrics(&app.get("/metrics", None).await.text).get(series).copied();
        if last == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{series} stayed {last:?}, expected {want}");
}

#[actix_rt::test]
async fn outbound_messages_sent_and_failed_are_counted() {
    let refusal = json!({"error": {"message": "Re-engagement message", "type": "OAuthException", "code": 131047}});
    let graph = fake_graph(vec![(200, json!({"messages": [{"id": "wamid.OK1"}]})), (400, refusal)]).await;
    let (app, service) = TestApp::start_sending(move |conn| {
        let mut s = schema::models::Service::with_defaults("WhatsApp", schema::Channel::Whatsapp, chrono::Utc::now());
        s.provider = json!({"phone_number_id": PHONE_ID, "app_secret": SECRET, "verify_token": "v",
                            "access_token": "token", "api_base_url": graph});
        s.provider_key = Some(PHONE_ID.into());
        let s = s.insert(conn).unwrap();
        crate::api_support::agent_in(conn, "ana", &[s.id], None);
        s.id
    })
    .await;
    let ana = app.login("ana").await;
    app.put("/api/v1/me/presence", Some(&ana), &json!({"status": "available"})).await.ok(200);
    assert_eq!(customer_writes(&app, "wamid.IN1", "5511987650004", "Oi").await, 1);
    let id = conversation_of(&app, "5511987650004");
    let services = parse_metrics(&app.get("/metrics", None).await.text);
    assert_eq!(
        services[&format!(r#"omniroute_conversations_assigned{{service="{service}",channel="whatsapp"}}"#)],
        1.0
    );
    for text in ["first", "second"] {
        app.post(&format!("/api/v1/conversations/{id}/messages"), Some(&ana), &json!({"text": text})).await.ok(201);
    }
    until_metric(&app, r#"omniroute_messages_sent_total{channel="whatsapp"}"#, 1.0).await;
    until_metric(&app, r#"omniroute_messages_failed_total{channel="whatsapp"}"#, 1.0).await;
}

#[actix_rt::test]
async fn a_metrics_token_guards_the_endpoint() {
    use actix_web::{App, HttpServer, web as aw};
    let db = schema::testing::TestDb::new();
    let engine = engine::Engine::start(db.pool(), engine::Clock::System).await.unwrap();
    let mut state = web::boot::state(db.pool(), engine);
    state.metrics_token = Some("prom-s3cret".into());
    let server = HttpServer::new(move || {
        App::new().app_data(aw::Data::new(state.clone())).configure(web::boot::routes::configure)
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let url = format!("http://127.0.0.1:{}/metrics", server.addrs()[0].port());
    actix_rt::spawn(server.run());
    let client = awc::Client::new();
    for auth in [None, Some("Bearer wrong"), Some("prom-s3cret"), Some("Basic cHJvbS1zM2NyZXQ=")] {
        let mut req = client.get(&url);
        if let Some(a) = auth {
            req = req.insert_header(("Authorization", a));
        }
        let mut res = req.send().await.unwrap();
        assert_eq!(res.status(), 401, "{auth:?}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "unauthenticated");
        assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    }
    let mut res = client.get(&url).insert_header(("Authorization", "Bearer prom-s3cret")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let text = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
    assert!(parse_metrics(&text).contains_key(r#"omniroute_agents{state="available"}"#), "{text}");
}
