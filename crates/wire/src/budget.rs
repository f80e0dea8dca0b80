//! A byte budget for decompression shared by every push in flight.
//!
//! Each push is bounded on its own (`DecodeLimits::max_decompressed_bytes`),
//! but a hundred concurrent compressed bombs of 256 MiB each would still
//! take the server's memory. The budget bounds them together: a decoder
//! reserves bytes before it inflates them (in steps of [`STEP`], so a small
//! push reserves little) and gives them back when the push is decoded. A
//! push that finds the budget spent waits up to the given time for others
//! to finish, then fails with [`WireError::Busy`] (HTTP 503, gRPC
//! UNAVAILABLE: try again), so the excess waits briefly rather than piling
//! up.
//!
//! Synchronous: decoders run on blocking threads, and so does the wait.

use crate::WireError;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Granularity of reservations while inflating.
pub const STEP: usize = 1 << 20;

/// Bytes of decompressed output all pushes may hold at once.
#[derive(Debug)]
pub struct DecompressBudget {
    limit: usize,
    used: Mutex<usize>,
    freed: Condvar,
    /// How long a push waits for room.
    wait: Duration,
}

impl DecompressBudget {
    pub fn new(limit: usize, wait: Duration) -> Arc<DecompressBudget> {
        Arc::new(DecompressBudget {
            limit,
            used: Mutex::new(0),
            freed: Condvar::new(),
            wait,
        })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes reserved now.
    pub fn used(&self) -> usize {
        *self.used.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An empty reservation to grow as output is produced.
    pub fn start(self: &Arc<Self>) -> Reservation {
        Reservation {
            budget: Some(self.clone()),
            held: 0,
        }
    }

    fn take(&self, bytes: usize) -> Result<(), WireError> {
        // One push may always reserve up to the whole budget, never more,
        // so it cannot wait for room that can never come.
        let bytes = bytes.min(self.limit);
        let deadline = Instant::now() + self.wait;
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        while *used + bytes > self.limit {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(WireError::Busy { limit: self.limit });
            }
            used = self
                .freed
                .wait_timeout(used, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *used += bytes;
        Ok(())
    }

    /// As `take`, without waiting: whether the bytes were reserved.
    fn try_take(&self, bytes: usize) -> bool {
        let bytes = bytes.min(self.limit);
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if *used + bytes > self.limit {
            return false;
        }
        *used += bytes;
        true
    }

    /// How long a push waits for room.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// The error of a push that found no room in time.
    pub fn busy(&self) -> WireError {
        WireError::Busy { limit: self.limit }
    }

    fn give_back(&self, bytes: usize) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        *used = used.saturating_sub(bytes.min(self.limit));
        drop(used);
        self.freed.notify_all();
    }
}

/// Bytes one push holds of a [`DecompressBudget`]; given back when dropped.
/// The default reservation belongs to no budget and never waits.
#[derive(Debug, Default)]
pub struct Reservation {
    budget: Option<Arc<DecompressBudget>>,
    held: usize,
}

impl Reservation {
    /// Bytes reserved.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Makes sure at least `total` bytes are reserved, waiting for room.
    pub fn cover(&mut self, total: usize) -> Result<(), WireError> {
        let Some(budget) = &self.budget else {
            return Ok(());
        };
        if total <= self.held {
            return Ok(());
        }
        let more = total - self.held;
        budget.take(more)?;
        self.held += more;
        Ok(())
    }
}

impl Reservation {
    /// As [`Reservation::cover`] without waiting, for callers that cannot
    /// block (an async body): whether `total` bytes are reserved now.
    pub fn try_cover(&mut self, total: usize) -> bool {
        let Some(budget) = &self.budget else {
            return true;
        };
        if total <= self.held {
            return true;
        }
        let more = total - self.held;
        if !budget.try_take(more) {
            return false;
        }
        self.held += more;
        true
    }

    /// Gives back everything held (the bytes it covered are gone); the
    /// reservation can grow again.
    pub fn release(&mut self) {
        if let Some(b) = &self.budget {
            b.give_back(self.held);
        }
        self.held = 0;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.give_back(self.held);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_the_budget_and_give_it_back() {
        let budget = DecompressBudget::new(10 * STEP, Duration::ZERO);
        let mut a = budget.start();
        a.cover(6 * STEP).unwrap();
        let mut b = budget.start();
        let err = b.cover(6 * STEP).unwrap_err();
        assert!(matches!(err, WireError::Busy { .. }), "{err:?}");
        assert!(err.to_string().contains(&(10 * STEP).to_string()), "{err}");
        b.cover(4 * STEP).unwrap();
        assert_eq!(budget.used(), 10 * STEP);
        drop(a);
        b.cover(8 * STEP).unwrap();
        let mut c = budget.start();
        assert!(!c.try_cover(3 * STEP), "only 2 steps are free");
        assert!(c.try_cover(2 * STEP));
        c.release();
        assert_eq!(c.held(), 0);
        assert_eq!(budget.used(), 8 * STEP);
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_waiting_push_gets_room_when_another_finishes() {
        let budget = DecompressBudget::new(4 * STEP, Duration::from_secs(60));
        let mut a = budget.start();
        a.cover(4 * STEP).unwrap();
        let waiter = {
            let budget = budget.clone();
            std::thread::spawn(move || {
                let mut b = budget.start();
                b.cover(2 * STEP).map(|()| b.held)
            })
        };
        drop(a);
        assert_eq!(waiter.join().unwrap().unwrap(), 2 * STEP);
    }
}
