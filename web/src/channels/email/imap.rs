//! IMAP polling (C1): one task per email service whose `provider.imap_url` names a mailbox. Each
//! poll selects the mailbox, fetches by UID every mail above the service's cursor
//! (`mailbox_cursors`: UIDVALIDITY and the last UID taken), stores each through
//! [`super::ingest`] and only then moves the cursor past it — so a mail is fetched once, across
//! restarts too, and one that was fetched but not committed is fetched again (and stored once,
//! by its Message-ID). A new UIDVALIDITY restarts from the first UID. Bodies are read with
//! `BODY.PEEK[]`: the mailbox's flags are left as they were.
//!
//! `imap_url`: `imap://user:pass@host:143/INBOX` (plain), `imap+starttls://…` (STARTTLS),
//! `imaps://user:pass@host:993/INBOX` (TLS); user and password percent-encoded, the mailbox
//! defaults to INBOX. An unreachable server is logged and retried with backoff (1 s doubling to
//! 5 min); the poller never stops on its own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_imap::Session;
use futures_util::TryStreamExt;
use schema::models::Service;
use schema::{Channel, ServiceId, store};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::Outcome;
use crate::core::error::Code;
use crate::core::state::AppState;

/// Longest wait between two attempts to reach a failing mailbox.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How long one IMAP step (connect, log in, select, fetch one mail) may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// A running poller. Cheap to clone; [`Poller::stop`] ends every task.
#[derive(Clone, Default)]
pub struct Poller {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Message bodies fetched from any mailbox since the start.
    fetched: AtomicU64,
    /// Polls that read a mailbox to its end.
    polls: AtomicU64,
    /// Sessions that failed (unreachable server, refused login, storage down…).
    failures: AtomicU64,
    /// The task of each polled service, with the URL it polls (written by the manager task).
    tasks: Mutex<HashMap<ServiceId, (String, JoinHandle<()>)>>,
    manager: Mutex<Option<JoinHandle<()>>>,
}

impl Poller {
    /// Message bodies fetched since this poller started.
    pub fn fetched(&self) -> u64 {
        self.inner.fetched.load(Ordering::SeqCst)
    }

    /// Polls that read a mailbox to its end since this poller started.
    pub fn polls(&self) -> u64 {
        self.inner.polls.load(Ordering::SeqCst)
    }

    /// Failed sessions since this poller started (each logged, then retried with backoff).
    pub fn failures(&self) -> u64 {
        self.inner.failures.load(Ordering::SeqCst)
    }

    /// Stops polling (what was committed stays committed).
    pub fn stop(&self) {
        if let Some(m) = self.inner.manager.lock().unwrap_or_else(|e| e.into_inner()).take() {
            m.abort();
        }
        for (_, (_, task)) in self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner()).drain() {
            task.abort();
        }
    }
}

/// Starts polling every email service with an `imap_url` each `interval`; services added,
/// changed or removed later are picked up within an interval. Call inside the actix system.
pub fn spawn(state: AppState, interval: Duration) -> Poller {
    let poller = Poller::default();
    let p = poller.clone();
    let manager = actix_web::rt::spawn(async move {
        loop {
            let pool = state.pool.clone();
            let services = actix_web::web::block(move || store::list_services(&mut *pool.get()?)).await;
            match services {
                Ok(Ok(services)) => p.reconcile(&state, services, interval),
                Ok(Err(e)) => warn!(error = %e, "listing email services to poll"),
                Err(e) => warn!(error = %e, "listing email services to poll"),
            }
            tokio::time::sleep(interval.max(Duration::from_millis(100))).await;
        }
    });
    *poller.inner.manager.lock().unwrap_or_else(|e| e.into_inner()) = Some(manager);
    poller
}

