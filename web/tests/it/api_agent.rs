//! What an agent does (SPEC.md A "Agent"): presence, queues, pulls, the conversation list and
//! the conversation actions, with N3 (an agent sees its services' conversations and acts only on
//! its own; supervisors on their services'; admins on all) and N2 (bad input changes nothing).

use schema::{ConversationId, ConversationState, ServiceId};
use serde_json::{Value, json};

use crate::api_support::World;

fn names(items: &Value) -> Vec<String> {
    items.as_array().unwrap().iter().map(|i| i["customer"]["name"].as_str().unwrap_or("").to_owned()).collect()
}

fn positions(items: &Value) -> Vec<u64> {
    items.as_array().unwrap().iter().map(|i| i["position"].as_u64().unwrap()).collect()
}

fn ids(items: &Value) -> Vec<String> {
    let mut out: Vec<String> = items.as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect();
    out.sort();
    out
}

fn sorted(ids: &[ConversationId]) -> Vec<String> {
    let mut out: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    out.sort();
    out
}

#[actix_rt::test]
async fn presence_goes_available_paused_and_offline_and_refuses_bad_input() {
    let w = World::start().await;
    let app = &w.app;
    let ana = app.login("ana").await;
    let me = app.get("/api/v1/me", Some(&ana)).await;
    assert_eq!(me.ok(200)["presence"]["status"], "offline");
    assert_eq!(me.body["agent"]["login"], "ana");
    assert_eq!(me.body["services"].as_array().unwrap().len(), 2);

    let res = app.put("/api/v1/me/presence", Some(&ana), &json!({"status": "available"})).await;
    assert_eq!(res.ok(200)["status"], "available");
    assert_eq!(res.body["pause_reason_id"], Value::Null);
    assert!(res.str("since").parse::<chrono::DateTime<chrono::Utc>>().is_ok(), "{}", res.text);

    let before = app.snapshot();
    let put = |body: Value| {
        let ana = ana.clone();
        async move { app.put("/api/v1/me/presence", Some(&ana), &body).await }
    };
    put(json!({"status": "paused"})).await.err(400, "pause_reason_required");
    put(json!({"status": "paused", "pause_reason_id": ServiceId::new().to_string()}))
        .await
        .err(422, "invalid_pause_reason");
    put(json!({"status": "paused", "pause_reason_id": "lunch"})).await.err(400, "invalid_id");
    put(json!({"status": "busy"})).await.err(400, "invalid_status");
    put(json!({"status": "AVAILABLE"})).await.err(400, "invalid_status");
    put(json!({})).await.err(400, "invalid_field");
    put(json!({"status": 1})).await.err(400, "invalid_field");
    app.unchanged(&before, "refused presence changes");
    assert_eq!(app.get("/api/v1/me", Some(&ana)).await.body["presence"]["status"], "available");

    let res = put(json!({"status": "paused", "pause_reason_id": w.lunch.to_string()})).await;
    assert_eq!(res.ok(200)["status"], "paused");
    assert_eq!(res.body["pause_reason_id"], w.lunch.to_string());
    app.post_empty("/api/v1/queues/whatsapp/pull", Some(&ana)).await.err(409, "not_available");

    // R8: pausing with a conversation open is pause_pending until it ends.
    put(json!({"status": "available"})).await.ok(200);
    let c = w.pulled(&ana, w.wa_a, "+5511900000001").await;
    let res = put(json!({"status": "paused", "pause_reason_id": w.lunch.to_string()})).await;
    assert_eq!(res.ok(200)["status"], "pause_pending");
    app.post(&format!("/api/v1/conversations/{c}/conclude"), Some(&ana), &json!({})).await.ok(200);
    assert_eq!(app.get("/api/v1/me", Some(&ana)).await.body["presence"]["status"], "paused");

    let res = put(json!({"status": "offline"})).await;
    assert_eq!(res.ok(200)["status"], "offline");
    app.post_empty("/api/v1/queues/whatsapp/pull", Some(&ana)).await.err(409, "not_available");
}

