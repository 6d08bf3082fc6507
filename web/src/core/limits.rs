//! What anyone can make the server hold without signing in, bounded: webchat sockets (per
//! address and in all, each with a time to say `start`), webhook bodies (a time to arrive, and
//! the bytes read at once across every webhook), and the process's file descriptors. Every limit
//! has an environment variable (docs/operations.md, "Limits").

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::http::StatusCode;

use crate::core::error::{ApiError, Code};

/// The limits in force (defaults in [`Limits::default`]; `OMNIROUTE_*` variables in `config.rs`).
pub struct Limits {
    /// Webchat sockets per client address and in all.
    pub webchat_sockets: SocketGate,
    /// How long a webchat socket may stay open without `start` or `resume`.
    pub webchat_start_timeout: Duration,
    /// How long a webhook's body may take to arrive once its headers have.
    pub body_timeout: Duration,
    /// The bytes of webhook bodies being read at once, across every webhook.
    pub bodies: BodyBudget,
}

impl Default for Limits {
    fn default() -> Self {
        Self::new(&Settings::default())
    }
}

/// The numbers behind [`Limits`], as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub webchat_sockets_per_address: usize,
    pub webchat_sockets_total: usize,
    pub webchat_start_timeout: Duration,
    pub body_timeout: Duration,
    pub body_budget_bytes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            webchat_sockets_per_address: 32,
            webchat_sockets_total: 10_000,
            webchat_start_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(15),
            body_budget_bytes: 64 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// Limits with these settings.
    pub fn new(s: &Settings) -> Self {
        Self {
            webchat_sockets: SocketGate::new(s.webchat_sockets_per_address, s.webchat_sockets_total),
            webchat_start_timeout: s.webchat_start_timeout,
            body_timeout: s.body_timeout,
            bodies: BodyBudget::new(s.body_budget_bytes),
        }
    }
}

/// Counts open sockets per address and in all; a socket holds a [`SocketPermit`] while open.
pub struct SocketGate {
    per_address: usize,
    total: usize,
    open: AtomicUsize,
    by_address: Mutex<HashMap<String, usize>>,
}

/// One admitted socket; dropping it gives its place back.
pub struct SocketPermit {
    gate: Arc<Limits>,
    address: Option<String>,
}

impl SocketGate {
    fn new(per_address: usize, total: usize) -> Self {
        Self { per_address, total, open: AtomicUsize::new(0), by_address: Mutex::new(HashMap::new()) }
    }

    /// Sockets open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn release(&self, address: Option<&str>) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        if let Some(a) = address {
            let mut map = self.by_address.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = map.get_mut(a) {
                *n -= 1;
                if *n == 0 {
                    map.remove(a);
                }
            }
        }
    }
}

/// A place for one more webchat socket from `address` (as `api::auth::client_address` names
/// it: an IPv6 /64 is one address): 503 when the server holds its most, 429 when this address does.
pub fn admit_webchat_socket(limits: &Arc<Limits>, address: Option<String>) -> Result<SocketPermit, ApiError> {
    let gate = &limits.webchat_sockets;
    if gate.open.fetch_add(1, Ordering::Relaxed) >= gate.total {
        gate.open.fetch_sub(1, Ordering::Relaxed);
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::TooManyConnections,
            "the server holds all the chat connections it can; retry later",
        ));
    }
    if let Some(a) = &address {
        let mut map = gate.by_address.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(a.clone()).or_insert(0);
        if *n >= gate.per_address {
            drop(map);
            gate.open.fetch_sub(1, Ordering::Relaxed);
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                Code::TooManyConnectionsFromAddress,
                format!("at most {} chat connections from one address", gate.per_address),
            ));
        }
        *n += 1;
    }
    Ok(SocketPermit { gate: limits.clone(), address })
}

impl Drop for SocketPermit {
    fn drop(&mut self) {
        self.gate.webchat_sockets.release(self.address.as_deref());
    }
}

/// The bytes of bodies being read at once, in KiB permits: a body reserves what it announces
/// (or its route's limit when it announces nothing) before a byte is read.
pub struct BodyBudget {
    permits: Arc<tokio::sync::Semaphore>,
    total_kib: usize,
}

/// A body's reservation; dropping it gives the bytes back.
pub type BodyPermit = tokio::sync::OwnedSemaphorePermit;

impl BodyBudget {
    fn new(bytes: usize) -> Self {
        let total_kib = bytes.div_ceil(1024).max(1);
        Self { permits: Arc::new(tokio::sync::Semaphore::new(total_kib)), total_kib }
    }

    /// Reserves `bytes`, or 503 when the budget is spent (the provider retries later).
    pub fn reserve(&self, bytes: usize) -> Result<BodyPermit, ApiError> {
        let kib = u32::try_from(bytes.div_ceil(1024).clamp(1, self.total_kib)).unwrap_or(u32::MAX);
        self.permits.clone().try_acquire_many_owned(kib).map_err(|_| {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, Code::Busy, "too many request bodies are arriving; retry")
        })
    }

    /// KiB reserved now.
    pub fn reserved_kib(&self) -> usize {
        self.total_kib - self.permits.available_permits()
    }
}

/// Raises this process's open-file limit to the most the system allows (each connection is a
/// file); returns the limit now in force.
pub fn raise_file_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(e) => {
            tracing::warn!(error = %e, "could not raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).ok().map(|(soft, _)| soft)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_are_counted_per_address_and_in_all_and_given_back() {
        let limits = Arc::new(Limits::new(&Settings {
            webchat_sockets_per_address: 2,
            webchat_sockets_total: 3,
            ..Settings::default()
        }));
        let (a, b, c) = ("203.0.113.7", "2001:db8::/64", "198.51.100.1");
        let first = admit_webchat_socket(&limits, Some(a.to_owned())).unwrap();
        let _second = admit_webchat_socket(&limits, Some(a.to_owned())).unwrap();
        assert_eq!(
            admit_webchat_socket(&limits, Some(a.to_owned())).err().unwrap().code,
            Code::TooManyConnectionsFromAddress
        );
        let _third = admit_webchat_socket(&limits, Some(b.to_owned())).unwrap();
        assert_eq!(admit_webchat_socket(&limits, Some(c.to_owned())).err().unwrap().code, Code::TooManyConnections);
        drop(first);
        assert_eq!(limits.webchat_sockets.open(), 2);
        let _fourth = admit_webchat_socket(&limits, Some(b.to_owned())).unwrap();
        assert_eq!(admit_webchat_socket(&limits, Some(b.to_owned())).err().unwrap().code, Code::TooManyConnections);
        assert_eq!(limits.webchat_sockets.by_address.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_body_reserves_what_it_announces_until_dropped() {
        let budget = BodyBudget::new(1024 * 1024);
        let big = budget.reserve(700 * 1024).unwrap();
        assert_eq!(budget.reserve(400 * 1024).err().unwrap().code, Code::Busy);
        let small = budget.reserve(10).unwrap();
        assert_eq!(budget.reserved_kib(), 701);
        drop((big, small));
        assert_eq!(budget.reserved_kib(), 0);
        // A body larger than the whole budget still gets in alone (its route's limit refuses it).
        assert!(budget.reserve(10 * 1024 * 1024).is_ok());
    }
}
