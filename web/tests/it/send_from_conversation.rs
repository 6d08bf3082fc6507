//! An email or an SMS sent from a conversation (D6): what reaches the SMTP server and Twilio, the
//! new outbound conversation the agent gets, refusals that change nothing, and replays.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web as aw};
use awc::http::Method;
use chrono::Utc;
use engine::NewConversation;
use schema::models::{Customer, EmailTemplate, Message, Service};
use schema::{
    Channel, ConversationId, ConversationState, CustomerId, Direction, EmailTemplateId, MessageStatus, ServiceId,
};
use serde_json::{Value, json};

use crate::api_support::{Res, TestApp, agent_in};
use crate::mail_servers::{SmtpSink, free_port};

const ADDRESS: &str = "atendimento@omniroute.example";
const NUMBER: &str = "+5511900000000";

struct Setup {
    wa: ServiceId,
    email: ServiceId,
    maria: CustomerId,
    template: EmailTemplateId,
    /// A template of an email service ana is not in.
    foreign_template: EmailTemplateId,
}

/// WhatsApp, email (SMTP on `smtp_port`) and SMS (Twilio at `twilio`) services; ana and bruno in
/// all three, zoe in WhatsApp only; Maria, a customer with an email and a phone.
async fn setup(smtp_port: u16, twilio: &str) -> (TestApp, Setup) {
    let twilio = twilio.to_owned();
    TestApp::start_sending(move |conn| {
        let now = Utc::now();
        let mut service = |name: &str, channel, provider: Value| {
            let mut s = Service::with_defaults(name, channel, now);
            s.auto_distribution = false;
            s.provider_key =
                provider.get("address").or(provider.get("phone_number")).and_then(|v| v.as_str()).map(str::to_owned);
            s.provider = provider;
            s.insert(conn).unwrap().id
        };
        let wa = service("WhatsApp", Channel::Whatsapp, json!({}));
        let email = service(
            "Atendimento Omniroute",
            Channel::Email,
            json!({"address": ADDRESS, "smtp_url": format!("smtp://127.0.0.1:{smtp_port}")}),
        );
        let other_email = service("Outro e-mail", Channel::Email, json!({"address": "outro@omniroute.example"}));
        let sms = service(
            "SMS",
            Channel::Sms,
            json!({"account_sid": "AC123", "auth_token": "tok", "phone_number": NUMBER, "api_base_url": twilio}),
        );
        agent_in(conn, "ana", &[wa, email, sms], None);
        agent_in(conn, "bruno", &[wa, email, sms], None);
        agent_in(conn, "zoe", &[wa], None);
        let maria = Customer {
            id: CustomerId::new(),
            name: "Maria Souza".into(),
            trade_name: None,
            cpf: None,
            cnpj: None,
            emails: vec!["Maria.Souza@example.com".into()],
            phones: vec!["+55 (11) 93333-4444".into()],
            notes: None,
            portfolio_agent_id: None,
            created_at: now,
            updated_at: now,
        }
        .insert(conn)
        .unwrap()
        .id;
        let mut template = |name: &str, service: Option<ServiceId>| {
            EmailTemplate {
                id: EmailTemplateId::new(),
                name: name.into(),
                service_id: service,
                subject: "Segunda via do boleto".into(),
                body_text: "Olá {{customer_name}},\n\nSegue a segunda via.\n{{body}}\n--\n{{agent_name}}".into(),
                body_html: None,
                created_at: now,
            }
            .insert(conn)
            .unwrap()
            .id
        };
        let template_id = template("Boleto", Some(email));
        let foreign_template = template("Outro", Some(other_email));
        template("Geral", None);
        Setup { wa, email, maria, template: template_id, foreign_template }
    })
    .await
}

/// A WhatsApp chat (of `customer` when given) that `token`'s agent takes.
async fn chat(app: &TestApp, token: &str, s: &Setup, address: &str, customer: Option<CustomerId>) -> ConversationId {
    let mut new = NewConversation::new(s.wa, Channel::Whatsapp, address);
    new.customer_name = Some("Maria".into());
    new.customer_id = customer;
    let id = app.engine.open_conversation(new).await.unwrap();
    app.put("/api/v1/me/presence", Some(token), &json!({"status": "available"})).await.ok(200);
    app.post_empty(&format!("/api/v1/conversations/{id}/pull"), Some(token)).await.ok(200);
    id
}

async fn send(app: &TestApp, token: &str, path: &str, key: &str, body: &Value) -> Res {
    let auth = format!("Bearer {token}");
    let body = serde_json::to_vec(body).unwrap();
    app.raw(
        Method::POST,
        path,
        &[("Authorization", &auth), ("Content-Type", "application/json"), ("Idempotency-Key", key)],
        &body,
    )
    .await
}

