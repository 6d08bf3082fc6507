//! Voice through the phone system's CTI events (R13, C1): `POST /api/v1/cti/events`, authenticated
//! by the voice service's `provider.cti_token` (`Authorization: Bearer <token>`). Calls are not
//! queued here: the phone system rang an agent's extension, and the call becomes a `voice`
//! conversation assigned to that agent; its end concludes it. Events are idempotent per call id.

use std::sync::{Arc, LazyLock};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, post, web};
use chrono::Utc;
use engine::{By, NewConversation};
use schema::models::{Conversation, Message, Service};
use schema::{Channel, ConversationState, MessageDirection, MessageKind, MessageStatus, ServiceId, store};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::core::db::db;
use crate::core::error::{ApiError, Code};
use crate::core::state::AppState;

/// One event of the phone system.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CtiEvent {
    /// call_offered | call_answered | call_ended
    pub event: String,
    pub call_id: String,
    /// The agent's extension the call rang (offered / answered).
    pub extension: Option<String>,
    /// The caller's number.
    pub caller: Option<String>,
}

async fn voice_service(state: &AppState, req: &HttpRequest) -> Result<Service, ApiError> {
    let token = req
        .headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                Code::MissingCtiToken,
                "Authorization: Bearer <cti_token> is required",
            )
        })?;
    let services = db(state, store::list_services).await?;
    services
        .into_iter()
        .find(|s| {
            s.channel == Channel::Voice
                && s.provider
                    .get("cti_token")
                    .and_then(Value::as_str)
                    .is_some_and(|t| crate::core::secrets::ct_eq(t.as_bytes(), token.as_bytes()))
        })
        .ok_or_else(|| {
            ApiError::new(StatusCode::UNAUTHORIZED, Code::InvalidCtiToken, "no voice service has this token")
        })
}

type Turns = std::sync::Mutex<std::collections::HashMap<(ServiceId, String), Arc<tokio::sync::Mutex<()>>>>;

/// Calls whose events are being handled, each with the lock its next event waits on.
static TURNS: LazyLock<Turns> = LazyLock::new(Default::default);

/// Holds a call's turn until dropped; the entry goes once nobody waits on it.
struct Turn {
    key: (ServiceId, String),
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut turns = TURNS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Two references while this turn holds it: the map's and the guard's.
        if turns.get(&self.key).is_some_and(|m| Arc::strong_count(m) <= 2) {
            turns.remove(&self.key);
        }
    }
}

async fn call_turn(service: ServiceId, call_id: &str) -> Turn {
    let key = (service, call_id.to_owned());
    let lock = {
        let mut turns = TURNS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        turns.entry(key.clone()).or_default().clone()
    };
    Turn { key, _guard: lock.lock_owned().await }
}

/// Receives a call event.
#[post("/cti/events")]
pub async fn events(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<CtiEvent>,
) -> Result<HttpResponse, ApiError> {
    let service = voice_service(&state, &req).await?;
    let e = body.into_inner();
    let call_id = e.call_id.trim().to_owned();
    if call_id.is_empty() || call_id.len() > 128 {
        return Err(ApiError::bad_request(Code::InvalidField, "call_id is 1-128 characters"));
    }
    // One event of a call at a time: the phone system may deliver an event several times at once,
    // and only the first may open the conversation.
    let _turn = call_turn(service.id, &call_id).await;
    let (service_id, cid) = (service.id, call_id.clone());
    let known: Option<Message> = db(&state, move |c| store::message_by_provider_id(c, service_id, &cid)).await?;
    match e.event.as_str() {
        "call_offered" | "call_answered" => {
            if let Some(m) = known {
                return Ok(HttpResponse::Ok().json(json!({"conversation_id": m.conversation_id, "status": "known"})));
            }
            let extension = e
                .extension
                .as_deref()
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .ok_or_else(|| ApiError::bad_request(Code::InvalidField, "extension is required"))?;
            let ext = extension.to_owned();
            let agent = db(&state, move |c| store::agent_by_extension(c, &ext))
                .await?
                .ok_or_else(|| ApiError::not_found("agent with that extension"))?;
            let caller = e.caller.as_deref().map(str::trim).filter(|c| !c.is_empty()).unwrap_or("unknown").to_owned();
            let id = state
                .engine
                .voice_call(NewConversation::new(service.id, Channel::Voice, caller.clone()), agent.id)
                .await?;
            let now = Utc::now();
            let mut m =
                Message::new(id, service.id, MessageDirection::In, MessageKind::Call, MessageStatus::Received, now);
            m.provider_message_id = Some(call_id);
            m.payload = json!({"caller": caller, "extension": extension});
            let stored = db(&state, move |c| m.insert(c)).await?;
            state.engine.publish_message(id, service.id, stored).await;
            Ok(HttpResponse::Created().json(json!({"conversation_id": id, "agent_id": agent.id, "status": "assigned"})))
        }
        "call_ended" => {
            let Some(m) = known else { return Err(ApiError::not_found("call")) };
            let conversation = m.conversation_id;
            let c = db(&state, move |c| Conversation::find(c, conversation)).await?;
            if c.state == ConversationState::InService {
                state.engine.conclude(By::System, conversation, None).await?;
            }
            Ok(HttpResponse::Ok().json(json!({"conversation_id": conversation, "status": "ended"})))
        }
        other => Err(ApiError::bad_request(Code::InvalidEvent, format!("unknown event {other:?}"))),
    }
}
