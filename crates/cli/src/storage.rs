//! Where `skald serve` keeps its segments: the data directory (the
//! default) or an S3 bucket (`--storage s3://bucket/prefix`, `[storage]`,
//! `SKALD_STORAGE`). The WAL and the head stay in the data directory
//! either way.
//!
//! A bucket is checked before the store opens (list, write, read back,
//! delete a small object), so an unreachable bucket or bad credentials
//! stop the server with one line before it accepts a request.

use anyhow::Context;
use serde::Deserialize;
use skald_store::StoreConfig;
use skald_store::storage::{LocalDir, ObjectSegments, ObjectStoreConfig, SegmentStore};
use std::sync::Arc;

/// `[storage]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `s3://bucket[/prefix]`; unset: segments in the data directory.
    pub url: Option<String>,
    /// An S3-compatible server (`http://127.0.0.1:9000`); unset:
    /// `AWS_ENDPOINT_URL`, else AWS.
    pub s3_endpoint: Option<String>,
    /// Unset: `AWS_REGION`, `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// Bytes of segment ranges kept in memory (default 256 MiB).
    pub cache_bytes: Option<u64>,
}

/// The segment store `storage` names, checked.
pub fn segment_store(
    storage: &StorageConfig,
    store: &StoreConfig,
) -> anyhow::Result<Arc<dyn SegmentStore>> {
    let Some(url) = storage.url.as_deref().filter(|u| !u.is_empty()) else {
        return Ok(Arc::new(LocalDir::new(&store.data_dir)));
    };
    let mut config = ObjectStoreConfig::new(url);
    config.endpoint = storage.s3_endpoint.clone();
    config.region = storage.region.clone();
    if let Some(bytes) = storage.cache_bytes {
        config.cache_bytes = bytes;
    }
    let objects = ObjectSegments::open(&config).context("--storage")?;
    objects
        .check()
        .with_context(|| format!("storage {url} is not usable"))?;
    tracing::info!(storage = %objects.describe(), "segments in object storage");
    Ok(Arc::new(objects))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_url_is_the_data_directory_and_bad_urls_are_refused() {
        let store = StoreConfig::default();
        let local = segment_store(&StorageConfig::default(), &store).unwrap();
        assert!(local.describe().starts_with("directory"), "{local:?}");
        let bad = StorageConfig {
            url: Some("bucket/prefix".into()),
            ..Default::default()
        };
        let err = segment_store(&bad, &store).unwrap_err();
        assert!(format!("{err:#}").contains("s3://bucket"), "{err:#}");
        assert!(toml::from_str::<StorageConfig>("bucket = \"x\"").is_err());
    }
}
