//! Following a log query live, for `skald tail`, `skald query -f` and
//! `skald logs -f`.
//!
//! Each (re)connection first catches up through `query_range`, page by
//! page, from the newest entry printed (or `--since`), then opens Loki's
//! websocket tail (`/loki/api/v1/tail`) with `start` at that entry, so that
//! nothing stored between the last page and the subscription is missed.
//! The websocket delivers entries as the server stores them; when it
//! closes (the server restarts), the cycle starts again, reporting the
//! outage once on stderr.
//!
//! Never twice: [`Cursor`] remembers the newest timestamp printed and the
//! entries (labels and line) at that timestamp. Catch-up pages and the
//! websocket's history both start at that timestamp, inclusive, and the
//! entries already printed there are skipped. Entries older than it that
//! arrive live (out-of-order ingestion) are new and printed.
//!
//! Entries the server dropped for a slow reader (`dropped_entries`) are
//! reported on stderr. A server without the websocket endpoint (404 or 405
//! on it) is followed by polling `query_range` twice a second instead.

use super::{EXIT_REFUSED, EXIT_SERVER, EXIT_UNREACHABLE, Failure, Remote, output};
use futures_util::StreamExt;
use serde_json::Value;
use std::collections::HashSet;
use std::time::Duration;
use tokio_tungstenite::tungstenite;

/// Entries asked for per request (Loki's default query limit).
const PAGE: usize = 5000;
/// Between polls when the server has no websocket tail.
const POLL_EVERY: Duration = Duration::from_millis(500);
/// Between attempts to reach a server that is down.
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// How often an idle follow checks that its reader is still there.
const READER_CHECK_EVERY: Duration = Duration::from_millis(500);

/// Whether standard output is a pipe whose reader has gone (`| head -n 3`
/// has printed its lines): then following is over even while no new line
/// comes to fail a write, as `tail -f | head` ends. POLLERR on the write
/// end of a pipe means its read end is closed.
fn reader_gone() -> bool {
    let mut fd = libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd on our stack; a zero timeout never blocks.
    let ready = unsafe { libc::poll(&mut fd, 1, 0) };
    ready > 0 && fd.revents & libc::POLLERR != 0
}

/// One log entry of a followed query.
pub struct Entry {
    pub ts: i64,
    pub labels: Value,
    pub line: String,
}

/// What has been printed, so nothing is printed twice.
#[derive(Default)]
struct Cursor {
    /// Newest timestamp printed.
    newest: Option<i64>,
    /// Entries (labels, line) printed at `newest`.
    at_newest: HashSet<(String, String)>,
}

impl Cursor {
    /// Drops the entries already printed, in timestamp order, and records
    /// the others as printed.
    fn admit(&mut self, mut entries: Vec<Entry>) -> Vec<Entry> {
        entries.sort_by_key(|e| e.ts);
        entries.retain(|e| {
            let key = (output::labels_text(&e.labels), e.line.clone());
            match self.newest {
                Some(n) if e.ts == n => self.at_newest.insert(key),
                Some(n) if e.ts < n => true,
                _ => {
                    self.newest = Some(e.ts);
                    self.at_newest.clear();
                    self.at_newest.insert(key);
                    true
                }
            }
        });
        entries
    }
}

/// Whether to go on after printing.
pub type Printed = anyhow::Result<bool>;

