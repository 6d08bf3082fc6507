//! The database from a request: store functions on the blocking pool, ids from paths and bodies.

use actix_web::web;

use crate::core::error::{ApiError, Code};
use crate::core::state::AppState;

/// Runs a store function on the blocking pool with a pooled connection.
pub async fn db<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&mut schema::PgConnection) -> Result<T, schema::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let pool = state.pool.clone();
    Ok(web::block(move || -> Result<T, schema::StoreError> { f(&mut *pool.get()?) }).await??)
}

/// Parses an id from a path or body.
pub fn parse_id<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, ApiError> {
    s.trim().parse().map_err(|_| ApiError::bad_request(Code::InvalidId, format!("{what} is not a valid id")))
}

/// The request's `Idempotency-Key` header, when there is one: 1-200 visible characters.
pub fn idempotency_key(req: &actix_web::HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(v) = req.headers().get("Idempotency-Key") else { return Ok(None) };
    v.to_str().ok().map(str::trim).filter(|k| !k.is_empty() && k.len() <= 200).map(|k| Some(k.to_owned())).ok_or_else(
        || ApiError::bad_request(Code::InvalidIdempotencyKey, "Idempotency-Key is 1-200 visible characters"),
    )
}
