//! Counters the web layer keeps for `GET /metrics` (S5).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use engine::model::{CHANNELS, channel_index};
use schema::{Channel, MessageStatus};

/// Counters the web layer keeps (the engine keeps its own, `engine::EngineStats`).
#[derive(Debug, Default)]
pub struct WebCounters {
    sent: [AtomicU64; CHANNELS],
    failed: [AtomicU64; CHANNELS],
    /// Refused webhook requests per (source, status).
    refused: Mutex<BTreeMap<(&'static str, u16), u64>>,
}

/// The webhook sources, by the path segment after `/webhooks/`, and their label.
const SOURCES: [(&str, &str); 6] = [
    ("whatsapp", "whatsapp"),
    ("messenger", "messenger"),
    ("instagram", "instagram"),
    ("telegram", "telegram"),
    ("twilio", "sms"),
    ("email", "email"),
];

impl WebCounters {
    /// The outbound sender moved a message to `status` (`sent` or `failed` are counted).
    pub fn outbound(&self, channel: Channel, status: MessageStatus) {
        let counter = match status {
            MessageStatus::Sent => &self.sent,
            MessageStatus::Failed => &self.failed,
            _ => return,
        };
        counter[channel_index(channel)].fetch_add(1, Ordering::Relaxed);
    }

    /// Agent messages handed to the provider on `channel`.
    pub fn sent(&self, channel: Channel) -> u64 {
        self.sent[channel_index(channel)].load(Ordering::Relaxed)
    }

    /// Agent messages that failed for good on `channel`.
    pub fn failed(&self, channel: Channel) -> u64 {
        self.failed[channel_index(channel)].load(Ordering::Relaxed)
    }

    /// Refused webhook requests per (source, status).
    pub fn refused(&self) -> BTreeMap<(&'static str, u16), u64> {
        self.refused.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// A webhook request was answered with a 4xx.
    pub fn webhook_refused(&self, source: &'static str, status: u16) {
        if let Ok(mut refused) = self.refused.lock() {
            *refused.entry((source, status)).or_default() += 1;
        }
    }
}

/// The label of the webhook a path belongs to, if it is one.
pub fn webhook_source(path: &str) -> Option<&'static str> {
    let segment = path.strip_prefix("/webhooks/")?.split('/').next()?;
    Some(SOURCES.iter().find(|(s, _)| *s == segment).map_or("other", |(_, label)| label))
}
