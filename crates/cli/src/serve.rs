//! `skald serve`: the server process.

use crate::config::FileConfig;
use anyhow::Context;
use axum::serve::ListenerExt;
use clap::{Args, ValueEnum};
use skald_server::AppState;
use skald_server::listen::{ListenConfig, Protocol, serve as serve_on};
use skald_server::tls::TlsListener;
use skald_store::{FsyncMode, Store};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Configuration file (TOML): store and API limits. Optional; every
    /// setting has a default.
    #[arg(long, env = "SKALD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory for the WAL and the segments.
    #[arg(long, env = "SKALD_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Address of the HTTP API (Loki's API, /ready, /metrics).
    #[arg(long, env = "SKALD_HTTP_ADDR", default_value = "127.0.0.1:3100")]
    pub http_addr: SocketAddr,
    /// Address of the gRPC endpoint (skald.v1.LogService, the standard
    /// gRPC health service and reflection).
    #[arg(long, env = "SKALD_GRPC_ADDR", default_value = "127.0.0.1:9095")]
    pub grpc_addr: SocketAddr,
    /// When acknowledged pushes reach the disk: `always` fsyncs before every
    /// acknowledgement (shared by concurrent pushes); `interval` fsyncs
    /// every `store.fsync_interval_ms` and survives process crashes but not
    /// power loss. Overrides the file.
    #[arg(long, env = "SKALD_FSYNC")]
    pub fsync: Option<Fsync>,
    /// Certificate chain (PEM) for TLS on both listeners, with --tls-key.
    /// Overrides `tls.cert_file` of the file.
    #[arg(long, env = "SKALD_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of the TLS certificate. Overrides `tls.key_file`.
    #[arg(long, env = "SKALD_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM) for mutual TLS: clients without a certificate
    /// signed by one of them are refused. Overrides `tls.client_ca_file`.
    #[arg(long, env = "SKALD_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// Require an API token on every request but /ready, health and
    /// (unless `[auth] open_metrics = false`) /metrics. Overrides
    /// `[auth] enabled` of the file.
    #[arg(long, env = "SKALD_AUTH", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::SetTrue)]
    pub auth: bool,
    /// Serve without authentication on a non-loopback address (behind a
    /// proxy that authenticates).
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// Append one JSON line per query, tail, export, delete, token or
    /// limit change and refused request to this file. Overrides
    /// `[audit] file`.
    #[arg(long, env = "SKALD_AUDIT_LOG")]
    pub audit_log: Option<PathBuf>,
    /// Keep segments in S3 or an S3-compatible server
    /// (`s3://bucket/prefix`; credentials from `AWS_*`); the WAL stays in
    /// the data directory. Overrides `[storage] url`.
    #[arg(long, env = "SKALD_STORAGE")]
    pub storage: Option<String>,
    /// Endpoint of an S3-compatible server, e.g. `http://127.0.0.1:9000`.
    /// Overrides `[storage] s3_endpoint`.
    #[arg(long)]
    pub s3_endpoint: Option<String>,
    /// Keep the list of segments and the delete requests in PostgreSQL
    /// (`postgres://user@host:port/db`, password from `PGPASSWORD`),
    /// shared by every node over the same `--storage`. Overrides
    /// `[catalog] url`.
    #[arg(long, env = "SKALD_CATALOG")]
    pub catalog: Option<String>,
    /// What this node does in a cluster over one --storage and --catalog:
    /// `ingest` (pushes, WAL, flushes), `query` (reads, asking the ingest
    /// nodes for their heads), `compact` (compaction and retention), or
    /// `all`.
    #[arg(long, env = "SKALD_TARGET", value_enum, default_value = "all")]
    pub target: crate::cluster::Target,
    /// The base URL other nodes reach this node's HTTP API at (default:
    /// http://<--http-addr>).
    #[arg(long, env = "SKALD_ADVERTISE_URL")]
    pub advertise_url: Option<String>,
    /// API token this node sends when it asks the ingest nodes for their
    /// heads, if they require authentication: valid for every tenant
    /// (`skald token create --tenant '*' --role admin`).
    #[arg(long, env = "SKALD_CLUSTER_TOKEN", hide_env_values = true)]
    pub cluster_token: Option<String>,
    /// Seconds without a heartbeat after which an ingest node is removed
    /// from the catalog for good (a node restarted at the same address
    /// registers again). Until then a node silent for more than 30 s is
    /// not asked, and every query warns that its unflushed entries are
    /// missing.
    #[arg(long, env = "SKALD_FORGET_NODE_AFTER", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(60..))]
    pub forget_node_after: u64,
    /// Log filter, e.g. `info` or `skald_store=debug,info`.
    #[arg(long, env = "SKALD_LOG", default_value = "info")]
    pub log: String,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Fsync {
    Always,
    Interval,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    skald_store::alloc::tune();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&args.log).context("--log")?)
        .with_writer(std::io::stderr)
        .init();
    let mut cfg = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    cfg.store.data_dir = args.data_dir.clone();
    if let Some(f) = args.fsync {
        cfg.store.fsync = match f {
            Fsync::Always => FsyncMode::Always,
            Fsync::Interval => FsyncMode::Interval,
        };
    }
    if let Some(p) = &args.tls_cert {
        cfg.tls.cert_file = Some(p.clone());
    }
    if let Some(p) = &args.tls_key {
        cfg.tls.key_file = Some(p.clone());
    }
    if let Some(p) = &args.tls_client_ca {
        cfg.tls.client_ca_file = Some(p.clone());
    }
    if args.auth {
        cfg.auth.enabled = true;
    }
    if let Some(p) = &args.audit_log {
        cfg.audit.file = Some(p.clone());
    }
    if let Some(url) = &args.storage {
        cfg.storage.url = Some(url.clone());
    }
    if let Some(endpoint) = &args.s3_endpoint {
        cfg.storage.s3_endpoint = Some(endpoint.clone());
    }
    if let Some(url) = &args.catalog {
        cfg.catalog.url = Some(url.clone());
    }
    cfg.store.role = args.target.role();
    cfg.validate()?;
    let exposed = [args.http_addr, args.grpc_addr]
        .into_iter()
        .find(|a| !a.ip().is_loopback());
    if let Some(addr) = exposed
        && !cfg.auth.enabled
        && !args.insecure_no_auth
    {
        anyhow::bail!(
            "refusing to listen on {addr} without authentication: anyone who can reach it could read and delete every tenant's logs; pass --auth (tokens: `skald token create`), or --insecure-no-auth if a proxy in front authenticates"
        );
    }
    // Before the store opens: bad certificate files fail fast.
    let tls = cfg.tls.server_config()?;
    if tls.is_some() {
        let mutual = cfg.tls.client_ca_file.is_some();
        tracing::info!(
            client_certificates_required = mutual,
            "TLS on both listeners"
        );
    }

    skald_server::priority::tune_allocator();
    skald_server::priority::init_query_pool(cfg.http.query_nice);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("skald-io")
        .build()
        .context("starting the async runtime")?;
    let opened = Instant::now();
    let segments = crate::storage::segment_store(&cfg.storage, &cfg.store)?;
    let catalog = crate::catalog::catalog_store(&cfg.catalog, &segments, &cfg.store)?;
    let store = Arc::new(
        Store::open_with_catalog(cfg.store.clone(), segments, catalog)
            .with_context(|| format!("opening the store in {}", args.data_dir.display()))?,
    );
    tracing::info!(data_dir = %args.data_dir.display(), took_ms = opened.elapsed().as_millis() as u64, "store open");
    let mut state = app_state(
        store.clone(),
        cfg.http.clone(),
        cfg.ingest.clone(),
        cfg.auth.clone(),
    )?;
    tracing::info!(auth = cfg.auth.enabled, "authentication");
    let analysis = state.analysis.clone();
    let ruler = crate::rules::start_ruler(&runtime, &cfg, &args, store.clone(), analysis)?;
    let audit = Arc::new(
        skald_server::service::audit::Audit::open(&cfg.audit, &store)
            .map_err(anyhow::Error::msg)
            .context("opening the audit log")?,
    );
    if let Some(state) = Arc::get_mut(&mut state) {
        state.ruler = Some(ruler.clone());
        state.audit = audit.clone();
    }
    if let Some(path) = &args.config {
        let _guard = runtime.enter();
        crate::reload::spawn(path.clone(), store.clone(), cfg.reloadable()?, audit)
            .context("installing the configuration reload (SIGHUP)")?;
    }
    if store.catalog().shared() {
        crate::catalog::follow_catalog(&runtime, state.clone());
    }
    let node = crate::cluster::join(&runtime, &store, &args, tls.is_some())?;
    let result = runtime.block_on(serve(state, &args, tls, cfg.listen.clone()));
    ruler.stop();
    tracing::info!("flushing and closing the store");
    store.close().context("closing the store")?;
    if let Some(node) = node {
        node.leave();
    }
    tracing::info!("stopped");
    result
}