impl Poller {
    /// One task per active email service with an `imap_url`; a changed URL restarts its task.
    fn reconcile(&self, state: &AppState, services: Vec<Service>, interval: Duration) {
        let wanted: HashMap<ServiceId, String> = services
            .into_iter()
            .filter(|s| s.channel == Channel::Email && s.active)
            .filter_map(|s| {
                let url = s.provider.get("imap_url").and_then(Value::as_str)?.trim().to_owned();
                (!url.is_empty()).then_some((s.id, url))
            })
            .collect();
        let mut tasks = self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|id, (url, task)| {
            let keep = wanted.get(id) == Some(url) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for (id, url) in wanted {
            if let std::collections::hash_map::Entry::Vacant(slot) = tasks.entry(id) {
                let (state, inner, u) = (state.clone(), self.inner.clone(), url.clone());
                slot.insert((url, actix_web::rt::spawn(watch(state, inner, id, u, interval))));
            }
        }
    }
}

/// Polls one mailbox for ever, reconnecting with backoff.
async fn watch(state: AppState, inner: Arc<Inner>, service: ServiceId, url: String, interval: Duration) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let error = match MailboxUrl::parse(&url) {
            Ok(mailbox) => session(&state, &inner, service, &mailbox, interval, &mut backoff).await,
            Err(e) => e,
        };
        inner.failures.fetch_add(1, Ordering::SeqCst);
        warn!(service.id = %service, url = %crate::core::secrets::redact(&url), error = %error,
              retry_in_s = backoff.as_secs(), "IMAP mailbox unavailable; retrying");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// The parts of an `imap_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxUrl {
    pub security: Security,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub mailbox: String,
}

/// How the IMAP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    Plain,
    StartTls,
    Tls,
}

impl MailboxUrl {
    /// Reads an `imap://`, `imap+starttls://` or `imaps://` URL.
    pub fn parse(s: &str) -> Result<Self, String> {
        let url = url::Url::parse(s.trim()).map_err(|e| format!("imap_url is not a URL: {e}"))?;
        let (security, default_port) = match url.scheme() {
            "imap" => (Security::Plain, 143),
            "imap+starttls" => (Security::StartTls, 143),
            "imaps" => (Security::Tls, 993),
            other => return Err(format!("imap_url scheme {other:?} is not imap, imap+starttls or imaps")),
        };
        let decode = |v: &str| percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned();
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or("imap_url has no host")?;
        let user = decode(url.username());
        if user.is_empty() {
            return Err("imap_url has no user".into());
        }
        let mailbox = decode(url.path().trim_start_matches('/'));
        Ok(Self {
            security,
            host: host.trim_start_matches('[').trim_end_matches(']').to_owned(),
            port: url.port().unwrap_or(default_port),
            user,
            password: decode(url.password().unwrap_or("")),
            mailbox: if mailbox.is_empty() { "INBOX".into() } else { mailbox },
        })
    }
}

async fn timed<T, E: std::fmt::Display>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(STEP_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer in {} s", STEP_TIMEOUT.as_secs())),
    }
}

