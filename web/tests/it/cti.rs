//! Voice through CTI events (R13): a call rung at an agent's extension becomes a voice conversation
//! assigned to that agent, once per call id; its end concludes it.

use awc::http::Method;
use chrono::Utc;
use schema::models::{Conversation, Service};
use schema::{Channel, ConversationState};
use serde_json::json;

use crate::api_support::TestApp;

async fn call(app: &TestApp, token: Option<&str>, body: serde_json::Value) -> crate::api_support::Res {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    app.raw(Method::POST, "/api/v1/cti/events", &headers, body.to_string().as_bytes()).await
}

#[actix_rt::test]
async fn a_call_at_an_extension_is_a_voice_conversation_of_that_agent_until_it_ends() {
    let (app, ana) = TestApp::start(|conn| {
        let now = Utc::now();
        let mut s = Service::with_defaults("Central", Channel::Voice, now);
        s.provider = json!({"cti_token": "cti-secret"});
        let s = s.insert(conn).unwrap();
        crate::api_support::agent_in(conn, "ana", &[s.id], Some("2001"))
    })
    .await;
    let offered =
        json!({"event": "call_offered", "call_id": "1700000000.42", "extension": "2001", "caller": "+5511912345678"});
    let before = app.snapshot();
    call(&app, None, offered.clone()).await.err(401, "missing_cti_token");
    call(&app, Some("wrong"), offered.clone()).await.err(401, "invalid_cti_token");
    // Ana is not logged in: the phone system is told so.
    call(&app, Some("cti-secret"), offered.clone()).await.err(409, "not_available");
    call(&app, Some("cti-secret"), json!({"event": "call_offered", "call_id": "x", "extension": "9999"}))
        .await
        .err(404, "not_found");
    call(&app, Some("cti-secret"), json!({"event": "ringing", "call_id": "x"})).await.err(400, "invalid_event");
    call(&app, Some("cti-secret"), json!({"event": "call_ended", "call_id": "nope"})).await.err(404, "not_found");
    app.unchanged(&before, "refused CTI events");

    app.engine.set_presence(ana, engine::PresenceRequest::Available).await.unwrap();
    let res = call(&app, Some("cti-secret"), offered.clone()).await;
    let id: schema::ConversationId = res.ok(201)["conversation_id"].as_str().unwrap().parse().unwrap();
    let c = app.conversation(id);
    assert_eq!((c.channel, c.state, c.current_agent_id), (Channel::Voice, ConversationState::InService, Some(ana)));
    assert_eq!(c.customer_address, "+5511912345678");
    // The same call answered: the same conversation, nothing new.
    let again = call(
        &app,
        Some("cti-secret"),
        json!({"event": "call_answered", "call_id": "1700000000.42", "extension": "2001"}),
    )
    .await;
    assert_eq!(again.ok(200)["conversation_id"], id.to_string());
    // Voice capacity is 1 (R4): a second call at once is refused.
    call(
        &app,
        Some("cti-secret"),
        json!({"event": "call_offered", "call_id": "2", "extension": "2001", "caller": "+551100"}),
    )
    .await
    .err(409, "at_capacity");
    call(&app, Some("cti-secret"), json!({"event": "call_ended", "call_id": "1700000000.42"})).await.ok(200);
    let ended = Conversation::find(&mut app.conn(), id).unwrap();
    assert_eq!((ended.state, ended.concluded_by_id), (ConversationState::Concluded, Some(ana)));
}
