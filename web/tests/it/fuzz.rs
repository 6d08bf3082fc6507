//! The webhook parsers fuzzed with proptest (C1, N2): documented payloads (the corpus) mutated at
//! random — subtrees replaced by arbitrary JSON, keys and items deleted, strings made huge or odd —
//! must never panic, and whatever they yield must respect the limits the store relies on.
//! A second property sends mutated payloads, correctly signed, to a running server: never a 5xx.

use chrono::Utc;
use engine::ingest::InboundMessage;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use schema::Channel;
use schema::models::Service;
use serde_json::{Value, json};

/// Documented payloads of each family: the seeds of the mutations.
fn corpus() -> Vec<(&'static str, Value)> {
    vec![
        (
            "whatsapp",
            json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp", "metadata": {"display_phone_number": "1555", "phone_number_id": "1065"},
                "contacts": [{"profile": {"name": "Sheena"}, "wa_id": "16505551234"}],
                "messages": [
                    {"from": "16505551234", "id": "wamid.1", "timestamp": "1749416383", "type": "text", "text": {"body": "Olá"}},
                    {"from": "16505551234", "id": "wamid.2", "timestamp": "1749416383", "type": "image",
                     "image": {"caption": "foto", "mime_type": "image/jpeg", "sha256": "abc", "id": "MEDIA1"}},
                    {"from": "16505551234", "id": "wamid.3", "timestamp": "1749416383", "type": "location",
                     "location": {"latitude": -23.5, "longitude": -46.6, "name": "Sé", "address": "Praça da Sé"}},
                    {"from": "16505551234", "id": "wamid.4", "timestamp": "1749416383", "type": "interactive",
                     "interactive": {"type": "button_reply", "button_reply": {"id": "b1", "title": "Sim"}}},
                    {"from": "16505551234", "id": "wamid.5", "timestamp": "1749416383", "type": "contacts",
                     "contacts": [{"name": {"formatted_name": "Ana"}, "phones": [{"phone": "+5511999990000"}]}]}],
                "statuses": [{"id": "wamid.out", "status": "failed", "timestamp": "1749416390", "recipient_id": "16505551234",
                              "errors": [{"code": 131047, "title": "Re-engagement message"}]}]}}]}]}),
        ),
        (
            "messenger",
            json!({"object": "page", "entry": [{"id": "PAGE1", "time": 1764000000000i64, "messaging": [
                {"sender": {"id": "PSID-1"}, "recipient": {"id": "PAGE1"}, "timestamp": 1764000000000i64,
                 "message": {"mid": "m_1", "text": "Oi", "attachments": [{"type": "image", "payload": {"url": "https://x/y.jpg"}}]}},
                {"sender": {"id": "PAGE1"}, "recipient": {"id": "PSID-1"}, "timestamp": 1764000000001i64,
                 "delivery": {"mids": ["m_out"], "watermark": 1764000000000i64}}]}]}),
        ),
        (
            "telegram",
            json!({"update_id": 1, "message": {"message_id": 5, "from": {"id": 777, "is_bot": false, "first_name": "João"},
                "chat": {"id": 777, "type": "private"}, "date": 1764000000, "caption": "doc",
                "photo": [{"file_id": "small", "width": 90, "height": 90}, {"file_id": "big", "width": 800, "height": 800}],
                "contact": {"phone_number": "+5511999990000", "first_name": "Ana"}}}),
        ),
    ]
}

/// Arbitrary JSON, small and deep enough to reach every branch of a parser.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON numbers are finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        (0usize..200_000).prop_map(|n| Value::from("ç".repeat(n))),
        Just(Value::from("\u{0}")),
        Just(Value::from("whatsapp_business_account")),
        Just(Value::from("messages")),
        Just(Value::from("text")),
        Just(Value::from("1065")),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// One mutation: at the node chosen by `at` (modulo the number of nodes), do `op` with `with`.
type Mutation = (usize, u8, Value);

fn paths(v: &Value, here: String, out: &mut Vec<String>) {
    out.push(here.clone());
    match v {
        Value::Object(o) => o.iter().for_each(|(k, c)| paths(c, format!("{here}/{k}"), out)),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, c)| paths(c, format!("{here}/{i}"), out)),
        _ => {}
    }
}

