//! The catalog seam: one contract run against the local catalog and a real
//! PostgreSQL (started for the test, see `common/postgres.rs`), then what
//! only a shared catalog must do: migrate once when nodes start together,
//! refuse a newer schema and bad credentials, replace atomically, and let
//! two stores compacting the same tenant over one bucket lose no update.

mod common;

use common::postgres::Postgres;
use common::s3::{ACCESS_KEY, BUCKET, S3Server, SECRET_KEY};
use common::{push_and_flush, read_app};
use skald_model::{TenantId, Timestamp};
use skald_store::catalog::postgres::MIGRATIONS;
use skald_store::delete::DeleteRequest;
use skald_store::storage::{LocalDir, ObjectSegments, ObjectStoreConfig, SegmentStore};
use skald_store::{
    CatalogError, CatalogStore, LocalCatalog, PostgresCatalog, SegmentRecord, Store, StoreConfig,
};
use std::sync::Arc;

fn tenant(name: &str) -> TenantId {
    TenantId::new(name).unwrap()
}

fn key(t: &TenantId, id: u64) -> String {
    format!("tenants/{}/segments/{id:012}.seg", t.as_str())
}

fn record(t: &TenantId, id: u64) -> SegmentRecord {
    SegmentRecord {
        tenant: t.clone(),
        id,
        key: key(t, id),
        min_ts: Timestamp(10 * id as i64),
        max_ts: Timestamp(10 * id as i64 + 5),
        bytes: 100 + id,
        entries: id,
    }
}

/// Stores a stand-in object for segment `id` and publishes it, as a
/// flush does (the catalog never reads the bytes).
fn publish(catalog: &dyn CatalogStore, segments: &dyn SegmentStore, t: &TenantId) -> u64 {
    let id = catalog.allocate_id().unwrap();
    segments.put_bytes(&key(t, id), b"segment").unwrap();
    catalog.publish(&record(t, id)).unwrap();
    id
}

/// Replaces `inputs` by a new segment, as a compaction does.
fn replace(
    catalog: &dyn CatalogStore,
    segments: &dyn SegmentStore,
    t: &TenantId,
    inputs: &[u64],
) -> Result<u64, CatalogError> {
    let id = catalog.allocate_id().unwrap();
    let leftover = catalog.prepare_replace(t, inputs, id)?;
    segments.put_bytes(&key(t, id), b"merged").unwrap();
    if let Err(e) = catalog.replace(inputs, &record(t, id)) {
        // As the store does: the output was never listed.
        segments.delete(&key(t, id)).unwrap();
        if let Some(k) = leftover {
            segments.delete(&k).unwrap();
        }
        return Err(e);
    }
    for input in inputs {
        segments.delete(&key(t, *input)).unwrap();
    }
    if let Some(k) = leftover {
        segments.delete(&k).unwrap();
    }
    Ok(id)
}

fn listed(catalog: &dyn CatalogStore) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = catalog
        .list()
        .unwrap()
        .into_iter()
        .map(|r| (r.tenant.as_str().to_string(), r.id))
        .collect();
    out.sort();
    out
}

fn request(t: &TenantId, id: &str, created: i64) -> DeleteRequest {
    DeleteRequest {
        request_id: id.into(),
        tenant: t.as_str().into(),
        query: r#"{app="a"} |= "secret""#.into(),
        start_ns: 1,
        end_ns: 2,
        created_ns: created,
    }
}

