use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::StoreResult;
use crate::ids::{AgentId, ServiceId};
use crate::models::{
    Agent, AgentCapacity, AgentChangeset, Membership, PauseReason, Presence, Service, ServiceChangeset, Session,
};
use crate::schema::{agent_capacities, agents, memberships, pause_reasons, presence_history, services, sessions};
use crate::types::{Channel, Role};

diesel::define_sql_function! {
    /// SQL `lower(text)`.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// The agent with this login (case-insensitive, as the unique index).
pub fn agent_by_login(conn: &mut PgConnection, login: &str) -> StoreResult<Option<Agent>> {
    Ok(agents::table.filter(lower(agents::login).eq(lower(login))).select(Agent::as_select()).first(conn).optional()?)
}

/// The agent with this CTI extension (R13).
pub fn agent_by_extension(conn: &mut PgConnection, extension: &str) -> StoreResult<Option<Agent>> {
    Ok(agents::table.filter(agents::extension.eq(extension)).select(Agent::as_select()).first(conn).optional()?)
}

/// Every agent, by name.
pub fn list_agents(conn: &mut PgConnection) -> StoreResult<Vec<Agent>> {
    Ok(agents::table.order(agents::name.asc()).select(Agent::as_select()).load(conn)?)
}

/// The names of these people (ids that name nobody are left out).
pub fn agent_names(conn: &mut PgConnection, ids: &[AgentId]) -> StoreResult<Vec<(AgentId, String)>> {
    Ok(agents::table.filter(agents::id.eq_any(ids)).select((agents::id, agents::name)).load(conn)?)
}

/// How many people with this role exist (0 admins = a fresh install).
pub fn count_agents_with_role(conn: &mut PgConnection, role: Role) -> StoreResult<i64> {
    Ok(agents::table.filter(agents::role.eq(role)).count().get_result(conn)?)
}

/// Applies changes to an agent and returns it.
pub fn update_agent(conn: &mut PgConnection, id: AgentId, changes: &AgentChangeset) -> StoreResult<Agent> {
    Ok(diesel::update(agents::table.find(id)).set(changes).returning(Agent::as_returning()).get_result(conn)?)
}

/// Every service, by name.
pub fn list_services(conn: &mut PgConnection) -> StoreResult<Vec<Service>> {
    Ok(services::table.order(services::name.asc()).select(Service::as_select()).load(conn)?)
}

/// The service a webhook is for: by channel and provider-side id (phone_number_id, page id, ...).
pub fn service_by_provider_key(conn: &mut PgConnection, channel: Channel, key: &str) -> StoreResult<Option<Service>> {
    Ok(services::table
        .filter(services::channel.eq(channel))
        .filter(services::provider_key.eq(key))
        .select(Service::as_select())
        .first(conn)
        .optional()?)
}

/// Applies changes to a service and returns it.
pub fn update_service(conn: &mut PgConnection, id: ServiceId, changes: &ServiceChangeset) -> StoreResult<Service> {
    Ok(diesel::update(services::table.find(id)).set(changes).returning(Service::as_returning()).get_result(conn)?)
}

/// Adds an agent to a service (no-op when already a member).
pub fn add_membership(
    conn: &mut PgConnection,
    agent: AgentId,
    service: ServiceId,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    diesel::insert_into(memberships::table)
        .values(Membership { agent_id: agent, service_id: service, created_at: now })
        .on_conflict_do_nothing()
        .execute(conn)?;
    Ok(())
}

/// Replaces an agent's services with exactly these.
pub fn set_memberships(
    conn: &mut PgConnection,
    agent: AgentId,
    services: &[ServiceId],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    diesel::delete(memberships::table.filter(memberships::agent_id.eq(agent))).execute(conn)?;
    for service in services {
        add_membership(conn, agent, *service, now)?;
    }
    Ok(())
}

/// Every membership (engine start-up).
pub fn list_memberships(conn: &mut PgConnection) -> StoreResult<Vec<Membership>> {
    Ok(memberships::table.select(Membership::as_select()).load(conn)?)
}

/// The services an agent belongs to.
pub fn services_of_agent(conn: &mut PgConnection, agent: AgentId) -> StoreResult<Vec<ServiceId>> {
    Ok(memberships::table.filter(memberships::agent_id.eq(agent)).select(memberships::service_id).load(conn)?)
}

/// Sets an agent's capacity on a channel (R4).
pub fn set_capacity(conn: &mut PgConnection, agent: AgentId, channel: Channel, capacity: i32) -> StoreResult<()> {
    diesel::insert_into(agent_capacities::table)
        .values(AgentCapacity { agent_id: agent, channel, capacity })
        .on_conflict((agent_capacities::agent_id, agent_capacities::channel))
        .do_update()
        .set(agent_capacities::capacity.eq(capacity))
        .execute(conn)?;
    Ok(())
}

/// An agent's explicit capacities; channels not listed use [`Channel::default_capacity`].
pub fn capacities_of_agent(conn: &mut PgConnection, agent: AgentId) -> StoreResult<Vec<AgentCapacity>> {
    Ok(agent_capacities::table
        .filter(agent_capacities::agent_id.eq(agent))
        .select(AgentCapacity::as_select())
        .load(conn)?)
}

/// Every explicit capacity (engine start-up).
pub fn list_capacities(conn: &mut PgConnection) -> StoreResult<Vec<AgentCapacity>> {
    Ok(agent_capacities::table.select(AgentCapacity::as_select()).load(conn)?)
}

/// The pause reasons agents can pick, by name.
pub fn list_pause_reasons(conn: &mut PgConnection) -> StoreResult<Vec<PauseReason>> {
    Ok(pause_reasons::table.order(pause_reasons::name.asc()).select(PauseReason::as_select()).load(conn)?)
}

/// The session whose token hashes to this, if it is neither revoked nor expired.
pub fn live_session(
    conn: &mut PgConnection,
    token_hash: &[u8],
    now: DateTime<Utc>,
) -> StoreResult<Option<(Session, Agent)>> {
    Ok(sessions::table
        .inner_join(agents::table)
        .filter(sessions::token_hash.eq(token_hash))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .filter(agents::active.eq(true))
        .select((Session::as_select(), Agent::as_select()))
        .first(conn)
        .optional()?)
}

/// Revokes a session (logout). Returns whether a session not yet revoked was found.
pub fn revoke_session(conn: &mut PgConnection, token_hash: &[u8], now: DateTime<Utc>) -> StoreResult<bool> {
    let n = diesel::update(
        sessions::table.filter(sessions::token_hash.eq(token_hash)).filter(sessions::revoked_at.is_null()),
    )
    .set(sessions::revoked_at.eq(now))
    .execute(conn)?;
    Ok(n > 0)
}

/// Revokes every session of an agent (deactivation, password change).
pub fn revoke_sessions_of_agent(conn: &mut PgConnection, agent: AgentId, now: DateTime<Utc>) -> StoreResult<usize> {
    Ok(diesel::update(sessions::table.filter(sessions::agent_id.eq(agent)).filter(sessions::revoked_at.is_null()))
        .set(sessions::revoked_at.eq(now))
        .execute(conn)?)
}

/// The agent's open presence interval, if any.
pub fn open_presence(conn: &mut PgConnection, agent: AgentId) -> StoreResult<Option<Presence>> {
    Ok(presence_history::table
        .filter(presence_history::agent_id.eq(agent))
        .filter(presence_history::ended_at.is_null())
        .select(Presence::as_select())
        .first(conn)
        .optional()?)
}

/// Closes the agent's open presence interval at `now`.
pub fn close_presence(conn: &mut PgConnection, agent: AgentId, now: DateTime<Utc>) -> StoreResult<()> {
    diesel::update(
        presence_history::table
            .filter(presence_history::agent_id.eq(agent))
            .filter(presence_history::ended_at.is_null()),
    )
    .set(presence_history::ended_at.eq(now))
    .execute(conn)?;
    Ok(())
}

/// Every open presence interval (engine start-up).
pub fn open_presences(conn: &mut PgConnection) -> StoreResult<Vec<Presence>> {
    Ok(presence_history::table.filter(presence_history::ended_at.is_null()).select(Presence::as_select()).load(conn)?)
}
