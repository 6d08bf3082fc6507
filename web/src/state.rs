//! What every request handler can reach.

use std::time::Duration;

use engine::Engine;
use schema::PgPool;

/// Shared application state (cheap to clone: the pool is reference-counted).
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub pool: PgPool,
    /// How long a health check waits for a connection before calling the database down.
    pub health_timeout: Duration,
    /// The routing engine.
    pub engine: Engine,
}
