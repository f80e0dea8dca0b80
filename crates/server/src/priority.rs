//! Queries yield the CPU to ingest.
//!
//! An acknowledged push is what a log server must never delay, and a
//! query is what a user can make as expensive as they like (a
//! `line_format` that builds megabyte lines, a regex over everything).
//! So query work runs on threads of lower scheduling priority than the
//! rest of the server: each admitted query gets a thread of its own whose
//! nice value is raised by `query_nice` (10 gives about a tenth of the
//! weight of a normal thread; the default, 0, turns it off: see
//! docs/reliability.md for why), and so do the threads of
//! the pool queries fan out on. While the machine has spare CPU this
//! changes nothing; when queries saturate it, the push path (the async
//! runtime, the blocking pool, the store's threads) still runs at once.
//!
//! A thread's priority can be lowered without privilege but not raised
//! back, which is why queries get threads of their own instead of
//! lowering a pooled one. A lowered thread never takes the store's state
//! lock itself (`skald_store::low_priority`): preempted while holding it,
//! it would stall every commit behind it.

use crate::service::ServiceError;

/// Lowers the calling thread's priority by `nice` (Linux: per thread).
/// Failure is harmless (the thread keeps its priority), so it is ignored.
pub fn lower_this_thread(nice: i32) {
    if nice <= 0 {
        return;
    }
    // Its snapshots' locking is done at the store's priority.
    skald_store::low_priority::mark_this_thread();
    #[cfg(target_os = "linux")]
    // SAFETY: plain system calls on the calling thread's own id.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        let now = libc::getpriority(libc::PRIO_PROCESS, tid);
        libc::setpriority(libc::PRIO_PROCESS, tid, (now + nice).min(19));
    }
}

/// Large allocations from the heap instead of fresh mappings (glibc).
///
/// By default glibc maps every allocation past a threshold that grows to
/// at most 32 MiB, and unmaps it when freed: a query that formats
/// megabyte lines then maps, faults in and unmaps memory for each, and
/// many at once hold the process's memory map lock so often that every
/// other thread (the push path included) waits on it. With a fixed
/// threshold of 8 MiB and free memory given back past 16 MiB per arena,
/// such memory is reused instead, and what stays unreturned is bounded
/// (measured: 40 clients formatting 1 MiB lines, a well-behaved push's
/// p50 166 ms without, 39 ms with). Call once, before other threads
/// start.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any
    // other thread allocates.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 8 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 16 << 20);
    }
}

/// Builds the pool queries fan out on (rayon's global pool), its threads
/// at the queries' priority. Later calls change nothing.
pub fn init_query_pool(nice: i32) {
    let _ = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("skald-query-{i}"))
        .start_handler(move |_| lower_this_thread(nice))
        .build_global();
}

/// Runs a query's blocking work on a thread of its own at the queries'
/// priority (see the module), inside the async runtime's context.
pub async fn on_query_thread<T: Send + 'static>(
    nice: i32,
    work: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    if nice <= 0 {
        return crate::blocking(work).await;
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let runtime = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("skald-query".into())
        .spawn(move || {
            let _context = runtime.enter();
            lower_this_thread(nice);
            let _ = tx.send(work());
        })
        .map_err(|e| ServiceError::unavailable(format!("cannot start a query thread: {e}")))?;
    rx.await
        .map_err(|_| ServiceError::internal("internal error: the query thread ended"))?
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn nice_of_this_thread() -> i32 {
        // SAFETY: as in `lower_this_thread`.
        unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::getpriority(libc::PRIO_PROCESS, tid)
        }
    }

    #[tokio::test]
    async fn query_work_runs_at_lower_priority_and_the_caller_keeps_its_own() {
        let before = nice_of_this_thread();
        let seen = on_query_thread(5, || Ok(nice_of_this_thread()))
            .await
            .unwrap();
        assert_eq!(seen, (before + 5).min(19));
        assert_eq!(nice_of_this_thread(), before);
        // Off: the blocking pool, untouched.
        let seen = on_query_thread(0, || Ok(nice_of_this_thread()))
            .await
            .unwrap();
        assert_eq!(seen, before);
    }

    #[tokio::test]
    async fn an_error_of_the_work_is_returned() {
        let r: Result<(), _> =
            on_query_thread(5, || Err(ServiceError::invalid("query", "bad"))).await;
        assert!(r.unwrap_err().to_string().contains("bad"));
    }
}
