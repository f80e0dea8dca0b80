//! Serving connections: the loop both listeners (the HTTP API and the
//! gRPC endpoint) run, with the limits that keep slow, stalled or greedy
//! clients from holding the server's connections and memory.
//!
//! axum's and tonic's own serve loops have no header, body or idle
//! timeout and no cap on connections, so both listeners go through
//! [`serve`], which drives hyper directly:
//!
//! - **connections**: at most `max_connections` per listener; more wait in
//!   the kernel's accept backlog until one closes.
//! - **header timeout**: a connection's first request head must arrive
//!   within `header_timeout_secs` of connecting (both protocols); on
//!   HTTP/1 every later head too, counted from the end of the previous
//!   response (hyper's `header_read_timeout`), so an idle HTTP/1
//!   keep-alive connection is closed after it as well.
//! - **body timeout**: an HTTP request's body must be received whole
//!   within `body_timeout_secs` of its head, else the request is answered
//!   408 (naming the setting) and the connection closed; what was buffered
//!   is dropped with the request. A gRPC call is long-lived (streaming
//!   pushes), so there the rule is on gaps: a message whose bytes stop
//!   arriving for `body_timeout_secs` ends the call with
//!   DEADLINE_EXCEEDED.
//! - **idle timeout**: a connection with no request in flight and no byte
//!   either way for `idle_timeout_secs` is closed (HTTP/2: GOAWAY).
//! - **HTTP/2 streams**: at most `max_streams_per_connection` at once per
//!   connection (hyper refuses the rest).
//! - **push bodies as received** are counted in the decompression budget
//!   every push shares (`max_inflight_decompressed_bytes`, see
//!   `skald_wire::budget`) beyond their first [`FREE_BODY_BYTES`], so
//!   many large uploads cannot together hold more than it: a body that
//!   finds no room stops being read (the client is held back by TCP or
//!   HTTP/2 flow control) for up to `push_budget_wait_ms`, then gets 503
//!   (gRPC UNAVAILABLE). A streaming gRPC push gives back what it held
//!   after each stored message ([`BodyHold::release`]).
//!
//! Not here: TLS (the listener given to [`serve`] may be a
//! [`crate::tls::TlsListener`]), what the routes do.

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use axum::serve::Listener;
use bytes::{Buf, Bytes};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use serde::{Deserialize, Serialize};
use skald_wire::{DecompressBudget, Reservation};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Semaphore, mpsc, watch};
use tower::ServiceExt;

/// The first bytes of each push body, not counted in the budget: a small
/// push never waits for room (bounded by connections and streams).
pub const FREE_BODY_BYTES: usize = 64 * 1024;
/// How long a connection may take to close after a graceful close was
/// asked of it for being idle or too slow, before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// How long the server waits for connections to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How often a body waiting for room in the budget looks again.
const BUDGET_RETRY: Duration = Duration::from_millis(10);

/// The `[listen]` table: limits of both listeners.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenConfig {
    /// A request head must arrive within this (HTTP/1: also between
    /// requests on a keep-alive connection); 0 turns it off.
    pub header_timeout_secs: u64,
    /// An HTTP request body must arrive whole within this of its head; a
    /// gRPC message may pause this long; 0 turns it off.
    pub body_timeout_secs: u64,
    /// A connection without requests and without traffic this long is
    /// closed; 0 turns it off.
    pub idle_timeout_secs: u64,
    /// Connections open at once, per listener.
    pub max_connections: usize,
    /// HTTP/2 streams (requests, gRPC calls) open at once per connection.
    pub max_streams_per_connection: u32,
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            header_timeout_secs: 30,
            body_timeout_secs: 60,
            idle_timeout_secs: 120,
            max_connections: 1024,
            max_streams_per_connection: 128,
        }
    }
}

impl ListenConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_connections == 0 {
            return Err("listen.max_connections must be positive".into());
        }
        if self.max_streams_per_connection == 0 {
            return Err("listen.max_streams_per_connection must be positive".into());
        }
        Ok(())
    }
}

fn secs(s: u64) -> Option<Duration> {
    (s > 0).then(|| Duration::from_secs(s))
}

/// What a listener serves: Loki's HTTP API (HTTP/1 and HTTP/2) or gRPC
/// (HTTP/2 only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Grpc,
}

