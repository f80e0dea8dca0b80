//! Arbitrary bytes as a segment file: opening must refuse or succeed
//! without panicking, and every block of what opens must read or refuse
//! (checksums, sizes and versions are checked, never trusted).

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("skald-fuzz-{}.seg", std::process::id()));
    {
        let mut f = std::fs::File::create(&path).expect("temp file");
        f.write_all(data).expect("temp file");
    }
    if let Ok(reader) = skald_chunk::SegmentReader::open(&path) {
        let _ = reader.summary();
        for stream in reader.streams() {
            for chunk in &stream.chunks {
                let _ = reader.read_block(chunk);
                let _ = reader.read_decoded(chunk);
            }
        }
    }
    let _ = std::fs::remove_file(&path);
});