fn mutate(mut v: Value, mutations: &[Mutation]) -> Value {
    for (at, op, with) in mutations {
        let mut all = Vec::new();
        paths(&v, String::new(), &mut all);
        let path = &all[at % all.len()];
        match op % 3 {
            0 => {
                if let Some(node) = v.pointer_mut(path) {
                    *node = with.clone();
                }
            }
            1 => {
                if let Some((parent, key)) = path.rsplit_once('/') {
                    match v.pointer_mut(parent) {
                        Some(Value::Object(o)) => {
                            o.remove(key);
                        }
                        Some(Value::Array(a)) => {
                            if let Ok(i) = key.parse::<usize>()
                                && i < a.len()
                            {
                                a.remove(i);
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {
                if let Some(Value::Object(o)) = v.pointer_mut(path) {
                    o.insert("extra".into(), with.clone());
                } else if let Some(Value::Array(a)) = v.pointer_mut(path) {
                    a.push(with.clone());
                }
            }
        }
    }
    v
}

fn mutated() -> impl Strategy<Value = (&'static str, Value)> {
    let seeds = corpus();
    (0..seeds.len(), prop::collection::vec((any::<usize>(), any::<u8>(), arb_json()), 1..6))
        .prop_map(move |(i, ms)| (seeds[i].0, mutate(seeds[i].1.clone(), &ms)))
}

fn service(channel: Channel) -> Service {
    let mut s = Service::with_defaults("Fuzz", channel, Utc::now());
    s.provider_key = Some(match channel {
        Channel::Whatsapp => "1065".into(),
        _ => "PAGE1".into(),
    });
    s
}

/// What every parsed message must respect, whatever came in.
fn sane(m: &InboundMessage) {
    assert!(!m.address.is_empty() && m.address.len() <= 64, "address {:?}", m.address);
    assert!(m.provider_message_id.as_ref().is_some_and(|id| !id.is_empty() && id.len() <= 300));
    assert!(m.body.as_ref().is_none_or(|b| b.chars().count() <= 65_536));
    assert!(m.customer_name.as_ref().is_none_or(|n| n.chars().count() <= 200));
}

/// Runs the family's parser over a whole payload, as its webhook does.
fn parse(family: &str, payload: &Value) -> Vec<InboundMessage> {
    let mut out = Vec::new();
    match family {
        "whatsapp" => {
            let s = service(Channel::Whatsapp);
            let changes = payload.get("entry").and_then(Value::as_array).into_iter().flatten();
            for change in changes.flat_map(|e| e.get("changes").and_then(Value::as_array).into_iter().flatten()) {
                let value = &change["value"];
                for m in value.get("messages").and_then(Value::as_array).into_iter().flatten() {
                    out.extend(web::channels::whatsapp::parse_message(&s, value, m));
                }
            }
        }
        "messenger" => {
            let s = service(Channel::Messenger);
            let entries = payload.get("entry").and_then(Value::as_array).into_iter().flatten();
            for event in entries.flat_map(|e| e.get("messaging").and_then(Value::as_array).into_iter().flatten()) {
                out.extend(web::channels::meta::parse_event(&s, Channel::Messenger, event));
            }
        }
        _ => {
            let s = service(Channel::Telegram);
            if let Some(m) = payload.get("message") {
                out.extend(web::channels::telegram::parse_message(&s, m));
            }
        }
    }
    out
}

#[test]
fn the_corpus_parses_as_documented() {
    let counts: Vec<(&str, usize)> = corpus().iter().map(|(f, p)| (*f, parse(f, p).len())).collect();
    assert_eq!(counts, vec![("whatsapp", 5), ("messenger", 1), ("telegram", 1)]);
}

#[test]
fn mutated_payloads_never_panic_the_parsers() {
    let mut runner = TestRunner::new(Config { cases: 2_000, failure_persistence: None, ..Config::default() });
    runner
        .run(&mutated(), |(family, payload)| {
            for m in parse(family, &payload) {
                sane(&m);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn arbitrary_bytes_never_panic_the_parsers() {
    let mut runner = TestRunner::new(Config { cases: 2_000, failure_persistence: None, ..Config::default() });
    runner
        .run(&prop::collection::vec(any::<u8>(), 0..512), |bytes| {
            if let Ok(payload) = serde_json::from_slice::<Value>(&bytes) {
                for family in ["whatsapp", "messenger", "telegram"] {
                    parse(family, &payload).iter().for_each(sane);
                }
            }
            Ok(())
        })
        .unwrap();
}

#[actix_rt::test]
async fn mutated_signed_webhooks_never_get_a_5xx_from_the_server() {
    use awc::http::Method;
    const SECRET: &str = "fuzz-secret";
    let (app, telegram) = crate::api_support::TestApp::start(|conn| {
        let now = Utc::now();
        let mut wa = Service::with_defaults("WA", Channel::Whatsapp, now);
        wa.provider = json!({"phone_number_id": "1065", "app_secret": SECRET, "verify_token": "t", "access_token": "x",
                             "api_base_url": "http://127.0.0.1:9"});
        wa.provider_key = Some("1065".into());
        let wa = wa.insert(conn).unwrap();
        let mut fb = Service::with_defaults("FB", Channel::Messenger, now);
        fb.provider = json!({"page_id": "PAGE1", "app_secret": SECRET, "verify_token": "vt", "access_token": "T",
                             "api_base_url": "http://127.0.0.1:9"});
        fb.provider_key = Some("PAGE1".into());
        let fb = fb.insert(conn).unwrap();
        let mut tg = Service::with_defaults("TG", Channel::Telegram, now);
        tg.provider = json!({"bot_token": "1:A", "secret_token": SECRET, "api_base_url": "http://127.0.0.1:9"});
        let tg = tg.insert(conn).unwrap();
        crate::api_support::agent_in(conn, "ana", &[wa.id, fb.id, tg.id], None);
        tg.id
    })
    .await;
    // Cases drawn up front (the runner is synchronous), then sent one by one.
    let mut runner = TestRunner::new(Config { cases: 150, failure_persistence: None, ..Config::default() });
    let mut cases = Vec::new();
    for _ in 0..150 {
        cases.push(mutated().new_tree(&mut runner).expect("a case").current());
    }
    let tg_path = format!("/webhooks/telegram/{telegram}");
    for (family, payload) in cases {
        let body = payload.to_string().into_bytes();
        let sig = web::channels::whatsapp::sign(SECRET, &body);
        let res = match family {
            "whatsapp" | "messenger" => {
                let path = if family == "whatsapp" { "/webhooks/whatsapp" } else { "/webhooks/messenger" };
                let headers = [("Content-Type", "application/json"), ("X-Hub-Signature-256", sig.as_str())];
                app.raw(Method::POST, path, &headers, &body).await
            }
            _ => {
                let headers = [("Content-Type", "application/json"), ("X-Telegram-Bot-Api-Secret-Token", SECRET)];
                app.raw(Method::POST, &tg_path, &headers, &body).await
            }
        };
        assert!(res.status < 500, "{family}: {} for {}", res.status, payload);
    }
    // Still serving.
    assert_eq!(app.get("/healthz", None).await.status, 200);
}
