//! What every request handler can reach.

use std::sync::Arc;
use std::time::Duration;

use engine::Engine;
use schema::PgPool;

use crate::core::session::{HashingPool, LoginThrottle, SignInLimits};

/// Shared application state (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub pool: PgPool,
    /// How long a health check waits for a connection before calling the database down.
    pub health_timeout: Duration,
    /// The routing engine.
    pub engine: Engine,
    /// Failed sign-ins per login (429 after too many).
    pub login_throttle: Arc<LoginThrottle>,
    /// Bounded password hashing off the request threads.
    pub hashing: Arc<HashingPool>,
    /// Origins besides the server's own that may open a desk WebSocket.
    pub allowed_origins: Arc<Vec<String>>,
    /// The contact center's time zone ("today").
    pub time_zone: chrono_tz::Tz,
    /// Wakes the outbound sender.
    pub outbox: crate::core::outbox::OutboxSignal,
    /// How each channel's messages go out (registered by `boot::state`).
    pub senders: crate::core::outbox::Senders,
    /// The services, kept in memory for the webhooks.
    pub services: Arc<crate::core::directory::ServiceDirectory>,
    /// Sessions recently checked.
    pub sessions: Arc<crate::core::session::SessionCache>,
    /// The web layer's monitoring counters (S5, `GET /metrics`).
    pub counters: Arc<crate::core::counters::WebCounters>,
    /// When set, `GET /metrics` takes `Authorization: Bearer <this>` (`OMNIROUTE_METRICS_TOKEN`).
    pub metrics_token: Option<Arc<str>>,
    /// Bounds on what callers who have not signed in can make the server hold.
    pub limits: Arc<crate::core::limits::Limits>,
    /// Failed sign-ins per client address (429 after too many, whatever the login).
    pub address_throttle: Arc<LoginThrottle>,
    /// The header naming the client's address behind a reverse proxy (`None`: the peer's).
    pub client_address_header: Option<Arc<str>>,
}

impl AppState {
    /// State over a pool and a running engine, with the default sign-in limits
    /// ([`SignInLimits::default`]) and no senders: `boot::state` registers them.
    pub fn new(pool: PgPool, engine: Engine) -> Self {
        let limits = SignInLimits::default();
        Self {
            pool,
            health_timeout: Duration::from_secs(1),
            engine: engine.clone(),
            login_throttle: Arc::new(LoginThrottle::new(limits.login_failures, limits.login_window)),
            hashing: Arc::new(HashingPool::new(limits.hash_threads, limits.hash_queue)),
            allowed_origins: Arc::new(Vec::new()),
            time_zone: chrono_tz::America::Sao_Paulo,
            outbox: crate::core::outbox::OutboxSignal::default(),
            senders: crate::core::outbox::Senders::default(),
            services: Arc::default(),
            sessions: Arc::default(),
            counters: Arc::default(),
            metrics_token: None,
            limits: Arc::default(),
            address_throttle: Arc::new(
                LoginThrottle::new(limits.address_failures, limits.address_window)
                    .with_max_in_flight(limits.address_concurrency),
            ),
            client_address_header: None,
        }
    }

    /// Applies sign-in limits (the configuration's, or a test's): fresh throttles and a fresh
    /// hashing pool (the old one's threads end once nothing holds it).
    pub fn set_sign_in_limits(&mut self, limits: &SignInLimits) {
        self.login_throttle = Arc::new(LoginThrottle::new(limits.login_failures, limits.login_window));
        self.address_throttle = Arc::new(
            LoginThrottle::new(limits.address_failures, limits.address_window)
                .with_max_in_flight(limits.address_concurrency),
        );
        self.hashing = Arc::new(HashingPool::new(limits.hash_threads, limits.hash_queue));
        self.client_address_header = limits.client_address_header.as_deref().map(Arc::from);
    }
}
