//! `/ws/agent`: the desk's WebSocket session, a thin actix-web-actors actor. It decodes client
//! messages and hands them to `desk`, and encodes the engine's events for the browser. Everything
//! socket-specific is in this file, so moving to actix-ws is a one-file change.

use std::collections::HashMap;
use std::time::Instant;

use actix::prelude::*;
use actix_web::{HttpRequest, HttpResponse, get, web};
use actix_web_actors::ws;
use engine::{EngineEvent, Feed};
use schema::{AgentId, ConversationId};
use tracing::debug;

use crate::core::error::{ApiError, Code};
use crate::core::session::{CurrentAgent, REVOKED_CLOSE_CODE, SessionRevoked};
use crate::core::socket::keep_alive;
use crate::core::state::AppState;
use crate::ws::desk;
use crate::ws::protocol::{ClientMsg, ServerMsg};

/// Events sent without the desk answering a ping or acking: past this the desk cannot keep up
/// and is disconnected (it resumes on reconnect) instead of the server buffering without end.
pub const MAX_UNACKED: usize = 5_000;
/// Largest text frame accepted from a desk.
pub const MAX_FRAME: usize = 64 * 1024;

/// One desk connection.
pub struct AgentSession {
    me: CurrentAgent,
    state: AppState,
    last_heard: Instant,
    connection: Option<u64>,
    unacked: usize,
    /// Until the snapshot is sent, events wait here; afterwards those already in it are dropped.
    pending: Option<Vec<EngineEvent>>,
    snapshot_seqs: HashMap<ConversationId, i64>,
    /// This socket's registration with the session cache (closed when the session is revoked).
    socket: Option<u64>,
    /// Set when the session was revoked: nothing more is sent.
    revoked: bool,
}

/// Sends `msg` as a text frame and counts it until the client acknowledges (a pong or an `ack`);
/// a client more than [`MAX_UNACKED`] messages behind is closed as too slow (a desk or a monitor
/// that stopped reading must not grow the server's memory).
pub(crate) fn send_counted<A, M>(ctx: &mut ws::WebsocketContext<A>, unacked: &mut usize, msg: &M, who: AgentId)
where
    A: Actor<Context = ws::WebsocketContext<A>>,
    M: serde::Serialize,
{
    match serde_json::to_string(msg) {
        Ok(text) => {
            ctx.text(text);
            *unacked += 1;
            if *unacked > MAX_UNACKED {
                debug!(agent.id = %who, "client too slow; disconnecting");
                ctx.close(Some(ws::CloseReason { code: ws::CloseCode::Policy, description: Some("too slow".into()) }));
                ctx.stop();
            }
        }
        Err(e) => tracing::error!(error = %e, "encoding a WebSocket message"),
    }
}

/// Registers a starting socket with the session cache so that revoking its session closes it
/// (`None`, and the socket closed with 1013 "try again", when sessions changed since it was
/// checked: the client reconnects and is checked afresh).
pub(crate) fn register_socket<A>(ctx: &mut ws::WebsocketContext<A>, state: &AppState, me: &CurrentAgent) -> Option<u64>
where
    A: Actor<Context = ws::WebsocketContext<A>> + Handler<SessionRevoked>,
{
    let id = state.sessions.socket_opened(me, ctx.address().recipient());
    if id.is_none() {
        ctx.close(Some(ws::CloseReason { code: ws::CloseCode::Again, description: Some("session_changed".into()) }));
        ctx.stop();
    }
    id
}

/// Closes a socket whose session was revoked, with a reason the desk acts on (the sign-in page).
pub(crate) fn close_revoked<A>(ctx: &mut ws::WebsocketContext<A>, who: AgentId)
where
    A: Actor<Context = ws::WebsocketContext<A>>,
{
    debug!(agent.id = %who, "session revoked; closing its socket");
    ctx.close(Some(ws::CloseReason {
        code: ws::CloseCode::Other(REVOKED_CLOSE_CODE),
        description: Some("session_revoked".into()),
    }));
    ctx.stop();
}

/// Handles the frames the desk and monitor sockets treat alike (pings, pongs, close, protocol
/// errors); returns a text or binary frame for the session to read.
pub(crate) fn incoming<A>(
    item: Result<ws::Message, ws::ProtocolError>,
    ctx: &mut ws::WebsocketContext<A>,
    unacked: &mut usize,
) -> Option<ws::Message>
where
    A: Actor<Context = ws::WebsocketContext<A>>,
{
    match item {
        Ok(ws::Message::Ping(bytes)) => ctx.pong(&bytes),
        Ok(ws::Message::Pong(_)) => *unacked = 0,
        Ok(m @ (ws::Message::Text(_) | ws::Message::Binary(_))) => return Some(m),
        Ok(ws::Message::Close(reason)) => {
            ctx.close(reason);
            ctx.stop();
        }
        Ok(ws::Message::Continuation(_) | ws::Message::Nop) => {}
        Err(_) => ctx.stop(),
    }
    None
}

