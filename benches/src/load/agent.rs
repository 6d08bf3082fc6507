//! Simulated agents: one WebSocket on `/ws/agent` each (bearer token), presence through
//! `PUT /api/v1/me/presence`, offers accepted over the socket, replies and conclusions through
//! the REST API. Each agent records every conversation event it sees, for the correctness checks
//! of [`super::check`].

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use super::api::Api;
use super::customer::Customers;
use super::stats::{Stats, parse_customer_tag, reply_tag};

/// How simulated agents behave.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// Mean time between a customer's message and the agent's reply (exponential).
    pub think: Duration,
    /// How long an agent keeps a conversation before concluding it.
    pub handling: Duration,
    /// The pause reason agents pick.
    pub pause_reason_id: String,
}

/// Orders the harness gives an agent.
#[derive(Debug, Clone, Copy)]
pub enum Control {
    /// Close the WebSocket, stay away this long, reconnect and resume.
    Reconnect(Duration),
    /// Pause this long, then become available again.
    Pause(Duration),
}

/// A conversation event as one agent observed it.
#[derive(Debug, Clone)]
pub struct Observed {
    pub observer: usize,
    pub conversation_id: String,
    pub seq: i64,
    pub kind: String,
    pub agent_id: Option<String>,
    pub channel: Option<String>,
    pub at: DateTime<Utc>,
    /// When the conversation arrived (live events carry it).
    pub arrived_at: Option<DateTime<Utc>>,
}

/// What every agent shares.
pub struct Shared {
    pub api: Api,
    pub stats: Arc<Stats>,
    pub customers: Arc<Customers>,
    pub behaviour: Behaviour,
    /// Set when the run is over: agents stop taking work and conclude nothing more.
    pub stopping: AtomicBool,
}

/// One signed-in agent.
#[derive(Debug, Clone)]
pub struct Identity {
    pub index: usize,
    pub id: String,
    pub token: String,
}

/// What one agent observed during a run.
#[derive(Debug, Default)]
pub struct Observations {
    pub events: Vec<Observed>,
    /// Server-time intervals during which the agent had asked to be paused (end `None`: still).
    pub unavailable: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)>,
}