/// What every catalog must do.
fn contract(catalog: &dyn CatalogStore, segments: &dyn SegmentStore) {
    let (a, b) = (tenant("acme"), tenant("bravo"));
    assert!(listed(catalog).is_empty());

    let s1 = publish(catalog, segments, &a);
    let s2 = publish(catalog, segments, &a);
    let s3 = publish(catalog, segments, &b);
    assert!(s1 < s2 && s2 < s3, "ids grow: {s1} {s2} {s3}");
    let got = catalog.list().unwrap();
    assert_eq!(got.len(), 3);
    let first = got.iter().find(|r| r.id == s1).unwrap();
    assert_eq!(
        (first.tenant.as_str(), first.key.as_str()),
        ("acme", key(&a, s1).as_str())
    );

    // A compaction's output takes its inputs' place.
    let merged = replace(catalog, segments, &a, &[s1, s2]).unwrap();
    assert_eq!(
        listed(catalog),
        [("acme".to_string(), merged), ("bravo".to_string(), s3)]
    );
    // A replacement of inputs that are gone changes nothing.
    let err = replace(catalog, segments, &a, &[s1, merged]).unwrap_err();
    assert!(matches!(err, CatalogError::Conflict(_)), "{err}");
    assert!(err.to_string().contains(&format!("[{s1}]")), "{err}");
    assert_eq!(
        listed(catalog),
        [("acme".to_string(), merged), ("bravo".to_string(), s3)]
    );

    // Removal (retention).
    catalog.remove(&b, s3).unwrap();
    segments.delete(&key(&b, s3)).unwrap();
    assert_eq!(listed(catalog), [("acme".to_string(), merged)]);

    // Delete requests.
    assert!(catalog.delete_requests().unwrap().is_empty());
    catalog.add_delete_request(&request(&a, "r1", 5)).unwrap();
    catalog.add_delete_request(&request(&b, "r1", 6)).unwrap();
    catalog.add_delete_request(&request(&a, "r2", 7)).unwrap();
    let ids: Vec<(String, String)> = catalog
        .delete_requests()
        .unwrap()
        .into_iter()
        .map(|r| (r.tenant, r.request_id))
        .collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(catalog.remove_delete_request(&a, "r1").unwrap());
    assert!(!catalog.remove_delete_request(&a, "r1").unwrap());
    let left = catalog.delete_requests().unwrap();
    assert_eq!(left, [request(&b, "r1", 6), request(&a, "r2", 7)]);

    // The lease of one's own tenant, taken again after release.
    assert!(catalog.lease_tenant(&a).unwrap());
    catalog.release_tenant(&a).unwrap();
    assert!(catalog.lease_tenant(&a).unwrap());
    catalog.release_tenant(&a).unwrap();
    assert!(
        catalog
            .retention_due(std::time::Duration::from_secs(3600))
            .unwrap()
    );
}

#[test]
fn the_local_catalog_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let segments = Arc::new(LocalDir::new(dir.path()));
    let catalog = LocalCatalog::new(segments.clone(), dir.path());
    contract(&catalog, &*segments);
    // Tokens stay in the data directory's tokens.json.
    assert_eq!(catalog.tokens().unwrap(), None);
    assert!(catalog.add_token("00aa", "ci", "{}").is_err());
    // Its delete requests are the file the server always wrote.
    let file = std::fs::read_to_string(dir.path().join("delete_requests.json")).unwrap();
    assert!(file.contains("\"request_id\": \"r2\""), "{file}");
}

#[test]
fn postgresql_keeps_the_contract() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.create_database("contract");
    let dir = tempfile::tempdir().unwrap();
    let segments = LocalDir::new(dir.path());
    let catalog = PostgresCatalog::connect(&url).unwrap();
    assert_eq!(
        catalog.schema_version().unwrap(),
        MIGRATIONS.last().unwrap().0
    );
    assert!(!catalog.describe().contains(common::postgres::PASSWORD));
    contract(&catalog, &segments);
}

