//! The delay before an MCP server is started again: exponential, from 0.5 s doubling up to
//! 30 s, back to the start once a server has stayed up for [`STABLE_AFTER`].

use std::time::Duration;

/// A server that stays up this long is healthy again: its next restart waits the first delay.
pub const STABLE_AFTER: Duration = Duration::from_secs(60);

/// Successive restart delays: `first`, doubled each time, at most `max`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Default for Backoff {
    /// 0.5 s doubling up to 30 s.
    fn default() -> Self {
        Self::new(Duration::from_millis(500), Duration::from_secs(30))
    }
}

impl Backoff {
    /// Delays from `first` doubling up to `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Self { first, max, next: first.min(max) }
    }

    /// The delay to wait now; the following one is twice as long, up to the maximum.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        delay
    }

    /// Start again from the first delay (the server stayed up).
    pub fn reset(&mut self) {
        self.next = self.first.min(self.max);
    }
}