/// Connects, logs in and polls until something fails; returns what failed.
async fn session(
    state: &AppState,
    inner: &Inner,
    service: ServiceId,
    url: &MailboxUrl,
    interval: Duration,
    backoff: &mut Duration,
) -> String {
    let tcp = match timed("connecting", TcpStream::connect((url.host.as_str(), url.port))).await {
        Ok(tcp) => tcp,
        Err(e) => return e,
    };
    let result = match url.security {
        Security::Plain => {
            let mut client = async_imap::Client::new(tcp);
            match timed("reading the greeting", client.read_response()).await {
                Ok(Some(_)) => logged_in(state, inner, service, url, client, interval, backoff).await,
                Ok(None) => Err("the server closed the connection".into()),
                Err(e) => Err(e),
            }
        }
        Security::StartTls => {
            let mut client = async_imap::Client::new(tcp);
            let plain = async {
                timed("reading the greeting", client.read_response()).await?;
                timed("STARTTLS", client.run_command_and_check_ok("STARTTLS", None)).await?;
                Ok::<_, String>(client.into_inner())
            }
            .await;
            match plain {
                Ok(tcp) => match tls(url, tcp).await {
                    Ok(stream) => {
                        logged_in(state, inner, service, url, async_imap::Client::new(stream), interval, backoff).await
                    }
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            }
        }
        Security::Tls => match tls(url, tcp).await {
            Ok(stream) => {
                let mut client = async_imap::Client::new(stream);
                match timed("reading the greeting", client.read_response()).await {
                    Ok(_) => logged_in(state, inner, service, url, client, interval, backoff).await,
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => "the server ended the session".into(),
        Err(e) => e,
    }
}

async fn tls(url: &MailboxUrl, tcp: TcpStream) -> Result<tokio_native_tls::TlsStream<TcpStream>, String> {
    let connector = native_tls_connector()?;
    timed("TLS handshake", connector.connect(&url.host, tcp)).await
}

fn native_tls_connector() -> Result<tokio_native_tls::TlsConnector, String> {
    tokio_native_tls::native_tls::TlsConnector::new()
        .map(tokio_native_tls::TlsConnector::from)
        .map_err(|e| format!("TLS: {e}"))
}

async fn logged_in<T>(
    state: &AppState,
    inner: &Inner,
    service: ServiceId,
    url: &MailboxUrl,
    client: async_imap::Client<T>,
    interval: Duration,
    backoff: &mut Duration,
) -> Result<(), String>
where
    T: AsyncRead + AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    let login = tokio::time::timeout(STEP_TIMEOUT, client.login(&url.user, &url.password)).await;
    let mut session = match login {
        Ok(Ok(s)) => s,
        Ok(Err((e, _))) => return Err(format!("logging in as {}: {e}", url.user)),
        Err(_) => return Err("logging in: no answer".into()),
    };
    info!(service.id = %service, mailbox = %url.mailbox, "IMAP mailbox connected");
    loop {
        poll(state, inner, service, &url.mailbox, &mut session).await?;
        inner.polls.fetch_add(1, Ordering::SeqCst);
        *backoff = Duration::from_secs(1);
        tokio::time::sleep(interval).await;
    }
}

/// One poll: every mail above the cursor, stored and then passed.
async fn poll<T>(
    state: &AppState,
    inner: &Inner,
    service: ServiceId,
    mailbox: &str,
    session: &mut Session<T>,
) -> Result<(), String>
where
    T: AsyncRead + AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    // SELECT every time: it reports a changed UIDVALIDITY and the next UID.
    let selected = timed("selecting the mailbox", session.select(mailbox)).await?;
    let validity = i64::from(selected.uid_validity.unwrap_or(0));
    let pool = state.pool.clone();
    let (row, cursor) = actix_web::web::block(move || -> Result<_, schema::StoreError> {
        let mut c = pool.get()?;
        Ok((Service::find(&mut c, service)?, store::mailbox_cursor(&mut c, service)?))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("reading the mailbox cursor: {e}"))?;
    let mut last = match &cursor {
        Some(c) if c.uid_validity == validity => c.last_uid,
        Some(_) => {
            info!(service.id = %service, "UIDVALIDITY changed: the mailbox is read again from the start");
            0
        }
        None => 0,
    };
    if cursor.as_ref().is_none_or(|c| c.uid_validity != validity) {
        advance(state, service, validity, last).await?;
    }
    if selected.exists == 0 || selected.uid_next.is_some_and(|next| i64::from(next) <= last + 1) {
        return Ok(());
    }
    let listed: Vec<async_imap::types::Fetch> = timed("listing new mail", async {
        session.uid_fetch(format!("{}:*", last + 1), "(UID RFC822.SIZE)").await?.try_collect().await
    })
    .await?;
    let mut new: Vec<(u32, u32)> = listed
        .iter()
        .filter_map(|f| Some((f.uid?, f.size.unwrap_or(0))))
        .filter(|(u, _)| i64::from(*u) > last)
        .collect();
    new.sort_unstable();
    new.dedup();
    for (uid, size) in new {
        if usize::try_from(size).unwrap_or(usize::MAX) > super::MAX_MESSAGE {
            warn!(service.id = %service, uid, size, "mail larger than the limit left in the mailbox");
        } else {
            let fetched: Vec<async_imap::types::Fetch> = timed("fetching a mail", async {
                session.uid_fetch(uid.to_string(), "(UID BODY.PEEK[])").await?.try_collect().await
            })
            .await?;
            inner.fetched.fetch_add(1, Ordering::SeqCst);
            let raw = actix_web::web::Bytes::copy_from_slice(
                fetched.iter().find(|f| f.uid == Some(uid)).and_then(|f| f.body()).unwrap_or_default(),
            );
            let parsed = match super::already_stored(state, service, &raw).await {
                Ok(true) => None,
                Ok(false) => Some(parse_on_the_pool(raw.clone()).await),
                Err(e) => return Err(format!("checking mail {uid}: {}", e.message)),
            };
            match parsed {
                // Stored before (a restart between storing and moving the cursor): not parsed again.
                None => {}
                Some(Ok(mail)) => match super::ingest(state, &row, raw, mail).await {
                    Ok(Outcome::Ignored(reason)) => info!(service.id = %service, uid, reason, "mail ignored"),
                    Ok(_) => {}
                    // Not committed: the cursor stays, the mail is fetched again next time.
                    Err(e) => return Err(format!("storing mail {uid}: {}", e.message)),
                },
                Some(Err(refusal)) => {
                    warn!(service.id = %service, uid, code = refusal.code.as_str(), reason = %refusal.message, "unreadable mail skipped")
                }
            }
        }
        last = i64::from(uid);
        advance(state, service, validity, last).await?;
    }
    Ok(())
}

/// Parses one fetched mail on the parser threads; while they are all busy (webhook mail arriving
/// too) the poller waits its turn rather than failing the poll.
async fn parse_on_the_pool(raw: actix_web::web::Bytes) -> Result<super::parse::ParsedEmail, super::parse::Refusal> {
    loop {
        let bytes = raw.clone();
        match super::parsing::pool().run(bytes.len(), move || super::parse::parse(&bytes)).await {
            Ok(parsed) => return parsed,
            Err(super::parsing::Unparsed::Busy) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(super::parsing::Unparsed::Crashed) => {
                return Err(super::parse::Refusal {
                    code: Code::InvalidMessage,
                    message: "the message could not be parsed".into(),
                });
            }
        }
    }
}

async fn advance(state: &AppState, service: ServiceId, validity: i64, last: i64) -> Result<(), String> {
    let pool = state.pool.clone();
    actix_web::web::block(move || {
        store::advance_mailbox_cursor(&mut *pool.get()?, service, validity, last, chrono::Utc::now())
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("moving the mailbox cursor: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_the_server_the_user_and_the_mailbox() {
        let u = MailboxUrl::parse("imap://suporte%40empresa.com:p%40ss%3Aword@127.0.0.1:1143/Caixa%20Entrada").unwrap();
        assert_eq!((u.security, u.host.as_str(), u.port), (Security::Plain, "127.0.0.1", 1143));
        assert_eq!((u.user.as_str(), u.password.as_str()), ("suporte@empresa.com", "p@ss:word"));
        assert_eq!(u.mailbox, "Caixa Entrada");
        let u = MailboxUrl::parse("imaps://u:p@imap.example.com").unwrap();
        assert_eq!((u.security, u.port, u.mailbox.as_str()), (Security::Tls, 993, "INBOX"));
        assert_eq!(MailboxUrl::parse("imap+starttls://u:p@h/INBOX").unwrap().security, Security::StartTls);
        assert!(MailboxUrl::parse("http://u:p@h/").is_err());
        assert!(MailboxUrl::parse("imap://h/INBOX").is_err());
        assert!(MailboxUrl::parse("not a url").is_err());
    }
}
