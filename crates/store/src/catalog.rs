//! The catalog: which segments exist for each tenant, opened and indexed,
//! and which files could not be read.
//!
//! Embedded: the catalog is the key tree of the segment store itself,
//! `tenants/<tenant>/segments/<id>.seg` (a directory tree under the data
//! directory by default, see [`crate::storage`]), listed at start. A
//! segment only appears there once complete (a local file is written
//! under a temporary name and renamed; an object upload is atomic), so the
//! tree is always consistent.
//!
//! The seam for a shared catalog (several nodes over one object store) is
//! here: [`Catalog::load`], [`Catalog::publish`], [`Catalog::replace`] and
//! [`Catalog::remove`] are the operations a catalog trait would have, and
//! they are the only places that change which segments exist. Today they
//! change the in-memory list, and the `.replaces` sidecars in the segment
//! store make a replacement atomic across a crash (see
//! [`crate::segment::NewSegment::replace`]).
//!
//! A segment that fails its checks when opened (damaged header, footer or
//! index) is moved to `quarantine/tenants/<tenant>/` for inspection,
//! reported with its path and the offset of the damage, and everything
//! else is served. Damage inside a block is found when the block is read,
//! and reported with the query that read it.

use crate::segment::Segment;
use crate::storage::SegmentStore;
use skald_model::TenantId;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

/// A file the store could not read, kept to be reported with query results.
#[derive(Debug, Clone)]
pub struct CorruptFile {
    pub path: PathBuf,
    pub error: String,
}

#[derive(Debug, Default)]
pub struct Catalog {
    pub segments: HashMap<TenantId, Vec<Arc<Segment>>>,
    pub corrupt: Vec<CorruptFile>,
    pub next_segment_id: u64,
}

impl Catalog {
    /// Opens every segment in `store`. A segment that fails to open is
    /// recorded as corrupt, logged and (if it is damaged, rather than
    /// unreadable for now or written by a newer version) moved under
    /// `quarantine/`; the rest are served.
    pub fn load(store: &dyn SegmentStore) -> std::io::Result<Catalog> {
        let mut cat = Catalog {
            next_segment_id: 1,
            ..Default::default()
        };
        let mut by_tenant: HashMap<TenantId, Vec<(String, Key)>> = HashMap::new();
        for listed in store.list(TENANTS)? {
            if let Some((tenant, kind)) = parse_key(&listed.key) {
                by_tenant
                    .entry(tenant)
                    .or_default()
                    .push((listed.key, kind));
            }
        }
        for (tenant, mut keys) in by_tenant {
            finish_compactions(store, &mut keys)?;
            let mut segs = Vec::new();
            for (key, kind) in keys {
                let id = match kind {
                    Key::Segment(id) => id,
                    Key::Temporary => {
                        // Leftovers of a flush cut short: never acknowledged
                        // as flushed, so the WAL still holds their entries.
                        let _ = store.delete(&key);
                        continue;
                    }
                    Key::Replaces(_) => continue,
                };
                cat.next_segment_id = cat.next_segment_id.max(id + 1);
                match Segment::open_in(id, store, &key) {
                    Ok(s) => segs.push(Arc::new(s)),
                    Err(e) => {
                        let path = store.location(&key);
                        let damaged = matches!(e, skald_chunk::ChunkError::CorruptSegment { .. });
                        let kept = damaged
                            .then(|| set_aside(store, &key, &tenant))
                            .and_then(|r| {
                                r.inspect_err(|q| tracing::error!(path = %path.display(), error = %q, "could not move a corrupt segment to the quarantine"))
                                    .ok()
                            });
                        tracing::error!(path = %path.display(), error = %e, quarantined = ?kept, "segment is corrupt; serving everything else");
                        cat.corrupt.push(CorruptFile {
                            path: kept.unwrap_or(path),
                            error: e.to_string(),
                        });
                    }
                }
            }
            segs.sort_by_key(|s| s.id);
            cat.segments.insert(tenant, segs);
        }
        Ok(cat)
    }

    /// Takes the next segment id.
    pub fn allocate_id(&mut self) -> u64 {
        let id = self.next_segment_id;
        self.next_segment_id += 1;
        id
    }

    /// Lists a new segment of `tenant`.
    pub fn publish(&mut self, tenant: &TenantId, segment: Arc<Segment>) {
        self.segments
            .entry(tenant.clone())
            .or_default()
            .push(segment);
    }

    /// Replaces `inputs` by `output` in one step: a reader sees either,
    /// never both or neither.
    pub fn replace(&mut self, tenant: &TenantId, inputs: &[Arc<Segment>], output: Arc<Segment>) {
        let segs = self.segments.entry(tenant.clone()).or_default();
        segs.retain(|s| !inputs.iter().any(|i| i.id == s.id));
        segs.push(output);
        segs.sort_by_key(|s| s.id);
    }

    /// Stops listing segment `id` of `tenant`.
    pub fn remove(&mut self, tenant: &TenantId, id: u64) {
        if let Some(segs) = self.segments.get_mut(tenant) {
            segs.retain(|s| s.id != id);
        }
    }
}

/// Where every tenant's keys start.
const TENANTS: &str = "tenants/";

