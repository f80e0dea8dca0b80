//! Client commands against a running Skald (or any Loki): `query`,
//! `labels`, `series`, `tail`, `push`, over http:// or https:// (TLS
//! options in [`tls`]).
//!
//! Exit codes (also in `skald --help`):
//! - 0: success
//! - 1: any other failure
//! - 2: bad command line (clap's, and unusable TLS files)
//! - 3: the server could not be reached (or the TLS handshake failed)
//! - 4: the server refused the request (4xx: bad query, limits)
//! - 5: the server failed (5xx)

pub mod export;
pub mod follow;
pub(crate) mod output;
pub mod push;
pub mod tls;

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::Value;
use std::time::Duration;

pub use push::PushArgs;

/// An error carrying the process exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

pub const EXIT_UNREACHABLE: u8 = 3;
pub const EXIT_REFUSED: u8 = 4;
pub const EXIT_SERVER: u8 = 5;

/// Where the server is and who we are.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Server URL.
    #[arg(long, env = "SKALD_ADDR", default_value = "http://127.0.0.1:3100")]
    pub addr: String,
    /// Tenant (sent as `X-Scope-OrgID`).
    #[arg(long, env = "SKALD_TENANT")]
    pub tenant: Option<String>,
    /// Bearer token.
    #[arg(long, env = "SKALD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Basic auth as `user:password`.
    #[arg(long, env = "SKALD_BASIC_AUTH", hide_env_values = true)]
    pub basic_auth: Option<String>,
    /// Request timeout in seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    #[command(flatten)]
    pub tls: tls::TlsArgs,
}

pub struct Remote {
    args: ServerArgs,
    http: reqwest::blocking::Client,
}

impl Remote {
    pub fn new(args: &ServerArgs) -> anyhow::Result<Remote> {
        let mut builder =
            reqwest::blocking::Client::builder().timeout(Duration::from_secs(args.timeout));
        if let Some(config) = tls::client_config(&args.tls)? {
            builder = builder.tls_backend_preconfigured(config);
        }
        let http = builder.build().context("building the HTTP client")?;
        Ok(Remote {
            args: args.clone(),
            http,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.args.addr.trim_end_matches('/'), path)
    }

    /// The server's URL, as given.
    pub fn addr(&self) -> &str {
        &self.args.addr
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.args.timeout)
    }

    /// A websocket request for `path` (ws:// or wss:// after the server's
    /// scheme), with this client's tenant, credentials and TLS settings.
    pub fn websocket_request(
        &self,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<
        (
            tokio_tungstenite::tungstenite::handshake::client::Request,
            Option<tokio_tungstenite::Connector>,
        ),
        Failure,
    > {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let bad_addr = |why: String| Failure {
            code: 2,
            message: format!("--addr {}: {why}", self.args.addr),
        };
        let mut url = reqwest::Url::parse_with_params(&self.url(path), params)
            .map_err(|e| bad_addr(e.to_string()))?;
        let secure = match url.scheme() {
            "http" => false,
            "https" => true,
            other => return Err(bad_addr(format!("unsupported scheme {other:?}"))),
        };
        url.set_scheme(if secure { "wss" } else { "ws" })
            .map_err(|()| bad_addr("cannot be a websocket URL".into()))?;
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| bad_addr(e.to_string()))?;
        let headers = request.headers_mut();
        let header = |v: String| {
            v.parse().map_err(|_| Failure {
                code: 2,
                message: "the tenant or credentials are not valid in an HTTP header".into(),
            })
        };
        if let Some(t) = &self.args.tenant {
            headers.insert("X-Scope-OrgID", header(t.clone())?);
        }
        if let Some(t) = &self.args.token {
            headers.insert("Authorization", header(format!("Bearer {t}"))?);
        } else if let Some(b) = &self.args.basic_auth {
            use base64::Engine;
            let (user, pass) = b.split_once(':').unwrap_or((b, ""));
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            headers.insert("Authorization", header(format!("Basic {encoded}"))?);
        }
        let connector = if secure {
            let config = tls::websocket_config(&self.args.tls)?;
            Some(tokio_tungstenite::Connector::Rustls(std::sync::Arc::new(
                config,
            )))
        } else {
            None
        };
        Ok((request, connector))
    }

