//! TLS on both listeners of the real binary, and the client commands over
//! https://: a CA, server and client certificates are made here for each
//! test (rcgen), never stored in the repository.

mod common;

use common::Server;
use common::pki::Pki;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

impl Pki {
    /// `skald serve` flags: TLS, and mutual TLS when `mutual`.
    fn serve_args(&self, mutual: bool) -> Vec<String> {
        let mut args = vec![
            "--tls-cert".to_string(),
            self.arg("server.pem"),
            "--tls-key".into(),
            self.arg("server.key"),
        ];
        if mutual {
            args.push("--tls-client-ca".into());
            args.push(self.arg("ca.pem"));
        }
        args
    }

    fn start(&self, mutual: bool) -> Server {
        let args = self.serve_args(mutual);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Server::start_tls(self.client(mutual), &args)
    }

    /// A gRPC health check over TLS, with the client certificate or not.
    fn grpc_health(&self, server: &Server, with_cert: bool) -> Result<i32, String> {
        use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(self.pem("ca.pem")))
            .domain_name("localhost");
        if with_cert {
            tls = tls.identity(Identity::from_pem(
                self.pem("client.pem"),
                self.pem("client.key"),
            ));
        }
        let url = server.grpc_url();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let channel = Channel::from_shared(url)
                .unwrap()
                .tls_config(tls)
                .map_err(|e| e.to_string())?
                .connect()
                .await
                .map_err(|e| format!("{e:?}"))?;
            let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
            let answer = client
                .check(tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .map_err(|e| format!("{e:?}"))?;
            Ok(answer.into_inner().status)
        })
    }
}

