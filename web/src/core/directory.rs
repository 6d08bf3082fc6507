//! The services, kept in memory for the webhooks and the webchat: a provider's webhook names its
//! service (by id, phone_number_id, page id, number…) on every request, and services change only
//! through the administration routes of this same process (Omniroute runs as one process per
//! database), which [`ServiceDirectory::forget`] the copies. A lookup that misses reads the
//! database and keeps what it found; an unknown key is not kept, so a service created meanwhile
//! is found on the next request. A copy is also read again after [`KEPT_FOR`], so a change made
//! outside this process (a script, SQL) is seen within that time.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use schema::models::Service;
use schema::{Channel, ServiceId, StoreError, store};

use crate::core::db::db;
use crate::core::error::ApiError;
use crate::core::state::AppState;

/// Services by id and by (channel, provider key).
#[derive(Default)]
pub struct ServiceDirectory {
    known: RwLock<Known>,
}

/// How long a copy is used before it is read again.
pub const KEPT_FOR: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Known {
    by_id: HashMap<ServiceId, (Service, Instant)>,
    by_key: HashMap<(Channel, String), ServiceId>,
    /// Counts [`ServiceDirectory::forget`]s: a row read before a change committed is not kept
    /// after it.
    generation: u64,
}

impl ServiceDirectory {
    /// Drops every copy: call after any change to a service has committed.
    pub fn forget(&self) {
        if let Ok(mut known) = self.known.write() {
            let generation = known.generation + 1;
            *known = Known { generation, ..Known::default() };
        }
    }

    fn generation(&self) -> u64 {
        self.known.read().map(|k| k.generation).unwrap_or_default()
    }

    /// Keeps a row read while the directory was at `generation`, unless a change came since.
    fn remember(&self, service: &Service, generation: u64) {
        if let Ok(mut known) = self.known.write() {
            if known.generation != generation {
                return;
            }
            if let Some(key) = &service.provider_key {
                known.by_key.insert((service.channel, key.clone()), service.id);
            }
            known.by_id.insert(service.id, (service.clone(), Instant::now()));
        }
    }

    /// The service as kept, without a trip to the database (`None` when not kept or too old:
    /// [`service`] reads it then).
    pub(crate) fn by_id(&self, id: ServiceId) -> Option<Service> {
        let known = self.known.read().ok()?;
        let (service, read_at) = known.by_id.get(&id)?;
        (read_at.elapsed() < KEPT_FOR).then(|| service.clone())
    }

    fn by_key(&self, channel: Channel, key: &str) -> Option<Service> {
        let id = *self.known.read().ok()?.by_key.get(&(channel, key.to_owned()))?;
        // The copy must still carry the key (it may have moved to another service since).
        self.by_id(id).filter(|s| s.channel == channel && s.provider_key.as_deref() == Some(key))
    }
}

/// The service with this id; `None` when there is none.
pub async fn service(state: &AppState, id: ServiceId) -> Result<Option<Service>, ApiError> {
    if let Some(s) = state.services.by_id(id) {
        return Ok(Some(s));
    }
    let generation = state.services.generation();
    let found = db(state, move |c| match Service::find(c, id) {
        Err(StoreError::NotFound) => Ok(None),
        found => found.map(Some),
    })
    .await?;
    if let Some(s) = &found {
        state.services.remember(s, generation);
    }
    Ok(found)
}

/// The services of a channel with these provider keys (phone_number_id, page id, number…), in
/// the order of the keys, each once.
pub async fn services_by_keys(state: &AppState, channel: Channel, keys: &[String]) -> Result<Vec<Service>, ApiError> {
    let mut found: Vec<Service> = Vec::new();
    let mut missing: Vec<String> = Vec::new();
    for key in keys {
        match state.services.by_key(channel, key) {
            Some(s) => found.push(s),
            None => missing.push(key.clone()),
        }
    }
    if !missing.is_empty() {
        let generation = state.services.generation();
        let loaded = db(state, move |c| {
            let mut loaded = Vec::new();
            for key in &missing {
                loaded.extend(store::service_by_provider_key(c, channel, key)?);
            }
            Ok(loaded)
        })
        .await?;
        for s in loaded {
            state.services.remember(&s, generation);
            found.push(s);
        }
        // In the order of the keys, as the webhook lists them.
        found.sort_by_key(|s| keys.iter().position(|k| s.provider_key.as_deref() == Some(k.as_str())));
    }
    let mut seen = std::collections::HashSet::new();
    found.retain(|s| seen.insert(s.id));
    Ok(found)
}
