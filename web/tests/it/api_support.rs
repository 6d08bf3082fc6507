//! A real API server for the REST tests: its own database, the routing engine, an HTTP server on
//! `127.0.0.1:0`, and an `awc` client. Every call checks the N2 bars that hold for any answer:
//! never a 5xx, and every 4xx is a JSON `{"error", "message"}` and nothing else.

use std::time::Duration;

use actix_web::{App, HttpServer, web as aw};
use awc::http::Method;
use awc::http::header::HeaderMap;
use diesel::RunQueryDsl;
use diesel::sql_types::Text;
use engine::{Clock, Engine, NewConversation};
use schema::models::{Classification, Conversation, PauseReason, Service};
use schema::testing::{TestDb, fixtures};
use schema::{AgentId, Channel, ClassificationId, ConversationId, PauseReasonId, PgConnection, Role, ServiceId, store};
use serde_json::Value;

/// The password of every person a [`World`] creates.
pub const PASSWORD: &str = "secret-pass-1";

/// A running API server over a database of its own.
pub struct TestApp {
    pub db: TestDb,
    pub engine: Engine,
    base: String,
    client: awc::Client,
    /// The server's state (its outbound signal, directory, counters).
    pub state: web::core::state::AppState,
}

/// One HTTP answer.
pub struct Res {
    pub status: u16,
    pub headers: HeaderMap,
    /// The body as JSON (`Null` when empty or not JSON).
    pub body: Value,
    /// The body as text, to look for leaked data.
    pub text: String,
}

impl Res {
    /// Asserts an error answer: this status, this code, a message, and nothing else in the body.
    #[track_caller]
    pub fn err(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "expected {status} {code}, got {}: {}", self.status, self.text);
        assert_eq!(self.body["error"], code, "{}", self.text);
        let keys: Vec<&String> = self.body.as_object().map(|o| o.keys().collect()).unwrap_or_default();
        assert_eq!(keys.len(), 2, "an error body is exactly {{error, message}}: {}", self.text);
    }

    /// Asserts this success status and returns the body.
    #[track_caller]
    pub fn ok(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "expected {status}, got {}: {}", self.status, self.text);
        &self.body
    }

    /// A string field of the body.
    #[track_caller]
    pub fn str(&self, key: &str) -> String {
        self.body[key].as_str().unwrap_or_else(|| panic!("no string {key:?} in {}", self.text)).to_owned()
    }
}

#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    v: String,
}

/// Every table's row count and content digest: equal snapshots mean nothing was written.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot(Vec<(String, String)>);

impl TestApp {
    /// Runs `setup` on the fresh database, then starts the engine (which loads what `setup`
    /// wrote) and the server.
    pub async fn start<T>(setup: impl FnOnce(&mut PgConnection) -> T) -> (TestApp, T) {
        Self::start_with(setup, false, |_| {}).await
    }

    /// [`Self::start`] with the server's state changed by `configure` first (its limits).
    pub async fn start_configured<T>(
        setup: impl FnOnce(&mut PgConnection) -> T,
        configure: impl FnOnce(&mut web::core::state::AppState),
    ) -> (TestApp, T) {
        Self::start_with(setup, false, configure).await
    }

    /// [`Self::start`] with the outbound sender running over the server's own state.
    pub async fn start_sending<T>(setup: impl FnOnce(&mut PgConnection) -> T) -> (TestApp, T) {
        Self::start_with(setup, true, |_| {}).await
    }

    async fn start_with<T>(
        setup: impl FnOnce(&mut PgConnection) -> T,
        sending: bool,
        configure: impl FnOnce(&mut web::core::state::AppState),
    ) -> (TestApp, T) {
        let db = TestDb::new();
        let value = setup(&mut db.conn());
        let engine = Engine::start(db.pool(), Clock::System).await.expect("engine starts");
        let mut state = web::boot::state(db.pool(), engine.clone());
        configure(&mut state);
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            App::new().app_data(aw::Data::new(state.clone())).configure(web::boot::routes::configure)
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .expect("bind");
        let base = format!("http://127.0.0.1:{}", server.addrs()[0].port());
        actix_rt::spawn(server.run());
        let client = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
        let app = TestApp { db, engine, base, client, state: app_state };
        if sending {
            app.start_sender();
        }
        (app, value)
    }

    /// Starts the outbound sender over the server's own state, as `omniroute serve` runs it: an
    /// agent's text reply is handed to it, stored already claimed, and waits for no scan.
    pub fn start_sender(&self) {
        web::channels::outbound::spawn(self.state.clone(), self.state.outbox.clone());
    }

    /// The demo contact center of `omniroute seed-demo` (passwords `<login>-demo1`).
    pub async fn seeded() -> TestApp {
        use schema::Connection;
        Self::start(|c| c.transaction(web::boot::seed::seed).expect("seed")).await.0
    }

