//! Media, templates and reply windows of the messaging channels, against one local fake of the
//! providers' APIs (Graph API for WhatsApp, Messenger and Instagram; the Bot API; Twilio) that
//! records every request exactly (method, path, headers, body, multipart parts) and answers what
//! each test queues.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web as aw};
use awc::http::Method;
use chrono::Utc;
use diesel::RunQueryDsl;
use schema::models::{Message, Service, WhatsappContact, WhatsappTemplate};
use schema::{
    Channel, ConversationId, Direction, MessageKind, MessageStatus, ServiceId, TemplateCategory, TemplateStatus,
    WhatsappContactId, WhatsappTemplateId, store,
};
use serde_json::{Value, json};

use crate::api_support::TestApp;

const PHONE_ID: &str = "106540352242922";
const WA_SECRET: &str = "wa-secret";
const TG_SECRET: &str = "tg-secret";
const TWILIO_TOKEN: &str = "twilio-token";
const TWILIO_HOOK: &str = "https://omniroute.example.com/webhooks/twilio/sms";
const SMS_NUMBER: &str = "+5511900000000";

/// A multipart part as sent: name, filename, content type, bytes.
type FormPart = (String, Option<String>, Option<String>, Vec<u8>);
/// A queued answer: status, content type, body.
type Answer = (u16, String, Vec<u8>);

/// One request the fake received.
#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    query: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Recorded {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    /// The multipart parts: (name, filename, content type, bytes).
    fn parts(&self) -> Vec<FormPart> {
        parse_multipart(self.header("content-type"), &self.body)
    }
}

/// A fake provider: answers queued per "METHOD /path" (the last one repeats), 404 otherwise.
#[derive(Clone, Default)]
struct Fake {
    requests: Arc<Mutex<Vec<Recorded>>>,
    answers: Arc<Mutex<HashMap<String, VecDeque<Answer>>>>,
}

impl Fake {
    fn answer(&self, route: &str, status: u16, content_type: &str, body: impl Into<Vec<u8>>) {
        self.answers.lock().unwrap().entry(route.to_owned()).or_default().push_back((
            status,
            content_type.to_owned(),
            body.into(),
        ));
    }

    fn json(&self, route: &str, status: u16, body: Value) {
        self.answer(route, status, "application/json", body.to_string());
    }

    /// The requests to "METHOD /path".
    fn to(&self, route: &str) -> Vec<Recorded> {
        self.requests.lock().unwrap().iter().filter(|r| format!("{} {}", r.method, r.path) == route).cloned().collect()
    }

