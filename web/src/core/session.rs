//! Sign-in (D1, N3): argon2id passwords, revocable server-side sessions (a cookie for the
//! browser, a bearer token for API clients), a per-login throttle answering 429 after repeated
//! failures, and password hashing off the request threads, bounded so a login storm can neither
//! stall routing nor exhaust memory (each argon2id hash holds 19 MiB while it runs).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, web};
use chrono::Utc;
use schema::models::{Agent, Session};
use schema::{AgentId, Role, ServiceId, SessionId, store};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::core::error::{ApiError, Code};
use crate::core::state::AppState;

/// The session cookie of the desk.
pub const SESSION_COOKIE: &str = "omniroute_session";
/// How long a session lives.
pub const SESSION_TTL: chrono::Duration = chrono::Duration::hours(12);

/// The limits of sign-in (`Config::sign_in`, env `OMNIROUTE_SIGNIN_*`, `OMNIROUTE_HASH_*`,
/// `OMNIROUTE_CLIENT_ADDRESS_HEADER`; docs/api.md).
#[derive(Debug, Clone)]
pub struct SignInLimits {
    /// Failures per login in [`Self::login_window`] before it answers 429.
    pub login_failures: usize,
    pub login_window: Duration,
    /// Failures per client address (IPv6: per /64) in [`Self::address_window`] before it answers
    /// 429, whatever the login: a spray of random logins is stopped before it costs hashes.
    pub address_failures: usize,
    pub address_window: Duration,
    /// Sign-ins of one address being checked at once; more answer 429 at once, so one address
    /// never has more than this many hashes ahead of anyone else's in the queue.
    pub address_concurrency: usize,
    /// Hashing threads (each holds 19 MiB).
    pub hash_threads: usize,
    /// Hashes waiting for a thread; beyond it a sign-in answers 503 `busy` at once.
    pub hash_queue: usize,
    /// A header naming the client's address, set by a reverse proxy in front (`X-Forwarded-For`:
    /// its rightmost entry, the one that proxy added). Unset, the peer's address is used: never
    /// believe such a header when clients can reach the server directly.
    pub client_address_header: Option<String>,
}

impl Default for SignInLimits {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Self {
            login_failures: 5,
            login_window: Duration::from_secs(15 * 60),
            address_failures: 50,
            address_window: Duration::from_secs(5 * 60),
            address_concurrency: 4,
            hash_threads: cpus,
            hash_queue: 16 * cpus,
            client_address_header: None,
        }
    }
}

/// Most keys a throttle remembers: past it, keys with no recent failure are dropped, then all
/// (memory stays bounded under a spray of random logins or addresses; they re-accumulate).
const THROTTLE_MAX_KEYS: usize = 100_000;

/// Failed sign-ins per key (a login, a client address) in a sliding window, and the sign-ins of
/// that key being checked right now. Those in flight count as failures-to-be: two hundred
/// concurrent guesses cannot all pass the check before the first failure is recorded.
pub struct LoginThrottle {
    attempts: Mutex<HashMap<String, Attempts>>,
    max_failures: usize,
    window: Duration,
    max_in_flight: usize,
}

#[derive(Default)]
struct Attempts {
    failures: VecDeque<Instant>,
    /// Written by [`LoginThrottle::begin`] and by the [`Attempt`] guard's drop.
    in_flight: usize,
}

impl LoginThrottle {
    /// Allows `max_failures` failures per key within `window`, then answers 429 until the
    /// oldest failure leaves the window.
    pub fn new(max_failures: usize, window: Duration) -> Self {
        Self { attempts: Mutex::new(HashMap::new()), max_failures, window, max_in_flight: usize::MAX }
    }

    /// At most `n` sign-ins of one key checked at once.
    pub fn with_max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// The key of a login: its case and surrounding spaces do not make another login.
    pub fn login_key(login: &str) -> String {
        login.trim().to_lowercase()
    }

