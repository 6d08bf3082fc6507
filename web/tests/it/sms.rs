//! SMS through Twilio: the signed form webhook (inbound and status callbacks) and the Messages API.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web as aw};
use awc::http::Method;
use chrono::Utc;
use schema::models::{Message, Service};
use schema::{Channel, MessageStatus, ServiceId};
use serde_json::json;
use web::channels::sms::signature;

use crate::api_support::TestApp;

const TOKEN: &str = "twilio-auth-token";
const HOOK: &str = "https://omniroute.example.com/webhooks/twilio/sms";
const NUMBER: &str = "+5511900000000";

async fn app(api_base: &str) -> (TestApp, ServiceId) {
    let api_base = api_base.to_owned();
    TestApp::start(move |conn| {
        let now = Utc::now();
        let mut s = Service::with_defaults("SMS", Channel::Sms, now);
        s.provider = json!({"account_sid": "AC123", "auth_token": TOKEN, "phone_number": NUMBER,
                            "webhook_url": HOOK, "api_base_url": api_base});
        s.provider_key = Some(NUMBER.into());
        let s = s.insert(conn).unwrap();
        let _a_id = crate::api_support::agent_in(conn, "ana", &[s.id], None);
        s.id
    })
    .await
}

fn form(pairs: &[(&str, &str)]) -> (Vec<u8>, String) {
    let params: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let body = serde_urlencoded::to_string(&params).unwrap().into_bytes();
    (body, signature(TOKEN, HOOK, &params))
}

async fn post(app: &TestApp, body: &[u8], sig: Option<&str>) -> crate::api_support::Res {
    let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
    if let Some(s) = sig {
        headers.push(("X-Twilio-Signature", s));
    }
    app.raw(Method::POST, "/webhooks/twilio/sms", &headers, body).await
}

fn messages(app: &TestApp) -> Vec<Message> {
    use diesel::prelude::*;
    schema::schema::messages::table.select(Message::as_select()).load(&mut app.conn()).unwrap()
}

#[actix_rt::test]
async fn a_signed_sms_is_stored_once_and_bad_signatures_store_nothing() {
    let (app, _) = app("http://127.0.0.1:9").await;
    let sms = [
        ("MessageSid", "SM0001"),
        ("AccountSid", "AC123"),
        ("From", "+5511987654321"),
        ("To", NUMBER),
        ("Body", "Quero cancelar"),
        ("NumMedia", "0"),
        ("SmsStatus", "received"),
    ];
    let (body, sig) = form(&sms);
    let before = app.snapshot();
    post(&app, &body, None).await.err(401, "missing_signature");
    post(&app, &body, Some("AAAA")).await.err(401, "invalid_signature");
    let (other, _) = form(&[("MessageSid", "SM0001"), ("From", "+5511987654321"), ("To", NUMBER), ("Body", "other")]);
    post(&app, &other, Some(&sig)).await.err(401, "invalid_signature");
    post(&app, b"%%%", Some(&sig)).await;
    let (unknown, usig) = form(&[("MessageSid", "SM9"), ("From", "+1"), ("To", "+19999999999"), ("Body", "x")]);
    post(&app, &unknown, Some(&usig)).await.err(404, "unknown_number");
    app.unchanged(&before, "refused SMS webhooks");
    for _ in 0..5 {
        let res = post(&app, &body, Some(&sig)).await;
        assert_eq!(res.status, 200, "{}", res.text);
        assert!(res.text.contains("<Response>"), "TwiML: {}", res.text);
    }
    let all = messages(&app);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].body.as_deref(), Some("Quero cancelar"));
    assert_eq!(app.conversation(all[0].conversation_id).customer_address, "+5511987654321");
}

#[actix_rt::test]
async fn a_reply_goes_through_the_messages_api_and_status_callbacks_follow_it() {
    let seen: Arc<Mutex<Vec<Request>>> = Arc::default();
    let s = seen.clone();
    let server = HttpServer::new(move || {
        let s = s.clone();
        App::new().route(
            "/2010-04-01/Accounts/{sid}/Messages.json",
            aw::post().to(move |req: HttpRequest, body: aw::Bytes| {
                let s = s.clone();
                async move {
                    let auth =
                        req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap();
                    s.lock().unwrap().push((req.path().to_owned(), auth, form));
                    HttpResponse::Created().json(json!({"sid": "SMout1", "status": "queued"}))
                }
            }),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let base = format!("http://127.0.0.1:{}", server.addrs()[0].port());
    actix_rt::spawn(server.run());
    let (app, _) = app(&base).await;
    app.start_sender();
    let token = app.login("ana").await;
    app.put("/api/v1/me/presence", Some(&token), &json!({"status": "available"})).await.ok(200);
    let (body, sig) = form(&[("MessageSid", "SM0002"), ("From", "+5511911112222"), ("To", NUMBER), ("Body", "oi")]);
    post(&app, &body, Some(&sig)).await;
    let c = messages(&app)[0].conversation_id;
    let sent = app.post(&format!("/api/v1/conversations/{c}/messages"), Some(&token), &json!({"text": "Olá!"})).await;
    let id: schema::MessageId = sent.ok(201)["id"].as_str().unwrap().parse().unwrap();
    let wait = |want: MessageStatus| {
        let app = &app;
        async move {
            for _ in 0..60 {
                let m = Message::find(&mut app.conn(), id).unwrap();
                if m.status == want {
                    return m;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("never {want}");
        }
    };
    let m = wait(MessageStatus::Sent).await;
    assert_eq!(m.provider_message_id.as_deref(), Some("SMout1"));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let (path, auth, form_sent) = &seen[0];
    assert_eq!(path, "/2010-04-01/Accounts/AC123/Messages.json");
    assert_eq!(auth, &format!("Basic {}", base64_of("AC123:twilio-auth-token")));
    let get = |k: &str| form_sent.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(
        (get("To"), get("From"), get("Body"), get("StatusCallback")),
        (Some("+5511911112222"), Some(NUMBER), Some("Olá!"), Some(HOOK))
    );

    // Twilio's status callback: delivered (our number is its From, the customer its To).
    let (cb, cbsig) =
        form(&[("MessageSid", "SMout1"), ("MessageStatus", "delivered"), ("To", "+5511911112222"), ("From", NUMBER)]);
    post(&app, &cb, Some(&cbsig)).await;
    wait(MessageStatus::Delivered).await;
    let (cb, cbsig) = form(&[("MessageSid", "SMout1"), ("MessageStatus", "sent"), ("To", NUMBER)]);
    post(&app, &cb, Some(&cbsig)).await;
    assert_eq!(Message::find(&mut app.conn(), id).unwrap().status, MessageStatus::Delivered, "never backwards");
}

/// What the fake Messages API received: path, Authorization header, form.
type Request = (String, String, Vec<(String, String)>);

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}
