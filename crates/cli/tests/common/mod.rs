//! Starts the real `skald` binary on free ports over a temporary data
//! directory, and talks to it over HTTP as a client would.

#![allow(dead_code)]

pub mod pki;

use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub dir: tempfile::TempDir,
    pub http: u16,
    pub grpc: u16,
    child: Option<Child>,
    pub client: reqwest::blocking::Client,
    extra_args: Vec<String>,
    /// `http`, or `https` for a server started with TLS.
    scheme: &'static str,
    /// A data directory elsewhere than `dir/data` (a small file system).
    data: Option<PathBuf>,
    /// Where the configuration file of [`Server::start_with_config`] is.
    config_dir: Option<tempfile::TempDir>,
    /// Environment variables the binary gets beyond the test's own.
    extra_env: Vec<(String, String)>,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    pub fn start_with(args: &[&str]) -> Server {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        Server::start_as("http", client, args)
    }

    /// A server started with TLS flags in `args`; `client` is what the
    /// test talks to it with (trusting its CA, with a client certificate
    /// for mutual TLS). URLs are `https://localhost:<port>`.
    pub fn start_tls(client: reqwest::blocking::Client, args: &[&str]) -> Server {
        Server::start_as("https", client, args)
    }

    fn start_as(scheme: &'static str, client: reqwest::blocking::Client, args: &[&str]) -> Server {
        Server::start_full(scheme, client, args, None)
    }

    /// A server started with a configuration file of `toml` text.
    pub fn start_with_config(toml: &str, args: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("skald.toml");
        std::fs::write(&path, toml).unwrap();
        let mut all = vec!["--config", path.to_str().unwrap()];
        all.extend_from_slice(args);
        let mut s = Server::start_with(&all);
        s.config_dir = Some(dir);
        s
    }

    /// A server keeping its data in `data` (logs still go to a temporary
    /// directory).
    pub fn start_on(data: &Path, args: &[&str]) -> Server {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        Server::start_full("http", client, args, Some(data.to_path_buf()))
    }

    fn start_full(
        scheme: &'static str,
        client: reqwest::blocking::Client,
        args: &[&str],
        data: Option<PathBuf>,
    ) -> Server {
        let mut s = Server {
            dir: tempfile::tempdir().unwrap(),
            http: free_port(),
            grpc: free_port(),
            child: None,
            client,
            extra_args: args.iter().map(|s| s.to_string()).collect(),
            scheme,
            data,
            config_dir: None,
            extra_env: Vec::new(),
        };
        s.spawn();
        s
    }

    /// A server started with `args` and these environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut s = Server {
            dir: tempfile::tempdir().unwrap(),
            http: free_port(),
            grpc: free_port(),
            child: None,
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            extra_args: args.iter().map(|s| s.to_string()).collect(),
            scheme: "http",
            data: None,
            config_dir: None,
            extra_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        s.spawn();
        s
    }

    pub fn data_dir(&self) -> PathBuf {
        match &self.data {
            Some(d) => d.clone(),
            None => self.dir.path().join("data"),
        }
    }

    /// Starts the binary and waits until it serves. The ports were free
    /// when picked, but another process (a parallel test restarting its
    /// own server) may take one before the child binds it: the child then
    /// exits, and it is started again on new ports. `/ready` is only asked
    /// once the child has logged that it holds both ports, so the answer
    /// never comes from somebody else's server.
    fn spawn(&mut self) {
        for attempt in 0.. {
            let log_path = self.dir.path().join("server.log");
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .unwrap();
            let log_start = log.metadata().unwrap().len() as usize;
            let child = Command::new(env!("CARGO_BIN_EXE_skald"))
                .arg("serve")
                .arg("--data-dir")
                .arg(self.data_dir())
                .arg("--http-addr")
                .arg(format!("127.0.0.1:{}", self.http))
                .arg("--grpc-addr")
                .arg(format!("127.0.0.1:{}", self.grpc))
                .args(&self.extra_args)
                .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("starting skald");
            self.child = Some(child);
            let deadline = Instant::now() + Duration::from_secs(30);
            let this_start = || {
                let log = std::fs::read(&log_path).unwrap_or_default();
                String::from_utf8_lossy(&log[log_start.min(log.len())..]).into_owned()
            };
            loop {
                if this_start().contains("listening") {
                    break;
                }
                if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                    let said = this_start();
                    if said.contains("Address already in use") && attempt < 5 {
                        self.child = None;
                        self.http = free_port();
                        self.grpc = free_port();
                        break;
                    }
                    panic!(
                        "skald exited with {status} before ready; log:\n{}",
                        self.log()
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "skald not listening in 30 s; log:\n{}",
                    self.log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            if self.child.is_none() {
                continue;
            }
            loop {
                if let Ok(r) = self.client.get(self.url("/ready")).send()
                    && r.status().is_success()
                {
                    return;
                }
                if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                    panic!(
                        "skald exited with {status} before ready; log:\n{}",
                        self.log()
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "skald not ready in 30 s; log:\n{}",
                    self.log()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// The server process's id (while it runs).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The server's resident memory now, in bytes (Linux).
    pub fn rss_bytes(&self) -> u64 {
        proc_status_bytes(self.pid(), "VmRSS:")
    }

    /// The server's peak resident memory so far, in bytes (Linux).
    pub fn peak_rss_bytes(&self) -> u64 {
        proc_status_bytes(self.pid(), "VmHWM:")
    }

    /// A counter or gauge of /metrics (0 when absent).
    pub fn metric(&self, name: &str) -> u64 {
        let (_, text) = self.get("/metrics", &[]);
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        match self.scheme {
            // The test certificates name localhost.
            "https" => format!("https://localhost:{}{path}", self.http),
            _ => format!("http://127.0.0.1:{}{path}", self.http),
        }
    }

    /// The gRPC endpoint, for tonic clients.
    pub fn grpc_url(&self) -> String {
        match self.scheme {
            "https" => format!("https://localhost:{}", self.grpc),
            _ => format!("http://127.0.0.1:{}", self.grpc),
        }
    }

    /// Sends a signal (`HUP`, `TERM`, ...) to the running server.
    pub fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGKILL: no flush, no goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        unsafe_sigterm(c.id());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "skald did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        self.spawn();
    }

    pub fn start_again(&mut self) {
        assert!(self.child.is_none());
        self.spawn();
    }

    pub fn push_json(&self, body: &Value) -> reqwest::blocking::Response {
        self.client
            .post(self.url("/loki/api/v1/push"))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap()
    }

    pub fn push_json_tenant(&self, tenant: &str, body: &Value) -> reqwest::blocking::Response {
        self.client
            .post(self.url("/loki/api/v1/push"))
            .header("Content-Type", "application/json")
            .header("X-Scope-OrgID", tenant)
            .body(body.to_string())
            .send()
            .unwrap()
    }

    pub fn get(&self, path: &str, params: &[(&str, &str)]) -> (u16, String) {
        let r = self
            .client
            .get(self.url(path))
            .query(params)
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    }

    pub fn get_json(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let (status, body) = self.get(path, params);
        assert_eq!(status, 200, "GET {path} {params:?}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// A log query over everything, all result lines in result order.
    pub fn lines(&self, query: &str, limit: usize, direction: &str) -> Vec<String> {
        let v = self.get_json(
            "/loki/api/v1/query_range",
            &[
                ("query", query),
                ("start", &day_ago()),
                ("limit", &limit.to_string()),
                ("direction", direction),
            ],
        );
        let mut entries: Vec<(i64, String)> = Vec::new();
        for s in v["data"]["result"].as_array().unwrap() {
            for e in s["values"].as_array().unwrap() {
                entries.push((
                    e[0].as_str().unwrap().parse().unwrap(),
                    e[1].as_str().unwrap().to_string(),
                ));
            }
        }
        entries.sort();
        if direction == "backward" {
            entries.reverse();
        }
        entries.into_iter().map(|(_, l)| l).collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn unsafe_sigterm(pid: u32) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// A byte figure of `/proc/<pid>/status` (`VmRSS:`, `VmHWM:`; Linux),
/// 0 when unreadable.
pub fn proc_status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Percent-encodes a query parameter (unreserved characters kept).
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A query start a day back, as nanoseconds: within the default query
/// length limit and before anything a test pushes.
pub fn day_ago() -> String {
    (now_ns() - 86_400_000_000_000).to_string()
}

pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// Segment files of a data directory.
pub fn segment_files(data: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(tenants) = std::fs::read_dir(data.join("tenants")) else {
        return out;
    };
    for t in tenants {
        let segs = t.unwrap().path().join("segments");
        for f in std::fs::read_dir(segs).into_iter().flatten() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|e| e == "seg") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Polls `ok` every 50 ms until it holds; fails naming `what` after 30 s.
pub fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < deadline, "not reached in 30 s: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `skald token create` on the server's data directory; checks that it
/// prints the token and nothing else.
pub fn create_token(s: &Server, tenant: &str, role: &str, name: &str) -> String {
    let dir = s.data_dir().to_str().unwrap().to_string();
    create_token_in(&["--data-dir", &dir], tenant, role, name)
}

/// `skald token create` with `place` (`--data-dir D` or `--catalog URL`).
pub fn create_token_in(place: &[&str], tenant: &str, role: &str, name: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_skald"))
        .args(["token", "create"])
        .args(place)
        .args(["--tenant", tenant, "--role", role, "--name", name])
        .output()
        .expect("running skald");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "{text:?}");
    let token = text.trim().to_string();
    assert!(token.starts_with("skald_") && token.len() > 70, "{token}");
    token
}

/// Runs `skald serve` expecting it to refuse to start; returns its
/// standard error.
pub fn refused(args: &[&str], env: &[(&str, String)]) -> String {
    let data = tempfile::tempdir().unwrap();
    let http = free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_skald"))
        .arg("serve")
        .arg("--data-dir")
        .arg(data.path())
        .arg("--http-addr")
        .arg(format!("127.0.0.1:{http}"))
        .arg("--grpc-addr")
        .arg(format!("127.0.0.1:{}", free_port()))
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("SKALD_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("listening"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    stderr
}
