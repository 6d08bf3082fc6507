//! Webchat (C1): the customer widget. A page `/webchat/{service_id}` (plain HTML, an ES module and
//! CSS from `web/static/webchat/`, embedded like the desk) that a website embeds in an iframe,
//! talking over the WebSocket `/ws/webchat` (docs/protocol.md, "Webchat"). A visitor starts with
//! a name and an email (K2), gets a resume token, and its page resumes the same conversation
//! after a reload. Files go up and down over HTTP with that token (C9).
//!
//! The service's `provider` is `{allowed_origins: [..]}`: the sites that may embed the page
//! (its CSP `frame-ancestors`) and open the WebSocket from their own pages (the Origin check).

pub mod hub;
pub mod protocol;
pub mod session;
pub mod visitor;

use actix_multipart::Multipart;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::Utc;
use rust_embed::RustEmbed;
use schema::models::{Attachment, AttachmentContent, Conversation, Service, Visitor, WebchatUpload};
use schema::{AttachmentId, Channel, Connection, ServiceId, store};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::core::db::{db, parse_id};
use crate::core::dto::AttachmentDto;
use crate::core::error::{ApiError, Code};
use crate::core::state::AppState;

pub use visitor::send;

/// The webchat's [`crate::core::outbox::Sender`]: an agent's message goes to the visitor's open
/// sockets through the hub, or waits for the widget to come back. It also keeps the hub, which
/// the sockets find again through [`hub`].
pub struct WebchatSender {
    hub: hub::WebchatHub,
}

impl WebchatSender {
    /// The sender, with a hub over the engine's feed.
    pub fn new(engine: engine::Engine) -> Self {
        Self { hub: hub::WebchatHub::new(engine) }
    }
}

impl crate::core::outbox::Sender for WebchatSender {
    fn send<'a>(
        &'a self,
        call: crate::core::outbox::SendCall<'a>,
    ) -> futures_util::future::LocalBoxFuture<'a, crate::core::outbox::SendResult> {
        Box::pin(async move {
            let attached: Vec<Attachment> = call.out.files.iter().map(|(a, _)| a.clone()).collect();
            send(call.state, call.address, call.message, &attached).await
        })
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The hub of the connected visitors, kept by the webchat's sender (`None` in a state built
/// without senders).
pub fn hub(state: &AppState) -> Option<&hub::WebchatHub> {
    state.senders.get(Channel::Webchat)?.as_any().downcast_ref::<WebchatSender>().map(|s| &s.hub)
}

/// The widget's files.
#[derive(RustEmbed)]
#[folder = "static/webchat/"]
struct WidgetFiles;

/// Registers the page, its assets, the WebSocket and the file routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(asset).service(page).service(session::ws_webchat).service(upload).service(download);
}

/// An active webchat service by the id in a path or query (400 for a malformed id, 404 for an
/// unknown or inactive one or one of another channel).
pub async fn webchat_service(state: &AppState, raw: &str) -> Result<Service, ApiError> {
    let id: ServiceId = parse_id(raw, "service id")?;
    match crate::core::directory::service(state, id).await? {
        Some(s) if s.channel == Channel::Webchat && s.active => Ok(s),
        _ => Err(ApiError::not_found("webchat service")),
    }
}

/// The origins a service allows, well-formed ones only (`scheme://host[:port]`, or `*`): a
/// stray value can never inject into the page's CSP.
pub fn allowed_origins(service: &Service) -> Vec<String> {
    let raw: Vec<&str> = match service.provider.get("allowed_origins") {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(s)) => s.split([',', ' ']).collect(),
        _ => Vec::new(),
    };
    raw.into_iter()
        .map(|o| o.trim().trim_end_matches('/'))
        .filter(|o| well_formed_origin(o))
        .map(str::to_owned)
        .collect()
}

fn well_formed_origin(o: &str) -> bool {
    if o == "*" {
        return true;
    }
    let Some((scheme, rest)) = o.split_once("://") else { return false };
    matches!(scheme, "http" | "https")
        && !rest.is_empty()
        && rest.len() <= 253
        && rest.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// Whether the upgrade's Origin may open this service's chat: no Origin (not a browser), the
/// server's own origin (the embedded page), or one of the service's allowed origins.
pub fn origin_allowed(req: &HttpRequest, service: &Service) -> bool {
    let Some(origin) = req.headers().get(header::ORIGIN) else { return true };
    let Ok(origin) = origin.to_str() else { return false };
    let info = req.connection_info();
    let own = format!("{}://{}", info.scheme(), info.host());
    origin == own || allowed_origins(service).iter().any(|a| a == "*" || a == origin)
}

/// The page's CSP: the desk's strict policy, except that the allowed sites may frame it.
pub fn page_csp(service: &Service) -> String {
    let ancestors: Vec<String> = allowed_origins(service);
    let frame = if ancestors.is_empty() { "'self'".to_owned() } else { format!("'self' {}", ancestors.join(" ")) };
    crate::core::pages::CSP.replace("frame-ancestors 'none'", &format!("frame-ancestors {frame}"))
}

fn file(path: &str, csp: &str) -> HttpResponse {
    match WidgetFiles::get(path) {
        Some(f) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, mime_guess::from_path(path).first_or_octet_stream().as_ref()))
            .insert_header((header::CONTENT_SECURITY_POLICY, csp))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .insert_header((header::REFERRER_POLICY, "no-referrer"))
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .body(f.data.into_owned()),
        None => ApiError::not_found("file").error_response(),
    }
}