#[actix_rt::test]
async fn queues_show_only_my_services() {
    let w = World::start().await;
    let app = &w.app;
    app.open(w.wa_a, schema::Channel::Whatsapp, "+5511900000001", "A1").await;
    app.open(w.wa_a, schema::Channel::Whatsapp, "+5511900000002", "A2").await;
    app.open(w.wa_b, schema::Channel::Whatsapp, "+5511900000003", "B1").await;
    app.open(w.email_a, schema::Channel::Email, "cliente@example.com", "E1").await;
    let ana = app.login("ana").await;
    let zoe = app.login("zoe").await;
    let admin = app.login("admin").await;

    let res = app.get("/api/v1/queues", Some(&ana)).await;
    let q = res.ok(200).as_array().unwrap();
    let seen: Vec<(&str, &str, u64)> = q
        .iter()
        .map(|q| (q["channel"].as_str().unwrap(), q["service_id"].as_str().unwrap(), q["waiting"].as_u64().unwrap()))
        .collect();
    let (email_a, wa_a) = (w.email_a.to_string(), w.wa_a.to_string());
    assert_eq!(seen, vec![("email", email_a.as_str(), 1), ("whatsapp", wa_a.as_str(), 2)]);
    assert!(!res.text.contains(&w.wa_b.to_string()), "N3: {}", res.text);
    assert!(q.iter().all(|q| q["inactive"] == 0 && q["oldest_wait_s"].as_i64().unwrap() >= 0));

    let res = app.get("/api/v1/queues", Some(&zoe)).await;
    let q = res.ok(200).as_array().unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0]["service_id"], w.wa_b.to_string());
    assert_eq!(q[0]["waiting"], 1);

    assert_eq!(app.get("/api/v1/queues", Some(&admin)).await.ok(200).as_array().unwrap().len(), 3);
}

#[actix_rt::test]
async fn queue_items_are_filtered_ordered_limited_and_numbered() {
    let w = World::start().await;
    let app = &w.app;
    let wa = schema::Channel::Whatsapp;
    app.open(w.wa_a, wa, "+5511900000001", "Alice").await;
    app.open(w.wa_a, wa, "+5511900000002", "Bob").await;
    app.open(w.wa_a, wa, "+5521900000003", "Carol").await;
    app.open(w.wa_b, wa, "+5511900000004", "Dave Secret").await;
    let ana = app.login("ana").await;
    let zoe = app.login("zoe").await;
    let admin = app.login("admin").await;
    let items = |token: String, query: &'static str| async move {
        app.get(&format!("/api/v1/queues/whatsapp/items{query}"), Some(&token)).await
    };

    let res = items(ana.clone(), "").await;
    let all = res.ok(200);
    assert_eq!(names(all), ["Alice", "Bob", "Carol"], "oldest first by default; no other team's customer");
    assert_eq!(positions(all), [1, 2, 3]);
    let first = &all[0];
    assert_eq!(first["service_id"], w.wa_a.to_string());
    assert_eq!(first["state"], "queued");
    assert_eq!(first["channel"], "whatsapp");
    assert_eq!(first["customer"]["address"], "+5511900000001");
    assert!(first["wait_s"].as_i64().unwrap() >= 0);
    assert!(!res.text.contains("Dave"), "N3: {}", res.text);

    let newest = items(ana.clone(), "?order=newest").await;
    assert_eq!(names(newest.ok(200)), ["Carol", "Bob", "Alice"]);
    assert_eq!(positions(&newest.body), [3, 2, 1], "positions are places in the queue, whatever the order");
    assert_eq!(names(items(ana.clone(), "?order=oldest&limit=2").await.ok(200)), ["Alice", "Bob"]);
    assert_eq!(names(items(ana.clone(), "?name=bo").await.ok(200)), ["Bob"]);
    assert_eq!(names(items(ana.clone(), "?name=ALI").await.ok(200)), ["Alice"]);
    assert_eq!(names(items(ana.clone(), "?phone=5521").await.ok(200)), ["Carol"]);
    assert_eq!(names(items(ana.clone(), "?name=nobody").await.ok(200)), Vec::<String>::new());
    let wa_a = format!("?service_id={}", w.wa_a);
    let res = app.get(&format!("/api/v1/queues/whatsapp/items{wa_a}"), Some(&ana)).await;
    assert_eq!(names(res.ok(200)), ["Alice", "Bob", "Carol"]);
    let res = app.get("/api/v1/queues/whatsapp/items?from=2999-01-01T00:00:00Z", Some(&ana)).await;
    assert_eq!(res.ok(200).as_array().unwrap().len(), 0);
    let res = app.get("/api/v1/queues/email/items", Some(&ana)).await;
    assert_eq!(res.ok(200).as_array().unwrap().len(), 0);

    // N3: another team's queue is refused, and shows nothing of it.
    let res = app.get(&format!("/api/v1/queues/whatsapp/items?service_id={}", w.wa_b), Some(&ana)).await;
    res.err(403, "forbidden");
    assert!(!res.text.contains("Dave") && !res.text.contains("+5511900000004"), "{}", res.text);
    assert_eq!(names(items(zoe.clone(), "").await.ok(200)), ["Dave Secret"]);
    app.get(&format!("/api/v1/queues/whatsapp/items{wa_a}"), Some(&zoe)).await.err(403, "forbidden");
    assert_eq!(items(admin.clone(), "").await.ok(200).as_array().unwrap().len(), 4);

    // Bad filters.
    items(ana.clone(), "?limit=0").await.err(400, "invalid_limit");
    items(ana.clone(), "?limit=501").await.err(400, "invalid_limit");
    items(ana.clone(), "?limit=-1").await.err(400, "invalid_limit");
    items(ana.clone(), "?limit=ten").await.err(400, "invalid_query");
    items(ana.clone(), "?order=sideways").await.err(400, "invalid_order");
    items(ana.clone(), "?service_id=wa").await.err(400, "invalid_id");
    items(ana.clone(), "?from=yesterday").await.err(400, "invalid_query");
    app.get("/api/v1/queues/fax/items", Some(&ana)).await.err(400, "invalid_channel");
    assert_eq!(items(ana.clone(), "?limit=500").await.ok(200).as_array().unwrap().len(), 3);
}

