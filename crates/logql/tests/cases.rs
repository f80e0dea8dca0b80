//! Runs the golden LogQL cases in `tests/cases/*.txt`.
//!
//! Each case is a `=== name` header, the query (one or more lines), then
//! either `--- print` and the canonical form the query must print as, or
//! `--- error` and text the error message must contain. For printed cases
//! the canonical form must also parse back to the same tree and print
//! unchanged. Lines starting with `//` outside a query are notes.

use skald_logql::parse_expr;
use std::fs;
use std::path::Path;

struct Case {
    file: String,
    name: String,
    query: String,
    kind: String,
    expected: String,
}

/// A case being read: its name, query lines, and the `---` section.
type Pending<'a> = (String, Vec<&'a str>, Option<(String, Vec<&'a str>)>);

fn load(path: &Path) -> Vec<Case> {
    let text = fs::read_to_string(path).unwrap();
    let file = path.file_name().unwrap().to_string_lossy().to_string();
    let mut cases = Vec::new();
    let mut current: Option<Pending> = None;
    let finish = |c: Option<Pending>, cases: &mut Vec<Case>| {
        if let Some((name, query, expect)) = c {
            let (kind, expected) =
                expect.unwrap_or_else(|| panic!("{file}: case {name:?} has no --- section"));
            cases.push(Case {
                file: file.clone(),
                name,
                query: query.join("\n"),
                kind,
                expected: expected.join("\n").trim().to_string(),
            });
        }
    };
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("=== ") {
            finish(current.take(), &mut cases);
            current = Some((name.trim().to_string(), Vec::new(), None));
            continue;
        }
        let Some((_, query, expect)) = current.as_mut() else {
            assert!(
                line.trim().is_empty() || line.starts_with("//"),
                "{file}: text before the first case: {line:?}"
            );
            continue;
        };
        if let Some(kind) = line.strip_prefix("--- ") {
            *expect = Some((kind.trim().to_string(), Vec::new()));
        } else if let Some((_, lines)) = expect.as_mut() {
            if !line.starts_with("//") {
                lines.push(line);
            }
        } else {
            query.push(line);
        }
    }
    finish(current, &mut cases);
    cases
}

#[test]
fn golden_cases() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut paths: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    paths.sort();
    let mut failures = Vec::new();
    let mut count = 0;
    for path in paths {
        for case in load(&path) {
            count += 1;
            let label = format!("{}: {}", case.file, case.name);
            let result = parse_expr(&case.query);
            match (case.kind.as_str(), result) {
                ("print", Ok(expr)) => {
                    let printed = expr.to_string();
                    if printed != case.expected {
                        failures.push(format!(
                            "{label}\n  query:    {}\n  printed:  {printed}\n  expected: {}",
                            case.query, case.expected
                        ));
                        continue;
                    }
                    match parse_expr(&printed) {
                        Ok(again) if again == expr && again.to_string() == printed => {}
                        Ok(again) => failures.push(format!(
                            "{label}\n  canonical form does not round-trip: {printed}\n  \
                             reprinted: {again}"
                        )),
                        Err(e) => {
                            failures.push(format!("{label}\n  canonical form fails to parse: {e}"))
                        }
                    }
                }
                ("print", Err(e)) => failures.push(format!(
                    "{label}\n  query: {}\n  unexpected error: {e}",
                    case.query
                )),
                ("error", Ok(expr)) => failures.push(format!(
                    "{label}\n  query: {}\n  parsed, expected an error: {expr}",
                    case.query
                )),
                ("error", Err(e)) => {
                    let msg = e.to_string();
                    if !msg.contains(&case.expected) {
                        failures.push(format!(
                            "{label}\n  query: {}\n  error:    {msg}\n  expected: {}",
                            case.query, case.expected
                        ));
                    }
                }
                (other, _) => failures.push(format!("{label}: unknown section --- {other}")),
            }
        }
    }
    assert!(count > 0, "no cases found in {}", dir.display());
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