    fn all(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

async fn start_fake(fake: Fake) -> String {
    let f = fake.clone();
    let server = HttpServer::new(move || {
        let f = f.clone();
        App::new().default_service(aw::to(move |req: HttpRequest, body: aw::Bytes| {
            let f = f.clone();
            async move {
                let headers = req
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                    .collect();
                let route = format!("{} {}", req.method(), req.path());
                f.requests.lock().unwrap().push(Recorded {
                    method: req.method().to_string(),
                    path: req.path().to_owned(),
                    query: req.query_string().to_owned(),
                    headers,
                    body: body.to_vec(),
                });
                let answer = {
                    let mut answers = f.answers.lock().unwrap();
                    match answers.get_mut(&route) {
                        Some(q) if q.len() > 1 => q.pop_front(),
                        Some(q) => q.front().cloned(),
                        None => None,
                    }
                };
                match answer {
                    Some((status, ct, body)) => {
                        HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                            .content_type(ct)
                            .body(body)
                    }
                    None => HttpResponse::NotFound().json(json!({"error": {"message": "no such route", "code": 100}})),
                }
            }
        }))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let base = format!("http://127.0.0.1:{}", server.addrs()[0].port());
    actix_rt::spawn(server.run());
    base
}

fn parse_multipart(content_type: &str, body: &[u8]) -> Vec<FormPart> {
    let boundary = content_type.split("boundary=").nth(1).expect("a multipart boundary").trim_matches('"');
    let delimiter = format!("--{boundary}").into_bytes();
    let mut starts = Vec::new();
    let mut i = 0;
    while i + delimiter.len() <= body.len() {
        if body[i..].starts_with(&delimiter) {
            starts.push(i);
            i += delimiter.len();
        } else {
            i += 1;
        }
    }
    let mut parts = Vec::new();
    for w in starts.windows(2) {
        let segment = &body[w[0] + delimiter.len()..w[1]];
        let segment = segment.strip_prefix(b"\r\n").unwrap_or(segment);
        let segment = segment.strip_suffix(b"\r\n").unwrap_or(segment);
        let split = segment.windows(4).position(|x| x == b"\r\n\r\n").expect("part headers");
        let head = String::from_utf8_lossy(&segment[..split]).into_owned();
        let data = segment[split + 4..].to_vec();
        let mut name = String::new();
        let (mut filename, mut ct) = (None, None);
        for line in head.split("\r\n") {
            let lower = line.to_ascii_lowercase();
            if lower.starts_with("content-disposition:") {
                for attr in line.split(';').skip(1) {
                    let (k, v) = attr.trim().split_once('=').unwrap();
                    let v = v.trim_matches('"').to_owned();
                    match k {
                        "name" => name = v,
                        "filename" => filename = Some(v),
                        _ => {}
                    }
                }
            } else if lower.starts_with("content-type:") {
                ct = Some(line["content-type:".len()..].trim().to_owned());
            }
        }
        parts.push((name, filename, ct, data));
    }
    parts
}

struct Setup {
    app: TestApp,
    fake: Fake,
    base: String,
    token: String,
    whatsapp: ServiceId,
    messenger: ServiceId,
    telegram: ServiceId,
    sms: ServiceId,
}

/// One service per channel, all pointing at the fake; ana is available in all of them. The
/// sender and the media fetcher run unless `workers` is false (see [`Setup::workers`]).
async fn setup(workers: bool) -> Setup {
    let fake = Fake::default();
    let base = start_fake(fake.clone()).await;
    let api = base.clone();
    let (app, (whatsapp, messenger, telegram, sms)) = TestApp::start(move |conn| {
        let now = Utc::now();
        let mut service = |name: &str, channel: Channel, provider: Value, key: Option<&str>| {
            let mut s = Service::with_defaults(name, channel, now);
            s.provider = provider;
            s.provider_key = key.map(str::to_owned);
            s.insert(conn).unwrap().id
        };
        let whatsapp = service(
            "WhatsApp",
            Channel::Whatsapp,
            json!({"phone_number_id": PHONE_ID, "app_secret": WA_SECRET, "verify_token": "v",
                   "access_token": "EAAG-token", "api_base_url": api}),
            Some(PHONE_ID),
        );
        let messenger = service(
            "Messenger",
            Channel::Messenger,
            json!({"page_id": "PAGE1", "app_secret": WA_SECRET, "verify_token": "v",
                   "access_token": "PAGE-TOKEN", "api_base_url": api}),
            Some("PAGE1"),
        );
        let telegram = service(
            "Telegram",
            Channel::Telegram,
            json!({"bot_token": "123456:ABC", "secret_token": TG_SECRET, "api_base_url": api}),
            None,
        );
        let sms = service(
            "SMS",
            Channel::Sms,
            json!({"account_sid": "AC123", "auth_token": TWILIO_TOKEN, "phone_number": SMS_NUMBER,
                   "webhook_url": TWILIO_HOOK, "api_base_url": api}),
            Some(SMS_NUMBER),
        );
        crate::api_support::agent_in(conn, "ana", &[whatsapp, messenger, telegram, sms], None);
        (whatsapp, messenger, telegram, sms)
    })
    .await;
    let token = app.login("ana").await;
    app.put("/api/v1/me/presence", Some(&token), &json!({"status": "available"})).await.ok(200);
    let s = Setup { app, fake, base, token, whatsapp, messenger, telegram, sms };
    if workers {
        s.workers();
    }
    s
}

impl Setup {
    /// Starts the outbound sender and the media fetcher, as `omniroute serve` runs them.
    fn workers(&self) {
        self.app.start_sender();
        web::channels::media::spawn(self.app.state.clone());
    }

    /// A conversation of `address` in `service`, assigned to ana (the only agent, available).
    async fn conversation(&self, service: ServiceId, channel: Channel, address: &str) -> ConversationId {
        let id = self.app.open(service, channel, address, "Customer").await;
        for _ in 0..100 {
            if self.app.conversation(id).current_agent_id.is_some() {
                return id;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the conversation never reached ana");
    }

    /// Moves the customer's last message `hours` into the past.
    fn customer_wrote_hours_ago(&self, conversation: ConversationId, hours: i64) {
        diesel::sql_query(format!(
            "UPDATE conversations SET last_customer_message_at = now() - interval '{hours} hours' WHERE id = '{conversation}'"
        ))
        .execute(&mut self.app.conn())
        .unwrap();
    }

    async fn send(&self, conversation: ConversationId, body: &Value) -> crate::api_support::Res {
        self.app.post(&format!("/api/v1/conversations/{conversation}/messages"), Some(&self.token), body).await
    }

    /// Uploads a file through the API and returns its id.
    async fn upload(&self, name: &str, content_type: &str, data: &[u8]) -> String {
        let (ct, body) =
            web::channels::send::multipart(&[web::channels::send::Part::file("file", name, content_type, data)]);
        let auth = format!("Bearer {}", self.token);
        let res = self
            .app
            .raw(Method::POST, "/api/v1/attachments", &[("Content-Type", &ct), ("Authorization", &auth)], &body)
            .await;
        res.ok(201);
        res.str("id")
    }

    fn template(&self, name: &str, body: &str, status: TemplateStatus) -> WhatsappTemplateId {
        WhatsappTemplate {
            id: WhatsappTemplateId::new(),
            service_id: self.whatsapp,
            name: name.into(),
            language: "pt_BR".into(),
            category: TemplateCategory::Utility,
            body: body.into(),
            components: json!([]),
            status,
            created_at: Utc::now(),
        }
        .insert(&mut self.app.conn())
        .unwrap()
        .id
    }

    /// A GET through the API with ana's token: the status, content type and bytes.
    async fn download(&self, path: &str) -> (u16, String, Vec<u8>) {
        let res = self.app.get(path, Some(&self.token)).await;
        let ct = res.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        (res.status, ct, res.text.into_bytes())
    }
}

async fn until_status(app: &TestApp, id: &str, want: MessageStatus) -> Message {
    let id: schema::MessageId = id.parse().unwrap();
    for _ in 0..150 {
        let m = Message::find(&mut app.conn(), id).unwrap();
        if m.status == want {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("message never became {want}: {:?}", Message::find(&mut app.conn(), id).unwrap());
}

/// Waits until the message's file fetch ended, and returns its status.
async fn until_fetched(app: &TestApp, message: schema::MessageId) -> schema::models::MediaFetch {
    for _ in 0..150 {
        let fetches = store::media_fetches_of(&mut app.conn(), message).unwrap();
        if let Some(f) = fetches.first().filter(|f| f.status != "pending") {
            return f.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the file of {message} was never fetched: {:?}", store::media_fetches_of(&mut app.conn(), message));
}

fn message_by_provider_id(app: &TestApp, service: ServiceId, id: &str) -> Message {
    store::message_by_provider_id(&mut app.conn(), service, id).unwrap().expect("the message is stored")
}

// ----- WhatsApp: templates and the 24-hour window (C7) -----

#[actix_rt::test]
async fn outside_the_24_hour_window_whatsapp_takes_only_an_approved_template() {
    let s = setup(true).await;
    s.template("order_update", "Olá {{1}}, seu pedido {{2}} saiu para entrega.", TemplateStatus::Approved);
    s.template("promo", "Promoção!", TemplateStatus::Pending);
    let c = s.conversation(s.whatsapp, Channel::Whatsapp, "5511987650000").await;
    s.customer_wrote_hours_ago(c, 25);

    let before = s.app.snapshot();
    let refused = s.send(c, &json!({"text": "Ainda está aí?"})).await;
    refused.err(422, "outside_window");
    assert_eq!(refused.body["message"], "outside the 24-hour window: only a template can be sent");
    s.send(c, &json!({"template": {"name": "order_update", "parameters": ["Ana"]}}))
        .await
        .err(400, "invalid_template_parameters");
    s.send(c, &json!({"template": {"name": "promo"}})).await.err(422, "template_not_approved");
    s.send(c, &json!({"template": {"name": "nope"}})).await.err(422, "unknown_template");
    s.send(c, &json!({"text": "x", "template": {"name": "order_update", "parameters": ["a", "b"]}}))
        .await
        .err(400, "invalid_template");
    s.app.unchanged(&before, "messages the window does not allow");
    assert!(s.fake.all().is_empty(), "nothing went to WhatsApp");

    let sent = s
        .send(c, &json!({"template": {"name": "order_update", "language": "pt_BR", "parameters": ["Ana", "#123"]}}))
        .await;
    let body = sent.ok(201);
    assert_eq!((body["kind"].as_str(), body["status"].as_str()), (Some("template"), Some("pending")));
    assert_eq!(body["body"], "Olá Ana, seu pedido #123 saiu para entrega.", "the desk shows the filled-in text");
    s.fake.json(
        &format!("POST /v21.0/{PHONE_ID}/messages"),
        200,
        json!({"messaging_product": "whatsapp", "messages": [{"id": "wamid.TPL1"}]}),
    );
    let m = until_status(&s.app, body["id"].as_str().unwrap(), MessageStatus::Sent).await;
    assert_eq!(m.provider_message_id.as_deref(), Some("wamid.TPL1"));
    let requests = s.fake.to(&format!("POST /v21.0/{PHONE_ID}/messages"));
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].header("authorization"), "Bearer EAAG-token");
    assert_eq!(
        requests[0].json(),
        json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "5511987650000",
               "type": "template", "template": {"name": "order_update", "language": {"code": "pt_BR"},
               "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ana"},
                                                               {"type": "text", "text": "#123"}]}]}})
    );
}

#[actix_rt::test]
async fn a_text_whose_window_closed_while_the_server_was_down_is_failed_without_reaching_whatsapp() {
    let s = setup(false).await;
    let c = s.conversation(s.whatsapp, Channel::Whatsapp, "5511987650001").await;
    let sent = s.send(c, &json!({"text": "Já volto"})).await;
    let id = sent.ok(201)["id"].as_str().unwrap().to_owned();
    // The server stops before sending it (its sender never ran); by the time one starts again
    // the window has closed. The new process releases the lease and reads the window afresh.
    s.customer_wrote_hours_ago(c, 24);
    store::release_after_restart(&mut s.app.conn(), Utc::now()).unwrap();
    let restarted = web::boot::state(s.app.db.pool(), s.app.engine.clone());
    web::channels::outbound::spawn(restarted.clone(), restarted.outbox.clone());
    let m = until_status(&s.app, &id, MessageStatus::Failed).await;
    assert_eq!(m.error_code.as_deref(), Some("outside_window"));
    assert_eq!(m.error_message.as_deref(), Some("outside the 24-hour window: only a template can be sent"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(s.fake.all().is_empty(), "nothing went to WhatsApp");
}

#[actix_rt::test]
async fn an_outbound_conversation_needs_an_opted_in_contact_and_starts_with_its_template() {
    let s = setup(true).await;
    let tpl = s.template("hello", "Olá {{1}}! Podemos falar sobre seu pedido?", TemplateStatus::Approved);
    let now = Utc::now();
    let contact = |phone: &str, wa_id: &str, opted_in: bool| {
        WhatsappContact {
            id: WhatsappContactId::new(),
            phone: phone.into(),
            wa_id: Some(wa_id.into()),
            name: Some("Maria".into()),
            customer_id: None,
            opted_in,
            opted_in_at: opted_in.then_some(now),
            opt_in_source: None,
            created_at: now,
            updated_at: now,
        }
        .insert(&mut s.app.conn())
        .unwrap()
        .id
    };
    let without = contact("+5511911110000", "5511911110000", false);
    let with = contact("+5511922220000", "5511922220000", true);
    let start = |contact: WhatsappContactId| {
        json!({"service_id": s.whatsapp, "contact_id": contact,
               "template": {"id": tpl, "parameters": ["Maria"]}})
    };

    let before = s.app.snapshot();
    let refused = s.app.post("/api/v1/outbound/whatsapp", Some(&s.token), &start(without)).await;
    refused.err(422, "opt_in_required");
    assert_eq!(refused.body["message"], "the contact must opt in first");
    s.app
        .post(
            "/api/v1/outbound/whatsapp",
            Some(&s.token),
            &json!({"service_id": s.messenger, "contact_id": with,
               "template": {"id": tpl, "parameters": ["Maria"]}}),
        )
        .await
        .err(422, "not_whatsapp");
    s.app.unchanged(&before, "refused outbound starts");

    s.fake.json(
        &format!("POST /v21.0/{PHONE_ID}/messages"),
        200,
        json!({"messaging_product": "whatsapp", "messages": [{"id": "wamid.OUT1"}]}),
    );
    let started = s.app.post("/api/v1/outbound/whatsapp", Some(&s.token), &start(with)).await;
    let body = started.ok(201).clone();
    assert_eq!(body["assigned"], true, "the conversation goes to the agent who started it");
    let c: ConversationId = body["conversation_id"].as_str().unwrap().parse().unwrap();
    let row = s.app.conversation(c);
    assert_eq!((row.direction, row.customer_address.as_str()), (Direction::Outbound, "5511922220000"));
    assert_eq!(row.current_agent_id, Some(s.app.agent_id("ana")));
    assert_eq!(body["message"]["body"], "Olá Maria! Podemos falar sobre seu pedido?");
    until_status(&s.app, body["message"]["id"].as_str().unwrap(), MessageStatus::Sent).await;
    let sent = s.fake.to(&format!("POST /v21.0/{PHONE_ID}/messages"));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].json()["to"], "5511922220000");
    assert_eq!(sent[0].json()["template"]["name"], "hello");

    // The customer has not written: free text is still refused in this conversation.
    s.send(c, &json!({"text": "Oi?"})).await.err(422, "outside_window");
    // A second start with the same contact while it is open lands in the same conversation.
    let again = s.app.post("/api/v1/outbound/whatsapp", Some(&s.token), &start(with)).await;
    assert_eq!(again.ok(201)["conversation_id"], body["conversation_id"]);
}

// ----- WhatsApp media -----

#[actix_rt::test]
async fn an_agents_file_is_uploaded_to_whatsapp_then_sent_by_media_id_with_the_text_as_caption() {
    let s = setup(true).await;
    let c = s.conversation(s.whatsapp, Channel::Whatsapp, "5511987650002").await;
    let png = b"\x89PNG\r\n\x1a\nfake-image-bytes".to_vec();
    let file = s.upload("boleto.png", "image/png", &png).await;
    s.fake.json(&format!("POST /v21.0/{PHONE_ID}/media"), 200, json!({"id": "MEDIA-UP-1"}));
    s.fake.json(
        &format!("POST /v21.0/{PHONE_ID}/messages"),
        200,
        json!({"messaging_product": "whatsapp", "messages": [{"id": "wamid.IMG1"}]}),
    );
    let sent = s.send(c, &json!({"text": "Segue o boleto", "attachment_ids": [file]})).await;
    let m = until_status(&s.app, sent.ok(201)["id"].as_str().unwrap(), MessageStatus::Sent).await;
    assert_eq!(m.provider_message_id.as_deref(), Some("wamid.IMG1"));

    let uploads = s.fake.to(&format!("POST /v21.0/{PHONE_ID}/media"));
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].header("authorization"), "Bearer EAAG-token");
    assert!(uploads[0].header("content-type").starts_with("multipart/form-data; boundary="));
    assert_eq!(
        uploads[0].parts(),
        vec![
            ("messaging_product".into(), None, None, b"whatsapp".to_vec()),
            ("type".into(), None, None, b"image/png".to_vec()),
            ("file".into(), Some("boleto.png".into()), Some("image/png".into()), png),
        ]
    );
    let sends = s.fake.to(&format!("POST /v21.0/{PHONE_ID}/messages"));
    assert_eq!(sends.len(), 1, "the caption carries the text: one message");
    assert_eq!(
        sends[0].json(),
        json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "5511987650002",
               "type": "image", "image": {"id": "MEDIA-UP-1", "caption": "Segue o boleto"}})
    );
}

