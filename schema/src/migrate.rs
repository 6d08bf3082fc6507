//! The migrations of `migrations/`, embedded in the binary and run at start-up and by
//! `omniroute migrate`.

use diesel::pg::PgConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::error::{StoreError, StoreResult};

/// Every migration of the data model, in order.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations");

/// Applies the pending migrations and returns the versions it applied.
pub fn run_pending(conn: &mut PgConnection) -> StoreResult<Vec<String>> {
    let applied = conn.run_pending_migrations(MIGRATIONS).map_err(migration_error)?;
    Ok(applied.into_iter().map(|v| v.to_string()).collect())
}

/// Reverts every applied migration (tests and developers only).
pub fn revert_all(conn: &mut PgConnection) -> StoreResult<Vec<String>> {
    let reverted = conn.revert_all_migrations(MIGRATIONS).map_err(migration_error)?;
    Ok(reverted.into_iter().map(|v| v.to_string()).collect())
}

/// Versions not yet applied to this database.
pub fn pending(conn: &mut PgConnection) -> StoreResult<Vec<String>> {
    let pending = conn.pending_migrations(MIGRATIONS).map_err(migration_error)?;
    Ok(pending.iter().map(|m| m.name().version().to_string()).collect())
}

fn migration_error(e: Box<dyn std::error::Error + Send + Sync>) -> StoreError {
    match e.downcast::<diesel::result::Error>() {
        Ok(diesel_error) => StoreError::from(*diesel_error),
        Err(other) => StoreError::Unavailable(format!("migration failed: {other}")),
    }
}
