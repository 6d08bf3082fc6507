//! `/ws/agent` with a real WebSocket client against a real server and database: snapshot,
//! events, resume with exactly the gap, Origin refused, unauthorised actions refused.

use std::time::Duration;

use actix_web::{App, HttpServer, web as aw};
use awc::ws;
use engine::{By, Clock, Engine, NewConversation, PresenceRequest};
use futures_util::{SinkExt, StreamExt};
use schema::models::Service;
use schema::testing::{TestDb, fixtures};
use schema::{AgentId, Channel, ServiceId, store};
use serde_json::{Value, json};

struct Desk {
    db: TestDb,
    engine: Engine,
    base: String,
    whatsapp: ServiceId,
    other: ServiceId,
    ana: AgentId,
    bruno: AgentId,
}

fn agent(conn: &mut schema::PgConnection, login: &str, services: &[ServiceId]) -> AgentId {
    fixtures::person(login)
        .password_hash(web::core::password::hash("secret-pass"))
        .in_services(services)
        .insert(conn)
        .unwrap()
        .id
}

async fn desk() -> Desk {
    let db = TestDb::new();
    let mut conn = db.conn();
    let now = chrono::Utc::now();
    let whatsapp = Service::with_defaults("WhatsApp", Channel::Whatsapp, now).insert(&mut conn).unwrap().id;
    let other = Service::with_defaults("Other team", Channel::Whatsapp, now).insert(&mut conn).unwrap().id;
    let ana = agent(&mut conn, "ana", &[whatsapp]);
    let bruno = agent(&mut conn, "bruno", &[whatsapp]);
    agent(&mut conn, "zoe", &[other]);
    let engine = Engine::start(db.pool(), Clock::System).await.unwrap();
    let state = web::boot::state(db.pool(), engine.clone());
    let server = HttpServer::new(move || {
        App::new().app_data(aw::Data::new(state.clone())).configure(web::boot::routes::configure)
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let base = format!("127.0.0.1:{}", server.addrs()[0].port());
    actix_rt::spawn(server.run());
    Desk { db, engine, base, whatsapp, other, ana, bruno }
}

async fn token(d: &Desk, login: &str) -> String {
    let mut res = awc::Client::new()
        .post(format!("http://{}/api/v1/auth/login", d.base))
        .send_json(&json!({"login": login, "password": "secret-pass"}))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned()
}

type Conn = actix_codec::Framed<awc::BoxedSocket, ws::Codec>;

async fn connect(d: &Desk, token: &str) -> Conn {
    let (_, conn) =
        awc::Client::new().ws(format!("ws://{}/ws/agent", d.base)).bearer_auth(token).connect().await.expect("connect");
    conn
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

/// Messages until one matches.
async fn until(conn: &mut Conn, pred: impl Fn(&Value) -> bool) -> Value {
    loop {
        let m = next(conn).await;
        if pred(&m) {
            return m;
        }
    }
}

#[actix_rt::test]
async fn a_desk_gets_its_snapshot_then_live_events_then_exactly_the_gap_after_a_reconnect() {
    let d = desk().await;
    let t = token(&d, "ana").await;
    d.engine.set_presence(d.ana, PresenceRequest::Available).await.unwrap();
    let first = d.engine.open_conversation(NewConversation::new(d.whatsapp, Channel::Whatsapp, "5511")).await.unwrap();

    let mut conn = connect(&d, &t).await;
    let snap = next(&mut conn).await;
    assert_eq!(snap["type"], "snapshot");
    assert_eq!(snap["agent"]["login"], "ana");
    assert_eq!(snap["presence"]["status"], "available");
    let convs = snap["conversations"].as_array().unwrap();
    assert_eq!(convs.len(), 1);
    assert_eq!(convs[0]["id"], first.to_string());
    assert_eq!(convs[0]["last_seq"], 2);
    assert!(snap["queues"].as_array().unwrap().iter().all(|q| q["service_id"] != d.other.to_string()), "N3");

    // A live event: a second customer is assigned to Ana.
    let second = d.engine.open_conversation(NewConversation::new(d.whatsapp, Channel::Whatsapp, "5512")).await.unwrap();
    let ev = until(&mut conn, |m| {
        m["type"] == "event" && m["conversation_id"] == second.to_string() && m["kind"] == "assigned"
    })
    .await;
    assert_eq!(ev["seq"], 2);
    assert_eq!(ev["conversation"]["agent_id"], d.ana.to_string());

    // The desk drops; meanwhile the first conversation is classified and transferred.
    drop(conn);
    d.engine.set_presence(d.bruno, PresenceRequest::Available).await.unwrap();
    d.engine.set_due_date(By::Agent(d.ana), first, Some(chrono::Utc::now())).await.unwrap();
    d.engine.transfer(By::Agent(d.ana), first, engine::TransferTarget::Agent(d.bruno)).await.unwrap();

    let mut conn = connect(&d, &t).await;
    let snap = next(&mut conn).await;
    let ids: Vec<&str> = snap["conversations"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [second.to_string()], "the transferred one is no longer Ana's");
    conn.send(ws::Message::Text(json!({"type": "resume", "conversations": {first.to_string(): 2}}).to_string().into()))
        .await
        .unwrap();
    let gap = until(&mut conn, |m| m["type"] == "gap").await;
    let seqs: Vec<i64> = gap["events"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    let kinds: Vec<&str> = gap["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(seqs, [3, 4], "exactly the events after the last one seen");
    assert_eq!(kinds, ["due_date_set", "transferred"]);
    d.engine.stop();
    drop(d.db);
}

#[actix_rt::test]
async fn a_foreign_origin_and_a_missing_session_are_refused() {
    let d = desk().await;
    let t = token(&d, "ana").await;
    let refused = awc::Client::new()
        .ws(format!("ws://{}/ws/agent", d.base))
        .bearer_auth(&t)
        .origin("http://evil.example")
        .connect()
        .await;
    match refused {
        Err(awc::error::WsClientError::InvalidResponseStatus(s)) => assert_eq!(s, 403),
        other => panic!("expected 403, got {:?}", other.map(|(r, _)| r.status())),
    }
    let same_origin = awc::Client::new()
        .ws(format!("ws://{}/ws/agent", d.base))
        .bearer_auth(&t)
        .origin(format!("http://{}", d.base))
        .connect()
        .await;
    assert!(same_origin.is_ok(), "the server's own origin is fine");
    let anonymous = awc::Client::new().ws(format!("ws://{}/ws/agent", d.base)).connect().await;
    match anonymous {
        Err(awc::error::WsClientError::InvalidResponseStatus(s)) => assert_eq!(s, 401),
        other => panic!("expected 401, got {:?}", other.map(|(r, _)| r.status())),
    }
    d.engine.stop();
}

#[actix_rt::test]
async fn actions_on_others_conversations_are_refused_and_leak_nothing() {
    let d = desk().await;
    let t = token(&d, "ana").await;
    let zoe = store::agent_by_login(&mut d.db.conn(), "zoe").unwrap().unwrap().id;
    d.engine.set_presence(zoe, PresenceRequest::Available).await.unwrap();
    let theirs = d.engine.open_conversation(NewConversation::new(d.other, Channel::Whatsapp, "5599")).await.unwrap();
    let mut conn = connect(&d, &t).await;
    let _snapshot = next(&mut conn).await;

    conn.send(ws::Message::Text(
        json!({"type": "accept", "conversation_id": theirs.to_string(), "ref": "a1"}).to_string().into(),
    ))
    .await
    .unwrap();
    let err = until(&mut conn, |m| m["ref"] == "a1").await;
    assert_eq!(err["type"], "error");
    assert_eq!(err["error"], "already_taken");

    conn.send(ws::Message::Text(
        json!({"type": "resume", "conversations": {theirs.to_string(): 0}}).to_string().into(),
    ))
    .await
    .unwrap();
    let refused = until(&mut conn, |m| m["type"] == "error" || m["type"] == "gap").await;
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["error"], "not_found", "as for a missing conversation");
    assert!(!refused.to_string().contains("5599"), "no data of the other team");

    conn.send(ws::Message::Text("{not json".into())).await.unwrap();
    let bad = until(&mut conn, |m| m["type"] == "error").await;
    assert_eq!(bad["error"], "invalid_message");
    // Zoe's conversation is untouched.
    assert_eq!(d.engine.conversation(theirs).await.unwrap().owner, Some(zoe));
    d.engine.stop();
}
