//! Supervisors (SPEC.md A "Supervisor", S1, S3, C6): the monitor over REST and email approval,
//! each limited to the supervisor's services; agents are refused.

use engine::NewConversation;
use schema::{Channel, ConversationId, ConversationState, HoldReason};
use serde_json::Value;

use crate::api_support::World;

fn logins(agents: &Value) -> Vec<String> {
    let mut out: Vec<String> =
        agents.as_array().unwrap().iter().map(|a| a["login"].as_str().unwrap().to_owned()).collect();
    out.sort();
    out
}

async fn held(w: &World, address: &str) -> ConversationId {
    let mut new = NewConversation::new(w.email_a, Channel::Email, address);
    new.customer_name = Some("Held Customer".into());
    new.subject = Some("Please approve".into());
    new.held = Some(HoldReason::Approval);
    w.app.engine.open_conversation(new).await.expect("a held email")
}

#[actix_rt::test]
async fn the_monitor_shows_a_supervisor_their_teams_and_refuses_agents() {
    let w = World::start().await;
    let app = &w.app;
    let ana = app.login("ana").await;
    let sofia = app.login("sofia").await;
    let sam = app.login("sam").await;
    let admin = app.login("admin").await;
    w.available(&ana).await;
    w.pulled(&ana, w.wa_a, "+5511900000001").await;
    app.open(w.wa_a, Channel::Whatsapp, "+5511900000002", "Waiting").await;
    app.open(w.wa_b, Channel::Whatsapp, "+5511900000003", "Waiting B").await;

    for path in ["/api/v1/monitor/agents", "/api/v1/monitor/queues"] {
        let res = app.get(path, Some(&ana)).await;
        res.err(403, "forbidden");
        assert!(!res.text.contains("whatsapp") && !res.text.contains("bruno"), "{}", res.text);
    }

    let res = app.get("/api/v1/monitor/agents", Some(&sofia)).await;
    assert_eq!(logins(res.ok(200)), ["ana", "bruno", "sofia"], "S1: the agents of her services only");
    let ana_row = res.body.as_array().unwrap().iter().find(|a| a["login"] == "ana").unwrap();
    assert_eq!(ana_row["status"], "available");
    assert_eq!(ana_row["id"], w.ana.to_string());
    assert_eq!(ana_row["conversations"]["whatsapp"]["active"], 1, "{}", res.text);
    let res = app.get("/api/v1/monitor/agents", Some(&sam)).await;
    assert_eq!(logins(res.ok(200)), ["sam", "zoe"]);
    let sam_row = res.body.as_array().unwrap().iter().find(|a| a["login"] == "sam").unwrap();
    assert_eq!(sam_row["id"], w.sam.to_string());
    let res = app.get("/api/v1/monitor/agents", Some(&admin)).await;
    assert_eq!(logins(res.ok(200)), ["admin", "ana", "bruno", "sam", "sofia", "zoe"]);
    assert!(res.body.as_array().unwrap().iter().any(|a| a["id"] == w.admin.to_string()));

    let res = app.get("/api/v1/monitor/queues", Some(&sofia)).await;
    let queues = res.ok(200).as_array().unwrap();
    let wa_a = queues.iter().find(|q| q["service_id"] == w.wa_a.to_string()).expect("her WhatsApp queue");
    assert_eq!(wa_a["waiting"], 1);
    assert!(queues.iter().any(|q| q["service_id"] == w.email_a.to_string()));
    assert!(!res.text.contains(&w.wa_b.to_string()), "N3: {}", res.text);
    let res = app.get("/api/v1/monitor/queues", Some(&sam)).await;
    let queues = res.ok(200).as_array().unwrap();
    assert_eq!(queues.len(), 1);
    assert_eq!(queues[0]["service_id"], w.wa_b.to_string());
    assert_eq!(queues[0]["waiting"], 1);
    assert_eq!(app.get("/api/v1/monitor/queues", Some(&admin)).await.ok(200).as_array().unwrap().len(), 3);
}

#[actix_rt::test]
async fn held_emails_are_approved_or_rejected_by_their_supervisors_only() {
    let w = World::start().await;
    let app = &w.app;
    let ana = app.login("ana").await;
    let sofia = app.login("sofia").await;
    let sam = app.login("sam").await;
    let admin = app.login("admin").await;
    let first = held(&w, "first@example.com").await;
    let second = held(&w, "second@example.com").await;
    assert_eq!(app.conversation(first).state, ConversationState::PreOpening);

    let before = app.snapshot();
    for action in ["approve", "reject"] {
        let path = format!("/api/v1/conversations/{first}/{action}");
        app.post_empty(&path, Some(&ana)).await.err(403, "forbidden");
        let res = app.post_empty(&path, Some(&sam)).await;
        res.err(404, "not_found");
        assert!(!res.text.contains("first@example.com") && !res.text.contains("Please approve"), "{}", res.text);
        app.post_empty(&format!("/api/v1/conversations/not-an-id/{action}"), Some(&sofia)).await.err(400, "invalid_id");
        app.post_empty(&format!("/api/v1/conversations/{}/{action}", ConversationId::new()), Some(&sofia))
            .await
            .err(404, "not_found");
    }
    app.unchanged(&before, "refused approvals");

    let res = app.post_empty(&format!("/api/v1/conversations/{first}/approve"), Some(&sofia)).await;
    let b = res.ok(200);
    assert_eq!(b["state"], "queued");
    assert_eq!(b["id"], first.to_string());
    assert_eq!(app.conversation(first).state, ConversationState::Queued);
    // Not held any more: both actions are a conflict that changes nothing.
    let before = app.snapshot();
    app.post_empty(&format!("/api/v1/conversations/{first}/approve"), Some(&sofia)).await.err(409, "invalid_state");
    app.post_empty(&format!("/api/v1/conversations/{first}/reject"), Some(&sofia)).await.err(409, "invalid_state");
    app.unchanged(&before, "approving a conversation that is not held");

    let res = app.post_empty(&format!("/api/v1/conversations/{second}/reject"), Some(&admin)).await;
    assert_eq!(res.ok(200)["state"], "rejected");
    assert!(res.body["ended_at"].is_string());
    assert_eq!(app.conversation(second).state, ConversationState::Rejected);
    let before = app.snapshot();
    let again = app.post_empty(&format!("/api/v1/conversations/{second}/approve"), Some(&sofia)).await;
    assert!((400..500).contains(&again.status), "{}", again.text);
    app.unchanged(&before, "approving a rejected email");
}
