//! A deterministic generator of realistic log streams for tests and the
//! `measure` example: Apache combined access logs, JSON application logs
//! and logfmt lines, with the repetition (client pools, routes, messages)
//! and the noise (ids, durations, trace ids) real logs have.
//!
//! Not a statistical model of any particular system; just enough variety
//! that compression ratios and filter sizes are in the right range.

#![allow(dead_code)]

use skald_model::{Entry, Label, LabelSet, Timestamp, format_rfc3339_nanos};

/// xorshift64*: small, fast, deterministic.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    /// Picks with a skew towards the first items, as real traffic does.
    pub fn pick_skewed<'a>(&mut self, items: &[&'a str]) -> &'a str {
        let a = self.below(items.len() as u64);
        let b = self.below(items.len() as u64);
        items[a.min(b) as usize]
    }

    pub fn hex(&mut self, digits: usize) -> String {
        let mut s = String::with_capacity(digits);
        while s.len() < digits {
            s.push_str(&format!("{:016x}", self.next_u64()));
        }
        s.truncate(digits);
        s
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Apache,
    Json,
    Logfmt,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const METHODS: [&str; 5] = ["GET", "GET", "GET", "POST", "PUT"];
const ROUTES: [&str; 12] = [
    "/api/v1/users/{id}",
    "/api/v1/orders/{id}",
    "/api/v1/orders/{id}/items",
    "/api/v1/products?page={id}",
    "/static/js/app.{hex}.js",
    "/static/css/main.{hex}.css",
    "/health",
    "/login",
    "/api/v1/cart/{id}",
    "/search?q=item{id}&sort=price",
    "/images/products/{id}.jpg",
    "/api/v2/recommendations/{id}",
];
const STATUSES: [&str; 8] = ["200", "200", "200", "200", "304", "404", "500", "201"];
const AGENTS: [&str; 6] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "curl/8.5.0",
    "Go-http-client/1.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
];
const REFERERS: [&str; 4] = [
    "-",
    "https://shop.example.com/",
    "https://www.google.com/",
    "https://shop.example.com/cart",
];
const LEVELS: [&str; 6] = ["info", "info", "info", "debug", "warn", "error"];
const MESSAGES: [&str; 12] = [
    "request completed",
    "payment authorized",
    "cache miss",
    "retrying upstream call",
    "user logged in",
    "order created",
    "inventory reserved",
    "slow query",
    "connection reset by peer",
    "token refreshed",
    "rate limit exceeded",
    "failed to publish event",
];
const SERVICES: [&str; 4] = ["checkout", "payments", "inventory", "accounts"];
const CALLERS: [&str; 6] = [
    "db/pool.go:142",
    "http/server.go:311",
    "queue/consumer.go:88",
    "cache/redis.go:57",
    "auth/jwt.go:203",
    "orders/service.go:419",
];
const TABLES: [&str; 5] = ["orders", "line_items", "users", "products", "payments"];

/// One stream's worth of lines in one format.
pub struct LogGen {
    rng: Rng,
    format: Format,
    ts_ms: i64,
    clients: Vec<String>,
    service: &'static str,
}

impl LogGen {
    pub fn new(seed: u64, format: Format) -> Self {
        let mut rng = Rng::new(seed);
        let clients = (0..300)
            .map(|_| {
                format!(
                    "{}.{}.{}.{}",
                    rng.below(223) + 1,
                    rng.below(256),
                    rng.below(256),
                    rng.below(256)
                )
            })
            .collect();
        let service = SERVICES[rng.below(SERVICES.len() as u64) as usize];
        LogGen {
            rng,
            format,
            // 2024-05-01T00:00:00Z
            ts_ms: 1_714_521_600_000,
            clients,
            service,
        }
    }

    pub fn next_entry(&mut self) -> Entry {
        self.ts_ms += self.rng.below(20) as i64;
        let ts = Timestamp(self.ts_ms * 1_000_000);
        let line = match self.format {
            Format::Apache => self.apache(ts),
            Format::Json => self.json(ts),
            Format::Logfmt => self.logfmt(ts),
        };
        let mut entry = Entry::new(ts, line);
        // A few entries carry structured metadata, as OTLP-shipped logs do.
        if self.rng.below(50) == 0 {
            entry.metadata = vec![Label::new("trace_id", self.rng.hex(32))];
        }
        entry
    }

