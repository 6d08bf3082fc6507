//! The WhatsApp Cloud API webhook with payloads in Meta's documented shape: the handshake,
//! signatures (valid, missing, wrong, over another body), every message kind, batches, statuses
//! out of order, replays (sequential and concurrent) and malformed requests.

use awc::http::Method;
use chrono::Utc;
use schema::models::{Message, Service};
use schema::{AgentId, Channel, ConversationState, MessageDirection, MessageKind, MessageStatus, store};
use serde_json::{Value, json};
use web::channels::whatsapp::sign;

use crate::api_support::TestApp;

const PHONE_ID: &str = "106540352242922";
const SECRET: &str = "meta-app-secret";

async fn app() -> (TestApp, schema::ServiceId, AgentId) {
    TestApp::start(|conn| {
        let now = Utc::now();
        let mut s = Service::with_defaults("WhatsApp", Channel::Whatsapp, now);
        s.provider = json!({"phone_number_id": PHONE_ID, "app_secret": SECRET, "verify_token": "tok-123",
                            "access_token": "x", "api_base_url": "http://127.0.0.1:9"});
        s.provider_key = Some(PHONE_ID.into());
        let s = s.insert(conn).unwrap();
        let a_id = crate::api_support::agent_in(conn, "ana", &[s.id], None);
        (s.id, a_id)
    })
    .await
    .pipe(|(app, (s, a))| (app, s, a))
}

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl<T> Pipe for T {}

fn envelope(values: Vec<Value>) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": values.into_iter().map(|v| json!({"field": "messages", "value": v})).collect::<Vec<_>>()}]})
}

fn value(messages: Vec<Value>, statuses: Vec<Value>) -> Value {
    json!({"messaging_product": "whatsapp",
           "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_ID},
           "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
           "messages": messages, "statuses": statuses})
}

fn text(id: &str, from: &str, body: &str) -> Value {
    json!({"from": from, "id": id, "timestamp": "1749416383", "type": "text", "text": {"body": body}})
}

async fn post(app: &TestApp, body: &[u8], signature: Option<String>) -> crate::api_support::Res {
    let mut headers: Vec<(&str, String)> = vec![("Content-Type", "application/json".into())];
    if let Some(s) = signature {
        headers.push(("X-Hub-Signature-256", s));
    }
    let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    app.raw(Method::POST, "/webhooks/whatsapp", &refs, body).await
}

async fn signed(app: &TestApp, payload: &Value) -> crate::api_support::Res {
    let body = payload.to_string().into_bytes();
    post(app, &body, Some(sign(SECRET, &body))).await
}

fn messages(app: &TestApp) -> Vec<Message> {
    use diesel::prelude::*;
    schema::schema::messages::table.select(Message::as_select()).load(&mut app.conn()).unwrap()
}

#[actix_rt::test]
async fn the_verification_handshake_echoes_the_challenge_for_our_token_only() {
    let (app, _, _) = app().await;
    let ok =
        app.get("/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=tok-123&hub.challenge=1158201444", None).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.text, "1158201444");
    app.get("/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1", None)
        .await
        .err(403, "forbidden");
    app.get("/webhooks/whatsapp?hub.verify_token=tok-123&hub.challenge=1", None).await.err(403, "forbidden");
}