fn wa_image_webhook(from: &str, wamid: &str, media_id: &str) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages",
        "value": {"messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_ID},
                  "contacts": [{"profile": {"name": "Sheena"}, "wa_id": from}],
                  "messages": [{"from": from, "id": wamid, "timestamp": "1764000000", "type": "image",
                                "image": {"caption": "meu documento", "mime_type": "image/jpeg",
                                          "sha256": "abc", "id": media_id}}]}}]}]})
}

async fn wa_webhook(s: &Setup, payload: &Value) {
    let body = payload.to_string().into_bytes();
    let sig = web::channels::whatsapp::sign(WA_SECRET, &body);
    s.app
        .raw(
            Method::POST,
            "/webhooks/whatsapp",
            &[("Content-Type", "application/json"), ("X-Hub-Signature-256", &sig)],
            &body,
        )
        .await
        .ok(200);
}

#[actix_rt::test]
async fn a_customers_image_is_downloaded_with_the_token_stored_and_served_to_the_desk() {
    let s = setup(true).await;
    let jpeg = b"JPEG-bytes-of-the-customer-photo".to_vec();
    // The first lookup hits a rate limit: retried with backoff.
    s.fake.json("GET /v21.0/MEDIA1", 429, json!({"error": {"code": 130429, "message": "Rate limit hit"}}));
    s.fake.json(
        "GET /v21.0/MEDIA1",
        200,
        json!({"messaging_product": "whatsapp", "url": format!("{}/whatsapp_business/attachments/?mid=MEDIA1", s.base),
               "mime_type": "image/jpeg", "sha256": "abc", "file_size": jpeg.len(), "id": "MEDIA1"}),
    );
    s.fake.answer("GET /whatsapp_business/attachments/", 200, "image/jpeg", jpeg.clone());
    let payload = wa_image_webhook("5511987650003", "wamid.IMG-IN-1", "MEDIA1");
    wa_webhook(&s, &payload).await;
    wa_webhook(&s, &payload).await; // a replay asks for the file once
    let m = message_by_provider_id(&s.app, s.whatsapp, "wamid.IMG-IN-1");
    assert_eq!(m.body.as_deref(), Some("meu documento"));
    let fetch = until_fetched(&s.app, m.id).await;
    assert_eq!(fetch.status, "done");
    assert_eq!(store::media_fetches_of(&mut s.app.conn(), m.id).unwrap().len(), 1);

    let lookups = s.fake.to("GET /v21.0/MEDIA1");
    assert_eq!(lookups.len(), 2, "one rate-limited, one answered");
    assert!(lookups.iter().all(|r| r.header("authorization") == "Bearer EAAG-token"));
    let downloads = s.fake.to("GET /whatsapp_business/attachments/");
    assert_eq!(downloads.len(), 1);
    assert_eq!(
        (downloads[0].query.as_str(), downloads[0].header("authorization")),
        ("mid=MEDIA1", "Bearer EAAG-token")
    );

    // The desk sees the file on the message and downloads the same bytes.
    let conversation = s.app.get(&format!("/api/v1/conversations/{}", m.conversation_id), Some(&s.token)).await;
    let messages = conversation.ok(200)["messages"].as_array().unwrap().clone();
    let shown = messages.iter().find(|x| x["id"] == json!(m.id)).unwrap();
    let file = &shown["attachments"][0];
    assert_eq!((file["content_type"].as_str(), file["size"].as_u64()), (Some("image/jpeg"), Some(jpeg.len() as u64)));
    let (status, ct, bytes) = s.download(&format!("/api/v1/attachments/{}", file["id"].as_str().unwrap())).await;
    assert_eq!((status, ct.as_str()), (200, "image/jpeg"));
    assert_eq!(bytes, jpeg);
}

