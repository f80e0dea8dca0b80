use super::*;
use proptest::prelude::*;

fn build(lines: &[&str]) -> BlockColumns {
    let mut b = ColumnBuilder::new();
    for l in lines {
        b.add_line(l, false);
    }
    let mut out = Vec::new();
    let len = b.finish(3, &mut out);
    assert_eq!(len, out.len());
    decode(&out, ColumnDetail::Codes).unwrap()
}

#[test]
fn rows_are_classified_and_fields_named_as_the_parsers_name_them() {
    let c = build(&[
        r#"{"level":"info","req":{"status":200,"took":"15ms"},"tags":["a"],"x":null}"#,
        r#"level=error status=500 took=800ms empty= weird.key=1"#,
        r#"127.0.0.1 - - [10/Oct/2000] "GET / HTTP/1.0" 200"#,
        r#"{"level": "warn", "__error__": "x"}"#,
        r#"{"level": "debug", "level": "error"}"#,
    ]);
    assert_eq!(c.rows, 5);
    assert_eq!(c.json_rows, 2);
    assert_eq!(c.logfmt_rows, 1);
    assert!(!c.covers_all(FieldFormat::Json));
    assert!(c.keys_complete(FieldFormat::Json));
    let level = c.column(FieldFormat::Json, "level").unwrap();
    assert_eq!(level.present, 2);
    let d = level.dictionary.as_ref().unwrap();
    // The last of duplicate keys wins, as in the parser.
    assert_eq!(
        d.values,
        vec![("info".to_string(), 1), ("error".to_string(), 1)]
    );
    assert_eq!(d.codes, vec![1, 0, 0, 0, 2]);
    let status = c.column(FieldFormat::Json, "req_status").unwrap();
    assert_eq!(status.number, Some((200.0, 200.0)));
    assert_eq!(status.duration, None);
    let took = c.column(FieldFormat::Json, "req_took").unwrap();
    assert_eq!(took.duration, Some((15_000_000, 15_000_000)));
    assert_eq!(took.number, None);
    assert_eq!(
        c.column(FieldFormat::Json, "x")
            .unwrap()
            .dictionary
            .as_ref()
            .unwrap()
            .values[0]
            .0,
        ""
    );
    assert!(c.column(FieldFormat::Json, "tags").is_none());
    // logfmt: empty values give no field, names are sanitised.
    assert!(c.column(FieldFormat::Logfmt, "empty").is_none());
    assert!(c.column(FieldFormat::Logfmt, "weird_key").is_some());
    let took = c.column(FieldFormat::Logfmt, "took").unwrap();
    assert_eq!(took.duration, Some((800_000_000, 800_000_000)));
}

#[test]
fn high_cardinality_keeps_statistics_only() {
    let lines: Vec<String> = (0..100)
        .map(|i| format!("level=info duration={i}ms id=x{i}"))
        .collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let c = build(&refs);
    assert!(c.covers_all(FieldFormat::Logfmt));
    let d = c.column(FieldFormat::Logfmt, "duration").unwrap();
    assert!(d.dictionary.is_none());
    assert_eq!(d.duration, Some((0, 99_000_000)));
    assert_eq!(d.present, 100);
    let id = c.column(FieldFormat::Logfmt, "id").unwrap();
    assert!(id.dictionary.is_none() && id.number.is_none() && id.duration.is_none());
    assert!(
        c.column(FieldFormat::Logfmt, "level")
            .unwrap()
            .dictionary
            .is_some()
    );
}

#[test]
fn too_many_keys_mark_the_key_set_incomplete() {
    let line: String = (0..MAX_COLUMN_KEYS + 5)
        .map(|i| format!("k{i}=v "))
        .collect();
    let c = build(&[&line, "a=1"]);
    assert!(!c.keys_complete(FieldFormat::Logfmt));
    assert!(c.keys_complete(FieldFormat::Json));
    assert_eq!(
        c.columns.len(),
        MAX_COLUMN_KEYS,
        "names past the bound get no column"
    );
}

