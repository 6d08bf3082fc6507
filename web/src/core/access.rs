//! Who may see and act on a conversation (N3): an agent sees conversations of its services and
//! acts only on its own (the engine answers `not_owner`); supervisors act on conversations of
//! their services, admins on all.

use engine::By;
use schema::models::Conversation;
use schema::{Channel, ConversationId, ConversationState, Role};

use crate::core::db::db;
use crate::core::error::{ApiError, Code};
use crate::core::session::CurrentAgent;
use crate::core::state::AppState;

/// How the caller acts on a conversation: as its agent, or as a supervisor/admin.
pub fn by(me: &CurrentAgent) -> By {
    match me.agent.role {
        Role::Agent => By::Agent(me.agent.id),
        Role::Supervisor | Role::Admin => By::Supervisor(me.agent.id),
    }
}

/// A conversation the caller may see: 404 both when it does not exist and when it is not theirs
/// to see, so that the answer does not tell which ids exist.
pub async fn visible_conversation(
    state: &AppState,
    me: &CurrentAgent,
    id: ConversationId,
) -> Result<Conversation, ApiError> {
    let c = db(state, move |c| Conversation::find(c, id)).await.map_err(conversation_not_found)?;
    check_visible(me, &c)?;
    Ok(c)
}

/// A conversation's read that found no row, as the API says it (404 `conversation`).
pub fn conversation_not_found(e: ApiError) -> ApiError {
    if e.status == actix_web::http::StatusCode::NOT_FOUND { ApiError::not_found("conversation") } else { e }
}

/// 404 (as for a missing one) unless the conversation's service is one the caller sees.
pub fn check_visible(me: &CurrentAgent, c: &Conversation) -> Result<(), ApiError> {
    if !me.sees_service(c.service_id) {
        return Err(ApiError::not_found("conversation"));
    }
    Ok(())
}

/// A conversation the caller may act on: visible, and not finished (409 `conversation_ended`).
pub async fn actionable_conversation(
    state: &AppState,
    me: &CurrentAgent,
    id: ConversationId,
) -> Result<Conversation, ApiError> {
    let c = visible_conversation(state, me, id).await?;
    if c.state.is_final() {
        return Err(ApiError::conflict(Code::ConversationEnded, format!("the conversation is already {}", c.state)));
    }
    Ok(c)
}

/// Whether I may write in this conversation now — the one rule for every send, the quick text
/// path's and the general one's: I see its service (404 otherwise, as for a missing one), it is
/// in service with me, and it is not a call. The reply window depends on what is sent, and is
/// checked beside it.
pub fn may_write(me: &CurrentAgent, c: &Conversation) -> Result<(), ApiError> {
    check_visible(me, c)?;
    if c.state != ConversationState::InService || c.current_agent_id != Some(me.agent.id) {
        return Err(ApiError::forbidden("only the conversation's agent can send in it").with_code(Code::NotOwner));
    }
    if c.channel == Channel::Voice {
        return Err(ApiError::unprocessable(Code::ChannelWithoutMessages, "calls have no messages"));
    }
    Ok(())
}
