//! The ruler against the real components: the `skald` binary, Debian's
//! `prometheus-alertmanager` and `prometheus`, each on free loopback
//! ports in temporary directories (`.ci/run` installs the packages).
//!
//! Timing comes from configuration only: evaluation every second,
//! `resend_delay` 1 s, `for_grace_period` 5 s; rules keep their `for: 30s`.
//! Waits poll with generous deadlines; nothing asserts a duration.

mod common;

use common::{Server, free_port, now_ns};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn binary(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "{name} not found: these tests need `apt-get install -y prometheus prometheus-alertmanager` (.ci/run does it)"
    );
}

/// A real Alertmanager or Prometheus process, killed on drop.
struct Component {
    child: Child,
    port: u16,
    /// `https` for an Alertmanager behind TLS.
    scheme: &'static str,
    dir: tempfile::TempDir,
    name: &'static str,
}

impl Component {
    fn url(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}{path}", self.scheme, self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    fn wait_ready(&mut self, client: &reqwest::blocking::Client) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client.get(self.url("/-/ready")).send()
                && r.status().is_success()
            {
                return;
            }
            if let Some(st) = self.child.try_wait().unwrap() {
                panic!("{} exited with {st}:\n{}", self.name, self.log());
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(
    name: &'static str,
    bin: &str,
    port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
) -> Component {
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let child = Command::new(binary(bin))
        .args(&args)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {bin}: {e}"));
    Component {
        child,
        port,
        scheme: "http",
        dir,
        name,
    }
}

/// Alertmanager, notifying `webhook` (a URL) quickly: group_wait and
/// group_interval of a second.
fn alertmanager(port: u16, webhook: &str) -> Component {
    alertmanager_with_web_config(port, webhook, None)
}

/// Alertmanager as [`alertmanager`], with a `--web.config.file` (TLS,
/// basic auth) when given.
fn alertmanager_with_web_config(port: u16, webhook: &str, web: Option<&str>) -> Component {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: {webhook}\n        send_resolved: true\n"
    );
    std::fs::write(dir.path().join("am.yml"), config).unwrap();
    let mut args = vec![
        "--config.file=am.yml".to_string(),
        "--storage.path=data".to_string(),
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--cluster.listen-address=".to_string(),
    ];
    if let Some(web) = web {
        std::fs::write(dir.path().join("web.yml"), web).unwrap();
        args.push("--web.config.file=web.yml".to_string());
    }
    let mut am = spawn("alertmanager", "prometheus-alertmanager", port, dir, args);
    if web.is_some_and(|w| w.contains("tls_server_config")) {
        am.scheme = "https";
    }
    am
}

fn prometheus(port: u16) -> Component {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("prometheus.yml"), "global: {}\n").unwrap();
    let args = vec![
        "--config.file=prometheus.yml".to_string(),
        "--storage.tsdb.path=data".to_string(),
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--web.enable-remote-write-receiver".to_string(),
    ];
    spawn("prometheus", "prometheus", port, dir, args)
}

/// What a webhook received: the `Authorization` header, if any, and the body.
type Hooks = Arc<Mutex<Vec<(Option<String>, Value)>>>;

/// A webhook receiver (for Alertmanager's notifications or the ruler's
/// own): every request, in order.
fn webhook_sink() -> (String, Hooks) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut len = 0usize;
            let mut authorization = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let l = line.trim_end().to_ascii_lowercase();
                if l.is_empty() {
                    break;
                }
                if let Some(v) = l.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if l.starts_with("authorization:") {
                    authorization =
                        Some(line.trim_end()["authorization:".len()..].trim().to_string());
                }
            }
            let mut body = vec![0; len];
            if reader.read_exact(&mut body).is_ok()
                && let Ok(v) = serde_json::from_slice::<Value>(&body)
            {
                sink.lock().unwrap().push((authorization, v));
            }
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (url, got)
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Polls `f` until it gives a value; panics with `what` after `secs`.
fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A skald with a `[ruler]` section (TOML lines) in its configuration.
fn skald(ruler: &str) -> (Server, tempfile::TempDir) {
    let cfg_dir = tempfile::tempdir().unwrap();
    let path = cfg_dir.path().join("skald.toml");
    std::fs::write(&path, format!("[ruler]\n{ruler}")).unwrap();
    let server = Server::start_with(&["--config", path.to_str().unwrap()]);
    (server, cfg_dir)
}

