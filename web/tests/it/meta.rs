//! Messenger and Instagram webhooks (Meta's Messenger Platform) and the Send API.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web as aw};
use awc::http::Method;
use chrono::Utc;
use schema::models::{Message, Service};
use schema::{Channel, MessageKind, MessageStatus, ServiceId};
use serde_json::{Value, json};
use web::channels::whatsapp::sign;

use crate::api_support::TestApp;

const SECRET: &str = "meta-secret";

async fn app(api_base: &str) -> (TestApp, ServiceId, ServiceId) {
    let api_base = api_base.to_owned();
    let (app, (messenger, instagram)) = TestApp::start(move |conn| {
        let now = Utc::now();
        let mut m = Service::with_defaults("Messenger", Channel::Messenger, now);
        m.provider = json!({"page_id": "PAGE1", "app_secret": SECRET, "verify_token": "vt", "access_token": "PAGE-TOKEN", "api_base_url": api_base});
        m.provider_key = Some("PAGE1".into());
        let m = m.insert(conn).unwrap();
        let mut i = Service::with_defaults("Instagram", Channel::Instagram, now);
        i.provider = json!({"account_id": "IG1", "app_secret": SECRET, "verify_token": "vt", "access_token": "IG-TOKEN", "api_base_url": api_base});
        i.provider_key = Some("IG1".into());
        let i = i.insert(conn).unwrap();
        let _a_id = crate::api_support::agent_in(conn, "ana", &[m.id, i.id], None);
        (m.id, i.id)
    })
    .await;
    (app, messenger, instagram)
}

fn event(object: &str, entry_id: &str, messaging: Value) -> Value {
    json!({"object": object, "entry": [{"id": entry_id, "time": 1764000000000i64, "messaging": [messaging]}]})
}

fn message(sender: &str, recipient: &str, mid: &str, text: &str) -> Value {
    json!({"sender": {"id": sender}, "recipient": {"id": recipient}, "timestamp": 1764000000000i64,
           "message": {"mid": mid, "text": text}})
}

async fn post(app: &TestApp, path: &str, payload: &Value, secret: Option<&str>) -> crate::api_support::Res {
    let body = payload.to_string().into_bytes();
    let sig = secret.map(|s| sign(s, &body));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(s) = &sig {
        headers.push(("X-Hub-Signature-256", s.as_str()));
    }
    app.raw(Method::POST, path, &headers, &body).await
}

fn messages(app: &TestApp) -> Vec<Message> {
    use diesel::prelude::*;
    schema::schema::messages::table.select(Message::as_select()).load(&mut app.conn()).unwrap()
}

#[actix_rt::test]
async fn messenger_and_instagram_messages_are_verified_routed_and_stored_once() {
    let (app, messenger, instagram) = app("http://127.0.0.1:9").await;
    let ok = app.get("/webhooks/messenger?hub.mode=subscribe&hub.verify_token=vt&hub.challenge=42", None).await;
    assert_eq!((ok.status, ok.text.as_str()), (200, "42"));
    app.get("/webhooks/instagram?hub.mode=subscribe&hub.verify_token=no&hub.challenge=1", None)
        .await
        .err(403, "forbidden");

    let m = event("page", "PAGE1", message("PSID-1", "PAGE1", "m_1", "Oi pelo Messenger"));
    let before = app.snapshot();
    post(&app, "/webhooks/messenger", &m, None).await.err(401, "missing_signature");
    post(&app, "/webhooks/messenger", &m, Some("other")).await.err(401, "invalid_signature");
    post(&app, "/webhooks/messenger", &event("instagram", "PAGE1", json!({})), Some(SECRET))
        .await
        .err(400, "invalid_payload");
    post(&app, "/webhooks/messenger", &event("page", "NOPE", json!({})), Some(SECRET)).await.err(404, "unknown_page");
    app.unchanged(&before, "refused Meta webhooks");
    for _ in 0..3 {
        post(&app, "/webhooks/messenger", &m, Some(SECRET)).await.ok(200);
    }
    // An echo of our own message is not a customer message.
    let mut echo = message("PAGE1", "PSID-1", "m_echo", "our reply");
    echo["message"]["is_echo"] = json!(true);
    post(&app, "/webhooks/messenger", &event("page", "PAGE1", echo), Some(SECRET)).await.ok(200);
    let ig = event(
        "instagram",
        "IG1",
        json!({"sender": {"id": "IGSID-9"}, "recipient": {"id": "IG1"}, "timestamp": 1764000000000i64,
        "message": {"mid": "ig_1", "attachments": [{"type": "image", "payload": {"url": "https://cdn.example/x.jpg"}}]}}),
    );
    post(&app, "/webhooks/instagram", &ig, Some(SECRET)).await.ok(200);
    let all = messages(&app);
    assert_eq!(all.len(), 2, "one Messenger message (replays and echo aside) and one Instagram");
    let fb = all.iter().find(|m| m.provider_message_id.as_deref() == Some("m_1")).unwrap();
    assert_eq!((fb.service_id, fb.body.as_deref()), (messenger, Some("Oi pelo Messenger")));
    let insta = all.iter().find(|m| m.provider_message_id.as_deref() == Some("ig_1")).unwrap();
    assert_eq!((insta.service_id, insta.kind), (instagram, MessageKind::Image));
    assert_eq!(insta.payload["attachments"][0]["payload"]["url"], "https://cdn.example/x.jpg");
    assert_eq!(app.conversation(insta.conversation_id).customer_address, "IGSID-9");
}

