//! Typed configuration from environment variables (documented in docs/configuration.md).
//! Built once in `main` and passed explicitly; never a global, so a test can run with its own.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

/// A configuration value that is missing or malformed; names the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is not set ({hint})")]
    Missing { name: &'static str, hint: &'static str },
    #[error("{name}={value:?} is not valid: {reason}")]
    Invalid { name: &'static str, value: String, reason: String },
}

/// The first admin of a fresh install (`OMNIROUTE_BOOTSTRAP_ADMIN=login:password`).
#[derive(Clone)]
pub struct BootstrapAdmin {
    pub login: String,
    pub password: String,
}

impl std::fmt::Debug for BootstrapAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootstrapAdmin").field("login", &self.login).field("password", &"<hidden>").finish()
    }
}

/// Everything the server reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL`: the PostgreSQL database.
    pub database_url: String,
    /// `OMNIROUTE_BIND`: address the HTTP server listens on.
    pub bind: SocketAddr,
    /// `OMNIROUTE_DB_POOL_SIZE`: most database connections held open.
    pub db_pool_size: u32,
    /// `OMNIROUTE_DB_TIMEOUT_MS`: how long a request waits for a database connection.
    pub db_timeout: Duration,
    /// `OMNIROUTE_WORKERS`: HTTP worker threads.
    pub workers: usize,
    /// `OMNIROUTE_SHUTDOWN_TIMEOUT_S`: how long open requests get to finish on shutdown.
    pub shutdown_timeout: Duration,
    /// `OMNIROUTE_BOOTSTRAP_ADMIN`: creates the first admin on an empty database.
    pub bootstrap_admin: Option<BootstrapAdmin>,
    /// `OMNIROUTE_ALLOWED_ORIGINS`: comma-separated origins, besides the server's own, that may
    /// open desk WebSockets (e.g. a reverse proxy's public origin).
    pub allowed_origins: Vec<String>,
    /// `OMNIROUTE_TIME_ZONE`: the contact center's time zone ("today" in the desk summary).
    pub time_zone: chrono_tz::Tz,
    /// `OMNIROUTE_IMAP_POLL_S`: how often each email service's mailbox is polled.
    pub imap_poll: Duration,
    /// `OMNIROUTE_METRICS_TOKEN`: when set, `GET /metrics` takes `Authorization: Bearer <it>`.
    pub metrics_token: Option<String>,
    /// `OMNIROUTE_WEBCHAT_SOCKETS_PER_ADDRESS`, `OMNIROUTE_WEBCHAT_SOCKETS_MAX`,
    /// `OMNIROUTE_WEBCHAT_START_TIMEOUT_S`, `OMNIROUTE_BODY_TIMEOUT_S`, `OMNIROUTE_BODY_BUDGET_MB`:
    /// what callers who have not signed in can make the server hold (`limits.rs`).
    pub limits: crate::core::limits::Settings,
    /// `OMNIROUTE_REQUEST_HEAD_TIMEOUT_MS`: how long a connection has to send a request's headers.
    pub request_head_timeout: Duration,
    /// Sign-in limits: `OMNIROUTE_SIGNIN_ADDRESS_FAILURES`, `OMNIROUTE_SIGNIN_ADDRESS_WINDOW_S`,
    /// `OMNIROUTE_SIGNIN_ADDRESS_CONCURRENCY`, `OMNIROUTE_HASH_THREADS`, `OMNIROUTE_HASH_QUEUE`,
    /// `OMNIROUTE_CLIENT_ADDRESS_HEADER` (see `SignInLimits`).
    pub sign_in: crate::core::session::SignInLimits,
    /// `OMNIROUTE_EMAIL_PARSERS`: inbound emails parsed at once, each on a thread of its own.
    pub email_parsers: usize,
    /// `OMNIROUTE_EMAIL_PARSE_QUEUE_MB`: MiB of inbound email that may wait for a parser; beyond,
    /// the email webhook answers 503 with `Retry-After`.
    pub email_parse_queue_mb: usize,
    /// The demo's simulated customers and provider sandbox (`boot::demo`): `OMNIROUTE_DEMO`
    /// (`off` turns it off), `OMNIROUTE_DEMO_SANDBOX_BIND`, `OMNIROUTE_DEMO_SMTP_BIND`,
    /// `OMNIROUTE_DEMO_FIRST_S`, `OMNIROUTE_DEMO_EVERY_S`, `OMNIROUTE_DEMO_MAX_OPEN`.
    pub demo: crate::boot::demo::Settings,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let database_url = lookup("DATABASE_URL")
            .filter(|v| !v.trim().is_empty())
            .ok_or(ConfigError::Missing { name: "DATABASE_URL", hint: "a postgres:// URL; `make run` sets it" })?;
        let workers_default = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let d = crate::core::limits::Settings::default();
        let limits = crate::core::limits::Settings {
            webchat_sockets_per_address: positive(
                &lookup,
                "OMNIROUTE_WEBCHAT_SOCKETS_PER_ADDRESS",
                d.webchat_sockets_per_address,
            )?,
            webchat_sockets_total: positive(&lookup, "OMNIROUTE_WEBCHAT_SOCKETS_MAX", d.webchat_sockets_total)?,
            webchat_start_timeout: Duration::from_secs(positive(
                &lookup,
                "OMNIROUTE_WEBCHAT_START_TIMEOUT_S",
                d.webchat_start_timeout.as_secs(),
            )?),
            body_timeout: Duration::from_secs(positive(&lookup, "OMNIROUTE_BODY_TIMEOUT_S", d.body_timeout.as_secs())?),
            body_budget_bytes: positive(&lookup, "OMNIROUTE_BODY_BUDGET_MB", d.body_budget_bytes / (1024 * 1024))?
                .saturating_mul(1024 * 1024),
        };
        Ok(Self {
            database_url,
            bind: parse(&lookup, "OMNIROUTE_BIND", "127.0.0.1:8080".parse().expect("valid default"))?,
            db_pool_size: positive(&lookup, "OMNIROUTE_DB_POOL_SIZE", 16)?,
            db_timeout: Duration::from_millis(positive(&lookup, "OMNIROUTE_DB_TIMEOUT_MS", 5000)?),
            workers: positive(&lookup, "OMNIROUTE_WORKERS", workers_default)?,
            shutdown_timeout: Duration::from_secs(parse(&lookup, "OMNIROUTE_SHUTDOWN_TIMEOUT_S", 30)?),
            bootstrap_admin: bootstrap_admin(&lookup)?,
            allowed_origins: lookup("OMNIROUTE_ALLOWED_ORIGINS")
                .map(|v| {
                    v.split(',').map(|o| o.trim().trim_end_matches('/').to_owned()).filter(|o| !o.is_empty()).collect()
                })
                .unwrap_or_default(),
            time_zone: parse(&lookup, "OMNIROUTE_TIME_ZONE", chrono_tz::America::Sao_Paulo)?,
            imap_poll: Duration::from_secs(positive(&lookup, "OMNIROUTE_IMAP_POLL_S", 30)?),
            metrics_token: lookup("OMNIROUTE_METRICS_TOKEN").map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()),
            limits,
            request_head_timeout: Duration::from_millis(positive(&lookup, "OMNIROUTE_REQUEST_HEAD_TIMEOUT_MS", 5000)?),
            sign_in: sign_in_limits(&lookup)?,
            email_parsers: positive(
                &lookup,
                "OMNIROUTE_EMAIL_PARSERS",
                crate::channels::email::parsing::DEFAULT_PARSERS,
            )?,
            email_parse_queue_mb: positive(
                &lookup,
                "OMNIROUTE_EMAIL_PARSE_QUEUE_MB",
                crate::channels::email::parsing::DEFAULT_QUEUE_MB,
            )?,
            demo: demo_settings(&lookup)?,
        })
    }
}