/// `n` lines with "error" for `app`, all at `ts` (nanoseconds) plus a
/// nanosecond each.
fn push_errors(s: &Server, app: &str, n: usize, ts: i64) {
    let values: Vec<Value> = (0..n)
        .map(|i| {
            json!([
                (ts + i as i64).to_string(),
                format!("level=error msg=\"boom {i}\"")
            ])
        })
        .collect();
    let r = s.push_json(&json!({"streams": [{"stream": {"app": app}, "values": values}]}));
    assert_eq!(r.status().as_u16(), 204);
}

fn post_rules(s: &Server, ns: &str, yaml: &str) -> (u16, String) {
    let r = s
        .client
        .post(s.url(&format!("/loki/api/v1/rules/{ns}")))
        .header("Content-Type", "application/yaml")
        .body(yaml.to_string())
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

/// Skald's alerts named `name`: (state, activeAt).
fn skald_alert(s: &Server, name: &str) -> Option<(String, String)> {
    let v = s.get_json("/prometheus/api/v1/alerts", &[]);
    v["data"]["alerts"].as_array()?.iter().find_map(|a| {
        (a["labels"]["alertname"] == name).then(|| {
            (
                a["state"].as_str().unwrap().to_string(),
                a["activeAt"].as_str().unwrap().to_string(),
            )
        })
    })
}

/// Alertmanager's alerts named `name`.
fn am_alerts(am: &Component, c: &reqwest::blocking::Client, name: &str) -> Vec<Value> {
    let v: Value = c
        .get(am.url("/api/v2/alerts"))
        .send()
        .and_then(|r| r.json())
        .unwrap_or(Value::Null);
    v.as_array()
        .map(|a| {
            a.iter()
                .filter(|x| x["labels"]["alertname"] == name)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

fn metric(s: &Server, name_and_labels: &str) -> f64 {
    let (_, text) = s.get("/metrics", &[]);
    text.lines()
        .filter(|l| l.starts_with(name_and_labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

const ERROR_RULES: &str = r#"
name: errors
rules:
  - alert: HighErrorRate
    expr: sum(rate({app="x"} |= "error" [1m])) > 1
    for: 30s
    labels:
      severity: page
    annotations:
      summary: "{{ $value | humanize }} errors/s on x"
  - alert: SilencedErrors
    expr: sum(rate({app="x"} |= "error" [1m])) > 1
    for: 30s
"#;

/// Pending, a restart in the middle of `for` (the alert keeps its time),
/// firing in Alertmanager, a silenced twin that is never notified, then
/// resolved once the error lines leave the one-minute window.
#[test]
fn alert_goes_pending_firing_resolved_through_a_restart_and_a_silence() {
    let c = client();
    let (hook, notifications) = webhook_sink();
    let mut am = alertmanager(free_port(), &hook);
    am.wait_ready(&c);
    let silence = json!({
        "matchers": [{"name": "alertname", "value": "SilencedErrors", "isRegex": false, "isEqual": true}],
        "startsAt": common_rfc3339(now_ns()),
        "endsAt": common_rfc3339(now_ns() + 3_600_000_000_000),
        "createdBy": "test",
        "comment": "held"
    });
    let r = c
        .post(am.url("/api/v2/silences"))
        .json(&silence)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "silence: {}", r.text().unwrap());

    let (mut s, _cfg) = skald(&format!(
        "evaluation_interval = \"1s\"\nresend_delay = \"1s\"\nfor_grace_period = \"5s\"\nalertmanager_url = [\"{}\"]\n",
        am.url("")
    ));
    // 150 errors ten seconds ago: 2.5/s over the minute, until they leave
    // the window about fifty seconds from now.
    let pushed_at = now_ns() - 10_000_000_000;
    push_errors(&s, "x", 150, pushed_at);
    let (status, body) = post_rules(&s, "team", ERROR_RULES);
    assert_eq!(status, 202, "{body}");

    let (state, active_at) = wait_for(20, "the alert to be pending", || {
        skald_alert(&s, "HighErrorRate")
    });
    assert_eq!(state, "pending");
    assert!(
        am_alerts(&am, &c, "HighErrorRate").is_empty(),
        "pending alerts are not sent"
    );

    // Restart in the middle of `for`.
    std::thread::sleep(Duration::from_secs(6));
    let stopped = now_ns();
    s.stop();
    std::thread::sleep(Duration::from_secs(2));
    s.start_again();
    let restarted = now_ns();
    let (state, restored_at) = wait_for(20, "the alert after the restart", || {
        skald_alert(&s, "HighErrorRate")
    });
    assert_eq!(state, "pending");
    let restored = parse_rfc3339(&restored_at);
    let before = parse_rfc3339(&active_at);
    assert!(
        restored < stopped,
        "the restart must not start `for` over: active since {restored_at}, was {active_at}"
    );
    // Prometheus' rule: the downtime is not counted as pending time.
    assert!(restored >= before, "{restored_at} vs {active_at}");
    assert!(restored - before <= restarted - stopped + 2_000_000_000);

    let fired = wait_for(60, "HighErrorRate firing in Alertmanager", || {
        let a = am_alerts(&am, &c, "HighErrorRate");
        (!a.is_empty()).then(|| a[0].clone())
    });
    assert_eq!(fired["status"]["state"], "active");
    assert_eq!(fired["labels"]["severity"], "page");
    assert_eq!(fired["annotations"]["summary"], "2.5 errors/s on x");
    assert_eq!(skald_alert(&s, "HighErrorRate").unwrap().0, "firing");
    let silenced = wait_for(30, "SilencedErrors in Alertmanager", || {
        let a = am_alerts(&am, &c, "SilencedErrors");
        (!a.is_empty()).then(|| a[0].clone())
    });
    assert_eq!(silenced["status"]["state"], "suppressed");
    assert!(
        !silenced["status"]["silencedBy"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    wait_for(
        30,
        "Alertmanager's notification of the firing alert",
        || notified(&notifications, "HighErrorRate", "firing").then_some(()),
    );

    // The error lines leave the window: resolved, in skald and in
    // Alertmanager (which notifies the resolution).
    wait_for(60, "HighErrorRate resolved", || {
        (skald_alert(&s, "HighErrorRate").is_none()
            && am_alerts(&am, &c, "HighErrorRate").is_empty())
        .then_some(())
    });
    wait_for(30, "Alertmanager's notification of the resolution", || {
        notified(&notifications, "HighErrorRate", "resolved").then_some(())
    });
    let all = notifications.lock().unwrap().clone();
    assert!(
        !all.iter()
            .any(|(_, n)| n.to_string().contains("SilencedErrors")),
        "the silence must hold SilencedErrors' notifications: {all:?}"
    );
    assert!(metric(&s, "skald_ruler_notifications_sent_total") >= 2.0);
    assert!(
        metric(
            &s,
            "skald_ruler_group_evaluations_total{tenant=\"fake\",namespace=\"team\",group=\"errors\"}"
        ) >= 1.0
    );
    assert_eq!(
        metric(&s, "skald_ruler_group_evaluation_failures_total"),
        0.0
    );
    let _ = pushed_at;
}

fn notified(n: &Hooks, alertname: &str, status: &str) -> bool {
    n.lock().unwrap().iter().any(|(_, b)| {
        b["alerts"].as_array().is_some_and(|a| {
            a.iter()
                .any(|a| a["labels"]["alertname"] == alertname && a["status"] == status)
        })
    })
}

fn common_rfc3339(ns: i64) -> String {
    skald_model::format_rfc3339_nanos(skald_model::Timestamp(ns))
}

/// RFC 3339 (as skald prints it) to nanoseconds.
fn parse_rfc3339(s: &str) -> i64 {
    skald_wire::parse_time(s).unwrap().0
}

/// A recording rule's series reaches Prometheus with the right value,
/// including the samples computed while Prometheus was down (queued on
/// disk, sent once it is up); `ALERTS` goes there too.
#[test]
fn recording_rule_reaches_prometheus_through_an_outage() {
    let c = client();
    let prom_port = free_port();
    let (s, _cfg) = skald(&format!(
        "evaluation_interval = \"1s\"\nremote_write_url = \"http://127.0.0.1:{prom_port}/api/v1/write\"\n"
    ));
    let now = now_ns();
    push_errors(&s, "rec", 120, now - 30_000_000_000);
    let group = r#"
name: recording
rules:
  - record: app:lines:count5m
    expr: sum by (app) (count_over_time({app="rec"}[5m]))
    labels:
      source: skald
  - alert: Always
    expr: sum(count_over_time({app="rec"}[5m])) > 0
"#;
    let (status, body) = post_rules(&s, "rec", group);
    assert_eq!(status, 202, "{body}");
    // Prometheus is down: requests fail, the queue holds the samples.
    wait_for(30, "failed remote-write requests", || {
        (metric(&s, "skald_ruler_remote_write_failed_requests_total") >= 1.0).then_some(())
    });
    let during_outage_ms = now_ns() / 1_000_000;
    assert!(metric(&s, "skald_ruler_remote_write_queue_files") >= 1.0);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        s.log().contains("remote write failed; will retry"),
        "{}",
        s.log()
    );

    let mut prom = prometheus(prom_port);
    prom.wait_ready(&c);
    let at = format!("{:.3}", during_outage_ms as f64 / 1000.0);
    let value = wait_for(60, "the recorded series in Prometheus", || {
        let v: Value = c
            .get(prom.url("/api/v1/query"))
            .query(&[("query", "app:lines:count5m"), ("time", at.as_str())])
            .send()
            .ok()?
            .json()
            .ok()?;
        let r = v["data"]["result"].as_array()?.first()?.clone();
        Some(r)
    });
    assert_eq!(value["metric"]["app"], "rec");
    assert_eq!(value["metric"]["source"], "skald");
    assert_eq!(value["value"][1], "120", "{value}");
    let alerts = wait_for(30, "ALERTS in Prometheus", || {
        let v: Value = c
            .get(prom.url("/api/v1/query"))
            .query(&[("query", "ALERTS{alertname=\"Always\"}")])
            .send()
            .ok()?
            .json()
            .ok()?;
        v["data"]["result"].as_array()?.first().cloned()
    });
    assert_eq!(alerts["metric"]["alertstate"], "firing");
    wait_for(30, "the queue to drain", || {
        (metric(&s, "skald_ruler_remote_write_queue_files") == 0.0).then_some(())
    });
    assert_eq!(
        metric(&s, "skald_ruler_remote_write_dropped_samples_total"),
        0.0
    );
    drop(prom);
}

/// An unreachable Alertmanager: the alert is queued, the failures are
/// logged and counted, and it is delivered once Alertmanager is up.
#[test]
fn unreachable_alertmanager_is_retried_until_it_answers() {
    let c = client();
    let am_port = free_port();
    let (s, _cfg) = skald(&format!(
        "evaluation_interval = \"1s\"\nresend_delay = \"1m\"\nalertmanager_url = [\"http://127.0.0.1:{am_port}\"]\n"
    ));
    let group =
        "name: g\nrules:\n  - alert: Now\n    expr: vector(1) > 0\n    labels: {team: core}\n";
    assert_eq!(post_rules(&s, "ns", group).0, 202);
    wait_for(30, "failed notifications", || {
        (metric(&s, "skald_ruler_notifications_errors_total") >= 2.0).then_some(())
    });
    assert!(metric(&s, "skald_ruler_notifications_queue_length") >= 1.0);
    assert!(
        s.log().contains("sending alerts failed; queued for retry"),
        "{}",
        s.log()
    );
    // resend_delay is a minute: what arrives now is the queued alert.
    let (hook, _n) = webhook_sink();
    let mut am = alertmanager(am_port, &hook);
    am.wait_ready(&c);
    let got = wait_for(60, "the queued alert in Alertmanager", || {
        am_alerts(&am, &c, "Now").first().cloned()
    });
    assert_eq!(got["labels"]["team"], "core");
    assert!(metric(&s, "skald_ruler_notifications_sent_total") >= 1.0);
}

/// Invalid rules are refused with the rule and the reason and never
/// replace the valid group; the ruler API is per tenant; `skald rules
/// check|sync|list` work against it.
#[test]
fn bad_rules_are_refused_and_the_cli_checks_syncs_and_lists() {
    let (s, _cfg) = skald("evaluation_interval = \"1s\"\n");
    let good =
        "name: g\nrules:\n  - alert: A\n    expr: sum(count_over_time({app=\"x\"}[1m])) > 5\n";
    assert_eq!(post_rules(&s, "ns", good).0, 202);
    let bad = [
        (
            "name: g\nrules:\n  - alert: A\n    expr: sum(count_over_time({app=\"x\"}[1m]) > 5\n",
            "could not parse expression",
        ),
        (
            "name: g\nrules:\n  - alert: A\n    expr: '{app=\"x\"} |= \"error\"'\n",
            "is a log query",
        ),
        (
            "name: g\nrules:\n  - alert: A\n    expr: vector(1)\n    annotations: {s: '{{ $labels.x '}\n",
            "annotation \"s\"",
        ),
        (
            "name: g\nrules:\n  - alert: A\n    expr: vector(1)\n    for: soon\n",
            "not a valid duration",
        ),
        ("name: g\nrules: [\n", "invalid rule group"),
    ];
    for (yaml, reason) in bad {
        let (status, body) = post_rules(&s, "ns", yaml);
        assert_eq!(status, 400, "{yaml}: {body}");
        assert!(body.contains(reason), "{yaml}: {body}");
        // Rule errors name the group and rule; YAML errors the line.
        assert!(
            body.contains("group \"g\", rule 1 (\"A\")") || body.contains("line "),
            "{yaml}: {body}"
        );
    }
    let (status, body) = s.get("/loki/api/v1/rules/ns/g", &[]);
    assert_eq!(status, 200);
    assert!(
        body.contains("count_over_time({app=\"x\"}[1m])) > 5"),
        "{body}"
    );
    let (status, body) = s.get("/loki/api/v1/rules/ns", &[]);
    assert_eq!(status, 200);
    assert!(body.starts_with("ns:"), "{body}");

    // Another tenant sees nothing.
    let other = s
        .client
        .get(s.url("/loki/api/v1/rules"))
        .header("X-Scope-OrgID", "other")
        .send()
        .unwrap();
    assert_eq!(other.status().as_u16(), 404);

    let rules = s.get_json("/prometheus/api/v1/rules", &[]);
    let g = &rules["data"]["groups"][0];
    assert_eq!(g["name"], "g");
    assert_eq!(g["file"], "ns");
    assert_eq!(g["rules"][0]["type"], "alerting");
    wait_for(20, "the group's first evaluation", || {
        let r = s.get_json("/prometheus/api/v1/rules", &[("type", "alert")]);
        (r["data"]["groups"][0]["rules"][0]["health"] == "ok").then_some(())
    });
    let record_only = s.get_json("/prometheus/api/v1/rules", &[("type", "record")]);
    assert_eq!(record_only["data"]["groups"], json!([]));

    // The CLI.
    let dir = tempfile::tempdir().unwrap();
    let good_file = dir.path().join("team.yaml");
    std::fs::write(
        &good_file,
        "groups:\n  - name: g2\n    rules:\n      - record: x:count1m\n        expr: sum(count_over_time({app=\"x\"}[1m]))\n",
    )
    .unwrap();
    let bad_dir = tempfile::tempdir().unwrap();
    let bad_file = bad_dir.path().join("bad.yaml");
    std::fs::write(
        &bad_file,
        "groups:\n  - name: b\n    rules:\n      - alert: L\n        expr: '{app=\"x\"}'\n",
    )
    .unwrap();
    let skald = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_skald"))
            .args(args)
            .output()
            .unwrap()
    };
    let out = skald(&["rules", "check", good_file.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let out = skald(&["rules", "check", bad_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(6));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml: group \"b\", rule 1 (\"L\")"),
        "{err}"
    );
    assert!(err.contains("is a log query"), "{err}");
    let addr = s.url("");
    let out = skald(&[
        "rules",
        "sync",
        bad_dir.path().to_str().unwrap(),
        "--addr",
        &addr,
    ]);
    assert_eq!(
        out.status.code(),
        Some(6),
        "nothing uploaded from a bad directory"
    );
    let out = skald(&[
        "rules",
        "sync",
        dir.path().to_str().unwrap(),
        "--addr",
        &addr,
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("team/g2: created"));
    let out = skald(&[
        "rules",
        "sync",
        dir.path().to_str().unwrap(),
        "--addr",
        &addr,
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("team/g2: unchanged"));
    let out = skald(&["rules", "list", "--addr", &addr]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("ns:") && listed.contains("team:") && listed.contains("x:count1m"),
        "{listed}"
    );
    // Rules are files in Loki's layout.
    assert!(s.data_dir().join("rules/fake/team.yaml").is_file());

    // Deletes.
    let del = s
        .client
        .delete(s.url("/loki/api/v1/rules/ns/g"))
        .send()
        .unwrap();
    assert_eq!(del.status().as_u16(), 202);
    assert_eq!(s.get("/loki/api/v1/rules/ns", &[]).0, 404);
    let del = s
        .client
        .delete(s.url("/loki/api/v1/rules/team"))
        .send()
        .unwrap();
    assert_eq!(del.status().as_u16(), 202);
    assert_eq!(s.get("/loki/api/v1/rules", &[]).0, 404);
}

/// `ruler-secret`, bcrypt-hashed for Alertmanager's `basic_auth_users`
/// (cost 4: a test fixture, not a stored secret).
const AM_PASSWORD: &str = "ruler-secret";
const AM_PASSWORD_BCRYPT: &str = "$2b$04$8cPpqNGesQpJ7o2VDCeeu.Z2KE6o.UYbrgzZypI.xz1UOA.KOW74q";

/// Alertmanager behind TLS and basic auth (its `--web.config.file`): the
/// ruler trusts the test CA from `tls_ca_file` and sends its credentials,
/// and the alert arrives; a ruler with a wrong password is refused by
/// Alertmanager, counts and logs the failures, and delivers nothing.
#[test]
fn alertmanager_over_tls_with_basic_auth() {
    use base64::Engine as _;
    let pki = common::pki::Pki::new();
    let (hook, _n) = webhook_sink();
    let web = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  ruler: '{AM_PASSWORD_BCRYPT}'\n",
        pki.arg("server.pem"),
        pki.arg("server.key")
    );
    let mut am = alertmanager_with_web_config(free_port(), &hook, Some(&web));
    // The test's own client: the CA, and the credentials on every request.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("ruler:{AM_PASSWORD}"));
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Basic {basic}").parse().unwrap(),
    );
    let c = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .tls_certs_only([reqwest::Certificate::from_pem(&pki.pem("ca.pem")).unwrap()])
        .default_headers(headers)
        .build()
        .unwrap();
    am.wait_ready(&c);
    // Alertmanager itself refuses a request without the credentials.
    let anonymous = pki
        .client(false)
        .get(am.url("/api/v2/alerts"))
        .send()
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);

    let ruler = |password: &str| {
        format!(
            "evaluation_interval = \"1s\"\nresend_delay = \"1s\"\nalertmanager_url = [\"{}\"]\n\
             [ruler.alertmanager_client]\ntls_ca_file = \"{}\"\nbasic_auth_username = \"ruler\"\nbasic_auth_password = \"{password}\"\n",
            am.url(""),
            pki.arg("ca.pem")
        )
    };
    let (good, _cfg) = skald(&ruler(AM_PASSWORD));
    let (bad, _bad_cfg) = skald(&ruler("not-the-password"));
    let rule = |name: &str| {
        format!(
            "name: g\nrules:\n  - alert: {name}\n    expr: vector(1) > 0\n    labels: {{team: core}}\n"
        )
    };
    assert_eq!(post_rules(&good, "ns", &rule("OverTls")).0, 202);
    assert_eq!(post_rules(&bad, "ns", &rule("WrongPassword")).0, 202);

    let got = wait_for(60, "the alert in Alertmanager over TLS", || {
        am_alerts(&am, &c, "OverTls").first().cloned()
    });
    assert_eq!(got["labels"]["team"], "core");
    assert!(metric(&good, "skald_ruler_notifications_sent_total") >= 1.0);
    wait_for(60, "the refused sends counted", || {
        (metric(&bad, "skald_ruler_notifications_errors_total") >= 2.0).then_some(())
    });
    assert!(bad.log().contains("401"), "{}", bad.log());
    assert!(am_alerts(&am, &c, "WrongPassword").is_empty());
    assert!(
        !bad.log().contains("not-the-password"),
        "the password is never logged"
    );
}

/// The plain webhook notifier, for people without Alertmanager: a rule on
/// log lines fires and resolves, and the webhook gets both, in
/// Alertmanager's webhook shape, with the configured bearer token.
#[test]
fn webhook_notifier_gets_firing_then_resolved_with_its_token() {
    let (hook, got) = webhook_sink();
    let (s, _cfg) = skald(&format!(
        "evaluation_interval = \"1s\"\nresend_delay = \"1s\"\nwebhook_url = \"{hook}\"\n\
         [ruler.webhook_client]\nbearer_token = \"hook-token\"\n"
    ));
    push_errors(&s, "hooked", 3, now_ns() - 1_000_000_000);
    let group = r#"
name: hooks
rules:
  - alert: HookedErrors
    expr: sum(count_over_time({app="hooked"} |= "error" [10s])) > 0
    labels:
      severity: ticket
    annotations:
      summary: "{{ $value }} errors in ten seconds"
"#;
    assert_eq!(post_rules(&s, "ns", group).0, 202);
    let find = |status: &'static str| {
        let got = got.clone();
        move || {
            got.lock().unwrap().iter().find_map(|(auth, body)| {
                let alert = body["alerts"]
                    .as_array()?
                    .iter()
                    .find(|a| a["labels"]["alertname"] == "HookedErrors" && a["status"] == status)?
                    .clone();
                Some((auth.clone(), body.clone(), alert))
            })
        }
    };
    let (auth, body, alert) = wait_for(60, "the firing alert at the webhook", find("firing"));
    assert_eq!(auth.as_deref(), Some("Bearer hook-token"));
    assert_eq!(body["version"], "4");
    assert_eq!(body["status"], "firing");
    assert_eq!(alert["labels"]["severity"], "ticket");
    // $labels are the series' labels, not the rule's (as in Prometheus).
    assert_eq!(alert["annotations"]["summary"], "3 errors in ten seconds");
    assert!(alert["startsAt"].as_str().is_some_and(|t| t.contains('T')));
    // The lines leave the ten-second window: the webhook hears it resolved.
    let (auth, _, alert) = wait_for(60, "the resolution at the webhook", find("resolved"));
    assert_eq!(auth.as_deref(), Some("Bearer hook-token"));
    assert!(alert["endsAt"].as_str().is_some_and(|t| t.contains('T')));
    assert!(metric(&s, "skald_ruler_notifications_sent_total") >= 2.0);
}

/// A poll for the first alert named `name` with `status` that a webhook
/// received (in Alertmanager's webhook shape).
fn hooked(got: &Hooks, name: &'static str, status: &'static str) -> impl FnMut() -> Option<Value> {
    let got = got.clone();
    move || {
        got.lock().unwrap().iter().find_map(|(_, body)| {
            body["alerts"]
                .as_array()?
                .iter()
                .find(|a| a["labels"]["alertname"] == name && a["status"] == status)
                .cloned()
        })
    }
}

/// Skald's alert named `name`, whole (labels, annotations, state).
fn skald_alert_json(s: &Server, name: &str) -> Option<Value> {
    let v = s.get_json("/prometheus/api/v1/alerts", &[]);
    v["data"]["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["labels"]["alertname"] == name)
        .cloned()
}

/// Analysis events as built-in alert sources: an error never seen before
/// goes pending, keeps its pending time through a restart, fires to
/// Alertmanager and the webhook with the stream's labels, its error group
/// and an example line, and resolves once its first line leaves the
/// window. The built-in group is listed beside the file groups.
#[test]
fn a_new_error_group_alerts_through_alertmanager_and_the_webhook() {
    let c = client();
    let (am_hook, am_notified) = webhook_sink();
    let mut am = alertmanager(free_port(), &am_hook);
    am.wait_ready(&c);
    let (hook, got) = webhook_sink();
    let (mut s, _cfg) = skald(&format!(
        "evaluation_interval = \"1s\"\nresend_delay = \"1s\"\nfor_grace_period = \"2s\"\n\
         alertmanager_url = [\"{}\"]\nwebhook_url = \"{hook}\"\n\
         [ruler.analysis_alerts]\ntenants = [\"fake\"]\nanomalies = false\nwindow = \"25s\"\n\
         for = \"10s\"\nlabels = {{ severity = \"warning\" }}\n",
        am.url("")
    ));
    let lines: Vec<Value> = (0..3)
        .map(|i| {
            json!([
                (now_ns() + i).to_string(),
                format!("java.lang.IllegalStateException: cart {i} is in a bad state")
            ])
        })
        .collect();
    let r = s.push_json(&json!({"streams": [{"stream": {"app": "checkout"}, "values": lines}]}));
    assert_eq!(r.status().as_u16(), 204);

    let pending = wait_for(20, "NewErrorGroup pending", || {
        skald_alert_json(&s, "NewErrorGroup")
    });
    assert_eq!(pending["state"], "pending");
    let labels = &pending["labels"];
    assert_eq!(labels["app"], "checkout");
    assert_eq!(labels["tenant"], "fake");
    assert_eq!(labels["category"], "exception");
    assert_eq!(labels["exception"], "java.lang.IllegalStateException");
    assert_eq!(labels["severity"], "warning");
    let group = labels["error_group"].as_str().unwrap().to_string();
    assert!(!group.is_empty());
    let active_at = parse_rfc3339(pending["activeAt"].as_str().unwrap());

    // A restart in the middle of `for` keeps the pending time.
    std::thread::sleep(Duration::from_secs(4));
    let stopped = now_ns();
    s.stop();
    s.start_again();
    let restarted = now_ns();
    let restored = wait_for(20, "NewErrorGroup after the restart", || {
        skald_alert_json(&s, "NewErrorGroup")
    });
    assert_eq!(restored["state"], "pending");
    let restored_at = parse_rfc3339(restored["activeAt"].as_str().unwrap());
    // As for rules from files: the pending time is kept, the downtime is
    // not counted as pending time.
    assert!(
        restored_at >= active_at && restored_at - active_at <= restarted - stopped + 2_000_000_000,
        "the restart must not start `for` over: {restored_at} vs {active_at}"
    );

    let fired = wait_for(60, "NewErrorGroup firing in Alertmanager", || {
        let a = am_alerts(&am, &c, "NewErrorGroup");
        (!a.is_empty()).then(|| a[0].clone())
    });
    assert_eq!(fired["labels"]["error_group"], group.as_str());
    assert_eq!(fired["labels"]["app"], "checkout");
    assert!(
        fired["annotations"]["example"]
            .as_str()
            .is_some_and(|e| e.contains("IllegalStateException: cart")),
        "{fired}"
    );
    let link = fired["annotations"]["link"].as_str().unwrap();
    assert!(
        link.starts_with(&s.url("/skald/api/v1/errors?query=")),
        "{link}"
    );
    // The link answers with the group.
    let (status, body) = s.get(link.strip_prefix(&s.url("")).unwrap(), &[]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&group), "{body}");
    assert_eq!(
        skald_alert_json(&s, "NewErrorGroup").unwrap()["state"],
        "firing"
    );
    wait_for(30, "Alertmanager's notification", || {
        notified(&am_notified, "NewErrorGroup", "firing").then_some(())
    });
    let webhook = |status: &'static str| hooked(&got, "NewErrorGroup", status);
    let firing = wait_for(30, "the firing alert at the webhook", webhook("firing"));
    assert_eq!(firing["labels"]["error_group"], group.as_str());

    // Listed with the rules, as a group of its own.
    let rules = s.get_json("/prometheus/api/v1/rules", &[]);
    let listed = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "analysis-events")
        .cloned()
        .unwrap_or_else(|| panic!("no built-in group in {rules}"));
    assert_eq!(listed["file"], "skald-analysis");
    assert_eq!(listed["rules"][0]["query"], "skald:new_error_groups");

    // The first line leaves the 25 s window: resolved everywhere.
    wait_for(60, "the resolution at the webhook", webhook("resolved"));
    wait_for(30, "NewErrorGroup resolved", || {
        (skald_alert_json(&s, "NewErrorGroup").is_none()
            && am_alerts(&am, &c, "NewErrorGroup").is_empty())
        .then_some(())
    });
    assert_eq!(
        metric(&s, "skald_ruler_group_evaluation_failures_total"),
        0.0
    );
}

/// An anomaly as an alert: a steady stream, then a burst ten times its
/// rate; LogAnomaly fires at the webhook with the stream's labels, the
/// kind and the detector's evidence, and resolves once the burst's
/// window leaves the configured window.
#[test]
fn an_anomaly_alerts_and_resolves_at_the_webhook() {
    let (hook, got) = webhook_sink();
    let (s, _cfg) = skald(&format!(
        "evaluation_interval = \"1s\"\nresend_delay = \"1s\"\nwebhook_url = \"{hook}\"\n\
         [ruler.analysis_alerts]\ntenants = [\"fake\"]\nnew_error_groups = false\n\
         window = \"30s\"\nanomaly_window = \"10s\"\n"
    ));
    // Five lines per ten seconds for three minutes, then 200 in the last
    // whole ten seconds.
    let now = now_ns();
    let second = 1_000_000_000;
    let mut values: Vec<Value> = Vec::new();
    for t in (now - 200 * second..now - 20 * second).step_by(2 * second as usize) {
        values.push(json!([t.to_string(), "GET /cart 200 served"]));
    }
    let burst = (now / second / 10 * 10 - 10) * second;
    for i in 0..200 {
        values.push(json!([
            (burst + i * 10_000_000).to_string(),
            "GET /cart 200 served"
        ]));
    }
    let r = s.push_json(&json!({"streams": [{"stream": {"app": "shop"}, "values": values}]}));
    assert_eq!(r.status().as_u16(), 204);

    let webhook = |status: &'static str| hooked(&got, "LogAnomaly", status);
    let firing = wait_for(30, "LogAnomaly at the webhook", webhook("firing"));
    assert_eq!(firing["labels"]["app"], "shop");
    assert_eq!(firing["labels"]["kind"], "spike");
    assert_eq!(firing["labels"]["tenant"], "fake");
    assert!(
        firing["annotations"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("200 lines")),
        "{firing}"
    );
    assert!(
        firing["annotations"]["link"]
            .as_str()
            .is_some_and(|l| l.starts_with(&s.url("/skald/api/v1/anomalies?query="))),
        "{firing}"
    );
    assert_eq!(
        skald_alert_json(&s, "LogAnomaly").unwrap()["state"],
        "firing"
    );
    wait_for(
        60,
        "LogAnomaly resolved at the webhook",
        webhook("resolved"),
    );
    assert!(skald_alert_json(&s, "LogAnomaly").is_none());
}
