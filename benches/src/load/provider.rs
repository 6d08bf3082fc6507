//! The providers' side of outbound sends: a local HTTP server answering WhatsApp Cloud API
//! `POST /v21.0/{phone_number_id}/messages` and Telegram `POST /bot{token}/sendMessage` the way the
//! real APIs do, and recording when each agent reply arrives.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::stats::{Stats, parse_reply_tag};

/// Starts the fake provider on a free local port; it runs until the runtime ends.
pub async fn start(stats: Arc<Stats>) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let next_id = Arc::new(AtomicU64::new(1));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let stats = stats.clone();
            let next_id = next_id.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| answer(req, stats.clone(), next_id.clone()));
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    Ok(addr)
}

async fn answer(
    req: Request<Incoming>,
    stats: Arc<Stats>,
    next_id: Arc<AtomicU64>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let post = req.method() == Method::POST;
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(reply(StatusCode::BAD_REQUEST, json!({"error": "unreadable body"}))),
    };
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let n = next_id.fetch_add(1, Ordering::Relaxed);
    if post && path.starts_with("/v21.0/") && path.ends_with("/messages") {
        if let Some(tag) = parsed.pointer("/text/body").and_then(Value::as_str).and_then(parse_reply_tag) {
            stats.reply_at_provider(tag);
        }
        return Ok(reply(
            StatusCode::OK,
            json!({"messaging_product": "whatsapp", "contacts": [{"input": parsed["to"], "wa_id": parsed["to"]}],
                   "messages": [{"id": format!("wamid.load{n}")}]}),
        ));
    }
    if post && path.starts_with("/bot") && path.ends_with("/sendMessage") {
        if let Some(tag) = parsed.get("text").and_then(Value::as_str).and_then(parse_reply_tag) {
            stats.reply_at_provider(tag);
        }
        return Ok(reply(
            StatusCode::OK,
            // Telegram numbers messages per chat, both directions in one sequence: the bot's
            // replies never share an id with the customer's messages. The harness's customers use
            // small numbers, so the fake's replies count from a billion.
            json!({"ok": true, "result": {"message_id": 1_000_000_000 + n, "chat": {"id": parsed["chat_id"], "type": "private"},
                   "date": 1_764_000_000, "text": parsed["text"]}}),
        ));
    }
    Ok(reply(StatusCode::NOT_FOUND, json!({"error": {"message": "unknown path", "code": 404}})))
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    r
}