#[actix_rt::test]
async fn a_signed_message_opens_a_conversation_that_goes_to_the_free_agent() {
    let (app, service, ana) = app().await;
    app.engine.set_presence(ana, engine::PresenceRequest::Available).await.unwrap();
    let res = signed(
        &app,
        &envelope(vec![value(vec![text("wamid.A1", "16505551234", "Does it come in another color?")], vec![])]),
    )
    .await;
    assert_eq!(res.ok(200)["stored"], 1);
    let stored = messages(&app);
    assert_eq!(stored.len(), 1);
    let m = &stored[0];
    assert_eq!((m.direction, m.kind, m.status), (MessageDirection::In, MessageKind::Text, MessageStatus::Received));
    assert_eq!(m.body.as_deref(), Some("Does it come in another color?"));
    assert_eq!(m.provider_message_id.as_deref(), Some("wamid.A1"));
    let c = app.conversation(m.conversation_id);
    assert_eq!((c.service_id, c.customer_address.as_str()), (service, "16505551234"));
    assert_eq!(c.customer_name.as_deref(), Some("Sheena Nelson"));
    assert_eq!((c.state, c.current_agent_id), (ConversationState::InService, Some(ana)));
    // The next message joins the same conversation.
    signed(&app, &envelope(vec![value(vec![text("wamid.A2", "16505551234", "Blue?")], vec![])])).await.ok(200);
    let stored = messages(&app);
    assert_eq!(stored.len(), 2);
    assert!(stored.iter().all(|m| m.conversation_id == c.id));
}

#[actix_rt::test]
async fn unsigned_wrongly_signed_and_mismatched_bodies_are_refused_and_store_nothing() {
    let (app, _, _) = app().await;
    let payload = envelope(vec![value(vec![text("wamid.S1", "16505551234", "hi")], vec![])]);
    let body = payload.to_string().into_bytes();
    let before = app.snapshot();
    post(&app, &body, None).await.err(401, "missing_signature");
    post(&app, &body, Some(sign("another-secret", &body))).await.err(401, "invalid_signature");
    let other = envelope(vec![value(vec![text("wamid.S2", "16505551234", "other")], vec![])]).to_string();
    post(&app, &body, Some(sign(SECRET, other.as_bytes()))).await.err(401, "invalid_signature");
    post(&app, &body, Some("sha256=zz".into())).await.err(401, "invalid_signature");
    post(&app, &body, Some("md5=abc".into())).await.err(401, "invalid_signature");
    app.unchanged(&before, "refused webhooks");
}

