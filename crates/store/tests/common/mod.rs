//! Helpers shared by the store's integration tests.

#![allow(dead_code)]

pub mod contract;
pub mod postgres;
pub mod s3;

pub use skald_store::storage::SegmentStore;

use skald_model::{Entry, MatchOp, Matcher, TenantId, Timestamp};
use skald_store::{Snapshot, Store};

/// Every entry a snapshot's sources hold, read as a query would.
pub fn snapshot_entries(snap: &Snapshot) -> Vec<Entry> {
    snap.streams
        .iter()
        .flat_map(|s| &s.sources)
        .flat_map(|src| Store::read_source(src).unwrap())
        .collect()
}

/// (timestamp, line) of every entry of `tenant`'s streams labelled
/// `app=<app>`, sorted; exact duplicates kept.
pub fn read_app(store: &Store, tenant: &TenantId, app: &str) -> Vec<(i64, String)> {
    let m = Matcher::new("app", MatchOp::Eq, app).unwrap();
    let snap = store.snapshot(tenant, &[m], Timestamp(0), Timestamp::MAX);
    let mut out: Vec<(i64, String)> = snapshot_entries(&snap)
        .into_iter()
        .map(|e| (e.ts.0, e.line))
        .collect();
    out.sort();
    out
}

/// Pushes `entries` to the stream `{app="<app>"}` of `tenant` and flushes.
pub fn push_and_flush(store: &Store, tenant: &TenantId, app: &str, entries: &[(i64, String)]) {
    let batch = skald_store::StreamBatch {
        labels: skald_model::LabelSet::parse(&format!(r#"{{app="{app}"}}"#)).unwrap(),
        entries: entries
            .iter()
            .map(|(ts, l)| Entry::new(Timestamp(*ts), l.clone()))
            .collect(),
    };
    store.push(tenant, vec![batch]).unwrap();
    store.flush().unwrap();
}
