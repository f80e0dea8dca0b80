//! Several `skald serve` processes over one bucket and one PostgreSQL
//! catalog, each doing part of the work (`--target`, as Loki's `-target`):
//!
//! - `ingest`: takes pushes (WAL and head on its own disk), flushes
//!   segments to the bucket and lists them in the catalog, registers in
//!   the catalog (`skald_nodes`) with a heartbeat every
//!   [`HEARTBEAT`], and answers the internal heads endpoint;
//! - `query`: refuses pushes; answers every read from the catalog and the
//!   bucket plus the registered ingest nodes' heads ([`HttpPeers`]);
//! - `compact`: refuses pushes; compacts and applies retention (a lease
//!   per tenant in the catalog keeps compactors apart);
//! - `all` (the default): everything, alone or beside others.
//!
//! Every node serves the whole API; a load balancer may send any read to
//! any node that queries, and pushes to the ingest nodes. How an answer
//! stays complete is in `skald_store::cluster`.

use anyhow::Context;
use clap::ValueEnum;
use skald_model::{Entry, LabelSet, Matcher, TenantId, Timestamp};
use skald_store::cluster::{PeerAnswer, PeerHeads};
use skald_store::{CatalogStore, NodeRole, Store, TailFeed};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How often an ingest node tells the catalog it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(2);

/// How long a query node waits for an ingest node's head.
const PEER_TIMEOUT: Duration = Duration::from_secs(3);

/// How often a live tail looks for ingest nodes it does not follow yet
/// (new ones, or one whose connection ended).
const FOLLOW_REFRESH: Duration = Duration::from_secs(2);

/// The longest line of an ingest node's tail endpoint taken (its queue is
/// bounded by `tail_queue_bytes`, far less).
const MAX_TAIL_LINE: usize = 256 << 20;

/// Heartbeats missed after which an ingest node is not asked any more
/// (each query would otherwise wait up to [`PEER_TIMEOUT`] for it): it is
/// reported as missing at once, until it beats again or is forgotten
/// (`--forget-node-after`).
const SILENT_AFTER: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Target {
    All,
    Ingest,
    Query,
    Compact,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::All => "all",
            Target::Ingest => "ingest",
            Target::Query => "query",
            Target::Compact => "compact",
        }
    }

    pub fn role(self) -> NodeRole {
        NodeRole {
            ingest: matches!(self, Target::All | Target::Ingest),
            compact: matches!(self, Target::All | Target::Compact),
        }
    }

    fn queries(self) -> bool {
        matches!(self, Target::All | Target::Query)
    }
}

/// This node's part in a cluster, once the store is open.
pub struct Node {
    target: Target,
    address: String,
    catalog: Arc<dyn CatalogStore>,
}

/// Joins the cluster the store's catalog is shared with: registers an
/// ingest node (and keeps its heartbeat), and makes a query node ask the
/// ingest nodes' heads. Nothing for a store with its own catalog.
pub fn join(
    runtime: &tokio::runtime::Runtime,
    store: &Arc<Store>,
    args: &crate::serve::ServeArgs,
    tls: bool,
) -> anyhow::Result<Option<Node>> {
    let (target, http_addr) = (args.target, args.http_addr);
    let (advertise, token) = (args.advertise_url.clone(), args.cluster_token.clone());
    let forget_after = Duration::from_secs(args.forget_node_after);
    let catalog = store.catalog().clone();
    if !catalog.shared() {
        if target != Target::All {
            anyhow::bail!(
                "--target {} needs a catalog shared by the nodes: --catalog postgres://... (and --storage s3://...)",
                target.name()
            );
        }
        return Ok(None);
    }
    let address = match advertise {
        Some(a) => a.trim_end_matches('/').to_string(),
        None if http_addr.ip().is_unspecified() && target.role().ingest => anyhow::bail!(
            "--http-addr {http_addr} is not an address other nodes can reach: pass --advertise-url http://<host>:{}",
            http_addr.port()
        ),
        None => format!("{}://{http_addr}", if tls { "https" } else { "http" }),
    };
    if target.role().ingest {
        catalog
            .register_node(&address, target.name())
            .context("registering in the catalog")?;
        let (catalog, address) = (catalog.clone(), address.clone());
        runtime.spawn(async move {
            let mut failing = false;
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                let (catalog, address) = (catalog.clone(), address.clone());
                let beat = tokio::task::spawn_blocking(move || {
                    catalog.register_node(&address, target.name())
                })
                .await;
                match beat {
                    Ok(Ok(())) => failing = false,
                    Ok(Err(e)) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "could not renew this node's registration");
                    }
                    _ => {}
                }
            }
        });
    }
    if target.queries() {
        let client = reqwest::Client::builder()
            .timeout(PEER_TIMEOUT)
            .connect_timeout(PEER_TIMEOUT)
            .build()
            .context("building the client for the ingest nodes")?;
        // Tails stay open: no overall timeout, keep-alive lines instead.
        let tail_client = reqwest::Client::builder()
            .connect_timeout(PEER_TIMEOUT)
            .build()
            .context("building the client for the ingest nodes")?;
        store.set_peers(Arc::new(HttpPeers {
            catalog: catalog.clone(),
            own: address.clone(),
            forget_after,
            client,
            tail_client,
            token,
            runtime: runtime.handle().clone(),
        }));
    }
    tracing::info!(target = target.name(), address = %address, "joined the cluster");
    Ok(Some(Node {
        target,
        address,
        catalog,
    }))
}

