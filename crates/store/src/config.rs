//! The store's configuration: where data lives and how ingest trades
//! latency, memory and durability.

use serde::{Deserialize, Serialize};
use skald_model::Limits;
use std::path::PathBuf;
use std::time::Duration;

/// When acknowledged entries reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncMode {
    /// Every push waits for an fsync of the WAL; concurrent pushes share one
    /// (group commit). A power loss loses nothing acknowledged.
    Always,
    /// Pushes are acknowledged once written to the OS; the WAL is fsynced
    /// every `fsync_interval_ms`. A crash of the process loses nothing; a
    /// power loss may lose that interval.
    Interval,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Directory holding the WAL and the segments.
    pub data_dir: PathBuf,
    pub fsync: FsyncMode,
    /// Interval between fsyncs in `interval` mode.
    pub fsync_interval_ms: u64,
    /// How far behind the newest entry of its stream an entry may be and
    /// still be accepted (Loki accepts half of `max_chunk_age`, one hour).
    pub out_of_order_window_secs: u64,
    /// Head size (raw bytes) that triggers a flush into segments.
    pub flush_bytes: usize,
    /// Head size at which pushes wait for a running flush: the bound on
    /// ingest memory.
    pub max_head_bytes: usize,
    /// Longest time an entry stays only in the head and WAL before a flush.
    pub max_chunk_age_secs: u64,
    /// Target raw size of a block in a segment.
    pub block_bytes: usize,
    /// zstd level for blocks.
    pub zstd_level: i32,
    /// Largest group of pushes committed with one fsync, in bytes.
    pub max_commit_group_bytes: usize,
    pub limits: Limits,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            data_dir: PathBuf::from("data"),
            fsync: FsyncMode::Always,
            fsync_interval_ms: 1000,
            out_of_order_window_secs: 3600,
            flush_bytes: 64 * 1024 * 1024,
            max_head_bytes: 160 * 1024 * 1024,
            max_chunk_age_secs: 600,
            block_bytes: 1024 * 1024,
            zstd_level: skald_chunk::DEFAULT_ZSTD_LEVEL,
            max_commit_group_bytes: 16 * 1024 * 1024,
            limits: Limits::default(),
        }
    }
}

impl StoreConfig {
    pub fn out_of_order_window(&self) -> i64 {
        (self.out_of_order_window_secs as i64).saturating_mul(1_000_000_000)
    }

    pub fn max_chunk_age(&self) -> Duration {
        Duration::from_secs(self.max_chunk_age_secs)
    }

    pub(crate) fn wal_dir(&self) -> PathBuf {
        self.data_dir.join("wal")
    }

    pub(crate) fn tenants_dir(&self) -> PathBuf {
        self.data_dir.join("tenants")
    }

    pub(crate) fn flushed_marker(&self) -> PathBuf {
        self.data_dir.join("wal-flushed")
    }
}
