//! One actor per open conversation: it owns the conversation's timers (offer timeout, inactivity,
//! abandonment, alerts — R7, R10) and turns each that fires into a command for the distributor.
//!
//! The actor holds only its conversation's id (issue 6: memory per open conversation). Its timers
//! are set without a recipient of their own; when one fires, the timer wheel tells the distributor
//! (its router), which hands it to this actor with its own address ([`Due`]).

use actix::prelude::*;
use chrono::{DateTime, Utc};
use schema::{ConversationId, ConversationState, SubState};

use crate::book::{Command, abandon_deadline, inactivity_deadline};
use crate::distributor::{Distributor, Execute, RaiseAlert};
use crate::feed::AlertKind;
use crate::model::{ConversationFacts, ServiceSettings};
use crate::timers::{TimerFired, TimerKey};

/// The actor of one open conversation.
pub struct ConversationActor {
    pub id: ConversationId,
}

/// One of the conversation's timers fired; `distributor` takes the command it turns into.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Due {
    pub fired: TimerFired,
    pub distributor: Addr<Distributor>,
}

impl Actor for ConversationActor {
    type Context = Context<Self>;
}

/// The conversation ended: the actor stops.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Close;

impl Handler<Close> for ConversationActor {
    type Result = ();

    fn handle(&mut self, _: Close, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<Due> for ConversationActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, Due { fired, distributor }: Due, _: &mut Context<Self>) -> Self::Result {
        let conversation = self.id;
        Box::pin(async move {
            let command = match fired.key {
                TimerKey::Offer(_) => Command::OfferExpired { conversation },
                TimerKey::Inactivity(_) => Command::InactivityElapsed { conversation },
                TimerKey::Abandon(_) => Command::AbandonElapsed { conversation },
                TimerKey::AgentAlert(_) => {
                    let _ = distributor.send(RaiseAlert { conversation, kind: AlertKind::CustomerSilent }).await;
                    return;
                }
                TimerKey::CustomerReminder(_) => {
                    let _ = distributor.send(RaiseAlert { conversation, kind: AlertKind::CustomerReminder }).await;
                    return;
                }
                TimerKey::Opening(_) => Command::Approve { conversation, by: crate::book::By::System },
                TimerKey::Grace(_) => return,
            };
            // The book re-checks every deadline against its own state: a stale timer is a no-op.
            let _ = distributor.send(Execute(command)).await;
        })
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
