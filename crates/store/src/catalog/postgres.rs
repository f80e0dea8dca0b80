//! [`PostgresCatalog`]: the catalog in a PostgreSQL database, shared by
//! every node of a cluster (`skald serve --catalog postgres://...`).
//!
//! Schema: the migrations in `crates/store/migrations/`, numbered
//! `NNNN_name.sql` and compiled into the binary. At start, in one
//! transaction under an advisory lock (two nodes starting together
//! migrate once), the `skald_schema` row gives the version in place; the
//! migrations after it are applied and the row moved to the last. A
//! database whose version is newer than this binary's last migration is
//! refused: an older node must not write a catalog it does not
//! understand.
//!
//! Consistency:
//! - every change to the segments (publish, replace, remove) is one
//!   transaction that first takes the catalog's write lock (a transaction
//!   advisory lock) and then a new version from `skald_changes`, so
//!   versions commit in order and a node that has seen version `v` learns
//!   everything after it from the rows whose `change > v`;
//! - a replacement checks, in its transaction, that every input is still
//!   listed (`FOR UPDATE`), and changes nothing otherwise
//!   ([`CatalogError::Conflict`]): two compactions racing over the same
//!   inputs cannot both win, and neither loses the other's output;
//! - compaction and retention of a tenant are leased
//!   (`skald_compaction_leases`, [`LEASE`]), so normally only one node
//!   does the work; the conflict check above is what makes a lease that
//!   expired mid-compaction harmless;
//! - retention passes are spaced cluster-wide by `skald_retention`.
//!
//! The client is async (`tokio-postgres` with a `deadpool` pool of
//! [`POOL_SIZE`] connections); like the object store, this catalog owns a
//! small runtime and each call blocks its thread on a task spawned there.
//! Connections are TLS when the URL asks (`?sslmode=require` or
//! `verify-full`, `sslrootcert=` for a private authority; see `pg_tls`),
//! always verifying the server's certificate and name; plain TCP
//! otherwise.

use super::pg_tls::TlsMode;
use super::{CatalogError, CatalogStore, Changes, NodeRecord, SegmentRecord};
use crate::delete::DeleteRequest;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use skald_model::{TenantId, Timestamp};
use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The schema migrations, in order: (version, SQL).
pub const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/0001_catalog.sql")),
    (2, include_str!("../../migrations/0002_nodes.sql")),
    (3, include_str!("../../migrations/0003_tokens.sql")),
    (4, include_str!("../../migrations/0004_export_jobs.sql")),
];

/// How long a compaction lease lasts if its holder dies.
pub const LEASE: Duration = Duration::from_secs(600);

/// Connections kept to the database.
const POOL_SIZE: usize = 8;

/// How long to wait for the database to answer a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A segment removed from the catalog stays in the segment store this
/// long, for queries of other nodes that opened it before.
const DELETE_GRACE: Duration = Duration::from_secs(60);

/// Removed segments' rows are kept this long, so that a node whose view
/// lags learns of the removal.
const PURGE_AFTER_SECS: f64 = 24.0 * 3600.0;

/// The advisory lock keys (any constants unlikely to be used by others).
const MIGRATION_LOCK: i64 = 0x736b_616c_6400_0001;
const WRITE_LOCK: i64 = 0x736b_616c_6400_0002;

pub struct PostgresCatalog {
    /// The URL without its password, for messages.
    at: String,
    /// Who this process is, in leases and `published_by`.
    node: String,
    pool: Pool,
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
}

impl std::fmt::Debug for PostgresCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresCatalog")
            .field("at", &self.at)
            .field("node", &self.node)
            .finish()
    }
}

impl Drop for PostgresCatalog {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A message for a database error: PostgreSQL's own message when it sent
/// one (bad password, missing database), else the client's, with causes.
fn describe_error(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {}", db.severity(), db.message());
    }
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

fn pool_error(e: deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(e) => describe_error(&e),
        deadpool_postgres::PoolError::Timeout(_) => {
            format!("no answer within {}s", CONNECT_TIMEOUT.as_secs())
        }
        other => other.to_string(),
    }
}

/// This process's name in the catalog: host, pid and a random part (a
/// restarted node is a new holder).
fn node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{host}-{}-{nanos:08x}", std::process::id())
}

/// An async result with the catalog's error.
type Pg<T> = Result<T, CatalogError>;

