//! Automatic identification of the customer (K2): WhatsApp and SMS by phone (with or without the
//! Brazilian ninth digit that WhatsApp's ids often lack), Telegram only once linked; two customers
//! sharing a phone identify nobody. The agent sees the registered customer on the conversation.

use awc::http::Method;
use chrono::Utc;
use diesel::connection::SimpleConnection;
use schema::models::Service;
use schema::{Channel, ServiceId};
use serde_json::{Value, json};
use web::channels::whatsapp::sign;

use crate::api_support::TestApp;

const SECRET: &str = "k2-secret";

async fn app() -> (TestApp, ServiceId, ServiceId) {
    let (app, ids) = TestApp::start(|conn| {
        let now = Utc::now();
        let mut wa = Service::with_defaults("WhatsApp", Channel::Whatsapp, now);
        wa.provider = json!({"phone_number_id": "1065", "app_secret": SECRET, "verify_token": "t", "access_token": "x",
                             "api_base_url": "http://127.0.0.1:9"});
        wa.provider_key = Some("1065".into());
        let wa = wa.insert(conn).unwrap();
        let mut tg = Service::with_defaults("Telegram", Channel::Telegram, now);
        tg.provider = json!({"bot_token": "1:A", "secret_token": SECRET, "api_base_url": "http://127.0.0.1:9"});
        let tg = tg.insert(conn).unwrap();
        crate::api_support::agent_in(conn, "ana", &[wa.id, tg.id], None);
        conn.batch_execute(
            "INSERT INTO customers (id, name, phones) VALUES
               ('00000000-0000-4000-8000-000000000001', 'Maria Registrada', '{+5511987654321}'),
               ('00000000-0000-4000-8000-000000000002', 'Gêmeo Um', '{+5521999990000}'),
               ('00000000-0000-4000-8000-000000000003', 'Gêmeo Dois', '{5521999990000}'),
               ('00000000-0000-4000-8000-000000000004', 'Telegram Vinculado', '{}');
             INSERT INTO channel_identities (channel, address, customer_id)
               VALUES ('telegram', '4242', '00000000-0000-4000-8000-000000000004')",
        )
        .unwrap();
        (wa.id, tg.id)
    })
    .await;
    (app, ids.0, ids.1)
}

/// A WhatsApp text from `wa_id`; returns the conversation the agent sees.
async fn whatsapp_from(app: &TestApp, token: &str, wa_id: &str, profile: &str) -> Value {
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "1", "phone_number_id": "1065"},
        "contacts": [{"profile": {"name": profile}, "wa_id": wa_id}],
        "messages": [{"from": wa_id, "id": format!("wamid.{wa_id}"), "timestamp": "1749416383", "type": "text",
                      "text": {"body": "Oi"}}]}}]}]})
    .to_string()
    .into_bytes();
    let sig = sign(SECRET, &body);
    let headers = [("Content-Type", "application/json"), ("X-Hub-Signature-256", sig.as_str())];
    assert_eq!(app.raw(Method::POST, "/webhooks/whatsapp", &headers, &body).await.status, 200);
    conversation_of(app, token, wa_id).await
}

async fn conversation_of(app: &TestApp, token: &str, address: &str) -> Value {
    let list = app.get("/api/v1/conversations", Some(token)).await;
    let all = list.ok(200).as_array().cloned().unwrap_or_default();
    let found = all.into_iter().find(|c| c["customer"]["address"] == address).expect("the conversation is listed");
    app.get(&format!("/api/v1/conversations/{}", found["id"].as_str().unwrap()), Some(token)).await.ok(200).clone()
}

#[actix_rt::test]
async fn a_known_phone_identifies_the_customer_with_or_without_the_ninth_digit() {
    let (app, _, _) = app().await;
    let token = app.login("ana").await;
    let c = whatsapp_from(&app, &token, "5511987654321", "Mari").await;
    assert_eq!(c["customer"]["id"], "00000000-0000-4000-8000-000000000001");
    assert_eq!(c["customer"]["name"], "Maria Registrada", "the registered name, not the WhatsApp profile");

    // The same number as WhatsApp writes many Brazilian mobiles: without the ninth digit.
    let c = whatsapp_from(&app, &token, "551187654321", "Mari").await;
    assert_eq!(c["customer"]["id"], "00000000-0000-4000-8000-000000000001");
}

#[actix_rt::test]
async fn a_phone_two_customers_share_identifies_nobody_and_unknown_numbers_keep_the_profile_name() {
    let (app, _, _) = app().await;
    let token = app.login("ana").await;
    let c = whatsapp_from(&app, &token, "5521999990000", "Gêmeo").await;
    assert_eq!(c["customer"]["id"], Value::Null, "two customers have this phone: the agent chooses");
    assert_eq!(c["customer"]["name"], "Gêmeo");
    let c = whatsapp_from(&app, &token, "5531912340000", "Desconhecido").await;
    assert_eq!((c["customer"]["id"].clone(), c["customer"]["name"].clone()), (Value::Null, json!("Desconhecido")));
}

#[actix_rt::test]
async fn telegram_identifies_only_a_linked_user() {
    let (app, _, telegram) = app().await;
    let token = app.login("ana").await;
    let path = format!("/webhooks/telegram/{telegram}");
    for (update, chat) in [(1, 4242), (2, 5353)] {
        let body = json!({"update_id": update, "message": {"message_id": update, "from": {"id": chat, "is_bot": false,
            "first_name": "Fulano"}, "chat": {"id": chat, "type": "private"}, "date": 1764000000, "text": "Oi"}})
        .to_string()
        .into_bytes();
        let headers = [("Content-Type", "application/json"), ("X-Telegram-Bot-Api-Secret-Token", SECRET)];
        assert_eq!(app.raw(Method::POST, &path, &headers, &body).await.status, 200);
    }
    let linked = conversation_of(&app, &token, "4242").await;
    assert_eq!(linked["customer"]["id"], "00000000-0000-4000-8000-000000000004");
    assert_eq!(linked["customer"]["name"], "Telegram Vinculado");
    let unlinked = conversation_of(&app, &token, "5353").await;
    assert_eq!(unlinked["customer"]["id"], Value::Null);
}
