//! `GET /metrics` (S5): the Prometheus text exposition format (version 0.0.4), written by hand.
//! Gauges are read from the engine's memory (one message to the distributor), counters are
//! atomics bumped where things happen: the engine counts ingested messages and opened / ended
//! conversations, the web layer counts outbound sends and refused webhooks. A scrape never
//! queries the database.
//!
//! Open like `/healthz` unless `OMNIROUTE_METRICS_TOKEN` is set; then it takes
//! `Authorization: Bearer <token>` (docs/api.md, docs/configuration.md).

use std::fmt::Write;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, get, web};
use schema::{Channel, ConversationState};

use crate::core::counters::webhook_source;
use crate::core::error::{ApiError, Code};
use crate::core::state::AppState;

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

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
        &|c| state.counters.sent(c),
    );
    per_channel(
        &mut out,
        "omniroute_messages_failed_total",
        "Agent messages that failed for good (refused by the provider, or no answer after every retry).",
        &|c| state.counters.failed(c),
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
    let refused = state.counters.refused();
    for ((source, status), n) in refused {
        out.sample("omniroute_webhooks_refused_total", &[("source", source), ("status", &status.to_string())], n);
    }
    out.0
}

/// Prometheus metrics (S5); see the module documentation for who may read them.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain"),
              (status = 401, body = crate::core::error::ErrorBody)))]
#[get("/metrics")]
pub async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if let Some(expected) = &state.metrics_token {
        let given = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !crate::core::secrets::ct_eq(given.as_bytes(), expected.as_bytes()) {
            return Err(ApiError::new(
                actix_web::http::StatusCode::UNAUTHORIZED,
                Code::Unauthenticated,
                "send Authorization: Bearer with the server's OMNIROUTE_METRICS_TOKEN",
            ));
        }
    }
    Ok(HttpResponse::Ok().content_type(CONTENT_TYPE).body(render(&state).await))
}
