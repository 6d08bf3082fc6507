#![allow(dead_code)]
//! A small contact center in a fresh database, and an engine over it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use engine::feed::EngineEvent;

use chrono::{TimeZone, Utc};
use engine::{AgentProfile, Clock, Engine, ServiceSettings};
use schema::models::Service;
use schema::testing::TestDb;
use schema::{AgentId, Channel, ServiceId, store};

/// 2026-03-02 09:00 UTC, a Monday.
pub fn t0() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

pub struct World {
    pub db: TestDb,
    pub clock: Clock,
}

impl World {
    pub fn new() -> Self {
        Self { db: TestDb::new(), clock: Clock::manual(t0()) }
    }

    /// A service row; `tune` adjusts its settings before it is stored.
    pub fn service(&self, name: &str, channel: Channel, tune: impl FnOnce(&mut Service)) -> ServiceId {
        let mut s = Service::with_defaults(name, channel, t0());
        tune(&mut s);
        s.insert(&mut self.db.conn()).unwrap().id
    }

    /// An agent row, member of `services`, with `capacity` on every channel.
    pub fn agent(&self, login: &str, services: &[ServiceId], capacity: Option<i32>) -> AgentId {
        let mut conn = self.db.conn();
        let a = schema::testing::fixtures::person(login)
            .extension(Some(&format!("ext-{login}")))
            .created_at(t0())
            .in_services(services)
            .insert(&mut conn)
            .unwrap();
        if let Some(c) = capacity {
            for ch in Channel::ALL {
                store::set_capacity(&mut conn, a.id, *ch, c).unwrap();
            }
        }
        a.id
    }

    pub async fn engine(&self) -> Engine {
        Engine::start(self.db.pool(), self.clock.clone()).await.unwrap()
    }
}

/// Settings of a stored service, as the engine reads them.
pub fn settings(world: &World, id: ServiceId) -> ServiceSettings {
    ServiceSettings::from_row(&Service::find(&mut world.db.conn(), id).unwrap())
}

/// A profile as the engine builds it.
pub fn profile(id: AgentId, services: Vec<ServiceId>) -> AgentProfile {
    AgentProfile::new(id, services)
}

pub const MINUTE: Duration = Duration::from_secs(60);
pub const HOUR: Duration = Duration::from_secs(3600);

/// A desk that remembers what it was told.
struct RecordingDesk(Arc<Mutex<Vec<EngineEvent>>>);

impl Actor for RecordingDesk {
    type Context = Context<Self>;
}

impl Handler<EngineEvent> for RecordingDesk {
    type Result = ();
    fn handle(&mut self, e: EngineEvent, _: &mut Context<Self>) {
        self.0.lock().unwrap().push(e);
    }
}

/// A desk to connect (`engine.connect(agent, recipient)`) and what it has been told so far.
pub fn desk() -> (Recipient<EngineEvent>, Arc<Mutex<Vec<EngineEvent>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    (RecordingDesk(seen.clone()).start().recipient(), seen)
}
