#![allow(dead_code)]

//! A real PostgreSQL for tests: a cluster made by `initdb` in a temporary
//! directory, served by `pg_ctl` on 127.0.0.1 and a free port, with
//! password authentication (SCRAM) for the user [`USER`], and stopped
//! (`-m immediate`) when dropped.
//!
//! PostgreSQL refuses to run as root: as root, `initdb` and `pg_ctl` run
//! as the `postgres` user (`runuser`). The binaries are looked up in
//! `PATH`, then where Debian's `postgresql` package puts them
//! (`/usr/lib/postgresql/<version>/bin`). Without them, [`Postgres::start`]
//! prints why and returns None, and the test returns: CI installs the
//! package (`.ci/run`), so there the tests always run.

use std::path::{Path, PathBuf};
use std::process::Command;

pub const USER: &str = "skald";
pub const PASSWORD: &str = "skald-test-password";

pub struct Postgres {
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
    running: bool,
    /// Serving TLS only (see [`Postgres::require_tls`]).
    tls: bool,
}

/// The directory holding `pg_ctl` and `initdb`, if installed.
fn binaries() -> Option<PathBuf> {
    let in_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    debian.sort();
    debian.reverse();
    in_path
        .into_iter()
        .chain(debian)
        .find(|dir| dir.join("pg_ctl").is_file() && dir.join("initdb").is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Postgres {
    /// Makes and starts a cluster; None (with the reason printed) when
    /// PostgreSQL is not installed.
    pub fn start() -> Option<Postgres> {
        let Some(bin) = binaries() else {
            eprintln!(
                "skipping: PostgreSQL is not installed (no pg_ctl and initdb in PATH or /usr/lib/postgresql/*/bin; `apt-get install postgresql`)"
            );
            return None;
        };
        // SAFETY: geteuid reads no memory of ours and cannot fail.
        let as_postgres = unsafe { libc::geteuid() } == 0;
        let dir = tempfile::Builder::new()
            .prefix("skald-pg-")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join("password"), PASSWORD).unwrap();
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown of the cluster directory failed");
        }
        let mut pg = Postgres {
            port: free_port(),
            dir,
            bin,
            as_postgres,
            running: false,
            tls: false,
        };
        let data = pg.data_dir();
        let pwfile = pg.dir.path().join("password");
        let out = pg
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                USER,
                "--auth=scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
            ])
            .arg("--no-locale")
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        pg.start_again();
        Some(pg)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    /// Restarts the cluster serving TLS only, with a certificate for
    /// 127.0.0.1 and localhost from a new CA; returns the CA's PEM file.
    /// Connections without TLS are then refused (`hostssl` only).
    pub fn require_tls(&mut self) -> PathBuf {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        self.stop();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let data = self.data_dir();
        let ca_file = self.dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        std::fs::write(data.join("server.crt"), cert.pem()).unwrap();
        std::fs::write(data.join("server.key"), key.serialize_pem()).unwrap();
        let hba = std::fs::read_to_string(data.join("pg_hba.conf")).unwrap();
        let hba: String = hba
            .lines()
            .map(|l| match l.strip_prefix("host ") {
                Some(rest) => format!("hostssl {rest}\n"),
                None => format!("{l}\n"),
            })
            .collect();
        std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            data.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        if self.as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(self.dir.path())
                .status()
                .unwrap();
            assert!(status.success());
        }
        self.tls = true;
        self.start_again();
        ca_file
    }

    /// Starts the cluster again after [`Postgres::stop`].
    pub fn start_again(&mut self) {
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
            self.port,
            self.dir.path().display()
        );
        if self.tls {
            options.push_str(" -c ssl=on");
        }
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
        );
        self.running = true;
    }

    /// Stops the cluster at once (as a crash would).
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        self.running = false;
    }

    /// A URL for database `db` with the right password.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}:{PASSWORD}@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates database `name` (and returns its URL).
    pub fn create_database(&self, name: &str) -> String {
        self.execute("postgres", &format!("CREATE DATABASE \"{name}\""));
        self.url(name)
    }

    /// Runs `sql` in database `db`.
    pub fn execute(&self, db: &str, sql: &str) {
        self.run(db, sql, false);
    }

    /// The first column of the first row of `sql` in database `db`, a
    /// count.
    pub fn count(&self, db: &str, sql: &str) -> i64 {
        self.run(db, sql, true)
    }

    /// Runs `sql` in `db`; returns the count it selects when `count`.
    fn run(&self, db: &str, sql: &str, count: bool) -> i64 {
        let (url, sql) = (self.url(db), sql.to_string());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            let conn = tokio::spawn(conn);
            let n = match count {
                true => client.query_one(&sql, &[]).await.unwrap().get(0),
                false => {
                    client.batch_execute(&sql).await.unwrap();
                    0
                }
            };
            drop(client);
            let _ = conn.await;
            n
        })
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
