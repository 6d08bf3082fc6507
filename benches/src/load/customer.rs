//! Simulated customers: open-loop Poisson arrivals of new conversations and of messages into
//! open ones, sent as signed provider webhooks (WhatsApp Cloud API with `X-Hub-Signature-256`,
//! Telegram Bot API updates with `X-Telegram-Bot-Api-Secret-Token`). Each send has an intended
//! time drawn from the schedule; latencies are measured from it, not from when the request
//! actually left, so a slow server cannot hide its slowness by slowing the load (no coordinated
//! omission).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hmac::{KeyInit, Mac};
use rand::Rng;
use serde_json::json;

use super::api::Api;
use super::post::Poster;
use super::stats::{Stats, customer_tag};
use super::webchat::{Sent, Visitors};

/// The WhatsApp service's `phone_number_id` (what webhooks are routed by).
pub const WA_PHONE_ID: &str = "100200300400";
/// The WhatsApp service's app secret (what webhooks are signed with).
pub const WA_APP_SECRET: &str = "load-app-secret";
/// The Telegram service's secret token.
pub const TG_SECRET: &str = "load-telegram-secret";
/// How long a customer's webhook is retried after failures (a provider retries for longer).
const RETRY_FOR: Duration = Duration::from_secs(60);

/// Where customers write to.
#[derive(Clone)]
pub struct Channels {
    /// `/webhooks/telegram/{service_id}`.
    pub telegram_service_id: String,
    /// A Telegram service no agent serves: parked conversations wait there with their timers
    /// armed (idle and restart scenarios).
    pub parking_service_id: Option<String>,
    /// Website visitors (every third customer) when the run has a webchat service.
    pub webchat: Option<Arc<Visitors>>,
}

/// The channel a customer writes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    WhatsApp,
    Telegram,
    Webchat,
}

/// The customers whose conversations are open, so further messages can go to them.
#[derive(Default)]
pub struct Customers {
    inner: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    list: Vec<u64>,
    index: HashMap<u64, usize>,
}

impl Customers {
    /// The customer's first message was acknowledged: it may write more.
    pub fn opened(&self, customer: u64) {
        let mut o = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !o.index.contains_key(&customer) {
            let at = o.list.len();
            o.list.push(customer);
            o.index.insert(customer, at);
        }
    }

    /// An agent has the conversation (nothing to do today; kept for symmetry with `closing`).
    pub fn serving(&self, _customer: u64) {}

    /// The agent is concluding: the customer writes no more (a message already on its way may
    /// still open a new conversation, which is then routed and counted like any other).
    pub fn closing(&self, customer: u64) {
        let mut o = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = o.index.remove(&customer) {
            o.list.swap_remove(at);
            if let Some(&moved) = o.list.get(at) {
                o.index.insert(moved, at);
            }
        }
    }

    /// A random customer with an open conversation.
    fn pick(&self) -> Option<u64> {
        let o = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if o.list.is_empty() {
            return None;
        }
        Some(o.list[rand::rng().random_range(0..o.list.len())])
    }

    /// How many customers have open conversations.
    pub fn open_count(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).list.len()
    }
}

/// Sends webhooks.
pub struct Sender {
    pub api: Api,
    pub stats: Arc<Stats>,
    pub customers: Arc<Customers>,
    pub channels: Channels,
    /// The webhooks' HTTP client.
    poster: Poster,
    next_customer: AtomicU64,
    next_message: AtomicU64,
}

impl Sender {
    /// A sender whose customer numbers start at `first_customer` (distinct per run phase).
    pub fn new(
        api: Api,
        stats: Arc<Stats>,
        customers: Arc<Customers>,
        channels: Channels,
        first_customer: u64,
    ) -> Self {
        Self {
            poster: Poster::new(&api.base),
            api,
            stats,
            customers,
            channels,
            next_customer: AtomicU64::new(first_customer),
            next_message: AtomicU64::new(1),
        }
    }

    /// A new customer writes a first message, meant to leave at `intended`.
    pub async fn new_conversation(self: Arc<Self>, intended: Instant) {
        let customer = self.next_customer.fetch_add(1, Ordering::Relaxed);
        self.stats.conversation_planned(customer, intended);
        self.stats.conversations_started.inc();
        if self.send(customer, intended).await {
            self.customers.opened(customer);
        }
    }

    /// A new customer writes to the parking service (no agent serves it): the conversation
    /// stays open and waiting. Not tracked per message (no agent will see it); true when
    /// acknowledged.
    pub async fn park(self: Arc<Self>) -> bool {
        let Some(service) = self.channels.parking_service_id.clone() else { return false };
        let customer = self.next_customer.fetch_add(1, Ordering::Relaxed);
        let tag = self.next_message.fetch_add(1, Ordering::Relaxed);
        let text = format!("parked {}", customer_tag(customer, tag));
        self.stats.webhooks_sent.inc();
        let intended = Instant::now();
        let ok = self.deliver(self.telegram_to(&service, customer, tag, &text), customer).await;
        if ok {
            self.stats.webhook_ack.since(intended);
            self.stats.webhooks_acked.inc();
        }
        ok
    }

    /// A customer with an open conversation writes again; nothing when none is open.
    pub async fn follow_up(self: Arc<Self>, intended: Instant) {
        if let Some(customer) = self.customers.pick() {
            self.send(customer, intended).await;
        }
    }

