//! The contract of `SegmentStore`, run against every implementation: the
//! local directory and memory (unit tests of `storage`) and S3
//! (`tests/object_storage.rs`).

use super::SegmentStore;
use std::io;
use std::path::Path;

/// What every segment store must do: publish, read whole and by range,
/// list by prefix, rename, delete (twice), open for range reads.
pub fn contract(store: &dyn SegmentStore, scratch: &Path) {
    store.put_bytes("tenants/x/a", b"hello").unwrap();
    let file = scratch.join("upload");
    std::fs::write(&file, b"world!").unwrap();
    store.put_file("tenants/x/b", &file).unwrap();
    store.put_bytes("tenantsx/c", b"other").unwrap();
    assert_eq!(store.get("tenants/x/a").unwrap(), b"hello");
    assert_eq!(store.get_range("tenants/x/b", 1..4).unwrap(), b"orl");
    let mut listed: Vec<(String, u64)> = store
        .list("tenants/")
        .unwrap()
        .into_iter()
        .map(|l| (l.key, l.size))
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            ("tenants/x/a".to_string(), 5),
            ("tenants/x/b".to_string(), 6)
        ]
    );
    store.rename("tenants/x/a", "quarantine/x/a").unwrap();
    assert_eq!(store.get("quarantine/x/a").unwrap(), b"hello");
    let err = store.get("tenants/x/a").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    assert_eq!(
        store.rename("tenants/x/a", "y").unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    store.delete("tenants/x/b").unwrap();
    store.delete("tenants/x/b").unwrap();
    store.sync_deletes("tenants/x/b").unwrap();
    assert!(store.list("tenants/").unwrap().is_empty());
    let reader = store.open("quarantine/x/a").unwrap();
    assert_eq!(reader.len(), 5);
    let mut buf = [0u8; 2];
    reader.read_exact_at(&mut buf, 3).unwrap();
    assert_eq!(&buf, b"lo");
    assert!(reader.read_exact_at(&mut buf, 4).is_err());
    assert!(store.open("tenants/x/gone").is_err());
}