    /// Starts a sign-in of `key`, or `Err(retry_after)` when the key is locked out or has too
    /// many sign-ins in flight.
    pub fn begin(&self, key: String) -> Result<Attempt<'_>, Duration> {
        let mut map = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if map.len() >= THROTTLE_MAX_KEYS && !map.contains_key(&key) {
            self.prune(&mut map, now);
        }
        let entry = map.entry(key.clone()).or_default();
        while entry.failures.front().is_some_and(|t| now.duration_since(*t) > self.window) {
            entry.failures.pop_front();
        }
        if entry.failures.len() >= self.max_failures {
            let oldest = entry.failures.front().copied().unwrap_or(now);
            return Err(self.window.saturating_sub(now.duration_since(oldest)));
        }
        if entry.in_flight >= self.max_in_flight || entry.failures.len() + entry.in_flight >= self.max_failures {
            // Decided within one hash or so.
            return Err(Duration::from_secs(1));
        }
        entry.in_flight += 1;
        Ok(Attempt { throttle: self, key: Some(key) })
    }

    fn prune(&self, map: &mut HashMap<String, Attempts>, now: Instant) {
        map.retain(|_, a| a.in_flight > 0 || a.failures.back().is_some_and(|t| now.duration_since(*t) <= self.window));
        if map.len() >= THROTTLE_MAX_KEYS {
            map.retain(|_, a| a.in_flight > 0);
        }
    }

    fn end(&self, key: &str, failed: bool, clear: bool) {
        let mut map = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = map.get_mut(key) else { return };
        entry.in_flight = entry.in_flight.saturating_sub(1);
        if failed {
            entry.failures.push_back(Instant::now());
        }
        if clear {
            entry.failures.clear();
        }
        if entry.in_flight == 0 && entry.failures.is_empty() {
            map.remove(key);
        }
    }
}

/// One sign-in being checked: ends as a failure, a success, or (dropped: refused as busy, or the
/// client went away) neither.
#[must_use]
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    key: Option<String>,
}

impl Attempt<'_> {
    /// Records a failure.
    pub fn failed(mut self) {
        if let Some(key) = self.key.take() {
            self.throttle.end(&key, true, false);
        }
    }

    /// A success clears the key's failures.
    pub fn succeeded(mut self) {
        if let Some(key) = self.key.take() {
            self.throttle.end(&key, false, true);
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.throttle.end(&key, false, false);
        }
    }
}

/// The address a sign-in is throttled by: the peer's, or the configured proxy header's rightmost
/// entry. An IPv6 address counts as its /64, which one host usually owns whole.
pub fn client_address(req: &HttpRequest, header_name: Option<&str>) -> String {
    let from_header = header_name.and_then(|name| {
        let value = req.headers().get_all(name).filter_map(|v| v.to_str().ok()).last()?;
        value.rsplit(',').next().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
    });
    let raw = from_header.or_else(|| req.peer_addr().map(|a| a.ip().to_string())).unwrap_or_default();
    match raw.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Ok(std::net::IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(|v4| v4.to_string()).unwrap_or(raw),
        Ok(v4) => v4.to_string(),
        // Not an address (a proxy's obfuscated identifier): throttled as given, bounded in length.
        Err(_) => raw.chars().take(64).collect(),
    }
}

/// Password hashing on threads of its own: `n` threads, each keeping its argon2id memory (19 MiB)
/// between hashes, so at most `n` hashes run at once and hashing holds `n` × 19 MiB however many
/// sign-ins come (hashing on the blocking pool, one fresh allocation per hash, left the allocator
/// holding about 1.3 GB after 1,000 sign-ins). At most `queue` more wait; beyond that a
/// caller is refused at once rather than waiting behind a spray.
pub struct HashingPool(crate::core::workers::WorkerPool);

/// Refused: every hashing thread is busy and the queue is full.
#[derive(Debug)]
pub struct HashingBusy;

impl From<HashingBusy> for ApiError {
    fn from(_: HashingBusy) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, Code::Busy, "password checks are busy; retry in a second")
    }
}

impl HashingPool {
    /// A pool of `n` hashing threads (at least one) and a queue of `queue` waiting hashes. The
    /// threads end when the pool is dropped.
    pub fn new(n: usize, queue: usize) -> Self {
        Self(crate::core::workers::WorkerPool::new(
            "argon2",
            n,
            queue,
            crate::core::password::keep_memory_on_this_thread,
        ))
    }

