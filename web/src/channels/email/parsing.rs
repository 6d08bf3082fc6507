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

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};

use tracing::error;

/// Default of `OMNIROUTE_EMAIL_PARSERS`: mails parsed at once, each on a thread of its own.
pub const DEFAULT_PARSERS: usize = 2;
/// Default of `OMNIROUTE_EMAIL_PARSE_QUEUE_MB`: MiB of mail waiting for a parser beyond which
/// another mail is refused with 503 (the webhook) or waits its turn (IMAP). A mail finding the
/// queue empty is always taken, whatever its size.
pub const DEFAULT_QUEUE_MB: usize = 64;
/// The `Retry-After` (seconds) of a webhook refused because every parser is busy.
pub const RETRY_AFTER_S: u64 = 5;

/// A parse to run and the bytes it keeps counted as waiting until it starts.
struct Job {
    bytes: usize,
    run: Box<dyn FnOnce() + Send>,
}

/// Why a parse did not run to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unparsed {
    /// Every parser is busy and the queue holds its limit: try again later.
    Busy,
    /// The parse panicked (a parser bug); the mail cannot be read.
    Crashed,
}

/// A fixed set of parser threads fed through a queue bounded in bytes.
pub struct ParsePool {
    jobs: Sender<Job>,
    /// Bytes of the mails queued and not yet started: added by [`ParsePool::run`], taken off by
    /// the parser thread that starts the mail.
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
}

impl ParsePool {
    /// Starts `parsers` threads (at least one) taking mails while at most `max_waiting` bytes wait.
    pub fn new(parsers: usize, max_waiting: usize) -> Self {
        let (jobs, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let waiting = Arc::new(AtomicUsize::new(0));
        for i in 0..parsers.max(1) {
            let (rx, waiting) = (Arc::clone(&rx), Arc::clone(&waiting));
            let spawned =
                std::thread::Builder::new().name(format!("email-parse-{i}")).spawn(move || work(&rx, &waiting));
            if let Err(e) = spawned {
                error!(error = %e, "cannot start an email parser thread");
            }
        }
        Self { jobs, waiting, max_waiting }
    }

    /// Runs `f` (the parse of a mail of `bytes` bytes) on a parser thread and waits for it
    /// without holding a thread; refuses at once when the queue holds its limit.
    pub async fn run<T: Send + 'static>(
        &self,
        bytes: usize,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Unparsed> {
        let before = self.waiting.fetch_add(bytes, Ordering::SeqCst);
        if before > 0 && before + bytes > self.max_waiting {
            self.waiting.fetch_sub(bytes, Ordering::SeqCst);
            return Err(Unparsed::Busy);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let run = Box::new(move || {
            // The waiting request may be gone (client disconnected): nothing to tell it then.
            let _ = tx.send(f());
        });
        if self.jobs.send(Job { bytes, run }).is_err() {
            // No parser thread could start (logged where it happened): as good as busy.
            self.waiting.fetch_sub(bytes, Ordering::SeqCst);
            return Err(Unparsed::Busy);
        }
        rx.await.map_err(|_| Unparsed::Crashed)
    }
}

/// A parser thread: takes jobs until the pool is gone. A panicking job is caught so the thread
/// keeps serving; its waiter sees its result channel dropped.
fn work(rx: &Mutex<Receiver<Job>>, waiting: &AtomicUsize) {
    loop {
        // The lock is held only while waiting for the next job, never while running one.
        let next = match rx.lock() {
            Ok(guard) => guard.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(job) = next else { return };
        waiting.fetch_sub(job.bytes, Ordering::SeqCst);
        if std::panic::catch_unwind(AssertUnwindSafe(job.run)).is_err() {
            error!("an email parse panicked");
        }
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