impl PostgresCatalog {
    /// Connects to `url` (`postgres://user[:password]@host[:port]/db`;
    /// the password may also come from `PGPASSWORD`), applies the
    /// migrations this database lacks and proves it answers. An
    /// unreachable server, refused credentials or a newer schema is an
    /// error naming the database.
    pub fn connect(url: &str) -> Result<PostgresCatalog, CatalogError> {
        let (url, tls) =
            super::pg_tls::split_url(url).map_err(|message| CatalogError::Unavailable {
                at: redact(url),
                message,
            })?;
        let url = url.as_str();
        let mut config =
            tokio_postgres::Config::from_str(url).map_err(|e| CatalogError::Unavailable {
                at: redact(url),
                message: format!("not a PostgreSQL URL: {}", describe_error(&e)),
            })?;
        if config.get_password().is_none()
            && let Ok(password) = std::env::var("PGPASSWORD")
        {
            config.password(password);
        }
        config.connect_timeout(CONNECT_TIMEOUT);
        config.application_name("skald");
        let at = describe_config(&config);
        let recycling = || ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match tls {
            TlsMode::Plain => Manager::from_config(config, NoTls, recycling()),
            TlsMode::Verified { root_cert } => {
                let client =
                    super::pg_tls::client_config(root_cert.as_deref()).map_err(|message| {
                        CatalogError::Unavailable {
                            at: at.clone(),
                            message,
                        }
                    })?;
                Manager::from_config(config, MakeRustlsConnect::new(client), recycling())
            }
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("skald-catalog")
            .enable_all()
            .build()
            .map_err(|e| CatalogError::Unavailable {
                at: at.clone(),
                message: format!("starting its runtime: {e}"),
            })?;
        let pool = {
            let _guard = runtime.enter();
            Pool::builder(manager)
                .max_size(POOL_SIZE)
                .runtime(Runtime::Tokio1)
                .wait_timeout(Some(CONNECT_TIMEOUT * 2))
                .create_timeout(Some(CONNECT_TIMEOUT))
                .build()
                .map_err(|e| CatalogError::Unavailable {
                    at: at.clone(),
                    message: e.to_string(),
                })?
        };
        let catalog = PostgresCatalog {
            at,
            node: node_name(),
            pool,
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        };
        catalog.migrate()?;
        Ok(catalog)
    }

    /// This process's name in leases and published rows.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The schema version of the database.
    pub fn schema_version(&self) -> Result<i64, CatalogError> {
        self.run(|client, _| async move {
            let row = client
                .query_one("SELECT version FROM skald_schema", &[])
                .await?;
            Ok(row.get::<_, i32>(0) as i64)
        })
    }

    /// Applies the migrations after the database's version, in one
    /// transaction; refuses a newer version.
    fn migrate(&self) -> Result<(), CatalogError> {
        let known = MIGRATIONS.last().map_or(0, |m| m.0);
        let at = self.at.clone();
        let applied = self.run(move |mut client, _| async move {
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS skald_schema (
                     singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
                     version integer NOT NULL
                 );
                 INSERT INTO skald_schema (singleton, version) VALUES (true, 0)
                     ON CONFLICT (singleton) DO NOTHING;",
            )
            .await?;
            let found: i32 = tx
                .query_one("SELECT version FROM skald_schema", &[])
                .await?
                .get(0);
            let found = found as i64;
            if found > known {
                return Ok(Err(CatalogError::NewerSchema { at, found, known }));
            }
            let mut applied = Vec::new();
            for (version, sql) in MIGRATIONS.iter().filter(|m| m.0 > found) {
                tx.batch_execute(sql).await?;
                applied.push(*version);
            }
            if !applied.is_empty() {
                tx.execute("UPDATE skald_schema SET version = $1", &[&(known as i32)])
                    .await?;
            }
            tx.commit().await?;
            Ok(Ok(applied))
        })??;
        if !applied.is_empty() {
            tracing::info!(catalog = %self.at, migrations = ?applied, "catalog schema migrated");
        }
        Ok(())
    }

    /// Runs `work` with a pooled connection on this catalog's runtime and
    /// waits for it.
    fn run<T, F, Fut>(&self, work: F) -> Pg<T>
    where
        T: Send + 'static,
        F: FnOnce(deadpool_postgres::Object, String) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, tokio_postgres::Error>> + Send + 'static,
    {
        let pool = self.pool.clone();
        let node = self.node.clone();
        let at = self.at.clone();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let result = match pool.get().await {
                Ok(client) => work(client, node).await.map_err(|e| describe_error(&e)),
                Err(e) => Err(pool_error(e)),
            };
            let _ = tx.send(result.map_err(|message| CatalogError::Unavailable { at, message }));
        });
        rx.recv().map_err(|_| CatalogError::Unavailable {
            at: self.at.clone(),
            message: "the catalog's runtime has shut down".into(),
        })?
    }
}

