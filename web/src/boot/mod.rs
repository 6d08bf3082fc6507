//! The top layer: the `omniroute` commands (`main.rs` is the binary), the server and its route
//! table, the typed configuration, the demo seed and logging.

use std::sync::Arc;

use crate::core::outbox::{Sender, Senders};
use crate::core::state::AppState;

pub mod config;
pub mod demo;
pub mod routes;
pub mod seed;
pub mod server;
pub mod telemetry;

/// The server's state over a pool and a running engine, with every channel's sender registered
/// (the providers' and the webchat's).
pub fn state(pool: schema::PgPool, engine: engine::Engine) -> AppState {
    let mut state = AppState::new(pool, engine.clone());
    let mut senders = crate::channels::senders();
    let webchat: Arc<dyn Sender> = Arc::new(crate::webchat::WebchatSender::new(engine));
    senders.push((schema::Channel::Webchat, webchat));
    state.senders = Senders::new(senders);
    state
}