fn demo_settings(lookup: &impl Fn(&str) -> Option<String>) -> Result<crate::boot::demo::Settings, ConfigError> {
    const NAME: &str = "OMNIROUTE_DEMO";
    let d = crate::boot::demo::Settings::default();
    let enabled = match lookup(NAME).map(|v| v.trim().to_ascii_lowercase()) {
        None => true,
        Some(v) if v.is_empty() || v == "on" || v == "auto" => true,
        Some(v) if v == "off" => false,
        Some(v) => return Err(ConfigError::Invalid { name: NAME, value: v, reason: "expected on or off".into() }),
    };
    let every = Duration::from_secs(positive(lookup, "OMNIROUTE_DEMO_EVERY_S", d.every.as_secs())?);
    Ok(crate::boot::demo::Settings {
        enabled,
        sandbox_bind: parse(lookup, "OMNIROUTE_DEMO_SANDBOX_BIND", d.sandbox_bind)?,
        smtp_bind: parse(lookup, "OMNIROUTE_DEMO_SMTP_BIND", d.smtp_bind)?,
        first: Duration::from_secs(positive(lookup, "OMNIROUTE_DEMO_FIRST_S", d.first.as_secs())?),
        every,
        max_open: positive(lookup, "OMNIROUTE_DEMO_MAX_OPEN", d.max_open)?,
        ..d
    })
}

