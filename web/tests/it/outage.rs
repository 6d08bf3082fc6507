//! C4 under a database outage: while PostgreSQL refuses connections, every webhook family answers
//! 503 with a JSON error (so the provider retries) and nothing is acknowledged; once the database
//! is back, the provider's retry of the very same request is stored once and routed.

use awc::http::Method;
use chrono::Utc;
use diesel::RunQueryDsl;
use schema::models::Service;
use schema::{Channel, ServiceId};
use serde_json::json;
use web::channels::whatsapp::sign;

use crate::api_support::{Res, TestApp};

const SECRET: &str = "outage-secret";
const HOOK: &str = "https://omniroute.example.com/webhooks/twilio/sms";

/// Takes the test's database away from every client (superusers included) or gives it back.
fn database_reachable(app: &TestApp, reachable: bool) {
    let mut admin = schema::connect(&std::env::var("DATABASE_URL").expect("DATABASE_URL")).expect("admin connection");
    let name = app.db.name();
    diesel::sql_query(format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS {reachable}")).execute(&mut admin).unwrap();
    if !reachable {
        diesel::sql_query(format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        ))
        .execute(&mut admin)
        .unwrap();
    }
}

struct Requests {
    telegram: ServiceId,
    whatsapp: Vec<u8>,
    telegram_body: Vec<u8>,
    sms: Vec<u8>,
}

impl Requests {
    fn new(telegram: ServiceId) -> Requests {
        let whatsapp = json!({"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{"field": "messages",
            "value": {"messaging_product": "whatsapp", "metadata": {"display_phone_number": "1", "phone_number_id": "1065"},
                      "messages": [{"from": "5511987654321", "id": "wamid.OUTAGE", "timestamp": "1749416383",
                                    "type": "text", "text": {"body": "Alguém aí?"}}]}}]}]});
        let telegram_body = json!({"update_id": 1, "message": {"message_id": 7, "from": {"id": 99, "is_bot": false,
            "first_name": "Rui"}, "chat": {"id": 99, "type": "private"}, "date": 1764000000, "text": "Oi"}});
        let sms = serde_urlencoded::to_string([
            ("MessageSid", "SMOUTAGE1"),
            ("From", "+5511912345678"),
            ("To", "+5511900000000"),
            ("Body", "Oi"),
        ])
        .unwrap();
        Requests {
            telegram,
            whatsapp: whatsapp.to_string().into_bytes(),
            telegram_body: telegram_body.to_string().into_bytes(),
            sms: sms.into_bytes(),
        }
    }

    async fn send_all(&self, app: &TestApp) -> Vec<(&'static str, Res)> {
        let sig = sign(SECRET, &self.whatsapp);
        let wa = app
            .raw_unchecked(
                Method::POST,
                "/webhooks/whatsapp",
                &[("Content-Type", "application/json"), ("X-Hub-Signature-256", &sig)],
                &self.whatsapp,
            )
            .await;
        let tg = app
            .raw_unchecked(
                Method::POST,
                &format!("/webhooks/telegram/{}", self.telegram),
                &[("Content-Type", "application/json"), ("X-Telegram-Bot-Api-Secret-Token", SECRET)],
                &self.telegram_body,
            )
            .await;
        let params: Vec<(String, String)> = serde_urlencoded::from_bytes(&self.sms).unwrap();
        let twilio = web::channels::sms::signature(SECRET, HOOK, &params);
        let sms = app
            .raw_unchecked(
                Method::POST,
                "/webhooks/twilio/sms",
                &[("Content-Type", "application/x-www-form-urlencoded"), ("X-Twilio-Signature", &twilio)],
                &self.sms,
            )
            .await;
        vec![("whatsapp", wa), ("telegram", tg), ("sms", sms)]
    }
}

#[actix_rt::test]
async fn webhooks_answer_503_while_the_database_is_down_and_the_retry_is_stored_once() {
    let (app, telegram) = TestApp::start(|conn| {
        let now = Utc::now();
        let mut wa = Service::with_defaults("WA", Channel::Whatsapp, now);
        wa.provider = json!({"phone_number_id": "1065", "app_secret": SECRET, "verify_token": "t", "access_token": "x",
                             "api_base_url": "http://127.0.0.1:9"});
        wa.provider_key = Some("1065".into());
        let wa = wa.insert(conn).unwrap();
        let mut tg = Service::with_defaults("TG", Channel::Telegram, now);
        tg.provider = json!({"bot_token": "1:A", "secret_token": SECRET, "api_base_url": "http://127.0.0.1:9"});
        let tg = tg.insert(conn).unwrap();
        let mut sms = Service::with_defaults("SMS", Channel::Sms, now);
        sms.provider = json!({"account_sid": "AC1", "auth_token": SECRET, "phone_number": "+5511900000000",
                              "webhook_url": HOOK, "api_base_url": "http://127.0.0.1:9"});
        sms.provider_key = Some("+5511900000000".into());
        let sms = sms.insert(conn).unwrap();
        crate::api_support::agent_in(conn, "ana", &[wa.id, tg.id, sms.id], None);
        tg.id
    })
    .await;
    let requests = Requests::new(telegram);

    database_reachable(&app, false);
    for (family, res) in requests.send_all(&app).await {
        assert_eq!(res.status, 503, "{family} while the database is down: {}", res.text);
        assert!(res.body["error"].is_string() && res.body["message"].is_string(), "{family}: {}", res.text);
    }
    database_reachable(&app, true);

    // The providers retry: each request is now stored, once, even when retried again.
    for round in 0..2 {
        for (family, res) in requests.send_all(&app).await {
            assert!(res.status == 200, "{family}, retry {round}: {} {}", res.status, res.text);
        }
    }
    let mut conn = app.conn();
    let stored: Vec<(String, i64)> = {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            channel: String,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel::sql_query("SELECT channel, count(*) AS n FROM conversations GROUP BY channel ORDER BY channel")
            .load::<Row>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|r| (r.channel, r.n))
            .collect()
    };
    assert_eq!(stored, vec![("sms".into(), 1), ("telegram".into(), 1), ("whatsapp".into(), 1)]);
    let messages: i64 = {
        use diesel::prelude::*;
        schema::schema::messages::table.count().get_result(&mut conn).unwrap()
    };
    assert_eq!(messages, 3, "one message per request, however often it was retried");
    // And the engine routes them: Ana, available now, is offered or given the waiting ones.
    let ana = app.agent_id("ana");
    app.engine.set_presence(ana, engine::PresenceRequest::Available).await.unwrap();
    let token = app.login("ana").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mine = app.get("/api/v1/conversations?mine=true", Some(&token)).await;
        if mine.ok(200).as_array().is_some_and(|a| a.len() == 3) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the three conversations reach Ana: {}", mine.text);
        actix_rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
