//! [`ObjectSegments`]: segments in S3 or an S3-compatible server, through
//! the `object_store` crate.
//!
//! Keys live under the URL's prefix (`s3://bucket/prefix` holds
//! `prefix/tenants/<tenant>/segments/<id>.seg`). A new segment is written
//! to a local staging file first (the segment writer needs a file), then
//! uploaded whole, or in parts of [`ObjectStoreConfig::part_bytes`] above
//! [`ObjectStoreConfig::multipart_bytes`]; either way it appears complete
//! or not at all.
//!
//! Reads go through a [`BlockCache`] shared by every segment: opening a
//! segment asks its size and fetches its last 256 KiB (footer, section
//! table, and on small segments everything), and each block a query reads
//! is kept, so repeated queries fetch nothing. [`ObjectStats`] counts the
//! requests and bytes that did go out.
//!
//! `object_store` is async; the store's core is not. This store owns a
//! small tokio runtime, and each call blocks its (store or blocking-pool)
//! thread on a task spawned there, so it works from any thread.
//!
//! Credentials, region and endpoint come from the usual `AWS_*` variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL`, ...), overridden by [`ObjectStoreConfig`].

use super::{BlockCache, Listed, SegmentStore, not_found};
use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{
    ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart,
};
use skald_chunk::RangeRead;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bytes fetched from the end of a segment when it is opened.
const TAIL_BYTES: u64 = 256 * 1024;

/// How to reach the bucket.
#[derive(Debug, Clone)]
pub struct ObjectStoreConfig {
    /// `s3://bucket` or `s3://bucket/prefix`.
    pub url: String,
    /// An S3-compatible server's URL (`http://127.0.0.1:9000`); plain
    /// HTTP is allowed when it says so. None: `AWS_ENDPOINT_URL` or AWS.
    pub endpoint: Option<String>,
    /// None: `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// Both, or neither to take `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY` (or the other ways AWS provides).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Bytes of remote ranges kept in memory.
    pub cache_bytes: u64,
    /// Segments larger than this are uploaded in parts.
    pub multipart_bytes: u64,
    /// Size of each part (S3 needs at least 5 MiB but for the last).
    pub part_bytes: usize,
}

impl ObjectStoreConfig {
    pub fn new(url: impl Into<String>) -> ObjectStoreConfig {
        ObjectStoreConfig {
            url: url.into(),
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            cache_bytes: 256 << 20,
            multipart_bytes: 64 << 20,
            part_bytes: 16 << 20,
        }
    }
}

/// Requests sent and bytes fetched since the store was opened.
#[derive(Debug, Default)]
struct Counters {
    gets: AtomicU64,
    get_bytes: AtomicU64,
    puts: AtomicU64,
    put_bytes: AtomicU64,
}

/// What went to the object store, and how the cache did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObjectStats {
    /// GET requests for data (opening and reading segments).
    pub gets: u64,
    pub get_bytes: u64,
    /// Objects uploaded (whole or in parts).
    pub puts: u64,
    pub put_bytes: u64,
    pub cache: super::cache::CacheStats,
}

#[derive(Debug)]
pub struct ObjectSegments {
    url: String,
    store: Arc<dyn ObjectStore>,
    prefix: String,
    cache: Arc<BlockCache>,
    counters: Arc<Counters>,
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    multipart_bytes: u64,
    part_bytes: usize,
}

