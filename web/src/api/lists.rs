//! What the desk shows in its pickers: me, the services, pause reasons, classifications, canned
//! messages, colleagues.

use actix_web::{HttpResponse, get, web};
use serde::Serialize;

use crate::api::admin::{CannedDto, NamedDto};
use crate::api::agent::PresenceDto;
use crate::core::db::db;
use crate::core::error::{ApiError, ErrorBody};
use crate::core::session::{AgentInfo, CurrentAgent};
use crate::core::state::AppState;

/// Who I am, my services and my presence.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MeDto {
    pub agent: AgentInfo,
    pub services: Vec<String>,
    pub presence: Option<PresenceDto>,
}

/// Who is signed in.
#[utoipa::path(get, path = "/api/v1/me", tag = "agent", responses((status = 200, body = MeDto), (status = 401, body = ErrorBody)))]
#[get("/me")]
pub async fn get_me(state: web::Data<AppState>, me: CurrentAgent) -> Result<HttpResponse, ApiError> {
    let presence = state.engine.agent(me.agent.id).await.map(|a| PresenceDto::new(a.presence, a.presence_since));
    Ok(HttpResponse::Ok().json(MeDto {
        agent: AgentInfo::from(&me.agent),
        services: me.services.iter().map(|s| s.to_string()).collect(),
        presence,
    }))
}

/// A service as an agent sees it: its name and channel, never its provider's settings.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ServiceNameDto {
    pub id: String,
    pub name: String,
    pub channel: String,
    /// Whether I belong to it (admins: every service).
    pub mine: bool,
    /// Whether its agents may cancel a conversation (the desk hides the action otherwise).
    pub allow_cancel: bool,
}

/// The active services, by name: the desk's labels and the queues a conversation can be
/// transferred to (R11: any active service of its channel).
#[utoipa::path(get, path = "/api/v1/services", tag = "agent", responses((status = 200, body = [ServiceNameDto]), (status = 401, body = ErrorBody)))]
#[get("/services")]
pub async fn services(state: web::Data<AppState>, me: CurrentAgent) -> Result<HttpResponse, ApiError> {
    let rows = db(&state, schema::store::list_services).await?;
    let mut out: Vec<ServiceNameDto> = rows
        .into_iter()
        .filter(|s| s.active)
        .map(|s| ServiceNameDto {
            id: s.id.to_string(),
            mine: me.sees_service(s.id),
            allow_cancel: s.allow_cancel,
            channel: s.channel.to_string(),
            name: s.name,
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(HttpResponse::Ok().json(out))
}

/// The active pause reasons.
#[utoipa::path(get, path = "/api/v1/pause-reasons", tag = "agent", responses((status = 200, body = [NamedDto])))]
#[get("/pause-reasons")]
pub async fn pause_reasons(state: web::Data<AppState>, _me: CurrentAgent) -> Result<HttpResponse, ApiError> {
    let rows = db(&state, schema::store::list_pause_reasons).await?;
    let out: Vec<NamedDto> = rows
        .into_iter()
        .filter(|r| r.active)
        .map(|r| NamedDto { id: r.id.to_string(), name: r.name, service_id: None, active: r.active })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

/// The classifications usable in my services.
#[utoipa::path(get, path = "/api/v1/classifications", tag = "agent", responses((status = 200, body = [NamedDto])))]
#[get("/classifications")]
pub async fn classifications(state: web::Data<AppState>, me: CurrentAgent) -> Result<HttpResponse, ApiError> {
    let rows = db(&state, |c| schema::store::classifications_for(c, None)).await?;
    let out: Vec<NamedDto> = rows
        .into_iter()
        .filter(|r| r.service_id.is_none_or(|s| me.sees_service(s)))
        .map(|r| NamedDto {
            id: r.id.to_string(),
            name: r.name,
            service_id: r.service_id.map(|s| s.to_string()),
            active: r.active,
        })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

/// The canned messages usable in my services.
#[utoipa::path(get, path = "/api/v1/canned-messages", tag = "agent", responses((status = 200, body = [CannedDto])))]
#[get("/canned-messages")]
pub async fn canned_messages(state: web::Data<AppState>, me: CurrentAgent) -> Result<HttpResponse, ApiError> {
    let rows = db(&state, |c| schema::store::canned_messages_for(c, None)).await?;
    let out: Vec<CannedDto> = rows
        .into_iter()
        .filter(|r| r.service_id.is_none_or(|s| me.sees_service(s)))
        .map(|r| CannedDto {
            id: r.id.to_string(),
            title: r.title,
            text: r.text,
            service_id: r.service_id.map(|s| s.to_string()),
        })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

/// A colleague a conversation can be transferred to.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ColleagueDto {
    pub id: String,
    pub login: String,
    pub name: String,
    /// available | pause_pending | paused | offline
    pub status: String,
    /// The services we share.
    pub services: Vec<String>,
}

/// The active people who share a service with me (admins: everyone), for transfers (R11).
#[utoipa::path(get, path = "/api/v1/agents", tag = "agent", responses((status = 200, body = [ColleagueDto])))]
#[get("/agents")]
pub async fn colleagues(state: web::Data<AppState>, me: CurrentAgent) -> Result<HttpResponse, ApiError> {
    let rows = db(&state, |c| {
        let agents = schema::store::list_agents(c)?;
        let memberships = schema::store::list_memberships(c)?;
        Ok((agents, memberships))
    })
    .await?;
    let (agents, memberships) = rows;
    let mut out = Vec::new();
    for a in agents.into_iter().filter(|a| a.active && a.id != me.agent.id) {
        let shared: Vec<String> = memberships
            .iter()
            .filter(|m| m.agent_id == a.id && me.sees_service(m.service_id))
            .map(|m| m.service_id.to_string())
            .collect();
        if shared.is_empty() {
            continue;
        }
        let status = state.engine.agent(a.id).await.map_or("offline".to_owned(), |s| s.presence.status().to_string());
        out.push(ColleagueDto { id: a.id.to_string(), login: a.login, name: a.name, status, services: shared });
    }
    Ok(HttpResponse::Ok().json(out))
}
