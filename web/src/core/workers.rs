//! A few threads of their own for CPU-heavy work a request waits for (password hashes, email
//! parsing), so it never holds the blocking threads the database helper uses. Work waits in a
//! queue bounded by weight (one per hash, bytes per mail) without holding any thread; past the
//! bound it is refused at once, so a flood costs nothing but the refusal.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

/// Work to run and the weight it keeps counted as waiting until it starts.
struct Job {
    weight: usize,
    run: Box<dyn FnOnce() + Send>,
}

/// Why work did not run to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every thread is busy and the queue holds its bound: try again later.
    Busy,
    /// The work panicked (a bug), or no thread could start.
    Crashed,
}

/// A fixed set of threads fed through a queue bounded by weight.
pub struct WorkerPool {
    jobs: Sender<Job>,
    /// Weight queued and not yet started: added by [`WorkerPool::run`], taken off by the thread
    /// that starts the work.
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
}

impl WorkerPool {
    /// Starts `threads` threads (at least one) named `name-<i>`, each running `on_start` first,
    /// taking work while at most `max_waiting` weight waits. The threads end with the pool.
    pub fn new(name: &str, threads: usize, max_waiting: usize, on_start: fn()) -> Self {
        let (jobs, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let waiting = Arc::new(AtomicUsize::new(0));
        for i in 0..threads.max(1) {
            let (rx, waiting) = (Arc::clone(&rx), Arc::clone(&waiting));
            let spawned = std::thread::Builder::new().name(format!("{name}-{i}")).spawn(move || {
                on_start();
                work(&rx, &waiting)
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, thread = name, "cannot start a worker thread");
            }
        }
        Self { jobs, waiting, max_waiting }
    }

    /// Runs `f` (of this `weight`) on a worker thread and waits for it without holding a thread;
    /// refused at once when the queue holds its bound. Work finding the queue empty is always
    /// taken, whatever its weight.
    pub async fn run<T: Send + 'static>(
        &self,
        weight: usize,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Refused> {
        let before = self.waiting.fetch_add(weight, Ordering::SeqCst);
        if before > 0 && before + weight > self.max_waiting {
            self.waiting.fetch_sub(weight, Ordering::SeqCst);
            return Err(Refused::Busy);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let run = Box::new(move || {
            // The waiting request may be gone (client disconnected): nothing to tell it then.
            let _ = tx.send(f());
        });
        if self.jobs.send(Job { weight, run }).is_err() {
            self.waiting.fetch_sub(weight, Ordering::SeqCst);
            return Err(Refused::Crashed);
        }
        rx.await.map_err(|_| Refused::Crashed)
    }
}

/// A worker thread: takes work until the pool is gone. A panicking job is caught so the thread
/// keeps serving; its waiter sees its result channel dropped.
fn work(rx: &Mutex<Receiver<Job>>, waiting: &AtomicUsize) {
    loop {
        // The lock is held only while waiting for the next job, never while running one.
        let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(job) = next else { return };
        waiting.fetch_sub(job.weight, Ordering::SeqCst);
        if std::panic::catch_unwind(AssertUnwindSafe(job.run)).is_err() {
            tracing::error!("a worker's job panicked");
        }
    }
}
