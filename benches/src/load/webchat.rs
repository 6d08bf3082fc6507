//! Simulated website visitors: each keeps one WebSocket on `/ws/webchat` as the widget does
//! (docs/protocol.md, "Webchat protocol"): `start` with a name and an email opens the
//! conversation, every customer message is a `message` frame with the widget's own `client_id`,
//! acknowledged by `ack` only after it is committed. The agents' replies arrive on the same
//! socket — for webchat the visitor's screen is "the provider", so they are counted there. A
//! dropped socket (a server restart) reconnects with `resume` and the visitor's token, and sends
//! the unacknowledged messages again with the same `client_id` (stored once).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use super::stats::{Stats, parse_reply_tag};

/// What became of a visitor's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// `ack`: committed.
    Acked,
    /// An `error` frame: the server refused it (nothing stored).
    Refused,
    /// Sent, but the widget closed (its chat had ended) or gave up reconnecting before an `ack`.
    Unanswered,
    /// Not sent: the visitor's chat had ended and its widget was already closed.
    Gone,
}

/// A customer message for a visitor's socket; `done` answers what became of it.
struct Outgoing {
    client_id: String,
    text: String,
    done: oneshot::Sender<Sent>,
}

/// The visitors of one webchat service.
pub struct Visitors {
    ws_url: String,
    service_id: String,
    stats: Arc<Stats>,
    sockets: Mutex<HashMap<u64, mpsc::UnboundedSender<Outgoing>>>,
}

/// How long a visitor keeps trying to get one message acknowledged.
const GIVE_UP: Duration = Duration::from_secs(60);

impl Visitors {
    /// Visitors of webchat service `service_id` on the server at `base` (`http://host:port`).
    pub fn new(base: &str, service_id: &str, stats: Arc<Stats>) -> Self {
        Self {
            ws_url: format!("{}/ws/webchat?service_id={service_id}", base.replacen("http", "ws", 1)),
            service_id: service_id.to_owned(),
            stats,
            sockets: Mutex::new(HashMap::new()),
        }
    }

    /// Visitor `customer` writes `text` (its first message opens the chat); true when the
    /// server acknowledged it.
    pub async fn send(&self, customer: u64, tag: u64, text: String) -> Sent {
        let socket = {
            let mut sockets = self.sockets.lock().unwrap_or_else(|e| e.into_inner());
            sockets
                .entry(customer)
                .or_insert_with(|| {
                    let (tx, rx) = mpsc::unbounded_channel();
                    tokio::spawn(visitor(
                        self.ws_url.clone(),
                        self.service_id.clone(),
                        customer,
                        self.stats.clone(),
                        rx,
                    ));
                    tx
                })
                .clone()
        };
        let (done, answer) = oneshot::channel();
        if socket.send(Outgoing { client_id: format!("m{tag}"), text, done }).is_err() {
            // Its chat ended and the widget closed.
            self.sockets.lock().unwrap_or_else(|e| e.into_inner()).remove(&customer);
            return Sent::Gone;
        }
        answer.await.unwrap_or(Sent::Unanswered)
    }
}