use actix_web::ResponseError;

/// The widget's page for one service.
#[get("/webchat/{service_id}")]
pub async fn page(state: web::Data<AppState>, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let service = webchat_service(&state, &path).await?;
    Ok(file("index.html", &page_csp(&service)))
}

/// The widget's scripts and styles.
#[get("/webchat/assets/{path}")]
pub async fn asset(path: web::Path<String>) -> HttpResponse {
    let path = path.into_inner();
    if path.contains("..") || path == "index.html" {
        return ApiError::not_found("file").error_response();
    }
    file(&path, crate::core::pages::CSP)
}

/// The visitor holding the bearer token of the request, in this service (401 otherwise).
async fn bearer_visitor(state: &AppState, req: &HttpRequest, service: ServiceId) -> Result<Visitor, ApiError> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 128)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                Code::MissingToken,
                "send the chat's token as Authorization: Bearer",
            )
        })?;
    let hash = crate::core::session::token_hash(token);
    db(state, move |c| store::visitor_by_token(c, service, &hash))
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, Code::InvalidToken, "this chat's token is not valid"))
}

/// A visitor uploads one file (multipart field `file`) to attach to a message: 201 with its id.
/// Types and size as the webchat channel allows (C9): 415 / 413, nothing stored.
#[post("/webchat/{service_id}/attachments")]
pub async fn upload(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let service = webchat_service(&state, &path).await?;
    let visitor = bearer_visitor(&state, &req, service.id).await?;
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    if !is_multipart {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::InvalidContentType,
            "send the file as multipart/form-data in the field `file`",
        ));
    }
    let mut form = Multipart::new(req.headers(), payload);
    let (name, content_type, data) = crate::core::files::read_file_field(
        &mut form,
        |content_type| crate::core::files::channel_limit(Channel::Webchat, content_type),
        " in the chat",
    )
    .await?;
    let row = Attachment {
        id: AttachmentId::new(),
        message_id: None,
        conversation_id: None,
        uploaded_by: None,
        name,
        content_type,
        size_bytes: data.len() as i64,
        sha256: Sha256::digest(&data).to_vec(),
        provider_media_id: None,
        created_at: Utc::now(),
    };
    let visitor_id = visitor.id;
    let stored = db(&state, move |c| {
        c.transaction(|c| {
            let a = row.insert(c)?;
            AttachmentContent { attachment_id: a.id, data }.insert(c)?;
            store::record_upload(c, &WebchatUpload { attachment_id: a.id, visitor_id })?;
            Ok(a)
        })
    })
    .await?;
    Ok(HttpResponse::Created().json(AttachmentDto::from_row(&stored)))
}

/// A visitor downloads a file: its own upload, or one of its conversations' (the agent's).
#[get("/webchat/{service_id}/attachments/{id}")]
pub async fn download(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (raw_service, raw_id) = path.into_inner();
    let service = webchat_service(&state, &raw_service).await?;
    let visitor = bearer_visitor(&state, &req, service.id).await?;
    let id: AttachmentId = parse_id(&raw_id, "attachment id")?;
    let address = visitor.id.to_string();
    let found = db(&state, move |c| {
        let a = match Attachment::find(c, id) {
            Ok(a) => a,
            Err(schema::StoreError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mine = match a.conversation_id {
            Some(conv) => {
                let conv = Conversation::find(c, conv)?;
                conv.service_id == service.id && conv.customer_address == address
            }
            None => store::uploader_of(c, id)? == Some(visitor.id),
        };
        if !mine {
            return Ok(None);
        }
        Ok(Some((a, AttachmentContent::find(c, id)?)))
    })
    .await?;
    // Not this visitor's: the same 404 as a file that does not exist (nothing leaks).
    let (a, content) = found.ok_or_else(|| ApiError::not_found("attachment"))?;
    let disposition = format!("attachment; filename=\"{}\"", a.name.replace(['"', '\\'], "_"));
    Ok(HttpResponse::Ok()
        .content_type(a.content_type)
        .insert_header(("Content-Disposition", disposition))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CONTENT_SECURITY_POLICY, "default-src 'none'; sandbox"))
        .body(content.data))
}
