//! Messages an agent sends, attachments (C9) and today's summary (D2), through the real API.

use awc::http::Method;
use schema::MessageStatus;
use serde_json::json;

use crate::api_support::World;

fn multipart(name: &str, content_type: &str, data: &[u8]) -> (String, Vec<u8>) {
    let boundary = "omniroute-test-boundary";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: {content_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[actix_rt::test]
async fn an_agent_sends_in_its_conversation_once_per_idempotency_key() {
    let w = World::start().await;
    let app = &w.app;
    let ana = app.login("ana").await;
    let bruno = app.login("bruno").await;
    w.available(&ana).await;
    let c = w.pulled(&ana, w.wa_a, "+5511900000001").await;
    let path = format!("/api/v1/conversations/{c}/messages");
    let auth = format!("Bearer {ana}");
    let send = |key: &'static str, text: &'static str| {
        let (path, auth) = (path.clone(), auth.clone());
        async move {
            let body = json!({ "text": text }).to_string();
            app.raw(
                Method::POST,
                &path,
                &[("Authorization", &auth), ("Content-Type", "application/json"), ("Idempotency-Key", key)],
                body.as_bytes(),
            )
            .await
        }
    };
    let first = send("k-1", "Olá, tudo bem?").await;
    let m = first.ok(201).clone();
    assert_eq!(m["status"], "pending");
    assert_eq!(m["direction"], "out");
    assert_eq!(m["body"], "Olá, tudo bem?");
    // A retried send (same key) stores nothing new and answers the same message.
    let again = send("k-1", "Olá, tudo bem?").await;
    assert_eq!(again.ok(201)["id"], m["id"]);
    let messages = schema::store::messages_of(&mut app.conn(), c).unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].status, MessageStatus::Pending);
    assert!(app.conversation(c).last_agent_message_at.is_some());
    // The conversation shows it.
    let got = app.get(&format!("/api/v1/conversations/{c}"), Some(&ana)).await;
    assert_eq!(got.ok(200)["messages"][0]["id"], m["id"]);

    // Refusals change nothing.
    let zoe = app.login("zoe").await;
    let before = app.snapshot();
    app.post(&path, Some(&ana), &json!({})).await.err(400, "empty_message");
    app.post(&path, Some(&ana), &json!({"text": "   "})).await.err(400, "empty_message");
    app.post(&path, Some(&ana), &json!({"text": "x".repeat(4097)})).await.err(400, "text_too_long");
    app.post(&path, Some(&ana), &json!({"text": 5})).await.err(400, "invalid_field");
    app.post(&path, Some(&ana), &json!({"text": "hi", "extra": 1})).await.err(400, "invalid_field");
    app.post(&path, Some(&ana), &json!({"attachment_ids": ["nope"]})).await.err(400, "invalid_id");
    app.post(&path, Some(&bruno), &json!({"text": "not mine"})).await.err(403, "not_owner");
    app.post(&path, Some(&zoe), &json!({"text": "other team"})).await.err(404, "not_found");
    app.post("/api/v1/conversations/00000000-0000-0000-0000-000000000000/messages", Some(&ana), &json!({"text": "x"}))
        .await
        .err(404, "not_found");
    app.unchanged(&before, "refused sends");
}