async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One visitor's socket, until its chat ends (`ended`; the widget closes 30 s later) or
/// it gives up.
async fn visitor(
    url: String,
    service_id: String,
    customer: u64,
    stats: Arc<Stats>,
    mut orders: mpsc::UnboundedReceiver<Outgoing>,
) {
    let mut token: Option<String> = None;
    // Sent, not yet acknowledged: client id → (text, answer, first sent).
    let mut pending: HashMap<String, (String, oneshot::Sender<Sent>, Instant)> = HashMap::new();
    let mut failures = 0u32;
    let mut closing: Option<tokio::time::Instant> = None;
    // The conversation the visitor's last acknowledged message went to: only its end closes
    // the widget (the end of an earlier one, told after the visitor wrote again, does not).
    let mut current: Option<String> = None;
    loop {
        let ws = match open(&url, &service_id, customer, token.as_deref(), &stats).await {
            Ok((ws, t)) => {
                failures = 0;
                token = Some(t);
                ws
            }
            Err(e) => {
                failures += 1;
                let oldest = pending.values().map(|(_, _, at)| *at).min();
                if oldest.is_some_and(|at| at.elapsed() > GIVE_UP) || failures > 240 {
                    eprintln!("webchat visitor {customer}: gave up: {e:#}");
                    for (_, (_, done, _)) in pending.drain() {
                        let _ = done.send(Sent::Unanswered);
                    }
                    return;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        };
        let (mut tx, mut rx) = ws.split();
        // After a reconnect: what was not acknowledged goes again, with the same client ids.
        for (client_id, (text, _, _)) in &pending {
            let frame = json!({"type": "message", "client_id": client_id, "text": text});
            let _ = tx.send(Message::text(frame.to_string())).await;
        }
        loop {
            tokio::select! {
                _ = sleep_until_some(closing) => {
                    let _ = tx.send(Message::Close(None)).await;
                    for (_, (_, done, _)) in pending.drain() {
                        let _ = done.send(Sent::Unanswered);
                    }
                    return;
                }
                order = orders.recv() => {
                    let Some(o) = order else {
                        let _ = tx.send(Message::Close(None)).await;
                        return;
                    };
                    let frame = json!({"type": "message", "client_id": o.client_id, "text": o.text});
                    // Writing again keeps the widget open: the message starts the next chat.
                    closing = None;
                    pending.insert(o.client_id, (o.text, o.done, Instant::now()));
                    if tx.send(Message::text(frame.to_string())).await.is_err() {
                        break;
                    }
                }
                frame = rx.next() => {
                    let Some(Ok(frame)) = frame else { break };
                    let Message::Text(text) = frame else { continue };
                    let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                    match v["type"].as_str() {
                        Some("ack") => {
                            current = v["conversation_id"].as_str().map(str::to_owned);
                            if let Some((_, done, _)) = v["client_id"].as_str().and_then(|c| pending.remove(c)) {
                                let _ = done.send(Sent::Acked);
                            }
                        }
                        Some("ended") if pending.is_empty() && v["conversation_id"].as_str() == current.as_deref() => {
                            closing = Some(tokio::time::Instant::now() + Duration::from_secs(30));
                        }
                        Some("message") if v["message"]["from"] == "agent" => {
                            if let Some(n) = v["message"]["text"].as_str().and_then(parse_reply_tag) {
                                stats.reply_at_provider(n);
                            }
                        }
                        Some("error") => {
                            let code = v["error"].as_str().unwrap_or_default();
                            let client_id = v["client_id"].as_str().map(str::to_owned);
                            // `unavailable` (the database is down): the same client id again, later.
                            if code == "unavailable" {
                                if let Some((text, _, _)) = client_id.as_deref().and_then(|c| pending.get(c)) {
                                    tokio::time::sleep(Duration::from_millis(250)).await;
                                    let frame = json!({"type": "message", "client_id": client_id, "text": text});
                                    let _ = tx.send(Message::text(frame.to_string())).await;
                                }
                            } else if let Some((_, done, _)) = client_id.and_then(|c| pending.remove(&c)) {
                                eprintln!("webchat visitor {customer}: refused: {v}");
                                let _ = done.send(Sent::Refused);
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        // The socket dropped (e.g. the server restarted): reconnect and resume.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Connects and identifies: `start` the first time, `resume` with the token after (the agent
/// replies in the history it answers count as received). Answers the socket and the visitor's
/// token.
async fn open(
    url: &str,
    service_id: &str,
    customer: u64,
    token: Option<&str>,
    stats: &Stats,
) -> anyhow::Result<(Ws, String)> {
    // Nagle off, as browsers have it on every socket.
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(super::ws_config()), true).await?;
    let hello = match token {
        None => json!({"type": "start", "name": format!("Visitor {customer}"),
                        "email": format!("visitor{customer}@load.example"), "service_id": service_id}),
        Some(t) => json!({"type": "resume", "token": t}),
    };
    ws.send(Message::text(hello.to_string())).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next()).await?;
        let Some(frame) = frame else { anyhow::bail!("closed before `started`") };
        let Message::Text(text) = frame? else { continue };
        let v: Value = serde_json::from_str(text.as_str())?;
        match v["type"].as_str() {
            Some("started") => {
                // After a resume, the agent's messages sent while the socket was down are in the
                // history: that is where the visitor sees them.
                for m in v["messages"].as_array().into_iter().flatten().filter(|m| m["from"] == "agent") {
                    if let Some(n) = m["text"].as_str().and_then(parse_reply_tag) {
                        stats.reply_at_provider(n);
                    }
                }
                let t = v["token"].as_str().map(str::to_owned).or_else(|| token.map(str::to_owned));
                return Ok((ws, t.ok_or_else(|| anyhow::anyhow!("`started` without a token"))?));
            }
            Some("error") => anyhow::bail!("refused: {v}"),
            _ => {}
        }
    }
}