fn sign_in_limits(lookup: &impl Fn(&str) -> Option<String>) -> Result<crate::core::session::SignInLimits, ConfigError> {
    let d = crate::core::session::SignInLimits::default();
    let hash_threads = positive(lookup, "OMNIROUTE_HASH_THREADS", d.hash_threads)?;
    Ok(crate::core::session::SignInLimits {
        address_failures: positive(lookup, "OMNIROUTE_SIGNIN_ADDRESS_FAILURES", d.address_failures)?,
        address_window: Duration::from_secs(positive(
            lookup,
            "OMNIROUTE_SIGNIN_ADDRESS_WINDOW_S",
            d.address_window.as_secs(),
        )?),
        address_concurrency: positive(lookup, "OMNIROUTE_SIGNIN_ADDRESS_CONCURRENCY", d.address_concurrency)?,
        hash_threads,
        // The default queue follows the threads: about 16 hashes' wait at most.
        hash_queue: positive(lookup, "OMNIROUTE_HASH_QUEUE", 16 * hash_threads)?,
        client_address_header: lookup("OMNIROUTE_CLIENT_ADDRESS_HEADER")
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty()),
        ..d
    })
}

fn parse<T: FromStr>(lookup: &impl Fn(&str) -> Option<String>, name: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match lookup(name) {
        None => Ok(default),
        Some(value) => {
            value.trim().parse().map_err(|e: T::Err| ConfigError::Invalid { name, value, reason: e.to_string() })
        }
    }
}

