//! Threads of lower CPU priority never hold the state's lock.
//!
//! The server runs queries at lower priority than ingest (`query_nice`),
//! but every query starts with a snapshot under the state's read lock, and
//! every commit group takes its write lock. A low-priority thread
//! preempted while it holds the read lock would stall every push behind
//! it (measured: commits waiting up to 59 ms for the lock with 200 hostile
//! clients). So a thread marked low-priority ([`mark_this_thread`]) has the
//! locked part of its snapshots done by a helper thread started with the
//! store, at the priority of the thread that opened it, and waits for the
//! result.

use std::cell::Cell;
use std::sync::Mutex;
use std::sync::mpsc;

thread_local! {
    static MARKED: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling thread as one of lower priority (see the module).
pub fn mark_this_thread() {
    MARKED.with(|m| m.set(true));
}

pub(crate) fn is_marked() -> bool {
    MARKED.with(Cell::get)
}

type Job = Box<dyn FnOnce() + Send>;

/// A thread that runs jobs for low-priority threads; it ends when the
/// store (the sender) is dropped.
#[derive(Debug)]
pub(crate) struct Helper {
    jobs: Option<Mutex<mpsc::Sender<Job>>>,
}

impl Helper {
    pub(crate) fn start() -> Helper {
        let (tx, rx) = mpsc::channel::<Job>();
        let started = std::thread::Builder::new()
            .name("skald-snapshot".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            });
        Helper {
            // Without the thread, snapshots are taken where they are asked.
            jobs: started.ok().map(|_| Mutex::new(tx)),
        }
    }

    /// Runs `work` on the helper and returns its result; `None` if the
    /// helper is gone (the caller then does the work itself).
    pub(crate) fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let jobs = self.jobs.as_ref()?;
        let (reply, answer) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            let _ = reply.send(work());
        });
        jobs.lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job)
            .ok()?;
        answer.recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marked_thread_has_its_work_done_by_the_helper() {
        let helper = Helper::start();
        let caller = std::thread::current().id();
        let ran_on = helper.run(move || std::thread::current().id()).unwrap();
        assert_ne!(ran_on, caller);
        assert!(!is_marked());
        std::thread::spawn(|| {
            mark_this_thread();
            assert!(is_marked());
        })
        .join()
        .unwrap();
        assert!(!is_marked(), "only the thread that marked itself");
    }
}
