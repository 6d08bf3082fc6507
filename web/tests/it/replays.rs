//! C3 for every webhook family: one request replayed 5 times in a row and 50 times at once stores
//! one message and one conversation; ten different first messages of a new customer arriving
//! together open one conversation holding all ten. (WhatsApp's own test does the same.)

use std::future::Future;

use awc::http::Method;
use chrono::Utc;
use diesel::prelude::*;
use schema::models::Service;
use schema::{Channel, ServiceId};
use serde_json::json;
use web::channels::whatsapp::sign;

use crate::api_support::{Res, TestApp};

const SECRET: &str = "replay-secret";
const HOOK: &str = "https://omniroute.example.com/webhooks/twilio/sms";

struct Services {
    telegram: ServiceId,
}

async fn app() -> (TestApp, Services) {
    let (app, telegram) = TestApp::start(|conn| {
        let now = Utc::now();
        let mut ids = Vec::new();
        for (channel, provider, key) in [
            (
                Channel::Messenger,
                json!({"page_id": "PAGE1", "app_secret": SECRET, "verify_token": "v", "access_token": "T",
                       "api_base_url": "http://127.0.0.1:9"}),
                Some("PAGE1"),
            ),
            (
                Channel::Instagram,
                json!({"account_id": "IG1", "app_secret": SECRET, "verify_token": "v", "access_token": "T",
                       "api_base_url": "http://127.0.0.1:9"}),
                Some("IG1"),
            ),
            (Channel::Telegram, json!({"bot_token": "1:A", "secret_token": SECRET, "api_base_url": "http://127.0.0.1:9"}), None),
            (
                Channel::Sms,
                json!({"account_sid": "AC1", "auth_token": SECRET, "phone_number": "+5511900000000", "webhook_url": HOOK,
                       "api_base_url": "http://127.0.0.1:9"}),
                Some("+5511900000000"),
            ),
        ] {
            let mut s = Service::with_defaults(channel.to_string(), channel, now);
            s.provider = provider;
            s.provider_key = key.map(str::to_owned);
            ids.push((channel, s.insert(conn).unwrap().id));
        }
        let all: Vec<ServiceId> = ids.iter().map(|(_, id)| *id).collect();
        crate::api_support::agent_in(conn, "ana", &all, None);
        ids.into_iter().find(|(c, _)| *c == Channel::Telegram).unwrap().1
    })
    .await;
    (app, Services { telegram })
}

fn counts(app: &TestApp, channel: Channel) -> (i64, i64) {
    use schema::schema::{conversations, messages};
    let mut conn = app.conn();
    let convs: i64 =
        conversations::table.filter(conversations::channel.eq(channel)).count().get_result(&mut conn).unwrap();
    let msgs: i64 = messages::table
        .inner_join(conversations::table)
        .filter(conversations::channel.eq(channel))
        .count()
        .get_result(&mut conn)
        .unwrap();
    (convs, msgs)
}

/// Sends message `n` of a brand-new customer (`n` picks the provider's message id).
async fn check_family<F, Fut>(app: &TestApp, channel: Channel, send: F)
where
    F: Fn(u32) -> Fut,
    Fut: Future<Output = Res>,
{
    for _ in 0..5 {
        let res = send(1).await;
        assert_eq!(res.status, 200, "{channel}: {}", res.text);
    }
    assert_eq!(counts(app, channel), (1, 1), "{channel}: five sequential replays");
    let burst: Vec<_> = (0..50).map(|_| send(2)).collect();
    for res in futures_util::future::join_all(burst).await {
        assert_eq!(res.status, 200, "{channel}: {}", res.text);
    }
    assert_eq!(counts(app, channel), (1, 2), "{channel}: fifty concurrent deliveries of one message");
    let ten: Vec<_> = (100..110).map(&send).collect();
    for res in futures_util::future::join_all(ten).await {
        assert_eq!(res.status, 200, "{channel}: {}", res.text);
    }
    assert_eq!(counts(app, channel), (1, 12), "{channel}: ten messages at once join the one open conversation");
}

async fn meta(app: &TestApp, path: &str, object: &str, account: &str, n: u32, sender: &str) -> Res {
    let body = json!({"object": object, "entry": [{"id": account, "time": 1764000000000i64, "messaging": [
        {"sender": {"id": sender}, "recipient": {"id": account}, "timestamp": 1764000000000i64,
         "message": {"mid": format!("m_{account}_{sender}_{n}"), "text": format!("mensagem {n}")}}]}]})
    .to_string()
    .into_bytes();
    let sig = sign(SECRET, &body);
    app.raw(Method::POST, path, &[("Content-Type", "application/json"), ("X-Hub-Signature-256", &sig)], &body).await
}