#[test]
fn nodes_starting_together_migrate_once_and_see_each_others_changes() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.create_database("nodes");
    let nodes: Vec<PostgresCatalog> = std::thread::scope(|s| {
        let started: Vec<_> = (0..4)
            .map(|_| s.spawn(|| PostgresCatalog::connect(&url).unwrap()))
            .collect();
        started.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let (one, two) = (&nodes[0], &nodes[1]);
    let dir = tempfile::tempdir().unwrap();
    let segments = LocalDir::new(dir.path());
    let t = tenant("acme");

    let seen = two.version().unwrap();
    let s1 = publish(one, &segments, &t);
    let s2 = publish(one, &segments, &t);
    let changes = two.changes_since(seen).unwrap();
    let added: Vec<u64> = changes.added.iter().map(|r| r.id).collect();
    assert_eq!(added, [s1, s2]);
    assert_eq!(changes.added[0], record(&t, s1), "every column round trips");
    let merged = replace(two, &segments, &t, &[s1, s2]).unwrap();
    let later = one.changes_since(changes.version).unwrap();
    assert_eq!(
        later.added.iter().map(|r| r.id).collect::<Vec<_>>(),
        [merged]
    );
    let mut removed = later.removed.clone();
    removed.sort();
    assert_eq!(removed, [(t.clone(), s1), (t.clone(), s2)]);
    assert!(one.changes_since(later.version).unwrap().added.is_empty());

    // One holder of a tenant's lease at a time; another tenant is free.
    assert!(one.lease_tenant(&t).unwrap());
    assert!(!two.lease_tenant(&t).unwrap());
    assert!(two.lease_tenant(&tenant("other")).unwrap());
    one.release_tenant(&t).unwrap();
    assert!(two.lease_tenant(&t).unwrap());
    // A release by someone who does not hold it changes nothing.
    one.release_tenant(&t).unwrap();
    assert!(!one.lease_tenant(&t).unwrap());

    // One retention pass per interval across the nodes.
    let hour = std::time::Duration::from_secs(3600);
    let due: Vec<bool> = nodes
        .iter()
        .map(|n| n.retention_due(hour).unwrap())
        .collect();
    assert_eq!(due.iter().filter(|d| **d).count(), 1, "{due:?}");

    // A silent node is forgotten only once silent long enough, by any
    // node; one that beats again registers again.
    let address = "http://10.0.0.9:3100";
    one.register_node(address, "ingest").unwrap();
    let addresses = |n: &PostgresCatalog| -> Vec<String> {
        n.ingest_nodes()
            .unwrap()
            .into_iter()
            .map(|r| r.address)
            .collect()
    };
    assert_eq!(addresses(two), [address]);
    assert!(!two.forget_node(address, hour).unwrap(), "beat just now");
    assert_eq!(addresses(two), [address]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = std::time::Duration::from_secs(1);
    assert!(two.forget_node(address, second).unwrap());
    assert!(addresses(one).is_empty());
    assert!(!two.forget_node(address, second).unwrap(), "already gone");
    one.register_node(address, "ingest").unwrap();
    assert_eq!(addresses(two), [address]);

    // Tokens: added on one node, listed on every node; names are unique;
    // removed by name or id, once.
    assert_eq!(two.tokens().unwrap(), Some(Vec::new()));
    one.add_token("00aa", "ci", r#"{"id":"00aa"}"#).unwrap();
    one.add_token("00bb", "grafana", r#"{"id":"00bb"}"#)
        .unwrap();
    let taken = two.add_token("00cc", "ci", r#"{"id":"00cc"}"#).unwrap_err();
    assert!(
        matches!(&taken, CatalogError::Conflict(m) if m.contains("\"ci\"")),
        "{taken}"
    );
    assert_eq!(
        two.tokens().unwrap().unwrap(),
        [r#"{"id":"00aa"}"#, r#"{"id":"00bb"}"#]
    );
    assert_eq!(
        two.remove_token("ci").unwrap().as_deref(),
        Some(r#"{"id":"00aa"}"#)
    );
    assert_eq!(two.remove_token("ci").unwrap(), None);
    assert!(one.remove_token("00bb").unwrap().is_some());
    assert_eq!(one.tokens().unwrap(), Some(Vec::new()));

    // Export job records: written by one node, read by every node, per
    // tenant; replaced as the job goes on; removed when it expires.
    let job = "0123456789abcdef";
    assert_eq!(two.export_job(&t, job).unwrap(), None);
    one.put_export_job(&t, job, r#"{"state":"running"}"#)
        .unwrap();
    one.put_export_job(&t, job, r#"{"state":"completed"}"#)
        .unwrap();
    assert_eq!(
        two.export_job(&t, job).unwrap().as_deref(),
        Some(r#"{"state":"completed"}"#)
    );
    assert_eq!(two.export_job(&tenant("other"), job).unwrap(), None);
    two.remove_export_job(&t, job).unwrap();
    assert_eq!(one.export_job(&t, job).unwrap(), None);
}

#[test]
fn a_replacement_is_seen_whole_or_not_at_all() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.create_database("atomic");
    let writer = PostgresCatalog::connect(&url).unwrap();
    let reader = PostgresCatalog::connect(&url).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let segments = LocalDir::new(dir.path());
    let t = tenant("acme");
    let first = publish(&writer, &segments, &t);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            let mut looks = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) || looks == 0 {
                let now = reader.list().unwrap();
                assert_eq!(now.len(), 1, "one segment at every instant: {now:?}");
                looks += 1;
            }
            looks
        });
        // A chain of compactions, each replacing the last output.
        let mut last = first;
        for _ in 0..100 {
            last = replace(&writer, &segments, &t, &[last]).unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(watcher.join().unwrap() > 0);
        assert_eq!(listed(&reader), [("acme".to_string(), last)]);
    });
}

#[test]
fn a_newer_schema_bad_credentials_and_no_server_are_refused() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.create_database("refusals");
    drop(PostgresCatalog::connect(&url).unwrap());
    pg.execute("refusals", "UPDATE skald_schema SET version = 999");
    let err = PostgresCatalog::connect(&url).unwrap_err();
    assert!(
        matches!(err, CatalogError::NewerSchema { found: 999, .. }),
        "{err}"
    );
    let said = err.to_string();
    assert!(
        said.contains("schema version 999, newer than this skald knows"),
        "{said}"
    );
    assert!(!said.contains(common::postgres::PASSWORD), "{said}");
    // Refused before anything changed.
    let latest = MIGRATIONS.last().unwrap().0;
    pg.execute(
        "refusals",
        &format!("UPDATE skald_schema SET version = {latest}"),
    );
    drop(PostgresCatalog::connect(&url).unwrap());

    let wrong = url.replace(common::postgres::PASSWORD, "wrong");
    let said = PostgresCatalog::connect(&wrong).unwrap_err().to_string();
    assert!(said.contains("password authentication failed"), "{said}");
    assert!(
        !said.contains("wrong"),
        "the password is not repeated: {said}"
    );

    let missing = pg.url("no_such_db");
    let said = PostgresCatalog::connect(&missing).unwrap_err().to_string();
    assert!(said.contains("no_such_db"), "{said}");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nobody = format!("postgres://skald:x@127.0.0.1:{port}/db");
    let said = PostgresCatalog::connect(&nobody).unwrap_err().to_string();
    assert!(said.contains(&format!("127.0.0.1:{port}")), "{said}");

    let said = PostgresCatalog::connect("postgres://a:b@[nonsense")
        .unwrap_err()
        .to_string();
    assert!(said.contains("not a PostgreSQL URL"), "{said}");
}

/// `sslmode=require` connects over TLS, verifying the server against
/// `sslrootcert` (or the system's trust store, which does not know the
/// test CA); a server that takes TLS only refuses plain connections.
#[test]
fn the_catalog_connects_over_verified_tls_when_the_url_asks() {
    let Some(mut pg) = Postgres::start() else {
        return;
    };
    let url = pg.create_database("tls");
    let ca = pg.require_tls();
    let verified = format!("{url}?sslmode=verify-full&sslrootcert={}", ca.display());
    let catalog = PostgresCatalog::connect(&verified).unwrap();
    let dir = tempfile::tempdir().unwrap();
    contract(&catalog, &LocalDir::new(dir.path()));

    let said = PostgresCatalog::connect(&url).unwrap_err().to_string();
    assert!(
        said.contains("pg_hba.conf") || said.contains("no encryption"),
        "plain TCP refused: {said}"
    );
    let said = PostgresCatalog::connect(&format!("{url}?sslmode=require"))
        .unwrap_err()
        .to_string();
    assert!(said.to_lowercase().contains("certificate"), "{said}");
    let said = PostgresCatalog::connect(&format!(
        "{url}?sslmode=require&sslrootcert=/nonexistent.pem"
    ))
    .unwrap_err()
    .to_string();
    assert!(said.contains("/nonexistent.pem"), "{said}");
    assert!(!said.contains(common::postgres::PASSWORD), "{said}");
}

fn objects(server: &S3Server) -> Arc<ObjectSegments> {
    let config = ObjectStoreConfig {
        endpoint: Some(server.endpoint.clone()),
        access_key_id: Some(ACCESS_KEY.into()),
        secret_access_key: Some(SECRET_KEY.into()),
        ..ObjectStoreConfig::new(format!("s3://{BUCKET}/skald"))
    };
    Arc::new(ObjectSegments::open(&config).unwrap())
}

fn node(server: &S3Server, url: &str, dir: &std::path::Path) -> Store {
    let config = StoreConfig {
        data_dir: dir.to_path_buf(),
        // Every four segments call for a compaction.
        compact_fan_in: 4,
        ..StoreConfig::default()
    };
    let catalog = Arc::new(PostgresCatalog::connect(url).unwrap());
    Store::open_with_catalog(config, objects(server), catalog).unwrap()
}

/// The sum of `entries` over the segments the catalog lists: every entry
/// pushed exactly once, unless an update was lost (inputs and output both
/// listed) or an output vanished.
fn listed_entries(catalog: &PostgresCatalog) -> u64 {
    catalog.list().unwrap().iter().map(|r| r.entries).sum()
}

#[test]
fn two_stores_compacting_one_tenant_lose_no_update() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.create_database("race");
    let s3 = S3Server::start();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = node(&s3, &url, dir_a.path());
    let b = node(&s3, &url, dir_b.path());
    let t = tenant("t1");
    let t0 = Timestamp::now().0 - 3_600_000_000_000;
    let mut pushed = 0u64;
    let mut expected = Vec::new();
    for round in 0..6i64 {
        // Both nodes flush segments of the same tenant, then both compact
        // at once, over and over.
        for (n, store) in [&a, &b].into_iter().enumerate() {
            for flush in 0..3i64 {
                let entries: Vec<(i64, String)> = (0..50)
                    .map(|i| {
                        let ts = t0 + round * 1_000_000 + flush * 10_000 + n as i64 * 1000 + i;
                        (
                            ts,
                            format!("round {round} node {n} flush {flush} entry {i}"),
                        )
                    })
                    .collect();
                pushed += entries.len() as u64;
                expected.extend(entries.iter().cloned());
                push_and_flush(store, &t, "race", &entries);
            }
        }
        a.refresh_catalog().unwrap();
        b.refresh_catalog().unwrap();
        std::thread::scope(|s| {
            s.spawn(|| a.compact().unwrap());
            s.spawn(|| b.compact().unwrap());
        });
    }
    let check = PostgresCatalog::connect(&url).unwrap();
    assert_eq!(
        listed_entries(&check),
        pushed,
        "{:?}",
        check.list().unwrap()
    );
    // Every listed segment is in the bucket, and both nodes read
    // everything exactly once.
    for r in check.list().unwrap() {
        assert!(
            s3.objects("skald/").contains(&format!("skald/{}", r.key)),
            "{} listed but not stored",
            r.key
        );
    }
    expected.sort();
    for store in [&a, &b] {
        store.refresh_catalog().unwrap();
        assert_eq!(read_app(store, &t, "race"), expected);
    }
    assert!(check.list().unwrap().len() < 36, "compaction did merge");
    a.close().unwrap();
    b.close().unwrap();

    // A third node with an empty data directory serves it all.
    let dir_c = tempfile::tempdir().unwrap();
    let c = node(&s3, &url, dir_c.path());
    assert_eq!(read_app(&c, &t, "race"), expected);
    c.close().unwrap();
}

#[test]
fn retention_on_one_node_and_tenants_apart_are_seen_by_every_node() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.create_database("retention");
    let s3 = S3Server::start();
    let mut config = StoreConfig {
        compact_fan_in: 0,
        ..StoreConfig::default()
    };
    let limits = config.limits.defaults_mut();
    limits.reject_old_samples = false;
    limits.retention_period = skald_model::parse_duration("48h").unwrap();
    let open = |dir: &std::path::Path| {
        let catalog = Arc::new(PostgresCatalog::connect(&url).unwrap());
        let config = StoreConfig {
            data_dir: dir.to_path_buf(),
            ..config.clone()
        };
        Store::open_with_catalog(config, objects(&s3), catalog).unwrap()
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (open(dir_a.path()), open(dir_b.path()));
    let (acme, bravo) = (tenant("acme"), tenant("bravo"));
    let now = Timestamp::now().0;
    let day = 86_400_000_000_000;
    let old = vec![(now - 3 * day, "three days old".to_string())];
    let new = vec![(now - 60_000_000_000, "a minute old".to_string())];
    push_and_flush(&a, &acme, "app", &old);
    push_and_flush(&a, &acme, "app", &new);
    push_and_flush(&a, &bravo, "app", &new);
    b.refresh_catalog().unwrap();
    assert_eq!(read_app(&b, &acme, "app"), [old[0].clone(), new[0].clone()]);
    // Tenants stay apart across nodes.
    assert_eq!(read_app(&b, &bravo, "app"), new);
    assert!(read_app(&b, &tenant("other"), "app").is_empty());

    // Retention applied by the other node: the expired segment leaves the
    // catalog, and the node that wrote it stops serving it.
    let report = b.apply_retention().unwrap();
    assert_eq!(report.segments_deleted, 1, "{report:?}");
    let check = PostgresCatalog::connect(&url).unwrap();
    assert_eq!(
        check.list().unwrap().len(),
        2,
        "{:?}",
        check.list().unwrap()
    );
    a.refresh_catalog().unwrap();
    assert_eq!(read_app(&a, &acme, "app"), new);
    assert_eq!(read_app(&a, &bravo, "app"), new);

    // An object stored but never listed (its node stopped before the
    // catalog took it) is deleted once it has stayed without a row for
    // the grace; listed segments, and the one retention just removed
    // (its row stays for a day), are never taken for orphans.
    let orphan = "tenants/acme/segments/000000999999.seg";
    let bucket = objects(&s3);
    bucket.put_bytes(orphan, b"stored, never listed").unwrap();
    let stored = |key: &str| s3.objects("skald/").contains(&format!("skald/{key}"));
    let before = s3.objects("skald/").len();
    assert_eq!(b.sweep_orphans().unwrap(), 0, "inside the grace");
    assert!(stored(orphan));
    let dir_c = tempfile::tempdir().unwrap();
    let c = {
        let catalog = Arc::new(PostgresCatalog::connect(&url).unwrap());
        let config = StoreConfig {
            data_dir: dir_c.path().to_path_buf(),
            orphan_grace_secs: 0,
            ..config.clone()
        };
        Store::open_with_catalog(config, objects(&s3), catalog).unwrap()
    };
    assert_eq!(c.sweep_orphans().unwrap(), 1);
    assert!(!stored(orphan));
    assert_eq!(s3.objects("skald/").len(), before - 1);
    assert_eq!(read_app(&c, &acme, "app"), new);
    assert_eq!(read_app(&c, &bravo, "app"), new);
    c.close().unwrap();
    a.close().unwrap();
    b.close().unwrap();
}
