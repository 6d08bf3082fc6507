//! What a run records: latency histograms (µs, hdrhistogram), counters, and the tags that tie a
//! customer's message to the agent's screen and an agent's reply to the provider.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// A latency histogram in microseconds, from 1 µs to 10 minutes, 3 significant figures.
pub struct Latency(Mutex<Histogram<u64>>);

impl Default for Latency {
    fn default() -> Self {
        Self(Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")))
    }
}

impl Latency {
    /// Records the time from `from` to now.
    pub fn since(&self, from: Instant) {
        self.record_us(from.elapsed().as_micros() as u64);
    }

    /// Records one value in microseconds (clamped into the histogram's range).
    pub fn record_us(&self, us: u64) {
        let mut h = self.0.lock().unwrap_or_else(|e| e.into_inner());
        h.saturating_record(us.max(1));
    }

    /// Percentiles in milliseconds.
    pub fn summary(&self) -> LatencySummary {
        let h = self.0.lock().unwrap_or_else(|e| e.into_inner());
        Self::summarise(&h)
    }

    /// Percentiles in milliseconds of what was recorded since the last call, and a fresh start
    /// (the ingest-ceiling scenario's per-step windows).
    pub fn take(&self) -> LatencySummary {
        let mut h = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let out = Self::summarise(&h);
        h.reset();
        out
    }

