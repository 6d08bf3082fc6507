//! Timers as actor messages: one ordered map of deadlines and one re-armed `run_later` for the
//! earliest (mini-redis's design), not one task per timer. With a manual clock nothing fires by
//! itself: `Tick` fires what is due, so tests move time instead of sleeping.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use schema::{AgentId, ConversationId};

use crate::clock::Clock;

/// What a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKey {
    /// An offer's timeout (R7).
    Offer(ConversationId),
    /// No customer message for the inactivity time (R10).
    Inactivity(ConversationId),
    /// Inactive for the abandonment time (R10).
    Abandon(ConversationId),
    /// Warn the agent (R10).
    AgentAlert(ConversationId),
    /// Remind the customer (R10).
    CustomerReminder(ConversationId),
    /// An agent's disconnect grace (R9).
    Grace(AgentId),
    /// The next opening of the service of a conversation held out of hours (R14).
    Opening(ConversationId),
}

/// A deadline passed.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct TimerFired {
    pub key: TimerKey,
    pub deadline: DateTime<Utc>,
}

impl TimerKey {
    /// The conversation whose timer this is (`None` for an agent's).
    pub fn conversation(&self) -> Option<ConversationId> {
        match *self {
            TimerKey::Offer(c)
            | TimerKey::Inactivity(c)
            | TimerKey::Abandon(c)
            | TimerKey::AgentAlert(c)
            | TimerKey::CustomerReminder(c)
            | TimerKey::Opening(c) => Some(c),
            TimerKey::Grace(_) => None,
        }
    }
}

/// Sets (or moves) the deadline of a key; `None` removes it.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SetTimer {
    pub key: TimerKey,
    pub at: Option<DateTime<Utc>>,
    /// Who is told when it fires; `None`: the wheel's router ([`Route`]). A timer without a target
    /// of its own holds no recipient: 100,000 open conversations' timers cost no 100,000 of them.
    pub target: Option<Recipient<TimerFired>>,
}

/// Who is told of the timers set without a target of their own (the distributor, which hands
/// each to its conversation's actor). Timers that fire before a router is set are dropped.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Route(pub Recipient<TimerFired>);

/// Fires every due timer and waits until each target has handled its message (manual clock).
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct Tick;

/// How many timers are armed (monitoring, tests).
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct CountTimers;

/// The timer wheel of one engine.
pub struct Timers {
    clock: Clock,
    deadlines: BTreeSet<(DateTime<Utc>, TimerKey)>,
    by_key: HashMap<TimerKey, (DateTime<Utc>, Option<Recipient<TimerFired>>)>,
    router: Option<Recipient<TimerFired>>,
    armed: Option<(DateTime<Utc>, SpawnHandle)>,
}

impl Timers {
    /// A wheel reading `clock`.
    pub fn new(clock: Clock) -> Self {
        Self { clock, deadlines: BTreeSet::new(), by_key: HashMap::new(), router: None, armed: None }
    }

    fn take_due(&mut self) -> Vec<(TimerFired, Recipient<TimerFired>)> {
        let now = self.clock.now();
        let mut due = Vec::new();
        while let Some(&(at, key)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some((_, target)) = self.by_key.remove(&key)
                && let Some(target) = target.or_else(|| self.router.clone())
            {
                due.push((TimerFired { key, deadline: at }, target));
            }
        }
        due
    }

    /// Re-arms the one `run_later` for the earliest deadline (system clock only).
    fn rearm(&mut self, ctx: &mut Context<Self>) {
        if self.clock.is_manual() {
            return;
        }
        let Some(&(earliest, _)) = self.deadlines.first() else {
            if let Some((_, handle)) = self.armed.take() {
                ctx.cancel_future(handle);
            }
            return;
        };
        if self.armed.as_ref().is_some_and(|(at, _)| *at == earliest) {
            return;
        }
        if let Some((_, handle)) = self.armed.take() {
            ctx.cancel_future(handle);
        }
        let wait = (earliest - self.clock.now()).to_std().unwrap_or(Duration::ZERO);
        let handle = ctx.run_later(wait, |this, ctx| {
            this.armed = None;
            for (fired, target) in this.take_due() {
                target.do_send(fired);
            }
            this.rearm(ctx);
        });
        self.armed = Some((earliest, handle));
    }
}

impl Actor for Timers {
    type Context = Context<Self>;
}

impl Handler<SetTimer> for Timers {
    type Result = ();

    fn handle(&mut self, msg: SetTimer, ctx: &mut Context<Self>) {
        if let Some((old, _)) = self.by_key.remove(&msg.key) {
            self.deadlines.remove(&(old, msg.key));
        }
        if let Some(at) = msg.at {
            self.deadlines.insert((at, msg.key));
            self.by_key.insert(msg.key, (at, msg.target));
        }
        self.rearm(ctx);
    }
}

impl Handler<Route> for Timers {
    type Result = ();

    fn handle(&mut self, Route(router): Route, _: &mut Context<Self>) {
        self.router = Some(router);
    }
}

impl Handler<Tick> for Timers {
    type Result = ResponseFuture<usize>;

    fn handle(&mut self, _: Tick, ctx: &mut Context<Self>) -> Self::Result {
        let due = self.take_due();
        self.rearm(ctx);
        Box::pin(async move {
            let n = due.len();
            for (fired, target) in due {
                // In order, each handled before the next: deterministic tests.
                let _ = target.send(fired).await;
            }
            n
        })
    }
}

impl Handler<CountTimers> for Timers {
    type Result = usize;

    fn handle(&mut self, _: CountTimers, _: &mut Context<Self>) -> usize {
        self.by_key.len()
    }
}