impl ObjectSegments {
    /// Builds the client (no request yet; see [`ObjectSegments::check`]).
    pub fn open(config: &ObjectStoreConfig) -> io::Result<ObjectSegments> {
        let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
        let rest = config.url.strip_prefix("s3://").ok_or_else(|| {
            invalid(format!(
                "storage URL {} is not s3://bucket[/prefix]",
                config.url
            ))
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(invalid(format!(
                "storage URL {} names no bucket",
                config.url
            )));
        }
        let prefix = prefix.trim_matches('/');
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(20),
                ..Default::default()
            })
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(120)),
            );
        let endpoint = config
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
        if let Some(endpoint) = endpoint {
            builder = builder
                .with_allow_http(endpoint.starts_with("http://"))
                .with_endpoint(endpoint);
        }
        let region = config.region.clone().or_else(|| {
            std::env::var("AWS_REGION")
                .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
                .ok()
        });
        builder = builder.with_region(region.unwrap_or_else(|| "us-east-1".into()));
        if let (Some(id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
            builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(secret);
        }
        let store = builder
            .build()
            .map_err(|e| invalid(format!("storage {}: {e}", config.url)))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("skald-objects")
            .enable_all()
            .build()?;
        Ok(ObjectSegments {
            url: config.url.trim_end_matches('/').to_string(),
            store: Arc::new(store),
            prefix: prefix.to_string(),
            cache: Arc::new(BlockCache::new(config.cache_bytes)),
            counters: Arc::default(),
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            multipart_bytes: config.multipart_bytes,
            part_bytes: config.part_bytes.max(5 << 20),
        })
    }

    /// Proves the bucket is reachable with these credentials: lists under
    /// the prefix and writes, reads back and deletes a small object.
    pub fn check(&self) -> io::Result<()> {
        self.list("tenants/")?;
        let key = "skald-write-check";
        let payload = format!("written by skald at {:?}\n", std::time::SystemTime::now());
        self.put_bytes(key, payload.as_bytes())?;
        let back = self.get(key)?;
        self.delete(key)?;
        if back != payload.as_bytes() {
            return Err(io::Error::other(format!(
                "{} returned other bytes than were written",
                self.location(key).display()
            )));
        }
        Ok(())
    }

    pub fn stats(&self) -> ObjectStats {
        let c = &self.counters;
        ObjectStats {
            gets: c.gets.load(Ordering::Relaxed),
            get_bytes: c.get_bytes.load(Ordering::Relaxed),
            puts: c.puts.load(Ordering::Relaxed),
            put_bytes: c.put_bytes.load(Ordering::Relaxed),
            cache: self.cache.stats(),
        }
    }

    fn path(&self, key: &str) -> ObjectPath {
        match self.prefix.is_empty() {
            true => ObjectPath::from(key),
            false => ObjectPath::from(format!("{}/{key}", self.prefix)),
        }
    }

    /// Runs `work` on this store's runtime and waits for it.
    fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = io::Result<T>> + Send + 'static,
    ) -> io::Result<T> {
        run_on(&self.handle, work)
    }
}

fn run_on<T: Send + 'static>(
    handle: &tokio::runtime::Handle,
    work: impl Future<Output = io::Result<T>> + Send + 'static,
) -> io::Result<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    handle.spawn(async move {
        let _ = tx.send(work.await);
    });
    rx.recv()
        .map_err(|_| io::Error::other("the object store's runtime has shut down"))?
}

impl Drop for ObjectSegments {
    fn drop(&mut self) {
        // Never blocks, so dropping the store is fine on an async thread.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Maps `object_store` errors to `io::Error`, keeping "not found" and
/// naming the object.
fn to_io(location: &str) -> impl Fn(object_store::Error) -> io::Error + '_ {
    move |e| match e {
        object_store::Error::NotFound { .. } => not_found(location),
        other => io::Error::other(format!("{location}: {other}")),
    }
}

impl SegmentStore for ObjectSegments {
    fn remote_stats(&self) -> Option<ObjectStats> {
        Some(self.stats())
    }

    fn describe(&self) -> String {
        format!("object storage {}", self.url)
    }

    fn location(&self, key: &str) -> PathBuf {
        PathBuf::from(format!("{}/{key}", self.url))
    }

    fn put_file(&self, key: &str, local: &Path) -> io::Result<()> {
        let size = std::fs::metadata(local)?.len();
        let (store, path, location) = (self.store.clone(), self.path(key), self.url_of(key));
        if size <= self.multipart_bytes {
            let bytes = Bytes::from(std::fs::read(local)?);
            self.run(async move {
                store
                    .put(&path, PutPayload::from(bytes))
                    .await
                    .map_err(to_io(&location))
            })?;
        } else {
            let local = local.to_path_buf();
            let part_bytes = self.part_bytes;
            self.run(async move {
                upload_in_parts(&*store, &path, &local, part_bytes)
                    .await
                    .map_err(|e| io::Error::new(e.kind(), format!("{location}: {e}")))
            })?;
        }
        self.counters.puts.fetch_add(1, Ordering::Relaxed);
        self.counters.put_bytes.fetch_add(size, Ordering::Relaxed);
        Ok(())
    }