#[actix_rt::test]
async fn messenger_and_instagram_replays_store_once() {
    let (app, _) = app().await;
    check_family(&app, Channel::Messenger, |n| meta(&app, "/webhooks/messenger", "page", "PAGE1", n, "PSID-9")).await;
    check_family(&app, Channel::Instagram, |n| meta(&app, "/webhooks/instagram", "instagram", "IG1", n, "IGSID-9"))
        .await;
}

#[actix_rt::test]
async fn telegram_replays_store_once() {
    let (app, services) = app().await;
    let path = format!("/webhooks/telegram/{}", services.telegram);
    check_family(&app, Channel::Telegram, |n| {
        let (app, path) = (&app, path.clone());
        async move {
            let body = json!({"update_id": n, "message": {"message_id": n, "from": {"id": 31, "is_bot": false,
                "first_name": "Rita"}, "chat": {"id": 31, "type": "private"}, "date": 1764000000, "text": format!("oi {n}")}})
            .to_string()
            .into_bytes();
            let headers = [("Content-Type", "application/json"), ("X-Telegram-Bot-Api-Secret-Token", SECRET)];
            app.raw(Method::POST, &path, &headers, &body).await
        }
    })
    .await;
}

#[actix_rt::test]
async fn sms_replays_store_once() {
    let (app, _) = app().await;
    check_family(&app, Channel::Sms, |n| {
        let app = &app;
        async move {
            let sid = format!("SMREPLAY{n}");
            let text = format!("oi {n}");
            let pairs =
                [("MessageSid", sid.as_str()), ("From", "+5511955554444"), ("To", "+5511900000000"), ("Body", &text)];
            let body = serde_urlencoded::to_string(pairs).unwrap().into_bytes();
            let params: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            let sig = web::channels::sms::signature(SECRET, HOOK, &params);
            let headers = [("Content-Type", "application/x-www-form-urlencoded"), ("X-Twilio-Signature", sig.as_str())];
            app.raw(Method::POST, "/webhooks/twilio/sms", &headers, &body).await
        }
    })
    .await;
}

#[actix_rt::test]
async fn a_cti_call_offered_50_times_at_once_is_one_voice_conversation() {
    let (app, ana) = TestApp::start(|conn| {
        let mut s = Service::with_defaults("Central", Channel::Voice, Utc::now());
        s.provider = json!({"cti_token": "cti-secret"});
        let s = s.insert(conn).unwrap();
        crate::api_support::agent_in(conn, "ana", &[s.id], Some("2001"))
    })
    .await;
    app.engine.set_presence(ana, engine::PresenceRequest::Available).await.unwrap();
    let body =
        json!({"event": "call_offered", "call_id": "1700000000.77", "extension": "2001", "caller": "+5511912345678"})
            .to_string()
            .into_bytes();
    let headers = [("Content-Type", "application/json"), ("Authorization", "Bearer cti-secret")];
    let burst: Vec<_> = (0..50).map(|_| app.raw(Method::POST, "/api/v1/cti/events", &headers, &body)).collect();
    let answers = futures_util::future::join_all(burst).await;
    let ids: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|r| {
            assert!(r.status == 200 || r.status == 201, "{} {}", r.status, r.text);
            r.body["conversation_id"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "every delivery names the one conversation: {ids:?}");
    assert_eq!(counts(&app, Channel::Voice).0, 1);
}

#[actix_rt::test]
async fn two_calls_from_one_number_at_once_are_two_voice_conversations() {
    let (app, (ana, bruno)) = TestApp::start(|conn| {
        let mut s = Service::with_defaults("Central", Channel::Voice, Utc::now());
        s.provider = json!({"cti_token": "cti-secret"});
        let s = s.insert(conn).unwrap();
        (
            crate::api_support::agent_in(conn, "ana", &[s.id], Some("2001")),
            crate::api_support::agent_in(conn, "bruno", &[s.id], Some("2002")),
        )
    })
    .await;
    for agent in [ana, bruno] {
        app.engine.set_presence(agent, engine::PresenceRequest::Available).await.unwrap();
    }
    // Withheld numbers all arrive without a caller: each call is still its own conversation.
    let headers = [("Content-Type", "application/json"), ("Authorization", "Bearer cti-secret")];
    let calls: Vec<Vec<u8>> = [("1700000000.1", "2001"), ("1700000000.2", "2002")]
        .iter()
        .map(|(id, ext)| json!({"event": "call_offered", "call_id": id, "extension": ext}).to_string().into_bytes())
        .collect();
    let answers =
        futures_util::future::join_all(calls.iter().map(|b| app.raw(Method::POST, "/api/v1/cti/events", &headers, b)))
            .await;
    for r in &answers {
        assert_eq!(r.status, 201, "{}", r.text);
    }
    assert_ne!(answers[0].body["conversation_id"], answers[1].body["conversation_id"]);
    assert_eq!(counts(&app, Channel::Voice), (2, 2));
}