    fn summarise(h: &Histogram<u64>) -> LatencySummary {
        let ms = |v: u64| v as f64 / 1000.0;
        LatencySummary {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// p50 / p99 / p99.9 / max of one latency, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// A counter.
#[derive(Default)]
pub struct Count(AtomicU64);

impl Count {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The customer messages not yet both acknowledged and seen on a desk. One that is both is
/// dropped: the table stays the size of what is in flight, not of the whole run (a scan of it by
/// the progress line, under its lock, stalled every sender for milliseconds late in long runs).
#[derive(Default)]
struct InFlight {
    messages: HashMap<u64, Sent>,
    /// Of those, the acknowledged ones (seen by no agent yet).
    unseen_acked: u64,
}

/// A customer message sent by the harness: when it was meant to go, and whether it was
/// acknowledged.
struct Sent {
    customer: u64,
    intended: Instant,
    acked: bool,
    seen: bool,
    ack_us: u64,
}

/// Everything a run measures; shared by the customers, the agents and the fake provider.
#[derive(Default)]
pub struct Stats {
    /// Webhook sent (intended time) → 2xx answer.
    pub webhook_ack: Latency,
    /// First message's intended time → the agent is offered or assigned the conversation.
    pub offer_or_assign: Latency,
    /// Customer message's intended time → `message` frame on the agent's desk.
    pub message_to_screen: Latency,
    /// Customer message's intended time → the agent read it in the history loaded on assignment
    /// (the messages that arrived while the conversation waited).
    pub message_to_history: Latency,
    /// Agent's `POST …/messages` issued → the provider received the send.
    pub send_to_provider: Latency,
    /// Agent's `POST …/messages` → 201.
    pub agent_send_api: Latency,
    /// The same as `webhook_ack` and `message_to_screen`, for the current window only
    /// (emptied by [`Latency::take`] at each step of the ingest-ceiling scenario).
    pub window_ack: Latency,
    pub window_screen: Latency,
    /// Webchat `message` frame sent (intended time) → `ack` (committed).
    pub webchat_ack: Latency,
    /// Webchat messages sent whose widget closed (chat ended) before an `ack` came.
    pub webchat_unanswered: Count,
    /// Webchat messages not sent: the visitor's chat had ended and its widget had closed.
    pub webchat_gone: Count,
    /// Webhooks sent again after a failure or a 5xx (as a provider retries).
    pub webhook_retries: Count,
    pub webhooks_sent: Count,
    pub webhooks_acked: Count,
    pub webhooks_refused: Count,
    pub webhooks_failed: Count,
    pub conversations_started: Count,
    pub assignments: Count,
    pub offers: Count,
    pub concluded: Count,
    pub replies_sent: Count,
    pub replies_at_provider: Count,
    pub agent_api_errors: Count,
    pub reconnects: Count,
    pub pauses: Count,
    /// Correctness: an offer or assignment to an agent after its pause or sign-off took effect.
    pub offers_to_unavailable: Count,
    /// Correctness: monitor samples where a conversation waited while an eligible agent was free
    /// (twice in a row, so a decision in flight is not counted).
    pub waiting_while_free: Count,
    pub monitor_samples: Count,
    in_flight: Mutex<InFlight>,
    /// Agent reply number → when the agent issued the send.
    replies: Mutex<HashMap<u64, Instant>>,
    /// Conversations whose first message the harness sent, by customer → intended time.
    first_messages: Mutex<HashMap<u64, Instant>>,
    offered_once: Mutex<HashSet<String>>,
    /// `--samples`: every message seen live, once [`Stats::keep_samples`] asked for them.
    samples: Mutex<Option<Vec<Sample>>>,
    /// The conversations agents were given, by customer (to look for unseen messages).
    conversations_of: Mutex<HashMap<u64, HashSet<String>>>,
}

/// One customer message seen live on a desk (`--samples`).
pub struct Sample {
    pub intended: Instant,
    pub customer: u64,
    /// Intended time → acknowledgement (0 when the acknowledgement came after the frame).
    pub ack_us: u64,
    /// Intended time → the `message` frame on the desk.
    pub screen_us: u64,
}

impl Stats {
    /// Keeps every message's latencies from now on, for [`Stats::take_samples`].
    pub fn keep_samples(&self) {
        *self.samples.lock().unwrap_or_else(|e| e.into_inner()) = Some(Vec::new());
    }

    /// The samples kept, in the order the messages were meant to be sent.
    pub fn take_samples(&self) -> Vec<Sample> {
        let mut all = self.samples.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or_default();
        all.sort_by_key(|s| s.intended);
        all
    }

    /// Registers a customer message about to be sent.
    pub fn message_planned(&self, customer: u64, tag: u64, intended: Instant) {
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .messages
            .insert(tag, Sent { customer, intended, acked: false, seen: false, ack_us: 0 });
    }

    /// The webhook carrying `tag` was answered 2xx.
    pub fn message_acked(&self, tag: u64) {
        let mut f = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let Some(m) = f.messages.get_mut(&tag).filter(|m| !m.acked) else { return };
        m.acked = true;
        m.ack_us = m.intended.elapsed().as_micros() as u64;
        if m.seen {
            f.messages.remove(&tag);
        } else {
            f.unseen_acked += 1;
        }
    }

    /// An agent saw message `tag`, live (`frame`) or in a history it loaded. The first sighting
    /// counts.
    pub fn message_seen(&self, tag: u64, frame: bool) {
        let (intended, ack_us, customer) = {
            let mut f = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            let Some(m) = f.messages.get_mut(&tag).filter(|m| !m.seen) else { return };
            m.seen = true;
            let seen = (m.intended, m.ack_us, m.customer);
            if m.acked {
                f.messages.remove(&tag);
                f.unseen_acked -= 1;
            }
            seen
        };
        if frame && let Some(samples) = self.samples.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            samples.push(Sample { intended, customer, ack_us, screen_us: intended.elapsed().as_micros() as u64 });
        }
        if frame {
            self.message_to_screen.since(intended);
            self.window_screen.since(intended);
        } else {
            self.message_to_history.since(intended);
        }
    }

    /// Acknowledged messages no agent has seen yet.
    pub fn unseen_acked(&self) -> u64 {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).unseen_acked
    }

    /// The customer and tag of acknowledged messages no agent has seen.
    pub fn unseen_acked_tags(&self) -> Vec<(u64, u64)> {
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .messages
            .iter()
            .filter(|(_, m)| m.acked && !m.seen)
            .map(|(t, m)| (m.customer, *t))
            .collect()
    }

    /// A customer's first message is about to be sent.
    pub fn conversation_planned(&self, customer: u64, intended: Instant) {
        self.first_messages.lock().unwrap_or_else(|e| e.into_inner()).insert(customer, intended);
    }

    /// An agent was offered or assigned the conversation of `customer` (`conversation` is its
    /// id); only the first time counts.
    pub fn conversation_reached(&self, customer: u64, conversation: &str, at: Instant) {
        if !self.offered_once.lock().unwrap_or_else(|e| e.into_inner()).insert(conversation.to_owned()) {
            return;
        }
        if let Some(intended) = self.first_messages.lock().unwrap_or_else(|e| e.into_inner()).remove(&customer) {
            let waited = at.saturating_duration_since(intended);
            if waited.as_secs() >= 10 {
                eprintln!("slow first offer/assignment: customer {customer}, conversation {conversation}, {waited:?}");
            }
            self.offer_or_assign.record_us(waited.as_micros() as u64);
        }
    }

    /// An agent learnt that `conversation` is `customer`'s.
    pub fn conversation_of(&self, customer: u64, conversation: &str) {
        self.conversations_of
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(customer)
            .or_default()
            .insert(conversation.to_owned());
    }

    /// The conversations of `customer` agents were given.
    pub fn conversations_of(&self, customer: u64) -> Vec<String> {
        self.conversations_of
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&customer)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// How many conversations have reached an agent (offered or assigned).
    pub fn reached(&self) -> u64 {
        self.offered_once.lock().unwrap_or_else(|e| e.into_inner()).len() as u64
    }

    /// An agent is about to send reply `n`.
    pub fn reply_planned(&self, n: u64) {
        self.replies.lock().unwrap_or_else(|e| e.into_inner()).insert(n, Instant::now());
    }

    /// The fake provider received reply `n`.
    pub fn reply_at_provider(&self, n: u64) {
        let at = self.replies.lock().unwrap_or_else(|e| e.into_inner()).remove(&n);
        if let Some(at) = at {
            self.replies_at_provider.inc();
            self.send_to_provider.since(at);
        }
    }

    /// A reply that was refused: the provider will never see it.
    pub fn forget_reply(&self, n: u64) {
        self.replies.lock().unwrap_or_else(|e| e.into_inner()).remove(&n);
    }

    /// Up to `limit` replies the provider has not received, oldest first, with how long ago
    /// they were sent.
    pub fn missing_replies(&self, limit: usize) -> Vec<(u64, Duration)> {
        let replies = self.replies.lock().unwrap_or_else(|e| e.into_inner());
        let mut missing: Vec<(u64, Duration)> = replies.iter().map(|(n, at)| (*n, at.elapsed())).collect();
        missing.sort_by_key(|(_, age)| std::cmp::Reverse(*age));
        missing.truncate(limit);
        missing
    }

    /// Replies sent by agents that the provider has not received.
    pub fn replies_missing(&self) -> u64 {
        self.replies.lock().unwrap_or_else(|e| e.into_inner()).len() as u64
    }
}

/// The tag the harness puts in every customer message: `[lt:<customer>:<message>]`.
pub fn customer_tag(customer: u64, message: u64) -> String {
    format!("[lt:{customer}:{message}]")
}

/// Reads a customer tag back from a message body.
pub fn parse_customer_tag(body: &str) -> Option<(u64, u64)> {
    let start = body.find("[lt:")? + 4;
    let rest = &body[start..];
    let end = rest.find(']')?;
    let (c, m) = rest[..end].split_once(':')?;
    Some((c.parse().ok()?, m.parse().ok()?))
}

/// The tag of an agent's reply: `[rp:<n>]`.
pub fn reply_tag(n: u64) -> String {
    format!("[rp:{n}]")
}

/// Reads a reply tag back from what the provider received.
pub fn parse_reply_tag(body: &str) -> Option<u64> {
    let start = body.find("[rp:")? + 4;
    let rest = &body[start..];
    rest[..rest.find(']')?].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_read_back() {
        assert_eq!(parse_customer_tag(&format!("hello {} there", customer_tag(12, 345))), Some((12, 345)));
        assert_eq!(parse_customer_tag("no tag"), None);
        assert_eq!(parse_reply_tag(&format!("ok {}", reply_tag(9))), Some(9));
        assert_eq!(parse_reply_tag("[rp:x]"), None);
    }

    #[test]
    fn a_message_is_unseen_from_its_ack_until_an_agent_sees_it_in_either_order() {
        let stats = Stats::default();
        let now = Instant::now();
        for tag in 1..=3 {
            stats.message_planned(7, tag, now);
        }
        stats.message_acked(1);
        stats.message_acked(1);
        stats.message_seen(2, true);
        assert_eq!(stats.unseen_acked(), 1);
        assert_eq!(stats.unseen_acked_tags(), vec![(7, 1)]);
        stats.message_acked(2);
        stats.message_seen(1, false);
        stats.message_seen(1, true);
        assert_eq!(stats.unseen_acked(), 0);
        assert!(stats.unseen_acked_tags().is_empty());
        // Tag 3 was never acknowledged: not lost, and still tracked.
        stats.message_acked(3);
        assert_eq!(stats.unseen_acked_tags(), vec![(7, 3)]);
        assert_eq!(stats.message_to_screen.summary().count, 1);
        assert_eq!(stats.message_to_history.summary().count, 1);
    }
}