    fn put_bytes(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        let (store, path, location) = (self.store.clone(), self.path(key), self.url_of(key));
        let payload = PutPayload::from(bytes.to_vec());
        self.run(async move { store.put(&path, payload).await.map_err(to_io(&location)) })?;
        self.counters.puts.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn get(&self, key: &str) -> io::Result<Vec<u8>> {
        let (store, path, location) = (self.store.clone(), self.path(key), self.url_of(key));
        let bytes = self.run(async move {
            let result = store.get(&path).await.map_err(to_io(&location))?;
            result.bytes().await.map_err(to_io(&location))
        })?;
        self.counters.gets.fetch_add(1, Ordering::Relaxed);
        self.counters
            .get_bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(bytes.to_vec())
    }

    fn open(&self, key: &str) -> io::Result<Box<dyn RangeRead>> {
        let (store, path, location) = (self.store.clone(), self.path(key), self.url_of(key));
        // The size first, then the tail by a bounded range: some
        // S3-compatible servers refuse a suffix range longer than the
        // object.
        let (size, start, tail) = self.run(async move {
            let size = store.head(&path).await.map_err(to_io(&location))?.size;
            let start = size.saturating_sub(TAIL_BYTES);
            let tail = match size {
                0 => Bytes::new(),
                _ => store
                    .get_range(&path, start..size)
                    .await
                    .map_err(to_io(&location))?,
            };
            Ok((size, start, tail))
        })?;
        self.counters.gets.fetch_add(1, Ordering::Relaxed);
        self.counters
            .get_bytes
            .fetch_add(tail.len() as u64, Ordering::Relaxed);
        let name = self.url_of(key);
        self.cache.insert(&name, start, tail);
        Ok(Box::new(ObjectRange {
            name,
            path: self.path(key),
            size,
            store: self.store.clone(),
            handle: self.handle.clone(),
            cache: self.cache.clone(),
            counters: self.counters.clone(),
        }))
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<Listed>> {
        use futures_util::TryStreamExt;
        let store = self.store.clone();
        // `list` takes whole path segments: list the directory part of the
        // prefix (recursively), then keep what matches the rest.
        let dir = match prefix.rfind('/') {
            Some(i) => Some(self.path(&prefix[..i])),
            None if self.prefix.is_empty() => None,
            None => Some(ObjectPath::from(self.prefix.as_str())),
        };
        let location = self.url.clone();
        let metas = self.run(async move {
            store
                .list(dir.as_ref())
                .try_collect::<Vec<_>>()
                .await
                .map_err(to_io(&location))
        })?;
        let skip = match self.prefix.is_empty() {
            true => 0,
            false => self.prefix.len() + 1,
        };
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let name = m.location.as_ref();
                let key = name.get(skip..)?;
                key.starts_with(prefix).then(|| Listed {
                    key: key.to_string(),
                    size: m.size,
                })
            })
            .collect())
    }

    fn delete(&self, key: &str) -> io::Result<()> {
        let (store, path, location) = (self.store.clone(), self.path(key), self.url_of(key));
        self.run(async move {
            match store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(to_io(&location)(e)),
            }
        })
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (store, from_path, to_path) = (self.store.clone(), self.path(from), self.path(to));
        let location = self.url_of(from);
        self.run(async move {
            store
                .rename(&from_path, &to_path)
                .await
                .map_err(to_io(&location))
        })
    }
}

impl ObjectSegments {
    fn url_of(&self, key: &str) -> String {
        format!("{}/{key}", self.url)
    }
}

/// Uploads `local` to `path` in parts of `part_bytes`; aborts the upload
/// (nothing appears) on any error.
async fn upload_in_parts(
    store: &dyn ObjectStore,
    path: &ObjectPath,
    local: &Path,
    part_bytes: usize,
) -> io::Result<()> {
    use tokio::io::AsyncReadExt;
    let upload = store.put_multipart(path).await.map_err(io::Error::other)?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, part_bytes);
    let outcome: io::Result<()> = async {
        let mut file = tokio::fs::File::open(local).await?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            writer
                .wait_for_capacity(4)
                .await
                .map_err(io::Error::other)?;
            writer.write(&buf[..n]);
        }
    }
    .await;
    match outcome {
        Ok(()) => writer.finish().await.map(|_| ()).map_err(io::Error::other),
        Err(e) => {
            let _ = writer.abort().await;
            Err(e)
        }
    }
}

/// One remote segment, read by range through the shared cache.
#[derive(Debug)]
struct ObjectRange {
    /// The object's URL: its name in the cache and in errors.
    name: String,
    path: ObjectPath,
    size: u64,
    store: Arc<dyn ObjectStore>,
    handle: tokio::runtime::Handle,
    cache: Arc<BlockCache>,
    counters: Arc<Counters>,
}

impl RangeRead for ObjectRange {
    fn len(&self) -> u64 {
        self.size
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        if buf.is_empty() || self.cache.read(&self.name, offset, buf) {
            return Ok(());
        }
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.size)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "{} bytes at {offset} lie past the end of {}",
                        buf.len(),
                        self.name
                    ),
                )
            })?;
        let (store, path, name) = (self.store.clone(), self.path.clone(), self.name.clone());
        let bytes = run_on(&self.handle, async move {
            store
                .get_range(&path, offset..end)
                .await
                .map_err(to_io(&name))
        })?;
        self.counters.gets.fetch_add(1, Ordering::Relaxed);
        self.counters
            .get_bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if bytes.len() != buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} returned {} bytes for a range of {}",
                    self.name,
                    bytes.len(),
                    buf.len()
                ),
            ));
        }
        buf.copy_from_slice(&bytes);
        self.cache.insert(&self.name, offset, bytes);
        Ok(())
    }
}