/// Request paths whose bodies count in the push budget.
fn is_push(protocol: Protocol, path: &str) -> bool {
    match protocol {
        Protocol::Http => matches!(
            path,
            "/loki/api/v1/push" | "/api/prom/push" | "/otlp/v1/logs"
        ),
        Protocol::Grpc => {
            path.starts_with("/skald.v1.LogService/Push")
                || path == "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets the
/// open connections finish (for up to [`SHUTDOWN_GRACE`]).
pub async fn serve<L>(
    mut listener: L,
    router: axum::Router,
    protocol: Protocol,
    config: ListenConfig,
    push_budget: Option<Arc<DecompressBudget>>,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()>
where
    L: Listener<Addr = std::net::SocketAddr>,
    L::Io: Send + Unpin + 'static,
{
    let shared = Arc::new(Shared {
        router,
        protocol,
        config,
        push_budget,
    });
    let connections = Arc::new(Semaphore::new(shared.config.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = connections.clone().acquire_owned() => p.expect("never closed"),
            () = &mut shutdown => break,
        };
        let (io, peer) = tokio::select! {
            c = listener.accept() => c,
            () = &mut shutdown => break,
        };
        let shared = shared.clone();
        let stop = stop_rx.clone();
        let alive = alive_tx.clone();
        tokio::spawn(async move {
            connection(io, peer, shared, stop).await;
            drop(permit);
            drop(alive);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(alive_tx);
    // Every connection task holds a sender: recv() is None once all ended.
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, alive_rx.recv()).await;
    Ok(())
}

struct Shared {
    router: axum::Router,
    protocol: Protocol,
    config: ListenConfig,
    push_budget: Option<Arc<DecompressBudget>>,
}

/// One connection, from accept to close.
async fn connection<I>(
    io: I,
    peer: std::net::SocketAddr,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: io,
        activity: activity.clone(),
    });
    let service = {
        let shared = shared.clone();
        let activity = activity.clone();
        hyper::service::service_fn(move |mut req: Request<Incoming>| {
            // The peer's address, for the audit log (crate::observe).
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(crate::observe::Peer(peer)));
            handle(req, shared.clone(), activity.clone())
        })
    };
    let config = &shared.config;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    if shared.protocol == Protocol::Grpc {
        builder = builder.http2_only();
    }
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(secs(config.header_timeout_secs));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.max_streams_per_connection)
        // Websockets over HTTP/2, as axum's own loop allows.
        .enable_connect_protocol();
    let conn = builder.serve_connection_with_upgrades(io, service);
    let mut conn = std::pin::pin!(conn);
    let mut closing: Option<Instant> = None;
    loop {
        let give_up = closing.map(|at| at + CLOSE_GRACE);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended");
                }
                return;
            }
            _ = stop.wait_for(|s| *s), if closing.is_none() => {
                conn.as_mut().graceful_shutdown();
                // Requests in flight finish (within the shutdown grace).
                closing = Some(Instant::now() + SHUTDOWN_GRACE);
            }
            why = activity.expired(config), if closing.is_none() => {
                tracing::debug!(why, "closing a connection");
                conn.as_mut().graceful_shutdown();
                closing = Some(Instant::now());
            }
            () = sleep_until_opt(give_up) => {
                tracing::debug!("connection did not close in time: dropped");
                return;
            }
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// What a connection did lately: requests in flight (until their response
/// body is sent), whether it ever made one, and when a byte last moved.
struct Activity {
    opened: Instant,
    /// Milliseconds after `opened` of the last byte read or written.
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
    requests: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.opened.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Resolves when the connection should be closed: no request head
    /// within the header timeout of connecting, or idle too long.
    async fn expired(&self, config: &ListenConfig) -> &'static str {
        let header = secs(config.header_timeout_secs);
        let idle = secs(config.idle_timeout_secs);
        loop {
            let now = self.opened.elapsed();
            let mut next = Duration::from_secs(3600);
            if let Some(h) = header
                && self.requests.load(Ordering::Relaxed) == 0
            {
                if now >= h {
                    return "no request head within header_timeout_secs";
                }
                next = next.min(h - now);
            }
            if let Some(idle) = idle {
                let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
                let quiet = now.saturating_sub(last);
                if self.in_flight.load(Ordering::Relaxed) > 0 {
                    next = next.min(idle);
                } else if quiet >= idle {
                    return "idle longer than idle_timeout_secs";
                } else {
                    next = next.min(idle - quiet);
                }
            }
            tokio::time::sleep(next).await;
        }
    }
}

/// A request in flight; dropped with its response body.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The connection's I/O, noting when bytes move.
struct Watched<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What a push's body reserved of the budget, shared by the body as it
/// is read and the handler (in the request's extensions) that stores it.
/// Given back when the request is answered, or earlier by
/// [`BodyHold::release`].
#[derive(Clone)]
pub struct BodyHold(Arc<Mutex<Reservation>>);

impl BodyHold {
    /// Gives back what the body has reserved so far: what it covered is
    /// stored and freed (a streaming push, after each message).
    pub fn release(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).release();
    }

    /// Whether `total` bytes are reserved now; `Err` when the body must
    /// not wait for them (it would sit on the small pushes' reserve).
    fn try_cover(&self, total: usize) -> Result<bool, ()> {
        let mut r = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if r.try_cover(total) {
            Ok(true)
        } else if r.must_not_wait(total) {
            Err(())
        } else {
            Ok(false)
        }
    }
}

