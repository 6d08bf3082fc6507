//! `/ws/webchat`: the customer widget's WebSocket session, a thin actix-web-actors actor like the
//! desk's. It decodes frames with [`protocol::parse`], hands them to [`visitor`], and pushes what
//! the hub sends (the agent's messages, state changes). Everything socket-specific is here.

use std::time::Instant;

use actix::prelude::*;
use actix_web::{HttpRequest, HttpResponse, get, web};
use actix_web_actors::ws;
use schema::models::Service;
use schema::{ConversationId, VisitorId};
use tracing::debug;

use crate::core::error::{ApiError, Code};
use crate::core::state::AppState;
use crate::webchat::hub::{Follow, Join, Joined, Leave, Push};
use crate::webchat::protocol::{self, ClientFrame, FrameError, ServerFrame};
use crate::webchat::visitor::{self, VisitorCtx};

/// Frames sent without the widget answering a ping: past this it cannot keep up and is
/// disconnected (it resumes on reconnect) instead of the server buffering without end.
pub const MAX_UNACKED: usize = 1_000;
/// Largest text frame accepted from a widget (a message is at most 4096 characters).
pub const MAX_FRAME: usize = 64 * 1024;
/// Customer messages of one socket being stored at once; more are refused until some finish.
pub const MAX_IN_FLIGHT: usize = 100;

/// One widget connection.
pub struct VisitorSession {
    state: AppState,
    service: Service,
    last_heard: Instant,
    unacked: usize,
    visitor: Option<VisitorCtx>,
    /// This socket's place at the hub, once started.
    socket: Option<Joined>,
    in_flight: usize,
    /// Until `started` is sent, pushes wait here (then those already in the history are dropped).
    pending: Option<Vec<ServerFrame>>,
    /// This socket's place among the webchat sockets of its address and of the server.
    _permit: crate::core::limits::SocketPermit,
}

impl VisitorSession {
    fn send(&mut self, frame: &ServerFrame, ctx: &mut ws::WebsocketContext<Self>) {
        match serde_json::to_string(frame) {
            Ok(text) => {
                ctx.text(text);
                self.unacked += 1;
                if self.unacked > MAX_UNACKED {
                    debug!("webchat widget too slow; disconnecting");
                    ctx.close(Some(ws::CloseReason {
                        code: ws::CloseCode::Policy,
                        description: Some("too slow".into()),
                    }));
                    ctx.stop();
                }
            }
            Err(e) => tracing::error!(error = %e, "encoding a webchat frame"),
        }
    }

    fn refuse(&mut self, e: FrameError, ctx: &mut ws::WebsocketContext<Self>) {
        self.send(&ServerFrame::error(None, e), ctx);
    }

    /// Refuses a frame the socket layer could not read, and closes (the stream cannot be trusted).
    fn refuse_and_close(&mut self, e: FrameError, code: ws::CloseCode, ctx: &mut ws::WebsocketContext<Self>) {
        self.refuse(e, ctx);
        ctx.close(Some(ws::CloseReason { code, description: None }));
        ctx.stop();
    }

    /// `start` or `resume`: no other frame is read until it is done (`ctx.wait`).
    fn open(&mut self, frame: ClientFrame, ctx: &mut ws::WebsocketContext<Self>) {
        if self.visitor.is_some() {
            return self.refuse(FrameError::new(Code::AlreadyStarted, "this chat is already open"), ctx);
        }
        let (state, service) = (self.state.clone(), self.service.clone());
        let Some(hub) = crate::webchat::hub(&state).map(|h| h.addr()) else {
            return self.refuse(FrameError::new(Code::Unavailable, "the chat is not available; retry"), ctx);
        };
        let me = ctx.address().recipient::<Push>();
        self.pending = Some(Vec::new());
        let work = async move {
            let join = |visitor: VisitorId, conversation: Option<ConversationId>| {
                hub.send(Join { visitor, conversation, socket: me.clone() })
            };
            let (vctx, mut frame, socket) = match frame {
                ClientFrame::Start { name, email, .. } => {
                    let (vctx, frame) = visitor::start(&state, &service, name, email).await?;
                    let socket = join(vctx.visitor.id, vctx.conversation).await.ok();
                    (vctx, frame, socket)
                }
                ClientFrame::Resume { token } => {
                    let (found, latest) = visitor::returning(&state, &service, &token).await?;
                    let open = latest.as_ref().filter(|c| !c.state.is_final()).map(|c| c.id);
                    let visitor_id = found.id;
                    let socket = join(visitor_id, open).await.ok();
                    match visitor::resume(&state, found, latest).await {
                        Ok((vctx, frame)) => (vctx, frame, socket),
                        Err(e) => {
                            // Refused after joining: the socket leaves the hub again.
                            if let Some(joined) = socket {
                                let _ = hub.send(Leave { visitor: visitor_id, socket: joined.socket }).await;
                            }
                            return Err(e);
                        }
                    }
                }
                _ => return Err(FrameError::new(Code::InvalidMessage, "not an opening frame")),
            };
            // The conversation's state as of now that the hub forwards its events: an
            // assignment made while the chat was opening is not missed.
            if let (Some(c), ServerFrame::Started { state: shown, .. }) = (vctx.conversation, &mut frame)
                && let Some(facts) = state.engine.conversation(c).await
            {
                *shown = Some(facts.state.to_string());
            }
            Ok((vctx, frame, socket))
        };
        ctx.wait(work.into_actor(self).map(|result, this, ctx| {
            let pushed = this.pending.take().unwrap_or_default();
            match result {
                Ok((vctx, frame, socket)) => {
                    let seen: Vec<String> = match &frame {
                        ServerFrame::Started { messages, .. } => messages.iter().map(|m| m.id.clone()).collect(),
                        _ => Vec::new(),
                    };
                    this.visitor = Some(vctx);
                    this.socket = socket;
                    this.send(&frame, ctx);
                    for p in pushed {
                        if !matches!(&p, ServerFrame::Message { message } if seen.contains(&message.id)) {
                            this.send(&p, ctx);
                        }
                    }
                }
                Err(e) => this.refuse(e, ctx),
            }
        }));
    }