/// The key of segment `id` of `tenant`.
pub(crate) fn segment_key(tenant: &TenantId, id: u64) -> String {
    format!("{TENANTS}{}/segments/{id:012}.seg", tenant.as_str())
}

/// The key of the sidecar listing the segments that segment `id`
/// replaces.
pub(crate) fn replaces_key(tenant: &TenantId, id: u64) -> String {
    format!("{TENANTS}{}/segments/{id:012}.replaces", tenant.as_str())
}

/// What a key under `tenants/` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Segment(u64),
    Replaces(u64),
    /// A `.tmp` file left by a write cut short.
    Temporary,
}

fn parse_key(key: &str) -> Option<(TenantId, Key)> {
    let rest = key.strip_prefix(TENANTS)?;
    let (tenant, rest) = rest.split_once('/')?;
    let name = rest.strip_prefix("segments/")?;
    if name.contains('/') {
        return None;
    }
    let tenant = TenantId::new(tenant).ok()?;
    let kind = if name.ends_with(".tmp") {
        Key::Temporary
    } else if let Some(stem) = name.strip_suffix(".seg") {
        Key::Segment(stem.parse().ok()?)
    } else if let Some(stem) = name.strip_suffix(".replaces") {
        Key::Replaces(stem.parse().ok()?)
    } else {
        return None;
    };
    Some((tenant, kind))
}

/// Completes or undoes compactions cut short: a `<id>.replaces` sidecar
/// lists the inputs of the segment `<id>.seg`. If that segment exists it
/// is complete and its inputs go; if not, the compaction never finished
/// and the inputs stay. Either way the sidecar goes. `keys` (one
/// tenant's) loses what was deleted.
fn finish_compactions(
    store: &dyn SegmentStore,
    keys: &mut Vec<(String, Key)>,
) -> std::io::Result<()> {
    let segments: HashSet<u64> = keys
        .iter()
        .filter_map(|(_, k)| match k {
            Key::Segment(id) => Some(*id),
            _ => None,
        })
        .collect();
    let sidecars: Vec<(String, u64)> = keys
        .iter()
        .filter_map(|(key, k)| match k {
            Key::Replaces(id) => Some((key.clone(), *id)),
            _ => None,
        })
        .collect();
    let mut removed: HashSet<u64> = HashSet::new();
    for (sidecar, output) in sidecars {
        if segments.contains(&output) {
            let listing = store.get(&sidecar)?;
            for line in String::from_utf8_lossy(&listing).lines() {
                if let Ok(id) = line.trim().parse::<u64>() {
                    let input = sibling(&sidecar, &format!("{id:012}.seg"));
                    if segments.contains(&id) {
                        store.delete(&input)?;
                        tracing::info!(path = %store.location(&input).display(), "removed a segment replaced by compaction");
                        removed.insert(id);
                    }
                }
            }
        }
        store.delete(&sidecar)?;
        store.sync_deletes(&sidecar)?;
    }
    keys.retain(|(_, k)| match k {
        Key::Segment(id) => !removed.contains(id),
        Key::Replaces(_) => false,
        Key::Temporary => true,
    });
    Ok(())
}

/// `name` in the same directory as `key`.
fn sibling(key: &str, name: &str) -> String {
    match key.rfind('/') {
        Some(i) => format!("{}/{name}", &key[..i]),
        None => name.to_string(),
    }
}

/// Moves segment `key` of `tenant` under `quarantine/tenants/<tenant>/`
/// with an unused name; returns where it went.
fn set_aside(store: &dyn SegmentStore, key: &str, tenant: &TenantId) -> std::io::Result<PathBuf> {
    let dir = format!("quarantine/tenants/{}/", tenant.as_str());
    let name = key.rsplit('/').next().unwrap_or("segment");
    let taken: HashSet<String> = store.list(&dir)?.into_iter().map(|l| l.key).collect();
    let target = (0..1000)
        .map(|i| match i {
            0 => format!("{dir}{name}"),
            i => format!("{dir}{name}.{i}"),
        })
        .find(|k| !taken.contains(k))
        .ok_or_else(|| std::io::Error::other("quarantine directory is full"))?;
    store.rename(key, &target)?;
    Ok(store.location(&target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let t = TenantId::new("acme").unwrap();
        assert_eq!(
            segment_key(&t, 12),
            "tenants/acme/segments/000000000012.seg"
        );
        assert_eq!(
            parse_key(&segment_key(&t, 12)),
            Some((t.clone(), Key::Segment(12)))
        );
        assert_eq!(
            parse_key(&replaces_key(&t, 3)),
            Some((t.clone(), Key::Replaces(3)))
        );
        assert_eq!(
            parse_key("tenants/acme/segments/000000000012.seg.tmp"),
            Some((t.clone(), Key::Temporary))
        );
        assert_eq!(parse_key("tenants/acme/segments/x.seg"), None);
        assert_eq!(parse_key("tenants/acme/other/000000000012.seg"), None);
        assert_eq!(parse_key("quarantine/tenants/acme/segments/1.seg"), None);
        assert_eq!(
            sibling(
                "tenants/acme/segments/000000000012.replaces",
                "000000000001.seg"
            ),
            "tenants/acme/segments/000000000001.seg"
        );
    }
}
