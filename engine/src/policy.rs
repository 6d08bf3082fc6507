//! The choice of agent (R6): a pure function over plain data, so it can be tested and measured
//! alone. Among eligible agents: the fewest active conversations on the channel, then the longest
//! idle; ties go to the smaller id so the choice is deterministic.

use chrono::{DateTime, Utc};
use schema::AgentId;

/// One member of a service as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AgentView {
    pub id: AgentId,
    /// Logged in and `available` (not paused, not pause-pending, not offline).
    pub available: bool,
    /// Takes automatically distributed conversations (service setting, agent override).
    pub auto: bool,
    /// Conversations counting against capacity on the conversation's channel.
    pub active: u32,
    /// Capacity on that channel (R4).
    pub capacity: u32,
    /// Since when the agent has had nothing new: the later of becoming available and the last assignment.
    pub idle_since: DateTime<Utc>,
}

/// Why an agent cannot take a conversation now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ineligible {
    NotAvailable,
    ManualOnly,
    AtCapacity,
    Declined,
}

impl Ineligible {
    /// The word stored in routing decisions.
    pub fn as_str(self) -> &'static str {
        match self {
            Ineligible::NotAvailable => "not_available",
            Ineligible::ManualOnly => "manual_only",
            Ineligible::AtCapacity => "at_capacity",
            Ineligible::Declined => "declined",
        }
    }
}

/// Whether `agent` may receive the conversation automatically; `declined` are the agents it
/// must not go to again (R7).
pub fn eligibility(agent: &AgentView, declined: &[AgentId]) -> Result<(), Ineligible> {
    if !agent.available {
        Err(Ineligible::NotAvailable)
    } else if !agent.auto {
        Err(Ineligible::ManualOnly)
    } else if agent.active >= agent.capacity {
        Err(Ineligible::AtCapacity)
    } else if declined.contains(&agent.id) {
        Err(Ineligible::Declined)
    } else {
        Ok(())
    }
}

/// The ranking of R6 as a sortable key: fewer active, then idle longer, then smaller id (so the
/// choice is deterministic). The routing book keeps each service's free agents sorted by it.
pub fn rank_key(a: &AgentView) -> (u32, DateTime<Utc>, AgentId) {
    (a.active, a.idle_since, a.id)
}

/// True when `a` ranks before `b`.
pub fn ranks_before(a: &AgentView, b: &AgentView) -> bool {
    rank_key(a) < rank_key(b)
}

/// The agent a waiting conversation goes to, if any is eligible.
pub fn choose_agent<'a>(
    members: impl IntoIterator<Item = &'a AgentView>,
    declined: &[AgentId],
) -> Option<&'a AgentView> {
    let mut best: Option<&AgentView> = None;
    for agent in members {
        if eligibility(agent, declined).is_err() {
            continue;
        }
        if best.is_none_or(|b| ranks_before(agent, b)) {
            best = Some(agent);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use uuid::Uuid;

    fn agent(n: u128, active: u32, idle_minute: u32) -> AgentView {
        AgentView {
            id: AgentId(Uuid::from_u128(n)),
            available: true,
            auto: true,
            active,
            capacity: 3,
            idle_since: Utc.with_ymd_and_hms(2026, 1, 1, 8, idle_minute, 0).unwrap(),
        }
    }

    #[test]
    fn fewest_active_wins() {
        let agents = [agent(1, 2, 0), agent(2, 1, 30), agent(3, 2, 0)];
        assert_eq!(choose_agent(&agents, &[]).unwrap().id, agents[1].id);
    }

    #[test]
    fn longest_idle_breaks_ties() {
        let agents = [agent(1, 1, 30), agent(2, 1, 10), agent(3, 1, 20)];
        assert_eq!(choose_agent(&agents, &[]).unwrap().id, agents[1].id);
    }

    #[test]
    fn ineligible_agents_are_skipped() {
        let mut paused = agent(1, 0, 0);
        paused.available = false;
        let mut manual = agent(2, 0, 0);
        manual.auto = false;
        let full = agent(3, 3, 0);
        let declined = agent(4, 0, 0);
        let fine = agent(5, 2, 59);
        let agents = [paused, manual, full, declined, fine];
        assert_eq!(choose_agent(&agents, &[declined.id]).unwrap().id, fine.id);
        assert!(choose_agent(&agents[..4], &[declined.id]).is_none());
        assert_eq!(eligibility(&full, &[]), Err(Ineligible::AtCapacity));
    }
}