    fn message(&mut self, frame: ClientFrame, ctx: &mut ws::WebsocketContext<Self>) {
        let ClientFrame::Message { client_id, text, attachment_ids } = frame else { return };
        let Some(vctx) = self.visitor.clone() else {
            let e = FrameError::new(Code::NotStarted, "send start (or resume) first");
            return self.send(&ServerFrame::error(Some(client_id), e), ctx);
        };
        if self.in_flight >= MAX_IN_FLIGHT {
            let e = FrameError::new(Code::TooManyInFlight, "wait for the acks of the messages sent");
            return self.send(&ServerFrame::error(Some(client_id), e), ctx);
        }
        self.in_flight += 1;
        let state = self.state.clone();
        let cid = client_id.clone();
        let work = async move { visitor::message(&state, &vctx, cid, text, attachment_ids).await };
        ctx.spawn(work.into_actor(self).map(move |result, this, ctx| {
            this.in_flight -= 1;
            match result {
                Ok(stored) => {
                    let mut moved = false;
                    let visitor = this.visitor.as_mut().map(|v| {
                        moved = v.conversation != Some(stored.conversation);
                        v.conversation = Some(stored.conversation);
                        v.visitor.id
                    });
                    this.send(
                        &ServerFrame::Ack {
                            client_id,
                            message_id: stored.message.id.clone(),
                            conversation_id: stored.conversation.to_string(),
                        },
                        ctx,
                    );
                    if let Some(visitor) = visitor {
                        // The hub follows the conversation the visitor joined with; it is told
                        // again only when a message moved the visitor to another one.
                        if moved {
                            let (hub, engine, me) = (
                                crate::webchat::hub(&this.state).map(|h| h.addr()),
                                this.state.engine.clone(),
                                ctx.address(),
                            );
                            let conversation = stored.conversation;
                            actix::spawn(async move {
                                if let Some(hub) = hub {
                                    let _ = hub.send(Follow { visitor, conversation }).await;
                                }
                                // A new conversation's state as of now that the hub forwards its
                                // events (it may have been assigned before).
                                if let Some(facts) = engine.conversation(conversation).await {
                                    let (conversation_id, state) = (conversation.to_string(), facts.state.to_string());
                                    me.do_send(Push { frame: ServerFrame::State { conversation_id, state } });
                                }
                            });
                        }
                        if let Some(joined) = this.socket.as_ref().filter(|j| stored.new && j.has_siblings()) {
                            // The visitor's other tabs show it too.
                            let frame = ServerFrame::Message { message: stored.message };
                            if let Some(hub) = crate::webchat::hub(&this.state) {
                                hub.deliver_later(visitor, frame, Some(joined.socket));
                            }
                        }
                    }
                }
                Err(e) => this.send(&ServerFrame::error(Some(client_id), e), ctx),
            }
        }));
    }

    fn receipt(&mut self, frame: ClientFrame, ctx: &mut ws::WebsocketContext<Self>) {
        let ClientFrame::Receipt { status, message_ids } = frame else { return };
        let Some(vctx) = self.visitor.clone() else {
            return self.refuse(FrameError::new(Code::NotStarted, "send start (or resume) first"), ctx);
        };
        let state = self.state.clone();
        ctx.spawn(async move { visitor::receipt(&state, &vctx, status, message_ids).await }.into_actor(self).map(
            |result, this, ctx| {
                if let Err(e) = result {
                    this.refuse(e, ctx);
                }
            },
        ));
    }
}

