//! `GET /metrics` (S5): the Prometheus text exposition format (version 0.0.4), written by hand.
//! Gauges are read from the engine's memory (one message to the distributor), counters are
//! atomics bumped where things happen: the engine counts ingested messages and opened / ended
//! conversations, the web layer counts outbound sends and refused webhooks. A scrape never
//! queries the database.
//!
//! Open like `/healthz` unless `OMNIROUTE_METRICS_TOKEN` is set; then it takes
//! `Authorization: Bearer <token>` (docs/api.md, docs/configuration.md).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, get, web};
use engine::model::{CHANNELS, channel_index};
use schema::{Channel, ConversationState, MessageStatus};

use crate::api::error::ApiError;
use crate::state::AppState;

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

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

    /// A webhook request was answered with a 4xx.
    pub fn webhook_refused(&self, source: &'static str, status: u16) {
        if let Ok(mut refused) = self.refused.lock() {
            *refused.entry((source, status)).or_default() += 1;
        }
    }
}

/// The label of the webhook a path belongs to, if it is one.
fn webhook_source(path: &str) -> Option<&'static str> {
    let segment = path.strip_prefix("/webhooks/")?.split('/').next()?;
    Some(SOURCES.iter().find(|(s, _)| *s == segment).map_or("other", |(_, label)| label))
}

/// Middleware around the webhooks: counts the requests answered with a 4xx (bad signatures,
/// malformed bodies, unknown services), which a provider does not retry and an operator wants
/// to see.
pub async fn count_refusals(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let source = webhook_source(req.path());
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let res = next.call(req).await;
    let status = match &res {
        Ok(r) => r.status(),
        Err(e) => e.as_response_error().status_code(),
    };
    if status.is_client_error()
        && let (Some(source), Some(state)) = (source, state)
    {
        state.counters.webhook_refused(source, status.as_u16());
    }
    res
}

/// One metric family being written: its HELP and TYPE lines, then samples.
struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// A label value as the format wants it: backslash, double quote and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Everything `/metrics` shows, as text.
pub async fn render(state: &AppState) -> String {
    let gauges = state.engine.gauges().await;
    let stats = state.engine.stats();
    let mut out = Out(String::with_capacity(16 * 1024));

    let per_service = |out: &mut Out, name: &str, help: &str, value: &dyn Fn(&engine::ServiceGauges) -> i64| {
        out.family(name, "gauge", help);
        for s in &gauges.services {
            let service = s.service_id.to_string();
            out.sample(name, &[("service", &service), ("channel", s.channel.as_str())], value(s));
        }
    };
    let count = |s: &engine::ServiceGauges, states: &[ConversationState]| -> i64 {
        s.by_state.iter().filter(|(st, _)| states.contains(st)).map(|(_, n)| *n as i64).sum()
    };
    out.family("omniroute_conversations", "gauge", "Open conversations per service, channel and state.");
    for s in &gauges.services {
        let service = s.service_id.to_string();
        for (st, n) in &s.by_state {
            out.sample(
                "omniroute_conversations",
                &[("service", &service), ("channel", s.channel.as_str()), ("state", st.as_str())],
                n,
            );
        }
    }
    per_service(
        &mut out,
        "omniroute_conversations_waiting",
        "Conversations waiting in the queue (queued or inactive_in_queue).",
        &|s| count(s, &[ConversationState::Queued, ConversationState::InactiveInQueue]),
    );
    per_service(
        &mut out,
        "omniroute_conversations_offered",
        "Conversations offered to an agent, not yet answered.",
        &|s| count(s, &[ConversationState::Offered]),
    );
    per_service(&mut out, "omniroute_conversations_assigned", "Conversations in service with an agent.", &|s| {
        count(s, &[ConversationState::InService])
    });
    per_service(
        &mut out,
        "omniroute_conversations_inactive",
        "Conversations whose customer went quiet (inactive at the agent or inactive in the queue).",
        &|s| s.inactive_at_agent as i64 + count(s, &[ConversationState::InactiveInQueue]),
    );
    per_service(
        &mut out,
        "omniroute_queue_oldest_wait_seconds",
        "How long the oldest waiting conversation has waited, in seconds (0 when none waits).",
        &|s| s.oldest_wait_s,
    );
    out.family("omniroute_agents", "gauge", "Agents per presence state.");
    for (status, n) in &gauges.agents {
        out.sample("omniroute_agents", &[("state", status.as_str())], n);
    }

    let per_channel = |out: &mut Out, name: &str, help: &str, value: &dyn Fn(Channel) -> u64| {
        out.family(name, "counter", help);
        for c in Channel::ALL {
            out.sample(name, &[("channel", c.as_str())], value(*c));
        }
    };
    per_channel(
        &mut out,
        "omniroute_messages_ingested_total",
        "Customer messages stored (replays not counted).",
        &|c| stats.ingested(c),
    );
    per_channel(
        &mut out,
        "omniroute_messages_sent_total",
        "Agent messages the outbound sender handed to the provider.",
        &|c| state.counters.sent[channel_index(c)].load(Ordering::Relaxed),
    );
    per_channel(
        &mut out,
        "omniroute_messages_failed_total",
        "Agent messages that failed for good (refused by the provider, or no answer after every retry).",
        &|c| state.counters.failed[channel_index(c)].load(Ordering::Relaxed),
    );
    per_channel(&mut out, "omniroute_conversations_opened_total", "Conversations opened.", &|c| stats.opened(c));
    out.family("omniroute_conversations_ended_total", "counter", "Conversations ended, per final state.");
    for c in Channel::ALL {
        for st in engine::EngineStats::ended_states() {
            out.sample(
                "omniroute_conversations_ended_total",
                &[("channel", c.as_str()), ("state", st.as_str())],
                stats.ended(*c, *st),
            );
        }
    }
    out.family(
        "omniroute_webhooks_refused_total",
        "counter",
        "Webhook requests answered with a 4xx, per source and status.",
    );
    let refused = state.counters.refused.lock().map(|r| r.clone()).unwrap_or_default();
    for ((source, status), n) in refused {
        out.sample("omniroute_webhooks_refused_total", &[("source", source), ("status", &status.to_string())], n);
    }
    out.0
}

/// Prometheus metrics (S5); see the module documentation for who may read them.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain"),
              (status = 401, body = crate::api::error::ErrorBody)))]
#[get("/metrics")]
pub async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if let Some(expected) = &state.metrics_token {
        let given = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !crate::channels::ct_eq(given.as_bytes(), expected.as_bytes()) {
            return Err(ApiError::new(
                actix_web::http::StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "send Authorization: Bearer with the server's OMNIROUTE_METRICS_TOKEN",
            ));
        }
    }
    Ok(HttpResponse::Ok().content_type(CONTENT_TYPE).body(render(&state).await))
}
