//! Where `skald run` stores lines: an embedded store (with Loki's HTTP API
//! served on a local port while it runs) or a remote Skald or Loki.

use super::{Captured, PipelineFile};
use crate::remote::{Remote, ServerArgs};
use anyhow::Context;
use skald_model::{Entry, Label, LabelSet, TenantId, Timestamp};
use skald_store::{Store, StreamBatch};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub enum Sink {
    Embedded(Embedded),
    Remote(Remote),
}

pub struct Embedded {
    store: Arc<Store>,
    tenant: TenantId,
    addr_file: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<std::thread::JoinHandle<()>>,
}

/// The file naming the local API of a running `skald run`.
pub fn addr_file(data_dir: &Path) -> PathBuf {
    data_dir.join("run.addr")
}

impl Sink {
    pub fn remote(args: &ServerArgs) -> anyhow::Result<Sink> {
        Ok(Sink::Remote(Remote::new(args)?))
    }

    pub fn embedded(data_dir: &Path, tenant: Option<&str>) -> anyhow::Result<Sink> {
        let addr_file = addr_file(data_dir);
        if let Ok(addr) = std::fs::read_to_string(&addr_file)
            && std::net::TcpStream::connect(addr.trim().trim_start_matches("http://")).is_ok()
        {
            anyhow::bail!(
                "another `skald run` uses {} (its API is at {}); give each pipeline run its own --data-dir",
                data_dir.display(),
                addr.trim()
            );
        }
        let config = skald_store::StoreConfig {
            data_dir: data_dir.to_path_buf(),
            ..Default::default()
        };
        let store = Arc::new(
            Store::open(config)
                .with_context(|| format!("opening the store in {}", data_dir.display()))?,
        );
        let tenant = TenantId::new(tenant.unwrap_or("fake"))
            .map_err(|e| anyhow::anyhow!("--tenant: {e}"))?;
        let (url, stop, server) = serve_local(store.clone())?;
        std::fs::write(&addr_file, &url)
            .with_context(|| format!("writing {}", addr_file.display()))?;
        Ok(Sink::Embedded(Embedded {
            store,
            tenant,
            addr_file,
            stop: Some(stop),
            server: Some(server),
        }))
    }

    /// Stores a batch of captured lines, grouped into streams.
    pub fn store(
        &mut self,
        pipeline: &str,
        file: &PipelineFile,
        lines: Vec<Captured>,
    ) -> anyhow::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut streams: BTreeMap<(String, &'static str, &'static str), Vec<Entry>> =
            BTreeMap::new();
        for c in lines {
            let level = c.detected.level.unwrap_or("unknown");
            streams
                .entry((c.component.clone(), c.stream, level))
                .or_default()
                .push(Entry::new(Timestamp(c.ts), c.line));
        }
        let mut batches = Vec::new();
        for ((component, stream, level), entries) in streams {
            let mut labels = vec![
                Label::new("pipeline", pipeline),
                Label::new("component", component.as_str()),
                Label::new("stream", stream),
                Label::new("level", level),
            ];
            if let Some(comp) = file.components.get(&component) {
                for (k, v) in &comp.labels {
                    if !["pipeline", "component", "stream", "level"].contains(&k.as_str()) {
                        labels.push(Label::new(k.as_str(), v.as_str()));
                    }
                }
            }
            let labels = LabelSet::new(labels)
                .map_err(|e| anyhow::anyhow!("labels of component {component}: {e}"))?;
            batches.push(StreamBatch { labels, entries });
        }
        match self {
            Sink::Embedded(e) => {
                let outcome = e
                    .store
                    .push(&e.tenant, batches)
                    .context("storing captured lines")?;
                for r in outcome.rejected {
                    eprintln!(
                        "skald: {} entries of {} not stored: {}",
                        r.entries, r.stream, r.reason
                    );
                }
            }
            Sink::Remote(remote) => {
                let streams: Vec<serde_json::Value> = batches
                    .iter()
                    .map(|b| {
                        let labels: serde_json::Map<String, serde_json::Value> = b
                            .labels
                            .labels()
                            .iter()
                            .map(|l| (l.name.clone(), l.value.clone().into()))
                            .collect();
                        let values: Vec<serde_json::Value> = b
                            .entries
                            .iter()
                            .map(|e| serde_json::json!([e.ts.0.to_string(), e.line]))
                            .collect();
                        serde_json::json!({"stream": labels, "values": values})
                    })
                    .collect();
                let body = serde_json::json!({ "streams": streams });
                remote.post_json("/loki/api/v1/push", body.to_string().into_bytes())?;
            }
        }
        Ok(())
    }

    pub fn close(&mut self) -> anyhow::Result<()> {
        if let Sink::Embedded(e) = self {
            let _ = std::fs::remove_file(&e.addr_file);
            if let Some(stop) = e.stop.take() {
                let _ = stop.send(());
            }
            if let Some(server) = e.server.take() {
                let _ = server.join();
            }
            e.store.close().context("closing the store")?;
        }
        Ok(())
    }
}

/// Serves Loki's HTTP API over `store` on 127.0.0.1 at a free port, on its
/// own thread, until `stop` fires.
pub fn serve_local(
    store: Arc<Store>,
) -> anyhow::Result<(
    String,
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the local API")?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .context("binding the local API")?;
    let url = format!("http://{}", listener.local_addr()?);
    let state = crate::serve::app_state(
        store,
        Default::default(),
        Default::default(),
        Default::default(),
    )?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("skald-local-api".into())
        .spawn(move || {
            runtime.block_on(async move {
                let _ = axum::serve(listener, skald_server::app(state))
                    .with_graceful_shutdown(async move {
                        let _ = stop_rx.await;
                    })
                    .await;
            });
        })
        .context("starting the local API")?;
    Ok((url, stop_tx, thread))
}