impl Actor for VisitorSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // The desks' heartbeat: a ping every 5 s, a widget silent for 20 s is gone.
        crate::core::socket::keep_alive(ctx, |this| this.last_heard);
        // A socket answering pings but never opening a chat would otherwise be held for ever.
        ctx.run_later(self.state.limits.webchat_start_timeout, |this, ctx| {
            if this.visitor.is_none() && this.pending.is_none() {
                debug!("webchat socket never started; closing");
                this.refuse_and_close(
                    FrameError::new(Code::StartTimeout, "send start (or resume) when the socket opens"),
                    ws::CloseCode::Policy,
                    ctx,
                );
            }
        });
    }

    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        if let (Some(joined), Some(v)) = (self.socket.take(), &self.visitor)
            && let Some(hub) = crate::webchat::hub(&self.state)
        {
            hub.addr().do_send(Leave { visitor: v.visitor.id, socket: joined.socket });
        }
        Running::Stop
    }
}

impl Handler<Push> for VisitorSession {
    type Result = ();

    fn handle(&mut self, push: Push, ctx: &mut Self::Context) {
        match &mut self.pending {
            Some(pending) => pending.push(push.frame),
            None => self.send(&push.frame, ctx),
        }
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for VisitorSession {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match item {
            Ok(ws::Message::Ping(bytes)) => ctx.pong(&bytes),
            Ok(ws::Message::Pong(_)) => self.unacked = 0,
            Ok(ws::Message::Text(text)) => match protocol::parse(&text) {
                Err(e) => self.refuse(e, ctx),
                Ok(ClientFrame::Ping) => self.send(&ServerFrame::Pong, ctx),
                Ok(ClientFrame::Start { service_id: Some(s), .. }) if s.trim() != self.service.id.to_string() => self
                    .refuse(FrameError::new(Code::WrongService, "service_id is not the service of this socket"), ctx),
                Ok(f @ (ClientFrame::Start { .. } | ClientFrame::Resume { .. })) => self.open(f, ctx),
                Ok(f @ ClientFrame::Message { .. }) => self.message(f, ctx),
                Ok(f @ ClientFrame::Receipt { .. }) => self.receipt(f, ctx),
            },
            Ok(ws::Message::Binary(_)) => {
                self.refuse(FrameError::new(Code::InvalidMessage, "send JSON text frames"), ctx);
            }
            Ok(ws::Message::Continuation(_)) => {
                self.refuse(FrameError::new(Code::InvalidMessage, "send each frame whole"), ctx);
            }
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Ok(ws::Message::Nop) => {}
            Err(ws::ProtocolError::Overflow) => self.refuse_and_close(
                FrameError::new(Code::FrameTooLarge, format!("frames are at most {} KiB", MAX_FRAME / 1024)),
                ws::CloseCode::Size,
                ctx,
            ),
            Err(e) => self.refuse_and_close(
                FrameError::new(Code::InvalidMessage, format!("unreadable frame: {e}")),
                ws::CloseCode::Invalid,
                ctx,
            ),
        }
    }
}

/// The query of the upgrade: the service the widget belongs to.
#[derive(serde::Deserialize)]
pub struct Upgrade {
    service_id: Option<String>,
}

/// The widget's WebSocket: `GET /ws/webchat?service_id=…`. The service must be an active webchat
/// service (404) and the Origin one it allows (403), checked before the upgrade.
#[get("/ws/webchat")]
pub async fn ws_webchat(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    // Counted before anything else, the database included: a flood of sockets is refused for free.
    let address = crate::core::session::client_address(&req, state.client_address_header.as_deref());
    let permit = crate::core::limits::admit_webchat_socket(&state.limits, Some(address))?;
    let query = web::Query::<Upgrade>::from_query(req.query_string())
        .map_err(|_| ApiError::bad_request(Code::InvalidQuery, "the query is ?service_id=<id>"))?;
    let raw = query.service_id.as_deref().ok_or_else(|| {
        ApiError::bad_request(Code::MissingServiceId, "open /ws/webchat?service_id=<the webchat service>")
    })?;
    let service = crate::webchat::webchat_service(&state, raw).await?;
    if !crate::webchat::origin_allowed(&req, &service) {
        return Err(ApiError::forbidden("this site may not open this chat").with_code(Code::OriginNotAllowed).into());
    }
    let session = VisitorSession {
        state: state.get_ref().clone(),
        service,
        last_heard: Instant::now(),
        unacked: 0,
        visitor: None,
        socket: None,
        in_flight: 0,
        pending: None,
        _permit: permit,
    };
    ws::WsResponseBuilder::new(session, &req, stream).frame_size(MAX_FRAME).start()
}