/// `url` without its password, for messages.
fn redact(url: &str) -> String {
    match tokio_postgres::Config::from_str(url) {
        Ok(c) => describe_config(&c),
        Err(_) => match url.split_once('@') {
            Some((_, rest)) => format!("postgres://…@{rest}"),
            None => url.to_string(),
        },
    }
}

fn describe_config(c: &tokio_postgres::Config) -> String {
    let host = c
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        c.get_user().unwrap_or(""),
        c.get_dbname().or(c.get_user()).unwrap_or("")
    )
}

fn record(row: &tokio_postgres::Row) -> Option<SegmentRecord> {
    let tenant: String = row.get("tenant");
    Some(SegmentRecord {
        tenant: TenantId::new(&tenant).ok()?,
        id: row.get::<_, i64>("id") as u64,
        key: row.get("key"),
        min_ts: Timestamp(row.get("min_ts")),
        max_ts: Timestamp(row.get("max_ts")),
        bytes: row.get::<_, i64>("bytes") as u64,
        entries: row.get::<_, i64>("entries") as u64,
    })
}

const SEGMENT_COLUMNS: &str = "tenant, id, key, min_ts, max_ts, bytes, entries";

/// Takes the catalog's write lock and a new version, in `tx`.
async fn next_change(
    tx: &deadpool_postgres::Transaction<'_>,
) -> Result<i64, tokio_postgres::Error> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
        .await?;
    Ok(tx
        .query_one("SELECT nextval('skald_changes')", &[])
        .await?
        .get(0))
}

async fn insert_segment(
    tx: &deadpool_postgres::Transaction<'_>,
    s: &SegmentRecord,
    node: &str,
    change: i64,
) -> Result<u64, tokio_postgres::Error> {
    let params: [&(dyn ToSql + Sync); 9] = [
        &s.tenant.as_str(),
        &(s.id as i64),
        &s.key,
        &s.min_ts.0,
        &s.max_ts.0,
        &(s.bytes as i64),
        &(s.entries as i64),
        &node,
        &change,
    ];
    tx.execute(
        "INSERT INTO skald_segments
             (tenant, id, key, min_ts, max_ts, bytes, entries, published_by, change)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (tenant, id) DO NOTHING",
        &params,
    )
    .await
}

impl CatalogStore for PostgresCatalog {
    fn describe(&self) -> String {
        self.at.clone()
    }

    fn shared(&self) -> bool {
        true
    }

    fn quarantines(&self) -> bool {
        false
    }

    fn delete_grace(&self) -> Duration {
        DELETE_GRACE
    }

    fn list(&self) -> Result<Vec<SegmentRecord>, CatalogError> {
        self.run(|client, _| async move {
            let rows = client
                .query(
                    &format!(
                        "SELECT {SEGMENT_COLUMNS} FROM skald_segments
                         WHERE removed_at IS NULL ORDER BY id"
                    ),
                    &[],
                )
                .await?;
            Ok(rows.iter().filter_map(record).collect())
        })
    }

    fn known_keys(&self) -> Result<Option<HashSet<String>>, CatalogError> {
        self.run(|client, _| async move {
            let rows = client.query("SELECT key FROM skald_segments", &[]).await?;
            Ok(Some(rows.iter().map(|r| r.get::<_, String>(0)).collect()))
        })
    }

    fn version(&self) -> Result<u64, CatalogError> {
        self.run(|client, _| async move {
            let row = client
                .query_one("SELECT COALESCE(max(change), 0) FROM skald_segments", &[])
                .await?;
            Ok(row.get::<_, i64>(0) as u64)
        })
    }

    fn changes_since(&self, version: u64) -> Result<Changes, CatalogError> {
        self.run(move |client, _| async move {
            let rows = client
                .query(
                    &format!(
                        "SELECT {SEGMENT_COLUMNS}, change, removed_at IS NOT NULL AS removed
                         FROM skald_segments WHERE change > $1 ORDER BY change"
                    ),
                    &[&(version as i64)],
                )
                .await?;
            let mut changes = Changes {
                version,
                ..Default::default()
            };
            for row in &rows {
                changes.version = changes.version.max(row.get::<_, i64>("change") as u64);
                let Some(r) = record(row) else { continue };
                match row.get::<_, bool>("removed") {
                    true => changes.removed.push((r.tenant, r.id)),
                    false => changes.added.push(r),
                }
            }
            Ok(changes)
        })
    }