#[actix_rt::test]
async fn queue_positions_are_places_in_the_queue_whatever_the_filter() {
    let w = World::start().await;
    let app = &w.app;
    let wa = schema::Channel::Whatsapp;
    app.open(w.wa_a, wa, "+5511900000001", "Alice").await;
    app.open(w.wa_a, wa, "+5511900000002", "Bob").await;
    app.open(w.wa_a, wa, "+5521900000003", "Carol").await;
    let ana = app.login("ana").await;
    let res = app.get("/api/v1/queues/whatsapp/items?order=newest&limit=1", Some(&ana)).await;
    assert_eq!(names(res.ok(200)), ["Carol"]);
    assert_eq!(positions(&res.body), [3], "Carol is third in the queue: {}", res.text);
    let res = app.get("/api/v1/queues/whatsapp/items?name=carol", Some(&ana)).await;
    assert_eq!(positions(res.ok(200)), [3], "{}", res.text);
}

#[actix_rt::test]
async fn a_queue_filter_with_a_nul_character_is_a_4xx() {
    let w = World::start().await;
    let ana = w.app.login("ana").await;
    let mut answers = Vec::new();
    for q in ["name=a%00b", "phone=%00", "subject=%00", "content=%00"] {
        let res = w
            .app
            .call_unchecked(awc::http::Method::GET, &format!("/api/v1/queues/whatsapp/items?{q}"), Some(&ana), None)
            .await;
        answers.push(format!("{q} -> {} {}", res.status, res.text));
    }
    assert!(answers.iter().all(|a| a.contains(" -> 4")), "{answers:#?}");
}

#[actix_rt::test]
async fn a_classification_of_another_service_is_refused() {
    let w = World::start().await;
    let app = &w.app;
    let admin = app.login("admin").await;
    let ana = app.login("ana").await;
    let team_b = app
        .post(
            "/api/v1/admin/classifications",
            Some(&admin),
            &json!({"name": "B only", "service_id": w.wa_b.to_string()}),
        )
        .await
        .str("id");
    w.available(&ana).await;
    let c = w.pulled(&ana, w.wa_a, "+5511900000001").await;
    let before = app.snapshot();
    let mut answers = Vec::new();
    let res = app
        .put(&format!("/api/v1/conversations/{c}/classification"), Some(&ana), &json!({"classification_id": team_b}))
        .await;
    answers.push(format!("classification -> {} {}", res.status, res.text));
    let res = app
        .post(&format!("/api/v1/conversations/{c}/conclude"), Some(&ana), &json!({"classification_id": team_b}))
        .await;
    answers.push(format!("conclude -> {} {}", res.status, res.text));
    assert!(answers.iter().all(|a| a.contains(" -> 422")), "{answers:#?}");
    app.unchanged(&before, "a classification of another service");
}

#[actix_rt::test]
async fn a_transfer_to_an_inactive_service_is_refused() {
    let w = World::start().await;
    let app = &w.app;
    let admin = app.login("admin").await;
    let ana = app.login("ana").await;
    app.patch(&format!("/api/v1/admin/services/{}", w.wa_b), Some(&admin), &json!({"active": false})).await.ok(200);
    w.available(&ana).await;
    let c = w.pulled(&ana, w.wa_a, "+5511900000001").await;
    let before = app.snapshot();
    let res = app
        .post(&format!("/api/v1/conversations/{c}/transfer"), Some(&ana), &json!({"service_id": w.wa_b.to_string()}))
        .await;
    assert!((400..500).contains(&res.status), "{}", res.text);
    app.unchanged(&before, "a transfer to an inactive service");
}