#[actix_rt::test]
async fn replays_store_one_message_and_one_conversation() {
    let (app, _, _) = app().await;
    let payload = envelope(vec![value(vec![text("wamid.R1", "5511988887777", "Olá")], vec![])]);
    for _ in 0..5 {
        signed(&app, &payload).await.ok(200);
    }
    assert_eq!(messages(&app).len(), 1, "sequential replays");
    // 50 concurrent deliveries of one new message, and 10 different first messages of one new customer.
    let burst = envelope(vec![value(vec![text("wamid.R2", "5511911112222", "Oi")], vec![])]);
    let futures: Vec<_> = (0..50).map(|_| signed(&app, &burst)).collect();
    for r in futures_util::future::join_all(futures).await {
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let firsts: Vec<_> = (0..10)
        .map(|i| envelope(vec![value(vec![text(&format!("wamid.N{i}"), "5511933334444", "first")], vec![])]))
        .collect();
    let futures: Vec<_> = firsts.iter().map(|p| signed(&app, p)).collect();
    for r in futures_util::future::join_all(futures).await {
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let all = messages(&app);
    assert_eq!(all.iter().filter(|m| m.provider_message_id.as_deref() == Some("wamid.R2")).count(), 1);
    let tenth: Vec<_> =
        all.iter().filter(|m| m.provider_message_id.as_deref().is_some_and(|p| p.starts_with("wamid.N"))).collect();
    assert_eq!(tenth.len(), 10);
    assert!(
        tenth.iter().all(|m| m.conversation_id == tenth[0].conversation_id),
        "ten first messages, one conversation"
    );
    assert_eq!(store::open_conversations(&mut app.conn()).unwrap().len(), 3);
}

#[actix_rt::test]
async fn every_kind_in_a_batch_of_entries_is_stored_with_its_content() {
    let (app, _, _) = app().await;
    let kinds = vec![
        json!({"from": "5511900000001", "id": "wamid.K1", "timestamp": "1749416383", "type": "image",
               "image": {"id": "MEDIA1", "mime_type": "image/jpeg", "sha256": "abc", "caption": "foto"}}),
        json!({"from": "5511900000001", "id": "wamid.K2", "timestamp": "1749416384", "type": "location",
               "location": {"latitude": -23.55, "longitude": -46.63, "name": "Av. Paulista", "address": "São Paulo"}}),
        json!({"from": "5511900000001", "id": "wamid.K3", "timestamp": "1749416385", "type": "contacts",
               "contacts": [{"name": {"formatted_name": "Maria"}, "phones": [{"phone": "+55 11 91234-5678", "type": "CELL"}]}]}),
        json!({"from": "5511900000001", "id": "wamid.K4", "timestamp": "1749416386", "type": "interactive",
               "interactive": {"type": "button_reply", "button_reply": {"id": "yes", "title": "Sim"}}}),
        json!({"from": "5511900000001", "id": "wamid.K5", "timestamp": "1749416387", "type": "audio",
               "audio": {"id": "MEDIA2", "mime_type": "audio/ogg; codecs=opus", "voice": true}}),
    ];
    let second_change = value(
        vec![json!({"from": "5511900000002", "id": "wamid.K6", "timestamp": "1749416388",
        "type": "document", "document": {"id": "MEDIA3", "filename": "boleto.pdf", "mime_type": "application/pdf"}})],
        vec![],
    );
    let mut payload = envelope(vec![value(kinds, vec![])]);
    payload["entry"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "WABA2", "changes": [{"field": "messages", "value": second_change}]}));
    assert_eq!(signed(&app, &payload).await.ok(200)["stored"], 6);
    let all = messages(&app);
    let by = |id: &str| all.iter().find(|m| m.provider_message_id.as_deref() == Some(id)).unwrap().clone();
    assert_eq!((by("wamid.K1").kind, by("wamid.K1").body.as_deref()), (MessageKind::Image, Some("foto")));
    assert_eq!(by("wamid.K2").kind, MessageKind::Location);
    assert_eq!(by("wamid.K2").payload["latitude"], -23.55);
    assert_eq!(by("wamid.K3").payload["contacts"][0]["phones"][0]["phone"], "+55 11 91234-5678");
    assert_eq!((by("wamid.K4").kind, by("wamid.K4").body.as_deref()), (MessageKind::Interactive, Some("Sim")));
    assert_eq!(by("wamid.K5").payload["voice"], true);
    assert_eq!(by("wamid.K6").payload["filename"], "boleto.pdf");
}

#[actix_rt::test]
async fn statuses_move_forward_only_and_a_failure_keeps_the_providers_error() {
    let (app, service, _) = app().await;
    signed(&app, &envelope(vec![value(vec![text("wamid.T0", "5511900000009", "oi")], vec![])])).await.ok(200);
    let conversation = messages(&app)[0].conversation_id;
    let mut conn = app.conn();
    let now = Utc::now();
    let out = |pid: &str| {
        let mut m =
            Message::new(conversation, service, MessageDirection::Out, MessageKind::Text, MessageStatus::Sent, now);
        m.provider_message_id = Some(pid.into());
        m.insert(&mut app.conn()).unwrap().id
    };
    let (a, b) = (out("wamid.OUT1"), out("wamid.OUT2"));
    let status =
        |id: &str, s: &str| json!({"id": id, "status": s, "timestamp": "1749416390", "recipient_id": "5511900000009"});
    // Read arrives before delivered; delivered must not move it back.
    signed(&app, &envelope(vec![value(vec![], vec![status("wamid.OUT1", "read")])])).await.ok(200);
    signed(&app, &envelope(vec![value(vec![], vec![status("wamid.OUT1", "delivered")])])).await.ok(200);
    let mut failed = status("wamid.OUT2", "failed");
    failed["errors"] =
        json!([{"code": 131047, "title": "Re-engagement message", "message": "More than 24 hours have passed"}]);
    signed(&app, &envelope(vec![value(vec![], vec![failed])])).await.ok(200);
    let a = Message::find(&mut conn, a).unwrap();
    let b = Message::find(&mut conn, b).unwrap();
    assert_eq!(a.status, MessageStatus::Read);
    assert_eq!(b.status, MessageStatus::Failed);
    assert_eq!(b.error_code.as_deref(), Some("131047"));
    assert_eq!(b.error_message.as_deref(), Some("More than 24 hours have passed"));
}

