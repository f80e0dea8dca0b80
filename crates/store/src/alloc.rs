//! How the process gives memory back: glibc's allocator settings for a
//! server whose threads allocate in bursts, and a trim after each flush.
//!
//! glibc gives every thread that allocates its own arena (up to eight per
//! core), and memory freed into an arena stays there for the next
//! allocation of a thread using that arena. Here push decoding (tokio
//! threads), the commit, flush, pattern and filter threads and queries
//! each fill arenas in turn, so a 2-core server measured 300–350 MB of RSS
//! for a 200 MB heap while ingesting (heaptrack, 1.5M bench lines). Two
//! arenas and a fixed mmap threshold (glibc raises it, up to 32 MiB, after
//! the first large free; large buffers then land in arenas and pin them)
//! brought the same run to about 240 MB at the same ingest rate; a trim
//! after each flush returns the pages the flushed head held.
//!
//! Not here: what holds memory (the head, bounded by `max_head_bytes`;
//! queries, bounded by `max_query_memory`).

/// Arenas glibc may use; `MALLOC_ARENA_MAX` in the environment wins.
const ARENAS: i32 = 2;
/// Allocations from this size up get their own mapping, unmapped on free.
const MMAP_THRESHOLD: i32 = 256 * 1024;

/// Applies the settings above, once, before the server's threads start.
/// A variable of glibc's own (`MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_`)
/// set in the environment is left to take effect instead.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes the allocator's parameters; called
        // before other threads allocate, and a failure (0) leaves them as
        // they were.
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            unsafe { libc::mallopt(libc::M_ARENA_MAX, ARENAS) };
        }
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
            unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
        }
    }
}

/// Returns free memory at the top of every arena to the kernel (after a
/// flush has dropped a head's worth of blocks).
pub(crate) fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes the arenas' locks itself and frees
        // only memory no allocation uses.
        unsafe { libc::malloc_trim(0) };
    }
}
