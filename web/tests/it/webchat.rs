//! Webchat (C1) with a real WebSocket client against a real server and database: a visitor
//! starts, is routed to an agent, messages go both ways (the agent's through the REST API, with
//! the desk's ticks), the page resumes after a reconnect with its history, replays store one
//! message, K2 identifies by email, the Origin and the service are checked, files go up and
//! down within the limits, and a catalogue of malformed requests changes nothing.

use std::time::Duration;

use awc::http::Method;
use awc::ws;
use futures_util::{SinkExt, StreamExt};
use schema::models::{Customer, Message, Service};
use schema::{
    AgentId, Channel, ConversationState, CustomerId, MessageDirection, MessageKind, MessageStatus, ServiceId,
};
use serde_json::{Value, json};

use crate::api_support::{TestApp, agent_in};

const ALLOWED: &str = "https://shop.example";

struct Chat {
    app: TestApp,
    service: ServiceId,
    whatsapp: ServiceId,
    inactive: ServiceId,
    ana: AgentId,
}

async fn chat() -> Chat {
    let (app, (service, whatsapp, inactive, ana)) = TestApp::start_sending(|c| {
        let now = chrono::Utc::now();
        let mut s = Service::with_defaults("Site chat", Channel::Webchat, now);
        s.provider = json!({"allowed_origins": [ALLOWED, "bad origin; script-src *"]});
        let service = s.insert(c).unwrap().id;
        let whatsapp = Service::with_defaults("WhatsApp", Channel::Whatsapp, now).insert(c).unwrap().id;
        let mut off = Service::with_defaults("Old chat", Channel::Webchat, now);
        off.active = false;
        let inactive = off.insert(c).unwrap().id;
        let ana = agent_in(c, "ana", &[service], None);
        (service, whatsapp, inactive, ana)
    })
    .await;
    Chat { app, service, whatsapp, inactive, ana }
}

type Conn = actix_codec::Framed<awc::BoxedSocket, ws::Codec>;

async fn open(c: &Chat) -> Conn {
    let url = c.app.url("ws", &format!("/ws/webchat?service_id={}", c.service));
    let (_, conn) = awc::Client::new().ws(url).connect().await.expect("connect");
    conn
}

async fn send(conn: &mut Conn, frame: Value) {
    conn.send(ws::Message::Text(frame.to_string().into())).await.unwrap();
}