#[actix_rt::test]
async fn concurrent_pulls_give_a_conversation_to_exactly_one_agent() {
    let w = World::start().await;
    let app = &w.app;
    let ana = app.login("ana").await;
    let bruno = app.login("bruno").await;
    w.available(&ana).await;
    w.available(&bruno).await;
    for i in 0..5 {
        // R3 through the API: the same chosen conversation, at the same time.
        let c = app.open(w.wa_a, schema::Channel::Whatsapp, &format!("+55119000000{i:02}"), "Race").await;
        let path = format!("/api/v1/conversations/{c}/pull");
        let (a, b) = tokio::join!(app.post_empty(&path, Some(&ana)), app.post_empty(&path, Some(&bruno)));
        let mut statuses = [a.status, b.status];
        statuses.sort();
        assert_eq!(statuses, [200, 409], "{} / {}", a.text, b.text);
        let (winner, token) = if a.status == 200 { (w.ana, &ana) } else { (w.bruno, &bruno) };
        assert_eq!(app.conversation(c).current_agent_id, Some(winner));
        // Concluded, so that neither agent reaches its capacity whoever wins.
        app.post_empty(&format!("/api/v1/conversations/{c}/conclude"), Some(token)).await.ok(200);
    }
    // The next of the channel, one waiting and two asking: one gets it, the other nothing.
    let c = app.open(w.wa_a, schema::Channel::Whatsapp, "+5511900000099", "Race").await;
    let path = "/api/v1/queues/whatsapp/pull";
    let (a, b) = tokio::join!(app.post_empty(path, Some(&ana)), app.post_empty(path, Some(&bruno)));
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [200, 204], "{} / {}", a.text, b.text);
    assert_eq!(app.conversation(c).state, ConversationState::InService);
}

#[actix_rt::test]
async fn pulling_the_next_conversation_of_a_channel() {
    let w = World::start().await;
    let app = &w.app;
    let ana = app.login("ana").await;
    let admin = app.login("admin").await;
    let pull = || app.post_empty("/api/v1/queues/whatsapp/pull", Some(&ana));

    app.open(w.wa_b, schema::Channel::Whatsapp, "+5511900000009", "Other team").await;
    let before = app.snapshot();
    pull().await.err(409, "not_available");
    app.unchanged(&before, "a pull while offline");
    w.available(&ana).await;
    let res = pull().await;
    res.ok(204);
    assert!(res.text.is_empty(), "{}", res.text);

    let alice = app.open(w.wa_a, schema::Channel::Whatsapp, "+5511900000001", "Alice").await;
    let res = pull().await;
    let c = res.ok(200);
    assert_eq!(c["id"], alice.to_string(), "N3: never the other team's customer");
    assert_eq!(c["state"], "in_service");
    assert_eq!(c["sub_state"], "active");
    assert_eq!(c["agent_id"], w.ana.to_string());
    assert_eq!(c["first_agent_id"], w.ana.to_string());
    let row = app.conversation(alice);
    assert_eq!((row.state, row.current_agent_id), (ConversationState::InService, Some(w.ana)));
    pull().await.ok(204);
    app.post_empty("/api/v1/queues/fax/pull", Some(&ana)).await.err(400, "invalid_channel");

    // R4: at capacity 1 on WhatsApp, the next pull is refused.
    let res = app
        .patch(&format!("/api/v1/admin/agents/{}", w.ana), Some(&admin), &json!({"capacity": {"whatsapp": 1}}))
        .await;
    assert_eq!(res.ok(200)["capacity"]["whatsapp"], 1);
    let bob = app.open(w.wa_a, schema::Channel::Whatsapp, "+5511900000002", "Bob").await;
    let before = app.snapshot();
    pull().await.err(409, "at_capacity");
    app.post_empty(&format!("/api/v1/conversations/{bob}/pull"), Some(&ana)).await.err(409, "at_capacity");
    app.unchanged(&before, "pulls at capacity");
    assert_eq!(app.conversation(bob).state, ConversationState::Queued);
    // Email has its own capacity.
    app.open(w.email_a, schema::Channel::Email, "x@example.com", "Mail").await;
    app.post_empty("/api/v1/queues/email/pull", Some(&ana)).await.ok(200);

    // Paused (pending, with conversations open): nothing new.
    app.put("/api/v1/me/presence", Some(&ana), &json!({"status": "paused", "pause_reason_id": w.lunch.to_string()}))
        .await
        .ok(200);
    let before = app.snapshot();
    app.post_empty("/api/v1/queues/email/pull", Some(&ana)).await.err(409, "not_available");
    app.unchanged(&before, "a pull while paused");
}