#[actix_rt::test]
async fn a_customers_file_over_the_channel_limit_is_refused_and_the_message_says_so() {
    let s = setup(true).await;
    s.fake.json(
        "GET /v21.0/MEDIA-BIG",
        200,
        json!({"messaging_product": "whatsapp", "url": format!("{}/big", s.base),
               "mime_type": "image/jpeg", "sha256": "abc", "file_size": 6 * 1024 * 1024, "id": "MEDIA-BIG"}),
    );
    wa_webhook(&s, &wa_image_webhook("5511987650004", "wamid.BIG", "MEDIA-BIG")).await;
    let m = message_by_provider_id(&s.app, s.whatsapp, "wamid.BIG");
    let fetch = until_fetched(&s.app, m.id).await;
    assert_eq!(fetch.status, "refused");
    assert!(s.fake.to("GET /big").is_empty(), "a file announced too large is never downloaded");
    let conversation = s.app.get(&format!("/api/v1/conversations/{}", m.conversation_id), Some(&s.token)).await;
    let shown = conversation.ok(200)["messages"].as_array().unwrap().iter().find(|x| x["id"] == json!(m.id)).cloned();
    let shown = shown.unwrap();
    assert_eq!(shown["attachments"], json!([]));
    let why = shown["payload"]["media_error"].as_str().unwrap();
    assert!(why.contains("larger than the 5 MiB"), "{why}");
}