fn skald(args: &[&str], env: &[(&str, String)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skald"));
    cmd.args(args)
        .env_remove("SKALD_ADDR")
        .env_remove("SKALD_CA_CERT")
        .env_remove("SKALD_CERT")
        .env_remove("SKALD_KEY")
        .env_remove("SKALD_INSECURE_SKIP_VERIFY")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One line on stderr, mentioning `needle`.
fn assert_one_line_error(o: &Output, code: i32, needle: &str) {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "{needle:?} in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

const SERVING: i32 = 1;

#[test]
fn query_and_labels_over_https_trusting_the_ca() {
    let pki = Pki::new();
    let server = pki.start(false);
    let addr = server.url("");
    let ca = pki.arg("ca.pem");

    let o = Command::new(env!("CARGO_BIN_EXE_skald"))
        .args(["push", "--addr", &addr, "--ca-cert", &ca, "-L", "app=tls"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"one\ntwo\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));

    let o = skald(
        &[
            "query",
            r#"{app="tls"}"#,
            "--addr",
            &addr,
            "--ca-cert",
            &ca,
            "-o",
            "raw",
            "--forward",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "one\ntwo\n");

    // The CA from the environment works the same.
    let o = skald(
        &["labels", "--addr", &addr],
        &[("SKALD_CA_CERT", ca.clone())],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).lines().any(|l| l == "app"),
        "{}",
        text(&o.stdout)
    );
    let o = skald(&["labels", "app", "--addr", &addr, "--ca-cert", &ca], &[]);
    assert_eq!(text(&o.stdout), "tls\n", "{}", text(&o.stderr));

    // Without the CA the server is not trusted; skipping verification
    // gets through.
    let o = skald(&["labels", "--addr", &addr], &[]);
    assert_one_line_error(&o, 3, "certificate");
    let o = skald(&["labels", "--addr", &addr, "--insecure-skip-verify"], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // Another CA is not this server's.
    let o = skald(
        &[
            "labels",
            "--addr",
            &addr,
            "--ca-cert",
            &pki.arg("other.pem"),
        ],
        &[],
    );
    assert_one_line_error(&o, 3, "certificate");

    // `skald tail` over wss:// with the same CA: history, then a new line.
    let mut tail = Command::new(env!("CARGO_BIN_EXE_skald"))
        .args(["tail", r#"{app="tls"}"#, "-o", "raw", "--addr", &addr])
        .args(["--ca-cert", &ca, "--since", "5m"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::io::BufRead::lines(std::io::BufReader::new(tail.stdout.take().unwrap()));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let next = || rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!((next(), next()), ("one".to_string(), "two".to_string()));
    let now = common::now_ns().to_string();
    let body =
        serde_json::json!({"streams": [{"stream": {"app": "tls"}, "values": [[now, "three"]]}]});
    assert_eq!(server.push_json(&body).status().as_u16(), 204);
    assert_eq!(next(), "three");
    tail.kill().unwrap();
    let out = tail.wait_with_output().unwrap();
    assert!(
        !text(&out.stderr).contains("polling"),
        "{}",
        text(&out.stderr)
    );

    // The gRPC listener speaks TLS too.
    assert_eq!(pki.grpc_health(&server, false), Ok(SERVING));
}

#[test]
fn mutual_tls_refuses_clients_without_a_certificate() {
    let pki = Pki::new();
    let server = pki.start(true);
    let addr = server.url("");
    let ca = pki.arg("ca.pem");

    let o = skald(&["labels", "--addr", &addr, "--ca-cert", &ca], &[]);
    assert_one_line_error(&o, 3, "cannot reach");
    assert!(o.stdout.is_empty());

    let with_cert = [
        "labels",
        "--addr",
        &addr,
        "--ca-cert",
        &ca,
        "--cert",
        &pki.arg("client.pem"),
        "--key",
        &pki.arg("client.key"),
    ];
    let o = skald(&with_cert, &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // The same through the environment.
    let o = skald(
        &["labels", "--addr", &addr],
        &[
            ("SKALD_CA_CERT", ca.clone()),
            ("SKALD_CERT", pki.arg("client.pem")),
            ("SKALD_KEY", pki.arg("client.key")),
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));

    // A certificate of another CA is no better than none.
    let o = skald(
        &[
            "labels",
            "--addr",
            &addr,
            "--ca-cert",
            &ca,
            "--cert",
            &pki.arg("other.pem"),
            "--key",
            &pki.arg("server.key"),
        ],
        &[],
    );
    assert_ne!(o.status.code(), Some(0), "{}", text(&o.stderr));

    assert!(pki.grpc_health(&server, false).is_err());
    assert_eq!(pki.grpc_health(&server, true), Ok(SERVING));
}

#[test]
fn unusable_certificate_files_are_one_line_and_an_exit_code() {
    let pki = Pki::new();
    let data = tempfile::tempdir().unwrap();
    let garbage = data.path().join("garbage.pem");
    std::fs::write(&garbage, "this is not PEM\n").unwrap();
    let serve = |cert: &Path, key: &Path, extra: &[&str]| {
        let data_dir = data.path().join("data").display().to_string();
        let mut args = vec![
            "serve".to_string(),
            "--data-dir".into(),
            data_dir,
            "--http-addr".into(),
            "127.0.0.1:0".into(),
            "--grpc-addr".into(),
            "127.0.0.1:0".into(),
            "--tls-cert".into(),
            cert.display().to_string(),
            "--tls-key".into(),
            key.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        skald(&args, &[])
    };
    let o = serve(&garbage, &pki.path("server.key"), &[]);
    assert_one_line_error(&o, 1, "holds no PEM certificate");
    assert!(text(&o.stderr).contains("garbage.pem"));

    let o = serve(
        &data.path().join("absent.pem"),
        &pki.path("server.key"),
        &[],
    );
    assert_one_line_error(&o, 1, "cannot read the TLS certificate file");

    let o = serve(&pki.path("server.pem"), &garbage, &[]);
    assert_one_line_error(&o, 1, "holds no PEM private key");

    let o = serve(&pki.path("server.pem"), &pki.path("stray.key"), &[]);
    assert_one_line_error(&o, 1, "cannot be used together");

    let o = serve(
        &pki.path("server.pem"),
        &pki.path("server.key"),
        &["--tls-client-ca", &garbage.display().to_string()],
    );
    assert_one_line_error(&o, 1, "client CA");

    // A certificate without its key is refused by the command line.
    let o = skald(
        &[
            "serve",
            "--data-dir",
            "x",
            "--tls-cert",
            &pki.arg("server.pem"),
        ],
        &[],
    );
    assert_ne!(o.status.code(), Some(0));
    assert!(text(&o.stderr).contains("key"), "{}", text(&o.stderr));

    // Client side: the same files are a bad command line (2), before any
    // request.
    let o = skald(
        &[
            "labels",
            "--addr",
            "https://localhost:1",
            "--ca-cert",
            &garbage.display().to_string(),
        ],
        &[],
    );
    assert_one_line_error(&o, 2, "--ca-cert");
    let o = skald(
        &[
            "query",
            "{a=\"b\"}",
            "--addr",
            "https://localhost:1",
            "--cert",
            &pki.arg("client.pem"),
            "--key",
            &data.path().join("absent.key").display().to_string(),
        ],
        &[],
    );
    assert_one_line_error(&o, 2, "cannot read --key file");
    let o = skald(&["labels", "--cert", &pki.arg("client.pem")], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
}
