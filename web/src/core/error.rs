//! `ApiError`: every error an HTTP client sees, as `{"error": code, "message": text}` with the
//! right status. Explicit conversions only, so no cause is erased on the way.
//!
//! [`Code`] lists every code the server answers, over HTTP and in the sockets' `error` frames, and
//! the codes of our own in a failed message's `error_code`. The desk and the webchat widget show
//! a text of their own for each (`web/static/desk/i18n.js`, `web/static/webchat/errors.js`); a
//! test fails when one lacks it.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use engine::EngineError;
use schema::StoreError;
use serde::Serialize;
use tracing::error;

/// Declares [`Code`] with its wire string once per variant, and [`Code::ALL`].
macro_rules! codes {
    ($($variant:ident = $text:literal,)*) => {
        /// A stable snake_case error code of the API contract. The strings never change: clients
        /// match on them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($variant,)*
        }

        impl Code {
            /// Every code, in declaration order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as it goes on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $text,)*
                }
            }
        }
    };
}

codes! {
    // Any request: what actix-web, the extractors, the limits and the database make of it.
    BadRequest = "bad_request",
    InvalidJson = "invalid_json",
    InvalidField = "invalid_field",
    InvalidQuery = "invalid_query",
    InvalidPath = "invalid_path",
    InvalidId = "invalid_id",
    InvalidBody = "invalid_body",
    InvalidValue = "invalid_value",
    InvalidReference = "invalid_reference",
    Unauthenticated = "unauthenticated",
    Forbidden = "forbidden",
    CrossOrigin = "cross_origin",
    NotFound = "not_found",
    MethodNotAllowed = "method_not_allowed",
    RequestTimeout = "request_timeout",
    BodyTimeout = "body_timeout",
    Conflict = "conflict",
    LengthRequired = "length_required",
    PayloadTooLarge = "payload_too_large",
    UriTooLong = "uri_too_long",
    UnsupportedMediaType = "unsupported_media_type",
    TooManyRequests = "too_many_requests",
    HeadersTooLarge = "headers_too_large",
    TooManyConnections = "too_many_connections",
    TooManyConnectionsFromAddress = "too_many_connections_from_address",
    Busy = "busy",
    Unavailable = "unavailable",
    DatabaseUnavailable = "database_unavailable",
    StorageError = "storage_error",
    Internal = "internal",
    // Sign-in and accounts.
    MissingCredentials = "missing_credentials",
    InvalidCredentialsFormat = "invalid_credentials_format",
    InvalidCredentials = "invalid_credentials",
    TooManyAttempts = "too_many_attempts",
    WeakPassword = "weak_password",
    InvalidRole = "invalid_role",
    // Administration.
    InvalidChannel = "invalid_channel",
    InvalidProvider = "invalid_provider",
    InvalidBusinessHours = "invalid_business_hours",
    InvalidTimeZone = "invalid_time_zone",
    InvalidCapacity = "invalid_capacity",
    InvalidKind = "invalid_kind",
    InvalidService = "invalid_service",
    ServiceExists = "service_exists",
    AgentExists = "agent_exists",
    TemplateExists = "template_exists",
    NameTaken = "name_taken",
    ContactExists = "contact_exists",
    CustomerExists = "customer_exists",
    InvalidCpf = "invalid_cpf",
    InvalidCnpj = "invalid_cnpj",
    // The desk: presence, lists, conversations (many from the engine, `EngineError`).
    InvalidStatus = "invalid_status",
    PauseReasonRequired = "pause_reason_required",
    InvalidPauseReason = "invalid_pause_reason",
    InvalidOrder = "invalid_order",
    InvalidLimit = "invalid_limit",
    InvalidState = "invalid_state",
    InvalidClassification = "invalid_classification",
    InvalidTransfer = "invalid_transfer",
    InvalidMessage = "invalid_message",
    TooMany = "too_many",
    ConversationNotFound = "conversation_not_found",
    AgentNotFound = "agent_not_found",
    ServiceNotFound = "service_not_found",
    AlreadyTaken = "already_taken",
    AtCapacity = "at_capacity",
    NotAvailable = "not_available",
    NotMember = "not_member",
    NotOwner = "not_owner",
    CancelNotAllowed = "cancel_not_allowed",
    OfferGone = "offer_gone",
    ConversationEnded = "conversation_ended",
    ChannelWithoutMessages = "channel_without_messages",
    // Messages, files and templates.
    EmptyMessage = "empty_message",
    TextTooLong = "text_too_long",
    TooManyAttachments = "too_many_attachments",
    InvalidAttachment = "invalid_attachment",
    AttachmentNotAllowed = "attachment_not_allowed",
    InvalidIdempotencyKey = "invalid_idempotency_key",
    MediaNotSupported = "media_not_supported",
    OutsideWindow = "outside_window",
    InvalidMultipart = "invalid_multipart",
    InvalidContentType = "invalid_content_type",
    MissingFile = "missing_file",
    EmptyFile = "empty_file",
    FileTooLarge = "file_too_large",
    UnsupportedFileType = "unsupported_file_type",
    TemplatesWhatsappOnly = "templates_whatsapp_only",
    InvalidTemplate = "invalid_template",
    InvalidTemplateParameters = "invalid_template_parameters",
    UnknownTemplate = "unknown_template",
    TemplateNotApproved = "template_not_approved",
    NotWhatsapp = "not_whatsapp",
    OptInRequired = "opt_in_required",
    InvalidContact = "invalid_contact",
    ConversationOpen = "conversation_open",
    // An email or SMS sent from a conversation.
    NoEmailAddress = "no_email_address",
    NoEmailService = "no_email_service",
    NoSmsService = "no_sms_service",
    SubjectRequired = "subject_required",
    // Calls.
    CustomerNotIdentified = "customer_not_identified",
    InvalidChannelSwitch = "invalid_channel_switch",
    InvalidPhone = "invalid_phone",
    NoPhone = "no_phone",
    NoPhoneSystem = "no_phone_system",
    NoExtension = "no_extension",
    ServiceRequired = "service_required",
    MissingCtiToken = "missing_cti_token",
    InvalidCtiToken = "invalid_cti_token",
    InvalidEvent = "invalid_event",
    // Provider webhooks.
    InvalidPayload = "invalid_payload",
    InvalidForm = "invalid_form",
    MissingSignature = "missing_signature",
    InvalidSignature = "invalid_signature",
    MissingSecret = "missing_secret",
    InvalidSecret = "invalid_secret",
    MissingSecretToken = "missing_secret_token",
    InvalidSecretToken = "invalid_secret_token",
    UnknownAccount = "unknown_account",
    UnknownNumber = "unknown_number",
    UnknownPage = "unknown_page",
    UnknownPhoneNumber = "unknown_phone_number",
    // An inbound email the webhook cannot take.
    EmptyBody = "empty_body",
    InvalidMime = "invalid_mime",
    InvalidHeader = "invalid_header",
    HeaderTooLong = "header_too_long",
    TooManyHeaders = "too_many_headers",
    TooManyParts = "too_many_parts",
    TooDeeplyNested = "too_deeply_nested",
    TooManyRecipients = "too_many_recipients",
    MissingSender = "missing_sender",
    InvalidSender = "invalid_sender",
    InvalidMessageId = "invalid_message_id",
    // The webchat widget's socket and files.
    MissingServiceId = "missing_service_id",
    OriginNotAllowed = "origin_not_allowed",
    MissingToken = "missing_token",
    InvalidToken = "invalid_token",
    AlreadyStarted = "already_started",
    NotStarted = "not_started",
    StartTimeout = "start_timeout",
    WrongService = "wrong_service",
    InvalidName = "invalid_name",
    InvalidEmail = "invalid_email",
    InvalidClientId = "invalid_client_id",
    InvalidText = "invalid_text",
    InvalidReceipt = "invalid_receipt",
    UnknownMessage = "unknown_message",
    TooManyInFlight = "too_many_in_flight",
    FrameTooLarge = "frame_too_large",
    // A failed message's `error_code` when we refused it before any provider did.
    NotConfigured = "not_configured",
    UnsupportedContent = "unsupported_content",
    InvalidSmtpUrl = "invalid_smtp_url",
    InvalidAddress = "invalid_address",
    GaveUp = "gave_up",
}