// ----- Messenger / Instagram windows and files -----

#[actix_rt::test]
async fn messenger_tags_a_late_reply_human_agent_sends_files_as_filedata_and_refuses_after_7_days() {
    let s = setup(true).await;
    let c = s.conversation(s.messenger, Channel::Messenger, "PSID-1").await;
    s.customer_wrote_hours_ago(c, 30);
    s.fake.json("POST /v21.0/PAGE1/messages", 200, json!({"recipient_id": "PSID-1", "message_id": "m_1"}));
    let pdf = b"%PDF-1.4 fake".to_vec();
    let file = s.upload("contrato.pdf", "application/pdf", &pdf).await;
    let sent = s.send(c, &json!({"text": "Segue o contrato", "attachment_ids": [file]})).await;
    until_status(&s.app, sent.ok(201)["id"].as_str().unwrap(), MessageStatus::Sent).await;
    let requests = s.fake.to("POST /v21.0/PAGE1/messages");
    assert_eq!(requests.len(), 2, "the file, then the text");
    assert_eq!(requests[0].header("authorization"), "Bearer PAGE-TOKEN");
    let parts = requests[0].parts();
    let names: Vec<&str> = parts.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(names, ["recipient", "messaging_type", "tag", "message", "filedata"]);
    assert_eq!(serde_json::from_slice::<Value>(&parts[0].3).unwrap(), json!({"id": "PSID-1"}));
    assert_eq!((parts[1].3.as_slice(), parts[2].3.as_slice()), (&b"MESSAGE_TAG"[..], &b"HUMAN_AGENT"[..]));
    assert_eq!(
        serde_json::from_slice::<Value>(&parts[3].3).unwrap(),
        json!({"attachment": {"type": "file", "payload": {"is_reusable": false}}})
    );
    assert_eq!(parts[4], ("filedata".into(), Some("contrato.pdf".into()), Some("application/pdf".into()), pdf));
    assert_eq!(
        requests[1].json(),
        json!({"recipient": {"id": "PSID-1"}, "messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT",
               "message": {"text": "Segue o contrato"}})
    );

    s.customer_wrote_hours_ago(c, 8 * 24);
    let before = s.app.snapshot();
    s.send(c, &json!({"text": "Olá?"})).await.err(422, "outside_window");
    s.app.unchanged(&before, "a reply after 7 days");
}

