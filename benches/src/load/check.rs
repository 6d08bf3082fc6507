//! The correctness counters, computed from what the agents observed (not from what the server
//! says about itself).
//!
//! - **Double assignment**: the events of every conversation, gathered from every agent that saw
//!   them, deduplicated by `seq` (the conversation's own total order, given at commit) and replayed
//!   in order: an `assigned` / `offer_accepted` to agent B while agent A still holds it (no
//!   conclusion, return or transfer in between) counts one.
//! - **Capacity exceeded**: each agent's own stream, in the order its socket delivered it: the
//!   active conversations it holds per channel (R10: one that became inactive frees its place
//!   until reactivated); more than its capacity at any point counts one.
//! - **Offers to unavailable agents**: an `offered` or `assigned` event to an agent whose server
//!   time falls inside one of that agent's pauses (from the `since` of the `PUT presence` answer
//!   that paused it to the `since` of the one that made it available again).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::agent::{Observations, Observed};

/// Counters that must read zero.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Correctness {
    pub double_assignments: u64,
    pub capacity_exceeded: u64,
    pub offers_to_unavailable: u64,
    /// From the monitor samples (see [`super::Report`]).
    pub waiting_while_free: u64,
    /// Acknowledged customer messages no agent saw (live or in a history it loaded) by the end
    /// of the drain.
    pub acknowledged_messages_lost: u64,
    /// Agent replies answered 201 that never reached the provider by the end of the drain.
    pub replies_not_delivered: u64,
    /// Restart scenario: conversations an agent held whose inactivity timer (R10), armed before
    /// the `kill -9`, had not fired well after its deadline (no `became_inactive` as their last
    /// event).
    pub timers_not_fired: u64,
}

impl Correctness {
    /// True when every counter reads zero.
    pub fn all_zero(&self) -> bool {
        self.double_assignments == 0
            && self.capacity_exceeded == 0
            && self.offers_to_unavailable == 0
            && self.waiting_while_free == 0
            && self.acknowledged_messages_lost == 0
            && self.replies_not_delivered == 0
            && self.timers_not_fired == 0
    }
}

/// Conversations some agent held (assigned, accepted or transferred to it) at some point.
pub fn held(observations: &[Observations]) -> u64 {
    let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for o in observations.iter().flat_map(|o| o.events.iter()).filter(|o| holds(&o.kind)) {
        seen.insert(o.conversation_id.as_str());
    }
    seen.len() as u64
}

/// Conversations whose last event (in `seq` order, gathered from every agent) leaves them active
/// at an agent: once every customer has been silent for longer than the inactivity time, each
/// should have gone inactive (`became_inactive`) or left the agent.
/// Only conversations whose last event happened before `due` count: one assigned later is not
/// due yet.
pub fn still_active(observations: &[Observations], due: DateTime<Utc>) -> u64 {
    let mut last: HashMap<&str, &Observed> = HashMap::new();
    for o in observations.iter().flat_map(|o| o.events.iter()) {
        let e = last.entry(o.conversation_id.as_str()).or_insert(o);
        if o.seq > e.seq {
            *e = o;
        }
    }
    last.values().filter(|e| (holds(&e.kind) || e.kind == "reactivated") && e.at <= due).count() as u64
}

fn holds(kind: &str) -> bool {
    matches!(kind, "assigned" | "offer_accepted" | "transferred")
}

fn releases(kind: &str) -> bool {
    matches!(
        kind,
        "concluded"
            | "cancelled"
            | "abandoned"
            | "requeued"
            | "returned"
            | "transferred_out"
            | "transferred_to_service"
    )
}

/// Replays the observations. `ids[i]` is agent `i`'s id, `capacity` its capacity per channel.
pub fn replay(observations: &[Observations], ids: &[String], capacity: u32) -> Correctness {
    let mut c = Correctness::default();
    // Double assignments: one ordered history per conversation.
    let mut by_conv: HashMap<&str, BTreeMap<i64, &Observed>> = HashMap::new();
    for o in observations.iter().flat_map(|o| o.events.iter()) {
        by_conv.entry(o.conversation_id.as_str()).or_default().entry(o.seq).or_insert(o);
    }
    let mut channel_of: HashMap<&str, &str> = HashMap::new();
    for (conv, events) in &by_conv {
        let mut holder: Option<&str> = None;
        for e in events.values() {
            if let Some(ch) = e.channel.as_deref() {
                channel_of.insert(conv, ch);
            }
            if holds(&e.kind) {
                if let (Some(h), Some(new)) = (holder, e.agent_id.as_deref())
                    && h != new
                    && e.kind != "transferred"
                {
                    c.double_assignments += 1;
                }
                holder = e.agent_id.as_deref();
            } else if releases(&e.kind) {
                holder = None;
            }
        }
    }
    // Capacity and offers to unavailable agents: each agent's own stream.
    for (i, obs) in observations.iter().enumerate() {
        let Some(me) = ids.get(i) else { continue };
        let mut held: HashMap<&str, HashMap<&str, ()>> = HashMap::new();
        for e in &obs.events {
            let channel =
                e.channel.as_deref().or_else(|| channel_of.get(e.conversation_id.as_str()).copied()).unwrap_or("?");
            let mine = e.agent_id.as_deref() == Some(me.as_str());
            if mine && matches!(e.kind.as_str(), "offered" | "assigned") && within(&obs.unavailable, e.at) {
                c.offers_to_unavailable += 1;
            }
            if holds(&e.kind) || (mine && e.kind == "reactivated") {
                let set = held.entry(channel).or_default();
                if mine {
                    set.insert(e.conversation_id.as_str(), ());
                    if set.len() as u32 > capacity {
                        c.capacity_exceeded += 1;
                    }
                } else {
                    set.remove(e.conversation_id.as_str());
                }
            } else if releases(&e.kind) || e.kind == "became_inactive" {
                // R10: an inactive conversation stays with its agent but frees its capacity.
                held.entry(channel).or_default().remove(e.conversation_id.as_str());
            }
        }
    }
    c
}