impl Code {
    /// The code of this wire string, if it is one.
    pub fn parse(s: &str) -> Option<Code> {
        Code::ALL.iter().copied().find(|c| c.as_str() == s)
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Code {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Code::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown error code {s:?}")))
    }
}

impl From<&EngineError> for Code {
    fn from(e: &EngineError) -> Self {
        match e {
            EngineError::ConversationNotFound => Code::ConversationNotFound,
            EngineError::AgentNotFound => Code::AgentNotFound,
            EngineError::ServiceNotFound => Code::ServiceNotFound,
            EngineError::AlreadyTaken => Code::AlreadyTaken,
            EngineError::AtCapacity => Code::AtCapacity,
            EngineError::NotAvailable => Code::NotAvailable,
            EngineError::NotMember => Code::NotMember,
            EngineError::NotOwner => Code::NotOwner,
            EngineError::CancelNotAllowed => Code::CancelNotAllowed,
            EngineError::OfferGone => Code::OfferGone,
            EngineError::InvalidState(_) => Code::InvalidState,
            EngineError::InvalidTransfer(_) => Code::InvalidTransfer,
            EngineError::Unavailable(_) | EngineError::Stopped => Code::Unavailable,
            EngineError::Storage(_) => Code::StorageError,
        }
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable snake_case code, e.g. `already_taken`.
    #[schema(value_type = String)]
    pub error: Code,
    /// A human-readable explanation.
    pub message: String,
}

/// An error answered to an HTTP client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Code,
    pub message: String,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: Code, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    /// 400 with a code saying what is wrong with the input.
    pub fn bad_request(code: Code, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 422: well-formed but refused by a rule.
    pub fn unprocessable(code: Code, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// The same error with another code.
    pub fn with_code(mut self, code: Code) -> Self {
        self.code = code;
        self
    }

    /// 404.
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, Code::NotFound, format!("{what} not found"))
    }