    /// [`Self::seeded`] with the server's state changed by `configure` first.
    pub async fn seeded_with(configure: impl FnOnce(&mut web::core::state::AppState)) -> TestApp {
        use schema::Connection;
        Self::start_configured(|c| c.transaction(web::boot::seed::seed).expect("seed"), configure).await.0
    }

    /// Signs in and returns the token.
    pub async fn login_with(&self, login: &str, password: &str) -> String {
        let res =
            self.post("/api/v1/auth/login", None, &serde_json::json!({"login": login, "password": password})).await;
        res.ok(200);
        res.str("token")
    }

    /// Signs in a seeded person with their demo password.
    pub async fn demo_login(&self, login: &str) -> String {
        self.login_with(login, &web::boot::seed::demo_password(login)).await
    }

    /// Signs in a [`World`] person.
    pub async fn login(&self, login: &str) -> String {
        self.login_with(login, PASSWORD).await
    }

    /// A JSON request (or none when `body` is `None`).
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<&Value>) -> Res {
        let res = self.call_unchecked(method.clone(), path, token, body).await;
        Self::check(&method, path, &res);
        res
    }

    /// [`Self::call`] without the N2 checks, for tests that collect every violation first.
    pub async fn call_unchecked(&self, method: Method, path: &str, token: Option<&str>, body: Option<&Value>) -> Res {
        let mut req = self.client.request(method.clone(), format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = match body {
            Some(b) => req.send_json(b).await,
            None => req.send().await,
        };
        let mut res = res.expect("request");
        let bytes = res.body().limit(32 << 20).await.expect("response body");
        Self::read(res.status().as_u16(), res.headers().clone(), &bytes)
    }

    /// A request with a raw body and headers of the caller's choosing.
    pub async fn raw(&self, method: Method, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Res {
        let res = self.raw_unchecked(method.clone(), path, headers, body).await;
        Self::check(&method, path, &res);
        res
    }

    /// A raw request whose answer may be a 5xx (a 503 while the database is down).
    pub async fn raw_unchecked(&self, method: Method, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Res {
        let mut req = self.client.request(method.clone(), format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.insert_header((*k, *v));
        }
        let mut res = req.send_body(body.to_vec()).await.expect("request");
        let bytes = res.body().limit(32 << 20).await.expect("response body");
        Self::read(res.status().as_u16(), res.headers().clone(), &bytes)
    }

    fn read(status: u16, headers: HeaderMap, bytes: &[u8]) -> Res {
        let text = String::from_utf8_lossy(bytes).into_owned();
        let body = serde_json::from_slice(bytes).unwrap_or(Value::Null);
        Res { status, headers, body, text }
    }

    /// N2 for any answer: never a 5xx; a 4xx is a JSON `{error, message}`.
    #[track_caller]
    fn check(method: &Method, path: &str, res: &Res) {
        let Res { status, body, text, .. } = res;
        let status = *status;
        assert!(status < 500, "N2: {method} {path} answered {status}: {text}");
        if status >= 400 {
            assert!(
                body["error"].as_str().is_some_and(|c| !c.is_empty())
                    && body["message"].as_str().is_some_and(|m| !m.is_empty()),
                "N2: {method} {path} answered {status} without a JSON {{error, message}}: {text:?}"
            );
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Res {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Res {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// A POST without a body.
    pub async fn post_empty(&self, path: &str, token: Option<&str>) -> Res {
        self.call(Method::POST, path, token, None).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: &Value) -> Res {
        self.call(Method::PUT, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: &Value) -> Res {
        self.call(Method::PATCH, path, token, Some(body)).await
    }

    /// The server's `host:port`, for raw TCP clients.
    pub fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// The server's URL of `path` with another scheme (`ws`).
    pub fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}{}{path}", self.base.trim_start_matches("http"))
    }

    /// A connection to the test database.
    pub fn conn(&self) -> PgConnection {
        self.db.conn()
    }

    /// Every table's row count and digest.
    pub fn snapshot(&self) -> Snapshot {
        let mut conn = self.conn();
        let tables: Vec<Row> = diesel::sql_query(
            "SELECT table_name::text AS v FROM information_schema.tables
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE'
               AND table_name NOT LIKE '\\_\\_%' ORDER BY 1",
        )
        .load(&mut conn)
        .expect("list tables");
        assert!(tables.len() > 10, "the snapshot sees the schema");
        Snapshot(
            tables
                .into_iter()
                .map(|t| {
                    let digest: Row = diesel::sql_query(format!(
                        "SELECT count(*)::text || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') AS v
                         FROM \"{}\" t",
                        t.v
                    ))
                    .get_result(&mut conn)
                    .expect("digest a table");
                    (t.v, digest.v)
                })
                .collect(),
        )
    }

    /// Asserts that no table changed since `before`.
    #[track_caller]
    pub fn unchanged(&self, before: &Snapshot, what: &str) {
        let now = self.snapshot();
        let changed: Vec<&str> =
            before.0.iter().zip(&now.0).filter(|(a, b)| a != b).map(|(a, _)| a.0.as_str()).collect();
        assert!(changed.is_empty(), "N2: a refused request ({what}) changed the tables {changed:?}");
    }

    /// The id of a person by login.
    pub fn agent_id(&self, login: &str) -> AgentId {
        store::agent_by_login(&mut self.conn(), login).unwrap().expect("that login exists").id
    }

    /// The (first) service of a channel.
    pub fn service_of(&self, channel: Channel) -> Service {
        store::list_services(&mut self.conn()).unwrap().into_iter().find(|s| s.channel == channel).expect("a service")
    }

    /// A stored conversation.
    pub fn conversation(&self, id: ConversationId) -> Conversation {
        Conversation::find(&mut self.conn(), id).unwrap()
    }

    /// Opens a waiting conversation for a named customer.
    pub async fn open(&self, service: ServiceId, channel: Channel, address: &str, name: &str) -> ConversationId {
        let mut new = NewConversation::new(service, channel, address);
        new.customer_name = Some(name.to_owned());
        self.engine.open_conversation(new).await.expect("open a conversation")
    }
}

/// A small contact center where teams do not overlap (N3): two WhatsApp services A and B and an
/// email service, none distributing automatically, so tests decide who gets what.
pub struct World {
    pub app: TestApp,
    /// WhatsApp, team A: ana, bruno, sofia (supervisor).
    pub wa_a: ServiceId,
    /// WhatsApp, team B: zoe, sam (supervisor).
    pub wa_b: ServiceId,
    /// Email, team A (ana, bruno, sofia).
    pub email_a: ServiceId,
    pub ana: AgentId,
    pub bruno: AgentId,
    pub zoe: AgentId,
    pub sofia: AgentId,
    pub sam: AgentId,
    pub admin: AgentId,
    pub lunch: PauseReasonId,
    pub resolved: ClassificationId,
}

impl World {
    pub async fn start() -> World {
        let (app, w) = TestApp::start(|conn| {
            let now = chrono::Utc::now();
            let mut service = |name: &str, channel| {
                let mut s = Service::with_defaults(name, channel, now);
                s.auto_distribution = false;
                s.insert(conn).unwrap().id
            };
            let (wa_a, wa_b, email_a) = (
                service("WhatsApp A", Channel::Whatsapp),
                service("WhatsApp B", Channel::Whatsapp),
                service("Email A", Channel::Email),
            );
            // One hash for everyone: argon2 is slow on purpose.
            let hash = web::core::password::hash(PASSWORD);
            let mut person = |login: &str, role: Role, services: &[ServiceId]| {
                fixtures::person(login)
                    .name(format!("{login} (name)"))
                    .role(role)
                    .password_hash(hash.clone())
                    .created_at(now)
                    .in_services(services)
                    .insert(conn)
                    .unwrap()
                    .id
            };
            let ana = person("ana", Role::Agent, &[wa_a, email_a]);
            let bruno = person("bruno", Role::Agent, &[wa_a, email_a]);
            let zoe = person("zoe", Role::Agent, &[wa_b]);
            let sofia = person("sofia", Role::Supervisor, &[wa_a, email_a]);
            let sam = person("sam", Role::Supervisor, &[wa_b]);
            let admin = person("admin", Role::Admin, &[]);
            let lunch = PauseReason { id: PauseReasonId::new(), name: "Lunch".into(), active: true, created_at: now }
                .insert(conn)
                .unwrap()
                .id;
            let resolved = Classification {
                id: ClassificationId::new(),
                name: "Resolved".into(),
                service_id: None,
                active: true,
                created_at: now,
            }
            .insert(conn)
            .unwrap()
            .id;
            (wa_a, wa_b, email_a, ana, bruno, zoe, sofia, sam, admin, lunch, resolved)
        })
        .await;
        let (wa_a, wa_b, email_a, ana, bruno, zoe, sofia, sam, admin, lunch, resolved) = w;
        World { app, wa_a, wa_b, email_a, ana, bruno, zoe, sofia, sam, admin, lunch, resolved }
    }

    /// Makes an agent available through the API.
    pub async fn available(&self, token: &str) {
        self.app.put("/api/v1/me/presence", Some(token), &serde_json::json!({"status": "available"})).await.ok(200);
    }

    /// Opens a WhatsApp conversation in a service and lets `token`'s agent pull it.
    pub async fn pulled(&self, token: &str, service: ServiceId, address: &str) -> ConversationId {
        let id = self.app.open(service, Channel::Whatsapp, address, "Pulled Customer").await;
        self.app.post_empty(&format!("/api/v1/conversations/{id}/pull"), Some(token)).await.ok(200);
        id
    }
}

/// An active agent `login` (password [`PASSWORD`]) in `services`, with an optional extension.
pub fn agent_in(conn: &mut PgConnection, login: &str, services: &[ServiceId], extension: Option<&str>) -> AgentId {
    fixtures::person(login)
        .password_hash(web::core::password::hash(PASSWORD))
        .extension(extension)
        .in_services(services)
        .insert(conn)
        .unwrap()
        .id
}