/// Drain order: the first offer or assignment of each conversation, per channel, in event time
/// order; one counts when the conversation arrived before another already served. Answers the
/// count and the worst inversion in seconds of arrival time.
pub fn drain_order(observations: &[Observations]) -> (u64, f64) {
    let mut first: HashMap<&str, &Observed> = HashMap::new();
    for e in observations.iter().flat_map(|o| o.events.iter()) {
        if matches!(e.kind.as_str(), "offered" | "assigned") && e.arrived_at.is_some() {
            let slot = first.entry(e.conversation_id.as_str()).or_insert(e);
            if (e.at, e.seq) < (slot.at, slot.seq) {
                *slot = e;
            }
        }
    }
    let mut by_channel: HashMap<&str, Vec<&Observed>> = HashMap::new();
    for e in first.into_values() {
        by_channel.entry(e.channel.as_deref().unwrap_or("?")).or_default().push(e);
    }
    let (mut count, mut worst) = (0u64, 0f64);
    for served in by_channel.values_mut() {
        served.sort_by_key(|e| e.at);
        let mut latest: Option<DateTime<Utc>> = None;
        for e in served.iter() {
            let Some(arrived) = e.arrived_at else { continue };
            if let Some(l) = latest
                && arrived < l
            {
                count += 1;
                worst = worst.max((l - arrived).num_microseconds().unwrap_or(0) as f64 / 1e6);
            }
            latest = Some(latest.map_or(arrived, |l| l.max(arrived)));
        }
    }
    (count, worst)
}

fn within(intervals: &[(DateTime<Utc>, Option<DateTime<Utc>>)], at: DateTime<Utc>) -> bool {
    intervals.iter().any(|(from, to)| at > *from && to.is_none_or(|to| at < to))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(observer: usize, conv: &str, seq: i64, kind: &str, agent: &str) -> Observed {
        Observed {
            observer,
            conversation_id: conv.into(),
            seq,
            kind: kind.into(),
            agent_id: Some(agent.into()),
            channel: Some("whatsapp".into()),
            at: Utc::now(),
            arrived_at: None,
        }
    }

    #[test]
    fn a_second_holder_without_release_is_a_double_assignment() {
        let ids = vec!["a".to_owned(), "b".to_owned()];
        let clean = vec![
            Observations {
                events: vec![ev(0, "c1", 1, "assigned", "a"), ev(0, "c1", 2, "concluded", "a")],
                unavailable: vec![],
            },
            Observations { events: vec![], unavailable: vec![] },
        ];
        assert!(replay(&clean, &ids, 1).all_zero());
        let double = vec![
            Observations { events: vec![ev(0, "c1", 1, "assigned", "a")], unavailable: vec![] },
            Observations { events: vec![ev(1, "c1", 2, "assigned", "b")], unavailable: vec![] },
        ];
        assert_eq!(replay(&double, &ids, 1).double_assignments, 1);
    }

    #[test]
    fn over_capacity_and_offers_in_a_pause_are_counted() {
        let ids = vec!["a".to_owned()];
        let obs = vec![Observations {
            events: vec![ev(0, "c1", 1, "assigned", "a"), ev(0, "c2", 1, "assigned", "a")],
            unavailable: vec![(Utc::now() - chrono::Duration::seconds(60), None)],
        }];
        let c = replay(&obs, &ids, 1);
        assert_eq!(c.capacity_exceeded, 1);
        assert_eq!(c.offers_to_unavailable, 2);
    }

    #[test]
    fn an_inactive_conversation_frees_capacity_until_reactivated() {
        let ids = vec!["a".to_owned()];
        let obs = |events| vec![Observations { events, unavailable: vec![] }];
        let freed = obs(vec![
            ev(0, "c1", 1, "assigned", "a"),
            ev(0, "c1", 2, "became_inactive", "a"),
            ev(0, "c2", 1, "assigned", "a"),
        ]);
        assert!(replay(&freed, &ids, 1).all_zero());
        let back = obs(vec![
            ev(0, "c1", 1, "assigned", "a"),
            ev(0, "c1", 2, "became_inactive", "a"),
            ev(0, "c2", 1, "assigned", "a"),
            ev(0, "c1", 3, "reactivated", "a"),
        ]);
        assert_eq!(replay(&back, &ids, 1).capacity_exceeded, 1);
    }

    #[test]
    fn a_held_conversation_whose_last_event_is_not_inactivity_is_a_timer_not_fired() {
        let obs = vec![Observations {
            events: vec![
                ev(0, "c1", 1, "assigned", "a"),
                ev(0, "c1", 2, "became_inactive", "a"),
                ev(0, "c2", 1, "assigned", "a"),
                ev(0, "c3", 1, "assigned", "a"),
                ev(0, "c3", 2, "became_inactive", "a"),
                ev(0, "c3", 3, "reactivated", "a"),
            ],
            unavailable: vec![],
        }];
        assert_eq!(held(&obs), 3);
        assert_eq!(still_active(&obs, Utc::now()), 2);
        assert_eq!(still_active(&obs, Utc::now() - chrono::Duration::seconds(60)), 0);
    }
}
