//! What a caller who has not signed in can make the server hold, bounded: webchat sockets that
//! never start are closed, sockets are capped per address and in all, webhook bodies must arrive
//! in time and within a shared budget, and a body announced too large or unsigned is refused
//! before it is read.

use std::time::{Duration, Instant};

use awc::ws;
use futures_util::StreamExt;
use schema::ServiceId;
use schema::models::Service;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use web::core::limits::{Limits, Settings};

use crate::api_support::TestApp;

async fn limited(settings: Settings) -> (TestApp, ServiceId, ServiceId) {
    TestApp::start_configured(
        |c| {
            let now = chrono::Utc::now();
            let chat = Service::with_defaults("Site chat", schema::Channel::Webchat, now).insert(c).unwrap().id;
            let mut wa = Service::with_defaults("WhatsApp", schema::Channel::Whatsapp, now);
            wa.provider = json!({"phone_number_id": "1065", "app_secret": "s", "verify_token": "t",
                                 "access_token": "x", "api_base_url": "http://127.0.0.1:9"});
            wa.provider_key = Some("1065".into());
            let wa = wa.insert(c).unwrap().id;
            (chat, wa)
        },
        |state| state.limits = std::sync::Arc::new(Limits::new(&settings)),
    )
    .await
    .pipe(|(app, (chat, wa))| (app, chat, wa))
}

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl<T> Pipe for T {}

type Conn = actix_codec::Framed<awc::BoxedSocket, ws::Codec>;

async fn connect(app: &TestApp, chat: ServiceId) -> Result<Conn, u16> {
    match awc::Client::new().ws(app.url("ws", &format!("/ws/webchat?service_id={chat}"))).connect().await {
        Ok((_, conn)) => Ok(conn),
        Err(awc::error::WsClientError::InvalidResponseStatus(s)) => Err(s.as_u16()),
        Err(e) => panic!("connect: {e}"),
    }
}

/// Reads frames (answering none) until the server closes; the close code and the error frames.
async fn until_closed(conn: &mut Conn, within: Duration) -> (Option<ws::CloseCode>, Vec<serde_json::Value>) {
    let mut errors = Vec::new();
    let wait = async {
        while let Some(frame) = conn.next().await {
            match frame {
                Ok(ws::Frame::Text(t)) => errors.push(serde_json::from_slice(&t).unwrap()),
                Ok(ws::Frame::Close(reason)) => return reason.map(|r| r.code),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    };
    let code = tokio::time::timeout(within, wait).await.expect("the server closes the socket in time");
    (code, errors)
}

#[actix_rt::test]
async fn a_webchat_socket_that_never_starts_is_closed() {
    let settings = Settings { webchat_start_timeout: Duration::from_secs(1), ..Settings::default() };
    let (app, chat, _) = limited(settings).await;
    let started = Instant::now();
    let mut idle = connect(&app, chat).await.unwrap();
    let (code, frames) = until_closed(&mut idle, Duration::from_secs(5)).await;
    assert_eq!(code, Some(ws::CloseCode::Policy));
    assert_eq!(frames.last().unwrap()["error"], "start_timeout", "{frames:?}");
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(app.state.limits.webchat_sockets.open(), 0, "its place is given back");

    // One that starts in time stays open past the timeout.
    let mut chatting = connect(&app, chat).await.unwrap();
    use futures_util::SinkExt;
    let start = json!({"type": "start", "name": "Maria", "email": "maria@example.com"});
    chatting.send(ws::Message::Text(start.to_string().into())).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), chatting.next()).await.unwrap().unwrap().unwrap();
    let ws::Frame::Text(t) = first else { panic!("{first:?}") };
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&t).unwrap()["type"], "started");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    chatting.send(ws::Message::Text(json!({"type": "ping"}).to_string().into())).await.unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(5), chatting.next()).await.unwrap().unwrap().unwrap();
    assert!(matches!(pong, ws::Frame::Text(_)), "still open: {pong:?}");
}