    fn allocate_id(&self) -> Result<u64, CatalogError> {
        self.run(|client, _| async move {
            let row = client
                .query_one("SELECT nextval('skald_segment_ids')", &[])
                .await?;
            Ok(row.get::<_, i64>(0) as u64)
        })
    }

    fn reserve_ids_through(&self, id: u64) -> Result<(), CatalogError> {
        self.run(move |client, _| async move {
            client
                .execute(
                    "SELECT setval('skald_segment_ids', $1)
                     WHERE $1 > (SELECT last_value FROM skald_segment_ids)",
                    &[&(id as i64)],
                )
                .await?;
            Ok(())
        })
    }

    fn publish(&self, segment: &SegmentRecord) -> Result<(), CatalogError> {
        let segment = segment.clone();
        self.run(move |mut client, node| async move {
            let tx = client.transaction().await?;
            let change = next_change(&tx).await?;
            insert_segment(&tx, &segment, &node, change).await?;
            tx.commit().await
        })
    }

    fn prepare_replace(
        &self,
        _tenant: &TenantId,
        _inputs: &[u64],
        _output: u64,
    ) -> Result<Option<String>, CatalogError> {
        // The transaction in `replace` is the whole of it; an output stored
        // but never listed is an orphan object, never read.
        Ok(None)
    }

    fn replace(&self, inputs: &[u64], output: &SegmentRecord) -> Result<(), CatalogError> {
        let output = output.clone();
        let ids: Vec<i64> = inputs.iter().map(|&i| i as i64).collect();
        self.run(move |mut client, node| async move {
            let tx = client.transaction().await?;
            let change = next_change(&tx).await?;
            let tenant = output.tenant.as_str();
            let listed = tx
                .query(
                    "SELECT id FROM skald_segments
                     WHERE tenant = $1 AND id = ANY($2) AND removed_at IS NULL
                     FOR UPDATE",
                    &[&tenant, &ids],
                )
                .await?;
            if listed.len() != ids.len() {
                tx.rollback().await?;
                let listed: Vec<i64> = listed.iter().map(|r| r.get(0)).collect();
                let gone: Vec<i64> = ids.iter().filter(|i| !listed.contains(i)).copied().collect();
                return Ok(Err(CatalogError::Conflict(format!(
                    "segments {gone:?} of tenant {tenant} are no longer listed; segment {} is not published",
                    output.id
                ))));
            }
            tx.execute(
                "UPDATE skald_segments SET removed_at = now(), change = $3
                 WHERE tenant = $1 AND id = ANY($2)",
                &[&tenant, &ids, &change],
            )
            .await?;
            insert_segment(&tx, &output, &node, change).await?;
            tx.commit().await?;
            Ok(Ok(()))
        })?
    }

    fn remove(&self, tenant: &TenantId, id: u64) -> Result<(), CatalogError> {
        let tenant = tenant.as_str().to_string();
        self.run(move |mut client, _| async move {
            let tx = client.transaction().await?;
            let change = next_change(&tx).await?;
            tx.execute(
                "UPDATE skald_segments SET removed_at = now(), change = $3
                 WHERE tenant = $1 AND id = $2 AND removed_at IS NULL",
                &[&tenant, &(id as i64), &change],
            )
            .await?;
            tx.commit().await
        })
    }

    fn lease_tenant(&self, tenant: &TenantId) -> Result<bool, CatalogError> {
        let tenant = tenant.as_str().to_string();
        self.run(move |client, node| async move {
            let rows = client
                .query(
                    "INSERT INTO skald_compaction_leases AS l (tenant, holder, expires_at)
                     VALUES ($1, $2, now() + make_interval(secs => $3))
                     ON CONFLICT (tenant) DO UPDATE
                         SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
                         WHERE l.expires_at < now() OR l.holder = EXCLUDED.holder
                     RETURNING holder",
                    &[&tenant, &node, &LEASE.as_secs_f64()],
                )
                .await?;
            Ok(rows.len() == 1)
        })
    }

