//! The server under load: one the harness starts itself on a fresh database (`--spawn`), or one
//! already running (`--url`). The started server is a [`ServerCommand`]: Omniroute's binary, or
//! the pg-boss peer (`node benches/peer/server.js`); both get the same environment. Also reads CPU
//! time and memory of the server and of PostgreSQL from `/proc`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use diesel::{Connection, PgConnection, RunQueryDsl};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The bootstrap administrator of a spawned server.
pub const ADMIN_LOGIN: &str = "loadadmin";
/// Its password.
pub const ADMIN_PASSWORD: &str = "load-admin-password";

/// How to start a server: a program and its arguments. It is given `DATABASE_URL`,
/// `OMNIROUTE_BIND=127.0.0.1:0` and `OMNIROUTE_BOOTSTRAP_ADMIN`, and must print
/// `serving at http://host:port` on stdout once it serves.
#[derive(Debug, Clone)]
pub struct ServerCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl ServerCommand {
    /// Omniroute: `<binary> serve`.
    pub fn omniroute(binary: &Path) -> Self {
        Self { program: binary.to_owned(), args: vec!["serve".into()] }
    }

    /// The pg-boss + ws peer: `node <dir>/server.js`, after `npm ci` in `dir` when its
    /// `node_modules` is missing. The measured process is node itself (CPU and memory).
    pub fn peer(dir: &Path) -> anyhow::Result<Self> {
        if !dir.join("node_modules").is_dir() {
            eprintln!("installing the peer's dependencies (npm ci in {})", dir.display());
            let status = std::process::Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(dir)
                .status()
                .context("running npm ci for the peer (is Node.js installed?)")?;
            if !status.success() {
                bail!("npm ci in {} failed", dir.display());
            }
        }
        Ok(Self { program: "node".into(), args: vec![dir.join("server.js").display().to_string()] })
    }
}

/// A server started by the harness; killed when dropped.
pub struct Spawned {
    child: std::sync::Mutex<Option<Child>>,
    pid: AtomicU32,
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// How long from `exec` to the first line saying it serves.
    pub start_time: Duration,
    server: ServerCommand,
    url: String,
    admin_url: String,
    database: String,
    keep: bool,
}

impl Spawned {
    /// Creates database `load_<unix time>` next to the one `database_url` names, and starts
    /// `server` on it with a free port and the bootstrap admin.
    pub async fn start(server: &ServerCommand, database_url: &str, keep: bool) -> anyhow::Result<Self> {
        let database = format!("load_{}_{}", chrono::Utc::now().format("%Y%m%d%H%M%S"), std::process::id());
        let mut admin =
            PgConnection::establish(database_url).with_context(|| format!("connecting to {database_url}"))?;
        diesel::sql_query(format!("CREATE DATABASE {database}")).execute(&mut admin)?;
        let url = with_database(database_url, &database)?;
        let (child, base, start_time) = launch(server, &url, "127.0.0.1:0").await?;
        let pid = child.id().context("the server exited at once")?;
        Ok(Self {
            child: std::sync::Mutex::new(Some(child)),
            pid: AtomicU32::new(pid),
            base,
            start_time,
            server: server.clone(),
            url,
            admin_url: database_url.to_owned(),
            database,
            keep,
        })
    }

    /// The server's process id (a new one after [`Spawned::crash_and_restart`]).
    pub fn pid(&self) -> u32 {
        self.pid.load(Ordering::Relaxed)
    }

