//! Voice with a phone system the engine steers. Two ways in:
//! - CTI events (`POST /api/v1/cti/events`, [`super::cti`]): the phone system routes and tells us;
//! - Asterisk ARI ([`ari`], [`switchboard`]): calls enter our Stasis application, wait in the
//!   service's queue like any conversation, and are connected to the agent the engine picks by
//!   dialling the agent's extension and bridging the two channels.
//!
//! Transfers of calls go out to the phone system: through ARI where the service has it, else
//! as a JSON command to the service's `cti_command_url` ([`command`]).

pub mod ari;
pub mod command;
pub mod dial;
pub mod switchboard;

use crate::core::error::Code;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use engine::book::ConversationEvent;
use engine::{EngineEvent, Feed};
use schema::models::Service;
use schema::{AgentId, Channel, ConversationId, ServiceId, store};
use tokio::sync::{broadcast, oneshot};
use tracing::{info, warn};

use crate::core::state::AppState;
use ari::AriSettings;

/// How often the service list is read again for ARI settings that were added or changed.
const RESCAN: Duration = Duration::from_secs(10);

/// What the voice tasks follow of the engine.
#[derive(Debug, Clone)]
pub enum VoiceEvent {
    /// A voice conversation changed, as the engine committed it.
    Conversation(Arc<ConversationEvent>),
    /// An agent dialled a customer from the desk (C8): the outbound call message was stored.
    DialOut { conversation: ConversationId, service: ServiceId, agent: AgentId, number: String },
}

/// The voice tasks' feed.
pub type VoiceFeed = broadcast::Sender<VoiceEvent>;

/// Forwards the engine's voice conversation events to the voice tasks.
struct FeedForwarder(VoiceFeed);

impl Actor for FeedForwarder {
    type Context = Context<Self>;
}

impl Handler<EngineEvent> for FeedForwarder {
    type Result = ();

    fn handle(&mut self, msg: EngineEvent, _: &mut Context<Self>) {
        // No receiver yet (no voice task) is fine.
        match msg {
            EngineEvent::Conversation { event, .. } if event.facts.channel == Channel::Voice => {
                let _ = self.0.send(VoiceEvent::Conversation(event));
            }
            EngineEvent::Message { conversation_id, service_id, owner: Some(agent), message }
                if message.row.kind == schema::MessageKind::Call
                    && message.row.direction == schema::MessageDirection::Out =>
            {
                if let Some(number) = message.row.payload.get("dial").and_then(serde_json::Value::as_str) {
                    let _ = self.0.send(VoiceEvent::DialOut {
                        conversation: conversation_id,
                        service: service_id,
                        agent,
                        number: number.to_owned(),
                    });
                }
            }
            _ => {}
        }
    }
}

/// Starts the voice side: one switchboard per voice service with ARI settings (started, restarted
/// or stopped as services change) and the CTI command sender. Returns once it follows the
/// engine's events. Call inside the actix system.
pub async fn start(state: AppState) {
    let (feed, _) = broadcast::channel(1024);
    let forwarder = FeedForwarder(feed.clone()).start();
    state.engine.subscribe(forwarder.recipient(), Feed::WithoutCustomerMessages).await;
    command::spawn(state.clone(), feed.subscribe());
    actix_web::rt::spawn(async move {
        let mut running: HashMap<ServiceId, (AriSettings, oneshot::Sender<()>)> = HashMap::new();
        loop {
            if let Ok(services) = list_services(&state).await {
                let wanted: HashMap<ServiceId, AriSettings> = services
                    .iter()
                    .filter(|s| s.channel == Channel::Voice && s.active)
                    .filter_map(|s| AriSettings::from_provider(&s.provider).map(|a| (s.id, a)))
                    .collect();
                // Dropping a switchboard's stop sender ends it.
                running.retain(|id, (settings, _)| wanted.get(id) == Some(settings));
                for (id, settings) in wanted {
                    if running.contains_key(&id) {
                        continue;
                    }
                    info!(service.id = %id, ari.url = %settings.url, ari.app = %settings.app, "ARI switchboard starting");
                    let (stop_tx, stop_rx) = oneshot::channel();
                    switchboard::spawn(state.clone(), id, settings.clone(), feed.subscribe(), stop_rx);
                    running.insert(id, (settings, stop_tx));
                }
            }
            tokio::time::sleep(RESCAN).await;
        }
    });
}

async fn list_services(state: &AppState) -> Result<Vec<Service>, ()> {
    let pool = state.pool.clone();
    actix_web::web::block(move || store::list_services(&mut *pool.get()?))
        .await
        .map_err(|_| ())?
        .map_err(|e| warn!(error = %e, "reading the voice services"))
}

/// Refuses voice settings the phone system could never use (400 `invalid_provider`): `ari_url`
/// and `cti_command_url` must be http(s) URLs, `ari_dial_endpoint` must contain `{number}`.
pub fn check_provider(map: &serde_json::Map<String, serde_json::Value>) -> Result<(), crate::core::error::ApiError> {
    let text = |k: &str| map.get(k).and_then(serde_json::Value::as_str).map(str::trim).filter(|v| !v.is_empty());
    for key in ["ari_url", "cti_command_url"] {
        if let Some(url) = text(key)
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(crate::core::error::ApiError::bad_request(
                Code::InvalidProvider,
                format!("provider.{key} must be an http:// or https:// URL"),
            ));
        }
    }
    if text("ari_dial_endpoint").is_some_and(|d| !d.contains("{number}")) {
        return Err(crate::core::error::ApiError::bad_request(
            Code::InvalidProvider,
            "provider.ari_dial_endpoint must contain {number}, e.g. PJSIP/{number}@trunk",
        ));
    }
    Ok(())
}
