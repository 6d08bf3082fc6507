//! One actor per queue (service): its live counts and who watches them (the channel buttons of
//! the desk, D3, and the monitor, S1). The distributor updates it after each commit; it tells
//! its watchers only when a count really changed.

use actix::prelude::*;

use crate::feed::{EngineEvent, QueueCounts};

/// The actor of one service's queue.
pub struct QueueActor {
    counts: QueueCounts,
    watchers: Vec<Recipient<EngineEvent>>,
}

impl QueueActor {
    /// A queue with its first counts.
    pub fn new(counts: QueueCounts) -> Self {
        Self { counts, watchers: Vec::new() }
    }
}

impl Actor for QueueActor {
    type Context = Context<Self>;
}

/// New counts from the distributor.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UpdateCounts(pub QueueCounts);

/// The current counts.
#[derive(Message)]
#[rtype(result = "QueueCounts")]
pub struct GetCounts;

/// Watch the counts.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Watch(pub Recipient<EngineEvent>);

impl Handler<UpdateCounts> for QueueActor {
    type Result = ();

    fn handle(&mut self, msg: UpdateCounts, _: &mut Context<Self>) {
        // The oldest wait moves every second; only a change of the queue itself is news.
        let changed = (msg.0.waiting, msg.0.inactive) != (self.counts.waiting, self.counts.inactive);
        self.counts = msg.0;
        if changed {
            self.watchers.retain(|w| w.connected());
            for w in &self.watchers {
                w.do_send(EngineEvent::Queue(self.counts.clone()));
            }
        }
    }
}

impl Handler<GetCounts> for QueueActor {
    type Result = MessageResult<GetCounts>;

    fn handle(&mut self, _: GetCounts, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.counts.clone())
    }
}

impl Handler<Watch> for QueueActor {
    type Result = ();

    fn handle(&mut self, msg: Watch, _: &mut Context<Self>) {
        self.watchers.push(msg.0);
    }
}
