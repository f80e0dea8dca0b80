//! Where `skald serve` keeps its catalog (which segments exist, delete
//! requests, compaction leases): the segment store's own key tree (the
//! default), or PostgreSQL shared by several nodes (`--catalog
//! postgres://user@host:port/db`, `[catalog] url`, `SKALD_CATALOG`).
//!
//! The database is connected to, migrated and checked before the store
//! opens, so an unreachable server, refused credentials or a catalog
//! written by a newer Skald stop the server with one line before it
//! listens.

use anyhow::Context;
use serde::Deserialize;
use skald_server::AppState;
use skald_store::storage::SegmentStore;
use skald_store::{CatalogStore, LocalCatalog, PostgresCatalog, StoreConfig};
use std::sync::Arc;

/// `[catalog]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CatalogConfig {
    /// `postgres://user[:password]@host[:port]/db`; unset: the segment
    /// store's key tree. The password may also come from `PGPASSWORD`.
    pub url: Option<String>,
}

/// The catalog `config` names, connected and migrated.
pub fn catalog_store(
    config: &CatalogConfig,
    segments: &Arc<dyn SegmentStore>,
    store: &StoreConfig,
) -> anyhow::Result<Arc<dyn CatalogStore>> {
    let Some(url) = config.url.as_deref().filter(|u| !u.is_empty()) else {
        return Ok(Arc::new(LocalCatalog::new(
            segments.clone(),
            &store.data_dir,
        )));
    };
    if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
        anyhow::bail!("--catalog: {url:?} is not a postgres://user@host:port/db URL");
    }
    let catalog = PostgresCatalog::connect(url).context("--catalog")?;
    tracing::info!(catalog = %catalog.describe(), node = %catalog.node(), "catalog in PostgreSQL");
    Ok(Arc::new(catalog))
}

/// Keeps the delete requests of every node applied here: reads them from
/// the shared catalog every [`skald_store::CATALOG_REFRESH`].
pub fn follow_deletes(runtime: &tokio::runtime::Runtime, state: Arc<AppState>) {
    runtime.spawn(async move {
        let mut failing = false;
        loop {
            tokio::time::sleep(skald_store::CATALOG_REFRESH).await;
            let deletes = state.deletes.clone();
            let synced = tokio::task::spawn_blocking(move || deletes.sync()).await;
            match synced {
                Ok(Ok(())) => failing = false,
                Ok(Err(e)) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "could not read delete requests from the catalog");
                }
                _ => {}
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_url_is_the_local_catalog_and_other_urls_are_refused() {
        let store = StoreConfig::default();
        let segments: Arc<dyn SegmentStore> =
            Arc::new(skald_store::storage::MemorySegments::default());
        let local = catalog_store(&CatalogConfig::default(), &segments, &store).unwrap();
        assert!(!local.shared(), "{local:?}");
        let mysql = CatalogConfig {
            url: Some("mysql://db/skald".into()),
        };
        let err = catalog_store(&mysql, &segments, &store).unwrap_err();
        assert!(format!("{err:#}").contains("postgres://"), "{err:#}");
        assert!(toml::from_str::<CatalogConfig>("uri = \"x\"").is_err());
    }
}