    fn authorize(
        &self,
        mut req: reqwest::blocking::RequestBuilder,
    ) -> reqwest::blocking::RequestBuilder {
        if let Some(t) = &self.args.tenant {
            req = req.header("X-Scope-OrgID", t);
        }
        if let Some(t) = &self.args.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = &self.args.basic_auth {
            let (user, pass) = b.split_once(':').unwrap_or((b, ""));
            req = req.basic_auth(user, Some(pass));
        }
        req
    }

    /// GETs `path` and returns the JSON body, mapping failures to exit codes.
    pub fn get_json(&self, path: &str, params: &[(&str, String)]) -> Result<Value, Failure> {
        let req = self.authorize(self.http.get(self.url(path)).query(params));
        let resp = req.send().map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        let body = resp.text().map_err(|e| self.unreachable(e))?;
        check_status(status, &body)?;
        serde_json::from_str(&body).map_err(|e| Failure {
            code: 1,
            message: format!("the server's answer is not JSON ({e}): {}", snippet(&body)),
        })
    }

    /// POSTs a JSON body; 2xx is success.
    pub fn post_json(&self, path: &str, body: Vec<u8>) -> Result<(), Failure> {
        let req = self.authorize(
            self.http
                .post(self.url(path))
                .header("Content-Type", "application/json")
                .body(body),
        );
        let resp = req.send().map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        let body = resp.text().unwrap_or_default();
        check_status(status, &body)
    }

    /// Sends a request with an optional body (content type, bytes) and
    /// returns the status and body; 404 is returned, other non-2xx
    /// statuses are failures with their exit codes.
    pub fn request_text(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<(u16, String), Failure> {
        let mut req = self.http.request(method, self.url(path));
        if let Some((content_type, bytes)) = body {
            req = req.header("Content-Type", content_type).body(bytes);
        }
        let resp = self
            .authorize(req)
            .send()
            .map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        let text = resp.text().map_err(|e| self.unreachable(e))?;
        if status.as_u16() != 404 {
            check_status(status, &text)?;
        }
        Ok((status.as_u16(), text))
    }

    fn unreachable(&self, e: reqwest::Error) -> Failure {
        let mut message = format!("cannot reach {}: {e}", self.args.addr);
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message = format!("{message}: {s}");
            source = s.source();
        }
        Failure {
            code: EXIT_UNREACHABLE,
            message,
        }
    }
}

fn check_status(status: reqwest::StatusCode, body: &str) -> Result<(), Failure> {
    if status.is_success() {
        return Ok(());
    }
    let code = if status.is_client_error() {
        EXIT_REFUSED
    } else {
        EXIT_SERVER
    };
    Err(Failure {
        code,
        message: format!("the server answered {status}: {}", snippet(body)),
    })
}

pub(crate) fn snippet(body: &str) -> String {
    let one_line = body.trim().replace('\n', " ");
    if one_line.len() > 300 {
        let mut end = 300;
        while !one_line.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &one_line[..end])
    } else {
        one_line
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// Timestamp, labels and line, coloured on a terminal.
    Default,
    /// The line only.
    Raw,
    /// One JSON object per line.
    Jsonl,
    /// One JSON array.
    Json,
    /// CSV with a header.
    Csv,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Args, Debug)]
