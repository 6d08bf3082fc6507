//! Outbound to WhatsApp against a local fake of the Graph API that records the exact requests:
//! a text goes out once and becomes `sent` with the provider's id; a 429 is retried with backoff
//! without sending twice; a refusal (131047, outside the 24-hour window) is `failed` with its error.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web as aw};
use chrono::Utc;
use schema::models::{Message, Service};
use schema::{AgentId, Channel, MessageStatus, ServiceId, store};
use serde_json::{Value, json};

use crate::api_support::TestApp;

#[derive(Clone, Default)]
struct FakeGraph {
    requests: Arc<Mutex<Vec<(String, String, Value)>>>,
    answers: Arc<Mutex<VecDeque<(u16, Value)>>>,
}

async fn fake_graph(fake: FakeGraph) -> String {
    let f = fake.clone();
    let server = HttpServer::new(move || {
        let f = f.clone();
        App::new().route(
            "/v21.0/{phone}/messages",
            aw::post().to(move |req: HttpRequest, body: aw::Json<Value>| {
                let f = f.clone();
                async move {
                    let auth =
                        req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                    f.requests.lock().unwrap().push((req.path().to_owned(), auth, body.into_inner()));
                    let n = f.requests.lock().unwrap().len();
                    let (status, answer) = f.answers.lock().unwrap().pop_front().unwrap_or((
                        200,
                        json!({"messaging_product": "whatsapp", "contacts": [{"input": "x", "wa_id": "x"}],
                               "messages": [{"id": format!("wamid.SENT{n}")}]}),
                    ));
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

async fn setup(graph: &str) -> (TestApp, ServiceId, AgentId, String) {
    let graph = graph.to_owned();
    // The sender runs over the server's own state, as `omniroute serve` runs it: agents' messages
    // are handed to it with their context.
    let (app, (service, ana)) = TestApp::start_sending(move |conn| {
        let now = Utc::now();
        let mut s = Service::with_defaults("WhatsApp", Channel::Whatsapp, now);
        s.provider = json!({"phone_number_id": "106540352242922", "app_secret": "sec", "verify_token": "v",
                            "access_token": "EAAG-token", "api_base_url": graph});
        s.provider_key = Some("106540352242922".into());
        let s = s.insert(conn).unwrap();
        let a_id = crate::api_support::agent_in(conn, "ana", &[s.id], None);
        (s.id, a_id)
    })
    .await;
    let token = app.login("ana").await;
    app.put("/api/v1/me/presence", Some(&token), &json!({"status": "available"})).await.ok(200);
    (app, service, ana, token)
}

async fn customer_conversation(app: &TestApp, service: ServiceId) -> schema::ConversationId {
    let payload = json!({"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{"field": "messages",
        "value": {"metadata": {"phone_number_id": "106540352242922"},
                  "messages": [{"from": "5511987650000", "id": "wamid.IN1", "timestamp": "1764000000", "type": "text",
                                "text": {"body": "Oi"}}]}}]}]});
    let body = payload.to_string().into_bytes();
    let sig = web::channels::whatsapp::sign("sec", &body);
    app.raw(
        awc::http::Method::POST,
        "/webhooks/whatsapp",
        &[("Content-Type", "application/json"), ("X-Hub-Signature-256", &sig)],
        &body,
    )
    .await
    .ok(200);
    store::open_conversation_for(&mut app.conn(), service, "5511987650000").unwrap().unwrap().id
}

async fn until_status(app: &TestApp, id: &str, want: MessageStatus) -> Message {
    let id: schema::MessageId = id.parse().unwrap();
    for _ in 0..100 {
        let m = Message::find(&mut app.conn(), id).unwrap();
        if m.status == want {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("message never became {want}: {:?}", Message::find(&mut app.conn(), id).unwrap());
}

#[actix_rt::test]
async fn a_text_goes_out_once_in_the_graph_api_format_and_becomes_sent() {
    let fake = FakeGraph::default();
    let graph = fake_graph(fake.clone()).await;
    let (app, service, _, token) = setup(&graph).await;
    let c = customer_conversation(&app, service).await;
    let sent = app
        .post(&format!("/api/v1/conversations/{c}/messages"), Some(&token), &json!({"text": "Olá! Como posso ajudar?"}))
        .await;
    let id = sent.ok(201)["id"].as_str().unwrap().to_owned();
    let m = until_status(&app, &id, MessageStatus::Sent).await;
    assert_eq!(m.provider_message_id.as_deref(), Some("wamid.SENT1"));
    let requests = fake.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    let (path, auth, body) = &requests[0];
    assert_eq!(path, "/v21.0/106540352242922/messages");
    assert_eq!(auth, "Bearer EAAG-token");
    assert_eq!(
        body,
        &json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "5511987650000",
                "type": "text", "text": {"body": "Olá! Como posso ajudar?", "preview_url": false}})
    );
}

#[actix_rt::test]
async fn a_429_is_retried_with_backoff_and_sent_once() {
    let fake = FakeGraph::default();
    fake.answers.lock().unwrap().push_back((429, json!({"error": {"code": 130429, "message": "Rate limit hit"}})));
    let graph = fake_graph(fake.clone()).await;
    let (app, service, _, token) = setup(&graph).await;
    let c = customer_conversation(&app, service).await;
    let sent =
        app.post(&format!("/api/v1/conversations/{c}/messages"), Some(&token), &json!({"text": "retry me"})).await;
    let id = sent.ok(201)["id"].as_str().unwrap().to_owned();
    let m = until_status(&app, &id, MessageStatus::Sent).await;
    assert_eq!(m.provider_message_id.as_deref(), Some("wamid.SENT2"), "the second request succeeded");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(fake.requests.lock().unwrap().len(), 2, "one refused by the rate limit, one accepted, no more");
}

#[actix_rt::test]
async fn a_refusal_outside_the_24_hour_window_is_failed_with_the_providers_error() {
    let fake = FakeGraph::default();
    fake.answers.lock().unwrap().push_back((
        400,
        json!({"error": {"message": "Re-engagement message", "type": "OAuthException", "code": 131047,
                         "error_data": {"messaging_product": "whatsapp", "details": "More than 24 hours have passed"}}}),
    ));
    let graph = fake_graph(fake.clone()).await;
    let (app, service, _, token) = setup(&graph).await;
    let c = customer_conversation(&app, service).await;
    let sent = app.post(&format!("/api/v1/conversations/{c}/messages"), Some(&token), &json!({"text": "late"})).await;
    let id = sent.ok(201)["id"].as_str().unwrap().to_owned();
    let m = until_status(&app, &id, MessageStatus::Failed).await;
    assert_eq!(m.error_code.as_deref(), Some("131047"));
    assert_eq!(m.error_message.as_deref(), Some("Re-engagement message"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(fake.requests.lock().unwrap().len(), 1, "a refusal is not retried");
}

#[actix_rt::test]
async fn a_send_leased_by_a_process_that_died_goes_out_at_the_restart_not_after_the_lease() {
    let fake = FakeGraph::default();
    let graph = fake_graph(fake.clone()).await;
    let (app, service, _, token) = setup(&graph).await;
    let c = customer_conversation(&app, service).await;
    let sent = app.post(&format!("/api/v1/conversations/{c}/messages"), Some(&token), &json!({"text": "again"})).await;
    let id = sent.ok(201)["id"].as_str().unwrap().to_owned();
    until_status(&app, &id, MessageStatus::Sent).await;
    // As a process killed mid-send leaves it: pending, its next attempt a minute away (the lease).
    use diesel::RunQueryDsl;
    diesel::sql_query(
        "UPDATE messages SET status = 'pending', provider_message_id = NULL, \
         next_attempt_at = now() + interval '60 seconds' WHERE id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(id.parse::<schema::MessageId>().unwrap())
    .execute(&mut app.conn())
    .unwrap();
    let (messages, _) = store::release_after_restart(&mut app.conn(), Utc::now()).unwrap();
    assert_eq!(messages, 1);
    let m = until_status(&app, &id, MessageStatus::Sent).await;
    assert_eq!(m.provider_message_id.as_deref(), Some("wamid.SENT2"));
    assert_eq!(fake.requests.lock().unwrap().len(), 2);
}
