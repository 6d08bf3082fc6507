//! Voice through Asterisk ARI, against a fake Asterisk: an actix app serving the application's
//! events WebSocket (`/ari/events?app=…&api_key=user:pass`) and recording every REST request
//! exactly (method, path, decoded query, basic auth). Calls queue like conversations, are
//! connected to the agent the engine picks by ringing the agent's extension and bridging, end as
//! abandoned or concluded, and follow transfers out to the phone system.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web as aw};
use actix_web_actors::ws;
use chrono::Utc;
use schema::models::{Conversation, Customer, Service};
use schema::{AgentId, Channel, ConversationId, ConversationState, ServiceId, store};
use serde_json::{Value, json};

use crate::api_support::TestApp;

/// What the fake Asterisk saw and will answer.
#[derive(Clone, Default)]
struct FakeAri {
    /// `METHOD /path?k=v&…` with the query decoded, in arrival order.
    requests: Arc<Mutex<Vec<String>>>,
    /// Every request's `Authorization` header.
    auths: Arc<Mutex<Vec<String>>>,
    /// Statuses to answer the next REST requests with, before the normal answers.
    failures: Arc<Mutex<VecDeque<u16>>>,
    /// The events sockets opened so far (the last is the live one), with their query strings.
    sockets: Arc<Mutex<Vec<Opened>>>,
    /// The channel ids `GET /ari/channels` lists (such listings are not in `requests`).
    alive: Arc<Mutex<Vec<String>>>,
}

/// An events socket the application opened, and its query string.
type Opened = (Addr<EventsSocket>, String);

struct EventsSocket {
    fake: FakeAri,
    query: String,
}

impl Actor for EventsSocket {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.fake.sockets.lock().unwrap().push((ctx.address(), self.query.clone()));
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for EventsSocket {
    fn handle(&mut self, _: Result<ws::Message, ws::ProtocolError>, _: &mut Self::Context) {}
}

/// A frame for the connected application.
#[derive(Message)]
#[rtype(result = "()")]
enum Frame {
    Text(String),
    Binary(Vec<u8>),
    /// Drop the connection (Asterisk restarting, the network gone).
    Drop,
}

impl Handler<Frame> for EventsSocket {
    type Result = ();