    fn release_tenant(&self, tenant: &TenantId) -> Result<(), CatalogError> {
        let tenant = tenant.as_str().to_string();
        self.run(move |client, node| async move {
            client
                .execute(
                    "DELETE FROM skald_compaction_leases WHERE tenant = $1 AND holder = $2",
                    &[&tenant, &node],
                )
                .await?;
            Ok(())
        })
    }

    fn retention_due(&self, every: Duration) -> Result<bool, CatalogError> {
        self.run(move |client, _| async move {
            let due = client
                .query(
                    "UPDATE skald_retention SET last_pass_at = now()
                     WHERE last_pass_at IS NULL
                        OR last_pass_at <= now() - make_interval(secs => $1)
                     RETURNING 1",
                    &[&every.as_secs_f64()],
                )
                .await?;
            if due.is_empty() {
                return Ok(false);
            }
            client
                .execute(
                    "DELETE FROM skald_segments
                     WHERE removed_at < now() - make_interval(secs => $1)",
                    &[&PURGE_AFTER_SECS],
                )
                .await?;
            Ok(true)
        })
    }

    fn register_node(&self, address: &str, target: &str) -> Result<(), CatalogError> {
        let (address, target) = (address.to_string(), target.to_string());
        self.run(move |client, node| async move {
            client
                .execute(
                    "INSERT INTO skald_nodes AS n (address, target, node)
                     VALUES ($1, $2, $3)
                     ON CONFLICT (address) DO UPDATE SET
                         target = EXCLUDED.target,
                         node = EXCLUDED.node,
                         heartbeat_at = now(),
                         started_at = CASE WHEN n.node = EXCLUDED.node
                                           THEN n.started_at ELSE now() END",
                    &[&address, &target, &node],
                )
                .await?;
            Ok(())
        })
    }

    fn leave(&self, address: &str) -> Result<(), CatalogError> {
        let address = address.to_string();
        self.run(move |client, node| async move {
            client
                .execute(
                    "DELETE FROM skald_nodes WHERE address = $1 AND node = $2",
                    &[&address, &node],
                )
                .await?;
            Ok(())
        })
    }

    fn forget_node(&self, address: &str, silent: Duration) -> Result<bool, CatalogError> {
        let address = address.to_string();
        let secs = silent.as_secs_f64();
        self.run(move |client, _| async move {
            let removed = client
                .execute(
                    "DELETE FROM skald_nodes
                     WHERE address = $1 AND heartbeat_at <= now() - make_interval(secs => $2)",
                    &[&address, &secs],
                )
                .await?;
            Ok(removed > 0)
        })
    }

