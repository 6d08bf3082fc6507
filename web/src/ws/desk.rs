//! What the desk's WebSocket does, apart from the socket itself: the snapshot on connect, which
//! engine events a desk may see (N3), resuming after a reconnect, and the few actions sent over
//! the socket. Kept apart from the session actor so the socket library can change alone.

use std::collections::HashMap;

use engine::EngineEvent;
use schema::{ConversationId, Role, store};

use crate::api::agent::{PresenceDto, QueueDto};
use crate::core::db::{db, parse_id};
use crate::core::error::{ApiError, Code};
use crate::core::session::{AgentInfo, CurrentAgent};
use crate::core::state::AppState;
use crate::ws::protocol::{AgentInfoOwned, ClientMsg, EventDto, OfferDto, ServerMsg, Snapshot};

/// The state a desk starts from, and the last seq of each conversation in it.
pub async fn snapshot(state: &AppState, me: &CurrentAgent) -> (Snapshot, HashMap<ConversationId, i64>) {
    let engine_view = state.engine.agent(me.agent.id).await;
    let mut conversations = Vec::new();
    let mut offers = Vec::new();
    let mut seqs = HashMap::new();
    if let Some(a) = &engine_view {
        let ids: Vec<ConversationId> = a.conversations.iter().map(|c| c.id).collect();
        let rows = db(state, move |c| {
            let mut out = Vec::new();
            for id in ids {
                out.push(schema::models::Conversation::find(c, id)?);
            }
            Ok(out)
        })
        .await
        .unwrap_or_default();
        for row in rows {
            seqs.insert(row.id, row.last_seq);
            conversations
                .push(serde_json::to_value(crate::core::dto::ConversationDto::from_row(&row)).unwrap_or_default());
        }
        for o in &a.offers {
            if let Some((_, expires_at)) = o.offer {
                offers.push(OfferDto {
                    conversation_id: o.id.to_string(),
                    channel: o.channel.to_string(),
                    service_id: o.service.to_string(),
                    expires_at,
                });
            }
        }
    }
    let queues =
        state.engine.queues().await.into_iter().filter(|q| me.sees_service(q.service_id)).map(QueueDto::from).collect();
    let snapshot = Snapshot {
        agent: AgentInfoOwned::from(&AgentInfo::from(&me.agent)),
        presence: engine_view.map(|a| PresenceDto::new(a.presence, a.presence_since)),
        conversations,
        offers,
        queues,
    };
    (snapshot, seqs)
}

/// What of an engine event this desk may see (N3), as protocol messages.
pub fn visible(me: &CurrentAgent, event: &EngineEvent) -> Option<ServerMsg> {
    match event {
        EngineEvent::Conversation { seq, event } => {
            let f = &event.facts;
            let concerns_me = f.owner == Some(me.agent.id)
                || event.agent == Some(me.agent.id)
                || f.offer.is_some_and(|(a, _)| a == me.agent.id)
                || matches!(&event.assignment, Some(engine::model::AssignmentChange::Closed { agent, .. }) if *agent == me.agent.id)
                || matches!(&event.assignment, Some(engine::model::AssignmentChange::Moved { from, .. }) if *from == me.agent.id);
            let supervises = me.agent.role != Role::Agent && me.sees_service(f.service);
            (concerns_me || supervises).then(|| ServerMsg::Event(EventDto::from_engine(*seq, event)))
        }
        EngineEvent::Presence { agent, presence, at } if *agent == me.agent.id => {
            Some(ServerMsg::Presence(PresenceDto::new(*presence, *at)))
        }
        EngineEvent::Presence { .. } => None,
        EngineEvent::Queue(q) if me.sees_service(q.service_id) => Some(ServerMsg::Queue(QueueDto::from(q.clone()))),
        EngineEvent::Queue(_) => None,
        EngineEvent::Alert(a) if a.agent_id == Some(me.agent.id) => Some(ServerMsg::Alert {
            conversation_id: a.conversation_id.to_string(),
            kind: serde_json::to_value(a.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
            at: a.at,
        }),
        EngineEvent::Alert(_) => None,
        EngineEvent::Message { service_id, owner, message, .. }
            if *owner == Some(me.agent.id) || (me.agent.role != Role::Agent && me.sees_service(*service_id)) =>
        {
            Some(ServerMsg::Message { message: crate::core::dto::message_value(&message.row, &message.attachments) })
        }
        EngineEvent::Message { .. } => None,
    }
}

fn error_msg(r#ref: Option<String>, e: ApiError) -> ServerMsg {
    ServerMsg::Error { r#ref, error: e.code, message: e.message }
}

/// Answers a desk's message (several messages for a resume).
pub async fn handle(state: &AppState, me: &CurrentAgent, msg: ClientMsg) -> Vec<ServerMsg> {
    match msg {
        ClientMsg::Ping => vec![ServerMsg::Pong],
        ClientMsg::Ack => Vec::new(),
        ClientMsg::Accept { conversation_id, r#ref } => {
            let result = async {
                let id: ConversationId = parse_id(&conversation_id, "conversation_id")?;
                state.engine.accept(me.agent.id, id).await.map_err(ApiError::from)
            }
            .await;
            vec![match result {
                Ok(()) => ServerMsg::Ack { r#ref },
                Err(e) => error_msg(r#ref, e),
            }]
        }
        ClientMsg::Decline { conversation_id, r#ref } => {
            let result = async {
                let id: ConversationId = parse_id(&conversation_id, "conversation_id")?;
                state.engine.decline(me.agent.id, id).await.map_err(ApiError::from)
            }
            .await;
            vec![match result {
                Ok(()) => ServerMsg::Ack { r#ref },
                Err(e) => error_msg(r#ref, e),
            }]
        }
        ClientMsg::Resume { conversations } => resume(state, me, conversations).await,
    }
}

/// The events each named conversation had after the seq the desk saw (D11), for the
/// conversations this desk may see; others are answered with an error, not data.
async fn resume(state: &AppState, me: &CurrentAgent, seen: HashMap<String, i64>) -> Vec<ServerMsg> {
    if seen.len() > 500 {
        return vec![error_msg(None, ApiError::bad_request(Code::TooMany, "resume at most 500 conversations at once"))];
    }
    let mut out = Vec::new();
    for (raw, after) in seen {
        let Ok(id) = parse_id::<ConversationId>(&raw, "conversation id") else {
            out.push(error_msg(
                None,
                ApiError::bad_request(Code::InvalidId, format!("{raw:?} is not a conversation id")),
            ));
            continue;
        };
        let found = db(state, move |c| {
            let conv = schema::models::Conversation::find(c, id)?;
            let events = store::events_after(c, id, after.max(0))?;
            Ok((conv, events))
        })
        .await;
        match found {
            Ok((conv, events)) if me.sees_service(conv.service_id) => out.push(ServerMsg::Gap {
                conversation_id: id.to_string(),
                events: events.iter().map(EventDto::from_row).collect(),
            }),
            // Not one of mine answers as a missing one does: no telling which ids exist.
            Ok(_) | Err(_) => out.push(error_msg(None, ApiError::not_found("conversation"))),
        }
    }
    out
}