/// The HTTP and gRPC APIs' state over an open store (also used by
/// `skald run` and `skald logs` for their local API).
pub fn app_state(
    store: Arc<Store>,
    config: skald_server::ServerConfig,
    ingest: skald_server::IngestConfig,
    auth: skald_server::service::auth::AuthConfig,
) -> anyhow::Result<Arc<AppState>> {
    let analysis = skald_server::analysis::attach(&store, &config.analysis)
        .context("opening the pattern index")?;
    let state = AppState::build(store, config, auth).map_err(anyhow::Error::msg)?;
    Ok(Arc::new(AppState {
        ingest,
        analysis,
        ..state
    }))
}

async fn serve(
    state: Arc<AppState>,
    args: &ServeArgs,
    tls: Option<Arc<rustls::ServerConfig>>,
    listen: ListenConfig,
) -> anyhow::Result<()> {
    let http = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("binding the HTTP address {}", args.http_addr))?;
    let grpc = tokio::net::TcpListener::bind(args.grpc_addr)
        .await
        .with_context(|| format!("binding the gRPC address {}", args.grpc_addr))?;
    tracing::info!(
        http = %http.local_addr()?,
        grpc = %grpc.local_addr()?,
        tls = tls.is_some(),
        "listening"
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested");
        let _ = stop_tx.send(true);
    });

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    health_reporter
        .set_service_status("skald.v1.LogService", tonic_health::ServingStatus::Serving)
        .await;
    let mut grpc_stop = stop_rx.clone();
    let grpc_stopped = async move {
        let _ = grpc_stop.wait_for(|s| *s).await;
    };
    let reflection = skald_server::grpc::reflection().context("gRPC reflection")?;
    let reflection_v1alpha =
        skald_server::grpc::reflection_v1alpha().context("gRPC reflection v1alpha")?;
    let grpc_router = tonic::service::Routes::new(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(skald_server::grpc::service(state.clone()))
        .add_service(skald_server::grpc::otlp_logs_service(state.clone()))
        .into_axum_router()
        .layer(axum::middleware::from_fn(
            skald_server::grpc::timeout::enforce,
        ))
        .layer(skald_server::observe::GrpcLayer(state.clone()));
    // Both listeners run the same loop with the [listen] limits, and
    // count push bodies in the same budget (skald_server::listen).
    let budget = Some(state.admission.push_budget(&state.config));
    let mut http_stop = stop_rx.clone();
    let http_stopped = async move {
        let _ = http_stop.wait_for(|s| *s).await;
    };
    let app = skald_server::app(state);
    let grpc_server = listen_on(
        grpc,
        tls.clone(),
        grpc_router,
        Protocol::Grpc,
        listen.clone(),
        budget.clone(),
        grpc_stopped,
    );
    let http_server = listen_on(http, tls, app, Protocol::Http, listen, budget, http_stopped);
    let (h, g) = tokio::join!(http_server, grpc_server);
    h.context("HTTP server")?;
    g.context("gRPC server")?;
    Ok(())
}

/// Serves `router` on `listener` (with TLS when configured) until
/// `stopped`.
async fn listen_on(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: axum::Router,
    protocol: Protocol,
    limits: ListenConfig,
    budget: Option<Arc<skald_wire::DecompressBudget>>,
    stopped: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    match tls {
        Some(config) => {
            let listener = TlsListener::new(listener, config)?;
            serve_on(listener, router, protocol, limits, budget, stopped).await
        }
        None => {
            let listener = listener.tap_io(no_delay);
            serve_on(listener, router, protocol, limits, budget, stopped).await
        }
    }
}

/// Small replies (tail entries, acks) go out at once: without
/// TCP_NODELAY, Nagle's algorithm and delayed ACKs hold them ~40 ms.
fn no_delay(conn: &mut tokio::net::TcpStream) {
    let _ = conn.set_nodelay(true);
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
