//! `ApiError`: every error an HTTP client sees, as `{"error": code, "message": text}` with the
//! right status. Explicit conversions only, so no cause is erased on the way.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use engine::EngineError;
use schema::StoreError;
use serde::Serialize;
use tracing::error;

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable snake_case code, e.g. `already_taken`.
    pub error: String,
    /// A human-readable explanation.
    pub message: String,
}

/// An error answered to an HTTP client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    /// 400 with a code saying what is wrong with the input.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 422: well-formed but refused by a rule.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// The same error with another code.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }

    /// 404.
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    /// 401.
    pub fn unauthenticated() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", "sign in first (session cookie or bearer token)")
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 409 conflict with a code.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 503: the database (or the engine) is not answering; nothing changed.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500, logged once here with its cause; the client gets no internals.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        error!(error = %cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "an internal error occurred")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(ErrorBody { error: self.code.to_owned(), message: self.message.clone() })
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::not_found("the resource"),
            StoreError::Conflict { constraint } => {
                ApiError::conflict("conflict", format!("conflicts with an existing record ({constraint})"))
            }
            StoreError::Reference { constraint } => ApiError::unprocessable(
                "invalid_reference",
                format!("refers to something that does not exist ({constraint})"),
            ),
            StoreError::Invalid { constraint } => {
                ApiError::unprocessable("invalid_value", format!("a value is not allowed ({constraint})"))
            }
            StoreError::Retry | StoreError::Unavailable(_) => {
                ApiError::unavailable("the database is unavailable; retry")
            }
            e @ StoreError::Database(_) => ApiError::internal(&e),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let message = e.to_string();
        let status = match &e {
            EngineError::ConversationNotFound | EngineError::AgentNotFound | EngineError::ServiceNotFound => {
                StatusCode::NOT_FOUND
            }
            EngineError::AlreadyTaken
            | EngineError::AtCapacity
            | EngineError::NotAvailable
            | EngineError::CancelNotAllowed
            | EngineError::OfferGone
            | EngineError::InvalidState(_) => StatusCode::CONFLICT,
            EngineError::NotMember | EngineError::NotOwner => StatusCode::FORBIDDEN,
            EngineError::InvalidTransfer(_) => StatusCode::UNPROCESSABLE_ENTITY,
            EngineError::Unavailable(_) | EngineError::Stopped => StatusCode::SERVICE_UNAVAILABLE,
            EngineError::Storage(StoreError::Unavailable(_) | StoreError::Retry) => StatusCode::SERVICE_UNAVAILABLE,
            EngineError::Storage(_) => return ApiError::internal(&e),
        };
        ApiError::new(status, e.code(), message)
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        ApiError::internal(&e)
    }
}

/// The JSON, query and path extractors' errors as API errors (N2: a clear 4xx, never a 500).
pub fn json_error(err: actix_web::error::JsonPayloadError, _: &actix_web::HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as J;
    let e = match &err {
        J::OverflowKnownLength { .. } | J::Overflow { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is too large")
        }
        J::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as application/json",
        ),
        J::Deserialize(d) if d.is_data() => ApiError::bad_request("invalid_field", d.to_string()),
        other => ApiError::bad_request("invalid_json", other.to_string()),
    };
    e.into()
}

/// Query string errors as API errors.
pub fn query_error(err: actix_web::error::QueryPayloadError, _: &actix_web::HttpRequest) -> actix_web::Error {
    ApiError::bad_request("invalid_query", err.to_string()).into()
}

/// Path errors as API errors.
pub fn path_error(err: actix_web::error::PathError, _: &actix_web::HttpRequest) -> actix_web::Error {
    ApiError::bad_request("invalid_path", err.to_string()).into()
}

/// Middleware that gives every error answer the JSON shape, whoever made it: actix-web's own
/// (a body over a payload limit, no route for a path or a method) answer plain text or nothing.
/// Headers such as `Retry-After` and `Allow` are kept.
pub fn json_errors<B: actix_web::body::MessageBody + 'static>() -> actix_web::middleware::ErrorHandlers<B> {
    actix_web::middleware::ErrorHandlers::new().default_handler(as_json_error)
}

fn as_json_error<B: actix_web::body::MessageBody + 'static>(
    res: actix_web::dev::ServiceResponse<B>,
) -> actix_web::Result<actix_web::middleware::ErrorHandlerResponse<B>> {
    use actix_web::http::header;
    use actix_web::middleware::ErrorHandlerResponse;
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let (req, old) = res.into_parts();
    let mut new = HttpResponse::build(status);
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.append_header((name.clone(), value.clone()));
        }
    }
    let (code, message) = status_words(status);
    let new = new.json(ErrorBody { error: code.into(), message: message.into() });
    Ok(ErrorHandlerResponse::Response(actix_web::dev::ServiceResponse::new(req, new).map_into_right_body()))
}

/// The code and message of an error answer made without a handler's words.
fn status_words(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        400 => ("bad_request", "the request is malformed"),
        401 => ("unauthenticated", "sign in first (session cookie or bearer token)"),
        403 => ("forbidden", "not allowed"),
        404 => ("not_found", "route not found"),
        405 => ("method_not_allowed", "this method is not allowed here"),
        408 => ("request_timeout", "the request took too long to arrive"),
        411 => ("length_required", "say the body's length (Content-Length)"),
        413 => ("payload_too_large", "the request body is too large"),
        414 => ("uri_too_long", "the URL is too long"),
        415 => ("unsupported_media_type", "this content type is not accepted here"),
        429 => ("too_many_requests", "too many requests; retry later"),
        431 => ("headers_too_large", "the request's headers are too large"),
        503 => ("unavailable", "the service is unavailable; retry"),
        s if s >= 500 => ("internal", "an internal error occurred"),
        _ => ("bad_request", "the request was refused"),
    }
}