impl Node {
    /// Leaves the cluster after a clean stop (the head is flushed: query
    /// nodes need not ask for it any more).
    pub fn leave(&self) {
        if !self.target.role().ingest {
            return;
        }
        if let Err(e) = self.catalog.leave(&self.address) {
            tracing::warn!(error = %e, "could not remove this node from the catalog");
        }
    }
}

/// The ingest nodes' heads over their internal HTTP endpoints.
#[derive(Clone)]
struct HttpPeers {
    catalog: Arc<dyn CatalogStore>,
    /// This node's address (never asked: its head is read directly).
    own: String,
    /// Silence after which a node is removed from the catalog.
    forget_after: Duration,
    client: reqwest::Client,
    tail_client: reqwest::Client,
    /// Sent as a bearer token when set.
    token: Option<String>,
    runtime: tokio::runtime::Handle,
}

/// A stream selector for `matchers` (empty for none: every stream).
fn selector(matchers: &[Matcher]) -> String {
    if matchers.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = matchers.iter().map(Matcher::to_string).collect();
    format!("{{{}}}", parts.join(", "))
}

type HeadStreams = Vec<(LabelSet, Vec<Entry>)>;

impl HttpPeers {
    async fn ask(
        &self,
        address: &str,
        tenant: &TenantId,
        query: &str,
        (start, end): (i64, i64),
        bounds_only: bool,
    ) -> Result<HeadStreams, String> {
        let url = format!("{address}{}", skald_server::cluster::HEADS_PATH);
        let mut request = self
            .client
            .get(&url)
            .header("X-Scope-OrgID", tenant.as_str())
            .query(&[
                ("query", query),
                ("start", &start.to_string()),
                ("end", &end.to_string()),
                ("entries", if bounds_only { "bounds" } else { "all" }),
            ]);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text = format!("{text}: {s}");
                source = s.source();
            }
            format!("did not answer ({text})")
        })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("answer cut short ({e})"))?;
        if !status.is_success() {
            return Err(format!(
                "answered {status}: {}",
                String::from_utf8_lossy(&body).trim()
            ));
        }
        skald_server::cluster::decode(&body).map_err(|e| format!("answered nonsense ({e})"))
    }
}

impl PeerHeads for HttpPeers {
    fn fetch(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> PeerAnswer {
        self.gather(tenant, matchers, (start, end), false)
    }

    fn streams(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> PeerAnswer {
        self.gather(tenant, matchers, (start, end), true)
    }

    fn follow(&self, tenant: &TenantId, matchers: &[Matcher], feed: TailFeed) {
        let this = self.clone();
        let (tenant, query) = (tenant.clone(), selector(matchers));
        self.runtime
            .spawn(async move { this.follow_nodes(tenant, query, feed).await });
    }
}

impl HttpPeers {
    /// Follows every live ingest node but this one into `feed` until its
    /// tail ends: each node's tail endpoint on its own task, looked after
    /// every [`FOLLOW_REFRESH`] (nodes that joined, connections that
    /// ended). Entries a node makes durable while it is not followed (it
    /// restarted, or was unreachable) are not tailed; queries have them.
    async fn follow_nodes(self, tenant: TenantId, query: String, feed: TailFeed) {
        let mut running: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
        let mut first = true;
        while !feed.closed() {
            running.retain(|_, task| !task.is_finished());
            let catalog = self.catalog.clone();
            let listed = tokio::task::spawn_blocking(move || catalog.ingest_nodes()).await;
            let nodes: Vec<String> = match listed {
                Ok(Ok(nodes)) => nodes
                    .into_iter()
                    .filter(|n| n.address != self.own && n.silent_secs < SILENT_AFTER.as_secs_f64())
                    .map(|n| n.address)
                    .collect(),
                _ => Vec::new(),
            };
            let mut answers = Vec::new();
            for address in nodes {
                if running.contains_key(&address) {
                    continue;
                }
                let (answered, answer) = tokio::sync::oneshot::channel();
                let task = tokio::spawn(self.clone().follow_node(
                    address.clone(),
                    tenant.clone(),
                    query.clone(),
                    feed.clone(),
                    answered,
                ));
                running.insert(address, task);
                answers.push(answer);
            }
            if first {
                first = false;
                let deadline = tokio::time::Instant::now() + PEER_TIMEOUT;
                for answer in answers {
                    let _ = tokio::time::timeout_at(deadline, answer).await;
                }
                feed.ready();
            }
            tokio::time::sleep(FOLLOW_REFRESH).await;
        }
        for task in running.values() {
            task.abort();
        }
    }

    /// Forwards one node's tail endpoint into `feed`; `answered` once the
    /// node answered (its subscription exists from then on) or failed.
    async fn follow_node(
        self,
        address: String,
        tenant: TenantId,
        query: String,
        feed: TailFeed,
        answered: tokio::sync::oneshot::Sender<()>,
    ) {
        let url = format!("{address}{}", skald_server::cluster::TAIL_PATH);
        let mut request = self
            .tail_client
            .get(&url)
            .header("X-Scope-OrgID", tenant.as_str())
            .query(&[("query", query.as_str())]);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let sent = tokio::time::timeout(PEER_TIMEOUT, request.send()).await;
        let _ = answered.send(());
        let mut response = match sent {
            Ok(Ok(r)) if r.status().is_success() => r,
            Ok(Ok(r)) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                tracing::warn!(node = %address, %status, body = %body.trim(), "an ingest node refused to be followed by a live tail");
                return;
            }
            Ok(Err(e)) => {
                tracing::debug!(node = %address, error = %e, "could not follow an ingest node");
                return;
            }
            Err(_) => return,
        };
        let quiet = skald_server::cluster::TAIL_KEEPALIVE * 3;
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let chunk = match tokio::time::timeout(quiet, response.chunk()).await {
                Ok(Ok(Some(chunk))) => chunk,
                _ => return,
            };
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let (streams, dropped) = match skald_server::cluster::decode_tail(&line) {
                    Ok(decoded) => decoded,
                    Err(e) => {
                        tracing::warn!(node = %address, error = %e, "an ingest node's tail answered nonsense");
                        return;
                    }
                };
                for (labels, entries) in streams {
                    if !feed.offer(labels, &entries) {
                        return;
                    }
                }
                for (labels, first_ts, count) in dropped {
                    if !feed.dropped(labels, first_ts, count) {
                        return;
                    }
                }
            }
            if feed.closed() || pending.len() > MAX_TAIL_LINE {
                return;
            }
        }
    }
}

