//! Test databases: each test gets its own database cloned from a migrated template, so tests
//! run in parallel (also across processes, as under `cargo nextest`) against a real PostgreSQL.
//!
//! The server is the one `DATABASE_URL` points at (`make test` starts a project-local one).
//! The template is named after a hash of the embedded migrations, so a changed migration gets
//! a fresh template and an old one is never reused.

pub mod fixtures;

use std::sync::OnceLock;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use crate::pool::{PgPool, PoolOptions, build_pool};

/// A database of one's own, dropped when this value is.
pub struct TestDb {
    name: String,
    url: String,
    admin_url: String,
}

#[derive(QueryableByName)]
struct Exists {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

impl TestDb {
    /// Creates an empty, fully migrated database.
    pub fn new() -> Self {
        let admin_url = server_url();
        let template = template(&admin_url);
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::establish(&admin_url).expect("connect to the test server");
        diesel::sql_query(format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .execute(&mut admin)
            .expect("clone the template database");
        let url = database_url(&admin_url, &name);
        Self { name, url, admin_url }
    }

    /// Creates an empty database with no migrations applied (to test the migrations).
    pub fn unmigrated() -> Self {
        let admin_url = server_url();
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::establish(&admin_url).expect("connect to the test server");
        diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut admin).expect("create database");
        let url = database_url(&admin_url, &name);
        Self { name, url, admin_url }
    }

    /// The URL of this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A new connection to this database.
    pub fn conn(&self) -> PgConnection {
        PgConnection::establish(&self.url).expect("connect to the test database")
    }

    /// A small pool on this database.
    pub fn pool(&self) -> PgPool {
        build_pool(&self.url, &PoolOptions { max_size: 8, ..PoolOptions::default() })
    }
}

impl Default for TestDb {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&self.admin_url) {
            let _ =
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).execute(&mut admin);
        }
    }
}

fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .expect("DATABASE_URL must point at a PostgreSQL server for the tests; `make test` starts one")
}

/// The same server, another database: replaces the path of a `postgres://` URL.
pub fn database_url(url: &str, database: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let authority_end = head
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| head[start..].find('/').map(|j| start + j))
        .unwrap_or(head.len());
    let mut out = format!("{}/{}", &head[..authority_end], database);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// The migrated template, created once per server and migration set, safely across processes.
fn template(admin_url: &str) -> &'static str {
    static TEMPLATE: OnceLock<String> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let name = format!("omniroute_tpl_{:016x}", migrations_fingerprint());
        let mut admin = PgConnection::establish(admin_url).expect("connect to the test server");
        // One process at a time decides whether the template exists and builds it.
        diesel::sql_query("SELECT pg_advisory_lock(727274)").execute(&mut admin).expect("lock");
        let exists = diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
            .bind::<Text, _>(&name)
            .get_result::<Exists>(&mut admin)
            .expect("look up the template")
            .n
            > 0;
        if !exists {
            let building = format!("{name}_building");
            diesel::sql_query(format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
                .execute(&mut admin)
                .expect("drop a half-built template");
            diesel::sql_query(format!("CREATE DATABASE {building}")).execute(&mut admin).expect("create template");
            {
                let mut conn =
                    PgConnection::establish(&database_url(admin_url, &building)).expect("connect to the template");
                crate::migrate::run_pending(&mut conn).expect("migrate the template");
            }
            // Renamed only once complete, so a crash mid-way never leaves a broken template.
            diesel::sql_query(format!("ALTER DATABASE {building} RENAME TO {name}"))
                .execute(&mut admin)
                .expect("publish the template");
        }
        diesel::sql_query("SELECT pg_advisory_unlock(727274)").execute(&mut admin).expect("unlock");
        name
    })
}

fn migrations_fingerprint() -> u64 {
    use std::hash::Hasher;
    // The names and SQL of every migration (written by build.rs), so editing a migration in
    // place during development also gets a fresh template.
    let mut hasher = Fnv(0xcbf2_9ce4_8422_2325);
    hasher.write(include_str!(concat!(env!("OUT_DIR"), "/migrations_digest.txt")).as_bytes());
    hasher.finish()
}

struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}
