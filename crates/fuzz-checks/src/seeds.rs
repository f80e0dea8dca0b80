//! Valid inputs for each check, made with the code that writes them
//! (segment writer, WAL, record encoder, token file) where there is one:
//! the starting corpus of the fuzz targets and the material the stable
//! pass mutates.

use crate::files::TENANT;
use prost::Message;
use skald_model::{Entry, Label, LabelSet, TenantId, Timestamp};
use skald_store::record::{self, StreamBatch};
use skald_wire::push::proto::messages;

fn text(items: &[&str]) -> Vec<Vec<u8>> {
    items.iter().map(|s| s.as_bytes().to_vec()).collect()
}

fn with_selector(selector: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![selector];
    out.extend_from_slice(body);
    out
}

fn batch() -> StreamBatch {
    let mut error = Entry::new(Timestamp(1_700_000_000_000_000_000), "level=error msg=boom");
    error.metadata = vec![Label::new("trace_id", "abc")];
    StreamBatch {
        labels: LabelSet::parse(r#"{app="fuzz", env="dev"}"#).expect("labels"),
        entries: vec![
            error,
            Entry::new(Timestamp(1_700_000_001_000_000_000), "level=info msg=fine"),
        ],
    }
}

fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "skald-fuzz-seeds-{}-{name}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating a scratch directory");
    dir
}

fn segment() -> Vec<u8> {
    let dir = scratch_dir("segment");
    let path = dir.join("1.seg");
    let mut writer = skald_chunk::SegmentWriter::create(&path).expect("segment writer");
    let b = batch();
    writer.add_chunk(&b.labels, &b.entries).expect("add chunk");
    let other = LabelSet::parse(r#"{app="other"}"#).expect("labels");
    let entries: Vec<Entry> = (0..50)
        .map(|i| {
            Entry::new(
                Timestamp(1_700_000_000_000_000_000 + i),
                format!("GET /item/{i} 200"),
            )
        })
        .collect();
    writer.add_chunk(&other, &entries).expect("add chunk");
    writer.finish().expect("finish segment");
    let bytes = std::fs::read(&path).expect("reading the segment");
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

fn wal_record() -> Vec<u8> {
    let mut out = Vec::new();
    record::encode(
        &TenantId::new(TENANT).expect("tenant"),
        &[batch()],
        &mut out,
    );
    out
}

fn wal_file() -> Vec<u8> {
    let dir = scratch_dir("wal");
    let (mut wal, _) =
        skald_wal::Wal::open(&dir, Default::default(), |_, _| {}).expect("opening a WAL");
    for _ in 0..3 {
        wal.append(&wal_record()).expect("append");
    }
    wal.sync().expect("sync");
    let bytes = std::fs::read(wal.current_path()).expect("reading the WAL file");
    drop(wal);
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

fn tokens_file() -> Vec<u8> {
    use skald_server::service::{Role, auth::Tokens};
    let dir = scratch_dir("tokens");
    let tokens = Tokens::new(&dir);
    tokens
        .create(Some("ci"), &[TENANT.to_string()], Role::Push, None)
        .expect("creating a token");
    tokens
        .create(
            None,
            &["*".to_string()],
            Role::Admin,
            Some(std::time::Duration::from_secs(60)),
        )
        .expect("creating a token");
    let bytes = std::fs::read(dir.join("tokens.json")).expect("reading the token file");
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

fn push_protobuf() -> Vec<u8> {
    let request = messages::PushRequest {
        streams: vec![messages::StreamAdapter {
            labels: r#"{app="fuzz", env="dev"}"#.into(),
            entries: vec![messages::EntryAdapter {
                timestamp: Some(messages::Timestamp {
                    seconds: 1_700_000_000,
                    nanos: 5,
                }),
                line: "level=error msg=boom".into(),
                parsed: Vec::new(),
                structured_metadata: vec![messages::LabelPairAdapter {
                    name: "trace_id".into(),
                    value: "abc".into(),
                }],
            }],
            hash: 0,
        }],
        format: String::new(),
    };
    request.encode_to_vec()
}

const OTLP_JSON: &str = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"api"}},{"key":"k8s.pod.name","value":{"stringValue":"api-1"}}]},"scopeLogs":[{"scope":{"name":"lib","version":"1"},"logRecords":[{"timeUnixNano":"1700000000000000000","severityNumber":17,"severityText":"ERROR","body":{"stringValue":"boom"},"attributes":[{"key":"user.id","value":{"intValue":"42"}},{"key":"tags","value":{"arrayValue":{"values":[{"boolValue":true},{"doubleValue":1.5}]}}},{"key":"ctx","value":{"kvlistValue":{"values":[{"key":"a","value":{"stringValue":"b"}}]}}}],"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"},{"observedTimeUnixNano":"1700000000000000001","body":{"stringValue":"fine"}}]}]}]}"#;