    fn route(&mut self) -> String {
        let route = self.rng.pick_skewed(&ROUTES);
        let id = self.rng.below(100_000).to_string();
        let hex = self.rng.hex(8);
        route.replace("{id}", &id).replace("{hex}", &hex)
    }

    fn apache(&mut self, ts: Timestamp) -> String {
        let iso = format_rfc3339_nanos(ts);
        let (y, mo, d, hms) = (&iso[0..4], &iso[5..7], &iso[8..10], &iso[11..19]);
        let month = MONTHS[mo.parse::<usize>().unwrap_or(1) - 1];
        let client = self.clients[self.rng.below(self.clients.len() as u64) as usize].clone();
        let method = self.rng.pick(&METHODS);
        let route = self.route();
        let status = self.rng.pick_skewed(&STATUSES);
        let bytes = self.rng.below(50_000);
        let referer = self.rng.pick(&REFERERS);
        let agent = self.rng.pick_skewed(&AGENTS);
        format!(
            "{client} - - [{d}/{month}/{y}:{hms} +0000] \"{method} {route} HTTP/1.1\" {status} {bytes} \"{referer}\" \"{agent}\""
        )
    }

    fn json(&mut self, ts: Timestamp) -> String {
        let iso = format_rfc3339_nanos(ts);
        let time = format!("{}Z", &iso[..23]);
        let level = self.rng.pick_skewed(&LEVELS);
        let msg = self.rng.pick_skewed(&MESSAGES);
        let trace = self.rng.hex(32);
        let span = self.rng.hex(16);
        let user = self.rng.below(50_000);
        let duration = self.rng.below(2_000);
        let route = self.route();
        format!(
            r#"{{"time":"{time}","level":"{level}","service":"{}","logger":"{}.handler","msg":"{msg}","trace_id":"{trace}","span_id":"{span}","user_id":{user},"path":"{route}","duration_ms":{duration}}}"#,
            self.service, self.service
        )
    }

    fn logfmt(&mut self, ts: Timestamp) -> String {
        let iso = format_rfc3339_nanos(ts);
        let time = format!("{}Z", &iso[..23]);
        let level = self.rng.pick_skewed(&LEVELS);
        let caller = self.rng.pick(&CALLERS);
        let msg = self.rng.pick_skewed(&MESSAGES);
        let table = self.rng.pick(&TABLES);
        let rows = self.rng.below(500);
        let micros = self.rng.below(90_000);
        let conn = self.rng.below(64);
        let request = format!(
            "{}-{}-{}-{}-{}",
            self.rng.hex(8),
            self.rng.hex(4),
            self.rng.hex(4),
            self.rng.hex(4),
            self.rng.hex(12)
        );
        format!(
            "time={time} level={level} caller={caller} msg=\"{msg}\" db={} table={table} rows={rows} duration={}.{:03}ms conn_id={conn} request_id={request}",
            self.service,
            micros / 1000,
            micros % 1000
        )
    }
}

/// `streams_per_format` streams of each format, `lines` entries each.
pub fn corpus(streams_per_format: usize, lines: usize, seed: u64) -> Vec<(LabelSet, Vec<Entry>)> {
    let mut out = Vec::new();
    for (f, format) in [Format::Apache, Format::Json, Format::Logfmt]
        .into_iter()
        .enumerate()
    {
        for i in 0..streams_per_format {
            let stream_seed =
                seed ^ ((f * 1000 + i) as u64 + 1).wrapping_mul(0x1234_5678_9ABC_DEF1);
            let mut generator = LogGen::new(stream_seed, format);
            let entries = (0..lines).map(|_| generator.next_entry()).collect();
            let labels = LabelSet::new(vec![
                Label::new("app", format!("{format:?}").to_lowercase()),
                Label::new("instance", format!("host-{i}")),
                Label::new("env", "prod"),
            ])
            .expect("valid labels");
            out.push((labels, entries));
        }
    }
    out
}
