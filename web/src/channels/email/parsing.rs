//! Email parsing on threads of its own. A large or hostile mail can take a while to parse; run in
//! `web::block` it would hold one of the blocking threads the database helper `db()` uses (that
//! pool is sized to the database pool), and forty such mails at once delayed every agent's
//! request behind them. Here a few dedicated threads parse, mails wait for them in a queue
//! without holding any thread, and once the mails waiting hold more than a bound of bytes the
//! webhook answers 503 with `Retry-After` so the mail server tries again later. The bound is in
//! bytes, not mails: parsing is linear, so bytes are the work waiting (and the memory held), and
//! a burst of small mails is never refused for its count.
//!
//! One pool per process, built on first use: [`configure`] (called once at start-up) sets its
//! size; without it the defaults apply. It lives here rather than in `AppState` because only the
//! email channel uses it and it owns threads that must exist once.

use std::sync::OnceLock;

pub use crate::core::workers::Refused as Unparsed;

/// Default of `OMNIROUTE_EMAIL_PARSERS`: mails parsed at once, each on a thread of its own.
pub const DEFAULT_PARSERS: usize = 2;
/// Default of `OMNIROUTE_EMAIL_PARSE_QUEUE_MB`: MiB of mail waiting for a parser beyond which
/// another mail is refused with 503 (the webhook) or waits its turn (IMAP). A mail finding the
/// queue empty is always taken, whatever its size.
pub const DEFAULT_QUEUE_MB: usize = 64;
/// The `Retry-After` (seconds) of a webhook refused because every parser is busy.
pub const RETRY_AFTER_S: u64 = 5;

/// The parser threads, fed through a queue bounded in bytes.
pub struct ParsePool(crate::core::workers::WorkerPool);

impl ParsePool {
    /// Starts `parsers` threads (at least one) taking mails while at most `max_waiting` bytes wait.
    pub fn new(parsers: usize, max_waiting: usize) -> Self {
        Self(crate::core::workers::WorkerPool::new("email-parse", parsers, max_waiting, || {}))
    }

    /// Runs `f` (the parse of a mail of `bytes` bytes) on a parser thread and waits for it
    /// without holding a thread; refuses at once when the queue holds its limit.
    pub async fn run<T: Send + 'static>(
        &self,
        bytes: usize,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Unparsed> {
        self.0.run(bytes, f).await
    }
}

static POOL: OnceLock<ParsePool> = OnceLock::new();

/// Sizes the process's parse pool (`queue_mb`: MiB that may wait); only the first call, before
/// any mail, takes effect.
pub fn configure(parsers: usize, queue_mb: usize) {
    POOL.get_or_init(|| ParsePool::new(parsers, queue_mb.saturating_mul(1024 * 1024)));
}

/// The process's parse pool.
pub fn pool() -> &'static ParsePool {
    POOL.get_or_init(|| ParsePool::new(DEFAULT_PARSERS, DEFAULT_QUEUE_MB * 1024 * 1024))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    #[actix_rt::test]
    async fn a_full_queue_refuses_and_a_panic_leaves_the_pool_working() {
        // One parser; up to 100 bytes may wait.
        let pool: &'static ParsePool = Box::leak(Box::new(ParsePool::new(1, 100)));
        let (release, hold) = channel::<()>();
        let hold = Arc::new(Mutex::new(hold));
        let blocker = move || {
            let _ = hold.lock().unwrap().recv_timeout(Duration::from_secs(10));
            1
        };
        let running = actix_rt::spawn(pool.run(1000, blocker.clone()));
        // Once the thread has taken the first mail, the queue is empty: a mail of any size waits.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let queued = actix_rt::spawn(pool.run(90, blocker));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(pool.run(20, || 3).await, Err(Unparsed::Busy), "90 + 20 bytes would wait");
        release.send(()).unwrap();
        release.send(()).unwrap();
        assert_eq!(running.await.unwrap(), Ok(1));
        assert_eq!(queued.await.unwrap(), Ok(1));
        assert_eq!(pool.run(5, || -> i32 { panic!("a parser bug") }).await, Err(Unparsed::Crashed));
        assert_eq!(pool.run(5000, || 4).await, Ok(4));
    }
}