#[actix_rt::test]
async fn malformed_requests_get_a_json_4xx_and_store_nothing() {
    let (app, _, _) = app().await;
    let before = app.snapshot();
    let cases: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"not json".to_vec(),
        b"[]".to_vec(),
        b"{}".to_vec(),
        br#"{"object":"page","entry":[]}"#.to_vec(),
        br#"{"object":"whatsapp_business_account","entry":"x"}"#.to_vec(),
        br#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"999"}}}]}]}"#.to_vec(),
        b"\xff\xfe\x00".to_vec(),
        format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes(),
    ];
    for body in cases {
        let res = post(&app, &body, Some(sign(SECRET, &body))).await;
        assert!(
            (400..500).contains(&res.status),
            "{} -> {} {}",
            String::from_utf8_lossy(&body[..body.len().min(40)]),
            res.status,
            res.text
        );
    }
    let huge = vec![b' '; 5 * 1024 * 1024];
    let res = post(&app, &huge, Some(sign(SECRET, &huge))).await;
    assert_eq!(res.status, 413, "{}", res.text);
    app.unchanged(&before, "malformed webhooks");
}

/// Account-level fields name no phone number: signed by the app's secret they are answered 200
/// and store nothing (a 4xx makes Meta retry them); unsigned or wrongly signed ones are refused.
#[actix_rt::test]
async fn account_level_events_are_acknowledged_when_signed() {
    let (app, _, _) = app().await;
    let fields = [
        json!({"field": "account_update", "value": {"phone_number": "15550783881", "event": "VERIFIED_ACCOUNT"}}),
        json!({"field": "message_template_status_update",
               "value": {"event": "APPROVED", "message_template_id": 123, "message_template_name": "boas_vindas",
                         "message_template_language": "pt_BR", "reason": "NONE"}}),
        json!({"field": "message_template_quality_update",
               "value": {"previous_quality_score": "GREEN", "new_quality_score": "YELLOW",
                         "message_template_id": 123, "message_template_name": "boas_vindas",
                         "message_template_language": "pt_BR"}}),
        json!({"field": "template_category_update",
               "value": {"message_template_id": 123, "message_template_name": "boas_vindas",
                         "message_template_language": "pt_BR", "previous_category": "UTILITY",
                         "new_category": "MARKETING"}}),
    ];
    let before = app.snapshot();
    for change in fields {
        let payload = json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "time": 1749416383, "changes": [change]}]});
        let res = signed(&app, &payload).await;
        assert_eq!(res.status, 200, "{payload}: {}", res.text);
        let body = payload.to_string().into_bytes();
        post(&app, &body, Some(sign("another-secret", &body))).await.err(401, "invalid_signature");
        post(&app, &body, None).await.err(401, "missing_signature");
    }
    app.unchanged(&before, "account-level events");
}

/// A customer's text with a NUL is stored without it, answered 200, and the messages after it in
/// the same batch are stored too.
#[actix_rt::test]
async fn a_text_with_a_nul_is_stored_without_it_with_the_rest_of_its_batch() {
    let (app, _, _) = app().await;
    let batch = envelope(vec![value(
        vec![
            text("wamid.nul.1", "16505551234", "before\u{0}after"),
            text("wamid.nul.2", "16505551234", "the next one"),
        ],
        vec![],
    )]);
    let res = signed(&app, &batch).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let mut bodies: Vec<String> = messages(&app).into_iter().filter_map(|m| m.body).collect();
    bodies.sort();
    assert_eq!(bodies, vec!["beforeafter".to_owned(), "the next one".to_owned()]);
}
