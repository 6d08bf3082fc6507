//! Sign-in, sign-out and what every `/api/v1` route asks of its caller (SPEC.md A "Session"),
//! the 404 of unknown routes and the OpenAPI document.

use awc::http::Method;
use diesel::prelude::*;
use schema::schema::sessions;
use serde_json::{Value, json};

use crate::api_support::TestApp;

const LOGIN: &str = "/api/v1/auth/login";

/// Every `/api/v1` route of the route table, with a body it would accept.
fn routes() -> Vec<(Method, String, Option<Value>)> {
    let id = uuid_like();
    let mut out = Vec::new();
    let mut add = |m: Method, p: &str, b: Option<Value>| out.push((m, p.replace("{id}", &id), b));
    add(Method::POST, "/api/v1/auth/logout", None);
    add(Method::PUT, "/api/v1/me/presence", Some(json!({"status": "available"})));
    add(Method::GET, "/api/v1/me", None);
    add(Method::GET, "/api/v1/me/summary", None);
    add(Method::POST, "/api/v1/conversations/{id}/messages", Some(json!({"text": "hello"})));
    add(Method::POST, "/api/v1/attachments", None);
    add(Method::GET, "/api/v1/attachments/{id}", None);
    add(Method::GET, "/api/v1/pause-reasons", None);
    add(Method::GET, "/api/v1/classifications", None);
    add(Method::GET, "/api/v1/canned-messages", None);
    add(Method::GET, "/api/v1/queues", None);
    add(Method::GET, "/api/v1/queues/whatsapp/items", None);
    add(Method::POST, "/api/v1/queues/whatsapp/pull", None);
    add(Method::GET, "/api/v1/conversations", None);
    add(Method::GET, "/api/v1/conversations/{id}", None);
    add(Method::POST, "/api/v1/conversations/{id}/pull", None);
    add(Method::POST, "/api/v1/conversations/{id}/transfer", Some(json!({"agent_id": id})));
    add(Method::POST, "/api/v1/conversations/{id}/return", None);
    add(Method::POST, "/api/v1/conversations/{id}/conclude", Some(json!({})));
    add(Method::POST, "/api/v1/conversations/{id}/cancel", None);
    add(Method::PUT, "/api/v1/conversations/{id}/classification", Some(json!({"classification_id": null})));
    add(Method::PUT, "/api/v1/conversations/{id}/due-date", Some(json!({"due_at": null})));
    add(Method::POST, "/api/v1/conversations/{id}/approve", None);
    add(Method::POST, "/api/v1/conversations/{id}/reject", None);
    add(Method::GET, "/api/v1/monitor/agents", None);
    add(Method::GET, "/api/v1/monitor/queues", None);
    add(Method::POST, "/api/v1/admin/services", Some(json!({"name": "X", "channel": "sms"})));
    add(Method::GET, "/api/v1/admin/services", None);
    add(Method::GET, "/api/v1/admin/services/{id}", None);
    add(Method::PATCH, "/api/v1/admin/services/{id}", Some(json!({"name": "Y"})));
    add(
        Method::POST,
        "/api/v1/admin/agents",
        Some(json!({"login": "x", "name": "X", "password": "long-enough-1", "role": "agent"})),
    );
    add(Method::GET, "/api/v1/admin/agents", None);
    add(Method::GET, "/api/v1/admin/agents/{id}", None);
    add(Method::PATCH, "/api/v1/admin/agents/{id}", Some(json!({"name": "Y"})));
    add(Method::POST, "/api/v1/admin/pause-reasons", Some(json!({"name": "P"})));
    add(Method::POST, "/api/v1/admin/classifications", Some(json!({"name": "C"})));
    add(Method::POST, "/api/v1/admin/canned-messages", Some(json!({"title": "T", "text": "x"})));
    add(Method::POST, "/api/v1/admin/templates", Some(json!({"kind": "email", "name": "E", "body_text": "x"})));
    add(Method::POST, "/api/v1/admin/service-types", Some(json!({"name": "S"})));
    out
}

fn uuid_like() -> String {
    schema::ConversationId::new().to_string()
}

fn session_rows(app: &TestApp) -> Vec<(Vec<u8>, Option<chrono::DateTime<chrono::Utc>>)> {
    sessions::table.select((sessions::token_hash, sessions::revoked_at)).load(&mut app.conn()).unwrap()
}

