//! Template cases: Go's language and Loki's documented function examples.

use super::*;

struct D {
    labels: Vec<(&'static str, &'static str)>,
    line: &'static str,
    ts: i64,
}

impl Data for D {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }
    fn labels(&self) -> Vec<(String, String)> {
        self.labels
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }
    fn line(&self) -> &str {
        self.line
    }
    fn timestamp(&self) -> i64 {
        self.ts
    }
}

fn data() -> D {
    D {
        labels: vec![
            ("method", "GET"),
            ("path", "/api/v1 users"),
            ("status", "200"),
            ("n", "5"),
            ("f", "2.5"),
            ("json", r#"{"a":{"b":[1,"x"]},"c":"d"}"#),
            ("empty", ""),
            ("epoch", "1612325106"),
        ],
        line: "the line",
        // 2021-02-03T04:05:06.789Z
        ts: 1_612_325_106_789_000_000,
    }
}

fn render(src: &str) -> Result<String, String> {
    let t = Template::parse(src)?;
    let mut out = String::new();
    t.execute(&data(), &mut out)?;
    Ok(out)
}

fn ok(src: &str) -> String {
    render(src).unwrap_or_else(|e| panic!("{src}: {e}"))
}

#[test]
fn fields_pipelines_and_trim_markers() {
    assert_eq!(ok("{{.method}} {{ .status }}"), "GET 200");
    assert_eq!(ok("{{.missing}}|"), "|");
    assert_eq!(
        ok("{{ .path | replace \" \" \"_\" | trunc 5 | upper }}"),
        "/API/"
    );
    assert_eq!(ok("a  {{- .method -}}  b"), "aGETb");
    assert_eq!(ok("{{/* a comment */}}x"), "x");
    assert_eq!(ok("{{ `raw \"q\"` }}"), "raw \"q\"");
    assert_eq!(
        ok("{{ 'a' }} {{ 1.5 }} {{ true }} {{ 0x10 }}"),
        "97 1.5 true 16"
    );
    assert_eq!(ok("{{ (fromJson .json).c }}"), "d");
    assert_eq!(ok("{{ __line__ | ToUpper }}"), "THE LINE");
}

#[test]
fn control_structures_and_variables() {
    assert_eq!(
        ok(r#"{{ if and (contains "he" "hello") (contains "llo" "hello") }}yes{{end}}"#),
        "yes"
    );
    assert_eq!(
        ok(
            r#"{{ if contains "ErrTimeout" .method }}timeout{{else if contains "GE" .method}}yes{{else}}no{{end}}"#
        ),
        "yes"
    );
    assert_eq!(ok(r#"{{ if eq .status "200" "201" }}ok{{ end }}"#), "ok");
    assert_eq!(ok(r#"{{ if not .empty }}empty{{ end }}"#), "empty");
    assert_eq!(ok(r#"{{ if or .empty .n }}{{ .n }}{{ end }}"#), "5");
    assert_eq!(
        ok(r#"{{ $x := .method }}{{ $x = print $x "!" }}{{ $x }}"#),
        "GET!"
    );
    assert_eq!(
        ok(r#"{{ with .empty }}set{{ else }}unset{{ end }}"#),
        "unset"
    );
    assert_eq!(ok(r#"{{ with fromJson .json }}{{ .c }}{{ end }}"#), "d");
    assert_eq!(
        ok(r#"{{ range $i, $e := (fromJson .json).a.b }}{{ $i }}={{ $e }};{{ end }}"#),
        "0=1;1=x;"
    );
    assert_eq!(
        ok(r#"{{ range $k, $v := fromJson .json }}{{ $k }} {{ end }}"#),
        "a c "
    );
    assert_eq!(
        ok(r#"{{ range 5 }}{{ if eq . 3 }}{{ break }}{{ end }}{{ . }}{{ end }}"#),
        "012"
    );
    assert_eq!(
        ok(r#"{{ range (fromJson "[]") }}x{{ else }}none{{ end }}"#),
        "none"
    );
    assert_eq!(
        ok(
            r#"{{ if lt 1 2 }}a{{ end }}{{ if ge 2.5 2.5 }}b{{ end }}{{ if gt "b" "a" }}c{{ end }}"#
        ),
        "abc"
    );
    assert_eq!(
        ok(r#"{{ len .method }} {{ index (fromJson .json) "c" }}"#),
        "3 d"
    );
}

#[test]
fn parse_errors_are_clear() {
    for (src, want) in [
        ("{{ .a ", "unclosed action"),
        ("{{ if .a }}x", "missing {{end}}"),
        ("{{ end }}", "unexpected {{end}}"),
        ("{{ nope .a }}", "function \"nope\" not defined"),
        ("{{ define \"x\" }}{{ end }}", "not supported"),
        ("{{ \"unterminated }}", "unclosed action"),
        ("{{ break }}", "outside {{range}}"),
        ("{{ (.a }}", "unclosed left paren"),
    ] {
        let err = Template::parse(src).unwrap_err();
        assert!(err.contains(want), "{src}: {err}");
    }
}

#[test]
fn execution_errors() {
    assert!(
        render(r#"{{ if gt .status 100 }}x{{ end }}"#)
            .unwrap_err()
            .contains("incompatible types")
    );
    assert!(
        render(r#"{{ div 1 0 }}"#)
            .unwrap_err()
            .contains("divide by zero")
    );
    assert!(
        render(r#"{{ .method.x }}"#)
            .unwrap_err()
            .contains("can't evaluate field x")
    );
    assert!(
        render(r#"{{ $nope }}"#)
            .unwrap_err()
            .contains("undefined variable")
    );
}

#[test]
fn string_functions_from_the_docs() {
    assert_eq!(ok(r#"{{.method | ToLower}}"#), "get");
    assert_eq!(
        ok(r#"{{ToUpper "This is a string" | ToLower}}"#),
        "this is a string"
    );
    assert_eq!(
        ok(r#"{{ Replace "This is a string" " " "-" -1 }}"#),
        "This-is-a-string"
    );
    assert_eq!(ok(r#"{{ Replace "aaa" "a" "b" 2 }}"#), "bba");
    assert_eq!(
        ok(
            r#"{{ Trim "   abc   " " " }}|{{ TrimLeft "xxabcxx" "x" }}|{{ TrimRight "xxabcxx" "x" }}"#
        ),
        "abc|abcxx|xxabc"
    );
    assert_eq!(
        ok(
            r#"{{ TrimPrefix "Hello, World" "Hello, " }}|{{ TrimSuffix "Hello, World" ", World" }}|{{ TrimSpace "  x \n" }}"#
        ),
        "World|Hello|x"
    );
    assert_eq!(ok(r#"{{ regexReplaceAll "(a*)bc" .x "${1}a" }}"#), "");
    assert_eq!(
        ok(r#"{{ regexReplaceAll "(ts=)" "ts=1" "timestamp=" }}"#),
        "timestamp=1"
    );
    assert_eq!(
        ok(r#"{{ regexReplaceAll "a(x*)b" "-ab-axxb-" "${1}W" }}"#),
        "-W-xxW-"
    );
    assert_eq!(
        ok(r#"{{ regexReplaceAllLiteral "a(x*)b" "-ab-axxb-" "${1}" }}"#),
        "-${1}-${1}-"
    );
    assert_eq!(ok(r##"{{ regexReplaceAll "\\d+" "a1b22" "#" }}"##), "a#b#");
    assert_eq!(
        ok(r#"{{ .empty | default "-" }}|{{ default "-" .method }}"#),
        "-|GET"
    );
    assert_eq!(
        ok(r#"{{ contains "GE" .method }} {{ hasPrefix "/api" .path }} {{ hasSuffix "x" .path }}"#),
        "true true false"
    );
    assert_eq!(
        ok(r#"{{ indent 4 "a\nb" }}|{{ nindent 2 "c" }}"#),
        "    a\n    b|\n  c"
    );
    assert_eq!(ok(r#"{{ repeat 3 "ab" }}"#), "ababab");
    assert_eq!(
        ok(r#"{{ substr 0 5 "hello world" }}|{{ substr 6 100 "hello world" }}"#),
        "hello|world"
    );
    assert_eq!(
        ok(r#"{{ trunc 5 "hello world" }}|{{ trunc -5 "hello world" }}|{{ trunc 50 "hi" }}"#),
        "hello|world|hi"
    );
    assert_eq!(
        ok(
            r#"{{ alignLeft 5 "hello world" }}|{{ alignRight 5 "hello world" }}|{{ alignLeft 4 "ab" }}|{{ alignRight 4 "ab" }}"#
        ),
        "hello|world|ab  |  ab"
    );
    assert_eq!(
        ok(r#"{{ "hello" | b64enc }}|{{ "aGVsbG8=" | b64dec }}"#),
        "aGVsbG8=|hello"
    );
    assert_eq!(ok(r#"{{ __line__ | count "e" }}"#), "2");
    assert_eq!(
        ok(r#"{{ .path | urlencode }}|{{ "a%20b+c" | urldecode }}"#),
        "%2Fapi%2Fv1+users|a b c"
    );
    assert_eq!(
        ok(r#"{{ printf "%s-%05.1f" .method 3.14159 }}"#),
        "GET-003.1"
    );
    assert_eq!(ok(r#"{{ print "a" 1 2 "b" }}"#), "a1 2b");
}

#[test]
fn math_functions_from_the_docs() {
    assert_eq!(
        ok(r#"{{ add 3 2 5 }} {{ sub 5 2 }} {{ mul 2 3 4 }} {{ div 10 3 }} {{ mod 10 3 }}"#),
        "10 3 24 3 1"
    );
    assert_eq!(ok(r#"{{ add .n 1 }} {{ mul .f 2 }}"#), "6 0");
    assert_eq!(
        ok(r#"{{ addf 1.5 2 }} {{ subf 5 1.5 }} {{ mulf .f 2 }} {{ divf 10 4 }}"#),
        "3.5 3.5 5 2.5"
    );
    assert_eq!(
        ok(r#"{{ ceil 123.001 }} {{ floor 123.999 }} {{ round 123.555555 3 }} {{ round 2.5 0 }}"#),
        "124 123 123.556 3"
    );
    assert_eq!(
        ok(r#"{{ max 1 2 3 }} {{ min 1 2 3 }} {{ maxf 1 2.5 }} {{ minf 1.5 2 }}"#),
        "3 1 2.5 1.5"
    );
    assert_eq!(
        ok(r#"{{ "1h30m" | duration }} {{ duration_seconds "250ms" }} {{ bytes "1KB" }}"#),
        "5400 0.25 1000"
    );
}

#[test]
fn time_functions_from_the_docs() {
    assert_eq!(
        ok("{{ __timestamp__ }}"),
        "2021-02-03 04:05:06.789 +0000 UTC"
    );
    assert_eq!(
        ok(r#"{{ __timestamp__ | date "2006-01-02T15:04:05.00Z07:00" }}"#),
        "2021-02-03T04:05:06.78Z"
    );
    assert_eq!(ok("{{ __timestamp__ | unixEpoch }}"), "1612325106");
    assert_eq!(ok("{{ __timestamp__ | unixEpochMillis }}"), "1612325106789");
    assert_eq!(
        ok("{{ __timestamp__ | unixEpochNanos }}"),
        "1612325106789000000"
    );
    assert_eq!(
        ok(r#"{{ toDate "2006-01-02" "2021-11-02" | date "2006/01/02" }}"#),
        "2021/11/02"
    );
    assert_eq!(
        ok(r#"{{ .epoch | unixToTime | date "2006-01-02" }}"#),
        "2021-02-03"
    );
    assert_eq!(ok(r#"{{ unixToTime "18000" | unixEpoch }}"#), "1555200000");
    assert_eq!(
        ok(r#"{{ unixToTime "1612325106789" | unixEpochMillis }}"#),
        "1612325106789"
    );
    assert!(render(r#"{{ unixToTime "123" }}"#).is_err());
    let now = ok("{{ now | unixEpoch }}").parse::<i64>().unwrap();
    assert!(now > 1_700_000_000);
}