async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Runs one agent until `ctl` closes; answers what it observed.
pub async fn run(me: Identity, shared: Arc<Shared>, mut ctl: mpsc::UnboundedReceiver<Control>) -> Observations {
    let mut log = Vec::new();
    let mut last_seq: HashMap<String, i64> = HashMap::new();
    let mut holding: HashMap<String, ()> = HashMap::new();
    let mut unavailable: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> = Vec::new();
    let mut resume_at: Option<tokio::time::Instant> = None;
    let mut first = true;
    'connection: loop {
        let ws = match connect(&shared.api, &me.token).await {
            Ok(ws) => ws,
            Err(e) => {
                eprintln!("agent {}: connect failed: {e:#}", me.index);
                shared.stats.agent_api_errors.inc();
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let (mut tx, mut rx) = ws.split();
        if first {
            first = false;
            // Thousands of agents connecting at once on two cores: a pooled connection can be
            // closed under the request (the server's request timeout). Tried again, as a desk
            // would; an error is counted only if every attempt fails.
            let mut attempt = 0;
            while let Err(e) = set_presence(&shared.api, &me.token, json!({"status": "available"})).await {
                attempt += 1;
                if attempt == 5 {
                    eprintln!("agent {}: {e:#}", me.index);
                    shared.stats.agent_api_errors.inc();
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        } else if !last_seq.is_empty() {
            let resume = json!({"type": "resume", "conversations": last_seq});
            let _ = tx.send(Message::text(resume.to_string())).await;
            // As the desk does after a reconnect: reload the history of what it shows.
            for conv in holding.keys().cloned() {
                tokio::spawn(reload_history(me.clone(), shared.clone(), conv));
            }
        }
        let away: Duration = loop {
            tokio::select! {
                frame = rx.next() => {
                    let Some(Ok(frame)) = frame else {
                        // The server closed it (or the run is ending): reconnect unless told to stop.
                        if ctl.is_closed() { break 'connection; }
                        shared.stats.reconnects.inc();
                        continue 'connection;
                    };
                    let Message::Text(text) = frame else { continue };
                    let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                    for (kind, ev) in events_of(&v) {
                        let conv = ev["conversation_id"].as_str().unwrap_or_default().to_owned();
                        let seq = ev["seq"].as_i64().unwrap_or(0);
                        let entry = last_seq.entry(conv.clone()).or_insert(0);
                        *entry = (*entry).max(seq);
                        let agent_id = ev["agent_id"].as_str().map(str::to_owned);
                        let at = ev["at"].as_str().and_then(|s| s.parse::<DateTime<Utc>>().ok()).unwrap_or_else(Utc::now);
                        log.push(Observed {
                            observer: me.index,
                            conversation_id: conv.clone(),
                            seq,
                            kind: kind.clone(),
                            agent_id: agent_id.clone(),
                            channel: ev.pointer("/conversation/channel").and_then(Value::as_str).map(str::to_owned),
                            arrived_at: ev.pointer("/conversation/arrived_at").and_then(Value::as_str).and_then(|s| s.parse().ok()),
                            at,
                        });
                        let mine = agent_id.as_deref() == Some(me.id.as_str());
                        if mine && kind == "offered" {
                            shared.stats.offers.inc();
                            let accept = json!({"type": "accept", "conversation_id": conv, "ref": conv});
                            let _ = tx.send(Message::text(accept.to_string())).await;
                            spawn_reached(&shared, &me, &conv);
                        } else if mine && matches!(kind.as_str(), "assigned" | "offer_accepted" | "transferred")
                            && !holding.contains_key(&conv) {
                            holding.insert(conv.clone(), ());
                            shared.stats.assignments.inc();
                            if kind == "assigned" { spawn_reached(&shared, &me, &conv); }
                            tokio::spawn(handle(me.clone(), shared.clone(), conv));
                        } else if matches!(kind.as_str(), "concluded" | "cancelled" | "abandoned" | "requeued" | "returned"
                            | "transferred_out" | "transferred_to_service") {
                            holding.remove(&conv);
                        }
                    }
                    match v["type"].as_str() {
                        Some("message") => {
                            let m = &v["message"];
                            if m["direction"] == "in"
                                && let Some((_, tag)) = m["body"].as_str().and_then(parse_customer_tag) {
                                shared.stats.message_seen(tag, true);
                            }
                        }
                        Some("snapshot") => {
                            // Conversations that became mine while I was away (assigned during a
                            // disconnect or a server restart) are in the snapshot but not in my
                            // resume: ask for their whole history of events, as the desk shows them.
                            let unknown: HashMap<String, i64> = v["conversations"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .filter_map(|c| c["id"].as_str())
                                .filter(|id| !last_seq.contains_key(*id))
                                .map(|id| (id.to_owned(), 0))
                                .collect();
                            if !unknown.is_empty() {
                                let resume = json!({"type": "resume", "conversations": unknown});
                                let _ = tx.send(Message::text(resume.to_string())).await;
                            }
                            for offer in v["offers"].as_array().into_iter().flatten() {
                                let conv = offer["conversation_id"].as_str().unwrap_or_default();
                                let accept = json!({"type": "accept", "conversation_id": conv, "ref": conv});
                                let _ = tx.send(Message::text(accept.to_string())).await;
                            }
                        }
                        _ => {}
                    }
                }
                order = ctl.recv() => match order {
                    None => break 'connection,
                    Some(Control::Reconnect(away)) => {
                        let _ = tx.send(Message::Close(None)).await;
                        break away;
                    }
                    Some(Control::Pause(length)) => {
                        if resume_at.is_some() { continue; }
                        match set_presence(&shared.api, &me.token,
                            json!({"status": "paused", "pause_reason_id": shared.behaviour.pause_reason_id})).await {
                            Ok(p) => {
                                shared.stats.pauses.inc();
                                let since = p["since"].as_str().and_then(|s| s.parse().ok()).unwrap_or_else(Utc::now);
                                unavailable.push((since, None));
                                resume_at = Some(tokio::time::Instant::now() + length);
                            }
                            Err(e) => { eprintln!("agent {}: {e:#}", me.index); shared.stats.agent_api_errors.inc(); }
                        }
                    }
                },
                _ = sleep_until_some(resume_at) => {
                    resume_at = None;
                    match set_presence(&shared.api, &me.token, json!({"status": "available"})).await {
                        Ok(p) => {
                            let since = p["since"].as_str().and_then(|s| s.parse().ok()).unwrap_or_else(Utc::now);
                            if let Some(last) = unavailable.last_mut() { last.1 = Some(since); }
                        }
                        Err(e) => { eprintln!("agent {}: {e:#}", me.index); shared.stats.agent_api_errors.inc(); }
                    }
                }
            }
        };
        tokio::time::sleep(away).await;
        shared.stats.reconnects.inc();
    }
    Observations { events: log, unavailable }
}

/// The conversation events a frame carries: a live `event`, or the events of a `gap`.
fn events_of(v: &Value) -> Vec<(String, Value)> {
    match v["type"].as_str() {
        Some("event") => vec![(v["kind"].as_str().unwrap_or_default().to_owned(), v.clone())],
        Some("gap") => v["events"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                let mut e = e.clone();
                e["conversation_id"] = v["conversation_id"].clone();
                (e["kind"].as_str().unwrap_or_default().to_owned(), e)
            })
            .collect(),
        _ => Vec::new(),
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(api: &Api, token: &str) -> anyhow::Result<Ws> {
    let mut req = api.ws_agent_url().into_client_request()?;
    req.headers_mut().insert("Authorization", HeaderValue::from_str(&format!("Bearer {token}"))?);
    // Nagle off, as browsers have it on every socket.
    let (ws, _) = tokio_tungstenite::connect_async_with_config(req, Some(super::ws_config()), true).await?;
    Ok(ws)
}

async fn set_presence(api: &Api, token: &str, body: Value) -> anyhow::Result<Value> {
    api.expect(Method::PUT, "/api/v1/me/presence", Some(token), Some(&body), StatusCode::OK).await
}

/// Measures new conversation → offer or assignment once the conversation's customer is known
/// (its history names it).
fn spawn_reached(shared: &Arc<Shared>, me: &Identity, conv: &str) {
    let at = Instant::now();
    let shared = shared.clone();
    let token = me.token.clone();
    let conv = conv.to_owned();
    tokio::spawn(async move {
        // A webchat conversation opens at the visitor's `start`, so it can reach an agent before
        // its first message is stored: look again shortly rather than miss it (a missed one would
        // be credited to the customer's next conversation, many seconds later).
        for _ in 0..50 {
            if let Ok(v) = shared
                .api
                .expect(Method::GET, &format!("/api/v1/conversations/{conv}"), Some(&token), None, StatusCode::OK)
                .await
                && let Some((customer, _)) = first_tag(&v)
            {
                shared.stats.conversation_of(customer, &conv);
                shared.stats.conversation_reached(customer, &conv, at);
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

/// Reads a conversation's history, counting the customer messages in it as seen.
async fn reload_history(me: Identity, shared: Arc<Shared>, conv: String) {
    let path = format!("/api/v1/conversations/{conv}");
    if let Ok(v) = shared.api.expect(Method::GET, &path, Some(&me.token), None, StatusCode::OK).await {
        for m in v["messages"].as_array().into_iter().flatten().filter(|m| m["direction"] == "in") {
            if let Some((_, tag)) = m["body"].as_str().and_then(parse_customer_tag) {
                shared.stats.message_seen(tag, false);
            }
        }
    }
}

fn first_tag(conversation: &Value) -> Option<(u64, u64)> {
    conversation["messages"]
        .as_array()?
        .iter()
        .filter(|m| m["direction"] == "in")
        .find_map(|m| m["body"].as_str().and_then(parse_customer_tag))
}

/// Works one conversation: reads its history (the messages that came while it waited), replies
/// after think times until the handling time is over, then concludes it.
async fn handle(me: Identity, shared: Arc<Shared>, conv: String) {
    let started = Instant::now();
    let path = format!("/api/v1/conversations/{conv}");
    let customer = match shared.api.expect(Method::GET, &path, Some(&me.token), None, StatusCode::OK).await {
        Ok(v) => {
            for m in v["messages"].as_array().into_iter().flatten().filter(|m| m["direction"] == "in") {
                if let Some((_, tag)) = m["body"].as_str().and_then(parse_customer_tag) {
                    shared.stats.message_seen(tag, false);
                }
            }
            let customer = first_tag(&v).map(|(c, _)| c);
            if let Some(c) = customer {
                shared.stats.conversation_of(c, &conv);
            }
            customer
        }
        Err(e) => {
            eprintln!("agent {}: {e:#}", me.index);
            shared.stats.agent_api_errors.inc();
            None
        }
    };
    if let Some(c) = customer {
        shared.customers.serving(c);
    }
    let mut n = 0u32;
    while started.elapsed() < shared.behaviour.handling && !shared.stopping.load(Ordering::Relaxed) {
        let remaining = shared.behaviour.handling.saturating_sub(started.elapsed());
        let think = super::exponential(shared.behaviour.think);
        if think >= remaining {
            // The handling time ends before the next reply would.
            tokio::time::sleep(remaining).await;
            break;
        }
        tokio::time::sleep(think).await;
        if shared.stopping.load(Ordering::Relaxed) {
            break;
        }
        n += 1;
        let reply = super::next_reply();
        shared.stats.reply_planned(reply);
        let body = json!({"text": format!("reply {n} {}", reply_tag(reply))});
        let sent = Instant::now();
        let res = shared
            .api
            .http
            .post(format!("{}{path}/messages", shared.api.base))
            .bearer_auth(&me.token)
            .header("Idempotency-Key", format!("load-{reply}"))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await;
        match res {
            Ok(r) if r.status() == StatusCode::CREATED => {
                shared.stats.agent_send_api.since(sent);
                shared.stats.replies_sent.inc();
            }
            Ok(r) => {
                shared.stats.forget_reply(reply);
                if r.status() == StatusCode::CONFLICT {
                    // The conversation left us (e.g. after a disconnect grace): stop working it.
                    return;
                }
                eprintln!("agent {}: reply answered {}", me.index, r.status());
                shared.stats.agent_api_errors.inc();
            }
            Err(e) => {
                shared.stats.forget_reply(reply);
                eprintln!("agent {}: reply failed: {}", me.index, super::customer::chain(&e));
                shared.stats.agent_api_errors.inc();
            }
        }
    }
    if shared.stopping.load(Ordering::Relaxed) {
        return;
    }
    if let Some(c) = customer {
        shared.customers.closing(c);
    }
    match shared.api.call(Method::POST, &format!("{path}/conclude"), Some(&me.token), Some(&json!({}))).await {
        Ok((StatusCode::OK, _)) => shared.stats.concluded.inc(),
        Ok((status, body)) => {
            eprintln!("agent {}: conclude answered {status}: {body}", me.index);
            shared.stats.agent_api_errors.inc();
        }
        Err(e) => {
            eprintln!("agent {}: conclude failed: {e}", me.index);
            shared.stats.agent_api_errors.inc();
        }
    }
}
