//! The real `skald` binary on free ports, for end-to-end tests.
//!
//! The binary is `$SKALD_BIN`, else `$CARGO_TARGET_DIR/debug/skald`, else
//! `<workspace>/target/debug/skald`; if none exists it is built with
//! `cargo build -p skald`.

use super::free_port;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn skald_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("SKALD_BIN") {
        return PathBuf::from(bin);
    }
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace.join("target"));
    let candidates = [
        target.join("debug/skald"),
        workspace.join("target/debug/skald"),
    ];
    if let Some(found) = candidates.iter().find(|p| p.exists()) {
        return found.clone();
    }
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "-p", "skald"])
        .current_dir(&workspace)
        .status()
        .expect("running cargo build -p skald");
    assert!(status.success(), "cargo build -p skald failed");
    target.join("debug/skald")
}

/// A running `skald serve`, killed on drop.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:<port>` of Loki's HTTP API.
    pub url: String,
    /// `http://127.0.0.1:<port>` of the gRPC LogService.
    pub grpc_url: String,
    pub dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts a server on a fresh data directory and waits until `/ready`.
    pub fn start() -> Server {
        Server::start_with_config("")
    }

    /// [`Server::start`] with this configuration file (TOML).
    pub fn start_with_config(toml: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let http = free_port();
        let mut grpc = free_port();
        while grpc == http {
            grpc = free_port();
        }
        let config = dir.path().join("skald.toml");
        std::fs::write(&config, toml).unwrap();
        let child = Command::new(skald_bin())
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--http-addr")
            .arg(format!("127.0.0.1:{http}"))
            .arg("--grpc-addr")
            .arg(format!("127.0.0.1:{grpc}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting skald");
        let mut server = Server {
            child,
            url: format!("http://127.0.0.1:{http}"),
            grpc_url: format!("http://127.0.0.1:{grpc}"),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if ready(http) {
                return server;
            }
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("skald exited with {status} before ready");
            }
            assert!(Instant::now() < deadline, "skald not ready");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Server {
    /// A token of `role` for `tenant`, made with `skald token create` on
    /// this server's data directory (a running server picks it up).
    pub fn create_token(&self, tenant: &str, role: &str, name: &str) -> String {
        let out = Command::new(skald_bin())
            .args(["token", "create", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args(["--tenant", tenant, "--role", role, "--name", name])
            .output()
            .expect("running skald token create");
        assert!(out.status.success(), "{out:?}");
        let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
        // The running server re-reads its tokens within a second or so.
        let port: u16 = self.url.rsplit(':').next().unwrap().parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !answers_with(port, &token, tenant) {
            assert!(
                Instant::now() < deadline,
                "the server never accepted the new token"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        token
    }
}

/// Whether `GET /loki/api/v1/labels` with this token and tenant is
/// answered anything but 401 (a push-only token gets 403: it is known).
fn answers_with(port: u16, token: &str, tenant: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut socket) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = socket.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!(
        "GET /loki/api/v1/labels HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\nX-Scope-OrgID: {tenant}\r\nConnection: close\r\n\r\n"
    );
    if socket.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = socket.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 ") && !answer.starts_with("HTTP/1.1 401")
}

/// `GET /ready` answers 200, over a plain socket: no HTTP client runtime,
/// so that async tests can call `Server::start` too.
fn ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut socket) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = socket.set_read_timeout(Some(Duration::from_secs(5)));
    let request =
        format!("GET /ready HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if socket.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = socket.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}