    /// Sends one tagged message of `customer`; true when it was acknowledged.
    async fn send(&self, customer: u64, intended: Instant) -> bool {
        let tag = self.next_message.fetch_add(1, Ordering::Relaxed);
        let text = format!("hello {}", customer_tag(customer, tag));
        self.stats.message_planned(customer, tag, intended);
        self.stats.webhooks_sent.inc();
        let telegram_service = self.channels.telegram_service_id.clone();
        let channel = self.channel_of(customer);
        let ok = match (channel, &self.channels.webchat) {
            (Channel::Webchat, Some(visitors)) => match visitors.send(customer, tag, text).await {
                Sent::Acked => {
                    self.stats.webchat_ack.since(intended);
                    self.stats.window_ack.since(intended);
                    true
                }
                Sent::Refused => {
                    self.stats.webhooks_refused.inc();
                    false
                }
                Sent::Unanswered => {
                    self.stats.webchat_unanswered.inc();
                    false
                }
                Sent::Gone => {
                    self.stats.webchat_gone.inc();
                    false
                }
            },
            _ => {
                let webhook = if channel == Channel::WhatsApp {
                    self.whatsapp(customer, tag, &text)
                } else {
                    self.telegram_to(&telegram_service, customer, tag, &text)
                };
                let ok = self.deliver(webhook, customer).await;
                if ok {
                    self.stats.webhook_ack.since(intended);
                    self.stats.window_ack.since(intended);
                }
                ok
            }
        };
        if ok {
            self.stats.webhooks_acked.inc();
            self.stats.message_acked(tag);
        }
        ok
    }

    /// Customers take turns: WhatsApp, Telegram, and webchat when the run has it.
    pub fn channel_of(&self, customer: u64) -> Channel {
        channel_of(customer, self.channels.webchat.is_some())
    }

    /// Sends a webhook until it is acknowledged, as providers do: a connection failure or a 5xx
    /// is retried (the same body, so the same provider message id) every 250 ms for up to a
    /// minute — which is what carries messages across a server restart. A 4xx is final.
    async fn deliver(&self, webhook: Webhook, customer: u64) -> bool {
        let give_up = Instant::now() + RETRY_FOR;
        let headers: Vec<(&str, &str)> = webhook.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        loop {
            let retry = match self.poster.post(&webhook.path, &headers, &webhook.body).await {
                Ok(a) if (200..300).contains(&a.status) => return true,
                Ok(a) if a.status >= 500 => format!("answered {}", a.status),
                Ok(a) => {
                    eprintln!(
                        "webhook of customer {customer} refused: {} {}",
                        a.status,
                        String::from_utf8_lossy(&a.body)
                    );
                    self.stats.webhooks_refused.inc();
                    return false;
                }
                Err(e) => e,
            };
            if Instant::now() >= give_up {
                eprintln!("webhook of customer {customer} given up: {retry}");
                self.stats.webhooks_failed.inc();
                return false;
            }
            self.stats.webhook_retries.inc();
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn whatsapp(&self, customer: u64, tag: u64, text: &str) -> Webhook {
        let wa_id = format!("55{:011}", customer);
        let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "LOADWABA", "changes": [{"field": "messages",
            "value": {"messaging_product": "whatsapp",
                      "metadata": {"display_phone_number": "15550000000", "phone_number_id": WA_PHONE_ID},
                      "contacts": [{"profile": {"name": format!("Customer {customer}")}, "wa_id": wa_id}],
                      "messages": [{"from": wa_id, "id": format!("wamid.load.{tag}"), "timestamp": unix_now().to_string(),
                                    "type": "text", "text": {"body": text}}]}}]}]})
        .to_string();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(WA_APP_SECRET.as_bytes()).expect("any key length");
        mac.update(body.as_bytes());
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        Webhook { path: "/webhooks/whatsapp".into(), headers: vec![("X-Hub-Signature-256", signature)], body }
    }

    fn telegram_to(&self, service_id: &str, customer: u64, tag: u64, text: &str) -> Webhook {
        let body = json!({"update_id": tag, "message": {"message_id": tag,
            "from": {"id": customer, "is_bot": false, "first_name": "Customer", "last_name": customer.to_string()},
            "chat": {"id": customer, "type": "private"}, "date": unix_now(), "text": text}})
        .to_string();
        Webhook {
            path: format!("/webhooks/telegram/{service_id}"),
            headers: vec![("X-Telegram-Bot-Api-Secret-Token", TG_SECRET.into())],
            body,
        }
    }
}

/// A provider's webhook as sent: path, headers besides the JSON content type, body.
struct Webhook {
    path: String,
    headers: Vec<(&'static str, String)>,
    body: String,
}

/// An error with its causes, `a: b: c`.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Drives arrivals at `rate` per second for `length`, open loop: each send is spawned at its
/// intended time whatever the previous ones are doing. `new` picks the kind of arrival.
pub async fn poisson(sender: Arc<Sender>, rate: f64, length: Duration, new: bool, stop: Arc<AtomicBool>) {
    if rate <= 0.0 {
        return;
    }
    let start = Instant::now();
    let mut intended = start;
    loop {
        intended += super::exponential(Duration::from_secs_f64(1.0 / rate));
        if intended.duration_since(start) >= length || stop.load(Ordering::Relaxed) {
            return;
        }
        tokio::time::sleep_until(tokio::time::Instant::from_std(intended)).await;
        let s = sender.clone();
        if new {
            tokio::spawn(s.new_conversation(intended));
        } else {
            tokio::spawn(s.follow_up(intended));
        }
    }
}

/// The channel of a customer: they take turns, WhatsApp, Telegram, and webchat when the run has it.
pub fn channel_of(customer: u64, webchat: bool) -> Channel {
    match customer % if webchat { 3 } else { 2 } {
        0 => Channel::WhatsApp,
        1 => Channel::Telegram,
        _ => Channel::Webchat,
    }
}