// ----- Telegram -----

#[actix_rt::test]
async fn telegram_sends_a_photo_as_multipart_and_downloads_a_customers_voice_note() {
    let s = setup(true).await;
    let c = s.conversation(s.telegram, Channel::Telegram, "777").await;
    s.fake.json("POST /bot123456:ABC/sendPhoto", 200, json!({"ok": true, "result": {"message_id": 42}}));
    let jpeg = b"tg-photo-bytes".to_vec();
    let file = s.upload("foto.jpg", "image/jpeg", &jpeg).await;
    let sent = s.send(c, &json!({"text": "Olha isso", "attachment_ids": [file]})).await;
    let m = until_status(&s.app, sent.ok(201)["id"].as_str().unwrap(), MessageStatus::Sent).await;
    assert_eq!(m.provider_message_id.as_deref(), Some("777:42"));
    let photos = s.fake.to("POST /bot123456:ABC/sendPhoto");
    assert_eq!(photos.len(), 1);
    assert_eq!(
        photos[0].parts(),
        vec![
            ("chat_id".into(), None, None, b"777".to_vec()),
            ("caption".into(), None, None, b"Olha isso".to_vec()),
            ("photo".into(), Some("foto.jpg".into()), Some("image/jpeg".into()), jpeg),
        ]
    );
    assert!(s.fake.to("POST /bot123456:ABC/sendMessage").is_empty(), "the text went as the caption");

    // A voice note from the customer: getFile, then the file URL.
    let ogg = b"OggS-voice".to_vec();
    s.fake.json(
        "GET /bot123456:ABC/getFile",
        200,
        json!({"ok": true, "result": {"file_id": "VOICE1", "file_unique_id": "u", "file_size": ogg.len(), "file_path": "voice/file_7.oga"}}),
    );
    s.fake.answer("GET /file/bot123456:ABC/voice/file_7.oga", 200, "application/octet-stream", ogg.clone());
    let update = json!({"update_id": 9001, "message": {"message_id": 50, "from": {"id": 777, "is_bot": false, "first_name": "João"},
        "chat": {"id": 777, "type": "private"}, "date": 1764000000,
        "voice": {"file_id": "VOICE1", "file_unique_id": "u", "duration": 2, "mime_type": "audio/ogg"}}});
    s.app
        .raw(
            Method::POST,
            &format!("/webhooks/telegram/{}", s.telegram),
            &[("Content-Type", "application/json"), ("X-Telegram-Bot-Api-Secret-Token", TG_SECRET)],
            update.to_string().as_bytes(),
        )
        .await
        .ok(200);
    let voice = message_by_provider_id(&s.app, s.telegram, "777:50");
    assert_eq!(voice.kind, MessageKind::Audio);
    assert_eq!(until_fetched(&s.app, voice.id).await.status, "done");
    assert_eq!(s.fake.to("GET /bot123456:ABC/getFile")[0].query, "file_id=VOICE1");
    let files = store::attachments_of(&mut s.app.conn(), voice.id).unwrap();
    assert_eq!((files.len(), files[0].content_type.as_str()), (1, "audio/ogg"));
    let (status, ct, bytes) = s.download(&format!("/api/v1/attachments/{}", files[0].id)).await;
    assert_eq!((status, ct.as_str(), bytes), (200, "audio/ogg", ogg));
}