pub struct QueryArgs {
    /// A LogQL query: a log query (`{app="api"} |= "error"`) or a metric
    /// query (`sum by (level) (rate({app="api"}[5m]))`).
    pub query: String,
    #[command(flatten)]
    pub server: ServerArgs,
    /// How far back to look, as a duration (`1h`, `30m`); ignored with --from.
    #[arg(long, default_value = "1h")]
    pub since: String,
    /// Start: RFC 3339 or Unix time (seconds or nanoseconds).
    #[arg(long)]
    pub from: Option<String>,
    /// End: RFC 3339 or Unix time; default now.
    #[arg(long)]
    pub to: Option<String>,
    /// Most entries to return (log queries).
    #[arg(long, default_value_t = 100)]
    pub limit: u64,
    /// Oldest first (default: newest first).
    #[arg(long)]
    pub forward: bool,
    /// Evaluation step of a metric query (`15s`); the server's default otherwise.
    #[arg(long)]
    pub step: Option<String>,
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Default)]
    pub output: OutputFormat,
    /// Don't print the header of the default output.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Timestamps in UTC (default: local time).
    #[arg(long)]
    pub utc: bool,
    /// Keep printing new entries as they arrive (like `skald tail`).
    #[arg(long, short = 'f')]
    pub follow: bool,
}

pub fn query(args: QueryArgs) -> anyhow::Result<()> {
    if args.follow {
        return tail(TailArgs {
            query: args.query,
            server: args.server,
            since: args.since,
            output: args.output,
            color: args.color,
            utc: args.utc,
        });
    }
    let remote = Remote::new(&args.server)?;
    let mut params: Vec<(&str, String)> = vec![
        ("query", args.query.clone()),
        ("limit", args.limit.to_string()),
        (
            "direction",
            if args.forward { "forward" } else { "backward" }.to_string(),
        ),
    ];
    match &args.from {
        Some(from) => params.push(("start", from.clone())),
        None => params.push(("since", args.since.clone())),
    }
    if let Some(to) = &args.to {
        params.push(("end", to.clone()));
    }
    if let Some(step) = &args.step {
        params.push(("step", step.clone()));
    }
    let v = remote.get_json("/loki/api/v1/query_range", &params)?;
    let style = output::Style::new(args.color, args.utc);
    let mut out = std::io::stdout().lock();
    let printed = output::print_result(&mut out, &v, args.output, &style, args.quiet, args.forward);
    ignore_broken_pipe(printed)
}

#[derive(Args, Debug)]
pub struct LabelsArgs {
    /// A label name: list its values instead of the names.
    pub name: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
    /// How far back to look.
    #[arg(long, default_value = "1h")]
    pub since: String,
}

pub fn labels(args: LabelsArgs) -> anyhow::Result<()> {
    let remote = Remote::new(&args.server)?;
    let params = [("since", args.since.clone())];
    let path = match &args.name {
        Some(name) => format!("/loki/api/v1/label/{name}/values"),
        None => "/loki/api/v1/labels".to_string(),
    };
    let v = remote.get_json(&path, &params)?;
    let mut text = String::new();
    for item in v["data"].as_array().into_iter().flatten() {
        if let Some(s) = item.as_str() {
            text.push_str(s);
            text.push('\n');
        }
    }
    ignore_broken_pipe(
        std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes())
            .map_err(Into::into),
    )
}

#[derive(Args, Debug)]
pub struct SeriesArgs {
    /// A stream selector, e.g. `{app="api"}`.
    pub selector: String,
    #[command(flatten)]
    pub server: ServerArgs,
    /// How far back to look.
    #[arg(long, default_value = "1h")]
    pub since: String,
}

pub fn series(args: SeriesArgs) -> anyhow::Result<()> {
    let remote = Remote::new(&args.server)?;
    let params = [
        ("match[]", args.selector.clone()),
        ("since", args.since.clone()),
    ];
    let v = remote.get_json("/loki/api/v1/series", &params)?;
    let mut text = String::new();
    for s in v["data"].as_array().into_iter().flatten() {
        text.push_str(&output::labels_text(s));
        text.push('\n');
    }
    ignore_broken_pipe(
        std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes())
            .map_err(Into::into),
    )
}

