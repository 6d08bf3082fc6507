//! Administration (SPEC.md A "Administration", S4): services with write-only secrets, agents,
//! and the reference lists; every refusal is a JSON 4xx that changes nothing; only admins.

use schema::models::{Conversation, Service};
use schema::{Channel, ConversationState, ServiceId, ServiceTypeId, store};
use serde_json::{Value, json};

use crate::api_support::TestApp;

/// The secret values the demo seed stores in its services' `provider`.
const DEMO_SECRETS: &[&str] = &[
    "demo-app-secret",
    "demo-verify-token",
    "demo-access-token",
    "demo-bot-token",
    "demo-secret-token",
    "demo-auth-token",
    "demo-email-secret",
    "demo-cti-token",
];

fn stored(app: &TestApp, id: &str) -> Service {
    Service::find(&mut app.conn(), id.parse::<ServiceId>().unwrap()).unwrap()
}

#[track_caller]
fn no_secret_in(text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!text.contains(s), "the secret {s:?} is shown: {text}");
    }
}

#[actix_rt::test]
async fn services_are_created_read_and_patched_with_their_secrets_masked() {
    let app = TestApp::seeded().await;
    let admin = app.demo_login("admin").await;
    let res = app
        .post(
            "/api/v1/admin/services",
            Some(&admin),
            &json!({
                "name": "WhatsApp Vendas", "channel": "whatsapp", "auto_distribution": false,
                "offer_timeout_s": 20, "inactivity_minutes": 15, "abandon_hours": 24, "allow_cancel": false,
                "email_approval": false, "business_hours": {"mon": [["08:00", "18:00"]]},
                "provider": {"phone_number_id": "555000111", "app_secret": "s3cret-app",
                             "verify_token": "s3cret-verify", "access_token": "s3cret-access",
                             "api_base_url": "http://127.0.0.1:9/graph"}
            }),
        )
        .await;
    let body = res.ok(201).clone();
    let id = res.str("id");
    assert!(id.parse::<ServiceId>().is_ok(), "an opaque UUID: {id}");
    assert_eq!(body["name"], "WhatsApp Vendas");
    assert_eq!(body["channel"], "whatsapp");
    assert_eq!(body["auto_distribution"], false);
    assert_eq!(body["offer_timeout_s"], 20);
    assert_eq!(body["inactivity_minutes"], 15);
    assert_eq!(body["abandon_hours"], 24);
    assert_eq!(body["allow_cancel"], false);
    assert_eq!(body["business_hours"], json!({"mon": [["08:00", "18:00"]]}));
    let p = &body["provider"];
    assert_eq!(p["phone_number_id"], "555000111");
    assert_eq!(p["api_base_url"], "http://127.0.0.1:9/graph");
    for k in ["app_secret", "verify_token", "access_token"] {
        assert_eq!(p[k], "***", "{k} is masked");
    }
    let secrets = ["s3cret-app", "s3cret-verify", "s3cret-access"];
    no_secret_in(&res.text, &secrets);
    // Stored as given, and the engine routes for it at once.
    let row = stored(&app, &id);
    assert_eq!(row.provider["app_secret"], "s3cret-app");
    assert_eq!(row.provider_key.as_deref(), Some("555000111"));
    let queues = app.get("/api/v1/queues", Some(&admin)).await;
    assert!(queues.ok(200).as_array().unwrap().iter().any(|q| q["service_id"] == id.as_str()), "{}", queues.text);

    // A password inside a URL is hidden too.
    let email = app
        .post(
            "/api/v1/admin/services",
            Some(&admin),
            &json!({"name": "Mail 2", "channel": "email",
                    "provider": {"address": "vendas@example.com", "smtp_url": "smtp://mailer:hunter2@127.0.0.1:2525",
                                 "webhook_secret": "s3cret-hook"}}),
        )
        .await;
    email.ok(201);
    no_secret_in(&email.text, &["hunter2", "s3cret-hook"]);
    assert_eq!(email.body["provider"]["address"], "vendas@example.com");

    // Every read masks every secret, the demo's included.
    let list = app.get("/api/v1/admin/services", Some(&admin)).await;
    assert_eq!(list.ok(200).as_array().unwrap().len(), 10);
    no_secret_in(&list.text, &secrets);
    no_secret_in(&list.text, DEMO_SECRETS);
    no_secret_in(&list.text, &["hunter2", "s3cret-hook"]);
    let one = app.get(&format!("/api/v1/admin/services/{id}"), Some(&admin)).await;
    assert_eq!(one.ok(200)["id"], id.as_str());
    assert_eq!(one.body["provider"]["access_token"], "***");
    no_secret_in(&one.text, &secrets);

    // "***" in a PATCH keeps the stored secret; a new value replaces it.
    let patched = app
        .patch(
            &format!("/api/v1/admin/services/{id}"),
            Some(&admin),
            &json!({"name": "WhatsApp Vendas 2", "allow_cancel": true, "offer_timeout_s": null,
                    "provider": {"app_secret": "***", "verify_token": "***", "access_token": "n3w-access"}}),
        )
        .await;
    let b = patched.ok(200);
    assert_eq!(b["name"], "WhatsApp Vendas 2");
    assert_eq!(b["allow_cancel"], true);
    assert_eq!(b["offer_timeout_s"], Value::Null, "null clears an optional setting");
    assert_eq!(b["inactivity_minutes"], 15, "absent fields stay");
    assert_eq!(b["provider"]["access_token"], "***");
    no_secret_in(&patched.text, &["s3cret-app", "s3cret-verify", "n3w-access"]);
    let row = stored(&app, &id);
    assert_eq!(row.provider["app_secret"], "s3cret-app", "*** kept the secret");
    assert_eq!(row.provider["verify_token"], "s3cret-verify");
    assert_eq!(row.provider["access_token"], "n3w-access");
    assert_eq!(row.provider["phone_number_id"], "555000111", "keys not sent stay");
    assert_eq!(row.name, "WhatsApp Vendas 2");
}

