//! The Telegram Bot API webhook and sendMessage, with Updates in the Bot API's documented shape.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web as aw};
use awc::http::Method;
use chrono::Utc;
use schema::models::{Message, Service};
use schema::{Channel, MessageKind, MessageStatus, ServiceId};
use serde_json::{Value, json};

use crate::api_support::TestApp;

const SECRET: &str = "tg-secret-Token_1";

async fn app(api_base: &str) -> (TestApp, ServiceId) {
    let api_base = api_base.to_owned();
    let (app, service) = TestApp::start(move |conn| {
        let now = Utc::now();
        let mut s = Service::with_defaults("Telegram", Channel::Telegram, now);
        s.provider = json!({"bot_token": "123456:ABC", "secret_token": SECRET, "api_base_url": api_base});
        let s = s.insert(conn).unwrap();
        let _a_id = crate::api_support::agent_in(conn, "ana", &[s.id], None);
        s.id
    })
    .await;
    (app, service)
}

fn update(update_id: i64, message: Value) -> Value {
    json!({"update_id": update_id, "message": message})
}

fn text(message_id: i64, text: &str) -> Value {
    json!({"message_id": message_id, "from": {"id": 777, "is_bot": false, "first_name": "João", "last_name": "Silva"},
           "chat": {"id": 777, "first_name": "João", "type": "private"}, "date": 1764000000, "text": text})
}

async fn post(app: &TestApp, service: ServiceId, body: &[u8], secret: Option<&str>) -> crate::api_support::Res {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(s) = secret {
        headers.push(("X-Telegram-Bot-Api-Secret-Token", s));
    }
    app.raw(Method::POST, &format!("/webhooks/telegram/{service}"), &headers, body).await
}

fn messages(app: &TestApp) -> Vec<Message> {
    use diesel::prelude::*;
    schema::schema::messages::table.select(Message::as_select()).load(&mut app.conn()).unwrap()
}

#[actix_rt::test]
async fn updates_are_stored_once_with_their_content_and_only_with_the_secret() {
    let (app, service) = app("http://127.0.0.1:9").await;
    let body = update(1001, text(1, "Olá, preciso de ajuda")).to_string().into_bytes();
    let before = app.snapshot();
    post(&app, service, &body, None).await.err(401, "missing_secret_token");
    post(&app, service, &body, Some("wrong")).await.err(401, "invalid_secret_token");
    app.unchanged(&before, "unauthenticated updates");
    for _ in 0..5 {
        post(&app, service, &body, Some(SECRET)).await.ok(200);
    }
    let all = messages(&app);
    assert_eq!(all.len(), 1, "a replayed update stores one message");
    assert_eq!(all[0].body.as_deref(), Some("Olá, preciso de ajuda"));
    let c = app.conversation(all[0].conversation_id);
    assert_eq!((c.customer_address.as_str(), c.customer_name.as_deref()), ("777", Some("João Silva")));

    let kinds = [
        update(
            1002,
            json!({"message_id": 2, "chat": {"id": 777, "type": "private"}, "date": 1764000001, "caption": "nota",
                             "photo": [{"file_id": "small", "width": 90, "height": 90}, {"file_id": "big", "width": 800, "height": 800}]}),
        ),
        update(
            1003,
            json!({"message_id": 3, "chat": {"id": 777, "type": "private"}, "date": 1764000002,
                             "voice": {"file_id": "VOICE", "duration": 3, "mime_type": "audio/ogg"}}),
        ),
        update(
            1004,
            json!({"message_id": 4, "chat": {"id": 777, "type": "private"}, "date": 1764000003,
                             "location": {"latitude": -3.73, "longitude": -38.52}}),
        ),
        update(
            1005,
            json!({"message_id": 5, "chat": {"id": 777, "type": "private"}, "date": 1764000004,
                             "contact": {"phone_number": "+5585999990000", "first_name": "Maria"}}),
        ),
        update(
            1006,
            json!({"message_id": 6, "chat": {"id": 777, "type": "private"}, "date": 1764000005,
                             "document": {"file_id": "DOC", "file_name": "rg.pdf", "mime_type": "application/pdf"}}),
        ),
    ];
    for u in &kinds {
        post(&app, service, u.to_string().as_bytes(), Some(SECRET)).await.ok(200);
    }
    let all = messages(&app);
    let by = |pid: &str| all.iter().find(|m| m.provider_message_id.as_deref() == Some(pid)).unwrap().clone();
    assert_eq!((by("777:2").kind, by("777:2").payload["file_id"].as_str()), (MessageKind::Image, Some("big")));
    assert_eq!(by("777:3").kind, MessageKind::Audio);
    assert_eq!(by("777:4").payload["latitude"], -3.73);
    assert_eq!(by("777:5").payload["contacts"][0]["phones"][0]["phone"], "+5585999990000");
    assert_eq!(by("777:6").payload["file_name"], "rg.pdf");
    assert!(all.iter().all(|m| m.conversation_id == c.id));

    // Valid updates it does not handle are acknowledged and ignored; malformed ones are 4xx.
    let before = app.snapshot();
    post(
        &app,
        service,
        json!({"update_id": 2000, "edited_message": text(1, "x")}).to_string().as_bytes(),
        Some(SECRET),
    )
    .await
    .ok(200);
    for bad in [&b"nope"[..], b"{}", br#"{"update_id":"x"}"#, br#"{"update_id":1,"message":{"text":"no chat"}}"#] {
        let res = post(&app, service, bad, Some(SECRET)).await;
        assert!((400..500).contains(&res.status), "{}", res.text);
    }
    app.unchanged(&before, "ignored and malformed updates");
    post(&app, ServiceId::new(), &body, Some(SECRET)).await.err(404, "not_found");
}

