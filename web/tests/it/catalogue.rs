//! The malformed-request catalogues of the webhook families (N2, C1): every request correctly
//! authenticated (so it reaches the parser) but broken — empty, not JSON, bad UTF-8, deep nesting,
//! huge, every required field missing or of every wrong type, unknown event types. Each must get
//! a JSON 4xx, or a 200 when it is valid but says nothing we handle; never a 5xx, never a panic,
//! and nothing stored. After each catalogue the valid request it was made from is sent and stored,
//! so the catalogue cannot pass by refusing everything.

use awc::http::Method;
use chrono::Utc;
use schema::models::Service;
use schema::{Channel, ServiceId};
use serde_json::{Value, json};
use web::channels::whatsapp::sign;

use crate::api_support::{Res, TestApp};

/// Bodies that are broken whatever the family.
fn generic_bodies() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), b"".to_vec()),
        ("whitespace".into(), b"  \n\t ".to_vec()),
        ("not json".into(), b"hello".to_vec()),
        ("truncated".into(), br#"{"object": "whatsapp_business_account", "entry": [{"#.to_vec()),
        ("null".into(), b"null".to_vec()),
        ("number".into(), b"42".to_vec()),
        ("string".into(), br#""entry""#.to_vec()),
        ("boolean".into(), b"true".to_vec()),
        ("empty array".into(), b"[]".to_vec()),
        ("empty object".into(), b"{}".to_vec()),
        ("bad utf-8".into(), b"{\"object\": \"\xff\xfe\"}".to_vec()),
        ("lone surrogate".into(), br#"{"object": "\ud800"}"#.to_vec()),
        ("nul bytes".into(), b"\0\0\0\0".to_vec()),
        ("utf-16".into(), "{\"a\":1}".encode_utf16().flat_map(u16::to_le_bytes).collect()),
        ("trailing garbage".into(), br#"{"object": "page"} trailing"#.to_vec()),
        ("deep arrays".into(), format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes()),
        ("deep objects".into(), format!("{}1{}", r#"{"a":"#.repeat(5_000), "}".repeat(5_000)).into_bytes()),
        ("xml".into(), b"<?xml version=\"1.0\"?><entry/>".to_vec()),
    ];
    // A single huge string inside otherwise fine JSON, under the body limit.
    out.push(("huge string".into(), format!(r#"{{"object": "{}"}}"#, "x".repeat(1_000_000)).into_bytes()));
    out
}

/// `valid` with the value at each pointer removed and replaced by each wrong type.
fn mutations(valid: &Value, pointers: &[&str]) -> Vec<(String, Vec<u8>)> {
    let wrong = [json!(null), json!(42), json!("x"), json!([]), json!({}), json!(true), json!(-1.5e300)];
    let mut out = Vec::new();
    for pointer in pointers {
        let original = valid.pointer(pointer).unwrap_or_else(|| panic!("{pointer} is in the valid payload"));
        let (parent, key) = pointer.rsplit_once('/').expect("a pointer below the root");
        let mut removed = valid.clone();
        match removed.pointer_mut(parent) {
            Some(Value::Object(o)) => {
                o.remove(key);
            }
            Some(Value::Array(a)) => {
                a.clear();
            }
            _ => unreachable!("{parent} is a container"),
        }
        out.push((format!("{pointer} missing"), removed.to_string().into_bytes()));
        for w in &wrong {
            if std::mem::discriminant(w) == std::mem::discriminant(original) {
                continue;
            }
            let mut changed = valid.clone();
            *changed.pointer_mut(pointer).expect("present") = w.clone();
            out.push((format!("{pointer} = {w}"), changed.to_string().into_bytes()));
        }
    }
    out
}

/// Sends every case; checks the answer and that nothing was stored.
async fn run<F, Fut>(app: &TestApp, family: &str, cases: Vec<(String, Vec<u8>)>, send: F)
where
    F: Fn(Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = Res>,
{
    assert!(cases.len() >= 40, "{family}: the catalogue has {} cases, fewer than 40", cases.len());
    let before = app.snapshot();
    for (name, body) in cases {
        let res = send(body).await;
        assert!(res.status < 500, "{family}: {name} -> {} {}", res.status, res.text);
        if res.status >= 400 {
            assert!(
                res.body["error"].is_string() && res.body["message"].is_string(),
                "{family}: {name} -> {} without a JSON error: {}",
                res.status,
                res.text
            );
        } else {
            assert_eq!(res.status, 200, "{family}: {name} -> {}", res.text);
        }
        app.unchanged(&before, &format!("{family}: {name}"));
    }
}

async fn service(channel: Channel, provider: Value, key: Option<&str>) -> (TestApp, ServiceId) {
    let key = key.map(str::to_owned);
    TestApp::start(move |conn| {
        let mut s = Service::with_defaults("Catalogue", channel, Utc::now());
        s.provider = provider;
        s.provider_key = key;
        let s = s.insert(conn).unwrap();
        crate::api_support::agent_in(conn, "ana", &[s.id], Some("2001"));
        s.id
    })
    .await
}

fn stored(res: &Res) -> u64 {
    assert_eq!(res.status, 200, "{}", res.text);
    res.body["stored"].as_u64().unwrap_or_default()
}

#[actix_rt::test]
async fn whatsapp_catalogue() {
    const SECRET: &str = "wa-secret";
    let (app, _) = service(
        Channel::Whatsapp,
        json!({"phone_number_id": "1065", "app_secret": SECRET, "verify_token": "t", "access_token": "x",
               "api_base_url": "http://127.0.0.1:9"}),
        Some("1065"),
    )
    .await;
    let valid = json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages",
        "value": {"messaging_product": "whatsapp", "metadata": {"display_phone_number": "1555", "phone_number_id": "1065"},
                  "contacts": [{"profile": {"name": "Sheena"}, "wa_id": "16505551234"}],
                  "messages": [{"from": "16505551234", "id": "wamid.CAT1", "timestamp": "1749416383", "type": "text",
                                "text": {"body": "Olá"}}]}}]}]});
    let mut cases = generic_bodies();
    cases.extend(mutations(
        &valid,
        &[
            "/object",
            "/entry",
            "/entry/0",
            "/entry/0/changes",
            "/entry/0/changes/0",
            "/entry/0/changes/0/field",
            "/entry/0/changes/0/value",
            "/entry/0/changes/0/value/metadata",
            "/entry/0/changes/0/value/metadata/phone_number_id",
            "/entry/0/changes/0/value/messages",
            "/entry/0/changes/0/value/messages/0",
            "/entry/0/changes/0/value/messages/0/from",
            "/entry/0/changes/0/value/messages/0/id",
            "/entry/0/changes/0/value/messages/0/type",
            "/entry/0/changes/0/value/messages/0/text",
            "/entry/0/changes/0/value/messages/0/text/body",
        ],
    ));
    let mut other = valid.clone();
    other["entry"][0]["changes"][0]["field"] = json!("account_update");
    cases.push(("unknown subscription field".into(), other.to_string().into_bytes()));
    let mut other = valid.clone();
    other["entry"][0]["changes"][0]["value"]["messages"][0]["from"] = json!("");
    cases.push(("empty sender".into(), other.to_string().into_bytes()));
    let mut other = valid.clone();
    other["entry"][0]["changes"][0]["value"]["messages"][0]["from"] = json!("1".repeat(5000));
    cases.push(("absurd sender".into(), other.to_string().into_bytes()));
    let mut other = valid.clone();
    other["entry"][0]["changes"][0]["value"]["statuses"] = json!([{"id": "wamid.none", "status": "teleported"}]);
    other["entry"][0]["changes"][0]["value"]["messages"] = json!([]);
    cases.push(("unknown status of an unknown message".into(), other.to_string().into_bytes()));

    let send = |body: Vec<u8>| {
        let app = &app;
        async move {
            let sig = sign(SECRET, &body);
            let headers = [("Content-Type", "application/json"), ("X-Hub-Signature-256", sig.as_str())];
            app.raw(Method::POST, "/webhooks/whatsapp", &headers, &body).await
        }
    };
    run(&app, "whatsapp", cases, send).await;
    assert_eq!(stored(&send(valid.to_string().into_bytes()).await), 1, "the valid payload is stored");
}

#[actix_rt::test]
async fn messenger_catalogue() {
    const SECRET: &str = "meta-secret";
    let (app, _) = service(
        Channel::Messenger,
        json!({"page_id": "PAGE1", "app_secret": SECRET, "verify_token": "vt", "access_token": "T",
               "api_base_url": "http://127.0.0.1:9"}),
        Some("PAGE1"),
    )
    .await;
    let valid = json!({"object": "page", "entry": [{"id": "PAGE1", "time": 1764000000000i64, "messaging": [
        {"sender": {"id": "PSID-1"}, "recipient": {"id": "PAGE1"}, "timestamp": 1764000000000i64,
         "message": {"mid": "m_CAT1", "text": "Oi"}}]}]});
    let mut cases = generic_bodies();
    cases.extend(mutations(
        &valid,
        &[
            "/object",
            "/entry",
            "/entry/0",
            "/entry/0/id",
            "/entry/0/messaging",
            "/entry/0/messaging/0",
            "/entry/0/messaging/0/sender",
            "/entry/0/messaging/0/sender/id",
            "/entry/0/messaging/0/message",
            "/entry/0/messaging/0/message/mid",
        ],
    ));
    let mut other = valid.clone();
    other["entry"][0]["messaging"][0] = json!({"sender": {"id": "PSID-1"}, "recipient": {"id": "PAGE1"},
        "timestamp": 1764000000000i64, "reaction": {"mid": "m_x", "action": "react", "emoji": "👍"}});
    cases.push(("a reaction: valid, not handled".into(), other.to_string().into_bytes()));
    let mut other = valid.clone();
    other["entry"][0]["messaging"][0]["message"]["is_echo"] = json!(true);
    cases.push(("an echo of our own message".into(), other.to_string().into_bytes()));

    let send = |body: Vec<u8>| {
        let app = &app;
        async move {
            let sig = sign(SECRET, &body);
            let headers = [("Content-Type", "application/json"), ("X-Hub-Signature-256", sig.as_str())];
            app.raw(Method::POST, "/webhooks/messenger", &headers, &body).await
        }
    };
    run(&app, "messenger", cases, send).await;
    assert_eq!(stored(&send(valid.to_string().into_bytes()).await), 1, "the valid payload is stored");
}

#[actix_rt::test]
async fn telegram_catalogue() {
    const SECRET: &str = "tg-secret";
    let (app, service) = service(
        Channel::Telegram,
        json!({"bot_token": "1:A", "secret_token": SECRET, "api_base_url": "http://127.0.0.1:9"}),
        None,
    )
    .await;
    let valid = json!({"update_id": 9001, "message": {"message_id": 5,
        "from": {"id": 777, "is_bot": false, "first_name": "João"},
        "chat": {"id": 777, "first_name": "João", "type": "private"}, "date": 1764000000, "text": "Oi"}});
    let mut cases = generic_bodies();
    cases.extend(mutations(
        &valid,
        &["/update_id", "/message", "/message/message_id", "/message/chat", "/message/chat/id", "/message/text"],
    ));
    cases.push(("an update of another kind".into(), br#"{"update_id": 9002, "poll": {"id": "1"}}"#.to_vec()));
    cases.push((
        "a service message without content".into(),
        json!({"update_id": 9003, "message": {"message_id": 6, "chat": {"id": 777, "type": "private"},
                "date": 1764000000, "new_chat_title": "Suporte"}})
        .to_string()
        .into_bytes(),
    ));
    let path = format!("/webhooks/telegram/{service}");
    let send = |body: Vec<u8>| {
        let (app, path) = (&app, path.clone());
        async move {
            let headers = [("Content-Type", "application/json"), ("X-Telegram-Bot-Api-Secret-Token", SECRET)];
            app.raw(Method::POST, &path, &headers, &body).await
        }
    };
    run(&app, "telegram", cases, send).await;
    let res = send(valid.to_string().into_bytes()).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let messages: i64 = {
        use diesel::prelude::*;
        schema::schema::messages::table.count().get_result(&mut app.conn()).unwrap()
    };
    assert_eq!(messages, 1, "the valid update is stored");
}

#[actix_rt::test]
async fn twilio_sms_catalogue() {
    use web::channels::sms::signature;
    const TOKEN: &str = "twilio-token";
    const HOOK: &str = "https://omniroute.example.com/webhooks/twilio/sms";
    let (app, _) = service(
        Channel::Sms,
        json!({"account_sid": "AC1", "auth_token": TOKEN, "phone_number": "+5511900000000", "webhook_url": HOOK,
               "api_base_url": "http://127.0.0.1:9"}),
        Some("+5511900000000"),
    )
    .await;
    let valid: Vec<(&str, &str)> = vec![
        ("MessageSid", "SMCAT1"),
        ("AccountSid", "AC1"),
        ("From", "+5511987654321"),
        ("To", "+5511900000000"),
        ("Body", "Oi por SMS"),
        ("NumMedia", "0"),
    ];
    let encode = |pairs: &[(&str, &str)]| serde_urlencoded::to_string(pairs).unwrap().into_bytes();
    let mut cases: Vec<(String, Vec<u8>)> = generic_bodies();
    for (i, (key, _)) in valid.iter().enumerate() {
        let mut without = valid.clone();
        without.remove(i);
        if matches!(*key, "MessageSid" | "From" | "To" | "Body") {
            cases.push((format!("{key} missing"), encode(&without)));
        }
        for bad in ["", "\u{0}", "%%%", &"9".repeat(4000)] {
            if matches!(*key, "MessageSid" | "From" | "To") {
                let mut changed = valid.clone();
                changed[i].1 = bad;
                cases.push((format!("{key} = {bad:.10?}"), encode(&changed)));
            }
        }
    }
    let mut to_other = valid.clone();
    to_other[3].1 = "+15550000000";
    cases.push(("To a number we do not serve".into(), encode(&to_other)));
    cases.push(("bad percent-encoding".into(), b"From=%ZZ&To=%2B5511900000000&MessageSid=S".to_vec()));
    let mut twice = valid.clone();
    twice.push(("To", "+15550000000"));
    twice.swap(3, 6);
    cases.push(("To twice, the first not ours".into(), encode(&twice)));
    let mut not_phone = valid.clone();
    not_phone[2].1 = "customer@example.com";
    cases.push(("From an email address".into(), encode(&not_phone)));
    cases.push(("JSON instead of a form".into(), br#"{"From": "+5511987654321"}"#.to_vec()));
    cases.push((
        "a status callback for an unknown message".into(),
        encode(&[("MessageSid", "SMnone"), ("MessageStatus", "delivered"), ("To", "+5511900000000")]),
    ));
    let send = |body: Vec<u8>| {
        let app = &app;
        async move {
            // Twilio signs the URL and the POST parameters it sent; a body that is not a form
            // is signed over no parameters.
            let params: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
            let sig = signature(TOKEN, HOOK, &params);
            let headers = [("Content-Type", "application/x-www-form-urlencoded"), ("X-Twilio-Signature", sig.as_str())];
            app.raw(Method::POST, "/webhooks/twilio/sms", &headers, &body).await
        }
    };
    run(&app, "twilio sms", cases, send).await;
    assert_eq!(send(encode(&valid)).await.status, 200, "the valid SMS is stored");
    let messages: i64 = {
        use diesel::prelude::*;
        schema::schema::messages::table.count().get_result(&mut app.conn()).unwrap()
    };
    assert_eq!(messages, 1);
}

#[actix_rt::test]
async fn cti_catalogue() {
    let (app, _) = service(Channel::Voice, json!({"cti_token": "cti-secret"}), None).await;
    let ana = app.agent_id("ana");
    app.engine.set_presence(ana, engine::PresenceRequest::Available).await.unwrap();
    let valid =
        json!({"event": "call_offered", "call_id": "1700000000.1", "extension": "2001", "caller": "+5511912345678"});
    let mut cases = generic_bodies();
    cases.extend(mutations(&valid, &["/event", "/call_id", "/extension"]));
    for event in ["call_answered", "call_ended"] {
        cases.push((
            format!("{event} of an unknown call"),
            json!({"event": event, "call_id": "nope"}).to_string().into_bytes(),
        ));
    }
    cases.push(("unknown event".into(), json!({"event": "ringing", "call_id": "1"}).to_string().into_bytes()));
    cases.push((
        "unknown extension".into(),
        json!({"event": "call_offered", "call_id": "2", "extension": "9999"}).to_string().into_bytes(),
    ));
    let send = |body: Vec<u8>| {
        let app = &app;
        async move {
            let headers = [("Content-Type", "application/json"), ("Authorization", "Bearer cti-secret")];
            app.raw(Method::POST, "/api/v1/cti/events", &headers, &body).await
        }
    };
    run(&app, "cti", cases, send).await;
    assert_eq!(send(valid.to_string().into_bytes()).await.status, 201, "the valid call is taken");
}
