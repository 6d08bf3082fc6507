//! The connection pool: r2d2 through diesel's re-export, so its version always matches diesel's.

use std::time::{Duration, Instant};

use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection, Pool, PooledConnection, R2D2Connection};

use crate::error::{StoreError, StoreResult};

/// A pool of PostgreSQL connections.
pub type PgPool = Pool<PgManager>;
/// One connection borrowed from the pool.
pub type PgPooled = PooledConnection<PgManager>;

/// A connection used within this long is handed out again without a round trip to test it.
const TRUSTED_FOR: Duration = Duration::from_secs(1);

/// Opens PostgreSQL connections and tests one before lending it only when it may be dead: idle
/// longer than [`TRUSTED_FOR`] (the server may have restarted meanwhile) or its last query
/// failed. r2d2's usual test, a `SELECT 1` before every loan, doubled the statements of a busy
/// server.
#[derive(Debug)]
pub struct PgManager {
    url: String,
}

/// What the pool knows of one connection, kept in the connection's instrumentation slot (the one
/// place diesel lets us attach state to a connection and see each query's outcome).
struct Health {
    lent_at: Instant,
    failed: bool,
}

impl Instrumentation for Health {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::FinishQuery { error: Some(_), .. } = event {
            // Most errors are the query's own (a constraint, a conflict); testing the connection
            // once after any of them is cheap and covers the ones that are the connection's.
            self.failed = true;
        }
    }
}

fn health(conn: &mut PgConnection) -> Option<&mut Health> {
    conn.instrumentation().downcast_mut::<Health>()
}

impl ManageConnection for PgManager {
    type Connection = PgConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<PgConnection, r2d2::Error> {
        let mut conn = PgConnection::establish(&self.url).map_err(r2d2::Error::ConnectionError)?;
        conn.set_instrumentation(Health { lent_at: Instant::now(), failed: false });
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut PgConnection) -> Result<(), r2d2::Error> {
        let now = Instant::now();
        let trusted = health(conn).is_some_and(|h| !h.failed && now.duration_since(h.lent_at) < TRUSTED_FOR);
        if !trusted {
            conn.ping().map_err(r2d2::Error::QueryError)?;
        }
        if let Some(h) = health(conn) {
            (h.lent_at, h.failed) = (now, false);
        }
        Ok(())
    }

    fn has_broken(&self, conn: &mut PgConnection) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

/// How to build the pool.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Most connections held open at once.
    pub max_size: u32,
    /// How long a caller waits for a connection before the database counts as unavailable.
    pub connection_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self { max_size: 16, connection_timeout: Duration::from_secs(5) }
    }
}

/// Builds a pool without connecting: the server starts even while the database is down,
/// reports it on `/healthz`, and recovers when it comes back.
pub fn build_pool(database_url: &str, options: &PoolOptions) -> PgPool {
    Pool::builder()
        .max_size(options.max_size)
        .min_idle(Some(0))
        .connection_timeout(options.connection_timeout)
        .test_on_check_out(true)
        .build_unchecked(PgManager { url: database_url.to_owned() })
}

/// Opens one connection directly (start-up checks, migrations, tools).
pub fn connect(database_url: &str) -> StoreResult<PgConnection> {
    PgConnection::establish(database_url).map_err(|e| StoreError::Unavailable(first_line(&e.to_string())))
}

/// True when the database answers a trivial query.
pub fn ping(conn: &mut PgConnection) -> bool {
    diesel::sql_query("SELECT 1").execute(conn).is_ok()
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_owned()
}