impl HttpPeers {
    /// Asks every registered ingest node but this one, in parallel.
    fn gather(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        (start, end): (Timestamp, Timestamp),
        bounds_only: bool,
    ) -> PeerAnswer {
        let mut answer = PeerAnswer::default();
        let nodes = match self.catalog.ingest_nodes() {
            Ok(nodes) => nodes,
            Err(e) => {
                answer
                    .unreachable
                    .push(("(catalog)".into(), format!("could not list them: {e}")));
                return answer;
            }
        };
        let mut peers = Vec::new();
        for node in nodes.into_iter().filter(|n| n.address != self.own) {
            let silent = Duration::from_secs_f64(node.silent_secs.max(0.0));
            if silent < SILENT_AFTER {
                peers.push(node.address);
                continue;
            }
            let why = format!("no heartbeat for {} s, not asked", silent.as_secs());
            if silent >= self.forget_after {
                // Only if it is still silent (it may have come back since
                // it was listed): then it leaves the catalog for good.
                match self.catalog.forget_node(&node.address, self.forget_after) {
                    Ok(true) => tracing::warn!(
                        node = %node.address,
                        silent_secs = silent.as_secs(),
                        "removed a silent ingest node from the catalog; its entries not flushed are lost unless it comes back with its data directory"
                    ),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(node = %node.address, error = %e, "could not remove a silent ingest node")
                    }
                }
            }
            answer.unreachable.push((node.address, why));
        }
        if peers.is_empty() {
            return answer;
        }
        let query = selector(matchers);
        let (tx, rx) = std::sync::mpsc::channel();
        for address in peers {
            let this = self.clone();
            let (tenant, query, tx) = (tenant.clone(), query.clone(), tx.clone());
            self.runtime.spawn(async move {
                let got = this
                    .ask(&address, &tenant, &query, (start.0, end.0), bounds_only)
                    .await;
                let _ = tx.send((address, got));
            });
        }
        drop(tx);
        for (address, got) in rx {
            match got {
                Ok(streams) => answer.streams.extend(streams),
                Err(why) => answer.unreachable.push((address, why)),
            }
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skald_model::MatchOp;

    #[test]
    fn selectors_round_trip_through_logql() {
        let m = vec![
            Matcher::new("app", MatchOp::Eq, "a\"b").unwrap(),
            Matcher::new("env", MatchOp::Re, "prod|dev").unwrap(),
        ];
        let text = selector(&m);
        let parsed = match skald_logql::parse_expr(&text).unwrap() {
            skald_logql::Expr::Log(l) => l.selector,
            other => panic!("{other:?}"),
        };
        let back: Vec<String> = parsed.iter().map(Matcher::to_string).collect();
        let sent: Vec<String> = m.iter().map(Matcher::to_string).collect();
        assert_eq!(back, sent);
        assert_eq!(selector(&[]), "");
    }

    #[test]
    fn targets_say_what_a_node_does() {
        assert_eq!(
            Target::Query.role(),
            NodeRole {
                ingest: false,
                compact: false
            }
        );
        assert_eq!(
            Target::Compact.role(),
            NodeRole {
                ingest: false,
                compact: true
            }
        );
        assert_eq!(
            Target::Ingest.role(),
            NodeRole {
                ingest: true,
                compact: false
            }
        );
        assert_eq!(Target::All.role(), NodeRole::default());
    }
}
