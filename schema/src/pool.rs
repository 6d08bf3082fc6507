//! The connection pool: r2d2 through diesel's re-export, so its version always matches diesel's.

use std::time::Duration;

use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool, PooledConnection};

use crate::error::{StoreError, StoreResult};

/// A pool of PostgreSQL connections.
pub type PgPool = Pool<ConnectionManager<PgConnection>>;
/// One connection borrowed from the pool.
pub type PgPooled = PooledConnection<ConnectionManager<PgConnection>>;

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
        .build_unchecked(ConnectionManager::new(database_url))
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