    /// 401.
    pub fn unauthenticated() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, Code::Unauthenticated, "sign in first (session cookie or bearer token)")
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, Code::Forbidden, message)
    }

    /// 409 conflict with a code.
    pub fn conflict(code: Code, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 503: the database (or the engine) is not answering; nothing changed.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable, message)
    }

    /// 500, logged once here with its cause; the client gets no internals.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        error!(error = %cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, Code::Internal, "an internal error occurred")
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
        HttpResponse::build(self.status).json(ErrorBody { error: self.code, message: self.message.clone() })
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::not_found("the resource"),
            StoreError::Conflict { constraint } => {
                ApiError::conflict(Code::Conflict, format!("conflicts with an existing record ({constraint})"))
            }
            StoreError::Reference { constraint } => ApiError::unprocessable(
                Code::InvalidReference,
                format!("refers to something that does not exist ({constraint})"),
            ),
            StoreError::Invalid { constraint } => {
                ApiError::unprocessable(Code::InvalidValue, format!("a value is not allowed ({constraint})"))
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
        ApiError::new(status, Code::from(&e), message)
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
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, Code::PayloadTooLarge, "the request body is too large")
        }
        J::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::UnsupportedMediaType,
            "send the body as application/json",
        ),
        J::Deserialize(d) if d.is_data() => ApiError::bad_request(Code::InvalidField, d.to_string()),
        other => ApiError::bad_request(Code::InvalidJson, other.to_string()),
    };
    e.into()
}

/// Query string errors as API errors.
pub fn query_error(err: actix_web::error::QueryPayloadError, _: &actix_web::HttpRequest) -> actix_web::Error {
    ApiError::bad_request(Code::InvalidQuery, err.to_string()).into()
}