#[actix_rt::test]
async fn a_reply_goes_out_through_send_message() {
    let seen: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let s = seen.clone();
    let server = HttpServer::new(move || {
        let s = s.clone();
        App::new().route(
            "/bot{token}/sendMessage",
            aw::post().to(move |req: HttpRequest, body: aw::Json<Value>| {
                let s = s.clone();
                async move {
                    s.lock().unwrap().push((req.path().to_owned(), body.into_inner()));
                    HttpResponse::Ok()
                        .json(json!({"ok": true, "result": {"message_id": 42, "chat": {"id": 777}, "date": 1}}))
                }
            }),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let base = format!("http://127.0.0.1:{}", server.addrs()[0].port());
    actix_rt::spawn(server.run());
    let (app, service) = app(&base).await;
    app.start_sender();
    let token = app.login("ana").await;
    app.put("/api/v1/me/presence", Some(&token), &json!({"status": "available"})).await.ok(200);
    post(&app, service, update(1, text(1, "oi")).to_string().as_bytes(), Some(SECRET)).await.ok(200);
    let c = messages(&app)[0].conversation_id;
    let sent =
        app.post(&format!("/api/v1/conversations/{c}/messages"), Some(&token), &json!({"text": "Olá, João!"})).await;
    let id: schema::MessageId = sent.ok(201)["id"].as_str().unwrap().parse().unwrap();
    let mut m = Message::find(&mut app.conn(), id).unwrap();
    for _ in 0..60 {
        if m.status == MessageStatus::Sent {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        m = Message::find(&mut app.conn(), id).unwrap();
    }
    assert_eq!(m.status, MessageStatus::Sent);
    assert_eq!(m.provider_message_id.as_deref(), Some("777:42"));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, vec![("/bot123456:ABC/sendMessage".to_owned(), json!({"chat_id": 777, "text": "Olá, João!"}))]);
}

/// Webhooks find their service without a query (services are kept in memory): an administrator's
/// change must still count from the next request on.
#[actix_rt::test]
async fn a_rotated_secret_counts_from_the_next_update() {
    let app = TestApp::seeded().await;
    let admin = app.demo_login("admin").await;
    let service = app.service_of(Channel::Telegram).id;
    let body = |id: i64| update(id, text(id, "Olá")).to_string().into_bytes();
    post(&app, service, &body(1), Some("demo-secret-token")).await.ok(200);

    let path = format!("/api/v1/admin/services/{service}");
    app.patch(&path, Some(&admin), &json!({"provider": {"secret_token": "rotated-Secret_2"}})).await.ok(200);
    post(&app, service, &body(2), Some("demo-secret-token")).await.err(401, "invalid_secret_token");
    post(&app, service, &body(3), Some("rotated-Secret_2")).await.ok(200);
    assert_eq!(messages(&app).len(), 2, "the update with the old secret stored nothing");
}

/// Service messages are valid Updates with nothing to store: answered 2xx, so Telegram does not
/// send them again; a message without its chat or id is still refused.
#[actix_rt::test]
async fn service_messages_are_acknowledged_and_store_nothing() {
    let (app, service) = app("http://127.0.0.1:9").await;
    let chat = json!({"id": 777, "first_name": "João", "type": "private"});
    let service_messages = [
        json!({"message_id": 10, "chat": chat, "date": 1764000000,
               "pinned_message": {"message_id": 1, "chat": chat, "date": 1764000000, "text": "x"}}),
        json!({"message_id": 11, "chat": chat, "date": 1764000000, "write_access_allowed": {"from_request": true}}),
        json!({"message_id": 12, "chat": chat, "date": 1764000000,
               "successful_payment": {"currency": "BRL", "total_amount": 1000, "invoice_payload": "p",
                                      "telegram_payment_charge_id": "t", "provider_payment_charge_id": "p"}}),
    ];
    let before = app.snapshot();
    for (i, m) in service_messages.into_iter().enumerate() {
        let body = update(2000 + i as i64, m).to_string().into_bytes();
        let res = post(&app, service, &body, Some(SECRET)).await;
        assert_eq!(res.status, 200, "{}", res.text);
    }
    app.unchanged(&before, "service messages");
    let body = update(3000, json!({"date": 1764000000, "text": "no chat"})).to_string().into_bytes();
    post(&app, service, &body, Some(SECRET)).await.err(400, "invalid_payload");
}

/// A text with a NUL character (which PostgreSQL cannot store) is stored without it and answered 200.
#[actix_rt::test]
async fn a_text_with_a_nul_is_stored_without_it() {
    let (app, service) = app("http://127.0.0.1:9").await;
    let body = update(4000, text(40, "antes\u{0}depois")).to_string().into_bytes();
    let res = post(&app, service, &body, Some(SECRET)).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let stored = messages(&app);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].body.as_deref(), Some("antesdepois"));
}
