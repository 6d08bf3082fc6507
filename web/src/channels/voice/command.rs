//! Transfer commands to a phone system that speaks CTI only (no ARI): when a call that arrived
//! through `POST /api/v1/cti/events` is transferred (R11), the service's `cti_command_url`
//! receives `POST` with `Authorization: Bearer <cti_token>` and
//!
//! ```json
//! {"command": "transfer", "call_id": "<the CTI call id>",
//!  "target": {"agent_extension": "2002"} | {"service_id": "<uuid>"} | {"extension": "5500"}}
//! ```
//!
//! Any 2xx is success; 5xx or no answer is retried (three attempts, backoff), anything else is
//! logged. The conversation has already moved in the engine; the command tells the phone system
//! to move the call the same way.

use std::time::Duration;

use engine::book::{ConversationEvent, EventKind};
use schema::models::{Agent, Service};
use schema::{ConversationId, MessageKind, store};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tracing::{info, warn};

use super::VoiceEvent;
use super::ari::AriSettings;
use crate::core::state::AppState;

/// Attempts per command when the phone system answers 5xx or not at all.
const ATTEMPTS: u32 = 3;

/// Sends the commands of CTI-only voice services, from the engine's voice events.
pub fn spawn(state: AppState, mut feed: broadcast::Receiver<VoiceEvent>) {
    actix_web::rt::spawn(async move {
        let client = awc::Client::builder().timeout(Duration::from_secs(10)).finish();
        loop {
            let event = match feed.recv().await {
                Ok(VoiceEvent::Conversation(event)) => event,
                Ok(VoiceEvent::DialOut { .. }) => continue,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    warn!(missed = n, "the CTI command sender fell behind the engine's events");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let target = match event.kind {
                EventKind::TransferredOut => json!({"extension": event.extension.clone().unwrap_or_default()}),
                EventKind::TransferredToService => json!({"service_id": event.facts.service.to_string()}),
                EventKind::Transferred => json!({"agent_id": event.agent.map(|a| a.to_string())}),
                _ => continue,
            };
            let (state, client) = (state.clone(), client.clone());
            actix_web::rt::spawn(async move {
                if let Some((url, token, body)) = command_for(&state, &event, target).await {
                    send(&client, &url, &token, &body).await;
                }
            });
        }
    });
}

/// The command for a transferred conversation, if its call came through CTI from a service with
/// a command URL (and no ARI, whose switchboard steers its own calls).
async fn command_for(
    state: &AppState,
    event: &ConversationEvent,
    mut target: Value,
) -> Option<(String, String, Value)> {
    let conversation: ConversationId = event.facts.id;
    let agent = event.agent;
    let pool = state.pool.clone();
    let found = actix_web::web::block(move || -> Result<_, schema::StoreError> {
        let mut c = pool.get()?;
        let Some(call) = store::messages_of(&mut c, conversation)?
            .into_iter()
            .find(|m| m.kind == MessageKind::Call && m.provider_message_id.is_some())
        else {
            return Ok(None);
        };
        let service = Service::find(&mut c, call.service_id)?;
        let extension = match agent {
            Some(a) => Agent::find(&mut c, a)?.extension,
            None => None,
        };
        Ok(Some((call, service, extension)))
    })
    .await
    .ok()?
    .map_err(|e| warn!(conversation.id = %conversation, error = %e, "CTI command: database call failed"))
    .ok()??;
    let (call, service, extension) = found;
    if AriSettings::from_provider(&service.provider).is_some() {
        return None;
    }
    let field = |k: &str| service.provider.get(k).and_then(Value::as_str).unwrap_or("").trim().to_owned();
    let (url, token) = (field("cti_command_url"), field("cti_token"));
    if url.is_empty() {
        return None;
    }
    if event.kind == EventKind::Transferred {
        target = json!({"agent_extension": extension, "agent_id": target["agent_id"]});
    }
    let body = json!({"command": "transfer", "call_id": call.provider_message_id, "target": target});
    Some((url, token, body))
}

async fn send(client: &awc::Client, url: &str, token: &str, body: &Value) {
    let mut wait = Duration::from_millis(200);
    for attempt in 1..=ATTEMPTS {
        match client.post(url).bearer_auth(token).send_json(body).await {
            Ok(res) if res.status().is_success() => {
                info!(call.id = %body["call_id"], "transfer command accepted by the phone system");
                return;
            }
            Ok(res) if !res.status().is_server_error() => {
                warn!(call.id = %body["call_id"], status = res.status().as_u16(), "the phone system refused the transfer");
                return;
            }
            Ok(res) => {
                warn!(call.id = %body["call_id"], status = res.status().as_u16(), attempt, "transfer command failed")
            }
            Err(e) => warn!(call.id = %body["call_id"], error = %e, attempt, "transfer command got no answer"),
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
}
