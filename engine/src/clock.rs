//! The one clock of the engine. Production reads the system clock; tests hold a manual clock and
//! move it forward, so 30-minute and 48-hour timers are tested without sleeping.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, DurationRound, Utc};

/// A source of "now", shared by every actor of one engine.
#[derive(Debug, Clone)]
pub enum Clock {
    /// The system clock.
    System,
    /// A clock that moves only when told to (tests).
    Manual(Arc<Mutex<DateTime<Utc>>>),
}

impl Clock {
    /// A manual clock starting at `start`.
    pub fn manual(start: DateTime<Utc>) -> Self {
        Clock::Manual(Arc::new(Mutex::new(micros(start))))
    }

    /// The current time, to the microsecond (what PostgreSQL stores).
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => micros(Utc::now()),
            // A poisoned lock only means a test panicked elsewhere; the time is still valid.
            Clock::Manual(t) => *t.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Moves a manual clock forward; no effect on the system clock.
    pub fn advance(&self, by: std::time::Duration) {
        if let Clock::Manual(t) = self {
            let mut t = t.lock().unwrap_or_else(|e| e.into_inner());
            *t += Duration::from_std(by).unwrap_or(Duration::zero());
        }
    }

    /// True for a manual clock: timers fire only when the clock is advanced.
    pub fn is_manual(&self) -> bool {
        matches!(self, Clock::Manual(_))
    }
}

fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::microseconds(1)).unwrap_or(t)
}