/// Follows `query` from `since` (a duration) until `print` returns false
/// or a request is refused. Unreachable servers and server errors are
/// waited out.
pub fn follow(
    remote: &Remote,
    query: &str,
    since: &str,
    mut print: impl FnMut(Vec<Entry>) -> Printed,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut cursor = Cursor::default();
    let mut down = false;
    let mut websocket = true;
    loop {
        let caught_up = match catch_up(remote, query, since, &mut cursor, &mut print) {
            Ok(Some(at)) => at,
            Ok(None) => return Ok(()),
            Err(f) if f.code == EXIT_UNREACHABLE || f.code == EXIT_SERVER => {
                if !down {
                    eprintln!("skald: {f}; retrying");
                    down = true;
                }
                std::thread::sleep(RETRY_EVERY);
                continue;
            }
            Err(f) => return Err(f.into()),
        };
        if down {
            eprintln!("skald: the server is back");
            down = false;
        }
        if !websocket {
            std::thread::sleep(POLL_EVERY);
            if reader_gone() {
                return Ok(());
            }
            continue;
        }
        let start = cursor.newest.unwrap_or(caught_up);
        let ended = runtime.block_on(stream(remote, query, start, &mut cursor, &mut print));
        match ended {
            Ended::Stopped => return Ok(()),
            Ended::Refused(f) => return Err(f.into()),
            Ended::Unsupported(status) => {
                eprintln!(
                    "skald: {} has no websocket tail ({status}); polling instead",
                    remote.addr()
                );
                websocket = false;
            }
            Ended::Lost(why) => {
                eprintln!("skald: lost the tail connection ({why}); reconnecting");
                down = true;
                std::thread::sleep(RETRY_EVERY);
            }
        }
    }
}

/// Prints what `query_range` holds from the cursor (or `since`) on, page
/// by page. `Some(t)`: caught up, with `t` (ns) a moment before the last
/// page was asked for; `None`: the printer wants no more.
fn catch_up(
    remote: &Remote,
    query: &str,
    since: &str,
    cursor: &mut Cursor,
    print: &mut impl FnMut(Vec<Entry>) -> Printed,
) -> Result<Option<i64>, Failure> {
    loop {
        // A second of slack for clocks that disagree a little; what it
        // brings twice is skipped by the cursor.
        let asked_at = now_ns() - 1_000_000_000;
        let mut params: Vec<(&str, String)> = vec![
            ("query", query.to_string()),
            ("limit", PAGE.to_string()),
            ("direction", "forward".into()),
        ];
        match cursor.newest {
            Some(s) => params.push(("start", s.to_string())),
            None => params.push(("since", since.to_string())),
        }
        let v = remote.get_json("/loki/api/v1/query_range", &params)?;
        if v["data"]["resultType"] != "streams" {
            return Err(Failure {
                code: EXIT_REFUSED,
                message: "tail takes a log query, not a metric query".into(),
            });
        }
        let entries = streams_entries(&v["data"]["result"]);
        let full = entries.len() >= PAGE;
        let fresh = cursor.admit(entries);
        let any_fresh = !fresh.is_empty();
        if !print(fresh).map_err(|e| Failure {
            code: 1,
            message: format!("{e:#}"),
        })? {
            return Ok(None);
        }
        if !(full && any_fresh) {
            return Ok(Some(asked_at));
        }
    }
}

/// Entries of a Loki `streams` array.
fn streams_entries(streams: &Value) -> Vec<Entry> {
    let mut out = Vec::new();
    for s in streams.as_array().into_iter().flatten() {
        for e in s["values"].as_array().into_iter().flatten() {
            out.push(Entry {
                ts: e[0].as_str().and_then(|t| t.parse().ok()).unwrap_or(0),
                labels: s["stream"].clone(),
                line: e[1].as_str().unwrap_or_default().to_string(),
            });
        }
    }
    out
}

enum Ended {
    /// The printer wants no more.
    Stopped,
    /// The server refused the tail (a 4xx other than 404 and 405).
    Refused(Failure),
    /// The server has no websocket tail.
    Unsupported(u16),
    /// The connection failed or closed: the server went away.
    Lost(String),
}

