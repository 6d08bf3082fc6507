//! Sign-in and sign-out (D1): the handlers. Sessions, their throttles and the password hashing
//! pool are in `core::session`.

use std::time::Duration;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, post, web};
use base64::Engine as _;
use chrono::Utc;
use rand::RngCore;
use schema::models::{Agent, Session};
use schema::{SessionId, store};
use serde::{Deserialize, Serialize};

use crate::core::error::{ApiError, Code};
use crate::core::session::{
    AgentInfo, CurrentAgent, LoginThrottle, SESSION_COOKIE, SESSION_TTL, client_address, token_hash, token_of,
};
use crate::core::state::AppState;

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A valid argon2id hash of a random password, verified against when the login is unknown so
/// that a wrong login costs the same time as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| crate::core::password::hash(&new_token()))
}

/// What a sign-in sends.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub login: String,
    pub password: String,
}

/// A successful sign-in.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoginResponse {
    /// The bearer token (also set as the session cookie).
    pub token: String,
    pub agent: AgentInfo,
}

/// Signs in; answers the token and sets the session cookie.
#[utoipa::path(
    post, path = "/api/v1/auth/login", tag = "session",
    request_body = LoginRequest,
    responses(
        (status = 200, body = LoginResponse),
        (status = 400, body = crate::core::error::ErrorBody),
        (status = 401, description = "invalid_credentials", body = crate::core::error::ErrorBody),
        (status = 429, description = "too many failures for this login or from this address", body = crate::core::error::ErrorBody),
        (status = 503, description = "busy: too many password checks waiting; retry after Retry-After", body = crate::core::error::ErrorBody),
    )
)]
#[post("/auth/login")]
pub async fn sign_in(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let LoginRequest { login, password } = body.into_inner();
    if login.trim().is_empty() || password.is_empty() {
        return Err(ApiError::bad_request(Code::MissingCredentials, "login and password are required"));
    }
    if login.len() > 200 || password.len() > 1024 || login.contains('\0') {
        return Err(ApiError::bad_request(Code::InvalidCredentialsFormat, "login or password is too long"));
    }
    // The address first: a spray of random logins from one place is refused before it costs a
    // database read or a hash.
    let address = client_address(&req, state.client_address_header.as_deref());
    let from_address = match state.address_throttle.begin(address) {
        Ok(attempt) => attempt,
        Err(retry_after) => return Ok(too_many_attempts(retry_after, "from this address")),
    };
    let of_login = match state.login_throttle.begin(LoginThrottle::login_key(&login)) {
        Ok(attempt) => attempt,
        Err(retry_after) => return Ok(too_many_attempts(retry_after, "for this login")),
    };
    let pool = state.pool.clone();
    let lookup_login = login.clone();
    let agent = web::block(move || -> Result<Option<Agent>, schema::StoreError> {
        let mut conn = pool.get()?;
        store::agent_by_login(&mut conn, &lookup_login)
    })
    .await??;
    let phc = agent.as_ref().filter(|a| a.active).map(|a| a.password_hash.clone());
    // An unknown login costs the same hash, through the same bounded queue, so it neither tells
    // which logins exist nor jumps the queue.
    let verified = state
        .hashing
        .run(move || match phc {
            Some(phc) => crate::core::password::verify(&password, &phc),
            None => {
                crate::core::password::verify(&password, decoy_hash());
                false
            }
        })
        .await;
    let ok = match verified {
        Ok(ok) => ok,
        Err(e) if e.code == Code::Busy => {
            // Neither a failure nor a success: the attempts end unrecorded.
            return Ok(HttpResponse::build(e.status)
                .insert_header((header::RETRY_AFTER, "1"))
                .json(crate::core::error::ErrorBody { error: e.code, message: e.message }));
        }
        Err(e) => return Err(e),
    };
    let Some(agent) = agent.filter(|_| ok) else {
        of_login.failed();
        from_address.failed();
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, Code::InvalidCredentials, "wrong login or password"));
    };
    of_login.succeeded();
    // The address's failures stay: signing in to one account must not buy more guesses at others.
    drop(from_address);

    let token = new_token();
    let now = Utc::now();
    let session = Session {
        id: SessionId::new(),
        agent_id: agent.id,
        token_hash: token_hash(&token),
        created_at: now,
        last_seen_at: now,
        expires_at: now + SESSION_TTL,
        revoked_at: None,
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(300).collect()),
        remote_addr: req.peer_addr().map(|a| a.ip().to_string()),
    };
    let pool = state.pool.clone();
    web::block(move || -> Result<Session, schema::StoreError> { session.insert(&mut *pool.get()?) }).await??;
    let cookie = Cookie::build(SESSION_COOKIE, token.clone())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(req.connection_info().scheme() == "https")
        .max_age(actix_web::cookie::time::Duration::seconds(SESSION_TTL.num_seconds()))
        .finish();
    Ok(HttpResponse::Ok().cookie(cookie).json(LoginResponse { token, agent: AgentInfo::from(&agent) }))
}

/// 429 `too_many_attempts` with `Retry-After` (whole seconds, at least one).
fn too_many_attempts(retry_after: Duration, whose: &str) -> HttpResponse {
    let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
    let body = crate::core::error::ErrorBody {
        error: Code::TooManyAttempts,
        message: format!("too many failed sign-ins {whose}; retry in {secs} s"),
    };
    HttpResponse::build(StatusCode::TOO_MANY_REQUESTS).insert_header((header::RETRY_AFTER, secs.to_string())).json(body)
}

/// Ends the session (revoked server-side: the token stops working everywhere at once).
#[utoipa::path(
    post, path = "/api/v1/auth/logout", tag = "session",
    responses((status = 204), (status = 401, body = crate::core::error::ErrorBody))
)]
#[post("/auth/logout")]
pub async fn sign_out(
    req: HttpRequest,
    state: web::Data<AppState>,
    me: CurrentAgent,
) -> Result<HttpResponse, ApiError> {
    let token = token_of(&req).ok_or_else(ApiError::unauthenticated)?;
    let pool = state.pool.clone();
    let hash = token_hash(&token);
    let revoked = web::block(move || -> Result<bool, schema::StoreError> {
        store::revoke_session(&mut *pool.get()?, &hash, Utc::now())
    })
    .await??;
    state.sessions.revoked_session(me.session);
    if !revoked {
        return Err(ApiError::unauthenticated());
    }
    let mut gone = Cookie::build(SESSION_COOKIE, "").path("/").finish();
    gone.make_removal();
    Ok(HttpResponse::NoContent().cookie(gone).finish())
}