#[actix_rt::test]
async fn a_chosen_conversation_is_taken_once() {
    let w = World::start().await;
    let app = &w.app;
    let ana = app.login("ana").await;
    let bruno = app.login("bruno").await;
    let zoe = app.login("zoe").await;
    for t in [&ana, &bruno, &zoe] {
        w.available(t).await;
    }
    let c = app.open(w.wa_a, schema::Channel::Whatsapp, "+5511900000001", "Alice Private").await;
    let d = app.open(w.wa_a, schema::Channel::Whatsapp, "+5511900000002", "Bob Private").await;
    let res = app.post_empty(&format!("/api/v1/conversations/{c}/pull"), Some(&ana)).await;
    assert_eq!(res.ok(200)["agent_id"], w.ana.to_string());
    assert_eq!(res.body["state"], "in_service");

    let before = app.snapshot();
    app.post_empty(&format!("/api/v1/conversations/{c}/pull"), Some(&bruno)).await.err(409, "already_taken");
    // Another team's agent: refused without seeing the conversation, taken or waiting.
    for id in [c, d] {
        let res = app.post_empty(&format!("/api/v1/conversations/{id}/pull"), Some(&zoe)).await;
        res.err(404, "not_found");
        assert!(!res.text.contains("Private") && !res.text.contains("+55119"), "{}", res.text);
    }
    app.post_empty("/api/v1/conversations/not-an-id/pull", Some(&ana)).await.err(400, "invalid_id");
    app.post_empty(&format!("/api/v1/conversations/{}/pull", ConversationId::new()), Some(&ana))
        .await
        .err(404, "not_found");
    app.unchanged(&before, "refused pulls");
    assert_eq!(app.conversation(c).current_agent_id, Some(w.ana));
    assert_eq!(app.conversation(d).state, ConversationState::Queued);

    // A held conversation cannot be pulled.
    let mut held = engine::NewConversation::new(w.email_a, schema::Channel::Email, "held@example.com");
    held.held = Some(schema::HoldReason::Approval);
    let h = app.engine.open_conversation(held).await.unwrap();
    let before = app.snapshot();
    app.post_empty(&format!("/api/v1/conversations/{h}/pull"), Some(&bruno)).await.err(409, "invalid_state");
    app.unchanged(&before, "pulling a held conversation");
}

#[actix_rt::test]
async fn the_conversation_list_and_detail_respect_teams() {
    let w = World::start().await;
    let app = &w.app;
    let ana = app.login("ana").await;
    let bruno = app.login("bruno").await;
    let zoe = app.login("zoe").await;
    let sofia = app.login("sofia").await;
    let sam = app.login("sam").await;
    let admin = app.login("admin").await;
    w.available(&ana).await;
    w.available(&bruno).await;
    let mine = w.pulled(&ana, w.wa_a, "+5511911110001").await;
    let bruno_s = w.pulled(&bruno, w.wa_a, "+5511911110002").await;
    let queued = app.open(w.wa_a, schema::Channel::Whatsapp, "+5511911110003", "Queued").await;
    let secret = app.open(w.wa_b, schema::Channel::Whatsapp, "+5511922220001", "Dave Secret").await;

    let list = |token: String, query: &'static str| async move {
        app.get(&format!("/api/v1/conversations{query}"), Some(&token)).await
    };
    let res = list(ana.clone(), "").await;
    assert_eq!(ids(res.ok(200)), sorted(&[mine, bruno_s, queued]));
    assert!(!res.text.contains("Dave") && !res.text.contains(&secret.to_string()), "N3: {}", res.text);
    assert_eq!(ids(list(ana.clone(), "?state=open").await.ok(200)), sorted(&[mine, bruno_s, queued]));
    assert_eq!(ids(list(ana.clone(), "?state=queued").await.ok(200)), sorted(&[queued]));
    assert_eq!(ids(list(ana.clone(), "?mine=true").await.ok(200)), sorted(&[mine]));
    assert_eq!(ids(list(ana.clone(), "?state=in_service&mine=true").await.ok(200)), sorted(&[mine]));
    assert_eq!(ids(list(ana.clone(), "?state=concluded").await.ok(200)), sorted(&[]));
    assert_eq!(ids(list(zoe.clone(), "").await.ok(200)), sorted(&[secret]));
    assert_eq!(ids(list(sofia.clone(), "").await.ok(200)), sorted(&[mine, bruno_s, queued]));
    assert_eq!(ids(list(sam.clone(), "?state=open").await.ok(200)), sorted(&[secret]));
    assert_eq!(ids(list(admin.clone(), "").await.ok(200)), sorted(&[mine, bruno_s, queued, secret]));
    list(ana.clone(), "?state=bogus").await.err(400, "invalid_state");
    list(ana.clone(), "?limit=0").await.err(400, "invalid_limit");
    list(ana.clone(), "?limit=1001").await.err(400, "invalid_limit");
    list(ana.clone(), "?mine=maybe").await.err(400, "invalid_query");

    let res = app.get(&format!("/api/v1/conversations/{mine}"), Some(&ana)).await;
    let c = res.ok(200);
    assert_eq!(c["id"], mine.to_string());
    assert_eq!(c["state"], "in_service");
    assert_eq!(c["agent_id"], w.ana.to_string());
    assert_eq!(c["customer"]["address"], "+5511911110001");
    assert!(c["messages"].is_array(), "{}", res.text);
    // A teammate's conversation is visible (same service); another team's is not.
    app.get(&format!("/api/v1/conversations/{bruno_s}"), Some(&ana)).await.ok(200);
    for token in [&ana, &bruno, &sofia] {
        let res = app.get(&format!("/api/v1/conversations/{secret}"), Some(token)).await;
        res.err(404, "not_found");
        for leak in ["Dave", "+5511922220001", &w.wa_b.to_string(), &secret.to_string()] {
            assert!(!res.text.contains(leak), "N3: {leak} in {}", res.text);
        }
    }
    app.get(&format!("/api/v1/conversations/{mine}"), Some(&zoe)).await.err(404, "not_found");
    app.get(&format!("/api/v1/conversations/{mine}"), Some(&sam)).await.err(404, "not_found");
    app.get(&format!("/api/v1/conversations/{mine}"), Some(&sofia)).await.ok(200);
    app.get(&format!("/api/v1/conversations/{secret}"), Some(&sam)).await.ok(200);
    app.get(&format!("/api/v1/conversations/{secret}"), Some(&admin)).await.ok(200);
    app.get("/api/v1/conversations/nope", Some(&ana)).await.err(400, "invalid_id");
    app.get(&format!("/api/v1/conversations/{}", ConversationId::new()), Some(&ana)).await.err(404, "not_found");
}

