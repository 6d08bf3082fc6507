//! `GET /healthz`: 200 when the database answers, 503 when it does not.

use crate::core::error::Code;
use actix_web::{HttpResponse, route, web};
use serde_json::json;

use crate::core::state::AppState;

/// Liveness and readiness in one: the server is useful only while its database answers.
#[route("/healthz", method = "GET", method = "HEAD")]
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let pool = state.pool.clone();
    let timeout = state.health_timeout;
    let ok = web::block(move || match pool.get_timeout(timeout) {
        Ok(mut conn) => schema::pool::ping(&mut conn),
        Err(_) => false,
    })
    .await
    .unwrap_or(false);
    if ok {
        HttpResponse::Ok().json(json!({"status": "ok", "database": "up"}))
    } else {
        HttpResponse::ServiceUnavailable()
            .json(json!({"error": Code::DatabaseUnavailable, "message": "the database does not answer"}))
    }
}
