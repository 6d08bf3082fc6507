//! WebSocket endpoints: `/ws/agent` (the desk).

pub mod desk;
pub mod protocol;
pub mod session;
