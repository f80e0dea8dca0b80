//! Orphan objects of a shared segment store: segments stored but never
//! listed (their node stopped between the upload and the catalog's
//! transaction, or the catalog refused it and the delete failed), and
//! segments whose catalog rows were purged while their objects stayed
//! (the node that removed them stopped before deleting them).
//!
//! Nothing else deletes them, and nothing reads them. A retention pass
//! (one node per interval) lists the store's segment objects and the
//! catalog's rows, listed or removed: an object without a row is a
//! candidate, remembered with the time it was first seen so. It is deleted
//! only at a later pass at least `orphan_grace_secs` after, still without
//! a row: an upload whose publish is in flight gets its row within
//! seconds, and a segment removed from the catalog keeps its row for a
//! day (readers of other nodes are done by then), so neither is ever
//! taken for an orphan.

use crate::catalog::{TENANTS, is_segment_key};
use crate::{Shared, StoreError};
use std::time::{Duration, Instant};

/// One sweep; returns how many objects were deleted. Nothing to do for a
/// catalog that keeps no rows of its own (the local directory).
pub(crate) fn sweep(shared: &Shared) -> Result<usize, StoreError> {
    let Some(known) = shared.catalog.known_keys()? else {
        return Ok(0);
    };
    // Listed after the catalog's rows: an object stored and listed in
    // between has a row the next pass sees, before its grace is up.
    let objects = shared
        .segments
        .list(TENANTS)
        .map_err(|source| StoreError::Io {
            path: shared.segments.location(TENANTS),
            source,
        })?;
    let grace = Duration::from_secs(shared.config.orphan_grace_secs);
    let now = Instant::now();
    let mut seen = shared.orphans_seen.lock();
    let mut still = std::collections::HashMap::new();
    let mut deleted = 0;
    for object in objects {
        if !is_segment_key(&object.key) || known.contains(&object.key) {
            continue;
        }
        let first = seen.get(&object.key).copied().unwrap_or(now);
        if now.saturating_duration_since(first) < grace {
            still.insert(object.key, first);
            continue;
        }
        match shared.segments.delete(&object.key) {
            Ok(()) => {
                deleted += 1;
                tracing::info!(
                    object = %shared.segments.location(&object.key).display(),
                    bytes = object.size,
                    "deleted an orphan segment object (no catalog row since the last passes)"
                );
            }
            Err(e) => {
                tracing::warn!(object = %object.key, error = %e, "could not delete an orphan segment object");
                still.insert(object.key, first);
            }
        }
    }
    *seen = still;
    Ok(deleted)
}