    fn handle(&mut self, frame: Frame, ctx: &mut Self::Context) {
        match frame {
            Frame::Text(t) => ctx.text(t),
            Frame::Binary(b) => ctx.binary(b),
            Frame::Drop => ctx.stop(),
        }
    }
}

impl FakeAri {
    async fn start() -> (FakeAri, String) {
        let fake = FakeAri::default();
        let f = fake.clone();
        let server = HttpServer::new(move || {
            let (events, rest) = (f.clone(), f.clone());
            App::new()
                .route(
                    "/ari/events",
                    aw::get().to(move |req: HttpRequest, stream: aw::Payload| {
                        let fake = events.clone();
                        async move {
                            let query = req.query_string().to_owned();
                            ws::start(EventsSocket { fake, query }, &req, stream)
                        }
                    }),
                )
                .default_service(aw::to(move |req: HttpRequest| {
                    let fake = rest.clone();
                    async move { fake.answer(&req) }
                }))
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .unwrap();
        let base = format!("http://127.0.0.1:{}", server.addrs()[0].port());
        actix_rt::spawn(server.run());
        (fake, base)
    }

    fn answer(&self, req: &HttpRequest) -> HttpResponse {
        if (req.method().as_str(), req.path()) == ("GET", "/ari/channels") {
            let alive = self.alive.lock().unwrap().clone();
            return HttpResponse::Ok()
                .json(alive.iter().map(|id| json!({"id": id, "state": "Up"})).collect::<Vec<_>>());
        }
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string()).unwrap();
        let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let line = if query.is_empty() {
            format!("{} {}", req.method(), req.path())
        } else {
            format!("{} {}?{}", req.method(), req.path(), query.join("&"))
        };
        self.requests.lock().unwrap().push(line);
        let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        self.auths.lock().unwrap().push(auth);
        if let Some(status) = self.failures.lock().unwrap().pop_front() {
            return HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                .json(json!({"message": "Internal Server Error"}));
        }
        match (req.method().as_str(), req.path()) {
            ("POST", "/ari/channels") => {
                let id = pairs.iter().find(|(k, _)| k == "channelId").map(|(_, v)| v.clone()).unwrap_or_default();
                HttpResponse::Ok().json(json!({"id": id, "state": "Down", "name": "PJSIP/agent-00000001"}))
            }
            ("POST", "/ari/bridges") => HttpResponse::Ok().json(json!({"id": "b", "bridge_type": "mixing"})),
            _ => HttpResponse::NoContent().finish(),
        }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// Waits until the application has `n` events sockets open in total.
    async fn connected(&self, n: usize) {
        poll(&format!("{n} events connections"), || (self.sockets.lock().unwrap().len() >= n).then_some(())).await;
    }

    fn live(&self) -> Addr<EventsSocket> {
        self.sockets.lock().unwrap().last().expect("a connected application").0.clone()
    }

    fn push(&self, event: Value) {
        self.live().do_send(Frame::Text(event.to_string()));
    }

    /// Waits until there are `want.len()` requests after the first `from`, asserts that they are
    /// exactly `want`, and returns how many have been checked.
    async fn expect_requests(&self, from: usize, want: &[String]) -> usize {
        let seen = poll(&format!("requests {want:?}"), || {
            let all = self.requests();
            (all.len() >= from + want.len()).then(|| all[from..from + want.len()].to_vec())
        })
        .await;
        assert_eq!(seen, want, "the exact ARI requests");
        from + want.len()
    }
}

/// Polls `f` every 20 ms until it gives a value (10 s deadline).
async fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..500 {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

fn stasis_start(channel: &str, number: &str) -> Value {
    json!({"type": "StasisStart", "timestamp": "2026-11-24T10:00:00.000-0300", "application": "omniroute",
           "args": ["inbound"], "asterisk_id": "00:11:22:33:44:55",
           "channel": {"id": channel, "name": "PJSIP/trunk-0000002a", "state": "Ring",
                       "caller": {"name": "", "number": number}, "connected": {"name": "", "number": ""},
                       "accountcode": "", "dialplan": {"context": "from-trunk", "exten": "4000", "priority": 1},
                       "creationtime": "2026-11-24T10:00:00.000-0300", "language": "pt_BR"}})
}

fn agent_answered(leg: &str, conversation: ConversationId) -> Value {
    json!({"type": "StasisStart", "application": "omniroute", "args": ["omniroute-agent", conversation.to_string()],
           "channel": {"id": leg, "name": "PJSIP/2001-00000001", "state": "Up",
                       "caller": {"name": "", "number": "2001"}, "dialplan": {"context": "default", "exten": "s"}}})
}

fn stasis_end(channel: &str) -> Value {
    json!({"type": "StasisEnd", "application": "omniroute",
           "channel": {"id": channel, "name": "PJSIP/trunk-0000002a", "state": "Up", "caller": {"number": ""}}})
}

struct Voice {
    app: TestApp,
    fake: FakeAri,
    service: ServiceId,
    ana: AgentId,
    bruno: AgentId,
}

/// A voice service on the fake Asterisk (offers when `offer_timeout_s` is set), agents ana (2001)
/// and bruno (2002), and the voice side running as `omniroute serve` runs it.
async fn voice(offer_timeout_s: Option<i32>) -> Voice {
    let (fake, base) = FakeAri::start().await;
    let (app, (service, ana, bruno)) = TestApp::start(move |conn| {
        let now = Utc::now();
        let mut s = Service::with_defaults("Central", Channel::Voice, now);
        s.offer_timeout_s = offer_timeout_s;
        s.provider = json!({"cti_token": "cti-secret", "ari_url": base, "ari_username": "omni",
                            "ari_password": "s3cret", "ari_app": "omniroute"});
        let s = s.insert(conn).unwrap();
        let ana = crate::api_support::agent_in(conn, "ana", &[s.id], Some("2001"));
        let bruno = crate::api_support::agent_in(conn, "bruno", &[s.id], Some("2002"));
        (s.id, ana, bruno)
    })
    .await;
    let state = web::boot::state(app.db.pool(), app.engine.clone());
    web::channels::voice::start(state).await;
    fake.connected(1).await;
    Voice { app, fake, service, ana, bruno }
}

impl Voice {
    fn conversation_of(&self, channel: &str) -> Option<Conversation> {
        let m = store::message_by_provider_id(&mut self.app.conn(), self.service, channel).unwrap()?;
        Some(self.app.conversation(m.conversation_id))
    }

    async fn until_state(&self, channel: &str, want: ConversationState) -> Conversation {
        poll(&format!("{channel} {want:?}"), || self.conversation_of(channel).filter(|c| c.state == want)).await
    }

    /// How many conversations the service has had.
    fn conversations(&self) -> usize {
        use diesel::prelude::*;
        use schema::schema::conversations::dsl;
        let n: i64 = dsl::conversations
            .filter(dsl::service_id.eq(self.service))
            .count()
            .get_result(&mut self.app.conn())
            .unwrap();
        n as usize
    }
}

fn originate(ext: &str, conversation: ConversationId, leg: u32, caller: &str, timeout: u32) -> String {
    format!(
        "POST /ari/channels?endpoint=PJSIP/{ext}&app=omniroute&appArgs=omniroute-agent,{conversation}\
         &channelId={conversation}-{leg}&callerId={caller}&timeout={timeout}"
    )
}

#[actix_rt::test]
async fn an_incoming_call_waits_in_the_queue_rings_the_offered_agent_and_is_bridged_when_answered() {
    let v = voice(Some(20)).await;
    // The application connected with its name and credentials.
    assert_eq!(v.fake.sockets.lock().unwrap()[0].1, "app=omniroute&api_key=omni%3As3cret");
    // K2: exactly one customer has the caller's phone.
    let now = Utc::now();
    let customer = Customer {
        id: schema::CustomerId::new(),
        name: "Carla Cliente".into(),
        trade_name: None,
        cpf: None,
        cnpj: None,
        emails: vec![],
        phones: vec!["+5511912345678".into()],
        notes: None,
        portfolio_agent_id: None,
        created_at: now,
        updated_at: now,
    }
    .insert(&mut v.app.conn())
    .unwrap();

    v.fake.push(stasis_start("1700000000.42", "+5511912345678"));
    let queued = v.until_state("1700000000.42", ConversationState::Queued).await;
    assert_eq!((queued.channel, queued.customer_address.as_str()), (Channel::Voice, "+5511912345678"));
    assert_eq!(queued.customer_id, Some(customer.id));
    let mut seen = v.fake.expect_requests(0, &["POST /ari/channels/1700000000.42/ring".into()]).await;

    // Ana becomes available: the engine offers her the call, and her extension rings.
    v.app.engine.set_presence(v.ana, engine::PresenceRequest::Available).await.unwrap();
    let id = queued.id;
    let offered = v.until_state("1700000000.42", ConversationState::Offered).await;
    assert_eq!(offered.id, id);
    let timeout = timeout_of(&v.fake, id).await;
    assert!((1..=20).contains(&timeout), "rings for the offer's time, not {timeout}");
    seen = v.fake.expect_requests(seen, &[originate("2001", id, 1, "+5511912345678", timeout)]).await;

    // She picks up: the offer is hers, the caller is answered, both channels are bridged.
    v.fake.push(agent_answered(&format!("{id}-1"), id));
    let served = v.until_state("1700000000.42", ConversationState::InService).await;
    assert_eq!(served.current_agent_id, Some(v.ana));
    seen = v
        .fake
        .expect_requests(
            seen,
            &[
                "POST /ari/channels/1700000000.42/answer".into(),
                format!("POST /ari/bridges?type=mixing&bridgeId={id}"),
                format!("POST /ari/bridges/{id}/addChannel?channel=1700000000.42,{id}-1"),
            ],
        )
        .await;
    // Voice capacity is 1 (R4): a second call waits although Ana is available.
    v.fake.push(stasis_start("1700000000.43", "+5511900000002"));
    v.until_state("1700000000.43", ConversationState::Queued).await;
    seen = v.fake.expect_requests(seen, &["POST /ari/channels/1700000000.43/ring".into()]).await;

    // The caller hangs up: Ana's leg and the bridge go, the conversation is concluded by her.
    v.fake.push(stasis_end("1700000000.42"));
    let ended = v.until_state("1700000000.42", ConversationState::Concluded).await;
    assert_eq!(ended.concluded_by_id, Some(v.ana));
    // Ana is free again: the waiting call is offered to her at once.
    let id2 = v.conversation_of("1700000000.43").unwrap().id;
    v.fake
        .expect_requests(
            seen,
            &[
                format!("DELETE /ari/channels/{id}-1?reason=normal"),
                format!("DELETE /ari/bridges/{id}"),
                originate("2001", id2, 1, "+5511900000002", timeout_of(&v.fake, id2).await),
            ],
        )
        .await;
    // Every request carried the ARI user's basic auth.
    let auths = v.fake.auths.lock().unwrap().clone();
    assert!(auths.iter().all(|a| a == "Basic b21uaTpzM2NyZXQ="), "{auths:?}");
}

/// The `timeout` the originate for `conversation` was sent with (the offer's remaining time).
async fn timeout_of(fake: &FakeAri, conversation: ConversationId) -> u32 {
    let want = format!("appArgs=omniroute-agent,{conversation}");
    poll("an originate", || {
        fake.requests()
            .iter()
            .find(|r| r.contains(&want))
            .and_then(|r| r.rsplit("timeout=").next())
            .and_then(|t| t.parse().ok())
    })
    .await
}

#[actix_rt::test]
async fn a_caller_who_hangs_up_in_the_queue_is_abandoned_and_no_agent_is_rung() {
    let v = voice(None).await;
    v.fake.push(stasis_start("1700000001.1", "+5511911111111"));
    let queued = v.until_state("1700000001.1", ConversationState::Queued).await;
    v.fake.push(stasis_end("1700000001.1"));
    let gone = v.until_state("1700000001.1", ConversationState::Abandoned).await;
    assert_eq!((gone.id, gone.current_agent_id), (queued.id, None));
    // The ChannelDestroyed that follows changes nothing.
    v.fake.push(json!({"type": "ChannelDestroyed", "application": "omniroute", "cause": 16,
                       "cause_txt": "Normal Clearing", "channel": {"id": "1700000001.1", "state": "Ring"}}));
    // Ana comes: nothing waits, so nothing rings. A later call proves the switchboard went on.
    v.app.engine.set_presence(v.ana, engine::PresenceRequest::Available).await.unwrap();
    v.fake.push(stasis_start("1700000001.2", "+5511922222222"));
    let second = v.until_state("1700000001.2", ConversationState::InService).await;
    v.fake
        .expect_requests(
            0,
            &[
                "POST /ari/channels/1700000001.1/ring".into(),
                "POST /ari/channels/1700000001.2/ring".into(),
                originate("2001", second.id, 1, "+5511922222222", 30),
            ],
        )
        .await;
    assert_eq!(v.app.conversation(queued.id).state, ConversationState::Abandoned);
}

#[actix_rt::test]
async fn a_replayed_stasis_start_is_one_conversation_and_a_second_line_of_the_same_number_is_busy() {
    let v = voice(None).await;
    for _ in 0..3 {
        v.fake.push(stasis_start("1700000002.7", "+5511933333333"));
    }
    v.until_state("1700000002.7", ConversationState::Queued).await;
    // A marker call: once it is queued, the replays were handled.
    v.fake.push(stasis_start("1700000002.8", "+5511944444444"));
    v.until_state("1700000002.8", ConversationState::Queued).await;
    let seen = v
        .fake
        .expect_requests(
            0,
            &["POST /ari/channels/1700000002.7/ring".into(), "POST /ari/channels/1700000002.8/ring".into()],
        )
        .await;
    assert_eq!(v.conversations(), 2);
    // Another channel from a number already waiting here: one conversation per number, so busy.
    v.fake.push(stasis_start("1700000002.9", "+5511933333333"));
    v.fake.expect_requests(seen, &["DELETE /ari/channels/1700000002.9?reason=busy".into()]).await;
    assert_eq!(v.conversations(), 2);
    assert!(v.conversation_of("1700000002.9").is_none());
}

#[actix_rt::test]
async fn transfers_of_a_call_move_it_in_the_phone_system_too() {
    let v = voice(None).await;
    let (ana_token, bruno_token) = (v.app.login("ana").await, v.app.login("bruno").await);
    v.app.put("/api/v1/me/presence", Some(&ana_token), &json!({"status": "available"})).await.ok(200);
    v.fake.push(stasis_start("1700000003.1", "+5511955555555"));
    // Automatic distribution without offers: assigned to Ana at once, her extension rings.
    let call = v.until_state("1700000003.1", ConversationState::InService).await;
    let id = call.id;
    let mut seen = v
        .fake
        .expect_requests(
            0,
            &["POST /ari/channels/1700000003.1/ring".into(), originate("2001", id, 1, "+5511955555555", 30)],
        )
        .await;
    v.fake.push(agent_answered(&format!("{id}-1"), id));
    seen = v
        .fake
        .expect_requests(
            seen,
            &[
                "POST /ari/channels/1700000003.1/answer".into(),
                format!("POST /ari/bridges?type=mixing&bridgeId={id}"),
                format!("POST /ari/bridges/{id}/addChannel?channel=1700000003.1,{id}-1"),
            ],
        )
        .await;

    // To Bruno: Ana's leg hangs up, Bruno's extension rings, and his leg joins the same bridge.
    v.app.put("/api/v1/me/presence", Some(&bruno_token), &json!({"status": "available"})).await.ok(200);
    let path = format!("/api/v1/conversations/{id}/transfer");
    v.app.post(&path, Some(&ana_token), &json!({"agent_id": v.bruno.to_string()})).await.ok(200);
    seen = v
        .fake
        .expect_requests(
            seen,
            &[format!("DELETE /ari/channels/{id}-1?reason=normal"), originate("2002", id, 2, "+5511955555555", 30)],
        )
        .await;
    v.fake.push(agent_answered(&format!("{id}-2"), id));
    seen = v.fake.expect_requests(seen, &[format!("POST /ari/bridges/{id}/addChannel?channel={id}-2")]).await;
    assert_eq!(v.app.conversation(id).current_agent_id, Some(v.bruno));

    // To an external extension: the caller is redirected there and our side ends.
    v.app.post(&path, Some(&bruno_token), &json!({"extension": "5500"})).await.ok(200);
    v.fake
        .expect_requests(
            seen,
            &[
                format!("DELETE /ari/channels/{id}-2?reason=normal"),
                "POST /ari/channels/1700000003.1/redirect?endpoint=PJSIP/5500".into(),
                format!("DELETE /ari/bridges/{id}"),
            ],
        )
        .await;
    let out = v.app.conversation(id);
    assert_eq!((out.state, out.concluded_by_id), (ConversationState::Concluded, Some(v.bruno)));
    // The redirected channel leaving the application is not a hang-up of anything of ours.
    v.fake.push(stasis_end("1700000003.1"));
    let agent = v.app.engine.agent(v.bruno).await.unwrap();
    assert!(agent.conversations.is_empty(), "Bruno is free");
}

#[actix_rt::test]
async fn an_unanswered_agent_leg_gives_the_call_to_the_next_agent() {
    let v = voice(None).await;
    v.app.engine.set_presence(v.ana, engine::PresenceRequest::Available).await.unwrap();
    v.fake.push(stasis_start("1700000004.1", "+5511966666666"));
    let id = v.until_state("1700000004.1", ConversationState::InService).await.id;
    let seen = v
        .fake
        .expect_requests(
            0,
            &["POST /ari/channels/1700000004.1/ring".into(), originate("2001", id, 1, "+5511966666666", 30)],
        )
        .await;
    // Ana's phone does not answer: the call goes back and, Bruno arriving, to him.
    v.fake.push(json!({"type": "Dial", "application": "omniroute", "dialstatus": "NOANSWER",
                       "peer": {"id": format!("{id}-1"), "state": "Down"}}));
    v.until_state("1700000004.1", ConversationState::Queued).await;
    v.app.engine.set_presence(v.bruno, engine::PresenceRequest::Available).await.unwrap();
    v.fake.expect_requests(seen, &[originate("2002", id, 2, "+5511966666666", 30)]).await;
    assert_eq!(v.until_state("1700000004.1", ConversationState::InService).await.current_agent_id, Some(v.bruno));
}

#[actix_rt::test]
async fn the_events_socket_reconnects_and_the_calls_go_on() {
    let v = voice(None).await;
    v.fake.push(stasis_start("1700000005.1", "+5511977777777"));
    v.until_state("1700000005.1", ConversationState::Queued).await;
    v.fake.alive.lock().unwrap().push("1700000005.1".into());
    v.fake.live().do_send(Frame::Drop);
    v.fake.connected(2).await;
    // The call queued before the drop is still known after it.
    v.fake.push(stasis_end("1700000005.1"));
    v.until_state("1700000005.1", ConversationState::Abandoned).await;
    v.fake.push(stasis_start("1700000005.2", "+5511988888888"));
    v.until_state("1700000005.2", ConversationState::Queued).await;
    // A caller who hangs up while the socket is down: seen missing from the channel list on
    // reconnection, the call is abandoned all the same.
    v.fake.alive.lock().unwrap().clear();
    v.fake.live().do_send(Frame::Drop);
    v.fake.connected(3).await;
    v.until_state("1700000005.2", ConversationState::Abandoned).await;
}

#[actix_rt::test]
async fn calls_waiting_when_omniroute_restarts_are_picked_up_again() {
    let (fake, base) = FakeAri::start().await;
    let (app, service) = TestApp::start(move |conn| {
        let mut s = Service::with_defaults("Central", Channel::Voice, Utc::now());
        s.provider = json!({"cti_token": "t", "ari_url": base, "ari_username": "omni", "ari_password": "s3cret"});
        s.insert(conn).unwrap().id
    })
    .await;
    // The first process queued a call, then stopped.
    let inbound = engine::ingest::InboundMessage {
        service,
        channel: Channel::Voice,
        address: "+5511912121212".into(),
        customer_name: None,
        customer_id: None,
        provider_message_id: Some("1700000009.1".into()),
        kind: schema::MessageKind::Call,
        body: None,
        payload: json!({"caller": "+5511912121212", "channel": "1700000009.1"}),
        sent_at: None,
        subject: None,
    };
    app.engine.ingest(inbound, Default::default()).await.unwrap();
    app.engine.stop();
    // The next one starts while the caller still waits in Asterisk.
    fake.alive.lock().unwrap().push("1700000009.1".into());
    let engine = engine::Engine::start(app.db.pool(), engine::Clock::System).await.unwrap();
    web::channels::voice::start(web::boot::state(app.db.pool(), engine.clone())).await;
    fake.connected(1).await;
    fake.push(stasis_end("1700000009.1"));
    let gone = poll("the call abandoned", || {
        let m = store::message_by_provider_id(&mut app.conn(), service, "1700000009.1").unwrap()?;
        Some(app.conversation(m.conversation_id)).filter(|c| c.state == ConversationState::Abandoned)
    })
    .await;
    assert_eq!(gone.customer_address, "+5511912121212");
    engine.stop();
}

#[actix_rt::test]
async fn odd_frames_are_ignored_without_harm() {
    let v = voice(None).await;
    let odd: Vec<Value> = vec![
        json!(null),
        json!(42),
        json!("StasisStart"),
        json!([]),
        json!({}),
        json!({"type": 7}),
        json!({"type": "StasisStart"}),
        json!({"type": "StasisStart", "channel": null}),
        json!({"type": "StasisStart", "channel": {"id": ""}}),
        json!({"type": "StasisStart", "channel": {"id": 12}}),
        json!({"type": "StasisStart", "channel": {"id": "x".repeat(500)}}),
        json!({"type": "StasisStart", "application": "someone-else", "channel": {"id": "9.9"}}),
        json!({"type": "StasisEnd", "channel": {"id": "unknown.1"}}),
        json!({"type": "ChannelDestroyed", "channel": {"id": "unknown.2"}, "cause": "sixteen"}),
        json!({"type": "ChannelStateChange", "channel": {"id": "unknown.3", "state": "Up"}}),
        json!({"type": "ChannelHangupRequest"}),
        json!({"type": "Dial", "dialstatus": "BUSY"}),
        json!({"type": "Dial", "dialstatus": "BUSY", "peer": {"id": "unknown.4"}}),
        json!({"type": "StasisStart", "args": ["omniroute-agent", "not-a-uuid"], "channel": {"id": "stale.1"}}),
        json!({"type": "BridgeCreated", "bridge": {"id": "b"}}),
        json!({"type": "PlaybackFinished", "playback": {}}),
        json!({"type": "ChannelDtmfReceived", "digit": "5", "channel": {"id": "unknown.5"}}),
        json!({"type": "ApplicationReplaced", "application": "omniroute"}),
    ];
    assert!(odd.len() >= 20);
    for frame in &odd {
        v.fake.push(frame.clone());
    }
    let live = v.fake.live();
    live.do_send(Frame::Text("{not json".into()));
    live.do_send(Frame::Text(String::new()));
    live.do_send(Frame::Binary(vec![0, 159, 146, 150]));
    // A real call after them all is served as usual.
    v.fake.push(stasis_start("1700000006.1", "+5511999999999"));
    v.until_state("1700000006.1", ConversationState::Queued).await;
    v.fake
        .expect_requests(
            0,
            &[
                // The stale agent leg of no call of ours is hung up.
                "DELETE /ari/channels/stale.1?reason=normal".into(),
                "POST /ari/channels/1700000006.1/ring".into(),
            ],
        )
        .await;
    assert_eq!(v.conversations(), 1);
    assert_eq!(v.fake.sockets.lock().unwrap().len(), 1, "the socket stayed up");
}

#[actix_rt::test]
async fn ari_server_errors_are_retried_and_never_stop_the_switchboard() {
    let v = voice(None).await;
    // Two 5xx, then success: the ring is sent three times.
    v.fake.failures.lock().unwrap().extend([503, 500]);
    v.fake.push(stasis_start("1700000007.1", "+5511900000071"));
    let mut seen = v.fake.expect_requests(0, &vec!["POST /ari/channels/1700000007.1/ring".to_owned(); 3]).await;
    // Only failures: given up after three attempts, logged; the call still waits in the queue.
    v.fake.failures.lock().unwrap().extend([500, 502, 503]);
    v.fake.push(stasis_start("1700000007.2", "+5511900000072"));
    seen = v.fake.expect_requests(seen, &vec!["POST /ari/channels/1700000007.2/ring".to_owned(); 3]).await;
    v.until_state("1700000007.2", ConversationState::Queued).await;
    // Originating to an agent fails for good: the call goes back to the queue, not lost.
    v.fake.failures.lock().unwrap().extend([500, 500, 500]);
    v.app.engine.set_presence(v.ana, engine::PresenceRequest::Available).await.unwrap();
    let first = v.conversation_of("1700000007.1").unwrap().id;
    v.fake.expect_requests(seen, &vec![originate("2001", first, 1, "+5511900000071", 30); 3]).await;
    // Back in the queue (the third failure is answered before the switchboard puts it back: until
    // then Bruno would be given the other call, the only one waiting).
    v.until_state("1700000007.1", ConversationState::Queued).await;
    // Ana did not get it (the engine does not give it to her again, R7); Bruno does.
    v.app.engine.set_presence(v.bruno, engine::PresenceRequest::Available).await.unwrap();
    let again =
        poll("the call with Bruno", || Some(v.app.conversation(first)).filter(|c| c.current_agent_id == Some(v.bruno)))
            .await;
    assert_eq!(again.state, ConversationState::InService);
}

/// A phone system that speaks CTI only: its command endpoint records what it receives.
#[derive(Clone, Default)]
struct FakePbx {
    /// `(Authorization, body)` of every command.
    commands: Arc<Mutex<Vec<(String, Value)>>>,
    failures: Arc<Mutex<VecDeque<u16>>>,
}

async fn fake_pbx(fake: FakePbx) -> String {
    let f = fake.clone();
    let server = HttpServer::new(move || {
        let f = f.clone();
        App::new().route(
            "/cti/commands",
            aw::post().to(move |req: HttpRequest, body: aw::Json<Value>| {
                let f = f.clone();
                async move {
                    let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
                    f.commands.lock().unwrap().push((auth.to_owned(), body.into_inner()));
                    match f.failures.lock().unwrap().pop_front() {
                        Some(s) => HttpResponse::build(actix_web::http::StatusCode::from_u16(s).unwrap()).finish(),
                        None => HttpResponse::Accepted().finish(),
                    }
                }
            }),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let base = format!("http://127.0.0.1:{}", server.addrs()[0].port());
    actix_rt::spawn(server.run());
    base
}

#[actix_rt::test]
async fn transfers_of_a_cti_call_are_commanded_to_the_phone_system() {
    let pbx = FakePbx::default();
    let url = format!("{}/cti/commands", fake_pbx(pbx.clone()).await);
    let (app, (support, bruno)) = TestApp::start(move |conn| {
        let now = Utc::now();
        let mut s = Service::with_defaults("Central", Channel::Voice, now);
        s.provider = json!({"cti_token": "cti-secret", "cti_command_url": url});
        let central = s.insert(conn).unwrap().id;
        let support = Service::with_defaults("Suporte", Channel::Voice, now).insert(conn).unwrap().id;
        crate::api_support::agent_in(conn, "ana", &[central, support], Some("2001"));
        let bruno = crate::api_support::agent_in(conn, "bruno", &[central], Some("2002"));
        (support, bruno)
    })
    .await;
    web::channels::voice::start(web::boot::state(app.db.pool(), app.engine.clone())).await;
    let (ana_token, bruno_token) = (app.login("ana").await, app.login("bruno").await);
    for t in [&ana_token, &bruno_token] {
        app.put("/api/v1/me/presence", Some(t), &json!({"status": "available"})).await.ok(200);
    }
    let offered = json!({"event": "call_offered", "call_id": "cti-77", "extension": "2001", "caller": "+551130000000"});
    let res = app
        .raw(
            awc::http::Method::POST,
            "/api/v1/cti/events",
            &[("Content-Type", "application/json"), ("Authorization", "Bearer cti-secret")],
            offered.to_string().as_bytes(),
        )
        .await;
    let id = res.ok(201)["conversation_id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/conversations/{id}/transfer");
    let commands = |n: usize| {
        let pbx = pbx.clone();
        async move {
            poll(&format!("{n} commands"), || {
                let c = pbx.commands.lock().unwrap().clone();
                (c.len() >= n).then_some(c)
            })
            .await
        }
    };

    // Ana to Bruno; the phone system answers 503 once, so the command is sent again.
    pbx.failures.lock().unwrap().push_back(503);
    app.post(&path, Some(&ana_token), &json!({"agent_id": bruno.to_string()})).await.ok(200);
    let to_bruno = json!({"command": "transfer", "call_id": "cti-77",
                          "target": {"agent_extension": "2002", "agent_id": bruno.to_string()}});
    let seen = commands(2).await;
    assert_eq!(seen, vec![("Bearer cti-secret".to_owned(), to_bruno.clone()); 2]);

    // Bruno to the Suporte queue, where it goes to Ana (the only member).
    app.post(&path, Some(&bruno_token), &json!({"service_id": support.to_string()})).await.ok(200);
    let to_support = json!({"command": "transfer", "call_id": "cti-77", "target": {"service_id": support.to_string()}});
    assert_eq!(commands(3).await[2].1, to_support);

    // Ana to an external extension: our side ends.
    let served = poll("the call with Ana", || {
        let c = app.conversation(id.parse().unwrap());
        (c.state == ConversationState::InService).then_some(c)
    })
    .await;
    assert_eq!((served.service_id, served.current_agent_id), (support, Some(app.agent_id("ana"))));
    app.post(&path, Some(&ana_token), &json!({"extension": "5500"})).await.ok(200);
    let out = json!({"command": "transfer", "call_id": "cti-77", "target": {"extension": "5500"}});
    assert_eq!(commands(4).await[3].1, out);
    assert_eq!(app.conversation(id.parse().unwrap()).state, ConversationState::Concluded);
}

#[actix_rt::test]
async fn an_agent_calls_the_customer_of_a_chat_and_the_chat_stays_open() {
    let (fake, base) = FakeAri::start().await;
    let (app, (voice, chat_service, customer)) = TestApp::start(move |conn| {
        let now = Utc::now();
        let mut v = Service::with_defaults("Central", Channel::Voice, now);
        v.provider = json!({"cti_token": "t", "ari_url": base, "ari_username": "omni", "ari_password": "s3cret",
                            "ari_dial_endpoint": "PJSIP/{number}@trunk"});
        let voice = v.insert(conn).unwrap().id;
        let mut w = Service::with_defaults("WhatsApp", Channel::Whatsapp, now);
        w.auto_distribution = false;
        let chat_service = w.insert(conn).unwrap().id;
        crate::api_support::agent_in(conn, "ana", &[voice, chat_service], Some("2001"));
        crate::api_support::agent_in(conn, "bruno", &[chat_service, voice], Some("2002"));
        let customer = Customer {
            id: schema::CustomerId::new(),
            name: "Carla Cliente".into(),
            trade_name: None,
            cpf: None,
            cnpj: None,
            emails: vec![],
            phones: vec!["+5511912340000".into(), "+5511912349999".into()],
            notes: None,
            portfolio_agent_id: None,
            created_at: now,
            updated_at: now,
        }
        .insert(conn)
        .unwrap();
        (voice, chat_service, customer.id)
    })
    .await;
    web::channels::voice::start(web::boot::state(app.db.pool(), app.engine.clone())).await;
    fake.connected(1).await;
    let (ana, bruno) = (app.login("ana").await, app.login("bruno").await);
    for t in [&ana, &bruno] {
        app.put("/api/v1/me/presence", Some(t), &json!({"status": "available"})).await.ok(200);
    }
    let open = |address: &str, identified: bool| {
        let mut new = engine::NewConversation::new(chat_service, Channel::Whatsapp, address);
        new.customer_id = identified.then_some(customer);
        let engine = app.engine.clone();
        async move { engine.open_conversation(new).await.unwrap() }
    };
    let chat = open("5511912340000", true).await;
    let anonymous = open("5511900000000", false).await;
    let others = open("5511900000001", true).await;
    let second = open("5511912340001", true).await;
    for (c, t) in [(chat, &ana), (anonymous, &ana), (others, &bruno), (second, &ana)] {
        app.post_empty(&format!("/api/v1/conversations/{c}/pull"), Some(t)).await.ok(200);
    }
    let call = |c: ConversationId, t: &str, body: Value| {
        let (app, t) = (&app, t.to_owned());
        async move { app.post(&format!("/api/v1/conversations/{c}/call"), Some(&t), &body).await }
    };
    let before = app.snapshot();
    call(anonymous, &ana, json!({})).await.err(422, "customer_not_identified");
    call(others, &ana, json!({})).await.err(403, "not_owner");
    call(chat, &ana, json!({"phone": "+5500000000"})).await.err(422, "invalid_phone");
    call(chat, &ana, json!({"service_id": chat_service.to_string()})).await.err(422, "no_phone_system");
    call(chat, &ana, json!({"extra": 1})).await.err(400, "invalid_field");
    let raw = app
        .raw(
            awc::http::Method::POST,
            &format!("/api/v1/conversations/{chat}/call"),
            &[("Authorization", &format!("Bearer {ana}")), ("Content-Type", "application/json")],
            b"{oops",
        )
        .await;
    raw.err(400, "invalid_json");
    app.unchanged(&before, "refused calls");

    let res = call(chat, &ana, json!({"phone": "+5511912349999"})).await;
    let body = res.ok(201);
    let id: ConversationId = body["id"].as_str().unwrap().parse().unwrap();
    let v = app.conversation(id);
    assert_eq!((v.service_id, v.channel, v.direction), (voice, Channel::Voice, schema::Direction::Outbound));
    assert_eq!(
        (v.state, v.current_agent_id, v.customer_id),
        (ConversationState::InService, Some(app.agent_id("ana")), Some(customer))
    );
    // Ana's phone rings first, showing the customer's number; then the customer's, through the trunk.
    let mut seen = fake
        .expect_requests(
            0,
            &[format!(
                "POST /ari/channels?endpoint=PJSIP/2001&app=omniroute&appArgs=omniroute-agent,{id}\
             &channelId={id}-1&callerId=+5511912349999&timeout=30"
            )],
        )
        .await;
    fake.push(agent_answered(&format!("{id}-1"), id));
    seen = fake
        .expect_requests(
            seen,
            &[format!(
                "POST /ari/channels?endpoint=PJSIP/+5511912349999@trunk&app=omniroute\
             &appArgs=omniroute-customer,{id}&channelId={id}-customer&timeout=30"
            )],
        )
        .await;
    fake.push(json!({"type": "StasisStart", "application": "omniroute", "args": ["omniroute-customer", id.to_string()],
                     "channel": {"id": format!("{id}-customer"), "state": "Up", "caller": {"number": "+5511912349999"}}}));
    seen = fake
        .expect_requests(
            seen,
            &[
                format!("POST /ari/bridges?type=mixing&bridgeId={id}"),
                format!("POST /ari/bridges/{id}/addChannel?channel={id}-customer,{id}-1"),
            ],
        )
        .await;
    // The chat stays open with Ana; voice capacity is 1, so a second call is refused meanwhile.
    assert_eq!(app.conversation(chat).state, ConversationState::InService);
    let before = app.snapshot();
    call(second, &ana, json!({"phone": "+5511912340000"})).await.err(409, "at_capacity");
    app.unchanged(&before, "a call beyond voice capacity");
    // Ana passes the call to Bruno: her leg hangs up, his joins the customer's bridge.
    let path = format!("/api/v1/conversations/{id}/transfer");
    app.post(&path, Some(&ana), &json!({"agent_id": app.agent_id("bruno").to_string()})).await.ok(200);
    seen = fake
        .expect_requests(
            seen,
            &[
                format!("DELETE /ari/channels/{id}-1?reason=normal"),
                format!(
                    "POST /ari/channels?endpoint=PJSIP/2002&app=omniroute&appArgs=omniroute-agent,{id}\
                 &channelId={id}-2&callerId=+5511912349999&timeout=30"
                ),
            ],
        )
        .await;
    fake.push(agent_answered(&format!("{id}-2"), id));
    seen = fake.expect_requests(seen, &[format!("POST /ari/bridges/{id}/addChannel?channel={id}-2")]).await;
    // The customer hangs up: the call is concluded by Bruno, Ana's chat goes on.
    fake.push(stasis_end(&format!("{id}-customer")));
    let ended =
        poll("the call concluded", || Some(app.conversation(id)).filter(|c| c.state == ConversationState::Concluded))
            .await;
    assert_eq!(ended.concluded_by_id, Some(app.agent_id("bruno")));
    fake.expect_requests(
        seen,
        &[format!("DELETE /ari/channels/{id}-2?reason=normal"), format!("DELETE /ari/bridges/{id}")],
    )
    .await;
    assert_eq!(app.conversation(chat).state, ConversationState::InService);
}

#[actix_rt::test]
async fn voice_provider_settings_are_checked_and_the_ari_password_is_never_shown() {
    let w = crate::api_support::World::start().await;
    let admin = w.app.login("admin").await;
    let created = std::cell::Cell::new(0);
    let create = |provider: Value| {
        let (app, admin) = (&w.app, admin.clone());
        created.set(created.get() + 1);
        let name = format!("Voz {}", created.get());
        async move {
            let body = json!({"name": name, "channel": "voice", "auto_distribution": true, "provider": provider});
            app.post("/api/v1/admin/services", Some(&admin), &body).await
        }
    };
    let before = w.app.snapshot();
    create(json!({"cti_token": "t", "ari_url": "pbx:8088"})).await.err(400, "invalid_provider");
    create(json!({"cti_token": "t", "cti_command_url": "ftp://pbx/cmd"})).await.err(400, "invalid_provider");
    create(json!({"cti_token": "t", "ari_url": "http://pbx:8088", "ari_dial_endpoint": "PJSIP/trunk"}))
        .await
        .err(400, "invalid_provider");
    w.app.unchanged(&before, "bad voice settings");
    let res = create(json!({"cti_token": "t", "ari_url": "http://pbx:8088", "ari_username": "omni",
                            "ari_password": "s3cret", "ari_dial_endpoint": "PJSIP/{number}@trunk"}))
    .await;
    let provider = &res.ok(201)["provider"];
    assert_eq!((provider["ari_password"].as_str(), provider["cti_token"].as_str()), (Some("***"), Some("***")));
    assert_eq!(provider["ari_url"], "http://pbx:8088");
    assert!(!res.text.contains("s3cret"));
}
