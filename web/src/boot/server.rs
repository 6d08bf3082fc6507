//! `omniroute serve` and `omniroute migrate`.

use actix_web::{App, HttpServer, web};
use anyhow::{Context, anyhow};
use chrono::Utc;
use schema::models::Agent;
use schema::{AgentId, PgConnection, PoolOptions, Role, store};
use tracing::{info, warn};

use crate::boot::config::Config;
use crate::core::secrets::redact;

/// Connects, migrates, provisions the first admin if asked, and serves until SIGINT/SIGTERM,
/// letting open requests finish (graceful shutdown).
pub fn serve(mut config: Config) -> anyhow::Result<()> {
    // Each connection is a file: the most the system allows, and never more webchat sockets
    // than half of them, so sockets nobody signed in for cannot starve the rest.
    if let Some(files) = crate::core::limits::raise_file_limit() {
        let half = usize::try_from(files / 2).unwrap_or(usize::MAX).max(1);
        if config.limits.webchat_sockets_total > half {
            config.limits.webchat_sockets_total = half;
        }
        info!(open_files = files, webchat_sockets_max = config.limits.webchat_sockets_total, "open-file limit");
        if files < 4096 {
            warn!(open_files = files, "the open-file limit is low; raise it (ulimit -n) for many connections");
        }
    }
    let mut conn = connect(&config)?;
    let applied = schema::migrate::run_pending(&mut conn).context("migrating the database")?;
    if !applied.is_empty() {
        info!(count = applied.len(), "migrations applied");
    }
    bootstrap_admin(&mut conn, &config)?;
    drop(conn);

    let pool = schema::build_pool(
        &config.database_url,
        &PoolOptions { max_size: config.db_pool_size, connection_timeout: config.db_timeout },
    );
    actix_web::rt::System::new().block_on(run(config, pool))
}

async fn run(config: Config, pool: schema::PgPool) -> anyhow::Result<()> {
    // R15: every open conversation, queue, presence and timer is rebuilt before serving.
    let started = std::time::Instant::now();
    let engine =
        engine::Engine::start(pool.clone(), engine::Clock::System).await.context("starting the routing engine")?;
    info!(elapsed_ms = started.elapsed().as_millis() as u64, "routing engine ready");
    // One process per database: sends and fetches a dead predecessor had leased are due now.
    match pool
        .get()
        .map_err(schema::StoreError::from)
        .and_then(|mut c| store::release_after_restart(&mut c, Utc::now()))
    {
        Ok((messages, fetches)) if messages + fetches > 0 => {
            info!(messages, fetches, "pending sends and media fetches made due after the restart")
        }
        Ok(_) => {}
        Err(e) => warn!(error = %e, "could not release the previous process's leases"),
    }
    let mut state = crate::boot::state(pool, engine.clone());
    state.allowed_origins = std::sync::Arc::new(config.allowed_origins.clone());
    state.time_zone = config.time_zone;
    state.metrics_token = config.metrics_token.as_deref().map(std::sync::Arc::from);
    state.limits = std::sync::Arc::new(crate::core::limits::Limits::new(&config.limits));
    state.set_sign_in_limits(&config.sign_in);
    crate::channels::email::parsing::configure(config.email_parsers, config.email_parse_queue_mb);
    crate::channels::outbound::spawn(state.clone(), state.outbox.clone());
    crate::channels::voice::start(state.clone()).await;
    let poller = crate::channels::email::imap::spawn(state.clone(), config.imap_poll);
    crate::channels::media::spawn(state.clone());
    let demo_state = state.clone();
    let data = web::Data::new(state);
    // The access log renders each request's line before knowing whether it will be written:
    // left out altogether when its level is filtered away (`RUST_LOG=warn`).
    let access_log = tracing::enabled!(target: "actix_web::middleware::logger", tracing::Level::INFO);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .wrap(actix_web::middleware::Condition::new(access_log, actix_web::middleware::Logger::default()))
            .configure(crate::boot::routes::configure)
    })
    .workers(config.workers)
    // Blocking work here is database work, and only `OMNIROUTE_DB_POOL_SIZE` connections exist:
    // more threads would only wait for one, and the memory they touched during a burst (10,000
    // desks connecting at once) stays with the allocator afterwards.
    .worker_max_blocking_threads(config.db_pool_size as usize)
    // Every frame to a desk goes out at once: with Nagle's algorithm a frame written while the
    // previous one is unacknowledged waits for the browser's delayed ACK (up to 40 ms).
    .tcp_nodelay(true)
    // A connection that does not finish its request's headers in time is closed (slow-loris).
    .client_request_timeout(config.request_head_timeout)
    .shutdown_timeout(config.shutdown_timeout.as_secs())
    .bind(config.bind)
    .with_context(|| format!("cannot listen on {} (OMNIROUTE_BIND)", config.bind))?;
    for addr in server.addrs() {
        info!(%addr, "listening");
        println!("Omniroute is serving at http://{addr}/");
    }
    let demo = crate::boot::demo::start(demo_state, config.demo.clone(), server.addrs()[0]).await?;
    server.run().await.context("HTTP server")?;
    if let Some(demo) = demo {
        demo.stop().await;
    }
    poller.stop();
    // Whatever the engine was still writing is committed before the process ends.
    engine.flush().await;
    engine.stop();
    info!("stopped");
    Ok(())
}

/// `omniroute migrate`: applies pending migrations.
pub fn migrate(config: &Config) -> anyhow::Result<Vec<String>> {
    let mut conn = connect(config)?;
    schema::migrate::run_pending(&mut conn).context("migrating the database")
}

/// One direct connection, with an error that names the database without its password.
pub fn connect(config: &Config) -> anyhow::Result<PgConnection> {
    schema::connect(&config.database_url)
        .map_err(|e| anyhow!("cannot reach the database at {}: {e}", redact(&config.database_url)))
}

/// Creates the first admin from `OMNIROUTE_BOOTSTRAP_ADMIN` when the database has none.
fn bootstrap_admin(conn: &mut PgConnection, config: &Config) -> anyhow::Result<()> {
    let Some(admin) = &config.bootstrap_admin else {
        return Ok(());
    };
    if store::count_agents_with_role(conn, Role::Admin)? > 0 {
        info!("an admin exists; OMNIROUTE_BOOTSTRAP_ADMIN ignored");
        return Ok(());
    }
    let now = Utc::now();
    Agent {
        id: AgentId::new(),
        login: admin.login.clone(),
        name: admin.login.clone(),
        role: Role::Admin,
        password_hash: crate::core::password::hash(&admin.password),
        active: true,
        extension: None,
        auto_distribution: None,
        created_at: now,
        updated_at: now,
    }
    .insert(conn)
    .with_context(|| format!("creating the bootstrap admin {:?}", admin.login))?;
    info!(login = %admin.login, "bootstrap admin created");
    Ok(())
}