/// How a body ended early, for the answer.
const BODY_OK: u8 = 0;
const BODY_TIMED_OUT: u8 = 1;
const BODY_BUSY: u8 = 2;

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    activity: Arc<Activity>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let in_flight = activity.begin();
    let protocol = shared.protocol;
    let config = &shared.config;
    let (mut parts, body) = req.into_parts();
    let hold = match &shared.push_budget {
        Some(b) if is_push(protocol, parts.uri.path()) => {
            let mut reservation = b.start();
            // A body announced large never uses the small pushes' reserve.
            if let Some(len) = parts
                .headers
                .get(hyper::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
            {
                reservation.expect(len);
            }
            Some(BodyHold(Arc::new(Mutex::new(reservation))))
        }
        _ => None,
    };
    if let Some(h) = &hold {
        parts.extensions.insert(h.clone());
    }
    let ended = Arc::new(AtomicU8::new(BODY_OK));
    let rule = match (protocol, secs(config.body_timeout_secs)) {
        (_, None) => Rule::None,
        (Protocol::Http, Some(d)) => Rule::Whole(Instant::now() + d),
        (Protocol::Grpc, Some(d)) => Rule::Gaps(d, GrpcFrames::default()),
    };
    let body = GuardedBody {
        inner: body,
        timer: Box::pin(tokio::time::sleep_until(match rule {
            Rule::Whole(at) => at.into(),
            Rule::Gaps(gap, _) => tokio::time::Instant::now() + gap,
            Rule::None => tokio::time::Instant::now(),
        })),
        rule,
        timeout_secs: config.body_timeout_secs,
        ended: ended.clone(),
        hold: hold
            .clone()
            .map(|h| (h, shared.push_budget.clone().expect("set"))),
        received: 0,
        waiting: None,
    };
    let req = Request::from_parts(parts, Body::new(body));
    let Ok(mut res) = shared.router.clone().oneshot(req).await;
    if protocol == Protocol::Http {
        match ended.load(Ordering::Relaxed) {
            BODY_TIMED_OUT => res = body_timed_out(config.body_timeout_secs),
            BODY_BUSY => {
                let budget = shared.push_budget.as_ref().expect("only with a budget");
                res = plain(StatusCode::SERVICE_UNAVAILABLE, budget.busy().to_string());
            }
            _ => {}
        }
    }
    drop(hold);
    Ok(res.map(|b| {
        Body::new(Answer {
            inner: b,
            _in_flight: in_flight,
        })
    }))
}

