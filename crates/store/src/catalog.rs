//! The catalog: which segments exist for each tenant, opened and indexed,
//! and which files could not be read.
//!
//! Embedded: the catalog is the directory tree
//! `tenants/<tenant>/segments/<id>.seg` itself, read at start. A segment
//! only appears there once complete (it is written under a temporary name
//! and renamed), so the tree is always consistent.
//!
//! A segment that fails its checks when opened (damaged header, footer or
//! index) is moved to `quarantine/tenants/<tenant>/` for inspection,
//! reported with its path and the offset of the damage, and everything
//! else is served. Damage inside a block is found when the block is read,
//! and reported with the query that read it.

use crate::segment::Segment;
use skald_model::TenantId;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
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
    /// Opens every segment under `tenants_dir`. A segment that fails to open
    /// is recorded as corrupt, logged and (if it is damaged, rather than
    /// unreadable for now or written by a newer version) moved under
    /// `quarantine_dir`; the rest are served.
    pub fn load(tenants_dir: &Path, quarantine_dir: &Path) -> std::io::Result<Catalog> {
        let mut cat = Catalog {
            next_segment_id: 1,
            ..Default::default()
        };
        let rd = match std::fs::read_dir(tenants_dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(cat),
            Err(e) => return Err(e),
        };
        for tenant_dir in rd {
            let tenant_dir = tenant_dir?;
            let Some(tenant) = tenant_dir
                .file_name()
                .to_str()
                .and_then(|n| TenantId::new(n).ok())
            else {
                continue;
            };
            let seg_dir = tenant_dir.path().join("segments");
            finish_compactions(&seg_dir)?;
            let Ok(files) = std::fs::read_dir(&seg_dir) else {
                continue;
            };
            let mut segs = Vec::new();
            for f in files {
                let path = f?.path();
                let Some(id) = segment_id(&path) else {
                    // Leftovers of a flush cut short: never acknowledged as
                    // flushed, so the WAL still holds their entries.
                    if path.extension().is_some_and(|e| e == "tmp") {
                        let _ = std::fs::remove_file(&path);
                    }
                    continue;
                };
                cat.next_segment_id = cat.next_segment_id.max(id + 1);
                match Segment::open(id, &path) {
                    Ok(s) => segs.push(Arc::new(s)),
                    Err(e) => {
                        let damaged = matches!(e, skald_chunk::ChunkError::CorruptSegment { .. });
                        let kept = damaged
                            .then(|| set_aside(&path, &quarantine_dir.join("tenants").join(tenant.as_str())))
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

    pub fn segment_path(tenants_dir: &Path, tenant: &TenantId, id: u64) -> PathBuf {
        tenants_dir
            .join(tenant.as_str())
            .join("segments")
            .join(format!("{id:012}.seg"))
    }
}

/// Completes or undoes compactions cut short: a `<id>.replaces` sidecar
/// lists the inputs of the segment `<id>.seg`. If that segment exists it
/// is complete and its inputs go; if not, the compaction never finished
/// and the inputs stay. Either way the sidecar goes.
fn finish_compactions(seg_dir: &Path) -> std::io::Result<()> {
    let files = match std::fs::read_dir(seg_dir) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for f in files {
        let path = f?.path();
        if path.extension().is_none_or(|e| e != "replaces") {
            continue;
        }
        if path.with_extension("seg").exists() {
            for line in std::fs::read_to_string(&path)?.lines() {
                if let Ok(id) = line.trim().parse::<u64>() {
                    let input = seg_dir.join(format!("{id:012}.seg"));
                    match std::fs::remove_file(&input) {
                        Ok(()) => {
                            tracing::info!(path = %input.display(), "removed a segment replaced by compaction")
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        std::fs::remove_file(&path)?;
    }
    Ok(())
}

/// Moves `path` into `dir` (same file system: a rename) under an unused
/// name; returns where it went.
fn set_aside(path: &Path, dir: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("segment");
    let target = (0..1000)
        .map(|i| match i {
            0 => dir.join(name),
            i => dir.join(format!("{name}.{i}")),
        })
        .find(|p| !p.exists())
        .ok_or_else(|| std::io::Error::other("quarantine directory is full"))?;
    std::fs::rename(path, &target)?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(target)
}

fn segment_id(path: &Path) -> Option<u64> {
    if path.extension()? != "seg" {
        return None;
    }
    path.file_stem()?.to_str()?.parse().ok()
}
