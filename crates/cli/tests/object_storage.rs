//! `skald serve --storage s3://...`: the real binary against a real S3
//! server (`s3s-fs`, run inside this test process on a loopback port, the
//! same helper the store's tests use). Credentials reach the binary as
//! `AWS_*` variables, as in production.

mod common;
#[path = "../../store/tests/common/s3.rs"]
mod s3;

use common::{Server, now_ns, refused};
use s3::{ACCESS_KEY, BUCKET, S3Server, SECRET_KEY};
use serde_json::json;

fn credentials(secret: &str) -> [(&'static str, String); 2] {
    [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
        ("AWS_SECRET_ACCESS_KEY", secret.to_string()),
    ]
}

#[test]
fn segments_go_to_the_bucket_and_a_fresh_data_directory_reads_them_back() {
    let s3 = S3Server::start();
    let url = format!("s3://{BUCKET}/skald");
    let env = credentials(SECRET_KEY);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut server =
        Server::start_with_env(&["--storage", &url, "--s3-endpoint", &s3.endpoint], &env);
    let t0 = now_ns() - 60_000_000_000;
    let values: Vec<_> = (0..500)
        .map(|i| json!([(t0 + i).to_string(), format!("line {i} from the bucket")]))
        .collect();
    let r = server.push_json(&json!({"streams": [{"stream": {"app": "s3"}, "values": values}]}));
    assert!(r.status().is_success(), "{}", r.text().unwrap());
    assert_eq!(server.lines(r#"{app="s3"}"#, 1000, "forward").len(), 500);

    // A clean stop flushes the head: the segment is uploaded, nothing of
    // it stays in the data directory.
    assert!(server.stop().success());
    let segments: Vec<String> = s3
        .objects("skald/tenants/")
        .into_iter()
        .filter(|k| k.ends_with(".seg"))
        .collect();
    assert_eq!(segments.len(), 1, "{:?}", s3.objects(""));
    assert!(!server.data_dir().join("tenants").exists());

    // Without the data directory at all, everything comes from the bucket.
    std::fs::remove_dir_all(server.data_dir()).unwrap();
    server.start_again();
    let lines = server.lines(r#"{app="s3"}"#, 1000, "forward");
    assert_eq!(lines.len(), 500);
    assert_eq!(lines[7], "line 7 from the bucket");
    assert!(
        server.lines(r#"{app="s3"} |= "line 42 ""#, 10, "forward") == ["line 42 from the bucket"]
    );

    // What was fetched, and what the cache served, is in /metrics.
    let (status, metrics) = server.get("/metrics", &[]);
    assert_eq!(status, 200);
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing from /metrics"))
            .trim()
            .parse()
            .unwrap()
    };
    assert!(value("skald_object_store_get_requests_total") > 0);
    assert!(value("skald_object_store_get_bytes_total") > 0);
    assert!(
        value("skald_object_cache_hits_total") > 0,
        "the second query reads cached blocks"
    );
}

#[test]
fn bad_credentials_a_missing_bucket_or_no_server_stop_it_with_one_line() {
    let s3 = S3Server::start();
    let endpoint = ["--s3-endpoint", s3.endpoint.as_str()];
    let url = format!("s3://{BUCKET}/skald");

    let said = refused(
        &[&["--storage", url.as_str()][..], &endpoint[..]].concat(),
        &credentials("wrong"),
    );
    assert!(
        said.contains("storage s3://logs/skald is not usable"),
        "{said}"
    );
    assert!(said.contains("403"), "{said}");

    let said = refused(
        &[&["--storage", "s3://no-such-bucket"][..], &endpoint[..]].concat(),
        &credentials(SECRET_KEY),
    );
    assert!(said.contains("s3://no-such-bucket"), "{said}");

    let nobody = format!("http://127.0.0.1:{}", common::free_port());
    let said = refused(
        &["--storage", &url, "--s3-endpoint", &nobody],
        &credentials(SECRET_KEY),
    );
    assert!(said.contains("is not usable"), "{said}");

    let said = refused(&["--storage", "gs://elsewhere"], &credentials(SECRET_KEY));
    assert!(said.contains("s3://bucket"), "{said}");
}
