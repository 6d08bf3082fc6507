//! WebSocket endpoints: `/ws/agent` (the desk) and `/ws/monitor` (the supervisor's live monitor).

pub mod desk;
pub mod monitor;
pub mod monitor_session;
pub mod protocol;
pub mod session;