#[test]
fn malformed_logfmt_and_metadata_and_escapes_are_counted() {
    let mut b = ColumnBuilder::new();
    b.add_line(r#"a=1 =bad"#, true);
    b.add_line(r#"msg="a \"quoted\" word""#, false);
    let mut out = Vec::new();
    b.finish(3, &mut out);
    let c = decode(&out, ColumnDetail::Codes).unwrap();
    assert_eq!(
        (c.rows, c.logfmt_rows, c.metadata_rows, c.escaped_rows),
        (2, 1, 1, 1)
    );
    // The builder starts over after finish.
    assert_eq!(b.rows(), 0);
}

#[test]
fn damaged_bytes_are_errors() {
    let mut b = ColumnBuilder::new();
    for i in 0..20 {
        b.add_line(&format!("level=info n={i}"), false);
    }
    let mut out = Vec::new();
    b.finish(3, &mut out);
    assert!(decode(&out[..out.len() - 1], ColumnDetail::Codes).is_err());
    let mut bad = out.clone();
    bad[0] = 9;
    assert!(
        decode(&bad, ColumnDetail::Codes)
            .unwrap_err()
            .what
            .contains("encoding")
    );
    let mut bad = out.clone();
    bad[1] ^= 0x01;
    assert!(decode(&bad, ColumnDetail::Codes).is_err());
    // The header alone does not need the codes.
    let header = decode(&out, ColumnDetail::Header).unwrap();
    assert!(
        header
            .columns
            .iter()
            .all(|c| c.dictionary.as_ref().is_none_or(|d| d.codes.is_empty()))
    );
}

fn arb_line() -> impl Strategy<Value = String> {
    let key = prop_oneof!["level", "status", "path", "[a-z]{1,3}", "a.b", "1x"];
    let value = prop_oneof![
        "info|error|warn",
        "[0-9]{1,4}",
        "[0-9]{1,3}(ms|s)",
        "[a-z ]{0,6}",
        "\\PC{0,5}",
    ];
    let pairs = proptest::collection::vec((key, value), 0..6);
    (pairs, 0..3u8).prop_map(|(pairs, shape)| match shape {
        0 => pairs
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join(" "),
        1 => {
            let members: Vec<String> = pairs.iter().map(|(k, v)| format!("{k:?}:{v:?}")).collect();
            format!("{{{}}}", members.join(","))
        }
        _ => pairs
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join("\""),
    })
}

proptest! {
    /// Every column describes exactly the values read again line by line.
    #[test]
    fn columns_agree_with_the_lines(lines in proptest::collection::vec(arb_line(), 1..40)) {
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let c = build(&refs);
        prop_assert_eq!(c.rows as usize, lines.len());
        prop_assert!(c.json_rows + c.logfmt_rows <= c.rows);
        for col in &c.columns {
            let Some(d) = &col.dictionary else { continue };
            for (row, line) in lines.iter().enumerate() {
                let mut b = ColumnBuilder::new();
                let format = b.read_fields(line);
                let value = b.row[..b.row_len].iter().find(|(n, _)| *n == col.name).map(|(_, v)| v.as_str());
                let code = d.codes[row];
                if format == Some(col.format) {
                    match value {
                        Some(v) => prop_assert_eq!(d.values[usize::from(code) - 1].0.as_str(), v),
                        None => prop_assert_eq!(code, 0),
                    }
                } else {
                    prop_assert_eq!(code, 0);
                }
            }
        }
    }

    #[test]
    fn damaged_columns_never_panic(lines in proptest::collection::vec(arb_line(), 1..20), pos in any::<proptest::sample::Index>(), byte in any::<u8>()) {
        let mut b = ColumnBuilder::new();
        for l in &lines {
            b.add_line(l, false);
        }
        let mut out = Vec::new();
        b.finish(3, &mut out);
        let i = pos.index(out.len());
        out[i] = byte;
        let _ = decode(&out, ColumnDetail::Codes);
        let _ = decode(&out, ColumnDetail::Header);
        let _ = decode_header(&out[i..]);
    }
}
