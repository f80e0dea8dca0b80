//! Where `skald serve` keeps its catalog (which segments exist, delete
//! requests, compaction leases, and API tokens when shared): the segment
//! store's own key tree (the default), or PostgreSQL shared by several
//! nodes (`--catalog postgres://user@host:port/db`, `[catalog] url`,
//! `SKALD_CATALOG`).
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
    let catalog = connect_postgres(url)?;
    tracing::info!(catalog = %catalog.describe(), node = %catalog.node(), "catalog in PostgreSQL");
    Ok(Arc::new(catalog))
}

/// The PostgreSQL catalog at `url`, connected and migrated (`skald serve`
/// and `skald token --catalog`).
pub fn connect_postgres(url: &str) -> anyhow::Result<PostgresCatalog> {
    if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
        anyhow::bail!("--catalog: {url:?} is not a postgres://user@host:port/db URL");
    }
    PostgresCatalog::connect(url).context("--catalog")
}

/// Keeps what other nodes change in the shared catalog in effect here:
/// reads the delete requests and the API tokens every
/// [`skald_store::CATALOG_REFRESH`].
pub fn follow_catalog(runtime: &tokio::runtime::Runtime, state: Arc<AppState>) {
    runtime.spawn(async move {
        let (mut deletes_failing, mut tokens_failing) = (false, false);
        loop {
            tokio::time::sleep(skald_store::CATALOG_REFRESH).await;
            let app = state.clone();
            let synced = tokio::task::spawn_blocking(move || {
                (app.deletes.sync(), app.auth.refresh_tokens())
            })
            .await;
            let Ok((deletes, tokens)) = synced else {
                continue;
            };
            match deletes {
                Ok(()) => deletes_failing = false,
                Err(e) if !deletes_failing => {
                    deletes_failing = true;
                    tracing::warn!(error = %e, "could not read delete requests from the catalog");
                }
                Err(_) => {}
            }
            match tokens {
                Ok(()) => tokens_failing = false,
                Err(e) if !tokens_failing => {
                    tokens_failing = true;
                    tracing::warn!(error = %e, "could not read tokens from the catalog; the last ones read stay in effect");
                }
                Err(_) => {}
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