    /// Runs `f` (a hash or a verification) on a hashing thread once one is free; 503 `busy` at
    /// once when the queue is full.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
        match self.0.run(1, f).await {
            Ok(done) => Ok(done),
            Err(crate::core::workers::Refused::Busy) => Err(HashingBusy.into()),
            Err(crate::core::workers::Refused::Crashed) => {
                Err(ApiError::unavailable("password hashing is not available"))
            }
        }
    }
}

/// The SHA-256 of a session token: what the database keeps.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Who is signed in.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AgentInfo {
    #[schema(value_type = String)]
    pub id: AgentId,
    pub login: String,
    pub name: String,
    #[schema(value_type = String, example = "agent")]
    pub role: Role,
}

impl From<&Agent> for AgentInfo {
    fn from(a: &Agent) -> Self {
        Self { id: a.id, login: a.login.clone(), name: a.name.clone(), role: a.role }
    }
}

/// The token of a request: `Authorization: Bearer …` first, then the session cookie.
pub fn token_of(req: &HttpRequest) -> Option<String> {
    if let Some(value) = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
        && let Some(token) = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer "))
    {
        let token = token.trim();
        return (!token.is_empty()).then(|| token.to_owned());
    }
    req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned()).filter(|v| !v.is_empty())
}

/// The signed-in person of a request, with the services they belong to. Extracting it answers
/// 401 when there is no live session.
#[derive(Debug, Clone)]
pub struct CurrentAgent {
    pub agent: Agent,
    pub session: SessionId,
    pub services: Vec<ServiceId>,
    /// The [`SessionCache`] generation this was read at: a socket opened with it is registered
    /// only if no session or agent changed since (see [`SessionCache::socket_opened`]).
    pub checked_at: u64,
}

impl CurrentAgent {
    /// 403 unless the role is one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.agent.role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the role {}",
                roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(" or ")
            )))
        }
    }

    /// Whether this person may see a service's conversations (N3): admins all; others their own.
    pub fn sees_service(&self, service: ServiceId) -> bool {
        self.agent.role == Role::Admin || self.services.contains(&service)
    }
}

/// Whether the request's credential is the session cookie (a browser sends it by itself, to any
/// page's request) rather than a bearer token (which a script must have been given).
fn authenticated_by_cookie(req: &HttpRequest) -> bool {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .is_some_and(|t| !t.trim().is_empty());
    !bearer && req.cookie(SESSION_COOKIE).is_some_and(|c| !c.value().is_empty())
}

/// Where a write comes from: its `Origin`, else the origin of its `Referer`; `None` when it
/// sends neither (not a browser, or an old one: browsers send `Origin` on every cross-origin
/// POST, PUT, PATCH and DELETE, so its absence is no forgery).
fn origin_of(req: &HttpRequest) -> Option<String> {
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        return Some(origin.to_str().unwrap_or("null").trim().trim_end_matches('/').to_owned());
    }
    let referer = req.headers().get(header::REFERER)?.to_str().unwrap_or("null");
    Some(url::Url::parse(referer).map(|u| u.origin().ascii_serialization()).unwrap_or_else(|_| "null".into()))
}

/// Whether `origin` is this server as the request addressed it (`Host`), whatever the scheme (a
/// TLS-terminating proxy in front changes it), or one of `OMNIROUTE_ALLOWED_ORIGINS`.
fn origin_is_ours(req: &HttpRequest, origin: &str, allowed: &[String]) -> bool {
    if allowed.iter().any(|a| a == origin) {
        return true;
    }
    let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned);
    let host = host.or_else(|| req.uri().authority().map(|a| a.to_string()));
    let (Some(host), Ok(origin)) = (host, url::Url::parse(origin)) else { return false };
    // Parsed as http: an explicit :80 reads as no port, as an http origin's default does.
    let Ok(host) = url::Url::parse(&format!("http://{host}")) else { return false };
    if !matches!(origin.scheme(), "http" | "https") || origin.host_str() != host.host_str() {
        return false;
    }
    origin.port() == host.port() || (origin.port().is_none() && origin.scheme() == "https" && host.port() == Some(443))
}

