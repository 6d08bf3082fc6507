//! The agent desk: plain ES modules, CSS and HTML from `web/static/desk/`, embedded in the binary
//! (no front-end build step), served with a strict Content-Security-Policy.

use crate::core::error::Code;
use crate::core::pages::CSP;
use actix_web::http::header;
use actix_web::{HttpResponse, get, route, web};
use rust_embed::RustEmbed;

mod emoji;

/// The desk's files.
#[derive(RustEmbed)]
#[folder = "static/desk/"]
struct DeskFiles;

fn serve(path: &str) -> HttpResponse {
    match DeskFiles::get(path) {
        Some(file) => {
            let mime = mime_guess::from_path(path).first_or_octet_stream();
            HttpResponse::Ok()
                .insert_header((header::CONTENT_TYPE, mime.as_ref()))
                .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
                .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                .insert_header((header::REFERRER_POLICY, "no-referrer"))
                .insert_header((header::CACHE_CONTROL, "no-cache"))
                .body(file.data.into_owned())
        }
        None => HttpResponse::NotFound().json(serde_json::json!({"error": Code::NotFound, "message": "no such file"})),
    }
}

/// The desk's page (`HEAD` too: monitors probe with it).
#[route("/", method = "GET", method = "HEAD")]
pub async fn index() -> HttpResponse {
    serve("index.html")
}

/// The emoji picker's catalogue (the same for every agent, so a browser may keep it an hour).
#[get("/desk/emoji.json")]
pub async fn emoji_catalogue() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "private, max-age=3600"))
        .body(emoji::catalogue())
}

/// The desk's assets.
#[get("/desk/{path:.*}")]
pub async fn asset(path: web::Path<String>) -> HttpResponse {
    let path = path.into_inner();
    if path.is_empty() || path.split('/').any(|p| p == "..") {
        return serve("index.html");
    }
    serve(&path)
}
