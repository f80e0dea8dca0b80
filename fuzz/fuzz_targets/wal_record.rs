//! Arbitrary bytes as a WAL record payload (`skald_store::record`): decode
//! must refuse or succeed without panicking or allocating without bound,
//! and what decodes must encode to bytes that decode to the same thing.

#![no_main]

use libfuzzer_sys::fuzz_target;
use skald_store::record;

fuzz_target!(|data: &[u8]| {
    let Ok((tenant, streams)) = record::decode(data) else {
        return;
    };
    let mut again = Vec::new();
    record::encode(&tenant, &streams, &mut again);
    let (t2, s2) = record::decode(&again).expect("an encoded record decodes");
    assert_eq!(t2, tenant);
    assert_eq!(s2.len(), streams.len());
    for (a, b) in s2.iter().zip(&streams) {
        assert_eq!(a.labels, b.labels);
        assert_eq!(a.entries, b.entries);
    }
});