fn plain(status: StatusCode, message: String) -> Response<Body> {
    let mut res = Response::new(Body::from(message));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

fn body_timed_out(limit: u64) -> Response<Body> {
    let mut res = plain(
        StatusCode::REQUEST_TIMEOUT,
        format!("request body not received within {limit} s (body_timeout_secs)"),
    );
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

/// A response body that keeps its request counted in flight until sent.
struct Answer {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for Answer {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// When a request body is too slow.
enum Rule {
    None,
    /// The whole body by then (HTTP).
    Whole(Instant),
    /// No pause this long inside a message (gRPC).
    Gaps(Duration, GrpcFrames),
}

/// Where a gRPC request body is in its length-prefixed messages (a flag
/// byte and a 4-byte big-endian length, then the message).
#[derive(Default)]
struct GrpcFrames {
    /// Whether any byte came: until then the first message is awaited.
    seen: bool,
    /// Bytes of the current prefix seen (0 to 4: a prefix is incomplete).
    prefix_len: usize,
    prefix: [u8; 5],
    /// Bytes of the current message still to come.
    remaining: usize,
}

impl GrpcFrames {
    fn feed(&mut self, mut data: &[u8]) {
        self.seen |= !data.is_empty();
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(data.len());
                self.remaining -= n;
                data = &data[n..];
                continue;
            }
            self.prefix[self.prefix_len] = data[0];
            self.prefix_len += 1;
            data = &data[1..];
            if self.prefix_len == 5 {
                let len = u32::from_be_bytes([
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ]);
                self.remaining = len as usize;
                self.prefix_len = 0;
            }
        }
    }

    fn mid_message(&self) -> bool {
        !self.seen || self.prefix_len > 0 || self.remaining > 0
    }
}

/// A request body under its [`Rule`] and, for pushes, the budget.
struct GuardedBody {
    inner: Incoming,
    rule: Rule,
    /// The rule's deadline.
    timer: Pin<Box<tokio::time::Sleep>>,
    timeout_secs: u64,
    ended: Arc<AtomicU8>,
    hold: Option<(BodyHold, Arc<DecompressBudget>)>,
    /// Bytes of data received so far.
    received: usize,
    /// A frame received but not yet covered by the budget, since when it
    /// waits, and when to look again.
    waiting: Option<Waiting>,
}

struct Waiting {
    frame: Frame<Bytes>,
    since: Instant,
    retry: Pin<Box<tokio::time::Sleep>>,
}

type Polled = Poll<Option<Result<Frame<Bytes>, tonic::Status>>>;

impl GuardedBody {
    /// Passes a frame on once the budget covers it, or fails when no
    /// room came in time.
    fn admit(&mut self, frame: Frame<Bytes>, since: Instant, cx: &mut Context<'_>) -> Polled {
        let Some((hold, budget)) = &self.hold else {
            return Poll::Ready(Some(Ok(frame)));
        };
        let wanted = self.received.saturating_sub(FREE_BODY_BYTES);
        let covered = hold.try_cover(wanted);
        if covered == Ok(true) {
            return Poll::Ready(Some(Ok(frame)));
        }
        if covered.is_err() || since.elapsed() >= budget.wait() {
            self.ended.store(BODY_BUSY, Ordering::Relaxed);
            return Poll::Ready(Some(Err(tonic::Status::unavailable(
                budget.busy().to_string(),
            ))));
        }
        let mut retry = Box::pin(tokio::time::sleep(BUDGET_RETRY));
        if retry.as_mut().poll(cx).is_ready() {
            cx.waker().wake_by_ref();
        }
        self.waiting = Some(Waiting {
            frame,
            since,
            retry,
        });
        Poll::Pending
    }

    fn too_slow(&mut self) -> Polled {
        self.ended.store(BODY_TIMED_OUT, Ordering::Relaxed);
        let what = match self.rule {
            Rule::Gaps(..) => "a message paused longer than",
            _ => "request body not received within",
        };
        Poll::Ready(Some(Err(tonic::Status::deadline_exceeded(format!(
            "{what} {} s (body_timeout_secs)",
            self.timeout_secs
        )))))
    }
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Polled {
        let this = self.get_mut();
        if let Some(mut w) = this.waiting.take() {
            if matches!(this.rule, Rule::Whole(_)) && this.timer.as_mut().poll(cx).is_ready() {
                return this.too_slow();
            }
            if w.retry.as_mut().poll(cx).is_pending() {
                this.waiting = Some(w);
                return Poll::Pending;
            }
            return this.admit(w.frame, w.since, cx);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.remaining();
                    if let Rule::Gaps(gap, frames) = &mut this.rule {
                        frames.feed(data.chunk());
                        let at = tokio::time::Instant::now() + *gap;
                        this.timer.as_mut().reset(at);
                    }
                }
                this.admit(frame, Instant::now(), cx)
            }
            Poll::Ready(Some(Err(e))) => {
                Poll::Ready(Some(Err(tonic::Status::from_error(Box::new(e)))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let armed = match &this.rule {
                    Rule::None => false,
                    Rule::Whole(_) => true,
                    Rule::Gaps(_, frames) => frames.mid_message(),
                };
                if armed && this.timer.as_mut().poll(cx).is_ready() {
                    return this.too_slow();
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.waiting.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_frames_know_when_a_message_is_incomplete() {
        let mut f = GrpcFrames::default();
        assert!(f.mid_message(), "the first message is awaited");
        f.feed(&[0, 0, 0]);
        assert!(f.mid_message(), "half a prefix");
        f.feed(&[0, 3, b'a']);
        assert!(f.mid_message(), "two of three bytes to come");
        f.feed(&[b'b', b'c', 0, 0, 0, 0, 0]);
        assert!(!f.mid_message(), "an empty message completes at once");
        f.feed(&[0, 0, 0, 0, 1]);
        assert!(f.mid_message());
        f.feed(b"z");
        assert!(!f.mid_message());
    }

    #[test]
    fn push_paths_are_the_push_routes_of_each_protocol() {
        assert!(is_push(Protocol::Http, "/loki/api/v1/push"));
        assert!(is_push(Protocol::Http, "/otlp/v1/logs"));
        assert!(!is_push(Protocol::Http, "/loki/api/v1/query"));
        assert!(is_push(
            Protocol::Grpc,
            "/skald.v1.LogService/PushLogStream"
        ));
        assert!(is_push(
            Protocol::Grpc,
            "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
        ));
        assert!(!is_push(Protocol::Grpc, "/skald.v1.LogService/TailLogs"));
    }

    #[test]
    fn zero_caps_are_refused() {
        assert!(ListenConfig::default().validate().is_ok());
        let none = ListenConfig {
            max_connections: 0,
            ..Default::default()
        };
        assert!(none.validate().unwrap_err().contains("max_connections"));
    }
}