/// CSRF defence: a write (POST, PUT, PATCH, DELETE) authenticated by the session cookie must come
/// from a page of this server or an allowed origin. A page elsewhere can make the browser send
/// the cookie (SameSite=Strict aside: older browsers, sibling subdomains) but cannot set an
/// `Authorization` header, so bearer requests are not checked; nor are writes with neither
/// `Origin` nor `Referer` (curl, older clients; browsers send one).
fn check_cross_origin(req: &HttpRequest, allowed: &[String]) -> Result<(), ApiError> {
    if req.method().is_safe() || !authenticated_by_cookie(req) {
        return Ok(());
    }
    match origin_of(req) {
        Some(origin) if !origin_is_ours(req, &origin, allowed) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            Code::CrossOrigin,
            "a write with the session cookie must come from the desk's own origin",
        )),
        _ => Ok(()),
    }
}

/// Looks up the live session of a request (401 when there is none; 403 `cross_origin` for a
/// cookie-authenticated write from another origin).
async fn authenticate(req: &HttpRequest) -> Result<CurrentAgent, ApiError> {
    let token = token_of(req).ok_or_else(ApiError::unauthenticated)?;
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal(&"application state missing"))?;
    check_cross_origin(req, &state.allowed_origins)?;
    let hash = token_hash(&token);
    if let Some(me) = state.sessions.get(&hash) {
        return Ok(me);
    }
    let generation = state.sessions.generation();
    let key = hash.clone();
    let pool = state.pool.clone();
    let found = web::block(move || -> Result<Option<(Session, Agent, Vec<ServiceId>)>, schema::StoreError> {
        let mut conn = pool.get()?;
        let Some((session, agent)) = store::live_session(&mut conn, &hash, Utc::now())? else {
            return Ok(None);
        };
        let services = store::services_of_agent(&mut conn, agent.id)?;
        Ok(Some((session, agent, services)))
    })
    .await??;
    let (session, agent, services) = found.ok_or_else(ApiError::unauthenticated)?;
    let me = CurrentAgent { agent, session: session.id, services, checked_at: generation };
    state.sessions.remember(key, &me, session.expires_at, generation);
    Ok(me)
}

/// How long a checked session is trusted without reading it again: as long as the services'
/// copies (`directory`), so a change made outside this process is seen by both within one bound.
const SESSION_TRUSTED_FOR: Duration = crate::core::directory::KEPT_FOR;
/// Most sessions kept; past it the copies are dropped and read again.
const SESSION_CACHE_MAX: usize = 100_000;

/// Sessions checked in the last [`SESSION_TRUSTED_FOR`], so that a busy desk's requests do not
/// each read the session and the agent's services. Every change this process makes to sessions
/// or agents (sign-out, an admin's change of an agent) drops the copies at once; a change made
/// by anything else is seen within ten seconds.
#[derive(Default)]
pub struct SessionCache {
    known: Mutex<KnownSessions>,
}

#[derive(Default)]
struct KnownSessions {
    by_hash: HashMap<Vec<u8>, (CurrentAgent, chrono::DateTime<Utc>, Instant)>,
    /// Counts [`SessionCache::forget`]s: a session read before a change is not kept after it.
    generation: u64,
    /// The open WebSockets (desk, monitor), closed when their session is revoked. Written by the
    /// sockets as they start and stop.
    sockets: HashMap<u64, OpenSocket>,
    next_socket: u64,
}

struct OpenSocket {
    session: SessionId,
    agent: AgentId,
    socket: actix::Recipient<SessionRevoked>,
}

/// A socket's session was revoked (sign-out, deactivation, password change): it closes at once
/// with [`REVOKED_CLOSE_CODE`].
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct SessionRevoked;

/// The WebSocket close code of a revoked session (reason `session_revoked`): the desk goes to the
/// sign-in page instead of reconnecting. Private-use range; the desk itself closes with 4000/4001.
pub const REVOKED_CLOSE_CODE: u16 = 4401;

