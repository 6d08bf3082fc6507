//! Errors the engine answers with: each says what went wrong in words a caller can act on.

use schema::StoreError;

/// Why the engine refused or failed a command.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The conversation is not open (or does not exist).
    #[error("conversation not found or no longer open")]
    ConversationNotFound,
    /// The agent is unknown to the engine (never signed in, or deactivated).
    #[error("agent not found")]
    AgentNotFound,
    /// The service is unknown or inactive.
    #[error("service not found")]
    ServiceNotFound,
    /// Another agent has it (R3).
    #[error("the conversation is already taken")]
    AlreadyTaken,
    /// The agent has no free capacity on that channel (R4).
    #[error("the agent is at capacity on this channel")]
    AtCapacity,
    /// The agent is paused, pause-pending or offline.
    #[error("the agent is not available")]
    NotAvailable,
    /// The agent is not a member of the conversation's service.
    #[error("the agent is not a member of the service")]
    NotMember,
    /// Only the conversation's agent may do this.
    #[error("the conversation belongs to another agent or to none")]
    NotOwner,
    /// The service does not allow cancelling (R12).
    #[error("this service does not allow cancelling conversations")]
    CancelNotAllowed,
    /// The offer is gone: accepted, lapsed or withdrawn (R7).
    #[error("the offer is no longer valid")]
    OfferGone,
    /// The command does not apply to the conversation as it is now.
    #[error("{0}")]
    InvalidState(&'static str),
    /// A transfer that cannot be done as asked.
    #[error("invalid transfer: {0}")]
    InvalidTransfer(&'static str),
    /// The database is unavailable; nothing was changed.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The database refused a write.
    #[error("storage error: {0}")]
    Storage(#[from] StoreError),
    /// The engine is shutting down.
    #[error("the engine is stopping")]
    Stopped,
}

impl EngineError {
    /// The snake_case code of the API contract.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::ConversationNotFound => "conversation_not_found",
            EngineError::AgentNotFound => "agent_not_found",
            EngineError::ServiceNotFound => "service_not_found",
            EngineError::AlreadyTaken => "already_taken",
            EngineError::AtCapacity => "at_capacity",
            EngineError::NotAvailable => "not_available",
            EngineError::NotMember => "not_member",
            EngineError::NotOwner => "not_owner",
            EngineError::CancelNotAllowed => "cancel_not_allowed",
            EngineError::OfferGone => "offer_gone",
            EngineError::InvalidState(_) => "invalid_state",
            EngineError::InvalidTransfer(_) => "invalid_transfer",
            EngineError::Unavailable(_) => "unavailable",
            EngineError::Storage(_) => "storage_error",
            EngineError::Stopped => "unavailable",
        }
    }
}