#[actix_rt::test]
async fn a_reply_goes_through_the_send_api_and_a_delivery_event_follows_it() {
    let seen: Arc<Mutex<Vec<(String, String, Value)>>> = Arc::default();
    let s = seen.clone();
    let server = HttpServer::new(move || {
        let s = s.clone();
        App::new().route(
            "/v21.0/{sender}/messages",
            aw::post().to(move |req: HttpRequest, body: aw::Json<Value>| {
                let s = s.clone();
                async move {
                    let auth =
                        req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                    s.lock().unwrap().push((req.path().to_owned(), auth, body.into_inner()));
                    HttpResponse::Ok().json(json!({"recipient_id": "PSID-2", "message_id": "m_out_1"}))
                }
            }),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let base = format!("http://127.0.0.1:{}", server.addrs()[0].port());
    actix_rt::spawn(server.run());
    let (app, _, _) = app(&base).await;
    app.start_sender();
    let token = app.login("ana").await;
    app.put("/api/v1/me/presence", Some(&token), &json!({"status": "available"})).await.ok(200);
    post(&app, "/webhooks/messenger", &event("page", "PAGE1", message("PSID-2", "PAGE1", "m_2", "oi")), Some(SECRET))
        .await
        .ok(200);
    let c = messages(&app)[0].conversation_id;
    let sent = app.post(&format!("/api/v1/conversations/{c}/messages"), Some(&token), &json!({"text": "Olá!"})).await;
    let id: schema::MessageId = sent.ok(201)["id"].as_str().unwrap().parse().unwrap();
    let mut m = Message::find(&mut app.conn(), id).unwrap();
    for _ in 0..60 {
        if m.status == MessageStatus::Sent {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        m = Message::find(&mut app.conn(), id).unwrap();
    }
    assert_eq!((m.status, m.provider_message_id.as_deref()), (MessageStatus::Sent, Some("m_out_1")));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![(
            "/v21.0/PAGE1/messages".to_owned(),
            "Bearer PAGE-TOKEN".to_owned(),
            json!({"recipient": {"id": "PSID-2"}, "messaging_type": "RESPONSE", "message": {"text": "Olá!"}})
        )]
    );
    let delivery = event(
        "page",
        "PAGE1",
        json!({"sender": {"id": "PSID-2"}, "recipient": {"id": "PAGE1"},
        "delivery": {"mids": ["m_out_1"], "watermark": 1764000001000i64}}),
    );
    post(&app, "/webhooks/messenger", &delivery, Some(SECRET)).await.ok(200);
    assert_eq!(Message::find(&mut app.conn(), id).unwrap().status, MessageStatus::Delivered);
    // Messenger's read event names a time: a watermark before the reply reads nothing, one after
    // it reads the reply.
    let read = |watermark: i64| {
        event(
            "page",
            "PAGE1",
            json!({"sender": {"id": "PSID-2"}, "recipient": {"id": "PAGE1"}, "timestamp": watermark,
            "read": {"watermark": watermark}}),
        )
    };
    let sent_at = Message::find(&mut app.conn(), id).unwrap().created_at.timestamp_millis();
    post(&app, "/webhooks/messenger", &read(sent_at - 60_000), Some(SECRET)).await.ok(200);
    assert_eq!(Message::find(&mut app.conn(), id).unwrap().status, MessageStatus::Delivered, "read before it was sent");
    post(&app, "/webhooks/messenger", &read(sent_at + 1_000), Some(SECRET)).await.ok(200);
    assert_eq!(Message::find(&mut app.conn(), id).unwrap().status, MessageStatus::Read);
}