// ----- SMS -----

#[actix_rt::test]
async fn sms_refuses_files_and_downloads_a_customers_mms_with_basic_auth() {
    let s = setup(true).await;
    let c = s.conversation(s.sms, Channel::Sms, "+5511987654321").await;
    let file = s.upload("foto.png", "image/png", b"png").await;
    let before = s.app.snapshot();
    let refused = s.send(c, &json!({"text": "foto", "attachment_ids": [file]})).await;
    refused.err(422, "media_not_supported");
    s.app.unchanged(&before, "a file on SMS");

    let png = b"mms-png-bytes".to_vec();
    s.fake.answer("GET /2010-04-01/Accounts/AC123/Messages/MM1/Media/ME1", 200, "image/png", png.clone());
    let media_url = format!("{}/2010-04-01/Accounts/AC123/Messages/MM1/Media/ME1", s.base);
    let pairs = [
        ("MessageSid", "MM1"),
        ("AccountSid", "AC123"),
        ("From", "+5511987654321"),
        ("To", SMS_NUMBER),
        ("Body", ""),
        ("NumMedia", "1"),
        ("MediaUrl0", media_url.as_str()),
        ("MediaContentType0", "image/png"),
    ];
    let params: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let body = serde_urlencoded::to_string(&params).unwrap();
    let sig = web::channels::sms::signature(TWILIO_TOKEN, TWILIO_HOOK, &params);
    s.app
        .raw(
            Method::POST,
            "/webhooks/twilio/sms",
            &[("Content-Type", "application/x-www-form-urlencoded"), ("X-Twilio-Signature", &sig)],
            body.as_bytes(),
        )
        .await
        .ok(200);
    let m = message_by_provider_id(&s.app, s.sms, "MM1");
    assert_eq!(until_fetched(&s.app, m.id).await.status, "done");
    let got = s.fake.to("GET /2010-04-01/Accounts/AC123/Messages/MM1/Media/ME1");
    use base64::Engine as _;
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("AC123:{TWILIO_TOKEN}")));
    assert_eq!(got[0].header("authorization"), basic);
    let files = store::attachments_of(&mut s.app.conn(), m.id).unwrap();
    let (status, ct, bytes) = s.download(&format!("/api/v1/attachments/{}", files[0].id)).await;
    assert_eq!((status, ct.as_str(), bytes), (200, "image/png", png));
}

#[actix_rt::test]
async fn a_messenger_attachment_is_fetched_from_its_url_and_a_type_not_accepted_is_never_downloaded() {
    let s = setup(true).await;
    let gif = b"GIF89a-bytes".to_vec();
    s.fake.answer("GET /cdn/photo.gif", 200, "image/gif", gif.clone());
    let event = json!({"object": "page", "entry": [{"id": "PAGE1", "time": 1764000000000i64, "messaging": [{
        "sender": {"id": "PSID-9"}, "recipient": {"id": "PAGE1"}, "timestamp": 1764000000000i64,
        "message": {"mid": "m_in_1", "attachments": [{"type": "image", "payload": {"url": format!("{}/cdn/photo.gif?x=1", s.base)}}]}}]}]});
    let body = event.to_string().into_bytes();
    let sig = web::channels::whatsapp::sign(WA_SECRET, &body);
    s.app
        .raw(
            Method::POST,
            "/webhooks/messenger",
            &[("Content-Type", "application/json"), ("X-Hub-Signature-256", &sig)],
            &body,
        )
        .await
        .ok(200);
    let m = message_by_provider_id(&s.app, s.messenger, "m_in_1");
    assert_eq!(until_fetched(&s.app, m.id).await.status, "done");
    let got = s.fake.to("GET /cdn/photo.gif");
    assert_eq!((got.len(), got[0].query.as_str()), (1, "x=1"));
    let files = store::attachments_of(&mut s.app.conn(), m.id).unwrap();
    let (status, ct, bytes) = s.download(&format!("/api/v1/attachments/{}", files[0].id)).await;
    assert_eq!((status, ct.as_str(), bytes), (200, "image/gif", gif));

    // An executable announced by WhatsApp is refused before any request.
    let exe = json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages",
        "value": {"messaging_product": "whatsapp", "metadata": {"phone_number_id": PHONE_ID},
                  "messages": [{"from": "5511987650009", "id": "wamid.EXE", "timestamp": "1764000000", "type": "document",
                                "document": {"filename": "setup.exe", "mime_type": "application/x-msdownload",
                                             "sha256": "abc", "id": "MEDIA-EXE"}}]}}]}]});
    wa_webhook(&s, &exe).await;
    let m = message_by_provider_id(&s.app, s.whatsapp, "wamid.EXE");
    assert_eq!(until_fetched(&s.app, m.id).await.status, "refused");
    assert!(s.fake.to("GET /v21.0/MEDIA-EXE").is_empty());
    let shown = Message::find(&mut s.app.conn(), m.id).unwrap();
    assert_eq!(shown.payload["media_error"], "files of type application/x-msdownload are not accepted (C9)");
    assert!(store::attachments_of(&mut s.app.conn(), m.id).unwrap().is_empty());
}