#[actix_rt::test]
async fn login_answers_a_token_and_a_session_cookie_that_each_authenticate() {
    let app = TestApp::seeded().await;
    let res = app.post(LOGIN, None, &json!({"login": "ana", "password": "ana-demo1"})).await;
    let body = res.ok(200);
    let token = res.str("token");
    assert!(token.len() >= 32, "a long random token: {token}");
    assert_eq!(body["agent"]["login"], "ana");
    assert_eq!(body["agent"]["name"], "Ana Souza");
    assert_eq!(body["agent"]["role"], "agent");
    assert_eq!(body["agent"]["id"], app.agent_id("ana").to_string());
    assert!(!res.text.contains("argon2"), "no password hash in the answer: {}", res.text);

    let cookie = res.headers.get("set-cookie").expect("a session cookie").to_str().unwrap().to_owned();
    assert!(cookie.starts_with(&format!("omniroute_session={token}")), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");

    // The cookie alone authenticates a later request, as the desk does.
    let cookie_header = format!("omniroute_session={token}");
    let me = app.raw(Method::GET, "/api/v1/me", &[("cookie", &cookie_header)], b"").await;
    assert_eq!(me.ok(200)["agent"]["login"], "ana");
    assert_eq!(me.body["services"].as_array().unwrap().len(), 8, "ana is in the eight demo services");
    // So does the bearer token alone.
    let me = app.get("/api/v1/me", Some(&token)).await;
    assert_eq!(me.ok(200)["agent"]["login"], "ana");

    // Only the token's hash is stored.
    let rows = session_rows(&app);
    assert_eq!(rows.len(), 1);
    assert_ne!(rows[0].0, token.as_bytes());
    assert_eq!(rows[0].0, web::core::session::token_hash(&token));
}

#[actix_rt::test]
async fn a_wrong_password_and_an_unknown_login_get_the_same_401() {
    let app = TestApp::seeded().await;
    let before = app.snapshot();
    let wrong = app.post(LOGIN, None, &json!({"login": "ana", "password": "not-her-password"})).await;
    wrong.err(401, "invalid_credentials");
    assert!(wrong.headers.get("set-cookie").is_none());
    let unknown = app.post(LOGIN, None, &json!({"login": "nobody", "password": "ana-demo1"})).await;
    unknown.err(401, "invalid_credentials");
    assert_eq!(wrong.body["message"], unknown.body["message"], "nothing tells which logins exist");
    app.unchanged(&before, "failed sign-ins");
}

#[actix_rt::test]
async fn a_deactivated_person_cannot_sign_in() {
    let app = TestApp::seeded().await;
    let admin = app.demo_login("admin").await;
    let carla = app.agent_id("carla");
    app.patch(&format!("/api/v1/admin/agents/{carla}"), Some(&admin), &json!({"active": false})).await.ok(200);
    app.post(LOGIN, None, &json!({"login": "carla", "password": "carla-demo1"})).await.err(401, "invalid_credentials");
}

#[actix_rt::test]
async fn the_sixth_failure_in_a_row_is_throttled_even_with_the_right_password() {
    let app = TestApp::seeded().await;
    for i in 1..=5 {
        let res = app.post(LOGIN, None, &json!({"login": "bruno", "password": format!("guess-{i}")})).await;
        res.err(401, "invalid_credentials");
    }
    let before = app.snapshot();
    let sixth = app.post(LOGIN, None, &json!({"login": "bruno", "password": "guess-6"})).await;
    sixth.err(429, "too_many_attempts");
    let retry: u64 = sixth.headers.get("retry-after").expect("Retry-After").to_str().unwrap().parse().unwrap();
    assert!((1..=15 * 60).contains(&retry), "Retry-After {retry}");

    // While locked, even the right password is refused, whatever the login's case.
    app.post(LOGIN, None, &json!({"login": "bruno", "password": "bruno-demo1"})).await.err(429, "too_many_attempts");
    app.post(LOGIN, None, &json!({"login": " BRUNO ", "password": "bruno-demo1"})).await.err(429, "too_many_attempts");
    app.unchanged(&before, "throttled sign-ins");
    // The throttle is per login: others still sign in.
    app.demo_login("carla").await;
}

#[actix_rt::test]
async fn sign_in_bad_input_is_a_400_and_creates_no_session() {
    let app = TestApp::seeded().await;
    let before = app.snapshot();
    app.post(LOGIN, None, &json!({"login": "ana"})).await.err(400, "invalid_field");
    app.post(LOGIN, None, &json!({"password": "ana-demo1"})).await.err(400, "invalid_field");
    app.post(LOGIN, None, &json!({"login": "", "password": "ana-demo1"})).await.err(400, "missing_credentials");
    app.post(LOGIN, None, &json!({"login": "   ", "password": "x"})).await.err(400, "missing_credentials");
    app.post(LOGIN, None, &json!({"login": "ana", "password": ""})).await.err(400, "missing_credentials");
    app.post(LOGIN, None, &json!({"login": 42, "password": "ana-demo1"})).await.err(400, "invalid_field");
    app.post(LOGIN, None, &json!("ana:ana-demo1")).await.err(400, "invalid_field");
    let long = "a".repeat(201);
    app.post(LOGIN, None, &json!({"login": long, "password": "x"})).await.err(400, "invalid_credentials_format");
    let json = [("content-type", "application/json")];
    app.raw(Method::POST, LOGIN, &json, b"{\"login\": \"ana\", ").await.err(400, "invalid_json");
    app.raw(Method::POST, LOGIN, &json, b"").await.err(400, "invalid_json");
    app.raw(Method::POST, LOGIN, &[("content-type", "text/plain")], b"{\"login\":\"ana\",\"password\":\"ana-demo1\"}")
        .await
        .err(415, "unsupported_media_type");
    let huge = format!("{{\"login\": \"ana\", \"password\": \"{}\"}}", "x".repeat(300 * 1024));
    app.raw(Method::POST, LOGIN, &json, huge.as_bytes()).await.err(413, "payload_too_large");
    app.unchanged(&before, "malformed sign-ins");
    assert!(session_rows(&app).is_empty());
}

#[actix_rt::test]
async fn a_login_with_a_nul_character_is_refused_with_a_4xx() {
    let app = TestApp::seeded().await;
    let res = app.post(LOGIN, None, &json!({"login": "ana\u{0}", "password": "ana-demo1"})).await;
    assert!(res.status == 400 || res.status == 401, "{}", res.text);
}

#[actix_rt::test]
async fn logout_revokes_the_token_everywhere() {
    let app = TestApp::seeded().await;
    let token = app.demo_login("ana").await;
    let other = app.demo_login("ana").await;
    let res = app.post_empty("/api/v1/auth/logout", Some(&token)).await;
    res.ok(204);
    assert!(res.text.is_empty());
    let cookie = res.headers.get("set-cookie").expect("the cookie is cleared").to_str().unwrap();
    assert!(cookie.starts_with("omniroute_session=;"), "{cookie}");

    app.get("/api/v1/me", Some(&token)).await.err(401, "unauthenticated");
    let cookie_header = format!("omniroute_session={token}");
    app.raw(Method::GET, "/api/v1/me", &[("cookie", &cookie_header)], b"").await.err(401, "unauthenticated");
    app.post_empty("/api/v1/auth/logout", Some(&token)).await.err(401, "unauthenticated");
    app.post_empty("/api/v1/auth/logout", None).await.err(401, "unauthenticated");
    // Another session of the same person is untouched; the cookie alone signs out too.
    app.get("/api/v1/me", Some(&other)).await.ok(200);
    assert_eq!(session_rows(&app).iter().filter(|r| r.1.is_some()).count(), 1, "exactly the one session is revoked");
    let cookie_header = format!("omniroute_session={other}");
    app.raw(Method::POST, "/api/v1/auth/logout", &[("cookie", &cookie_header)], b"").await.ok(204);
    app.get("/api/v1/me", Some(&other)).await.err(401, "unauthenticated");
    let rows = session_rows(&app);
    assert_eq!(rows.iter().filter(|r| r.1.is_some()).count(), 2, "both sessions are revoked, one each time");
}

#[actix_rt::test]
async fn every_route_refuses_a_missing_or_unknown_token_with_401() {
    let app = TestApp::seeded().await;
    let before = app.snapshot();
    let garbage_cookie = "omniroute_session=not-a-session";
    for (method, path, body) in routes() {
        let none = app.call(method.clone(), &path, None, body.as_ref()).await;
        assert_eq!(none.status, 401, "{method} {path} without a token: {}", none.text);
        none.err(401, "unauthenticated");
        let garbage = app.call(method.clone(), &path, Some("not-a-session-token"), body.as_ref()).await;
        assert_eq!(garbage.status, 401, "{method} {path} with a garbage token: {}", garbage.text);
        garbage.err(401, "unauthenticated");
        let body_bytes = body.as_ref().map(|b| b.to_string()).unwrap_or_default();
        let mut headers = vec![("cookie", garbage_cookie)];
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        let cookie = app.raw(method.clone(), &path, &headers, body_bytes.as_bytes()).await;
        assert_eq!(cookie.status, 401, "{method} {path} with a garbage cookie: {}", cookie.text);
        if body.is_some() {
            // Without a token, even a malformed body is a 401 (nothing about the input is told).
            let res = app.raw(method.clone(), &path, &[("content-type", "application/json")], b"{").await;
            assert_eq!(res.status, 401, "{method} {path} without a token, malformed body: {}", res.text);
        }
    }
    // Other schemes and empty bearers are not tokens.
    for auth in ["Basic YW5hOmFuYS1kZW1vMQ==", "Bearer ", "Bearer", "Token abc"] {
        app.raw(Method::GET, "/api/v1/me", &[("authorization", auth)], b"").await.err(401, "unauthenticated");
    }
    app.unchanged(&before, "unauthenticated requests");
}

#[actix_rt::test]
async fn unknown_api_routes_are_a_json_404() {
    let app = TestApp::seeded().await;
    let token = app.demo_login("admin").await;
    // Without a session, everything under /api/v1 but sign-in is 401 (nothing about routes leaks).
    app.get("/api/v1/nothing-here", None).await.err(401, "unauthenticated");
    app.get("/api/v1/nothing-here", Some(&token)).await.err(404, "not_found");
    app.get("/api/v1/admin/services/x/y/z", Some(&token)).await.err(404, "not_found");
    let before = app.snapshot();
    let service = app.service_of(schema::Channel::Sms).id;
    let res = app.call(Method::DELETE, &format!("/api/v1/admin/services/{service}"), Some(&token), None).await;
    assert!(res.status == 404 || res.status == 405, "{}", res.text);
    app.unchanged(&before, "DELETE of a service");
}

#[actix_rt::test]
async fn the_openapi_document_lists_the_contract_routes() {
    let app = TestApp::seeded().await;
    let res = app.get("/api/openapi.json", None).await;
    let doc = res.ok(200);
    assert!(doc["openapi"].as_str().unwrap().starts_with('3'), "{}", doc["openapi"]);
    let paths = doc["paths"].as_object().expect("paths");
    let expected: &[(&str, &str)] = &[
        ("/api/v1/auth/login", "post"),
        ("/api/v1/auth/logout", "post"),
        ("/api/v1/admin/services", "post"),
        ("/api/v1/admin/services", "get"),
        ("/api/v1/admin/services/{id}", "get"),
        ("/api/v1/admin/services/{id}", "patch"),
        ("/api/v1/admin/agents", "post"),
        ("/api/v1/admin/agents/{id}", "patch"),
        ("/api/v1/admin/pause-reasons", "post"),
        ("/api/v1/admin/classifications", "post"),
        ("/api/v1/admin/canned-messages", "post"),
        ("/api/v1/admin/templates", "post"),
        ("/api/v1/admin/service-types", "post"),
        ("/api/v1/me/presence", "put"),
        ("/api/v1/me/summary", "get"),
        ("/api/v1/conversations/{id}/messages", "post"),
        ("/api/v1/attachments", "post"),
        ("/api/v1/queues", "get"),
        ("/api/v1/queues/{channel}/items", "get"),
        ("/api/v1/queues/{channel}/pull", "post"),
        ("/api/v1/conversations", "get"),
        ("/api/v1/conversations/{id}", "get"),
        ("/api/v1/conversations/{id}/pull", "post"),
        ("/api/v1/conversations/{id}/transfer", "post"),
        ("/api/v1/conversations/{id}/return", "post"),
        ("/api/v1/conversations/{id}/conclude", "post"),
        ("/api/v1/conversations/{id}/cancel", "post"),
        ("/api/v1/conversations/{id}/classification", "put"),
        ("/api/v1/conversations/{id}/due-date", "put"),
        ("/api/v1/monitor/agents", "get"),
        ("/api/v1/monitor/queues", "get"),
        ("/api/v1/conversations/{id}/approve", "post"),
        ("/api/v1/conversations/{id}/reject", "post"),
    ];
    for (path, method) in expected {
        assert!(paths.get(*path).and_then(|p| p.get(*method)).is_some(), "{method} {path} is documented");
    }
    // Every documented operation is a route that answers (not the 404 of unknown routes).
    let token = app.demo_login("admin").await;
    for (path, item) in paths {
        if item.get("get").is_some() && !path.contains('{') {
            let res = app.get(path, Some(&token)).await;
            assert_eq!(res.status, 200, "GET {path}: {}", res.text);
        }
    }
}

#[actix_rt::test]
async fn an_unknown_token_is_a_401_whatever_the_body() {
    let app = TestApp::seeded().await;
    let bearer = [("authorization", "Bearer not-a-session-token"), ("content-type", "application/json")];
    let mut answers = Vec::new();
    for (path, body) in [
        ("/api/v1/admin/services", &b"{"[..]),
        ("/api/v1/admin/services", &b"{}"[..]),
        ("/api/v1/admin/pause-reasons", &b"[1, 2]"[..]),
    ] {
        let res = app.raw(Method::POST, path, &bearer, body).await;
        answers.push(format!("{path} {} -> {} {}", String::from_utf8_lossy(body), res.status, res.text));
    }
    let res = app.raw(Method::POST, "/api/v1/admin/services", &bearer[..1], b"name=x").await;
    answers.push(format!("form body -> {} {}", res.status, res.text));
    assert!(answers.iter().all(|a| a.contains(" -> 401")), "{answers:#?}");
}