    /// `kill -9`, then the same binary started again on the same database and port. Answers
    /// how long from the new `exec` until it served (migrations checked, the routing book
    /// rebuilt from PostgreSQL with every timer re-armed, the port bound).
    pub async fn crash_and_restart(&self) -> anyhow::Result<Duration> {
        let old = self.child.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut child) = old {
            child.start_kill()?;
            child.wait().await?;
        }
        let bind = self.base.trim_start_matches("http://").to_owned();
        // The port was just released by the dead process; binding it again may need a moment.
        let mut attempts = 0;
        let (child, _, ready) = loop {
            match launch(&self.server, &self.url, &bind).await {
                Ok(started) => break started,
                Err(e) if attempts < 20 => {
                    attempts += 1;
                    eprintln!("restart attempt {attempts}: {e:#}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        };
        self.pid.store(child.id().context("the server exited at once")?, Ordering::Relaxed);
        *self.child.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        Ok(ready)
    }

    /// Stops the server (SIGKILL) and drops its database unless asked to keep it.
    pub async fn stop(self) -> anyhow::Result<()> {
        let child = self.child.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut child) = child {
            let _ = child.kill().await;
        }
        if !self.keep {
            let mut admin = PgConnection::establish(&self.admin_url)?;
            diesel::sql_query(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database)).execute(&mut admin)?;
        }
        Ok(())
    }

    /// The database it runs on.
    pub fn database(&self) -> &str {
        &self.database
    }
}

/// Starts `server` on database `url`, bound to `bind`; answers the child, its address and
/// how long from `exec` to the line saying it serves.
async fn launch(server: &ServerCommand, url: &str, bind: &str) -> anyhow::Result<(Child, String, Duration)> {
    let started = Instant::now();
    let mut child = Command::new(&server.program)
        .args(&server.args)
        .env("DATABASE_URL", url)
        .env("OMNIROUTE_BIND", bind)
        .env("OMNIROUTE_BOOTSTRAP_ADMIN", format!("{ADMIN_LOGIN}:{ADMIN_PASSWORD}"))
        .env("RUST_LOG", std::env::var("LOAD_SERVER_LOG").unwrap_or_else(|_| "warn".into()))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", server.program.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .context("the server printed no address within 60 s")??;
        let Some(line) = line else { bail!("the server exited before serving (see its log above)") };
        if let Some(rest) = line.split("serving at ").nth(1) {
            break rest.trim().trim_end_matches('/').to_owned();
        }
    };
    let ready = started.elapsed();
    // Keep draining its stdout so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, base, ready))
}

/// `url` with its path (the database name) replaced by `database`.
pub fn with_database(url: &str, database: &str) -> anyhow::Result<String> {
    let scheme_end = url.find("://").context("a database URL needs a scheme")? + 3;
    let path_start = url[scheme_end..].find('/').map(|i| scheme_end + i).context("a database URL needs a /database")?;
    let query_start = url[path_start..].find('?').map(|i| path_start + i).unwrap_or(url.len());
    Ok(format!("{}/{}{}", &url[..path_start], database, &url[query_start..]))
}

/// CPU seconds (user + system) and resident memory of a set of processes at one instant.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    pub cpu_s: f64,
    pub rss_bytes: u64,
}

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on every Linux we run on).
const TICKS_PER_S: f64 = 100.0;

/// Reads one process.
pub fn sample_pid(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some(ProcSample { cpu_s: (utime + stime) / TICKS_PER_S, rss_bytes: rss_kb * 1024 })
}

/// The TCP connections established on the server's side of `port` (local port `port` in
/// `/proc/net/tcp` and `tcp6`): what the server holds open to its clients, WebSockets and pooled
/// HTTP connections alike.
pub fn established_on_port(port: u16) -> Option<usize> {
    let mut n = 0;
    let mut read_any = false;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        read_any = true;
        n += text
            .lines()
            .skip(1)
            .filter(|line| {
                let mut fields = line.split_whitespace();
                let local = fields.nth(1).unwrap_or_default();
                let state = fields.nth(1).unwrap_or_default();
                state == "01" && local.rsplit_once(':').and_then(|(_, p)| u16::from_str_radix(p, 16).ok()) == Some(port)
            })
            .count();
    }
    read_any.then_some(n)
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    fields.get(1)?.parse().ok()
}

/// The PostgreSQL cluster whose data directory is given: its postmaster and every child
/// (backends, WAL writer, checkpointer…). Backends that exited took their CPU time with them,
/// so the harness samples while the server's pool holds its connections open.
pub struct Postgres {
    postmaster: u32,
}

impl Postgres {
    /// Finds the postmaster from `<data>/postmaster.pid`.
    pub fn find(data: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(data.join("postmaster.pid")).ok()?;
        let postmaster = text.lines().next()?.trim().parse().ok()?;
        sample_pid(postmaster)?;
        Some(Self { postmaster })
    }

    /// CPU time of the postmaster and all its children, and their summed RSS (shared buffers
    /// are counted once per process that touched them, so RSS is only indicative).
    pub fn sample(&self) -> ProcSample {
        let mut total = sample_pid(self.postmaster).unwrap_or_default();
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
                if parent_of(pid) == Some(self.postmaster)
                    && let Some(s) = sample_pid(pid)
                {
                    total.cpu_s += s.cpu_s;
                    total.rss_bytes += s.rss_bytes;
                }
            }
        }
        total
    }
}

/// The default data directory of the `bench` cluster of scripts/pg.sh.
pub fn default_pg_data() -> PathBuf {
    PathBuf::from(".omniroute/bench/data")
}