impl AgentSession {
    fn send(&mut self, msg: &ServerMsg, ctx: &mut ws::WebsocketContext<Self>) {
        send_counted(ctx, &mut self.unacked, msg, self.me.agent.id);
    }

    fn deliver(&mut self, event: &EngineEvent, ctx: &mut ws::WebsocketContext<Self>) {
        if let EngineEvent::Conversation { seq, event: e } = event
            && self.snapshot_seqs.get(&e.facts.id).is_some_and(|s| seq <= s)
        {
            return; // already in the snapshot
        }
        if let Some(msg) = desk::visible(&self.me, event) {
            self.send(&msg, ctx);
        }
    }
}

impl Actor for AgentSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.socket = register_socket(ctx, &self.state, &self.me);
        if self.socket.is_none() {
            return;
        }
        keep_alive(ctx, |this| this.last_heard);
        let (state, me, recipient) = (self.state.clone(), self.me.clone(), ctx.address().recipient());
        let setup = async move {
            let connection = state.engine.connect(me.agent.id, recipient.clone()).await.ok();
            for service in &me.services {
                state.engine.watch_queue(*service, recipient.clone()).await;
            }
            if me.agent.role != schema::Role::Agent {
                state.engine.subscribe(recipient, Feed::Everything).await;
            }
            let (snapshot, seqs) = desk::snapshot(&state, &me).await;
            (connection, snapshot, seqs)
        };
        ctx.wait(setup.into_actor(self).map(|(connection, snapshot, seqs), this, ctx| {
            this.connection = connection;
            if this.revoked {
                return;
            }
            this.snapshot_seqs = seqs;
            this.send(&ServerMsg::Snapshot(Box::new(snapshot)), ctx);
            for event in this.pending.take().unwrap_or_default() {
                this.deliver(&event, ctx);
            }
        }));
    }

    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        if let Some(socket) = self.socket.take() {
            self.state.sessions.socket_closed(socket);
        }
        if let Some(connection) = self.connection.take() {
            let engine = self.state.engine.clone();
            let agent = self.me.agent.id;
            actix::spawn(async move { engine.disconnect(agent, connection).await });
        }
        Running::Stop
    }
}

impl Handler<SessionRevoked> for AgentSession {
    type Result = ();

    fn handle(&mut self, _: SessionRevoked, ctx: &mut Self::Context) {
        // Nothing more reaches this desk: not what is pending, not what is still in the mailbox.
        self.revoked = true;
        self.pending = None;
        close_revoked(ctx, self.me.agent.id);
    }
}

impl Handler<EngineEvent> for AgentSession {
    type Result = ();

    fn handle(&mut self, event: EngineEvent, ctx: &mut Self::Context) {
        if self.revoked {
            return;
        }
        match &mut self.pending {
            Some(pending) => pending.push(event),
            None => self.deliver(&event, ctx),
        }
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for AgentSession {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match incoming(item, ctx, &mut self.unacked) {
            Some(ws::Message::Text(text)) => {
                let msg = match serde_json::from_str::<ClientMsg>(&text) {
                    Ok(msg) => msg,
                    Err(e) => {
                        let err = ServerMsg::Error { r#ref: None, error: Code::InvalidMessage, message: e.to_string() };
                        self.send(&err, ctx);
                        return;
                    }
                };
                if matches!(msg, ClientMsg::Ack) {
                    self.unacked = 0;
                }
                let (state, me) = (self.state.clone(), self.me.clone());
                ctx.spawn(async move { desk::handle(&state, &me, msg).await }.into_actor(self).map(
                    |replies, this, ctx| {
                        for reply in replies {
                            this.send(&reply, ctx);
                        }
                    },
                ));
            }
            Some(_) => {
                let err = ServerMsg::Error {
                    r#ref: None,
                    error: Code::InvalidMessage,
                    message: "send JSON text frames".into(),
                };
                self.send(&err, ctx);
            }
            None => {}
        }
    }
}

/// Whether the upgrade's Origin may open a desk: no Origin (not a browser), the server's own
/// origin, or one of `OMNIROUTE_ALLOWED_ORIGINS`.
pub fn origin_allowed(req: &HttpRequest, allowed: &[String]) -> bool {
    let Some(origin) = req.headers().get(actix_web::http::header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let info = req.connection_info();
    let own = format!("{}://{}", info.scheme(), info.host());
    origin == own || allowed.iter().any(|a| a == origin)
}

/// The desk's WebSocket (same session as the REST API: cookie or bearer token).
#[get("/ws/agent")]
pub async fn ws_agent(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
    me: CurrentAgent,
) -> Result<HttpResponse, actix_web::Error> {
    if !origin_allowed(&req, &state.allowed_origins) {
        return Err(ApiError::forbidden("this origin may not open a desk").into());
    }
    let session = AgentSession {
        me,
        state: state.get_ref().clone(),
        last_heard: Instant::now(),
        connection: None,
        unacked: 0,
        pending: Some(Vec::new()),
        snapshot_seqs: HashMap::new(),
        socket: None,
        revoked: false,
    };
    ws::WsResponseBuilder::new(session, &req, stream).frame_size(MAX_FRAME).start()
}