fn otlp_protobuf() -> Vec<u8> {
    skald_server::otlp::decode(skald_server::otlp::Encoding::Json, OTLP_JSON.as_bytes())
        .expect("the OTLP seed decodes")
        .encode_to_vec()
}

/// The seeds of the check named `target` (empty for an unknown name).
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let day_start = 19_700 * 86_400;
    match target {
        "push_decode" => vec![
            with_selector(
                0x00,
                br#"{"streams":[{"stream":{"app":"fuzz"},"values":[["1700000000000000000","line one"],["1700000000000000001","line two",{"trace_id":"abc"}]]}]}"#,
            ),
            with_selector(0x90, br#"{"streams":[{"stream":{"app":"fuzz"},"values":[["1","x"]]}]}"#),
            with_selector(0x81, &push_protobuf()),
            with_selector(0xa1, &push_protobuf()),
            with_selector(0x01, &snap::raw::Encoder::new().compress_vec(&push_protobuf()).expect("snappy")),
        ],
        "otlp_decode" => vec![
            with_selector(1, OTLP_JSON.as_bytes()),
            with_selector(0, &otlp_protobuf()),
        ],
        "logql_parse" => text(&[
            r#"{app="api", env=~"prod|dev"} |= "error" != "timeout" | json | level="error" | line_format "{{.msg}}""#,
            r#"sum by (level) (count_over_time({app="api"} | logfmt | duration > 1s [5m]))"#,
            r#"topk(3, rate({app="api"} |~ "GET /item/\\d+" | pattern "<method> <path> <status>" | status >= 500 [1m])) / 2"#,
            r#"quantile_over_time(0.99, {app="api"} | json | unwrap bytes(size) [10m]) by (host)"#,
            r#"{app="api"} | label_format out="{{ .a | upper }}" | drop b | keep c | decolorize"#,
            r#"{app="api"} |= ip("10.0.0.0/8") | regexp "(?P<x>\\w+)" | unpack | line_format `{{ __line__ }}`"#,
            // Found by libFuzzer: a `[` in a group name once made the
            // printed query read back differently (now refused, as Go does).
            r#"{apppa="i"}| regexp "(?P<xstdvar_ove[r_time>\\w+)" | unpack | line_format `{{ _l_ine__µs }}`"#,
        ]),
        "template" => text(&[
            "{{.level}} {{.msg | upper}}",
            "{{ if eq .level \"error\" }}E{{ else }}{{ .n | float64 | add 1 }}{{ end }}",
            "{{ range $k, $v := . }}{{ $k }}={{ $v }} {{ end }}",
            "{{ __line__ | trunc 10 }} {{ __timestamp__ | date \"2006-01-02\" }} {{ printf \"%05.1f\" 3.5 }}",
            "{{ regexReplaceAll \"(a+)\" .msg \"$1\" | replace \"x\" \"y\" | default \"none\" }}",
        ]),
        "pattern" => text(&[
            "<ip> - - [<_>] \"<method> <path> <_>\" <status> <size>\u{0}10.0.0.1 - - [01/Jan/2024] \"GET / HTTP/1.1\" 200 512",
            "<method> <path> <status> <took>",
            "level=<level> msg=\"<msg>\"\u{0}level=error msg=\"quoted value\"",
            // The empty pattern over the empty line (found by libFuzzer).
            "\u{0}",
        ]),
        "json_parse" => text(&[
            r#"{"level":"info","a":{"b":[1,2]},"msg":"x y"}"#,
            r#"{"a":"1","b":{"c":[3.5e2,"x"]},"d":[{"x":true},{"x":null}],"e":"\u00e9\n"}"#,
            r#"[1,{"x":"y"}]"#,
        ]),
        "logfmt_parse" => text(&[
            "level=error msg=\"quoted value\" took=12ms size=3KB",
            "a= b=\"\" c d=\"esc \\\" q\" duration=1h2m3s",
        ]),
        "segment_read" => vec![segment()],
        "wal_record" => vec![wal_record()],
        "wal_file" => vec![wal_file()],
        "delete_requests" => vec![
            format!(
                r#"[{{"request_id":"r1","tenant":"{TENANT}","query":"{{app=\"fuzz\"}} |= \"error\"","start_ns":0,"end_ns":5000,"created_ns":1}},{{"request_id":"r2","tenant":"{TENANT}","query":"{{env=~\"d.*\"}}","start_ns":11000,"end_ns":12000,"created_ns":9000000000000000000}}]"#
            )
            .into_bytes(),
            b"[]".to_vec(),
        ],
        "export_jobs" => vec![
            format!(
                r#"{{"id":"00000000000000aa","tenant":"{TENANT}","path":"exports/{TENANT}/out.ndjson","started_ns":1,"state":"completed","error":"","finished_ns":2,"entries":1,"bytes":3,"progress":10000}}"#
            )
            .into_bytes(),
            format!(
                r#"{{"id":"00000000000000aa","tenant":"{TENANT}","path":"exports/{TENANT}/out.ndjson","started_ns":1,"state":"running","error":"","finished_ns":0,"entries":0,"bytes":0,"progress":0}}"#
            )
            .into_bytes(),
        ],
        "tokens_file" => vec![tokens_file()],
        "pattern_files" => vec![
            format!(
                "skald-patterns\t1\n{b}\t3\terror\t{{app=\"fuzz\", env=\"dev\"}}\tuser <_> failed\n{b2}\t5\tinfo\t{{app=\"fuzz\"}}\tGET <_> 200\n\0skald-errors\t1\n{b}\t2\tpanic\tNullPointerException\tat Foo.bar\t{{app=\"fuzz\"}}\tuser <_> failed\tuser 7 failed\n",
                b = day_start + 3_600,
                b2 = day_start + 50_000,
            )
            .into_bytes(),
            format!(
                "\0\0skald-patterns\t2\n=0\terror\t{{app=\"fuzz\"}}\tuser <_> failed\n{b}\t3\t0\n{b2}\t5\t0\n\0skald-errors\t2\n=0\tpanic\tNullPointerException\tat Foo.bar\t{{app=\"fuzz\"}}\tuser <_> failed\n{b}\t2\t0\tuser 7 failed\n{b2}\t1\t0\t\n",
                b = day_start + 3_600,
                b2 = day_start + 50_000,
            )
            .into_bytes(),
            // Found by libFuzzer: a key id of 702,130,000 once sized a
            // table of 16 GB.
            format!(
                "\0\0skald-patterns\t2\n=702130000\terror\t{{app=\"fuzz\"}}\tuser <_> failed\n{b}\t5\t702130000\n",
                b = day_start + 3_600,
            )
            .into_bytes(),
        ],
        _ => Vec::new(),
    }
}
