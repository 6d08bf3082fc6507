//! N2 on every write route: a body with a field the route does not know, or without a field it
//! requires, is refused with 400 and changes nothing (a misspelt `dueAt` must not clear a due
//! date); and every error answer, whoever makes it, is the JSON `{error, message}`.

use awc::http::Method;
use serde_json::{Value, json};

use crate::api_support::World;

/// Every route of the OpenAPI document that takes a JSON body, as `METHOD /path/{template}`.
async fn json_write_routes(w: &World) -> Vec<String> {
    let doc = w.app.get("/api/openapi.json", None).await;
    let mut routes = Vec::new();
    for (path, item) in doc.ok(200)["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op.pointer("/requestBody/content/application~1json").is_some() {
                routes.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    routes.sort();
    routes
}

#[actix_rt::test]
async fn every_json_write_route_refuses_unknown_and_missing_fields_and_changes_nothing() {
    let w = World::start().await;
    let app = &w.app;
    let (ana, admin) = (app.login("ana").await, app.login("admin").await);
    w.available(&ana).await;
    let c = w.pulled(&ana, w.wa_a, "+5511900000001").await;
    app.put(&format!("/api/v1/conversations/{c}/due-date"), Some(&ana), &json!({"due_at": "2030-01-02T03:04:05Z"}))
        .await
        .ok(200);
    let agent = w.ana.to_string();
    let service = w.wa_a.to_string();
    let customer = app.post("/api/v1/customers", Some(&ana), &json!({"name": "Cliente"})).await;
    let customer = customer.ok(201)["id"].as_str().unwrap().to_owned();
    // A valid body for each route, and whether `{}` lacks a required field.
    let cases: Vec<(&str, String, &str, Value, bool)> = vec![
        ("POST", "/api/v1/auth/login".into(), "", json!({"login": "ana", "password": "secret-pass-1"}), true),
        ("PUT", "/api/v1/me/presence".into(), &ana, json!({"status": "available"}), true),
        ("POST", format!("/api/v1/conversations/{c}/transfer"), &ana, json!({"agent_id": w.bruno.to_string()}), true),
        (
            "POST",
            format!("/api/v1/conversations/{c}/conclude"),
            &ana,
            json!({"classification_id": w.resolved.to_string()}),
            false,
        ),
        (
            "PUT",
            format!("/api/v1/conversations/{c}/classification"),
            &ana,
            json!({"classification_id": w.resolved.to_string()}),
            true,
        ),
        ("PUT", format!("/api/v1/conversations/{c}/due-date"), &ana, json!({"due_at": null}), true),
        ("POST", format!("/api/v1/conversations/{c}/messages"), &ana, json!({"text": "Olá"}), true),
        ("POST", format!("/api/v1/conversations/{c}/call"), &ana, json!({}), false),
        (
            "POST",
            "/api/v1/outbound/whatsapp".into(),
            &ana,
            json!({"service_id": service, "contact_id": agent, "template": {"name": "x"}}),
            true,
        ),
        (
            "POST",
            "/api/v1/admin/services".into(),
            &admin,
            json!({"name": "New", "channel": "whatsapp", "auto_distribution": true}),
            true,
        ),
        ("PATCH", format!("/api/v1/admin/services/{service}"), &admin, json!({"name": "Renamed"}), false),
        (
            "POST",
            "/api/v1/admin/agents".into(),
            &admin,
            json!({"login": "nova", "name": "Nova", "password": "a-good-password", "role": "agent"}),
            true,
        ),
        ("PATCH", format!("/api/v1/admin/agents/{agent}"), &admin, json!({"name": "Ana Maria"}), false),
        ("POST", "/api/v1/admin/pause-reasons".into(), &admin, json!({"name": "Café"}), true),
        ("POST", "/api/v1/admin/classifications".into(), &admin, json!({"name": "Venda"}), true),
        ("POST", "/api/v1/admin/canned-messages".into(), &admin, json!({"title": "Oi", "text": "Olá!"}), true),
        (
            "POST",
            "/api/v1/admin/templates".into(),
            &admin,
            json!({"kind": "email", "name": "Resposta", "subject": "RES", "body_text": "Olá"}),
            true,
        ),
        ("POST", "/api/v1/admin/service-types".into(), &admin, json!({"name": "Reclamação"}), true),
        ("POST", "/api/v1/contacts".into(), &ana, json!({"phone": "+5511911112222"}), true),
        ("POST", "/api/v1/customers".into(), &ana, json!({"name": "Nova Cliente"}), true),
        ("PATCH", format!("/api/v1/customers/{customer}"), &ana, json!({"name": "Cliente Renomeada"}), false),
        (
            "POST",
            format!("/api/v1/conversations/{c}/email"),
            &ana,
            json!({"to": "cliente@exemplo.com", "subject": "Oi", "text": "Olá"}),
            false,
        ),
        ("POST", format!("/api/v1/conversations/{c}/sms"), &ana, json!({"to": "+5511911112222", "text": "Olá"}), false),
    ];
    // The table covers every JSON write route the API documents (a new route must be added here).
    let mut covered: Vec<String> = cases
        .iter()
        .map(|(m, path, ..)| {
            let template = path
                .replace(&c.to_string(), "{id}")
                .replace(&service, "{id}")
                .replace(&agent, "{id}")
                .replace(&customer, "{id}");
            format!("{m} {template}")
        })
        .collect();
    covered.sort();
    assert_eq!(covered, json_write_routes(&w).await);

    let before = app.snapshot();
    for (method, path, token, valid, required) in &cases {
        let method: Method = method.parse().unwrap();
        let token = (!token.is_empty()).then_some(*token);
        let mut unknown = valid.clone();
        unknown["zz_not_a_field"] = json!(1);
        let res = app.call(method.clone(), path, token, Some(&unknown)).await;
        assert_eq!(
            (res.status, res.body["error"].as_str()),
            (400, Some("invalid_field")),
            "{method} {path}: {}",
            res.text
        );
        if *required {
            let res = app.call(method.clone(), path, token, Some(&json!({}))).await;
            assert_eq!(res.status, 400, "{method} {path} without its required fields: {}", res.text);
        }
    }
    // The misspelling the issue found, and a body that is not UTF-8.
    let due = format!("/api/v1/conversations/{c}/due-date");
    app.put(&due, Some(&ana), &json!({"dueAt": null})).await.err(400, "invalid_field");
    let auth = format!("Bearer {ana}");
    let headers = [("Content-Type", "application/json"), ("Authorization", auth.as_str())];
    let res = app.raw(Method::PUT, &due, &headers, b"{\"due_at\": \"2030-01-02T03:04:05Z\xff\"}").await;
    assert_eq!(res.status, 400, "{}", res.text);
    app.unchanged(&before, "refused bodies");
    let row = app.conversation(c);
    assert!(row.due_at.is_some(), "the due date is still set");
}

#[actix_rt::test]
async fn every_error_answer_is_json() {
    let w = World::start().await;
    let app = &w.app;
    let ana = app.login("ana").await;
    // A method no route takes, an unknown path, HEAD on the pages.
    app.call(Method::POST, "/healthz", None, None).await.err(404, "not_found");
    app.call(Method::GET, "/no/such/page", None, None).await.err(404, "not_found");
    app.call(Method::GET, "/webhooks/telegram/x", None, None).await.err(404, "not_found");
    assert_eq!(app.call(Method::HEAD, "/", None, None).await.status, 200);
    assert_eq!(app.call(Method::HEAD, "/healthz", None, None).await.status, 200);
    // 10 MB to JSON routes, with a JSON extractor and with a raw one.
    let big = vec![b' '; 10 * 1024 * 1024];
    let auth = format!("Bearer {ana}");
    let headers = [("Content-Type", "application/json"), ("Authorization", auth.as_str())];
    app.raw(Method::PUT, "/api/v1/me/presence", &headers, &big).await.err(413, "payload_too_large");
    w.available(&ana).await;
    let c = w.pulled(&ana, w.wa_a, "+5511900000002").await;
    app.raw(Method::POST, &format!("/api/v1/conversations/{c}/conclude"), &headers, &big)
        .await
        .err(413, "payload_too_large");
    let res = app.raw(Method::POST, "/api/v1/attachments", &[("Authorization", auth.as_str())], &big).await;
    assert!(res.status >= 400 && res.status < 500, "{}", res.text);
}

/// An existing conversation the caller may not see answers exactly as a missing one does.
#[actix_rt::test]
async fn a_conversation_out_of_sight_answers_as_a_missing_one() {
    let w = World::start().await;
    let app = &w.app;
    let (ana, zoe) = (app.login("ana").await, app.login("zoe").await);
    w.available(&ana).await;
    let c = w.pulled(&ana, w.wa_a, "+5511900000003").await;
    let missing = schema::ConversationId::new();
    for (method, suffix, body) in [
        (Method::GET, "", None),
        (Method::POST, "/conclude", Some(json!({}))),
        (Method::POST, "/return", None),
        (Method::PUT, "/due-date", Some(json!({"due_at": null}))),
        (Method::POST, "/messages", Some(json!({"text": "x"}))),
    ] {
        let seen =
            app.call(method.clone(), &format!("/api/v1/conversations/{c}{suffix}"), Some(&zoe), body.as_ref()).await;
        let gone = app
            .call(method.clone(), &format!("/api/v1/conversations/{missing}{suffix}"), Some(&zoe), body.as_ref())
            .await;
        seen.err(404, "not_found");
        assert_eq!((seen.status, &seen.body), (gone.status, &gone.body), "{method} {suffix}");
    }
}
