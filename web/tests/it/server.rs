//! The binary as an operator runs it: real process, real socket, real database.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use schema::testing::TestDb;
use schema::{Role, store};

/// A running `omniroute serve` on an ephemeral port; killed when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(db: &TestDb, extra_env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_omniroute"));
        cmd.arg("serve")
            .env("DATABASE_URL", db.url())
            .env("OMNIROUTE_BIND", "127.0.0.1:0")
            .env("OMNIROUTE_WORKERS", "1")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start omniroute");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = lines.next().expect("omniroute printed its address").expect("read stdout");
            if let Some(url) = line.strip_prefix("Omniroute is serving at ") {
                break url.trim_end_matches('/').to_owned();
            }
        };
        Server { child, base }
    }

    /// Sends SIGTERM and returns the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        let status = wait_timeout(&mut self.child, Duration::from_secs(20)).expect("stopped in time");
        std::mem::forget(self);
        status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

async fn get(url: &str) -> (u16, serde_json::Value) {
    let client = awc::Client::default();
    let mut res = client.get(url).send().await.expect("request");
    let body = res.json::<serde_json::Value>().await.expect("json body");
    (res.status().as_u16(), body)
}

#[actix_rt::test]
async fn healthz_answers_200_with_the_database_and_503_without_it() {
    let db = TestDb::new();
    let server = Server::start(&db, &[]);
    let (status, body) = get(&format!("{}/healthz", server.base)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");

    // The database disappears under the running server: it must say so, not hang or crash.
    let mut admin = schema::connect(&std::env::var("DATABASE_URL").unwrap()).unwrap();
    use diesel::RunQueryDsl;
    diesel::sql_query(format!("DROP DATABASE {} WITH (FORCE)", db.name())).execute(&mut admin).unwrap();
    let (status, body) = get(&format!("{}/healthz", server.base)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "database_unavailable");
    assert!(body["message"].is_string());
}

#[actix_rt::test]
async fn serve_migrates_a_fresh_database_and_creates_the_bootstrap_admin_once() {
    let db = TestDb::unmigrated();
    let server = Server::start(&db, &[("OMNIROUTE_BOOTSTRAP_ADMIN", "root:first-admin-pass")]);
    let (status, _) = get(&format!("{}/healthz", server.base)).await;
    assert_eq!(status, 200);
    let status = server.terminate();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");

    let mut conn = db.conn();
    let admin = store::agent_by_login(&mut conn, "root").unwrap().expect("bootstrap admin");
    assert_eq!(admin.role, Role::Admin);
    assert!(web::core::password::verify("first-admin-pass", &admin.password_hash));

    // A second start with another bootstrap value does not create a second admin.
    let server = Server::start(&db, &[("OMNIROUTE_BOOTSTRAP_ADMIN", "other:another-pass")]);
    drop(server);
    assert_eq!(store::count_agents_with_role(&mut conn, Role::Admin).unwrap(), 1);
    assert!(store::agent_by_login(&mut conn, "other").unwrap().is_none());
}

#[test]
fn serve_without_a_reachable_database_exits_with_one_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_omniroute"))
        .arg("serve")
        .env("DATABASE_URL", "postgres://nobody:hunter2@127.0.0.1:1/nowhere")
        .env("RUST_LOG", "off")
        .output()
        .expect("run omniroute");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line, got: {stderr}");
    assert!(lines[0].contains("cannot reach the database"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "the password must not be printed: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn serve_without_database_url_names_the_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_omniroute"))
        .arg("serve")
        .env_remove("DATABASE_URL")
        .output()
        .expect("run omniroute");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL"));
}

#[test]
fn seed_demo_creates_a_usable_contact_center_and_is_idempotent() {
    let db = TestDb::new();
    let seed = || {
        let out = Command::new(env!("CARGO_BIN_EXE_omniroute"))
            .arg("seed-demo")
            .env("DATABASE_URL", db.url())
            .env("RUST_LOG", "warn")
            .output()
            .expect("run seed-demo");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let printed = seed();
    assert!(printed.contains("ana-demo1"), "prints the demo passwords: {printed}");
    let mut conn = db.conn();
    let services = store::list_services(&mut conn).unwrap();
    let mut channels: Vec<_> = services.iter().map(|s| s.channel).collect();
    channels.sort();
    assert_eq!(channels, schema::Channel::ALL.to_vec(), "one service per channel");
    let agents = store::list_agents(&mut conn).unwrap();
    assert_eq!(agents.iter().filter(|a| a.role == Role::Agent).count(), 3);
    assert_eq!(agents.iter().filter(|a| a.role == Role::Supervisor).count(), 1);
    assert_eq!(agents.iter().filter(|a| a.role == Role::Admin).count(), 1);
    for agent in &agents {
        assert!(
            web::core::password::verify(&web::boot::seed::demo_password(&agent.login), &agent.password_hash),
            "{}",
            agent.login
        );
    }
    let ana = agents.iter().find(|a| a.login == "ana").unwrap();
    assert_eq!(store::services_of_agent(&mut conn, ana.id).unwrap().len(), services.len());
    assert!(store::list_pause_reasons(&mut conn).unwrap().len() >= 3);
    assert!(!store::classifications_for(&mut conn, None).unwrap().is_empty());
    assert!(!store::canned_messages_for(&mut conn, None).unwrap().is_empty());

    seed();
    assert_eq!(store::list_agents(&mut conn).unwrap().len(), agents.len());
    assert_eq!(store::list_services(&mut conn).unwrap().len(), services.len());
}