#[actix_rt::test]
async fn telegram_sends_voice_and_document_and_a_429_midway_resends_only_what_is_left() {
    let s = setup(true).await;
    let c = s.conversation(s.telegram, Channel::Telegram, "778").await;
    s.fake.json("POST /bot123456:ABC/sendVoice", 200, json!({"ok": true, "result": {"message_id": 60}}));
    s.fake.json(
        "POST /bot123456:ABC/sendDocument",
        429,
        json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 1",
               "parameters": {"retry_after": 1}}),
    );
    s.fake.json("POST /bot123456:ABC/sendDocument", 200, json!({"ok": true, "result": {"message_id": 61}}));
    let ogg = b"OggS-agent-voice".to_vec();
    let pdf = b"%PDF-1.7 contract".to_vec();
    let voice = s.upload("audio.ogg", "audio/ogg", &ogg).await;
    let doc = s.upload("contrato.pdf", "application/pdf", &pdf).await;
    let sent = s.send(c, &json!({"text": "Ouça e assine", "attachment_ids": [voice, doc]})).await;
    let m = until_status(&s.app, sent.ok(201)["id"].as_str().unwrap(), MessageStatus::Sent).await;
    assert_eq!(m.provider_message_id.as_deref(), Some("778:61"), "the message is known by its last part");
    assert!(m.attempts >= 2, "the rate limit cost an attempt");

    let voices = s.fake.to("POST /bot123456:ABC/sendVoice");
    assert_eq!(voices.len(), 1, "the voice note went out once, though the message was retried");
    assert_eq!(
        voices[0].parts(),
        vec![
            ("chat_id".into(), None, None, b"778".to_vec()),
            ("caption".into(), None, None, "Ouça e assine".as_bytes().to_vec()),
            ("voice".into(), Some("audio.ogg".into()), Some("audio/ogg".into()), ogg),
        ]
    );
    let documents = s.fake.to("POST /bot123456:ABC/sendDocument");
    assert_eq!(documents.len(), 2, "refused by the rate limit, then accepted");
    assert_eq!(
        documents[1].parts(),
        vec![
            ("chat_id".into(), None, None, b"778".to_vec()),
            ("document".into(), Some("contrato.pdf".into()), Some("application/pdf".into()), pdf),
        ]
    );
    assert!(s.fake.to("POST /bot123456:ABC/sendMessage").is_empty());
}

#[actix_rt::test]
async fn an_outbound_start_by_customer_uses_their_whatsapp_contact_and_the_conversation_waits_when_i_am_paused() {
    let s = setup(true).await;
    s.template("lembrete", "Seu boleto vence amanhã.", TemplateStatus::Approved);
    let now = Utc::now();
    let customer = schema::models::Customer {
        id: schema::CustomerId::new(),
        name: "Carlos".into(),
        trade_name: None,
        cpf: None,
        cnpj: None,
        emails: vec![],
        phones: vec!["+5511933330000".into()],
        notes: None,
        portfolio_agent_id: None,
        created_at: now,
        updated_at: now,
    }
    .insert(&mut s.app.conn())
    .unwrap();
    let start = json!({"service_id": s.whatsapp, "customer_id": customer.id, "template": {"name": "lembrete"}});
    s.app.post("/api/v1/outbound/whatsapp", Some(&s.token), &start).await.err(404, "not_found");
    WhatsappContact {
        id: WhatsappContactId::new(),
        phone: "+5511933330000".into(),
        wa_id: None,
        name: Some("Carlos".into()),
        customer_id: Some(customer.id),
        opted_in: true,
        opted_in_at: Some(now),
        opt_in_source: Some("site".into()),
        created_at: now,
        updated_at: now,
    }
    .insert(&mut s.app.conn())
    .unwrap();
    let lunch = schema::models::PauseReason {
        id: schema::PauseReasonId::new(),
        name: "Almoço".into(),
        active: true,
        created_at: now,
    }
    .insert(&mut s.app.conn())
    .unwrap();
    s.app
        .put("/api/v1/me/presence", Some(&s.token), &json!({"status": "paused", "pause_reason_id": lunch.id}))
        .await
        .ok(200);
    s.fake.json(
        &format!("POST /v21.0/{PHONE_ID}/messages"),
        200,
        json!({"messaging_product": "whatsapp", "messages": [{"id": "wamid.OUT2"}]}),
    );
    let body = s.app.post("/api/v1/outbound/whatsapp", Some(&s.token), &start).await.ok(201).clone();
    assert_eq!(body["assigned"], false, "a paused agent does not take it");
    let c = s.app.conversation(body["conversation_id"].as_str().unwrap().parse().unwrap());
    assert_eq!(c.customer_address, "5511933330000", "the phone without its plus when there is no wa_id");
    assert_eq!((c.customer_id, c.current_agent_id), (Some(customer.id), None));
    until_status(&s.app, body["message"]["id"].as_str().unwrap(), MessageStatus::Sent).await;
    let sent = s.fake.to(&format!("POST /v21.0/{PHONE_ID}/messages"));
    assert_eq!(
        sent[0].json()["template"],
        json!({"name": "lembrete", "language": {"code": "pt_BR"}}),
        "no components without parameters"
    );
}