#[actix_rt::test]
async fn attachments_are_uploaded_checked_sent_and_served_only_to_those_allowed() {
    let w = World::start().await;
    let app = &w.app;
    let ana = app.login("ana").await;
    let zoe = app.login("zoe").await;
    w.available(&ana).await;
    let c = w.pulled(&ana, w.wa_a, "+5511900000002").await;
    let auth = format!("Bearer {ana}");
    let upload = |name: &'static str, ct: &'static str, data: Vec<u8>| {
        let auth = auth.clone();
        async move {
            let (content_type, body) = multipart(name, ct, &data);
            app.raw(
                Method::POST,
                "/api/v1/attachments",
                &[("Authorization", &auth), ("Content-Type", &content_type)],
                &body,
            )
            .await
        }
    };
    let pdf = upload("recibo.pdf", "application/pdf", b"%PDF-1.4 test".to_vec()).await;
    let pdf = pdf.ok(201).clone();
    assert_eq!(pdf["name"], "recibo.pdf");
    assert_eq!(pdf["size"], 13);
    let png = upload("../../foto.png", "image/png", vec![0x89, b'P', b'N', b'G']).await;
    let png = png.ok(201).clone();
    assert_eq!(png["name"], "foto.png", "no path in a stored name");

    let before = app.snapshot();
    upload("x.exe", "application/x-msdownload", b"MZ".to_vec()).await.err(415, "unsupported_file_type");
    upload("empty.txt", "text/plain", Vec::new()).await.err(400, "empty_file");
    app.unchanged(&before, "refused uploads");
    // WhatsApp takes images of at most 5 MiB (C9).
    let big = upload("big.png", "image/png", vec![0u8; 6 * 1024 * 1024]).await;
    let big_id = big.ok(201)["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/conversations/{c}/messages");
    app.post(&path, Some(&ana), &json!({"attachment_ids": [big_id]})).await.err(422, "attachment_not_allowed");
    // Someone else's upload cannot be attached.
    let zoe_file = {
        let (content_type, body) = multipart("z.txt", "text/plain", b"zoe");
        let auth = format!("Bearer {zoe}");
        app.raw(
            Method::POST,
            "/api/v1/attachments",
            &[("Authorization", &auth), ("Content-Type", &content_type)],
            &body,
        )
        .await
        .ok(201)["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    app.post(&path, Some(&ana), &json!({"attachment_ids": [zoe_file]})).await.err(422, "invalid_attachment");

    // Two files in one message.
    let sent = app.post(&path, Some(&ana), &json!({"text": "Segue", "attachment_ids": [pdf["id"], png["id"]]})).await;
    let sent = sent.ok(201).clone();
    let names: Vec<&str> =
        sent["attachments"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2);
    // A sent file cannot be sent again.
    app.post(&path, Some(&ana), &json!({"attachment_ids": [pdf["id"]]})).await.err(422, "invalid_attachment");

    // Download: the conversation's agent yes, another team no.
    let file = app.get(&format!("/api/v1/attachments/{}", pdf["id"].as_str().unwrap()), Some(&ana)).await;
    assert_eq!(file.status, 200);
    assert_eq!(file.text, "%PDF-1.4 test");
    assert_eq!(file.headers.get("content-type").unwrap(), "application/pdf");
    app.get(&format!("/api/v1/attachments/{}", pdf["id"].as_str().unwrap()), Some(&zoe)).await.err(404, "not_found");
    app.get("/api/v1/attachments/00000000-0000-0000-0000-000000000000", Some(&ana)).await.err(404, "not_found");
    // The conversation lists its attachments with its messages.
    let got = app.get(&format!("/api/v1/conversations/{c}"), Some(&ana)).await;
    assert_eq!(got.ok(200)["messages"][0]["attachments"].as_array().unwrap().len(), 2);
}

#[actix_rt::test]
async fn the_summary_counts_started_and_concluded_for_each_agent() {
    let w = World::start().await;
    let app = &w.app;
    let ana = app.login("ana").await;
    let bruno = app.login("bruno").await;
    w.available(&ana).await;
    w.available(&bruno).await;
    let c1 = w.pulled(&ana, w.wa_a, "+5511900000003").await;
    let c2 = w.pulled(&ana, w.wa_a, "+5511900000004").await;
    app.post(&format!("/api/v1/conversations/{c1}/conclude"), Some(&ana), &json!({})).await.ok(200);
    app.post(&format!("/api/v1/conversations/{c2}/transfer"), Some(&ana), &json!({"agent_id": w.bruno.to_string()}))
        .await
        .ok(200);
    app.post(&format!("/api/v1/conversations/{c2}/conclude"), Some(&bruno), &json!({})).await.ok(200);

    let a = app.get("/api/v1/me/summary", Some(&ana)).await;
    let a = a.ok(200);
    assert_eq!(a["started"]["count"], 2, "{a}");
    assert_eq!(a["concluded"]["count"], 1, "a transferred one is concluded by whoever ends it");
    assert_eq!(a["started"]["by_channel"]["whatsapp"], 2);
    assert_eq!(a["started"]["by_hour"].as_array().unwrap().len(), 24);
    assert_eq!(a["started"]["by_hour"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).sum::<i64>(), 2);
    assert!(a["concluded"]["avg_handling_s"].as_f64().is_some());
    let b = app.get("/api/v1/me/summary", Some(&bruno)).await;
    let b = b.ok(200);
    assert_eq!(b["started"]["count"], 0);
    assert_eq!(b["concluded"]["count"], 1);
    assert_eq!(b["time_zone"], "America/Sao_Paulo");
}

#[actix_rt::test]
async fn agents_read_the_services_by_name_and_channel_never_their_credentials() {
    let w = World::start().await;
    let app = &w.app;
    let ana = app.login("ana").await;
    let list = app.get("/api/v1/services", Some(&ana)).await.ok(200).as_array().unwrap().clone();
    let named: Vec<(&str, &str, bool)> = list
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["channel"].as_str().unwrap(), s["mine"].as_bool().unwrap()))
        .collect();
    // Team B's WhatsApp is listed too: a conversation can be transferred to its queue (R11).
    assert_eq!(
        named,
        [("Email A", "email", true), ("WhatsApp A", "whatsapp", true), ("WhatsApp B", "whatsapp", false)]
    );
    let a = list.iter().find(|s| s["name"] == "WhatsApp A").unwrap();
    assert_eq!(a["id"], w.wa_a.to_string());
    for s in &list {
        let keys: std::collections::BTreeSet<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["allow_cancel", "channel", "id", "mine", "name"].into_iter().collect(),
            "names, never provider settings"
        );
    }
    app.get("/api/v1/services", None).await.err(401, "unauthenticated");
}

#[actix_rt::test]
async fn colleagues_are_those_who_share_a_service_with_their_presence() {
    let w = World::start().await;
    let app = &w.app;
    let ana = app.login("ana").await;
    let bruno = app.login("bruno").await;
    w.available(&bruno).await;
    let list = app.get("/api/v1/agents", Some(&ana)).await;
    let list = list.ok(200).as_array().unwrap().clone();
    let logins: std::collections::BTreeSet<&str> = list.iter().map(|a| a["login"].as_str().unwrap()).collect();
    assert_eq!(logins, ["bruno", "sofia"].into_iter().collect(), "team A only: not me, not team B, not the admin");
    let b = list.iter().find(|a| a["login"] == "bruno").unwrap();
    assert_eq!(b["status"], "available");
    assert_eq!(b["id"], w.bruno.to_string());
    app.get("/api/v1/agents", None).await.err(401, "unauthenticated");
}