async fn sent(app: &TestApp, id: &str) -> Message {
    let id: schema::MessageId = id.parse().unwrap();
    for _ in 0..300 {
        let m = Message::find(&mut app.conn(), id).unwrap();
        if m.status == MessageStatus::Sent {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never sent: {:?}", Message::find(&mut app.conn(), id).unwrap());
}

fn count_messages(app: &TestApp) -> usize {
    use diesel::prelude::*;
    schema::schema::messages::table.count().get_result::<i64>(&mut app.conn()).unwrap() as usize
}

#[actix_rt::test]
async fn an_email_from_a_template_goes_to_the_customer_in_a_new_conversation_of_mine() {
    let port = free_port();
    let sink = SmtpSink::start(port);
    let (app, s) = setup(port, "http://127.0.0.1:9").await;
    let ana = app.login("ana").await;
    let bruno = app.login("bruno").await;
    let zoe = app.login("zoe").await;
    let origin = chat(&app, &ana, &s, "5511933334444", Some(s.maria)).await;
    let unknown = chat(&app, &ana, &s, "5511977778888", None).await;
    let zoes = chat(&app, &zoe, &s, "5511966667777", None).await;

    // The picker: global templates and those of my services, not another service's.
    let listed = app.get("/api/v1/email-templates", Some(&ana)).await;
    let names: Vec<&str> = listed.ok(200).as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["Boleto", "Geral"]);
    assert_eq!(listed.body[0]["subject"], "Segunda via do boleto");

    // What the dialogs prefill.
    let contact = app.get(&format!("/api/v1/conversations/{origin}/contact"), Some(&ana)).await;
    assert_eq!(contact.ok(200), &json!({"email": "maria.souza@example.com", "phone": "+5511933334444"}));
    let contact = app.get(&format!("/api/v1/conversations/{unknown}/contact"), Some(&ana)).await;
    assert_eq!(contact.ok(200), &json!({"email": null, "phone": "+5511977778888"}));

    let path = format!("/api/v1/conversations/{origin}/email");
    let before = app.snapshot();
    let body = |extra: Value| {
        let mut b = json!({"template_id": s.template.to_string(), "subject": "Seu boleto de março"});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    send(&app, &bruno, &path, "r1", &body(json!({}))).await.err(403, "not_owner");
    send(&app, &zoe, &path, "r2", &body(json!({}))).await.err(403, "not_owner");
    send(&app, &ana, &path, "r3", &body(json!({"to": "maria at example"}))).await.err(400, "invalid_email");
    send(&app, &ana, &path, "r4", &json!({"template_id": s.foreign_template.to_string()}))
        .await
        .err(422, "unknown_template");
    send(&app, &ana, &path, "r5", &json!({"text": "sem assunto"})).await.err(400, "subject_required");
    send(&app, &ana, &format!("/api/v1/conversations/{unknown}/email"), "r6", &json!({"subject": "a", "text": "b"}))
        .await
        .err(422, "no_email_address");
    send(
        &app,
        &zoe,
        &format!("/api/v1/conversations/{zoes}/email"),
        "r7",
        &json!({"to": "x@example.com", "subject": "a", "text": "b"}),
    )
    .await
    .err(422, "no_email_service");
    app.unchanged(&before, "refused emails");

    let first = send(&app, &ana, &path, "k1", &body(json!({}))).await;
    let out = first.ok(201).clone();
    let conversation: ConversationId = out["conversation_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(out["assigned"], true);
    let m = sent(&app, out["message"]["id"].as_str().unwrap()).await;
    assert_eq!(m.conversation_id, conversation);

    let received = sink.received();
    assert_eq!(received.len(), 1, "sent once");
    assert_eq!(received[0].mail_from, ADDRESS);
    assert_eq!(received[0].rcpt_tos, vec!["maria.souza@example.com"]);
    let mail = mail_parser::MessageParser::default().parse(&received[0].raw).expect("a mail");
    let to: Vec<&str> = mail.to().unwrap().iter().filter_map(|a| a.address()).collect();
    assert_eq!(to, vec!["maria.souza@example.com"]);
    assert_eq!(mail.subject(), Some("Seu boleto de março"), "the agent's subject, not a reply's");
    assert!(mail.header_raw("In-Reply-To").is_none());
    assert_eq!(
        mail.body_text(0).map(|t| t.replace("\r\n", "\n").trim_end().to_owned()).as_deref(),
        Some("Olá Maria,\n\nSegue a segunda via.\n\n--\nana")
    );

    // The email conversation is mine and outbound; the chat stays open with me.
    let c = app.conversation(conversation);
    assert_eq!(
        (c.channel, c.service_id, c.state, c.current_agent_id, c.direction, c.customer_id),
        (
            Channel::Email,
            s.email,
            ConversationState::InService,
            Some(app.agent_id("ana")),
            Direction::Outbound,
            Some(s.maria)
        )
    );
    assert_eq!(c.customer_address, "maria.souza@example.com");
    assert_eq!(c.subject.as_deref(), Some("Seu boleto de março"));
    let o = app.conversation(origin);
    assert_eq!((o.state, o.current_agent_id), (ConversationState::InService, Some(app.agent_id("ana"))));
    let mine = app.get("/api/v1/conversations?mine=true&state=open", Some(&ana)).await;
    assert!(mine.ok(200).as_array().unwrap().iter().any(|x| x["id"] == conversation.to_string()));

    // A replay answers the same, and sends nothing more.
    let messages = count_messages(&app);
    let again = send(&app, &ana, &path, "k1", &body(json!({}))).await;
    assert_eq!(again.ok(201)["conversation_id"], out["conversation_id"]);
    assert_eq!(again.body["message"]["id"], out["message"]["id"]);
    assert_eq!(count_messages(&app), messages);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.received().len(), 1);
}

/// What the fake Messages API received: path and form.
type Request = (String, Vec<(String, String)>);

fn fake_twilio() -> (String, Arc<Mutex<Vec<Request>>>) {
    let seen: Arc<Mutex<Vec<Request>>> = Arc::default();
    let s = seen.clone();
    let server = HttpServer::new(move || {
        let s = s.clone();
        App::new().route(
            "/2010-04-01/Accounts/{sid}/Messages.json",
            aw::post().to(move |req: HttpRequest, body: aw::Bytes| {
                let s = s.clone();
                async move {
                    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap();
                    let n = {
                        let mut seen = s.lock().unwrap();
                        seen.push((req.path().to_owned(), form));
                        seen.len()
                    };
                    HttpResponse::Created().json(json!({"sid": format!("SMout{n}"), "status": "queued"}))
                }
            }),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let base = format!("http://127.0.0.1:{}", server.addrs()[0].port());
    actix_rt::spawn(server.run());
    (base, seen)
}

#[actix_rt::test]
async fn an_sms_goes_through_twilio_to_the_customers_phone_in_a_new_conversation_of_mine() {
    let (base, seen) = fake_twilio();
    let (app, s) = setup(9, &base).await;
    let ana = app.login("ana").await;
    let bruno = app.login("bruno").await;
    let zoe = app.login("zoe").await;
    let origin = chat(&app, &ana, &s, "5511988887777", Some(s.maria)).await;
    let zoes = chat(&app, &zoe, &s, "5511966667777", None).await;
    let path = format!("/api/v1/conversations/{origin}/sms");

    let before = app.snapshot();
    send(&app, &bruno, &path, "r1", &json!({"text": "oi"})).await.err(403, "not_owner");
    send(&app, &ana, &path, "r2", &json!({"text": "x".repeat(1601)})).await.err(400, "text_too_long");
    send(&app, &ana, &path, "r3", &json!({"text": "  "})).await.err(400, "empty_message");
    send(&app, &ana, &path, "r4", &json!({"text": "oi", "to": "abc"})).await.err(400, "invalid_phone");
    send(&app, &zoe, &format!("/api/v1/conversations/{zoes}/sms"), "r5", &json!({"text": "oi"}))
        .await
        .err(422, "no_sms_service");
    app.unchanged(&before, "refused SMS");

    let first = send(&app, &ana, &path, "k1", &json!({"text": "Seu código é 1234."})).await;
    let out = first.ok(201).clone();
    assert_eq!(out["assigned"], true);
    let conversation: ConversationId = out["conversation_id"].as_str().unwrap().parse().unwrap();
    let m = sent(&app, out["message"]["id"].as_str().unwrap()).await;
    assert_eq!(m.provider_message_id.as_deref(), Some("SMout1"));
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].0, "/2010-04-01/Accounts/AC123/Messages.json");
    let get = |k: &str| requests[0].1.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(
        (get("To"), get("From"), get("Body")),
        (Some("+5511933334444".into()), Some(NUMBER.into()), Some("Seu código é 1234.".into())),
        "the customer's first phone, in E.164"
    );
    let c = app.conversation(conversation);
    assert_eq!(
        (c.channel, c.state, c.current_agent_id, c.direction, c.customer_address.as_str()),
        (Channel::Sms, ConversationState::InService, Some(app.agent_id("ana")), Direction::Outbound, "+5511933334444")
    );
    assert_eq!(app.conversation(origin).state, ConversationState::InService);

    let messages = count_messages(&app);
    let again = send(&app, &ana, &path, "k1", &json!({"text": "Seu código é 1234."})).await;
    assert_eq!(again.ok(201)["message"]["id"], out["message"]["id"]);
    assert_eq!(count_messages(&app), messages);

    // Without a linked customer, the chat's own number, with its '+'.
    let unknown = chat(&app, &ana, &s, "5511955556666", None).await;
    let other = send(&app, &ana, &format!("/api/v1/conversations/{unknown}/sms"), "k2", &json!({"text": "Olá"})).await;
    sent(&app, other.ok(201)["message"]["id"].as_str().unwrap()).await;
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "the replay sent nothing");
    assert!(requests[1].1.contains(&("To".into(), "+5511955556666".into())), "{:?}", requests[1].1);
}