#[actix_rt::test]
async fn transfers_follow_the_rules_and_refusals_change_nothing() {
    let w = World::start().await;
    let app = &w.app;
    let ana = app.login("ana").await;
    let bruno = app.login("bruno").await;
    let zoe = app.login("zoe").await;
    w.available(&ana).await;
    w.available(&zoe).await;
    let c = w.pulled(&ana, w.wa_a, "+5511900000001").await;
    let path = format!("/api/v1/conversations/{c}/transfer");

    let before = app.snapshot();
    let by_ana = |body: Value| {
        let (ana, path) = (ana.clone(), path.clone());
        async move { app.post(&path, Some(&ana), &body).await }
    };
    by_ana(json!({})).await.err(400, "invalid_transfer");
    by_ana(json!({"agent_id": w.bruno.to_string(), "service_id": w.wa_b.to_string()}))
        .await
        .err(400, "invalid_transfer");
    by_ana(json!({"agent_id": w.bruno.to_string(), "extension": "2001"})).await.err(400, "invalid_transfer");
    by_ana(json!({"extension": "  "})).await.err(400, "invalid_transfer");
    by_ana(json!({"agent_id": "bruno"})).await.err(400, "invalid_id");
    by_ana(json!({"agent_id": 7})).await.err(400, "invalid_field");
    by_ana(json!({"agent_id": w.bruno.to_string()})).await.err(409, "not_available");
    by_ana(json!({"agent_id": ConversationId::new().to_string()})).await.err(404, "agent_not_found");
    by_ana(json!({"agent_id": w.zoe.to_string()})).await.err(403, "not_member");
    by_ana(json!({"agent_id": w.ana.to_string()})).await.err(422, "invalid_transfer");
    by_ana(json!({"extension": "2001"})).await.err(422, "invalid_transfer");
    by_ana(json!({"service_id": w.email_a.to_string()})).await.err(422, "invalid_transfer");
    by_ana(json!({"service_id": w.wa_a.to_string()})).await.err(422, "invalid_transfer");
    by_ana(json!({"service_id": ServiceId::new().to_string()})).await.err(404, "service_not_found");
    // Not the owner, or not even in the service.
    app.post(&path, Some(&bruno), &json!({"agent_id": w.bruno.to_string()})).await.err(403, "not_owner");
    let res = app.post(&path, Some(&zoe), &json!({"agent_id": w.zoe.to_string()})).await;
    res.err(404, "not_found");
    assert!(!res.text.contains("+5511900000001"), "{}", res.text);
    app.post(
        &format!("/api/v1/conversations/{}/transfer", ConversationId::new()),
        Some(&ana),
        &json!({"agent_id": w.bruno.to_string()}),
    )
    .await
    .err(404, "not_found");
    app.unchanged(&before, "refused transfers");

    // To an agent who is logged in: the conversation moves, "started by" stays.
    w.available(&bruno).await;
    let res = by_ana(json!({"agent_id": w.bruno.to_string()})).await;
    let b = res.ok(200);
    assert_eq!(b["agent_id"], w.bruno.to_string());
    assert_eq!(b["first_agent_id"], w.ana.to_string());
    assert_eq!(b["state"], "in_service");
    by_ana(json!({"service_id": w.wa_b.to_string()})).await.err(403, "not_owner");

    // To another service's queue (on the same channel).
    let res = app.post(&path, Some(&bruno), &json!({"service_id": w.wa_b.to_string()})).await;
    let b = res.ok(200);
    assert_eq!(b["state"], "queued");
    assert_eq!(b["service_id"], w.wa_b.to_string());
    assert_eq!(b["agent_id"], Value::Null);
    let row = app.conversation(c);
    assert_eq!((row.service_id, row.state), (w.wa_b, ConversationState::Queued));
    // Now it is the other team's: they see it, the first team does not.
    app.get(&format!("/api/v1/conversations/{c}"), Some(&zoe)).await.ok(200);
    app.get(&format!("/api/v1/conversations/{c}"), Some(&ana)).await.err(404, "not_found");
}

