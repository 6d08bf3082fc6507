//! `/ws/monitor`: the supervisor's live monitor (S1), a thin actix-web-actors actor around
//! [`MonitorView`]. Same session, Origin check, heartbeat and slow-client bound as the desk's
//! socket (`session.rs`). Engine events update the view as they come; what changed is sent at
//! most once per [`FLUSH_EVERY`] (the first change after a quiet spell goes out at once).

use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::{HttpRequest, HttpResponse, get, web};
use actix_web_actors::ws;
use engine::{EngineEvent, Feed};
use schema::AgentId;
use schema::models::Agent;

use crate::api::supervisor::{monitored_agents, monitored_queues, supervisor};
use crate::core::db::db;
use crate::core::error::{ApiError, Code};
use crate::core::session::{CurrentAgent, SessionRevoked};
use crate::core::socket::keep_alive;
use crate::core::state::AppState;
use crate::ws::monitor::{MonitorClientMsg, MonitorMsg, MonitorView};
use crate::ws::session::{MAX_FRAME, close_revoked, incoming, origin_allowed, register_socket, send_counted};

/// Changes are coalesced: each agent row and queue is sent at most once per this interval.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// One monitor connection.
pub struct MonitorSession {
    me: CurrentAgent,
    state: AppState,
    last_heard: Instant,
    unacked: usize,
    view: MonitorView,
    /// While the snapshot or a lookup is being made, events wait here and are applied after it
    /// (the look is at least as new as they are; applying them again converges).
    held: Option<Vec<EngineEvent>>,
    looking_up: bool,
    flush_scheduled: bool,
    last_flush: Option<Instant>,
    /// This socket's registration with the session cache (closed when the session is revoked).
    socket: Option<u64>,
    /// Set when the session was revoked: nothing more is sent.
    revoked: bool,
}

impl MonitorSession {
    fn send(&mut self, msg: &MonitorMsg, ctx: &mut ws::WebsocketContext<Self>) {
        send_counted(ctx, &mut self.unacked, msg, self.me.agent.id);
    }

    /// Applies the events held during a snapshot or lookup, then goes on.
    fn release(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        for event in self.held.take().unwrap_or_default() {
            self.view.apply(&event);
        }
        self.changed(ctx);
    }

    /// After the view changed: look up agents it does not know yet, and schedule a flush.
    fn changed(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if !self.looking_up {
            let ids = self.view.take_lookups();
            if !ids.is_empty() {
                self.looking_up = true;
                self.held = Some(Vec::new());
                let state = self.state.clone();
                ctx.spawn(look_up(state, ids).into_actor(self).map(|found, this, ctx| {
                    for (id, found) in found {
                        this.view.looked_up(id, found);
                    }
                    this.looking_up = false;
                    this.release(ctx);
                }));
            }
        }
        if self.flush_scheduled || !self.view.has_changes() {
            return;
        }
        let wait = self.last_flush.map_or(Duration::ZERO, |at| FLUSH_EVERY.saturating_sub(at.elapsed()));
        if wait.is_zero() {
            self.flush(ctx);
        } else {
            self.flush_scheduled = true;
            ctx.run_later(wait, |this, ctx| {
                this.flush_scheduled = false;
                this.flush(ctx);
            });
        }
    }

    fn flush(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        self.last_flush = Some(Instant::now());
        for msg in self.view.changes() {
            self.send(&msg, ctx);
        }
    }
}

/// A fresh look at agents: their stored row (read unless given) and the engine's view (`None`
/// when either is gone).
async fn look_up(
    state: AppState,
    ids: Vec<(AgentId, Option<Agent>)>,
) -> Vec<(AgentId, Option<(Agent, engine::distributor::AgentSnapshot)>)> {
    let mut out = Vec::with_capacity(ids.len());
    for (id, known) in ids {
        let row = match known {
            Some(agent) => Some(agent),
            None => db(&state, move |c| Agent::find(c, id)).await.ok(),
        };
        let snap = state.engine.agent(id).await;
        out.push((id, row.zip(snap)));
    }
    out
}

impl Actor for MonitorSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.socket = register_socket(ctx, &self.state, &self.me);
        if self.socket.is_none() {
            return;
        }
        keep_alive(ctx, |this| this.last_heard);
        let (state, me, recipient) = (self.state.clone(), self.me.clone(), ctx.address().recipient());
        let setup = async move {
            state.engine.subscribe(recipient, Feed::WithoutMessages).await;
            let agents = monitored_agents(&state, &me).await;
            let queues = monitored_queues(&state, &me).await;
            agents.map(|a| (a, queues))
        };
        ctx.wait(setup.into_actor(self).map(|loaded, this, ctx| match loaded {
            Ok((agents, queues)) => {
                let snapshot = this.view.start(agents, queues);
                this.send(&snapshot, ctx);
                this.release(ctx);
            }
            Err(e) => {
                this.send(&MonitorMsg::Error { error: e.code, message: e.message }, ctx);
                ctx.close(Some(ws::CloseReason {
                    code: ws::CloseCode::Again,
                    description: Some(e.code.as_str().into()),
                }));
                ctx.stop();
            }
        }));
    }

    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        if let Some(socket) = self.socket.take() {
            self.state.sessions.socket_closed(socket);
        }
        Running::Stop
    }
}

impl Handler<SessionRevoked> for MonitorSession {
    type Result = ();

    fn handle(&mut self, _: SessionRevoked, ctx: &mut Self::Context) {
        self.revoked = true;
        close_revoked(ctx, self.me.agent.id);
    }
}

impl Handler<EngineEvent> for MonitorSession {
    type Result = ();

    fn handle(&mut self, event: EngineEvent, ctx: &mut Self::Context) {
        if self.revoked {
            return;
        }
        match &mut self.held {
            Some(held) => held.push(event),
            None => {
                self.view.apply(&event);
                self.changed(ctx);
            }
        }
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for MonitorSession {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match incoming(item, ctx, &mut self.unacked) {
            Some(ws::Message::Text(text)) => match serde_json::from_str::<MonitorClientMsg>(&text) {
                Ok(MonitorClientMsg::Ack) => self.unacked = 0,
                Ok(MonitorClientMsg::Ping) => self.send(&MonitorMsg::Pong, ctx),
                Err(e) => self.send(&MonitorMsg::Error { error: Code::InvalidMessage, message: e.to_string() }, ctx),
            },
            Some(_) => {
                let err = MonitorMsg::Error { error: Code::InvalidMessage, message: "send JSON text frames".into() };
                self.send(&err, ctx);
            }
            None => {}
        }
    }
}

/// The supervisor's live monitor (S1): the session of the REST API (cookie or bearer token), role
/// supervisor or admin.
#[get("/ws/monitor")]
pub async fn ws_monitor(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
    me: CurrentAgent,
) -> Result<HttpResponse, actix_web::Error> {
    if !origin_allowed(&req, &state.allowed_origins) {
        return Err(ApiError::forbidden("this origin may not open a monitor").into());
    }
    supervisor(&me)?;
    let session = MonitorSession {
        view: MonitorView::new(me.clone()),
        me,
        state: state.get_ref().clone(),
        last_heard: Instant::now(),
        unacked: 0,
        held: Some(Vec::new()),
        looking_up: false,
        flush_scheduled: false,
        last_flush: None,
        socket: None,
        revoked: false,
    };
    ws::WsResponseBuilder::new(session, &req, stream).frame_size(MAX_FRAME).start()
}
