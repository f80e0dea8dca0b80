//! `skald serve --catalog postgres://...`: the real binary over a real
//! PostgreSQL (started for the test, the store tests' helper) and a real
//! S3 server (`s3s-fs`, in this process). The catalog outlives the data
//! directory: a node started on an empty one serves what another flushed,
//! and sees its delete requests. Bad catalogs stop the server with one
//! line before it listens.

mod common;
#[path = "../../store/tests/common/postgres.rs"]
mod postgres;
#[path = "../../store/tests/common/s3.rs"]
mod s3;

use common::{Server, now_ns};

fn refused(args: &[&str]) -> String {
    common::refused(args, &[])
}
use postgres::{PASSWORD, Postgres};
use s3::{ACCESS_KEY, BUCKET, S3Server, SECRET_KEY};
use serde_json::json;

fn env(s3: &S3Server) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
        ("AWS_ENDPOINT_URL", s3.endpoint.clone()),
    ]
}

fn start(args: &[&str], env: &[(&'static str, String)]) -> Server {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start_with_env(args, &env)
}

#[test]
fn a_node_on_an_empty_data_directory_serves_what_the_catalog_lists() {
    let Some(pg) = Postgres::start() else { return };
    let catalog = pg.create_database("serve");
    let s3 = S3Server::start();
    let env = env(&s3);
    let storage = format!("s3://{BUCKET}/skald");
    let args = ["--storage", storage.as_str(), "--catalog", catalog.as_str()];
    let mut first = start(&args, &env);
    let t0 = now_ns() - 60_000_000_000;
    let values: Vec<_> = (0..300)
        .map(|i| json!([(t0 + i).to_string(), format!("line {i} listed in postgres")]))
        .collect();
    let r = first.push_json(&json!({"streams": [{"stream": {"app": "pg"}, "values": values}]}));
    assert!(r.status().is_success(), "{}", r.text().unwrap());
    let start_s = (t0 / 1_000_000_000 - 10).to_string();
    let delete = reqwest::blocking::Client::new()
        .post(first.url("/loki/api/v1/delete"))
        .query(&[("query", r#"{app="pg"} |= "line 7 ""#), ("start", &start_s)])
        .send()
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(delete, 204);
    assert!(first.stop().success());
    assert!(
        first.log().contains("catalog in PostgreSQL"),
        "{}",
        first.log()
    );

    // Another node: new data directory, same bucket and catalog.
    let second = start(&args, &env);
    let lines = second.lines(r#"{app="pg"}"#, 1000, "forward");
    assert_eq!(lines.len(), 299, "the delete request applies here too");
    assert!(!lines.iter().any(|l| l == "line 7 listed in postgres"));
    let listed = second.get_json("/loki/api/v1/delete", &[]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    // Nothing of the catalog was written to the data directory.
    assert!(!second.data_dir().join("delete_requests.json").exists());
}

#[test]
fn bad_credentials_no_server_and_a_newer_schema_stop_it_with_one_line() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.create_database("refusals");

    let wrong = url.replace(PASSWORD, "not-the-password");
    let said = refused(&["--catalog", &wrong]);
    assert!(said.contains("password authentication failed"), "{said}");
    assert!(!said.contains("not-the-password"), "{said}");

    let nobody = format!("postgres://skald@127.0.0.1:{}/db", common::free_port());
    let said = refused(&["--catalog", &nobody]);
    assert!(said.contains("--catalog"), "{said}");

    let said = refused(&["--catalog", "mysql://db/skald"]);
    assert!(said.contains("postgres://"), "{said}");

    // A catalog a newer skald wrote.
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start_on(data.path(), &["--catalog", &url]);
    assert!(server.stop().success());
    pg.execute("refusals", "UPDATE skald_schema SET version = 42");
    let said = refused(&["--catalog", &url]);
    assert!(
        said.contains("schema version 42, newer than this skald knows"),
        "{said}"
    );
    assert!(!said.contains(PASSWORD), "{said}");
}