/// Path errors as API errors.
pub fn path_error(err: actix_web::error::PathError, _: &actix_web::HttpRequest) -> actix_web::Error {
    ApiError::bad_request(Code::InvalidPath, err.to_string()).into()
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
    let new = new.json(ErrorBody { error: code, message: message.into() });
    Ok(ErrorHandlerResponse::Response(actix_web::dev::ServiceResponse::new(req, new).map_into_right_body()))
}

/// The code and message of an error answer made without a handler's words.
fn status_words(status: StatusCode) -> (Code, &'static str) {
    match status.as_u16() {
        400 => (Code::BadRequest, "the request is malformed"),
        401 => (Code::Unauthenticated, "sign in first (session cookie or bearer token)"),
        403 => (Code::Forbidden, "not allowed"),
        404 => (Code::NotFound, "route not found"),
        405 => (Code::MethodNotAllowed, "this method is not allowed here"),
        408 => (Code::RequestTimeout, "the request took too long to arrive"),
        411 => (Code::LengthRequired, "say the body's length (Content-Length)"),
        413 => (Code::PayloadTooLarge, "the request body is too large"),
        414 => (Code::UriTooLong, "the URL is too long"),
        415 => (Code::UnsupportedMediaType, "this content type is not accepted here"),
        429 => (Code::TooManyRequests, "too many requests; retry later"),
        431 => (Code::HeadersTooLarge, "the request's headers are too large"),
        503 => (Code::Unavailable, "the service is unavailable; retry"),
        s if s >= 500 => (Code::Internal, "an internal error occurred"),
        _ => (Code::BadRequest, "the request was refused"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire string is the variant's name in snake_case: a typo in either shows here, and two
    /// variants cannot share a string.
    #[test]
    fn every_code_is_its_variant_name_in_snake_case_and_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for &code in Code::ALL {
            let mut snake = String::new();
            for (i, ch) in format!("{code:?}").chars().enumerate() {
                if ch.is_ascii_uppercase() {
                    if i > 0 {
                        snake.push('_');
                    }
                    snake.push(ch.to_ascii_lowercase());
                } else {
                    snake.push(ch);
                }
            }
            assert_eq!(code.as_str(), snake, "{code:?}");
            assert!(seen.insert(code.as_str()), "{} twice", code.as_str());
            assert_eq!(Code::parse(code.as_str()), Some(code));
            assert_eq!(serde_json::to_value(code).unwrap(), serde_json::json!(code.as_str()));
            assert_eq!(serde_json::from_value::<Code>(serde_json::json!(code.as_str())).unwrap(), code);
        }
        assert_eq!(Code::parse("no_such_code"), None);
    }

    /// The engine names its refusals too (`EngineError::code`); the API answers the same strings.
    #[test]
    fn engine_errors_keep_their_codes() {
        let all = [
            EngineError::ConversationNotFound,
            EngineError::AgentNotFound,
            EngineError::ServiceNotFound,
            EngineError::AlreadyTaken,
            EngineError::AtCapacity,
            EngineError::NotAvailable,
            EngineError::NotMember,
            EngineError::NotOwner,
            EngineError::CancelNotAllowed,
            EngineError::OfferGone,
            EngineError::InvalidState("x"),
            EngineError::InvalidTransfer("x"),
            EngineError::Unavailable("x".into()),
            EngineError::Storage(StoreError::Retry),
            EngineError::Stopped,
        ];
        for e in &all {
            assert_eq!(Code::from(e).as_str(), e.code(), "{e:?}");
        }
        let answer = ApiError::from(EngineError::Storage(StoreError::Retry));
        assert_eq!((answer.status, answer.code), (StatusCode::SERVICE_UNAVAILABLE, Code::StorageError));
    }

    #[test]
    fn the_body_carries_the_code_as_a_string() {
        let body = ErrorBody { error: Code::CancelNotAllowed, message: "no".into() };
        assert_eq!(
            serde_json::to_value(body).unwrap(),
            serde_json::json!({"error": "cancel_not_allowed", "message": "no"})
        );
    }
}
