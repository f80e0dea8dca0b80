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
//! A part of the budget ([`DecompressBudget::reserve`], an eighth) is kept
//! for small pushes: one whose reservation stays within [`SMALL_PUSH`]
//! (and that did not announce more, [`Reservation::expect`]) may use it,
//! a larger one may not. A push that grows past it while the rest is spent
//! is refused at once instead of waiting, so it does not sit on the
//! reserve. So bombs that keep the rest spent cannot make a well-behaved
//! client's ordinary batch wait or fail.
//!
//! Synchronous: decoders run on blocking threads, and so does the wait.

use crate::WireError;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Granularity of reservations while inflating.
pub const STEP: usize = 1 << 20;

/// A push whose reservation stays within this (its decompressed body and
/// the lines decoded from it: a batch of up to about 4 MiB) may use the
/// part of the budget kept for small pushes.
pub const SMALL_PUSH: usize = 8 * STEP;

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
            taken: 0,
            expected: 0,
        }
    }

    /// The part of the budget only small pushes may use.
    pub fn reserve(&self) -> usize {
        self.limit / 8
    }

    /// Up to where `used` may go for a push that holds `total` once this
    /// step is taken.
    fn ceiling(&self, total: usize) -> usize {
        if total <= SMALL_PUSH {
            self.limit
        } else {
            self.limit - self.reserve()
        }
    }

    /// Takes `bytes` (at most the ceiling) for a push that then holds
    /// `total`; returns what it took.
    fn take(&self, bytes: usize, total: usize, may_wait: bool) -> Result<usize, WireError> {
        // One push may always reserve up to what it may use of the
        // budget, never more, so it cannot wait for room that can never
        // come.
        let ceiling = self.ceiling(total);
        let bytes = bytes.min(ceiling);
        let deadline = Instant::now() + self.wait;
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        while *used + bytes > ceiling {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !may_wait {
                return Err(WireError::Busy { limit: self.limit });
            }
            used = self
                .freed
                .wait_timeout(used, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *used += bytes;
        Ok(bytes)
    }

    /// As `take`, without waiting: whether the bytes were reserved.
    fn try_take(&self, bytes: usize, total: usize) -> Option<usize> {
        let ceiling = self.ceiling(total);
        let bytes = bytes.min(ceiling);
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if *used + bytes > ceiling {
            return None;
        }
        *used += bytes;
        Some(bytes)
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
        *used = used.saturating_sub(bytes);
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
    /// What was taken of the budget for `held` (less when a push holds
    /// more than the budget allows one push).
    taken: usize,
    /// What the push announced it will hold (its Content-Length).
    expected: usize,
}

impl Reservation {
    /// Bytes reserved.
    pub fn held(&self) -> usize {
        self.held
    }

    /// The push announced it will hold `bytes`: past [`SMALL_PUSH`], it
    /// never uses the small pushes' reserve.
    pub fn expect(&mut self, bytes: usize) {
        self.expected = bytes;
    }

    /// The total to judge a reservation of `total` bytes by.
    fn judged(&self, total: usize) -> usize {
        total.max(self.expected)
    }

    /// Whether growing to `total` would move this push past the small
    /// pushes' reserve while it holds part of it: then it must not wait
    /// for room (see the module).
    pub fn must_not_wait(&self, total: usize) -> bool {
        let before = self.judged(self.held);
        self.held > 0 && before <= SMALL_PUSH && self.judged(total) > SMALL_PUSH
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
        let may_wait = !self.must_not_wait(total);
        self.taken += budget.take(more, self.judged(total), may_wait)?;
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
        let Some(taken) = budget.try_take(more, self.judged(total)) else {
            return false;
        };
        self.taken += taken;
        self.held += more;
        true
    }

    /// Gives back everything held (the bytes it covered are gone); the
    /// reservation can grow again.
    pub fn release(&mut self) {
        if let Some(b) = &self.budget {
            b.give_back(self.taken);
        }
        self.held = 0;
        self.taken = 0;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.give_back(self.taken);
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
    fn large_pushes_leave_the_reserve_to_small_ones() {
        let budget = DecompressBudget::new(64 * STEP, Duration::ZERO);
        assert_eq!(budget.reserve(), 8 * STEP);
        // Large pushes stop at 56 steps.
        let mut big = budget.start();
        big.cover(40 * STEP).unwrap();
        let mut big2 = budget.start();
        assert!(big2.cover(20 * STEP).is_err());
        big2.cover(16 * STEP).unwrap();
        assert_eq!(budget.used(), 56 * STEP);
        assert!(!big2.try_cover(17 * STEP));
        // Small ones still get the last 8.
        let mut small = budget.start();
        small.cover(7 * STEP).unwrap();
        let mut small2 = budget.start();
        assert!(small2.try_cover(STEP));
        assert_eq!(budget.used(), 64 * STEP);
        assert!(budget.start().cover(STEP).is_err(), "all spent");
        drop((big, big2, small, small2));
        assert_eq!(budget.used(), 0);
        // A push larger than a push may take holds at most that, and
        // gives back exactly what it took.
        let mut huge = budget.start();
        huge.cover(100 * STEP).unwrap();
        assert_eq!(budget.used(), 56 * STEP);
        let mut small = budget.start();
        small.cover(STEP).unwrap();
        drop(huge);
        assert_eq!(budget.used(), STEP);
        drop(small);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_push_growing_past_the_reserve_does_not_wait_on_it() {
        let budget = DecompressBudget::new(64 * STEP, Duration::from_secs(60));
        let mut big = budget.start();
        big.cover(56 * STEP).unwrap();
        // A push that began small holds part of the reserve: growing
        // past it with no room, it is refused at once, not in 60 s.
        let mut grows = budget.start();
        grows.cover(4 * STEP).unwrap();
        assert!(grows.must_not_wait(9 * STEP));
        let t = Instant::now();
        assert!(grows.cover(9 * STEP).is_err());
        assert!(t.elapsed() < Duration::from_secs(10));
        drop(grows);
        // One that announced a large size never touches the reserve.
        let mut announced = budget.start();
        announced.expect(60 * STEP);
        assert!(!announced.try_cover(STEP));
        let mut small = budget.start();
        assert!(small.try_cover(8 * STEP));
        drop((big, small));
        assert!(announced.try_cover(8 * STEP));
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
