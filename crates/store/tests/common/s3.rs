#![allow(dead_code)]

//! A real S3 server for tests: `s3s-fs` (an S3 implementation over a
//! directory) served on a loopback port by its own runtime, with
//! signature checks on. Objects land as files under its root, so tests can
//! look at what the store did.

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use std::path::{Path, PathBuf};

pub const ACCESS_KEY: &str = "skald-test-access";
pub const SECRET_KEY: &str = "skald-test-secret";
pub const BUCKET: &str = "logs";

pub struct S3Server {
    pub endpoint: String,
    root: tempfile::TempDir,
    runtime: Option<tokio::runtime::Runtime>,
}

impl S3Server {
    /// Starts a server with one empty bucket, [`BUCKET`].
    pub fn start() -> S3Server {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(BUCKET)).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let fs = s3s_fs::FileSystem::new(root.path()).unwrap();
        let service = {
            let mut b = S3ServiceBuilder::new(fs);
            b.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
            b.build()
        };
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        runtime.spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let conn = http
                    .serve_connection(TokioIo::new(socket), service.clone())
                    .into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        });
        S3Server {
            endpoint,
            root,
            runtime: Some(runtime),
        }
    }

    /// The files the server holds under `prefix` of the bucket, relative
    /// to the bucket, sorted.
    pub fn objects(&self, prefix: &str) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.root.path().join(BUCKET), &mut out);
        let bucket = self.root.path().join(BUCKET);
        let mut keys: Vec<String> = out
            .into_iter()
            .filter_map(|p| {
                let rel = p.strip_prefix(&bucket).ok()?.to_str()?.to_string();
                rel.starts_with(prefix).then_some(rel)
            })
            // s3s-fs keeps its own bookkeeping beside the objects.
            .filter(|k| !k.contains(".s3s") && !k.starts_with('.'))
            .collect();
        keys.sort();
        keys
    }

    pub fn object_path(&self, key: &str) -> PathBuf {
        self.root.path().join(BUCKET).join(key)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}
