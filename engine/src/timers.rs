//! Timers as actor messages: one ordered map of deadlines and one re-armed `run_later` for the
//! earliest (mini-redis's design), not one task per timer. With a manual clock nothing fires by
//! itself: `Tick` fires what is due, so tests move time instead of sleeping.
//!
//! A conversation's timers (offer timeout, inactivity, abandonment, alerts — R7, R10 — and the
//! next opening, R14) hold no recipient and no actor of their own: when one fires, the wheel sends
//! the distributor the command it stands for ([`Route`]), which the book checks against its own
//! state (a stale timer is a no-op). An agent's grace (R9) goes to the agent's actor, which
//! decides by its connections whether it still applies.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use schema::{AgentId, ConversationId, ConversationState, SubState};

use crate::book::{By, Command, abandon_deadline, inactivity_deadline};
use crate::clock::Clock;
use crate::feed::AlertKind;
use crate::messages::{Execute, RaiseAlert};
use crate::model::{ConversationFacts, ServiceSettings};

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

/// Sets (or moves) the deadline of a key; `None` removes it.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SetTimer {
    pub key: TimerKey,
    pub at: Option<DateTime<Utc>>,
    /// Who is told when it fires; `None`: a conversation's timer, which becomes the distributor's
    /// command ([`Route`]). A timer without a target of its own holds no recipient: 100,000 open
    /// conversations' timers cost no 100,000 of them.
    pub target: Option<Recipient<TimerFired>>,
}

/// Where the timers set without a target of their own go: the distributor's commands and alerts.
/// Timers that fire before a route is set are dropped.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Route {
    pub execute: Recipient<Execute>,
    pub alert: Recipient<RaiseAlert>,
}

/// The distributor's command a conversation's timer stands for (`None`: an alert, or an agent's
/// grace, which has a target of its own). The book re-checks it against its own state.
fn command(key: TimerKey) -> Option<Command> {
    match key {
        TimerKey::Offer(conversation) => Some(Command::OfferExpired { conversation }),
        TimerKey::Inactivity(conversation) => Some(Command::InactivityElapsed { conversation }),
        TimerKey::Abandon(conversation) => Some(Command::AbandonElapsed { conversation }),
        TimerKey::Opening(conversation) => Some(Command::Approve { conversation, by: By::System }),
        TimerKey::AgentAlert(_) | TimerKey::CustomerReminder(_) | TimerKey::Grace(_) => None,
    }
}

/// The alert a conversation's timer raises (R10).
fn alert(key: TimerKey) -> Option<RaiseAlert> {
    match key {
        TimerKey::AgentAlert(conversation) => Some(RaiseAlert { conversation, kind: AlertKind::CustomerSilent }),
        TimerKey::CustomerReminder(conversation) => {
            Some(RaiseAlert { conversation, kind: AlertKind::CustomerReminder })
        }
        _ => None,
    }
}

/// A due timer and who acts on it.
enum Firing {
    /// A timer with a target of its own.
    Told(TimerFired, Recipient<TimerFired>),
    /// A conversation's timer, for the distributor.
    Routed(TimerKey, Route),
}

impl Firing {
    fn do_send(self) {
        match self {
            Firing::Told(m, to) => to.do_send(m),
            Firing::Routed(key, route) => {
                if let Some(c) = command(key) {
                    route.execute.do_send(Execute(c));
                } else if let Some(a) = alert(key) {
                    route.alert.do_send(a);
                }
            }
        }
    }

    /// Sends and waits until it is handled (a command: until what it changed is committed).
    async fn send(self) {
        match self {
            Firing::Told(m, to) => {
                let _ = to.send(m).await;
            }
            Firing::Routed(key, route) => {
                if let Some(c) = command(key) {
                    let _ = route.execute.send(Execute(c)).await;
                } else if let Some(a) = alert(key) {
                    let _ = route.alert.send(a).await;
                }
            }
        }
    }
}

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
    route: Option<Route>,
    armed: Option<(DateTime<Utc>, SpawnHandle)>,
}

impl Timers {
    /// A wheel reading `clock`.
    pub fn new(clock: Clock) -> Self {
        Self { clock, deadlines: BTreeSet::new(), by_key: HashMap::new(), route: None, armed: None }
    }

    fn take_due(&mut self) -> Vec<Firing> {
        let now = self.clock.now();
        let mut due = Vec::new();
        while let Some(&(at, key)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            let firing = match self.by_key.remove(&key) {
                Some((_, Some(target))) => Some(Firing::Told(TimerFired { key, deadline: at }, target)),
                Some((_, None)) => self.route.clone().map(|route| Firing::Routed(key, route)),
                None => None,
            };
            due.extend(firing);
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
            for firing in this.take_due() {
                firing.do_send();
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

    fn handle(&mut self, route: Route, _: &mut Context<Self>) {
        self.route = Some(route);
    }
}

impl Handler<Tick> for Timers {
    type Result = ResponseFuture<usize>;

    fn handle(&mut self, _: Tick, ctx: &mut Context<Self>) -> Self::Result {
        let due = self.take_due();
        self.rearm(ctx);
        Box::pin(async move {
            let n = due.len();
            for firing in due {
                // In order, each handled before the next: deterministic tests.
                firing.send().await;
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

/// Every timer of a conversation with its deadline (`None`: not armed), from its stored facts,
/// so a restart re-arms them at their original deadlines (R15).
pub fn deadlines(c: &ConversationFacts, s: &ServiceSettings) -> [(TimerKey, Option<DateTime<Utc>>); 6] {
    let id = c.id;
    let silent_for = |d: Option<std::time::Duration>| {
        let active_chat = c.channel.is_chat_like()
            && c.state == ConversationState::InService
            && c.sub_state == Some(SubState::Active);
        let from = c.last_customer_message_at.max(c.assigned_at)?;
        if !active_chat {
            return None;
        }
        Some(from + chrono::Duration::from_std(d?).ok()?)
    };
    [
        (TimerKey::Offer(id), c.offer.map(|(_, at)| at)),
        (TimerKey::Inactivity(id), inactivity_deadline(c, s)),
        (TimerKey::Abandon(id), abandon_deadline(c, s)),
        (TimerKey::AgentAlert(id), silent_for(s.agent_alert)),
        (TimerKey::CustomerReminder(id), silent_for(s.customer_reminder)),
        (TimerKey::Opening(id), opening(c, s)),
    ]
}

/// When a conversation held out of hours is let into its queue (R14).
fn opening(c: &ConversationFacts, s: &ServiceSettings) -> Option<DateTime<Utc>> {
    if c.state != ConversationState::PreOpening || c.hold != Some(schema::HoldReason::OutOfHours) {
        return None;
    }
    s.hours.as_ref()?.next_opening(c.arrived_at)
}
