//! What every WebSocket session (desk, monitor, webchat) shares: the heartbeat.

use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web_actors::ws;

/// How often the server pings.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// A desk that answered no ping for this long is gone.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

/// Pings the client every [`HEARTBEAT_INTERVAL`] and stops the session when it has not been heard
/// from for [`CLIENT_TIMEOUT`] (`last_heard` reads when it last was).
pub fn keep_alive<A>(ctx: &mut ws::WebsocketContext<A>, last_heard: fn(&A) -> Instant)
where
    A: Actor<Context = ws::WebsocketContext<A>>,
{
    ctx.run_interval(HEARTBEAT_INTERVAL, move |this, ctx| {
        if last_heard(this).elapsed() > CLIENT_TIMEOUT {
            ctx.stop();
            return;
        }
        ctx.ping(b"");
    });
}