fn positive<T>(lookup: &impl Fn(&str) -> Option<String>, name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + Default + std::fmt::Display,
    T::Err: std::fmt::Display,
{
    let value = parse(lookup, name, default)?;
    if value <= T::default() {
        return Err(ConfigError::Invalid { name, value: value.to_string(), reason: "must be greater than 0".into() });
    }
    Ok(value)
}

fn bootstrap_admin(lookup: &impl Fn(&str) -> Option<String>) -> Result<Option<BootstrapAdmin>, ConfigError> {
    const NAME: &str = "OMNIROUTE_BOOTSTRAP_ADMIN";
    let Some(value) = lookup(NAME).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    match value.split_once(':') {
        Some((login, password)) if !login.trim().is_empty() && crate::core::password::acceptable(password) => {
            Ok(Some(BootstrapAdmin { login: login.trim().to_owned(), password: password.to_owned() }))
        }
        _ => Err(ConfigError::Invalid {
            name: NAME,
            value: value.split(':').next().unwrap_or("").to_owned() + ":<hidden>",
            reason: "expected login:password with a password of at least 8 characters besides white space".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_apply_when_only_the_database_is_set() {
        let c = config(&[("DATABASE_URL", "postgres://x/y")]).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.db_pool_size, 16);
        assert!(c.bootstrap_admin.is_none());
        assert_eq!(c.sign_in.address_failures, 50);
        assert_eq!(c.sign_in.hash_queue, 16 * c.sign_in.hash_threads);
        assert!(c.sign_in.client_address_header.is_none());
    }

    #[test]
    fn sign_in_limits_come_from_the_environment() {
        let c = config(&[
            ("DATABASE_URL", "postgres://x/y"),
            ("OMNIROUTE_SIGNIN_ADDRESS_FAILURES", "7"),
            ("OMNIROUTE_SIGNIN_ADDRESS_WINDOW_S", "60"),
            ("OMNIROUTE_HASH_THREADS", "2"),
            ("OMNIROUTE_CLIENT_ADDRESS_HEADER", " X-Forwarded-For "),
        ])
        .unwrap();
        assert_eq!(c.sign_in.address_failures, 7);
        assert_eq!(c.sign_in.address_window, Duration::from_secs(60));
        assert_eq!(c.sign_in.hash_queue, 32);
        assert_eq!(c.sign_in.client_address_header.as_deref(), Some("X-Forwarded-For"));
        let e = config(&[("DATABASE_URL", "postgres://x/y"), ("OMNIROUTE_HASH_QUEUE", "0")]).unwrap_err();
        assert!(e.to_string().contains("OMNIROUTE_HASH_QUEUE"), "{e}");
    }

    #[test]
    fn the_demo_is_on_unless_turned_off() {
        let c = config(&[("DATABASE_URL", "postgres://x/y")]).unwrap();
        assert!(c.demo.enabled);
        assert_eq!(c.demo.sandbox_bind.to_string(), "127.0.0.1:8089");
        let c = config(&[
            ("DATABASE_URL", "postgres://x/y"),
            ("OMNIROUTE_DEMO", "OFF"),
            ("OMNIROUTE_DEMO_SANDBOX_BIND", "127.0.0.1:9999"),
            ("OMNIROUTE_DEMO_EVERY_S", "10"),
        ])
        .unwrap();
        assert!(!c.demo.enabled);
        assert_eq!(c.demo.sandbox_bind.to_string(), "127.0.0.1:9999");
        assert_eq!(c.demo.every, Duration::from_secs(10));
        let e = config(&[("DATABASE_URL", "postgres://x/y"), ("OMNIROUTE_DEMO", "maybe")]).unwrap_err();
        assert!(e.to_string().contains("OMNIROUTE_DEMO"), "{e}");
    }

    #[test]
    fn errors_name_the_variable() {
        let e = config(&[]).unwrap_err().to_string();
        assert!(e.contains("DATABASE_URL"), "{e}");
        let e = config(&[("DATABASE_URL", "postgres://x/y"), ("OMNIROUTE_BIND", "nowhere")]).unwrap_err().to_string();
        assert!(e.contains("OMNIROUTE_BIND"), "{e}");
        let e = config(&[("DATABASE_URL", "postgres://x/y"), ("OMNIROUTE_DB_POOL_SIZE", "0")]).unwrap_err().to_string();
        assert!(e.contains("OMNIROUTE_DB_POOL_SIZE"), "{e}");
    }

    #[test]
    fn bootstrap_admin_needs_a_real_password_and_hides_it() {
        let c =
            config(&[("DATABASE_URL", "postgres://x/y"), ("OMNIROUTE_BOOTSTRAP_ADMIN", "root:s3cret-pass")]).unwrap();
        let admin = c.bootstrap_admin.unwrap();
        assert_eq!(admin.login, "root");
        assert!(!format!("{admin:?}").contains("s3cret"));
        let e = config(&[("DATABASE_URL", "postgres://x/y"), ("OMNIROUTE_BOOTSTRAP_ADMIN", "root:short")]).unwrap_err();
        assert!(!e.to_string().contains("short"), "{e}");
        let spaces = config(&[("DATABASE_URL", "postgres://x/y"), ("OMNIROUTE_BOOTSTRAP_ADMIN", "root:        ")]);
        assert!(spaces.is_err(), "eight spaces are no password");
    }
}
