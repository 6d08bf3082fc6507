//! One actor per logged-in agent: its desk connections (any number of tabs, D1), the events it
//! must see, and the disconnect grace (R9): when the last connection drops, a timer starts; if no
//! connection comes back before it fires, the agent is logged off and its conversations go back
//! to their queues as `inactive_in_queue`.

use std::collections::HashMap;
use std::time::Duration;

use actix::prelude::*;
use schema::AgentId;

use crate::book::{Command, LogoffReason};
use crate::clock::Clock;
use crate::feed::EngineEvent;
use crate::messages::Execute;
use crate::timers::{SetTimer, TimerFired, TimerKey, Timers};

/// The actor of one agent.
pub struct AgentActor {
    pub id: AgentId,
    /// The distributor's commands (logoff at the end of the grace, away while no desk is open).
    pub distributor: Recipient<Execute>,
    pub timers: Addr<Timers>,
    pub clock: Clock,
    pub grace: Duration,
    connections: HashMap<u64, Recipient<EngineEvent>>,
    next_connection: u64,
}

impl AgentActor {
    /// An agent with no connection yet.
    pub fn new(
        id: AgentId,
        distributor: Recipient<Execute>,
        timers: Addr<Timers>,
        clock: Clock,
        grace: Duration,
    ) -> Self {
        Self { id, distributor, timers, clock, grace, connections: HashMap::new(), next_connection: 1 }
    }

    /// Arms (the last desk went away) or disarms (a desk is back) the grace timer, and tells the
    /// routing book whether the agent can be given new work.
    fn set_grace(&self, ctx: &mut Context<Self>, armed: bool) {
        let at = armed.then(|| self.clock.now() + chrono::Duration::from_std(self.grace).unwrap_or_default());
        self.timers.do_send(SetTimer { key: TimerKey::Grace(self.id), at, target: Some(ctx.address().recipient()) });
        self.distributor.do_send(Execute(Command::Away { agent: self.id, away: armed }));
    }
}

impl Actor for AgentActor {
    type Context = Context<Self>;
}

/// A desk connection opened; returns its id.
#[derive(Message)]
#[rtype(result = "u64")]
pub struct Connect(pub Recipient<EngineEvent>);

/// A desk connection closed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect(pub u64);

/// An event for this agent's desks.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deliver(pub EngineEvent);

/// Arms the grace timer as if the last connection had just dropped (start-up after a restart:
/// nobody is connected yet, R15).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StartGrace;

/// How many desks are connected.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct ConnectionCount;

impl Handler<Connect> for AgentActor {
    type Result = u64;

    fn handle(&mut self, msg: Connect, ctx: &mut Context<Self>) -> u64 {
        let id = self.next_connection;
        self.next_connection += 1;
        if self.connections.is_empty() {
            self.set_grace(ctx, false);
        }
        self.connections.insert(id, msg.0);
        id
    }
}

impl Handler<Disconnect> for AgentActor {
    type Result = ();

    fn handle(&mut self, msg: Disconnect, ctx: &mut Context<Self>) {
        if self.connections.remove(&msg.0).is_some() && self.connections.is_empty() {
            self.set_grace(ctx, true);
        }
    }
}

impl Handler<StartGrace> for AgentActor {
    type Result = ();

    fn handle(&mut self, _: StartGrace, ctx: &mut Context<Self>) {
        if self.connections.is_empty() {
            self.set_grace(ctx, true);
        }
    }
}

impl Handler<ConnectionCount> for AgentActor {
    type Result = usize;

    fn handle(&mut self, _: ConnectionCount, _: &mut Context<Self>) -> usize {
        self.connections.len()
    }
}

impl Handler<Deliver> for AgentActor {
    type Result = ();

    fn handle(&mut self, msg: Deliver, _: &mut Context<Self>) {
        // A desk that went away without saying so is forgotten here.
        self.connections.retain(|_, desk| desk.connected());
        for desk in self.connections.values() {
            desk.do_send(msg.0.clone());
        }
    }
}

impl Handler<TimerFired> for AgentActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, fired: TimerFired, _: &mut Context<Self>) -> Self::Result {
        let still_gone = self.connections.is_empty();
        let distributor = self.distributor.clone();
        let agent = self.id;
        Box::pin(async move {
            if matches!(fired.key, TimerKey::Grace(_)) && still_gone {
                let _ = distributor.send(Execute(Command::Logoff { agent, reason: LogoffReason::Disconnected })).await;
            }
        })
    }
}
