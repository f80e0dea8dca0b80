//! Stopping a query that nobody waits for any more, or that ran too long.
//!
//! A [`CancelToken`] is a shared flag plus an optional deadline. The server
//! makes one per query (its deadline is `query_timeout`), keeps a
//! [`CancelOnDrop`] guard in the request's future, so a client that goes
//! away (the future is dropped) flips the flag, and runs the query inside
//! [`CancelToken::scope`]. The engine checks the token between units of
//! work (a wave of chunks of a log query, each group of sources of a range
//! aggregation, each sub-range of a metric query) and stops with
//! [`QueryError::Cancelled`] or [`QueryError::Timeout`].
//!
//! Why a scope rather than a field of every query struct: the token must
//! reach code several calls and a rayon fan-out below the entry points;
//! the scope puts it on the calling thread, and the engine takes it from
//! there once (`CancelToken::current`) before fanning out, handing the
//! clone to its workers explicitly.
//!
//! Not here: what a client is told (the server maps the errors to 503 /
//! DEADLINE_EXCEEDED and, for a gone client, to nothing at all).

use crate::QueryError;
use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A query's cancellation flag and deadline; cheap to clone. The default
/// token never cancels.
#[derive(Debug, Clone, Default)]
pub struct CancelToken {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    cancelled: AtomicBool,
    /// When the query started and how long it may run.
    deadline: Option<(Instant, Duration)>,
}

thread_local! {
    static CURRENT: RefCell<CancelToken> = RefCell::new(CancelToken::default());
}

impl CancelToken {
    /// A token that times out `timeout` from now (`None`: never).
    pub fn new(timeout: Option<Duration>) -> CancelToken {
        CancelToken {
            inner: Some(Arc::new(Inner {
                cancelled: AtomicBool::new(false),
                deadline: timeout.map(|t| (Instant::now(), t)),
            })),
        }
    }

    /// Asks the query to stop at its next check.
    pub fn cancel(&self) {
        if let Some(i) = &self.inner {
            i.cancelled.store(true, Ordering::Relaxed);
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|i| i.cancelled.load(Ordering::Relaxed))
    }

    /// Ok while the query may go on.
    pub fn check(&self) -> Result<(), QueryError> {
        let Some(i) = &self.inner else {
            return Ok(());
        };
        if i.cancelled.load(Ordering::Relaxed) {
            return Err(QueryError::Cancelled);
        }
        if let Some((started, limit)) = i.deadline
            && started.elapsed() >= limit
        {
            return Err(QueryError::Timeout(format!(
                "query timed out after {limit:?} (query_timeout); narrow the time range, the stream selector or the filters"
            )));
        }
        Ok(())
    }

    /// A guard that cancels the token when dropped, unless disarmed: kept
    /// in a request's future, it stops the query when the client goes.
    pub fn guard(&self) -> CancelOnDrop {
        CancelOnDrop {
            token: Some(self.clone()),
        }
    }

    /// Runs `f` with this token as the current one on this thread (what
    /// the engine's checks see).
    pub fn scope<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Restore(Option<CancelToken>);
        impl Drop for Restore {
            fn drop(&mut self) {
                if let Some(t) = self.0.take() {
                    CURRENT.with(|c| *c.borrow_mut() = t);
                }
            }
        }
        let previous = CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), self.clone()));
        let _restore = Restore(Some(previous));
        f()
    }

    /// The token of the enclosing [`CancelToken::scope`] on this thread
    /// (one that never cancels outside any).
    pub(crate) fn current() -> CancelToken {
        CURRENT.with(|c| c.borrow().clone())
    }
}

/// Cancels its token when dropped; see [`CancelToken::guard`].
#[derive(Debug)]
pub struct CancelOnDrop {
    token: Option<CancelToken>,
}

impl CancelOnDrop {
    /// The query finished: dropping the guard no longer cancels.
    pub fn disarm(mut self) {
        self.token = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(t) = self.token.take() {
            t.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_guard_cancels_a_disarmed_one_does_not() {
        let t = CancelToken::new(None);
        t.guard().disarm();
        assert!(t.check().is_ok());
        drop(t.guard());
        assert!(matches!(t.check(), Err(QueryError::Cancelled)));
    }

    #[test]
    fn a_deadline_passed_is_a_timeout_naming_the_setting() {
        let t = CancelToken::new(Some(Duration::ZERO));
        let err = t.check().unwrap_err();
        assert!(matches!(err, QueryError::Timeout(_)));
        assert!(err.to_string().contains("query_timeout"), "{err}");
        assert!(CancelToken::default().check().is_ok());
    }

    #[test]
    fn scope_sets_and_restores_the_current_token() {
        let t = CancelToken::new(None);
        t.cancel();
        assert!(CancelToken::current().check().is_ok());
        t.scope(|| assert!(CancelToken::current().is_cancelled()));
        assert!(!CancelToken::current().is_cancelled());
    }
}