#[actix_rt::test]
async fn service_bad_input_is_a_4xx_that_changes_nothing() {
    let app = TestApp::seeded().await;
    let admin = app.demo_login("admin").await;
    let t = Some(admin.as_str());
    let sms = app.service_of(Channel::Sms);
    let whatsapp = app.service_of(Channel::Whatsapp);
    let whatsapp2 = app
        .post(
            "/api/v1/admin/services",
            t,
            &json!({"name": "WA 2", "channel": "whatsapp", "provider": {"phone_number_id": "777"}}),
        )
        .await;
    let wa2 = whatsapp2.str("id");
    let before = app.snapshot();

    let create = |body: Value| {
        let app = &app;
        async move { app.post("/api/v1/admin/services", t, &body).await }
    };
    create(json!({"name": "Fax", "channel": "fax"})).await.err(400, "invalid_channel");
    create(json!({"name": "SMS", "channel": "sms"})).await.err(409, "service_exists");
    create(json!({"name": "New", "channel": "sms", "colour": "red"})).await.err(400, "invalid_field");
    create(json!({"name": "New", "channel": "sms", "business_hours": {"mon": [["18:00", "08:00"]]}}))
        .await
        .err(400, "invalid_business_hours");
    create(json!({"name": "New", "channel": "sms", "business_hours": {"funday": []}}))
        .await
        .err(400, "invalid_business_hours");
    create(json!({"name": "New", "channel": "sms", "business_hours": {"mon": [["8h", "18h"]]}}))
        .await
        .err(400, "invalid_business_hours");
    create(json!({"name": "New", "channel": "sms", "business_hours": "always"}))
        .await
        .err(400, "invalid_business_hours");
    create(json!({"name": "New", "channel": "sms", "time_zone": "Mars/Olympus"})).await.err(400, "invalid_time_zone");
    create(json!({"name": "New", "channel": "sms", "inactivity_minutes": 0})).await.err(400, "invalid_field");
    create(json!({"name": "New", "channel": "sms", "offer_timeout_s": -5})).await.err(400, "invalid_field");
    create(json!({"name": "New", "channel": "sms", "abandon_hours": -1})).await.err(400, "invalid_field");
    create(json!({"name": "New", "channel": "sms", "disconnect_grace_s": -1})).await.err(400, "invalid_field");
    create(json!({"name": "New", "channel": "sms", "offer_timeout_s": 1e12})).await.err(400, "invalid_field");
    create(json!({"name": "   ", "channel": "sms"})).await.err(400, "invalid_field");
    create(json!({"name": "x".repeat(201), "channel": "sms"})).await.err(400, "invalid_field");
    create(json!({"name": "New"})).await.err(400, "invalid_field");
    create(json!({"name": "New", "channel": "sms", "auto_distribution": "yes"})).await.err(400, "invalid_field");
    create(json!({"name": "New", "channel": "sms", "provider": "token"})).await.err(400, "invalid_provider");
    create(json!({"name": "New", "channel": "sms", "provider": {"auth": {"token": "x"}}}))
        .await
        .err(400, "invalid_provider");
    create(json!({"name": "New", "channel": "whatsapp", "provider": {"phone_number_id": "100000000000001"}}))
        .await
        .err(409, "service_exists");
    app.raw(awc::http::Method::POST, "/api/v1/admin/services", &[("authorization", &format!("Bearer {admin}"))], b"{}")
        .await
        .err(415, "unsupported_media_type");

    let patch = |id: String, body: Value| {
        let app = &app;
        async move { app.patch(&format!("/api/v1/admin/services/{id}"), t, &body).await }
    };
    let unknown = ServiceId::new().to_string();
    patch(unknown.clone(), json!({"name": "Z"})).await.err(404, "not_found");
    patch("not-an-id".into(), json!({"name": "Z"})).await.err(400, "invalid_id");
    let id = sms.id.to_string();
    patch(id.clone(), json!({"colour": "red"})).await.err(400, "invalid_field");
    patch(id.clone(), json!({"channel": "email"})).await.err(400, "invalid_field");
    patch(id.clone(), json!({"business_hours": {"mon": [["18:00", "08:00"]]}}))
        .await
        .err(400, "invalid_business_hours");
    patch(id.clone(), json!({"name": whatsapp.name})).await.err(409, "service_exists");
    patch(id.clone(), json!({"name": ""})).await.err(400, "invalid_field");
    patch(id.clone(), json!({"inactivity_minutes": 0})).await.err(400, "invalid_field");
    patch(id.clone(), json!({"offer_timeout_s": 0})).await.err(400, "invalid_field");
    patch(id.clone(), json!({"time_zone": "Nowhere/City"})).await.err(400, "invalid_time_zone");
    patch(id.clone(), json!({"provider": ["x"]})).await.err(400, "invalid_provider");
    patch(id.clone(), json!({"allow_cancel": "no"})).await.err(400, "invalid_field");
    patch(wa2, json!({"provider": {"phone_number_id": "100000000000001"}})).await.err(409, "service_exists");

    app.get(&format!("/api/v1/admin/services/{unknown}"), t).await.err(404, "not_found");
    app.get("/api/v1/admin/services/42", t).await.err(400, "invalid_id");
    app.unchanged(&before, "refused service writes");
    assert_eq!(Service::find(&mut app.conn(), sms.id).unwrap(), sms, "the SMS service is as it was");
}

