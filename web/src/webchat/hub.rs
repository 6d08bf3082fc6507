//! The hub: which visitor sockets are connected, and which conversation each visitor is in. One
//! small actor, so the outbound sender can ask "is this visitor here?" and push an agent's
//! message, and the engine's conversation events (assigned, concluded…) reach the visitor's
//! sockets. It subscribes to the engine feed once, when first used.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use actix::prelude::*;
use engine::{Engine, EngineEvent, Feed};
use schema::{ConversationId, VisitorId};

use crate::webchat::protocol::ServerFrame;

/// A frame for one visitor socket.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Push {
    pub frame: ServerFrame,
}

/// A socket joins: `conversation` is the visitor's current one.
#[derive(Message)]
#[rtype(result = "Joined")]
pub struct Join {
    pub visitor: VisitorId,
    pub conversation: Option<ConversationId>,
    pub socket: Recipient<Push>,
}

/// A socket's place at the hub.
#[derive(Debug, Clone)]
pub struct Joined {
    /// The socket's number.
    pub socket: u64,
    /// How many sockets its visitor has (kept by the hub): a socket with no sibling does not
    /// send the hub a copy of each message for the visitor's other tabs.
    pub tabs: Arc<AtomicUsize>,
}

impl Joined {
    /// Whether the visitor has another socket open.
    pub fn has_siblings(&self) -> bool {
        self.tabs.load(Ordering::SeqCst) > 1
    }
}

/// A visitor's sockets.
#[derive(Default)]
struct Tabs {
    sockets: HashMap<u64, Recipient<Push>>,
    count: Arc<AtomicUsize>,
}

impl Tabs {
    fn counted(&mut self) {
        self.count.store(self.sockets.len(), Ordering::SeqCst);
    }
}

/// A socket left.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub visitor: VisitorId,
    pub socket: u64,
}

/// The visitor is now in this conversation (a message opened a new one).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Follow {
    pub visitor: VisitorId,
    pub conversation: ConversationId,
}

/// Pushes a frame to every socket of a visitor but `except`; answers how many got it.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Deliver {
    pub visitor: VisitorId,
    pub frame: ServerFrame,
    pub except: Option<u64>,
}

/// The registry actor.
pub struct Hub {
    engine: Engine,
    next_socket: u64,
    sockets: HashMap<VisitorId, Tabs>,
    /// The conversation each connected visitor is in (written by `Join` and `Follow`).
    following: HashMap<ConversationId, VisitorId>,
}

impl Actor for Hub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let (engine, me) = (self.engine.clone(), ctx.address().recipient());
        ctx.wait(async move { engine.subscribe(me, Feed::WithoutMessages).await }.into_actor(self));
    }
}

impl Handler<Join> for Hub {
    type Result = MessageResult<Join>;

    fn handle(&mut self, m: Join, _: &mut Self::Context) -> Self::Result {
        self.next_socket += 1;
        let tabs = self.sockets.entry(m.visitor).or_default();
        tabs.sockets.insert(self.next_socket, m.socket);
        tabs.counted();
        let joined = Joined { socket: self.next_socket, tabs: tabs.count.clone() };
        if let Some(c) = m.conversation {
            self.follow(m.visitor, c);
        }
        MessageResult(joined)
    }
}

impl Handler<Leave> for Hub {
    type Result = ();

    fn handle(&mut self, m: Leave, _: &mut Self::Context) {
        if let Some(tabs) = self.sockets.get_mut(&m.visitor) {
            tabs.sockets.remove(&m.socket);
            tabs.counted();
            if tabs.sockets.is_empty() {
                self.sockets.remove(&m.visitor);
                self.following.retain(|_, v| *v != m.visitor);
            }
        }
    }
}

impl Handler<Follow> for Hub {
    type Result = ();

    fn handle(&mut self, m: Follow, _: &mut Self::Context) {
        if self.sockets.contains_key(&m.visitor) {
            self.follow(m.visitor, m.conversation);
        }
    }
}

impl Handler<Deliver> for Hub {
    type Result = usize;

    fn handle(&mut self, m: Deliver, _: &mut Self::Context) -> usize {
        self.push(m.visitor, &m.frame, m.except)
    }
}

impl Handler<EngineEvent> for Hub {
    type Result = ();

    fn handle(&mut self, event: EngineEvent, _: &mut Self::Context) {
        let EngineEvent::Conversation { event, .. } = event else { return };
        let facts = &event.facts;
        let Some(visitor) = self.following.get(&facts.id).copied() else { return };
        let (conversation_id, state) = (facts.id.to_string(), facts.state.to_string());
        let frame = if facts.state.is_final() {
            ServerFrame::Ended { conversation_id, state }
        } else {
            ServerFrame::State { conversation_id, state }
        };
        self.push(visitor, &frame, None);
    }
}

impl Hub {
    fn follow(&mut self, visitor: VisitorId, conversation: ConversationId) {
        self.following.retain(|_, v| *v != visitor);
        self.following.insert(conversation, visitor);
    }

    fn push(&mut self, visitor: VisitorId, frame: &ServerFrame, except: Option<u64>) -> usize {
        let Some(tabs) = self.sockets.get_mut(&visitor) else { return 0 };
        // A socket whose actor is gone is forgotten (its `Leave` may still be on the way).
        tabs.sockets.retain(|_, s| s.connected());
        tabs.counted();
        tabs.sockets
            .iter()
            .filter(|(n, _)| Some(**n) != except)
            .filter(|(_, s)| s.try_send(Push { frame: frame.clone() }).is_ok())
            .count()
    }
}

/// A handle on the hub, started on first use inside the actix system (cheap to clone).
#[derive(Clone)]
pub struct WebchatHub {
    engine: Engine,
    hub: Arc<OnceLock<Addr<Hub>>>,
}

impl WebchatHub {
    /// A hub over this engine's feed (not started until used).
    pub fn new(engine: Engine) -> Self {
        Self { engine, hub: Arc::default() }
    }

    /// The hub's address.
    pub fn addr(&self) -> Addr<Hub> {
        self.hub
            .get_or_init(|| {
                Hub { engine: self.engine.clone(), next_socket: 0, sockets: HashMap::new(), following: HashMap::new() }
                    .start()
            })
            .clone()
    }

    /// Pushes a frame to a visitor's sockets; how many got it (0 when the visitor is away).
    pub async fn deliver(&self, visitor: VisitorId, frame: ServerFrame, except: Option<u64>) -> usize {
        self.addr().send(Deliver { visitor, frame, except }).await.unwrap_or(0)
    }

    /// [`Self::deliver`] without waiting to know how many sockets took it.
    pub fn deliver_later(&self, visitor: VisitorId, frame: ServerFrame, except: Option<u64>) {
        self.addr().do_send(Deliver { visitor, frame, except });
    }
}