/// The next JSON frame, answering pings on the way; `None` when the server closed.
async fn next_or_close(conn: &mut Conn) -> Option<Value> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(15), conn.next()).await.expect("a frame in time");
        match frame? {
            Ok(ws::Frame::Text(bytes)) => return Some(serde_json::from_slice(&bytes).expect("JSON frames")),
            Ok(ws::Frame::Ping(p)) => conn.send(ws::Message::Pong(p)).await.unwrap(),
            Ok(ws::Frame::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

async fn next(conn: &mut Conn) -> Value {
    next_or_close(conn).await.expect("the socket is open")
}

/// Frames until one matches (deadline 20 s: pings do not extend it).
async fn until(conn: &mut Conn, pred: impl Fn(&Value) -> bool) -> Value {
    let wait = async {
        loop {
            let m = next(conn).await;
            if pred(&m) {
                return m;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait).await.expect("the expected frame in time")
}

/// Waits until the chat is with an agent (maybe already when it started).
async fn in_service(conn: &mut Conn, started: &Value) {
    if started["state"] != "in_service" {
        until(conn, |f| f["type"] == "state" && f["state"] == "in_service").await;
    }
}

async fn start(c: &Chat, name: &str, email: &str) -> (Conn, Value) {
    let mut conn = open(c).await;
    send(&mut conn, json!({"type": "start", "name": name, "email": email})).await;
    let started = next(&mut conn).await;
    assert_eq!(started["type"], "started", "{started}");
    (conn, started)
}

/// Ana available and a visitor's chat routed to her: Ana's token, the visitor's socket, the
/// chat's token and the conversation.
async fn chat_with_ana(c: &Chat, name: &str, email: &str) -> (String, Conn, String, String) {
    let token = c.app.login("ana").await;
    c.app.put("/api/v1/me/presence", Some(&token), &json!({"status": "available"})).await.ok(200);
    let (mut conn, started) = start(c, name, email).await;
    let chat_token = started["token"].as_str().unwrap().to_owned();
    let conversation = started["conversation_id"].as_str().unwrap().to_owned();
    in_service(&mut conn, &started).await;
    (token, conn, chat_token, conversation)
}

async fn resume(c: &Chat, token: &str) -> (Conn, Value) {
    let mut conn = open(c).await;
    send(&mut conn, json!({"type": "resume", "token": token})).await;
    let started = next(&mut conn).await;
    assert_eq!(started["type"], "started", "{started}");
    (conn, started)
}

fn messages(app: &TestApp) -> Vec<Message> {
    use diesel::prelude::*;
    use schema::schema::messages::dsl;
    dsl::messages.order(dsl::created_at.asc()).select(Message::as_select()).load(&mut app.conn()).unwrap()
}

/// Polls the database until `pred` holds for the message (deadline 15 s).
async fn message_until(app: &TestApp, id: &str, pred: impl Fn(&Message) -> bool) -> Message {
    let id: schema::MessageId = id.parse().unwrap();
    for _ in 0..150 {
        let m = Message::find(&mut app.conn(), id).unwrap();
        if pred(&m) {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("message {id} never reached the expected state: {:?}", Message::find(&mut app.conn(), id).unwrap());
}

#[actix_rt::test]
async fn a_visitor_chats_with_an_agent_both_ways_and_resumes_after_a_reload() {
    let c = chat().await;
    let token = c.app.login("ana").await;
    c.app.put("/api/v1/me/presence", Some(&token), &json!({"status": "available"})).await.ok(200);

    let (mut conn, started) = start(&c, "João Silva", "joao@example.com").await;
    let chat_token = started["token"].as_str().unwrap().to_owned();
    assert!(chat_token.len() >= 40, "a long random token");
    assert_eq!(started["visitor"]["name"], "João Silva");
    assert_eq!(started["messages"], json!([]));
    let conversation = started["conversation_id"].as_str().unwrap().to_owned();
    // Routed: the service distributes automatically and Ana is available.
    in_service(&mut conn, &started).await;
    let row = c.app.conversation(conversation.parse().unwrap());
    assert_eq!(
        (row.channel, row.state, row.current_agent_id),
        (Channel::Webchat, ConversationState::InService, Some(c.ana))
    );
    assert_eq!(row.customer_name.as_deref(), Some("João Silva"));
    assert_eq!(row.customer_address, started["visitor"]["id"].as_str().unwrap());

    // Customer → agent: acknowledged once stored, and the agent sees it.
    send(&mut conn, json!({"type": "message", "client_id": "m1", "text": "Olá, preciso de ajuda"})).await;
    let ack = until(&mut conn, |f| f["type"] == "ack").await;
    assert_eq!((ack["client_id"].as_str(), ack["conversation_id"].as_str()), (Some("m1"), Some(conversation.as_str())));
    let stored = Message::find(&mut c.app.conn(), ack["message_id"].as_str().unwrap().parse().unwrap()).unwrap();
    assert_eq!((stored.direction, stored.body.as_deref()), (MessageDirection::In, Some("Olá, preciso de ajuda")));
    let seen = c.app.get(&format!("/api/v1/conversations/{conversation}"), Some(&token)).await;
    assert!(seen.text.contains("Olá, preciso de ajuda"), "the desk shows it: {}", seen.text);

    // Agent → customer, live; the desk's ticks follow the customer's page.
    let sent = c
        .app
        .post(
            &format!("/api/v1/conversations/{conversation}/messages"),
            Some(&token),
            &json!({"text": "Bom dia, João!"}),
        )
        .await;
    let reply_id = sent.ok(201)["id"].as_str().unwrap().to_owned();
    let live = until(&mut conn, |f| f["type"] == "message").await;
    assert_eq!(live["message"]["id"], reply_id.as_str());
    assert_eq!(
        (live["message"]["from"].as_str(), live["message"]["text"].as_str()),
        (Some("agent"), Some("Bom dia, João!"))
    );
    assert!(live["message"].get("sender_agent_id").is_none(), "no internal ids for the customer");
    message_until(&c.app, &reply_id, |m| m.status == MessageStatus::Sent).await;
    send(&mut conn, json!({"type": "receipt", "status": "read", "message_ids": [reply_id]})).await;
    message_until(&c.app, &reply_id, |m| m.status == MessageStatus::Read).await;
    let desk = c.app.get(&format!("/api/v1/conversations/{conversation}"), Some(&token)).await;
    let shown =
        desk.body["messages"].as_array().unwrap().iter().find(|m| m["id"] == reply_id.as_str()).unwrap().clone();
    assert_eq!(shown["status"], "read", "the desk shows the read tick");

    // The page goes away; the agent writes meanwhile: the message waits as pending.
    drop(conn);
    let away = c
        .app
        .post(
            &format!("/api/v1/conversations/{conversation}/messages"),
            Some(&token),
            &json!({"text": "Ainda está aí?"}),
        )
        .await;
    let away_id = away.ok(201)["id"].as_str().unwrap().to_owned();
    let waiting = message_until(&c.app, &away_id, |m| m.attempts >= 1).await;
    assert_eq!(waiting.status, MessageStatus::Pending, "nobody to deliver to");

    // Reload: the same conversation, the whole history in order, and the waiting one is sent.
    let (mut conn, again) = resume(&c, &chat_token).await;
    assert_eq!(again["token"], Value::Null, "the page keeps its token");
    assert_eq!(again["conversation_id"], conversation);
    assert_eq!(again["state"], "in_service");
    let texts: Vec<&str> = again["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["Olá, preciso de ajuda", "Bom dia, João!", "Ainda está aí?"]);
    assert_eq!(again["messages"][0]["client_id"], "m1");
    message_until(&c.app, &away_id, |m| m.status == MessageStatus::Sent).await;

    // The agent concludes: the page is told; the next message starts a new conversation.
    c.app.post(&format!("/api/v1/conversations/{conversation}/conclude"), Some(&token), &json!({})).await.ok(200);
    let ended = until(&mut conn, |f| f["type"] == "ended").await;
    assert_eq!(
        (ended["conversation_id"].as_str(), ended["state"].as_str()),
        (Some(conversation.as_str()), Some("concluded"))
    );
    send(&mut conn, json!({"type": "message", "client_id": "m2", "text": "Mais uma coisa"})).await;
    let ack = until(&mut conn, |f| f["type"] == "ack").await;
    let second = ack["conversation_id"].as_str().unwrap();
    assert_ne!(second, conversation, "a new conversation");
    assert_eq!(c.app.conversation(second.parse().unwrap()).customer_address, row.customer_address, "same visitor");
    let told = until(&mut conn, |f| f["type"] == "state" && f["conversation_id"] == second).await;
    assert!(["queued", "in_service"].contains(&told["state"].as_str().unwrap()), "{told}");
    c.app.engine.stop();
}

/// The agent's messages written while the page reloads again and again all reach it — pushed
/// live or in the history of a resume — and none is left waiting for a reload that may never
/// come (a message sent between a resume's read of the history and the socket joining the hub
/// found nobody to push to, and waited an hour while the page was open).
#[actix_rt::test]
async fn agent_messages_sent_while_the_page_reloads_all_reach_it() {
    let c = chat().await;
    let (token, mut conn, chat_token, conversation) = chat_with_ana(&c, "Rita", "rita@example.com").await;

    let (app, path) = (&c.app, format!("/api/v1/conversations/{conversation}/messages"));
    let agent = async {
        let mut ids = Vec::new();
        for n in 0..30 {
            let sent = app.post(&path, Some(&token), &json!({"text": format!("reply {n}")})).await;
            ids.push(sent.ok(201)["id"].as_str().unwrap().to_owned());
            tokio::time::sleep(Duration::from_millis(7)).await;
        }
        ids
    };
    let (chat, chat_token) = (&c, &chat_token);
    let page = async move {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..12 {
            drop(conn); // the page reloads
            let (fresh, again) = resume(chat, chat_token).await;
            conn = fresh;
            for m in again["messages"].as_array().unwrap() {
                seen.insert(m["id"].as_str().unwrap().to_owned());
            }
            // Whatever is pushed before the next reload.
            while let Ok(Some(f)) = tokio::time::timeout(Duration::from_millis(15), next_or_close(&mut conn)).await {
                if f["type"] == "message" {
                    seen.insert(f["message"]["id"].as_str().unwrap().to_owned());
                }
            }
        }
        (seen, conn)
    };
    let (ids, (mut seen, mut conn)) = futures_util::join!(agent, page);
    // The page stays open: what is still on its way arrives live, and every message is sent.
    for id in &ids {
        while !seen.contains(id) {
            let f = until(&mut conn, |f| f["type"] == "message").await;
            seen.insert(f["message"]["id"].as_str().unwrap().to_owned());
        }
        message_until(&c.app, id, |m| m.status == MessageStatus::Sent).await;
    }
    c.app.engine.stop();
}

#[actix_rt::test]
async fn a_replayed_message_is_stored_once_sequentially_and_concurrently() {
    let c = chat().await;
    let (mut conn, started) = start(&c, "Ana Cliente", "cliente@example.com").await;
    let chat_token = started["token"].as_str().unwrap().to_owned();
    let mut ids = Vec::new();
    for _ in 0..5 {
        send(&mut conn, json!({"type": "message", "client_id": "same-1", "text": "uma vez"})).await;
        ids.push(until(&mut conn, |f| f["type"] == "ack").await["message_id"].clone());
    }
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");

    // 50 at once: 5 tabs of the same visitor, 10 frames each, none waiting for an ack.
    let mut tabs = Vec::new();
    for _ in 0..5 {
        tabs.push(resume(&c, &chat_token).await.0);
    }
    for tab in &mut tabs {
        for _ in 0..10 {
            send(tab, json!({"type": "message", "client_id": "same-2", "text": "concorrente"})).await;
        }
    }
    let mut acks = Vec::new();
    for tab in &mut tabs {
        for _ in 0..10 {
            let ack = until(tab, |f| f["type"] == "ack" || f["type"] == "error").await;
            assert_eq!(ack["type"], "ack", "{ack}");
            acks.push(ack["message_id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(acks.len(), 50);
    assert!(acks.iter().all(|a| *a == acks[0]), "every ack names the one stored message");
    let all = messages(&c.app);
    assert_eq!(all.iter().filter(|m| m.body.as_deref() == Some("uma vez")).count(), 1);
    assert_eq!(all.iter().filter(|m| m.body.as_deref() == Some("concorrente")).count(), 1);
    c.app.engine.stop();
}

#[actix_rt::test]
async fn what_the_visitor_types_in_one_tab_shows_in_its_other_tabs_and_only_there() {
    let c = chat().await;
    let (mut first, started) = start(&c, "Ana Cliente", "cliente@example.com").await;
    let chat_token = started["token"].as_str().unwrap().to_owned();
    let (mut second, _) = resume(&c, &chat_token).await;
    let (mut stranger, _) = start(&c, "Outra Pessoa", "outra@example.com").await;

    send(&mut first, json!({"type": "message", "client_id": "t-1", "text": "da primeira aba"})).await;
    let ack = until(&mut first, |f| f["type"] == "ack").await;
    let shown = until(&mut second, |f| f["type"] == "message").await;
    assert_eq!(shown["message"]["text"], "da primeira aba", "{shown}");
    assert_eq!(shown["message"]["id"], ack["message_id"]);

    // The second tab closes, a third opens: the count of tabs follows, the third sees the next one.
    second.close().await.unwrap();
    drop(second);
    let (mut third, _) = resume(&c, &chat_token).await;
    send(&mut first, json!({"type": "message", "client_id": "t-2", "text": "de novo"})).await;
    until(&mut first, |f| f["type"] == "ack").await;
    let shown = until(&mut third, |f| f["type"] == "message").await;
    assert_eq!(shown["message"]["text"], "de novo", "{shown}");

    // Another visitor's socket was sent none of it (a ping answers first: nothing was queued).
    send(&mut stranger, json!({"type": "ping"})).await;
    let after = until(&mut stranger, |f| f["type"] != "state").await;
    assert_eq!(after["type"], "pong", "{after}");
    c.app.engine.stop();
}

fn customer(conn: &mut schema::PgConnection, name: &str, email: &str) -> CustomerId {
    let now = chrono::Utc::now();
    Customer {
        id: CustomerId::new(),
        name: name.into(),
        trade_name: None,
        cpf: None,
        cnpj: None,
        emails: vec![email.into()],
        phones: vec![],
        notes: None,
        portfolio_agent_id: None,
        created_at: now,
        updated_at: now,
    }
    .insert(conn)
    .unwrap()
    .id
}

#[actix_rt::test]
async fn k2_identifies_the_visitor_by_email_only_when_exactly_one_customer_has_it() {
    let c = chat().await;
    let mut db = c.app.conn();
    let maria = customer(&mut db, "Maria", "maria@example.com");
    customer(&mut db, "Pedro", "family@example.com");
    customer(&mut db, "Paula", "family@example.com");
    for (email, expected) in [
        ("maria@example.com", Some(maria)),
        ("Maria@Example.com", Some(maria)),
        ("family@example.com", None),
        ("nobody@example.com", None),
    ] {
        let (_conn, started) = start(&c, "Visitante", email).await;
        let row = c.app.conversation(started["conversation_id"].as_str().unwrap().parse().unwrap());
        assert_eq!(row.customer_id, expected, "{email}");
    }
    c.app.engine.stop();
}

#[actix_rt::test]
async fn the_page_and_the_socket_check_the_service_and_the_origin() {
    let c = chat().await;
    let page = c.app.get(&format!("/webchat/{}", c.service), None).await;
    page.ok(200);
    assert!(page.text.contains("/webchat/assets/chat.js"));
    let csp = page.headers.get("content-security-policy").unwrap().to_str().unwrap().to_owned();
    assert!(csp.contains(&format!("frame-ancestors 'self' {ALLOWED}")), "{csp}");
    assert!(!csp.contains("script-src *"), "a malformed origin never reaches the CSP: {csp}");
    let js = c.app.get("/webchat/assets/chat.js", None).await;
    js.ok(200);
    assert!(js.headers.get("content-type").unwrap().to_str().unwrap().contains("javascript"));

    let connect = |origin: Option<String>, query: String| {
        let url = c.app.url("ws", &format!("/ws/webchat{query}"));
        async move {
            let mut req = awc::Client::new().ws(url);
            if let Some(o) = origin {
                req = req.origin(o);
            }
            match req.connect().await {
                Ok(_) => 101,
                Err(awc::error::WsClientError::InvalidResponseStatus(s)) => s.as_u16(),
                Err(e) => panic!("{e}"),
            }
        }
    };
    let q = format!("?service_id={}", c.service);
    assert_eq!(connect(Some("https://evil.example".into()), q.clone()).await, 403);
    assert_eq!(connect(Some(ALLOWED.into()), q.clone()).await, 101);
    assert_eq!(connect(Some(c.app.url("http", "")), q.clone()).await, 101, "the embedded page's own origin");
    assert_eq!(connect(None, format!("?service_id={}", c.whatsapp)).await, 404);
    assert_eq!(connect(None, format!("?service_id={}", c.inactive)).await, 404);
    c.app.engine.stop();
}

fn multipart(content_type: &str, name: &str, data: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----omniroute-test-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: {content_type}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload(c: &Chat, token: &str, content_type: &str, name: &str, data: &[u8]) -> crate::api_support::Res {
    let (ct, body) = multipart(content_type, name, data);
    let auth = format!("Bearer {token}");
    c.app
        .raw(
            Method::POST,
            &format!("/webchat/{}/attachments", c.service),
            &[("Content-Type", &ct), ("Authorization", &auth)],
            &body,
        )
        .await
}

#[actix_rt::test]
async fn files_and_voice_notes_go_both_ways_within_the_limits() {
    let c = chat().await;
    let (token, mut conn, chat_token, conversation) = chat_with_ana(&c, "Rita", "rita@example.com").await;

    // A photo and a recorded voice note from the customer.
    let png = b"\x89PNG\r\n\x1a\nnot really an image".to_vec();
    let photo = upload(&c, &chat_token, "image/png", "foto.png", &png).await;
    let photo_id = photo.ok(201)["id"].as_str().unwrap().to_owned();
    send(&mut conn, json!({"type": "message", "client_id": "p1", "attachment_ids": [photo_id]})).await;
    let ack = until(&mut conn, |f| f["type"] == "ack" || f["type"] == "error").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let m = Message::find(&mut c.app.conn(), ack["message_id"].as_str().unwrap().parse().unwrap()).unwrap();
    assert_eq!(m.kind, MessageKind::Image);
    let voice = upload(&c, &chat_token, "audio/webm;codecs=opus", "audio.webm", b"webm bytes").await;
    let voice_id = voice.ok(201)["id"].as_str().unwrap().to_owned();
    send(&mut conn, json!({"type": "message", "client_id": "v1", "attachment_ids": [voice_id]})).await;
    let ack = until(&mut conn, |f| f["type"] == "ack").await;
    let m = Message::find(&mut c.app.conn(), ack["message_id"].as_str().unwrap().parse().unwrap()).unwrap();
    assert_eq!(m.kind, MessageKind::Audio);
    // A sent file cannot be attached again.
    send(&mut conn, json!({"type": "message", "client_id": "p2", "attachment_ids": [photo_id]})).await;
    let refused = until(&mut conn, |f| f["type"] == "error").await;
    assert_eq!((refused["error"].as_str(), refused["client_id"].as_str()), (Some("invalid_attachment"), Some("p2")));

    // The agent downloads the customer's photo.
    let mut res = awc::Client::new()
        .get(c.app.url("http", &format!("/api/v1/attachments/{photo_id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.body().await.unwrap().to_vec(), png);

    // The agent sends a PDF; the customer's page gets it and downloads it with its token.
    let (ct, body) = multipart("application/pdf", "boleto.pdf", b"%PDF-1.4 boleto");
    let mut up = awc::Client::new()
        .post(c.app.url("http", "/api/v1/attachments"))
        .bearer_auth(&token)
        .insert_header(("Content-Type", ct))
        .send_body(body)
        .await
        .unwrap();
    let pdf: Value = up.json().await.unwrap();
    c.app
        .post(
            &format!("/api/v1/conversations/{conversation}/messages"),
            Some(&token),
            &json!({"attachment_ids": [pdf["id"]]}),
        )
        .await
        .ok(201);
    let live = until(&mut conn, |f| f["type"] == "message").await;
    let url = live["message"]["attachments"][0]["url"].as_str().unwrap().to_owned();
    let mut got = awc::Client::new().get(c.app.url("http", &url)).bearer_auth(&chat_token).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.body().await.unwrap().to_vec(), b"%PDF-1.4 boleto");
    // Another visitor sees neither file.
    let (_other, other) = start(&c, "Outro", "outro@example.com").await;
    let other_token = other["token"].as_str().unwrap();
    for path in [url.clone(), format!("/webchat/{}/attachments/{photo_id}", c.service)] {
        let auth = format!("Bearer {other_token}");
        c.app.raw(Method::GET, &path, &[("Authorization", &auth)], b"").await.err(404, "not_found");
    }
    c.app.engine.stop();
}

/// Sends a frame and expects an error frame with this code.
async fn refused(conn: &mut Conn, frame: ws::Message, code: &str, what: &str) {
    conn.send(frame).await.unwrap();
    let answer = next(conn).await;
    assert_eq!(answer["type"], "error", "{what}: {answer}");
    assert_eq!(answer["error"], code, "{what}: {answer}");
    assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}");
}

#[actix_rt::test]
async fn a_catalogue_of_malformed_requests_is_refused_and_changes_nothing() {
    let c = chat().await;
    let (_first, first) = start(&c, "Primeira", "primeira@example.com").await;
    let first_token = first["token"].as_str().unwrap().to_owned();
    c.app.engine.flush().await;
    let before = c.app.snapshot();
    let mut count = 0;
    let text = |v: &str| ws::Message::Text(v.to_owned().into());
    let uuid = || schema::MessageId::new().to_string();

    // Frames before a start.
    let mut conn = open(&c).await;
    let deep =
        format!("{{\"type\":\"start\",\"name\":{}\"A\"{},\"email\":\"a@b.co\"}}", "[".repeat(200), "]".repeat(200));
    let long_email = format!("{}@example.com", "a".repeat(250));
    let pre: Vec<(String, &str)> = vec![
        ("not json".into(), "invalid_message"),
        ("".into(), "invalid_message"),
        ("[]".into(), "invalid_message"),
        ("null".into(), "invalid_message"),
        ("42".into(), "invalid_message"),
        ("\"start\"".into(), "invalid_message"),
        ("{}".into(), "invalid_message"),
        (r#"{"type":"nope"}"#.into(), "invalid_message"),
        (r#"{"type":5}"#.into(), "invalid_message"),
        (r#"{"type":"start"}"#.into(), "invalid_message"),
        (r#"{"type":"start","name":"A"}"#.into(), "invalid_message"),
        (r#"{"type":"start","name":1,"email":"a@b.co"}"#.into(), "invalid_message"),
        (r#"{"type":"start","name":"A","email":"a@b.co","admin":true}"#.into(), "invalid_message"),
        (r#"{"type":"start","name":"","email":"a@b.co"}"#.into(), "invalid_name"),
        (r#"{"type":"start","name":"   ","email":"a@b.co"}"#.into(), "invalid_name"),
        (json!({"type":"start","name":"x".repeat(201),"email":"a@b.co"}).to_string(), "invalid_name"),
        (r#"{"type":"start","name":"A\u0000B","email":"a@b.co"}"#.into(), "invalid_name"),
        (r#"{"type":"start","name":"A","email":"not-an-email"}"#.into(), "invalid_email"),
        (r#"{"type":"start","name":"A","email":"a@b"}"#.into(), "invalid_email"),
        (r#"{"type":"start","name":"A","email":"a b@c.de"}"#.into(), "invalid_email"),
        (r#"{"type":"start","name":"A","email":""}"#.into(), "invalid_email"),
        (json!({"type":"start","name":"A","email":long_email}).to_string(), "invalid_email"),
        (
            json!({"type":"start","service_id":c.whatsapp.to_string(),"name":"A","email":"a@b.co"}).to_string(),
            "wrong_service",
        ),
        (deep, "invalid_message"),
        ("[".repeat(10_000), "invalid_message"),
        (r#"{"type":"resume"}"#.into(), "invalid_message"),
        (r#"{"type":"resume","token":""}"#.into(), "invalid_token"),
        (r#"{"type":"resume","token":"not a token!"}"#.into(), "invalid_token"),
        (json!({"type":"resume","token":"A".repeat(43)}).to_string(), "invalid_token"),
        (r#"{"type":"message","client_id":"c1","text":"hi"}"#.into(), "not_started"),
        (json!({"type":"receipt","status":"read","message_ids":[uuid()]}).to_string(), "not_started"),
    ];
    for (frame, code) in &pre {
        refused(&mut conn, text(frame), code, frame).await;
        count += 1;
    }
    refused(&mut conn, ws::Message::Binary(vec![0xff, 0xfe, 0x00].into()), "invalid_message", "binary").await;
    count += 1;
    c.app.unchanged(&before, "frames before a start");
    // The first visitor resumes on this socket.
    send(&mut conn, json!({"type": "resume", "token": first_token})).await;
    assert_eq!(next(&mut conn).await["type"], "started");
    let after_resume = c.app.snapshot();

    // Frames of a started chat.
    let eleven: Vec<String> = (0..11).map(|_| uuid()).collect();
    let started: Vec<(String, &str)> = vec![
        (r#"{"type":"message"}"#.into(), "invalid_message"),
        (r#"{"type":"message","client_id":"","text":"x"}"#.into(), "invalid_client_id"),
        (r#"{"type":"message","client_id":"has space","text":"x"}"#.into(), "invalid_client_id"),
        (json!({"type":"message","client_id":"c".repeat(65),"text":"x"}).to_string(), "invalid_client_id"),
        (r#"{"type":"message","client_id":"c2"}"#.into(), "empty_message"),
        (r#"{"type":"message","client_id":"c2","text":"   "}"#.into(), "empty_message"),
        (json!({"type":"message","client_id":"c2","text":"x".repeat(4097)}).to_string(), "text_too_long"),
        (r#"{"type":"message","client_id":"c2","text":"bell\u0007"}"#.into(), "invalid_text"),
        (r#"{"type":"message","client_id":"c2","text":5}"#.into(), "invalid_message"),
        (r#"{"type":"message","client_id":7,"text":"x"}"#.into(), "invalid_message"),
        (r#"{"type":"message","client_id":"c2","attachment_ids":"x"}"#.into(), "invalid_message"),
        (r#"{"type":"message","client_id":"c2","attachment_ids":["nope"]}"#.into(), "invalid_id"),
        (json!({"type":"message","client_id":"c2","attachment_ids":eleven}).to_string(), "too_many_attachments"),
        (json!({"type":"message","client_id":"c2","attachment_ids":[uuid()]}).to_string(), "invalid_attachment"),
        (json!({"type":"receipt","status":"seen","message_ids":[uuid()]}).to_string(), "invalid_message"),
        (r#"{"type":"receipt","status":"read","message_ids":[]}"#.into(), "invalid_receipt"),
        (r#"{"type":"receipt","status":"read","message_ids":["x"]}"#.into(), "invalid_id"),
        (json!({"type":"receipt","status":"read","message_ids":[uuid()]}).to_string(), "unknown_message"),
        (r#"{"type":"start","name":"A","email":"a@b.co"}"#.into(), "already_started"),
        (json!({"type":"resume","token":first_token}).to_string(), "already_started"),
    ];
    for (frame, code) in &started {
        refused(&mut conn, text(frame), code, frame).await;
        count += 1;
    }
    // A frame over the size limit: refused, then the socket closes.
    let huge = json!({"type":"message","client_id":"big","text":"x".repeat(70_000)}).to_string();
    refused(&mut conn, text(&huge), "frame_too_large", "huge frame").await;
    assert!(next_or_close(&mut conn).await.is_none(), "closed after an oversized frame");
    count += 1;
    c.app.unchanged(&after_resume, "malformed frames of a started chat");

    // HTTP: the page, the upgrade, uploads and downloads.
    let app = &c.app;
    let page = |p: String| async move { app.get(&p, None).await };
    page("/webchat/not-a-uuid".into()).await.err(400, "invalid_id");
    page(format!("/webchat/{}", uuid())).await.err(404, "not_found");
    page(format!("/webchat/{}", c.whatsapp)).await.err(404, "not_found");
    page(format!("/webchat/{}", c.inactive)).await.err(404, "not_found");
    page("/webchat/assets/nothing.js".into()).await.err(404, "not_found");
    count += 5;
    for (query, status, code) in [
        (String::new(), 400, "missing_service_id"),
        ("?service_id=nope".to_owned(), 400, "invalid_id"),
        (format!("?service_id={}", uuid()), 404, "not_found"),
        (format!("?service_id={}", c.whatsapp), 404, "not_found"),
    ] {
        // A plain GET (no upgrade) of the same route answers the same JSON error.
        c.app.get(&format!("/ws/webchat{query}"), None).await.err(status, code);
        count += 1;
    }
    let evil = awc::Client::new()
        .ws(c.app.url("ws", &format!("/ws/webchat?service_id={}", c.service)))
        .origin("https://evil.example")
        .connect()
        .await;
    assert!(matches!(evil, Err(awc::error::WsClientError::InvalidResponseStatus(s)) if s == 403));
    count += 1;

    let up = format!("/webchat/{}/attachments", c.service);
    let auth = format!("Bearer {first_token}");
    let (ct, body) = multipart("image/png", "a.png", b"png");
    c.app.raw(Method::POST, &up, &[("Content-Type", &ct)], &body).await.err(401, "missing_token");
    c.app
        .raw(Method::POST, &up, &[("Content-Type", &ct), ("Authorization", "Bearer nope")], &body)
        .await
        .err(401, "invalid_token");
    c.app
        .raw(Method::POST, &up, &[("Content-Type", "application/json"), ("Authorization", &auth)], b"{}")
        .await
        .err(415, "invalid_content_type");
    let (html_ct, html) = multipart("text/html", "x.html", b"<script>alert(1)</script>");
    c.app
        .raw(Method::POST, &up, &[("Content-Type", &html_ct), ("Authorization", &auth)], &html)
        .await
        .err(415, "unsupported_file_type");
    let (exe_ct, exe) = multipart("application/x-msdownload", "x.exe", b"MZ");
    c.app
        .raw(Method::POST, &up, &[("Content-Type", &exe_ct), ("Authorization", &auth)], &exe)
        .await
        .err(415, "unsupported_file_type");
    let (big_ct, big) = multipart("image/png", "big.png", &vec![0u8; 20 * 1024 * 1024 + 1]);
    c.app
        .raw(Method::POST, &up, &[("Content-Type", &big_ct), ("Authorization", &auth)], &big)
        .await
        .err(413, "file_too_large");
    let (empty_ct, empty) = multipart("image/png", "empty.png", b"");
    c.app
        .raw(Method::POST, &up, &[("Content-Type", &empty_ct), ("Authorization", &auth)], &empty)
        .await
        .err(400, "empty_file");
    let no_file = "--b\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--b--\r\n";
    c.app
        .raw(
            Method::POST,
            &up,
            &[("Content-Type", "multipart/form-data; boundary=b"), ("Authorization", &auth)],
            no_file.as_bytes(),
        )
        .await
        .err(400, "missing_file");
    c.app
        .raw(
            Method::POST,
            &format!("/webchat/{}/attachments", c.whatsapp),
            &[("Content-Type", &ct), ("Authorization", &auth)],
            &body,
        )
        .await
        .err(404, "not_found");
    count += 9;
    let down = |id: String| format!("/webchat/{}/attachments/{id}", c.service);
    c.app.raw(Method::GET, &down(uuid()), &[], b"").await.err(401, "missing_token");
    c.app.raw(Method::GET, &down(uuid()), &[("Authorization", &auth)], b"").await.err(404, "not_found");
    c.app.raw(Method::GET, &down("x".into()), &[("Authorization", &auth)], b"").await.err(400, "invalid_id");
    count += 3;

    c.app.unchanged(&after_resume, "every malformed request");
    assert!(count >= 40, "the catalogue has {count} cases");
    c.app.engine.stop();
}

/// A text frame whose payload is not UTF-8 cannot be built with a WebSocket library, so this
/// speaks the protocol by hand: the handshake, one masked text frame of bad bytes, then reads the
/// server's answer (an unmasked text frame) and its close.
#[actix_rt::test]
async fn a_text_frame_of_bad_utf8_is_refused_and_the_socket_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let c = chat().await;
    c.app.engine.flush().await;
    let before = c.app.snapshot();
    let addr = c.app.url("", "").trim_start_matches("://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let handshake = format!(
        "GET /ws/webchat?service_id={} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        c.service
    );
    tcp.write_all(handshake.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        tcp.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    assert!(String::from_utf8_lossy(&head).starts_with("HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    // FIN + text, masked, 4 bytes: 0xff 0xfe 0xfd 0xfc (never UTF-8).
    let mask = [1u8, 2, 3, 4];
    let payload = [0xffu8, 0xfe, 0xfd, 0xfc];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    tcp.write_all(&frame).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the server closes the connection");
    // The first frame: unmasked text with a 7-bit or 16-bit length.
    assert_eq!(answer[0], 0x81, "a text frame first: {answer:?}");
    let (len, start) = match answer[1] {
        126 => (u16::from_be_bytes([answer[2], answer[3]]) as usize, 4),
        n => (n as usize, 2),
    };
    let error: Value = serde_json::from_slice(&answer[start..start + len]).unwrap();
    assert_eq!((error["type"].as_str(), error["error"].as_str()), (Some("error"), Some("invalid_message")));
    assert_eq!(answer[start + len] & 0x0f, 0x8, "then a close frame");
    c.app.unchanged(&before, "a frame of bad UTF-8");
    c.app.engine.stop();
}