#[actix_rt::test]
async fn administration_refuses_agents_and_supervisors_with_403_and_no_data() {
    let app = TestApp::seeded().await;
    let ana = app.demo_login("ana").await;
    let sofia = app.demo_login("sofia").await;
    let service = app.service_of(Channel::Whatsapp);
    let carla = app.agent_id("carla");
    let calls: Vec<(awc::http::Method, String, Option<Value>)> = vec![
        (awc::http::Method::POST, "/api/v1/admin/services".into(), Some(json!({"name": "Mine", "channel": "sms"}))),
        (awc::http::Method::GET, "/api/v1/admin/services".into(), None),
        (awc::http::Method::GET, format!("/api/v1/admin/services/{}", service.id), None),
        (awc::http::Method::PATCH, format!("/api/v1/admin/services/{}", service.id), Some(json!({"name": "Mine"}))),
        (
            awc::http::Method::POST,
            "/api/v1/admin/agents".into(),
            Some(json!({"login": "eve", "name": "Eve", "password": "eve-password", "role": "admin"})),
        ),
        (awc::http::Method::GET, "/api/v1/admin/agents".into(), None),
        (awc::http::Method::GET, format!("/api/v1/admin/agents/{carla}"), None),
        (awc::http::Method::PATCH, format!("/api/v1/admin/agents/{carla}"), Some(json!({"role": "admin"}))),
        (awc::http::Method::POST, "/api/v1/admin/pause-reasons".into(), Some(json!({"name": "Nap"}))),
        (awc::http::Method::POST, "/api/v1/admin/classifications".into(), Some(json!({"name": "Mine"}))),
        (awc::http::Method::POST, "/api/v1/admin/canned-messages".into(), Some(json!({"title": "t", "text": "x"}))),
        (
            awc::http::Method::POST,
            "/api/v1/admin/templates".into(),
            Some(json!({"kind": "email", "name": "t", "body_text": "x"})),
        ),
        (awc::http::Method::POST, "/api/v1/admin/service-types".into(), Some(json!({"name": "Mine"}))),
    ];
    let before = app.snapshot();
    for token in [&ana, &sofia] {
        for (method, path, body) in &calls {
            let res = app.call(method.clone(), path, Some(token), body.as_ref()).await;
            assert_eq!(res.status, 403, "{method} {path}: {}", res.text);
            res.err(403, "forbidden");
            assert!(!res.text.contains(&service.name) && !res.text.contains("100000000000001"), "{}", res.text);
        }
    }
    app.unchanged(&before, "administration by non-admins");
}

