//! Every migration runs up, down and up again on an empty database, leaving exactly the tables
//! of the data model (and none after going down).

use diesel::prelude::*;
use diesel::sql_types::Text;
use schema::PgConnection;
use schema::migrate;
use schema::testing::TestDb;

use crate::fixtures::{self, TABLES};

#[derive(QueryableByName)]
struct TableName {
    #[diesel(sql_type = Text)]
    table_name: String,
}

/// The application's tables: every base table of `public` except diesel's own bookkeeping.
fn app_tables(conn: &mut PgConnection) -> Vec<String> {
    diesel::sql_query(
        "SELECT table_name::text AS table_name FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' \
         AND table_name <> '__diesel_schema_migrations' ORDER BY table_name",
    )
    .load::<TableName>(conn)
    .expect("list the tables")
    .into_iter()
    .map(|t| t.table_name)
    .collect()
}

#[test]
fn migrations_run_up_down_and_up_again() {
    let db = TestDb::unmigrated();
    let mut conn = db.conn();
    let all: Vec<String> = TABLES.iter().map(|t| (*t).to_owned()).collect();
    assert!(app_tables(&mut conn).is_empty(), "a new database has no tables");
    let versions = migrate::pending(&mut conn).expect("list pending migrations");
    let folders = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations"))
        .expect("the migrations folder")
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().is_dir()))
        .count();
    assert_eq!(versions.len(), folders, "every migration is pending at first: {versions:?}");

    let applied = migrate::run_pending(&mut conn).expect("migrate up");
    assert_eq!(applied, versions, "up applies every pending migration, in order");
    assert_eq!(app_tables(&mut conn), all, "up creates every table of the model");
    assert_eq!(migrate::pending(&mut conn).expect("pending after up"), Vec::<String>::new());

    let mut reverted = migrate::revert_all(&mut conn).expect("migrate down");
    reverted.reverse();
    assert_eq!(reverted, versions, "down reverts every migration, newest first");
    assert_eq!(app_tables(&mut conn), Vec::<String>::new(), "down leaves no application table");
    let functions: i64 = diesel::sql_query(
        "SELECT count(*) AS n FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'",
    )
    .get_result::<Count>(&mut conn)
    .expect("count functions")
    .n;
    assert_eq!(functions, 0, "down leaves no function");
    assert_eq!(migrate::pending(&mut conn).expect("pending after down"), versions);

    let reapplied = migrate::run_pending(&mut conn).expect("migrate up again");
    assert_eq!(reapplied, versions);
    assert_eq!(app_tables(&mut conn), all, "up again recreates every table");
    assert_eq!(migrate::pending(&mut conn).expect("pending after up again"), Vec::<String>::new());

    // The recreated schema works, constraints included.
    let agent = fixtures::insert_agent(&mut conn);
    assert_eq!(schema::models::Agent::find(&mut conn, agent.id).expect("find the agent"), agent);
    let twin = schema::models::Agent { id: schema::AgentId::new(), ..agent.clone() };
    fixtures::assert_conflict(twin.insert(&mut conn), "agents_login_key");
}

#[test]
fn running_pending_on_a_migrated_database_applies_nothing() {
    let db = TestDb::new();
    let mut conn = db.conn();
    assert_eq!(migrate::pending(&mut conn).expect("pending"), Vec::<String>::new());
    assert_eq!(migrate::run_pending(&mut conn).expect("migrate up"), Vec::<String>::new());
    assert_eq!(app_tables(&mut conn).len(), TABLES.len());
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}