#[actix_rt::test]
async fn webchat_sockets_are_capped_per_address_and_in_all() {
    let settings = Settings { webchat_sockets_per_address: 3, webchat_sockets_total: 1000, ..Settings::default() };
    let (app, chat, _) = limited(settings).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect(&app, chat).await.unwrap());
    }
    assert_eq!(connect(&app, chat).await.err(), Some(429), "a fourth from the same address");
    // Closing one gives its place back.
    let mut one = held.pop().unwrap();
    use futures_util::SinkExt;
    one.send(ws::Message::Close(None)).await.unwrap();
    let _ = until_closed(&mut one, Duration::from_secs(5)).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.state.limits.webchat_sockets.open() > 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    held.push(connect(&app, chat).await.unwrap());

    let settings = Settings { webchat_sockets_per_address: 100, webchat_sockets_total: 2, ..Settings::default() };
    let (full, chat, _) = limited(settings).await;
    let _a = connect(&full, chat).await.unwrap();
    let _b = connect(&full, chat).await.unwrap();
    assert_eq!(connect(&full, chat).await.err(), Some(503), "the server's most");
}

/// Sends a request's head and `sent` bytes of its body, then waits for the answer's status line.
async fn stalled(app: &TestApp, path: &str, headers: &[(&str, &str)], length: usize, sent: usize) -> TcpStream {
    let mut tcp = TcpStream::connect(app.addr()).await.unwrap();
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {length}\r\n", app.addr());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&vec![b'{'; sent]).await.unwrap();
    tcp
}

async fn status_of(tcp: &mut TcpStream, within: Duration) -> (u16, String) {
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    let read = async {
        loop {
            let n = tcp.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
            if n == 0 || got.windows(4).any(|w| w == b"\r\n\r\n") && got.ends_with(b"}") {
                break;
            }
        }
    };
    tokio::time::timeout(within, read).await.expect("an answer in time");
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

#[actix_rt::test]
async fn a_webhook_body_that_stalls_is_answered_408_and_its_bytes_given_back() {
    let settings = Settings { body_timeout: Duration::from_secs(1), ..Settings::default() };
    let (app, _, _) = limited(settings).await;
    let signed = [("X-Hub-Signature-256", "sha256=00"), ("Content-Type", "application/json")];
    let mut tcp = stalled(&app, "/webhooks/whatsapp", &signed, 100_000, 10).await;
    let started = Instant::now();
    let (status, text) = status_of(&mut tcp, Duration::from_secs(5)).await;
    assert_eq!(status, 408, "{text}");
    assert!(text.contains("\"error\":\"body_timeout\""), "{text}");
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(app.state.limits.bodies.reserved_kib(), 0);
}

#[actix_rt::test]
async fn webhook_bodies_share_a_budget_and_are_refused_early() {
    let settings = Settings { body_budget_bytes: 1024 * 1024, ..Settings::default() };
    let (app, _, _) = limited(settings).await;
    let signed = [("X-Hub-Signature-256", "sha256=00"), ("Content-Type", "application/json")];
    // One body announcing 900 KB arrives slowly: the next announcing 900 KB does not fit.
    let _slow = stalled(&app, "/webhooks/whatsapp", &signed, 900_000, 10).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.state.limits.bodies.reserved_kib() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut second = stalled(&app, "/webhooks/whatsapp", &signed, 900_000, 10).await;
    let (status, text) = status_of(&mut second, Duration::from_secs(2)).await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("\"error\":\"busy\""), "{text}");

    // Announced over the route's limit: 413 before a byte is read.
    let mut huge = stalled(&app, "/webhooks/whatsapp", &signed, 5 * 1024 * 1024, 0).await;
    let (status, text) = status_of(&mut huge, Duration::from_secs(2)).await;
    assert_eq!(status, 413, "{text}");
    // Unsigned: 401 before a byte is read.
    let unsigned = [("Content-Type", "application/json")];
    let mut anon = stalled(&app, "/webhooks/whatsapp", &unsigned, 4 * 1024 * 1024, 0).await;
    let (status, text) = status_of(&mut anon, Duration::from_secs(2)).await;
    assert_eq!(status, 401, "{text}");
    assert!(app.state.limits.bodies.reserved_kib() <= 900_000 / 1024 + 1, "only the slow body holds bytes");
}