impl SessionCache {
    fn get(&self, hash: &[u8]) -> Option<CurrentAgent> {
        let known = self.known.lock().ok()?;
        let (me, expires_at, checked) = known.by_hash.get(hash)?;
        (checked.elapsed() < SESSION_TRUSTED_FOR && *expires_at > Utc::now()).then(|| me.clone())
    }

    fn generation(&self) -> u64 {
        self.known.lock().map(|k| k.generation).unwrap_or_default()
    }

    fn remember(&self, hash: Vec<u8>, me: &CurrentAgent, expires_at: chrono::DateTime<Utc>, generation: u64) {
        let Ok(mut known) = self.known.lock() else { return };
        if known.generation != generation {
            return;
        }
        if known.by_hash.len() >= SESSION_CACHE_MAX {
            known.by_hash.retain(|_, (_, _, checked)| checked.elapsed() < SESSION_TRUSTED_FOR);
        }
        known.by_hash.insert(hash, (me.clone(), expires_at, Instant::now()));
    }

    /// Drops every copy: call after a session or an agent changed.
    pub fn forget(&self) {
        if let Ok(mut known) = self.known.lock() {
            known.generation += 1;
            known.by_hash.clear();
        }
    }

    /// After a session was revoked in the database: drops every copy (the next request with it
    /// is a 401) and closes its open sockets.
    pub fn revoked_session(&self, session: SessionId) {
        self.revoke(|s| s.session == session);
    }

    /// After every session of a person was revoked (deactivation, password change): drops every
    /// copy and closes all their sockets.
    pub fn revoked_agent(&self, agent: AgentId) {
        self.revoke(|s| s.agent == agent);
    }

    fn revoke(&self, which: impl Fn(&OpenSocket) -> bool) {
        let Ok(mut known) = self.known.lock() else { return };
        known.generation += 1;
        known.by_hash.clear();
        known.sockets.retain(|_, s| {
            if which(s) {
                s.socket.do_send(SessionRevoked);
                return false;
            }
            true
        });
    }

    /// Registers an open socket of `me`'s session, to be closed when the session is revoked.
    /// `None` when sessions or agents changed since `me` was checked: it may have been revoked
    /// in between, so the caller closes the socket and the client reconnects and is checked again.
    pub fn socket_opened(&self, me: &CurrentAgent, socket: actix::Recipient<SessionRevoked>) -> Option<u64> {
        let mut known = self.known.lock().ok()?;
        if known.generation != me.checked_at {
            return None;
        }
        known.next_socket += 1;
        let id = known.next_socket;
        known.sockets.insert(id, OpenSocket { session: me.session, agent: me.agent.id, socket });
        Some(id)
    }

    /// A registered socket closed.
    pub fn socket_closed(&self, id: u64) {
        if let Ok(mut known) = self.known.lock() {
            known.sockets.remove(&id);
        }
    }
}

/// Middleware of `/api/v1`: the session is checked before anything reads the request's body,
/// so an unauthenticated caller learns nothing about the route but 401 (sign-in excepted).
pub async fn require_session(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<
    actix_web::dev::ServiceResponse<actix_web::body::EitherBody<impl actix_web::body::MessageBody>>,
    actix_web::Error,
> {
    use actix_web::HttpMessage;
    // Sign-in has no session yet; the phone system authenticates with its own CTI token.
    if req.path() == "/api/v1/auth/login" || req.path() == "/api/v1/cti/events" {
        return next.call(req).await.map(|r| r.map_into_left_body());
    }
    match authenticate(req.request()).await {
        Ok(me) => {
            req.extensions_mut().insert(me);
            next.call(req).await.map(|r| r.map_into_left_body())
        }
        Err(e) => {
            let (req, _) = req.into_parts();
            let res = actix_web::ResponseError::error_response(&e);
            Ok(actix_web::dev::ServiceResponse::new(req, res).map_into_right_body())
        }
    }
}

impl FromRequest for CurrentAgent {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        use actix_web::HttpMessage;
        // Already checked by `require_session` (the API); otherwise (the WebSocket) look it up.
        if let Some(me) = req.extensions().get::<CurrentAgent>().cloned() {
            return Box::pin(async move { Ok(me) });
        }
        let req = req.clone();
        Box::pin(async move { authenticate(&req).await })
    }
}