#[actix_rt::test]
async fn agents_are_created_read_and_patched_without_ever_showing_a_password() {
    let app = TestApp::seeded().await;
    let admin = app.demo_login("admin").await;
    let t = Some(admin.as_str());
    let wa = app.service_of(Channel::Whatsapp).id.to_string();
    let email = app.service_of(Channel::Email).id.to_string();
    let res = app
        .post(
            "/api/v1/admin/agents",
            t,
            &json!({"login": "diego", "name": "Diego Alves", "password": "diego-pass-1", "role": "agent",
                    "services": [wa, email], "capacity": {"whatsapp": 2}, "extension": "2010"}),
        )
        .await;
    let b = res.ok(201).clone();
    let id = res.str("id");
    assert_eq!(b["login"], "diego");
    assert_eq!(b["name"], "Diego Alves");
    assert_eq!(b["role"], "agent");
    assert_eq!(b["active"], true);
    assert_eq!(b["extension"], "2010");
    let mut services: Vec<String> =
        b["services"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect();
    services.sort();
    let mut expected = vec![wa.clone(), email.clone()];
    expected.sort();
    assert_eq!(services, expected);
    assert_eq!(b["capacity"]["whatsapp"], 2);
    assert_eq!(b["capacity"]["email"], 3, "defaults filled in");
    assert_eq!(b["capacity"]["voice"], 1);
    assert_eq!(b["capacity"]["webchat"], 5);
    assert!(b.get("password").is_none() && b.get("password_hash").is_none(), "{}", res.text);
    assert!(!res.text.contains("diego-pass-1") && !res.text.contains("argon2"), "{}", res.text);

    // The new agent signs in and sees its services.
    let diego = app.login_with("diego", "diego-pass-1").await;
    let queues = app.get("/api/v1/queues", Some(&diego)).await;
    assert_eq!(queues.ok(200).as_array().unwrap().len(), 2, "{}", queues.text);

    let list = app.get("/api/v1/admin/agents", t).await;
    let all = list.ok(200).as_array().unwrap();
    assert_eq!(all.len(), 6);
    assert!(all.iter().any(|a| a["id"] == id.as_str()));
    assert!(!list.text.contains("argon2"), "{}", list.text);
    let one = app.get(&format!("/api/v1/admin/agents/{id}"), t).await;
    assert_eq!(one.ok(200)["login"], "diego");

    let patched = app
        .patch(
            &format!("/api/v1/admin/agents/{id}"),
            t,
            &json!({"name": "Diego A.", "capacity": {"whatsapp": 1}, "services": [wa], "extension": null}),
        )
        .await;
    let p = patched.ok(200);
    assert_eq!(p["name"], "Diego A.");
    assert_eq!(p["capacity"]["whatsapp"], 1);
    assert_eq!(p["services"], json!([wa]));
    assert_eq!(p["extension"], Value::Null);
    assert_eq!(p["login"], "diego", "absent fields stay");
    let queues = app.get("/api/v1/queues", Some(&diego)).await;
    assert_eq!(queues.ok(200).as_array().unwrap().len(), 1, "{}", queues.text);
}

#[actix_rt::test]
async fn agent_bad_input_is_a_4xx_that_changes_nothing() {
    let app = TestApp::seeded().await;
    let admin = app.demo_login("admin").await;
    let t = Some(admin.as_str());
    let wa = app.service_of(Channel::Whatsapp).id.to_string();
    let carla = app.agent_id("carla");
    let before = app.snapshot();
    let create = |over: Value| {
        let app = &app;
        let mut body = json!({"login": "diego", "name": "Diego", "password": "diego-pass-1", "role": "agent"});
        for (k, v) in over.as_object().unwrap() {
            body[k] = v.clone();
        }
        async move { app.post("/api/v1/admin/agents", t, &body).await }
    };
    create(json!({"password": "short"})).await.err(400, "weak_password");
    create(json!({"password": ""})).await.err(400, "weak_password");
    create(json!({"login": "ana"})).await.err(409, "agent_exists");
    create(json!({"login": "ANA"})).await.err(409, "agent_exists");
    create(json!({"extension": "2001"})).await.err(409, "agent_exists");
    create(json!({"role": "boss"})).await.err(400, "invalid_role");
    create(json!({"login": "  "})).await.err(400, "invalid_field");
    create(json!({"name": ""})).await.err(400, "invalid_field");
    create(json!({"services": ["nope"]})).await.err(400, "invalid_id");
    create(json!({"services": [ServiceId::new().to_string()]})).await.err(422, "invalid_reference");
    create(json!({"services": wa})).await.err(400, "invalid_field");
    create(json!({"capacity": {"fax": 1}})).await.err(400, "invalid_capacity");
    create(json!({"capacity": {"whatsapp": -1}})).await.err(400, "invalid_capacity");
    create(json!({"capacity": {"whatsapp": 101}})).await.err(400, "invalid_capacity");
    create(json!({"capacity": {"whatsapp": "2"}})).await.err(400, "invalid_capacity");
    create(json!({"is_superuser": true})).await.err(400, "invalid_field");
    app.post("/api/v1/admin/agents", t, &json!({"login": "diego"})).await.err(400, "invalid_field");

    let patch = |body: Value| {
        let app = &app;
        async move { app.patch(&format!("/api/v1/admin/agents/{carla}"), t, &body).await }
    };
    patch(json!({"password": "short"})).await.err(400, "weak_password");
    patch(json!({"role": "boss"})).await.err(400, "invalid_role");
    patch(json!({"services": [ServiceId::new().to_string()], "name": "Changed"})).await.err(422, "invalid_reference");
    patch(json!({"extension": "2001", "name": "Changed"})).await.err(409, "agent_exists");
    patch(json!({"capacity": {"whatsapp": 1000}})).await.err(400, "invalid_capacity");
    patch(json!({"login": "carla2"})).await.err(400, "invalid_field");
    patch(json!({"name": " "})).await.err(400, "invalid_field");
    patch(json!({"active": "no"})).await.err(400, "invalid_field");
    app.patch(&format!("/api/v1/admin/agents/{}", ServiceId::new()), t, &json!({"name": "X"}))
        .await
        .err(404, "not_found");
    app.patch("/api/v1/admin/agents/carla", t, &json!({"name": "X"})).await.err(400, "invalid_id");
    app.get(&format!("/api/v1/admin/agents/{}", ServiceId::new()), t).await.err(404, "not_found");
    app.get("/api/v1/admin/agents/carla", t).await.err(400, "invalid_id");
    app.unchanged(&before, "refused agent writes");
}

#[actix_rt::test]
async fn deactivating_an_agent_revokes_its_sessions_and_requeues_its_conversations() {
    let app = TestApp::seeded().await;
    let admin = app.demo_login("admin").await;
    let ana = app.demo_login("ana").await;
    let bruno = app.demo_login("bruno").await;
    let ana_id = app.agent_id("ana");
    app.put("/api/v1/me/presence", Some(&ana), &json!({"status": "available"})).await.ok(200);
    // The demo distributes automatically: the conversation goes straight to Ana.
    let wa = app.service_of(Channel::Whatsapp).id;
    let conv = app.open(wa, Channel::Whatsapp, "+5511999990001", "Cliente").await;
    let c = app.conversation(conv);
    assert_eq!((c.state, c.current_agent_id), (ConversationState::InService, Some(ana_id)));

    let res = app.patch(&format!("/api/v1/admin/agents/{ana_id}"), Some(&admin), &json!({"active": false})).await;
    assert_eq!(res.ok(200)["active"], false);
    app.get("/api/v1/me", Some(&ana)).await.err(401, "unauthenticated");
    app.post("/api/v1/auth/login", None, &json!({"login": "ana", "password": "ana-demo1"}))
        .await
        .err(401, "invalid_credentials");
    let c: Conversation = app.conversation(conv);
    assert_eq!(c.state, ConversationState::InactiveInQueue, "R9: her conversation went back to the queue");
    assert_eq!(c.current_agent_id, None);

    // A new password also signs the person out everywhere.
    let bruno_id = app.agent_id("bruno");
    app.patch(&format!("/api/v1/admin/agents/{bruno_id}"), Some(&admin), &json!({"password": "bruno-new-pass"}))
        .await
        .ok(200);
    app.get("/api/v1/me", Some(&bruno)).await.err(401, "unauthenticated");
    app.post("/api/v1/auth/login", None, &json!({"login": "bruno", "password": "bruno-demo1"}))
        .await
        .err(401, "invalid_credentials");
    app.login_with("bruno", "bruno-new-pass").await;
}

#[actix_rt::test]
async fn reference_lists_are_created_and_their_bad_input_refused() {
    let app = TestApp::seeded().await;
    let admin = app.demo_login("admin").await;
    let ana = app.demo_login("ana").await;
    let t = Some(admin.as_str());
    let wa = app.service_of(Channel::Whatsapp).id.to_string();
    let unknown_service = ServiceId::new().to_string();

    // Pause reasons.
    let r = app.post("/api/v1/admin/pause-reasons", t, &json!({"name": "Banheiro"})).await;
    assert_eq!(r.ok(201)["name"], "Banheiro");
    assert_eq!(r.body["active"], true);
    let reason = r.str("id");
    let listed = app.get("/api/v1/pause-reasons", Some(&ana)).await;
    assert!(listed.ok(200).as_array().unwrap().iter().any(|p| p["id"] == reason.as_str()));
    // Classifications: global and per service.
    let c = app.post("/api/v1/admin/classifications", t, &json!({"name": "Spam"})).await;
    assert_eq!(c.ok(201)["service_id"], Value::Null);
    let c2 = app.post("/api/v1/admin/classifications", t, &json!({"name": "Spam", "service_id": wa})).await;
    assert_eq!(c2.ok(201)["service_id"], wa.as_str());
    let listed = app.get("/api/v1/classifications", Some(&ana)).await;
    let ids: Vec<&Value> = listed.ok(200).as_array().unwrap().iter().map(|c| &c["id"]).collect();
    assert!(ids.contains(&&c.body["id"]) && ids.contains(&&c2.body["id"]), "{}", listed.text);
    // Canned messages.
    let m = app.post("/api/v1/admin/canned-messages", t, &json!({"title": "Oi", "text": "Olá!"})).await;
    assert_eq!(m.ok(201)["text"], "Olá!");
    let m2 =
        app.post("/api/v1/admin/canned-messages", t, &json!({"title": "Oi WA", "text": "Olá", "service_id": wa})).await;
    assert_eq!(m2.ok(201)["service_id"], wa.as_str());
    let listed = app.get("/api/v1/canned-messages", Some(&ana)).await;
    assert!(listed.ok(200).as_array().unwrap().iter().any(|x| x["id"] == m2.body["id"]), "{}", listed.text);
    // Templates of both kinds.
    let e = app
        .post(
            "/api/v1/admin/templates",
            t,
            &json!({"kind": "email", "name": "Resposta padrão", "subject": "Seu pedido",
                    "body_text": "Olá", "body_html": "<p>Olá</p>"}),
        )
        .await;
    assert_eq!(e.ok(201)["kind"], "email");
    assert_eq!(e.body["body_html"], "<p>Olá</p>");
    let w = app
        .post(
            "/api/v1/admin/templates",
            t,
            &json!({"kind": "whatsapp", "name": "boas_vindas", "service_id": wa, "language": "pt_BR",
                    "category": "utility", "body": "Olá {{1}}"}),
        )
        .await;
    assert_eq!(w.ok(201)["kind"], "whatsapp");
    assert_eq!(w.body["status"], "approved");
    assert_eq!(w.body["category"], "utility");
    // A service type with its form.
    let st = app
        .post(
            "/api/v1/admin/service-types",
            t,
            &json!({"name": "Reclamação", "service_id": wa, "fields": [
                {"key": "pedido", "label": "Número do pedido", "field_type": "text", "required": true},
                {"key": "motivo", "label": "Motivo", "field_type": "select", "options": ["atraso", "defeito"]},
                {"key": "valor", "label": "Valor", "field_type": "number"}]}),
        )
        .await;
    let body = st.ok(201);
    let fields = body["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 3);
    assert_eq!(fields[1]["options"], json!(["atraso", "defeito"]));
    assert_eq!(fields.iter().map(|f| f["position"].as_i64().unwrap()).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert_eq!(fields[0]["required"], true);
    let st_id: ServiceTypeId = st.str("id").parse().unwrap();
    assert_eq!(store::form_of(&mut app.conn(), st_id).unwrap().len(), 3);

    // Bad input of every kind: a 4xx, nothing written.
    let before = app.snapshot();
    let post = |path: &'static str, body: Value| {
        let app = &app;
        async move { app.post(path, t, &body).await }
    };
    post("/api/v1/admin/pause-reasons", json!({"name": "Banheiro"})).await.err(409, "name_taken");
    post("/api/v1/admin/pause-reasons", json!({"name": " "})).await.err(400, "invalid_field");
    post("/api/v1/admin/pause-reasons", json!({"name": "x".repeat(101)})).await.err(400, "invalid_field");
    post("/api/v1/admin/pause-reasons", json!({})).await.err(400, "invalid_field");
    post("/api/v1/admin/pause-reasons", json!({"name": "P", "colour": "red"})).await.err(400, "invalid_field");
    post("/api/v1/admin/classifications", json!({"name": "Spam"})).await.err(409, "name_taken");
    post("/api/v1/admin/classifications", json!({"name": "Spam", "service_id": wa})).await.err(409, "name_taken");
    post("/api/v1/admin/classifications", json!({"name": "X", "service_id": unknown_service}))
        .await
        .err(422, "invalid_reference");
    post("/api/v1/admin/classifications", json!({"name": "X", "service_id": "wa"})).await.err(400, "invalid_id");
    post("/api/v1/admin/canned-messages", json!({"title": "T", "text": "  "})).await.err(400, "invalid_field");
    post("/api/v1/admin/canned-messages", json!({"text": "x"})).await.err(400, "invalid_field");
    post("/api/v1/admin/canned-messages", json!({"title": "T", "text": "x", "service_id": unknown_service}))
        .await
        .err(422, "invalid_reference");
    post("/api/v1/admin/templates", json!({"kind": "fax", "name": "T"})).await.err(400, "invalid_kind");
    post("/api/v1/admin/templates", json!({"kind": "email", "name": "T"})).await.err(400, "invalid_field");
    post("/api/v1/admin/templates", json!({"kind": "email", "name": "", "body_text": "x"}))
        .await
        .err(400, "invalid_field");
    post("/api/v1/admin/templates", json!({"kind": "whatsapp", "name": "t", "body": "x"}))
        .await
        .err(400, "invalid_field");
    post(
        "/api/v1/admin/templates",
        json!({"kind": "whatsapp", "name": "t", "service_id": wa, "category": "spam", "body": "x"}),
    )
    .await
    .err(400, "invalid_field");
    post("/api/v1/admin/templates", json!({"kind": "whatsapp", "name": "t", "service_id": wa}))
        .await
        .err(400, "invalid_field");
    post("/api/v1/admin/templates", json!({"kind": "whatsapp", "name": "boas_vindas", "service_id": wa, "body": "x"}))
        .await
        .err(409, "template_exists");
    post(
        "/api/v1/admin/templates",
        json!({"kind": "whatsapp", "name": "t", "service_id": unknown_service, "body": "x"}),
    )
    .await
    .err(422, "invalid_reference");
    post("/api/v1/admin/templates", json!({"kind": "email", "name": "T", "body_text": "x", "footer": "x"}))
        .await
        .err(400, "invalid_field");
    post("/api/v1/admin/service-types", json!({"name": "Reclamação"})).await.err(409, "name_taken");
    post(
        "/api/v1/admin/service-types",
        json!({"name": "S", "fields": [{"key": "k", "label": "L", "field_type": "select"}]}),
    )
    .await
    .err(400, "invalid_field");
    post(
        "/api/v1/admin/service-types",
        json!({"name": "S", "fields": [{"key": "k", "label": "L", "field_type": "colour"}]}),
    )
    .await
    .err(400, "invalid_field");
    post(
        "/api/v1/admin/service-types",
        json!({"name": "S", "fields": [{"key": " ", "label": "L", "field_type": "text"}]}),
    )
    .await
    .err(400, "invalid_field");
    post(
        "/api/v1/admin/service-types",
        json!({"name": "S", "fields": [{"key": "k", "label": "L", "field_type": "text", "x": 1}]}),
    )
    .await
    .err(400, "invalid_field");
    let dup = post(
        "/api/v1/admin/service-types",
        json!({"name": "S", "fields": [{"key": "k", "label": "A", "field_type": "text"},
                                       {"key": "k", "label": "B", "field_type": "text"}]}),
    )
    .await;
    assert!((400..500).contains(&dup.status), "a repeated field key is refused: {}", dup.text);
    post("/api/v1/admin/service-types", json!({"name": "S", "service_id": unknown_service}))
        .await
        .err(422, "invalid_reference");
    app.unchanged(&before, "refused reference-list writes");
}

#[actix_rt::test]
async fn a_whatsapp_template_needs_a_whatsapp_service() {
    let app = TestApp::seeded().await;
    let admin = app.demo_login("admin").await;
    let email = app.service_of(Channel::Email).id.to_string();
    let before = app.snapshot();
    let res = app
        .post(
            "/api/v1/admin/templates",
            Some(&admin),
            &json!({"kind": "whatsapp", "name": "t", "service_id": email, "body": "Olá"}),
        )
        .await;
    assert!((400..500).contains(&res.status), "{}", res.text);
    app.unchanged(&before, "a WhatsApp template on an email service");
}

#[actix_rt::test]
async fn text_with_a_nul_character_is_refused_with_a_4xx() {
    let app = TestApp::seeded().await;
    let admin = app.demo_login("admin").await;
    let t = Some(admin.as_str());
    let before = app.snapshot();
    let mut answers = Vec::new();
    for (path, body) in [
        ("/api/v1/admin/pause-reasons", json!({"name": "a\u{0}b"})),
        ("/api/v1/admin/classifications", json!({"name": "a\u{0}b"})),
        ("/api/v1/admin/canned-messages", json!({"title": "t", "text": "a\u{0}b"})),
        ("/api/v1/admin/services", json!({"name": "a\u{0}b", "channel": "sms"})),
        ("/api/v1/admin/services", json!({"name": "P", "channel": "sms", "provider": {"auth_token": "a\u{0}b"}})),
    ] {
        let res = app.call_unchecked(awc::http::Method::POST, path, t, Some(&body)).await;
        answers.push(format!("{path} {body} -> {} {}", res.status, res.text));
    }
    app.unchanged(&before, "text with NUL");
    assert!(answers.iter().all(|a| a.contains(" -> 4")), "{answers:#?}");
}