    fn ingest_nodes(&self) -> Result<Vec<NodeRecord>, CatalogError> {
        self.run(|client, _| async move {
            let rows = client
                .query(
                    "SELECT address, target,
                            extract(epoch FROM now() - heartbeat_at)::float8 AS silent
                     FROM skald_nodes WHERE target IN ('all', 'ingest')
                     ORDER BY address",
                    &[],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| NodeRecord {
                    address: r.get("address"),
                    target: r.get("target"),
                    silent_secs: r.get("silent"),
                })
                .collect())
        })
    }

    fn delete_requests(&self) -> Result<Vec<DeleteRequest>, CatalogError> {
        self.run(|client, _| async move {
            let rows = client
                .query(
                    "SELECT tenant, request_id, query, start_ns, end_ns, created_ns
                     FROM skald_delete_requests ORDER BY created_ns, request_id",
                    &[],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| DeleteRequest {
                    tenant: r.get("tenant"),
                    request_id: r.get("request_id"),
                    query: r.get("query"),
                    start_ns: r.get("start_ns"),
                    end_ns: r.get("end_ns"),
                    created_ns: r.get("created_ns"),
                })
                .collect())
        })
    }

    fn add_delete_request(&self, request: &DeleteRequest) -> Result<(), CatalogError> {
        let r = request.clone();
        self.run(move |client, _| async move {
            client
                .execute(
                    "INSERT INTO skald_delete_requests
                         (tenant, request_id, query, start_ns, end_ns, created_ns)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (tenant, request_id) DO UPDATE SET
                         query = EXCLUDED.query, start_ns = EXCLUDED.start_ns,
                         end_ns = EXCLUDED.end_ns, created_ns = EXCLUDED.created_ns",
                    &[
                        &r.tenant,
                        &r.request_id,
                        &r.query,
                        &r.start_ns,
                        &r.end_ns,
                        &r.created_ns,
                    ],
                )
                .await?;
            Ok(())
        })
    }

    fn remove_delete_request(&self, tenant: &TenantId, id: &str) -> Result<bool, CatalogError> {
        let (tenant, id) = (tenant.as_str().to_string(), id.to_string());
        self.run(move |client, _| async move {
            let n = client
                .execute(
                    "DELETE FROM skald_delete_requests WHERE tenant = $1 AND request_id = $2",
                    &[&tenant, &id],
                )
                .await?;
            Ok(n > 0)
        })
    }

    fn tokens(&self) -> Result<Option<Vec<String>>, CatalogError> {
        self.run(|client, _| async move {
            let rows = client
                .query(
                    "SELECT record FROM skald_tokens ORDER BY created_at, id",
                    &[],
                )
                .await?;
            Ok(Some(rows.iter().map(|r| r.get::<_, String>(0)).collect()))
        })
    }

    fn add_token(&self, id: &str, name: &str, record: &str) -> Result<(), CatalogError> {
        let (id, name, record) = (id.to_string(), name.to_string(), record.to_string());
        let taken = name.clone();
        let added = self.run(move |client, _| async move {
            let n = client
                .execute(
                    "INSERT INTO skald_tokens (id, name, record) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                    &[&id, &name, &record],
                )
                .await?;
            Ok(n == 1)
        })?;
        match added {
            true => Ok(()),
            false => Err(CatalogError::Conflict(format!(
                "a token named {taken:?} exists; revoke it or pick another --name"
            ))),
        }
    }

    fn export_job(&self, tenant: &TenantId, id: &str) -> Result<Option<String>, CatalogError> {
        let (tenant, id) = (tenant.as_str().to_string(), id.to_string());
        self.run(move |client, _| async move {
            let rows = client
                .query(
                    "SELECT record FROM skald_export_jobs WHERE tenant = $1 AND id = $2",
                    &[&tenant, &id],
                )
                .await?;
            Ok(rows.first().map(|r| r.get::<_, String>(0)))
        })
    }

    fn put_export_job(
        &self,
        tenant: &TenantId,
        id: &str,
        record: &str,
    ) -> Result<(), CatalogError> {
        let (tenant, id, record) = (
            tenant.as_str().to_string(),
            id.to_string(),
            record.to_string(),
        );
        self.run(move |client, _| async move {
            client
                .execute(
                    "INSERT INTO skald_export_jobs (tenant, id, record) VALUES ($1, $2, $3)
                     ON CONFLICT (tenant, id) DO UPDATE
                         SET record = EXCLUDED.record, updated_at = now()",
                    &[&tenant, &id, &record],
                )
                .await?;
            Ok(())
        })
    }

    fn remove_export_job(&self, tenant: &TenantId, id: &str) -> Result<(), CatalogError> {
        let (tenant, id) = (tenant.as_str().to_string(), id.to_string());
        self.run(move |client, _| async move {
            client
                .execute(
                    "DELETE FROM skald_export_jobs WHERE tenant = $1 AND id = $2",
                    &[&tenant, &id],
                )
                .await?;
            Ok(())
        })
    }

    fn remove_token(&self, name_or_id: &str) -> Result<Option<String>, CatalogError> {
        let key = name_or_id.to_string();
        self.run(move |client, _| async move {
            let rows = client
                .query(
                    "DELETE FROM skald_tokens WHERE id = (
                         SELECT id FROM skald_tokens WHERE name = $1 OR id = $1
                         ORDER BY (name = $1) DESC LIMIT 1)
                     RETURNING record",
                    &[&key],
                )
                .await?;
            Ok(rows.first().map(|r| r.get::<_, String>(0)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_compiled_in_and_numbered_in_order() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        assert_eq!(files.len(), MIGRATIONS.len(), "{files:?}");
        for (n, (file, (version, sql))) in files.iter().zip(MIGRATIONS).enumerate() {
            assert_eq!(*version, n as i64 + 1);
            assert!(file.starts_with(&format!("{version:04}_")), "{file}");
            assert_eq!(std::fs::read_to_string(dir.join(file)).unwrap(), *sql);
        }
    }

    #[test]
    fn urls_are_described_without_their_password() {
        assert_eq!(
            redact("postgres://skald:secret@db.example:5433/logs"),
            "postgres://skald@db.example:5433/logs"
        );
        assert!(!redact("postgres://u:secret@[bad").contains("secret"));
    }
}
