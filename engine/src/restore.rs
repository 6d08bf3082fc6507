//! Start-up (R15): the routing book rebuilt from PostgreSQL — services, agents with their teams
//! and capacities, who was logged in, every open conversation with its owner, pending offer and
//! the agents who declined it. Timers need no table: they are re-armed from the stored times
//! they count from, so they fire at their original deadlines.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use schema::{AgentId, PgPool, PresenceStatus, StoreError, StoreResult, store};

use crate::book::{Command, RoutingBook};
use crate::model::{AgentProfile, ConversationFacts, Presence, ServiceSettings, channel_index};

/// A rebuilt book and the agents that were logged in.
pub struct Restored {
    pub book: RoutingBook,
    pub logged_in: Vec<AgentId>,
}

/// Reads everything in one repeatable-read transaction, so the picture is consistent.
pub fn load(pool: &PgPool, now: DateTime<Utc>) -> StoreResult<Restored> {
    let mut conn = pool.get()?;
    conn.build_transaction().repeatable_read().read_only().run::<_, StoreError, _>(|conn| {
        let mut book = RoutingBook::new();
        for service in store::list_services(conn)? {
            book.apply(now, Command::UpsertService(ServiceSettings::from_row(&service)))
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        }
        let mut profiles: HashMap<AgentId, AgentProfile> = HashMap::new();
        for agent in store::list_agents(conn)?.into_iter().filter(|a| a.active) {
            let mut profile = AgentProfile::new(agent.id, Vec::new());
            profile.auto_distribution = agent.auto_distribution;
            profile.extension = agent.extension;
            profiles.insert(agent.id, profile);
        }
        for m in store::list_memberships(conn)? {
            if let Some(p) = profiles.get_mut(&m.agent_id) {
                p.services.push(m.service_id);
            }
        }
        for c in store::list_capacities(conn)? {
            if let Some(p) = profiles.get_mut(&c.agent_id) {
                p.capacity[channel_index(c.channel)] = u32::try_from(c.capacity).unwrap_or(0);
            }
        }
        for profile in profiles.into_values() {
            book.apply(now, Command::UpsertAgent(profile)).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        }
        let mut logged_in = Vec::new();
        for p in store::open_presences(conn)? {
            let presence = match (p.status, p.pause_reason_id) {
                (PresenceStatus::Available, _) => Presence::Available,
                (PresenceStatus::PausePending, Some(reason)) => Presence::PausePending { reason },
                (PresenceStatus::Paused, Some(reason)) => Presence::Paused { reason },
                _ => continue,
            };
            if book.agent(p.agent_id).is_some() {
                book.restore_presence(p.agent_id, presence, p.started_at);
                logged_in.push(p.agent_id);
            }
        }
        let mut offers: HashMap<schema::ConversationId, Vec<schema::models::Offer>> = HashMap::new();
        for o in store::offers_of_open_conversations(conn)? {
            offers.entry(o.conversation_id).or_default().push(o);
        }
        let mut declined: HashMap<schema::ConversationId, Vec<AgentId>> = HashMap::new();
        for (conversation, agent) in store::declined_agents_of_open_conversations(conn)? {
            declined.entry(conversation).or_default().push(agent);
        }
        for row in store::open_conversations(conn)? {
            let mut facts =
                ConversationFacts::arriving(row.id, row.service_id, row.channel, row.priority, row.arrived_at);
            facts.state = row.state;
            facts.sub_state = row.sub_state;
            facts.hold = row.hold_reason;
            facts.enqueued_at = row.enqueued_at;
            facts.owner = row.current_agent_id;
            facts.first_agent = row.first_agent_id;
            facts.assigned_at = row.assigned_at;
            facts.last_customer_message_at = row.last_customer_message_at;
            facts.classification = row.classification_id;
            facts.due_at = row.due_at;
            facts.concluded_by = row.concluded_by_id;
            if let Some(pending) = offers.remove(&row.id).unwrap_or_default().into_iter().find(|o| o.outcome.is_none())
            {
                facts.offer = Some((pending.agent_id, pending.expires_at));
            }
            facts.declined_by = declined.remove(&row.id).unwrap_or_default();
            book.restore_conversation(facts);
        }
        Ok(Restored { book, logged_in })
    })
}