#[actix_rt::test]
async fn return_conclude_cancel_classification_and_due_date() {
    let w = World::start().await;
    let app = &w.app;
    let ana = app.login("ana").await;
    let bruno = app.login("bruno").await;
    let zoe = app.login("zoe").await;
    let admin = app.login("admin").await;
    w.available(&ana).await;
    w.available(&bruno).await;
    let c = w.pulled(&ana, w.wa_a, "+5511900000001").await;
    let at = |action: &str| format!("/api/v1/conversations/{c}/{action}");

    // Return to the queue: only its agent.
    let before = app.snapshot();
    app.post_empty(&at("return"), Some(&bruno)).await.err(403, "not_owner");
    app.post_empty(&at("return"), Some(&zoe)).await.err(404, "not_found");
    app.unchanged(&before, "returns by others");
    let res = app.post_empty(&at("return"), Some(&ana)).await;
    assert_eq!(res.ok(200)["state"], "queued");
    assert_eq!(res.body["agent_id"], Value::Null);
    let before = app.snapshot();
    app.post_empty(&at("return"), Some(&ana)).await.err(403, "not_owner");
    app.unchanged(&before, "returning a queued conversation");
    app.post_empty(&at("pull"), Some(&ana)).await.ok(200);

    // Classification and due date.
    let before = app.snapshot();
    let put = |action: &'static str, token: String, body: Value| {
        let path = at(action);
        async move { app.put(&path, Some(&token), &body).await }
    };
    put("classification", ana.clone(), json!({"classification_id": ServiceId::new().to_string()}))
        .await
        .err(422, "invalid_classification");
    put("classification", ana.clone(), json!({"classification_id": "resolved"})).await.err(400, "invalid_id");
    put("classification", bruno.clone(), json!({"classification_id": w.resolved.to_string()}))
        .await
        .err(403, "not_owner");
    put("classification", zoe.clone(), json!({"classification_id": w.resolved.to_string()}))
        .await
        .err(404, "not_found");
    put("due-date", ana.clone(), json!({"due_at": "tomorrow"})).await.err(400, "invalid_field");
    put("due-date", ana.clone(), json!({"due_at": 1234})).await.err(400, "invalid_field");
    put("due-date", bruno.clone(), json!({"due_at": "2030-01-02T03:04:05Z"})).await.err(403, "not_owner");
    put("due-date", zoe.clone(), json!({"due_at": "2030-01-02T03:04:05Z"})).await.err(404, "not_found");
    app.unchanged(&before, "refused classification and due date");
    let res = put("classification", ana.clone(), json!({"classification_id": w.resolved.to_string()})).await;
    assert_eq!(res.ok(200)["classification_id"], w.resolved.to_string());
    let res = put("due-date", ana.clone(), json!({"due_at": "2030-01-02T03:04:05Z"})).await;
    assert_eq!(res.ok(200)["due_at"], "2030-01-02T03:04:05Z");
    assert_eq!(app.conversation(c).due_at, Some("2030-01-02T03:04:05Z".parse().unwrap()));
    let res = put("due-date", ana.clone(), json!({"due_at": null})).await;
    assert_eq!(res.ok(200)["due_at"], Value::Null);
    let res = put("classification", ana.clone(), json!({"classification_id": null})).await;
    assert_eq!(res.ok(200)["classification_id"], Value::Null);

    // Conclude: an unknown classification refuses the whole thing.
    let before = app.snapshot();
    app.post(&at("conclude"), Some(&ana), &json!({"classification_id": ServiceId::new().to_string()}))
        .await
        .err(422, "invalid_classification");
    app.post(&at("conclude"), Some(&bruno), &json!({})).await.err(403, "not_owner");
    app.post(&at("conclude"), Some(&zoe), &json!({})).await.err(404, "not_found");
    app.post(&at("cancel"), Some(&bruno), &json!({})).await.err(403, "not_owner");
    app.unchanged(&before, "refused conclusions");
    let res = app.post(&at("conclude"), Some(&ana), &json!({"classification_id": w.resolved.to_string()})).await;
    let b = res.ok(200);
    assert_eq!(b["state"], "concluded");
    assert_eq!(b["classification_id"], w.resolved.to_string());
    assert_eq!(b["concluded_by_id"], w.ana.to_string());
    assert!(b["ended_at"].is_string());
    let before = app.snapshot();
    let again = app.post(&at("conclude"), Some(&ana), &json!({})).await;
    assert!((400..500).contains(&again.status), "{}", again.text);
    let cancel = app.post_empty(&at("cancel"), Some(&ana)).await;
    assert!((400..500).contains(&cancel.status), "{}", cancel.text);
    app.unchanged(&before, "acting on a concluded conversation");

    // Cancel, where the service allows it; conclude without a body.
    let d = w.pulled(&ana, w.wa_a, "+5511900000002").await;
    let res = app.post_empty(&format!("/api/v1/conversations/{d}/cancel"), Some(&ana)).await;
    assert_eq!(res.ok(200)["state"], "cancelled");
    app.patch(&format!("/api/v1/admin/services/{}", w.wa_a), Some(&admin), &json!({"allow_cancel": false}))
        .await
        .ok(200);
    let e = w.pulled(&ana, w.wa_a, "+5511900000003").await;
    let before = app.snapshot();
    app.post_empty(&format!("/api/v1/conversations/{e}/cancel"), Some(&ana)).await.err(409, "cancel_not_allowed");
    app.unchanged(&before, "a cancel the service does not allow");
    let res = app.post_empty(&format!("/api/v1/conversations/{e}/conclude"), Some(&ana)).await;
    assert_eq!(res.ok(200)["state"], "concluded");
    assert_eq!(res.body["classification_id"], Value::Null);
}