async fn stream(
    remote: &Remote,
    query: &str,
    start: i64,
    cursor: &mut Cursor,
    print: &mut impl FnMut(Vec<Entry>) -> Printed,
) -> Ended {
    let params = [
        ("query", query.to_string()),
        ("limit", PAGE.to_string()),
        ("start", start.to_string()),
    ];
    let (request, connector) = match remote.websocket_request("/loki/api/v1/tail", &params) {
        Ok(r) => r,
        Err(f) => return Ended::Refused(f),
    };
    let connecting = tokio_tungstenite::connect_async_tls_with_config(
        request, None, true, // entries go out at once; no Nagle delay
        connector,
    );
    let connected = tokio::time::timeout(remote.timeout(), connecting).await;
    let mut ws = match connected {
        Err(_) => return Ended::Lost("timed out connecting".into()),
        Ok(Ok((ws, _))) => ws,
        Ok(Err(tungstenite::Error::Http(resp))) => {
            let status = resp.status();
            let body = resp
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            return match status.as_u16() {
                404 | 405 => Ended::Unsupported(status.as_u16()),
                400..=499 => Ended::Refused(Failure {
                    code: EXIT_REFUSED,
                    message: format!("the server answered {status}: {}", super::snippet(&body)),
                }),
                _ => Ended::Lost(format!("the server answered {status}")),
            };
        }
        Ok(Err(e)) => return Ended::Lost(e.to_string()),
    };
    let mut reader_check = tokio::time::interval(READER_CHECK_EVERY);
    loop {
        let next = tokio::select! {
            next = ws.next() => next,
            _ = reader_check.tick() => {
                if reader_gone() {
                    return Ended::Stopped;
                }
                continue;
            }
        };
        let text = match next {
            None => return Ended::Lost("closed by the server".into()),
            Some(Err(e)) => return Ended::Lost(e.to_string()),
            Some(Ok(tungstenite::Message::Text(t))) => t,
            Some(Ok(tungstenite::Message::Close(_))) => {
                return Ended::Lost("closed by the server".into());
            }
            Some(Ok(_)) => continue,
        };
        let v: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => return Ended::Lost(format!("a tail message is not JSON: {e}")),
        };
        for d in v["dropped_entries"].as_array().into_iter().flatten() {
            report_dropped(d);
        }
        let fresh = cursor.admit(streams_entries(&v["streams"]));
        if fresh.is_empty() {
            continue;
        }
        match print(fresh) {
            Ok(true) => {}
            Ok(false) => return Ended::Stopped,
            Err(e) => {
                return Ended::Refused(Failure {
                    code: 1,
                    message: format!("{e:#}"),
                });
            }
        }
    }
}

/// One stderr line per dropped-entries notice.
fn report_dropped(d: &Value) {
    let labels = output::labels_text(&d["labels"]);
    let from = d["timestamp"]
        .as_str()
        .and_then(|t| t.parse::<i64>().ok())
        .map(|ns| output::format_time(ns, true))
        .unwrap_or_else(|| "?".into());
    let count = match d["count"].as_u64() {
        Some(n) => format!("{n} entries"),
        None => "entries".into(),
    };
    eprintln!(
        "skald: the server dropped {count} of {labels} from {from} on: this tail read too slowly"
    );
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn e(ts: i64, app: &str, line: &str) -> Entry {
        Entry {
            ts,
            labels: json!({ "app": app }),
            line: line.into(),
        }
    }

    fn lines(es: &[Entry]) -> Vec<&str> {
        es.iter().map(|e| e.line.as_str()).collect()
    }

    #[test]
    fn entries_at_the_newest_timestamp_are_not_admitted_twice() {
        let mut c = Cursor::default();
        let first = c.admit(vec![e(2, "a", "two"), e(1, "a", "one"), e(2, "b", "two")]);
        assert_eq!(lines(&first), ["one", "two", "two"]);
        // A reconnect starts at 2 again: only what is new comes through.
        let again = c.admit(vec![e(2, "a", "two"), e(2, "b", "two"), e(2, "a", "two'")]);
        assert_eq!(lines(&again), ["two'"]);
        let later = c.admit(vec![e(3, "a", "three"), e(2, "c", "late")]);
        assert_eq!(lines(&later), ["late", "three"]);
        assert_eq!(c.newest, Some(3));
        // Out of order, but never printed: printed.
        assert_eq!(lines(&c.admit(vec![e(1, "z", "older")])), ["older"]);
        assert!(c.admit(vec![e(3, "a", "three")]).is_empty());
    }
}