#[derive(Args, Debug)]
pub struct TailArgs {
    /// A LogQL log query.
    pub query: String,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Start with the entries of this last stretch (a duration).
    #[arg(long, default_value = "1m")]
    pub since: String,
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Default)]
    pub output: OutputFormat,
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Timestamps in UTC (default: local time).
    #[arg(long)]
    pub utc: bool,
}

/// Follows a log query live (see [`follow`]): reconnects when the server
/// restarts, never prints an entry twice.
pub fn tail(args: TailArgs) -> anyhow::Result<()> {
    let remote = Remote::new(&args.server)?;
    let style = output::Style::new(args.color, args.utc);
    follow::follow(&remote, &args.query, &args.since, |entries| {
        let page = json_streams(&entries);
        let mut out = std::io::stdout().lock();
        let printed = output::print_result(&mut out, &page, args.output, &style, true, true);
        if let Err(e) = printed {
            // The reader went away (`| head`): done.
            let gone = e
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe);
            return if gone { Ok(false) } else { Err(e) };
        }
        Ok(std::io::Write::flush(&mut out).is_ok())
    })
}

/// Entries as a Loki `streams` answer, one stream per entry, to print them
/// as a query result.
fn json_streams(entries: &[follow::Entry]) -> Value {
    let result: Vec<Value> = entries
        .iter()
        .map(|e| serde_json::json!({"stream": e.labels, "values": [[e.ts.to_string(), e.line]]}))
        .collect();
    serde_json::json!({"data": {"resultType": "streams", "result": result}})
}

#[derive(Args, Debug)]
pub struct IndexArgs {
    /// A stream selector, e.g. `{app="api"}`.
    pub selector: String,
    #[command(flatten)]
    pub server: ServerArgs,
    /// How far back to look.
    #[arg(long, default_value = "1h")]
    pub since: String,
}

/// `skald stats`: streams, chunks, entries and bytes a selector covers.
pub fn stats(args: IndexArgs) -> anyhow::Result<()> {
    let remote = Remote::new(&args.server)?;
    let params = [
        ("query", args.selector.clone()),
        ("since", args.since.clone()),
    ];
    let v = remote.get_json("/loki/api/v1/index/stats", &params)?;
    let mut text = String::new();
    for key in ["streams", "chunks", "entries", "bytes"] {
        text.push_str(&format!("{key:<8} {}\n", v[key]));
    }
    ignore_broken_pipe(
        std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes())
            .map_err(Into::into),
    )
}

/// `skald volume`: bytes per series (or per label with --by).
pub fn volume(args: IndexArgs, by: Option<String>, limit: u32) -> anyhow::Result<()> {
    let remote = Remote::new(&args.server)?;
    let mut params = vec![
        ("query", args.selector.clone()),
        ("since", args.since.clone()),
        ("limit", limit.to_string()),
    ];
    if let Some(by) = by {
        params.push(("targetLabels", by));
        params.push(("aggregateBy", "labels".into()));
    }
    let v = remote.get_json("/loki/api/v1/index/volume", &params)?;
    let mut text = String::new();
    for s in v["data"]["result"].as_array().into_iter().flatten() {
        let bytes = s["value"][1].as_str().unwrap_or_default();
        text.push_str(&format!("{}\t{bytes}\n", output::labels_text(&s["metric"])));
    }
    ignore_broken_pipe(
        std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes())
            .map_err(Into::into),
    )
}

/// A reader that stops early (`| head`) is not an error.
/// Prints `text` on standard output; a closed pipe (`| head`) is not an
/// error.
pub fn print(text: &str) -> anyhow::Result<()> {
    ignore_broken_pipe(
        std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes())
            .map_err(Into::into),
    )
}

fn ignore_broken_pipe(r: anyhow::Result<()>) -> anyhow::Result<()> {
    match r {
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        other => other,
    }
}