#[actix_rt::test]
async fn a_malformed_conclude_body_concludes_nothing() {
    let w = World::start().await;
    let app = &w.app;
    let ana = app.login("ana").await;
    w.available(&ana).await;
    let c = w.pulled(&ana, w.wa_a, "+5511900000001").await;
    let before = app.snapshot();
    let res =
        app.post(&format!("/api/v1/conversations/{c}/conclude"), Some(&ana), &json!({"classification_id": 42})).await;
    assert_eq!(app.conversation(c).state, ConversationState::InService, "answered {}: {}", res.status, res.text);
    res.err(400, "invalid_field");
    app.unchanged(&before, "a malformed conclude");
}

#[actix_rt::test]
async fn acting_on_a_finished_conversation_is_a_conflict() {
    let w = World::start().await;
    let app = &w.app;
    let ana = app.login("ana").await;
    w.available(&ana).await;
    let c = w.pulled(&ana, w.wa_a, "+5511900000001").await;
    app.post(&format!("/api/v1/conversations/{c}/conclude"), Some(&ana), &json!({})).await.ok(200);
    app.get(&format!("/api/v1/conversations/{c}"), Some(&ana)).await.ok(200);
    let res = app.post(&format!("/api/v1/conversations/{c}/conclude"), Some(&ana), &json!({})).await;
    assert_eq!(res.status, 409, "{}", res.text);
}

#[actix_rt::test]
async fn supervisors_act_on_their_teams_conversations_only() {
    let w = World::start().await;
    let app = &w.app;
    let ana = app.login("ana").await;
    let sofia = app.login("sofia").await;
    let sam = app.login("sam").await;
    w.available(&ana).await;
    let c = w.pulled(&ana, w.wa_a, "+5511900000001").await;
    let before = app.snapshot();
    let res = app.post(&format!("/api/v1/conversations/{c}/conclude"), Some(&sam), &json!({})).await;
    res.err(404, "not_found");
    assert!(!res.text.contains("+5511900000001"), "{}", res.text);
    app.post_empty(&format!("/api/v1/conversations/{c}/return"), Some(&sam)).await.err(404, "not_found");
    app.unchanged(&before, "another team's supervisor");
    let res = app.post(&format!("/api/v1/conversations/{c}/conclude"), Some(&sofia), &json!({})).await;
    assert_eq!(res.ok(200)["state"], "concluded");
    assert_eq!(res.body["concluded_by_id"], w.sofia.to_string());
    assert_eq!(res.body["first_agent_id"], w.ana.to_string());
}

#[actix_rt::test]
async fn pickers_show_only_what_my_services_may_use() {
    let w = World::start().await;
    let app = &w.app;
    let admin = app.login("admin").await;
    let ana = app.login("ana").await;
    let zoe = app.login("zoe").await;
    let a_only = app
        .post(
            "/api/v1/admin/classifications",
            Some(&admin),
            &json!({"name": "Team A only", "service_id": w.wa_a.to_string()}),
        )
        .await;
    a_only.ok(201);
    let canned = app
        .post(
            "/api/v1/admin/canned-messages",
            Some(&admin),
            &json!({"title": "A greeting", "text": "Hi from A", "service_id": w.wa_a.to_string()}),
        )
        .await;
    canned.ok(201);
    let ana_c = app.get("/api/v1/classifications", Some(&ana)).await;
    assert!(ana_c.text.contains("Team A only") && ana_c.text.contains("Resolved"), "{}", ana_c.text);
    let zoe_c = app.get("/api/v1/classifications", Some(&zoe)).await;
    assert!(!zoe_c.text.contains("Team A only") && zoe_c.text.contains("Resolved"), "{}", zoe_c.text);
    assert!(app.get("/api/v1/canned-messages", Some(&ana)).await.text.contains("Hi from A"));
    let zoe_m = app.get("/api/v1/canned-messages", Some(&zoe)).await;
    assert_eq!(zoe_m.ok(200).as_array().unwrap().len(), 0, "{}", zoe_m.text);
    let reasons = app.get("/api/v1/pause-reasons", Some(&zoe)).await;
    assert_eq!(reasons.ok(200)[0]["id"], w.lunch.to_string());
}
