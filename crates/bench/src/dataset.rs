//! The benchmark's dataset: realistic log lines, generated from a seed.
//!
//! About a hundred streams of three kinds, weighted so that some streams are
//! much busier than others, as in a real fleet:
//!
//! - `apache` and `nginx` web servers writing the Apache combined access log
//!   format (client IPs from a recurring pool, paths with ids, weighted status
//!   codes, sizes, referrers, user agents);
//! - services writing JSON application logs (`ts`, `level`, `msg`, `service`,
//!   `trace_id`, `latency_ms`, `user_id`, ...);
//! - background jobs writing logfmt (`ts=... level=warn msg="..." ...`).
//!
//! Every stream has `job`, `instance`, `env` and `region` labels (the
//! Kubernetes-style services also `namespace`); the level is part of the line,
//! except for the `payments` service, which ships one stream per level, as
//! some deployments do.
//!
//! Line `i` of the dataset is a pure function of the seed, `i`, the number of
//! lines and the time range: each line draws from its own random generator,
//! so batches can be generated in parallel and in any order. Timestamps
//! increase with `i` (so per stream too) and cover `span` up to `end`. A
//! needle token, unlike anything else the generator writes, appears in
//! exactly [`NEEDLES`] lines spread over the time range.
//!
//! Not a model of any particular system: the point is log text with the
//! repetition and the entropy of real logs, so that compression and
//! filtering figures mean something.

use std::fmt::Write as _;

/// Lines carrying the needle token.
pub const NEEDLES: usize = 10;

/// The text of the id search, as a user looks for an order or user id
/// everywhere. Its trigrams are in almost every chunk of every format
/// (ids, sizes, offsets, trace ids), so chunk filters rule out almost
/// nothing and the server reads all the data.
pub const ID_SEARCH_TEXT: &str = "424242";

/// The job and instance of the stream the tail query reads.
pub const TAIL_JOB: &str = "apache";
pub const TAIL_INSTANCE: &str = "web-01";

/// The text format of a stream's lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Apache combined access log.
    Combined,
    /// One JSON object per line.
    Json,
    /// logfmt key=value pairs.
    Logfmt,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Combined, Format::Json, Format::Logfmt];

    pub fn name(self) -> &'static str {
        match self {
            Format::Combined => "Apache combined",
            Format::Json => "JSON",
            Format::Logfmt => "logfmt",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// One stream of the dataset.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// The stream's labels as selector text, as shippers send them.
    pub labels: String,
    pub job: &'static str,
    pub instance: String,
    pub format: Format,
    /// The level of every line, for streams that carry it as a label.
    pub level: Option<&'static str>,
    /// Relative share of the lines.
    weight: f64,
}

/// (job, format, instances, relative weight of its busiest instance).
const JOBS: &[(&str, Format, usize, f64)] = &[
    ("apache", Format::Combined, 10, 6.0),
    ("nginx", Format::Combined, 10, 5.0),
    ("api", Format::Json, 16, 4.0),
    ("checkout", Format::Json, 8, 3.0),
    ("auth", Format::Json, 6, 2.0),
    ("search", Format::Json, 6, 2.0),
    ("payments", Format::Json, 4, 2.0),
    ("worker", Format::Logfmt, 16, 3.0),
    ("queue", Format::Logfmt, 8, 2.0),
    ("scheduler", Format::Logfmt, 4, 1.0),
    ("billing-cron", Format::Logfmt, 4, 1.0),
];

/// The `payments` streams, one per level, and their share of that instance.
const PAYMENT_LEVELS: &[(&str, f64)] = &[("info", 1.0), ("warn", 0.15), ("error", 0.05)];

const REGIONS: &[&str] = &["eu-west-1", "us-east-1", "ap-southeast-2"];

/// The hundred streams of the dataset; fixed, whatever the seed.
pub fn streams() -> Vec<StreamSpec> {
    let mut out = Vec::new();
    for &(job, format, instances, weight) in JOBS {
        for i in 0..instances {
            let instance = match format {
                Format::Combined => format!(
                    "{}-{:02}",
                    if job == "apache" { "web" } else { "edge" },
                    i + 1
                ),
                _ => pod_name(job, i),
            };
            // The last instance of each job is a staging one.
            let env = if i + 1 == instances {
                "staging"
            } else {
                "prod"
            };
            let region = REGIONS[i % REGIONS.len()];
            let namespace = match format {
                Format::Combined => None,
                Format::Json => Some("shop"),
                Format::Logfmt => Some("jobs"),
            };
            // Busier first instances: load is never evenly spread.
            let instance_weight = weight / (1.0 + 0.2 * i as f64);
            let mut labels =
                format!(r#"{{job="{job}", instance="{instance}", env="{env}", region="{region}""#);
            if let Some(ns) = namespace {
                write!(labels, r#", namespace="{ns}""#).unwrap();
            }
            if job == "payments" {
                for &(level, share) in PAYMENT_LEVELS {
                    out.push(StreamSpec {
                        labels: format!(r#"{labels}, level="{level}"}}"#),
                        job,
                        instance: instance.clone(),
                        format,
                        level: Some(level),
                        weight: instance_weight * share,
                    });
                }
            } else {
                labels.push('}');
                out.push(StreamSpec {
                    labels,
                    job,
                    instance,
                    format,
                    level: None,
                    weight: instance_weight,
                });
            }
        }
    }
    out
}

/// A Kubernetes-style pod name: `api-6d4cf56db6-x7k2p`.
fn pod_name(job: &str, i: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = Rng::new(hash64(
        job.bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64)),
    ));
    let replica_set = rng.next_u64() & 0xff_ffff_ffff;
    let mut rng = Rng::new(hash64(replica_set ^ (i as u64 + 1)));
    let suffix: String = (0..5).map(|_| *rng.pick(ALPHABET) as char).collect();
    format!("{job}-{replica_set:010x}-{suffix}")
}

/// What the generator needs to know to produce the same lines again.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub seed: u64,
    pub lines: u64,
    /// Timestamp of the first line's slot, Unix nanoseconds.
    pub start_ns: i64,
    /// Timestamp bound: every line is before it.
    pub end_ns: i64,
    step_ns: i64,
    pub streams: Vec<StreamSpec>,
    cumulative: Vec<f64>,
    pub needle: String,
    needle_at: Vec<u64>,
}

impl Dataset {
    /// `lines` lines over `span_ns` nanoseconds up to `end_ns`.
    pub fn new(seed: u64, lines: u64, end_ns: i64, span_ns: i64) -> Dataset {
        assert!(
            lines >= NEEDLES as u64,
            "the dataset needs at least {NEEDLES} lines"
        );
        let streams = streams();
        let mut total = 0.0;
        let cumulative = streams
            .iter()
            .map(|s| {
                total += s.weight;
                total
            })
            .collect();
        let step_ns = (span_ns / lines as i64).max(1);
        let start_ns = end_ns - step_ns * lines as i64;
        // The needle differs with the seed and the time range, so that runs
        // against the same long-lived server do not find each other's lines.
        let mut rng = Rng::new(hash64(seed ^ hash64(end_ns as u64)));
        const NEEDLE_ALPHABET: &[u8] = b"ghjkmnpqrstuvwxyz"; // no hex digits, no vowels but u and y
        let needle: String = "zq"
            .chars()
            .chain((0..14).map(|_| *rng.pick(NEEDLE_ALPHABET) as char))
            .collect();
        let needle_at = (0..NEEDLES as u64)
            .map(|k| {
                let lo = k * lines / NEEDLES as u64;
                let hi = (k + 1) * lines / NEEDLES as u64;
                lo + rng.below(hi - lo)
            })
            .collect();
        Dataset {
            seed,
            lines,
            start_ns,
            end_ns,
            step_ns,
            streams,
            cumulative,
            needle,
            needle_at,
        }
    }

    /// Writes line `i` into `out` (cleared first); returns its stream (an
    /// index into [`Dataset::streams`]) and its timestamp.
    pub fn entry(&self, i: u64, out: &mut String) -> (usize, i64) {
        debug_assert!(i < self.lines);
        out.clear();
        let mut rng = Rng::new(hash64(self.seed ^ hash64(i.wrapping_add(1))));
        // Jitter below half a step keeps timestamps strictly increasing.
        let jitter = if self.step_ns >= 2 {
            rng.below(self.step_ns as u64 / 2) as i64
        } else {
            0
        };
        let ts = self.start_ns + i as i64 * self.step_ns + jitter;
        let total = *self.cumulative.last().expect("streams");
        let x = rng.unit() * total;
        let stream = self
            .cumulative
            .partition_point(|&c| c <= x)
            .min(self.streams.len() - 1);
        let spec = &self.streams[stream];
        let needle = self
            .needle_at
            .binary_search(&i)
            .is_ok()
            .then_some(self.needle.as_str());
        let time = Utc::from_ns(ts);
        match spec.format {
            Format::Combined => combined_line(&mut rng, self.seed, &time, needle, out),
            Format::Json => json_line(&mut rng, spec, &time, needle, out),
            Format::Logfmt => logfmt_line(&mut rng, spec, &time, needle, out),
        }
        (stream, ts)
    }
}

// ---------------------------------------------------------------------------
// Apache combined access log

const METHODS_READ: &[(&str, u32)] = &[("GET", 96), ("HEAD", 4)];

const PRODUCTS: &[&str] = &[
    "wireless-headphones",
    "running-shoes",
    "coffee-grinder",
    "yoga-mat",
    "desk-lamp",
    "hiking-backpack",
    "water-bottle",
    "mechanical-keyboard",
    "usb-c-cable",
    "phone-case",
    "polarized-sunglasses",
    "rain-jacket",
    "cast-iron-pan",
    "chef-knife",
    "board-game",
    "led-strip",
    "smart-watch",
    "bluetooth-speaker",
    "office-chair",
    "monitor-arm",
];

const SEARCH_WORDS: &[&str] = &[
    "shoes", "red", "dress", "laptop", "charger", "kids", "sale", "organic", "coffee", "gift",
    "black", "jacket", "wireless", "cheap", "usb", "men", "women", "summer", "leather", "bag",
];

const CATEGORIES: &[&str] = &[
    "electronics",
    "kitchen",
    "outdoor",
    "fashion",
    "home",
    "toys",
    "sports",
    "books",
];

/// Build hashes of the static assets: a few deployments are live at once.
const ASSET_BUILDS: &[&str] = &["3f9a1c2e", "b71d04aa", "5e2c9f13"];

const USER_AGENTS: &[(&str, u32)] = &[
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        30,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        14,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
        20,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
        14,
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
        6,
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51",
        5,
    ),
    (
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        3,
    ),
    (
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        1,
    ),
    ("curl/8.5.0", 2),
    ("python-requests/2.31.0", 2),
];

const REFERRER_SITES: &[(&str, u32)] = &[
    ("https://www.example-shop.com", 70),
    ("https://www.google.com/", 20),
    ("https://www.bing.com/", 3),
    ("https://t.co/", 2),
    ("https://www.facebook.com/", 5),
];

/// The kind of resource a request asks for: decides status codes and sizes.
#[derive(Clone, Copy)]
enum Resource {
    Page,
    Asset,
    Api,
    Health,
    Scanner,
}

fn combined_line(rng: &mut Rng, seed: u64, time: &Utc, needle: Option<&str>, out: &mut String) {
    let mut path = String::new();
    let mut method = *rng.weighted(METHODS_READ);
    let resource = if let Some(token) = needle {
        write!(path, "/account/reset-password?token={token}").unwrap();
        Resource::Page
    } else {
        request_path(rng, &mut method, &mut path)
    };

    // Most requests come from a recurring pool of clients; health checks
    // from the load balancers.
    let ip = match resource {
        Resource::Health => 0x0a00_0000 | (rng.below(4) as u32) << 8 | (10 + rng.below(3) as u32),
        _ if rng.chance(0.85) => {
            let client = rng.below(20_000);
            public_ip(hash64(seed ^ hash64(client.wrapping_add(0x1b_1d))))
        }
        _ => public_ip(rng.next_u64()),
    };
    let user = if matches!(resource, Resource::Page | Resource::Api) && rng.chance(0.04) {
        *rng.pick(&["alice", "bob", "carol", "admin", "dave"])
    } else {
        "-"
    };
    let status: u16 = match resource {
        Resource::Health => 200,
        Resource::Scanner => *rng.weighted(&[(404, 95), (403, 5)]),
        Resource::Asset => *rng.weighted(&[(200, 80), (304, 19), (404, 1)]),
        Resource::Page => {
            *rng.weighted(&[(200, 86), (304, 4), (302, 4), (301, 1), (404, 4), (500, 1)])
        }
        Resource::Api if method == "POST" => {
            *rng.weighted(&[(201, 70), (200, 15), (400, 8), (401, 3), (422, 2), (500, 2)])
        }
        Resource::Api => {
            *rng.weighted(&[(200, 88), (401, 3), (404, 5), (429, 1), (500, 2), (502, 1)])
        }
    };
    let size = match (status, resource) {
        (304, _) | (301, _) | (302, _) => 0,
        (_, Resource::Health) => 2,
        (_, Resource::Asset) => 800 + rng.below(180_000),
        (_, Resource::Page) if status == 200 => 6_000 + rng.below(60_000),
        (_, Resource::Api) if status < 300 => 90 + rng.below(6_000),
        _ => 150 + rng.below(1_200),
    };
    let agent = match resource {
        Resource::Health => "ELB-HealthChecker/2.0",
        Resource::Scanner => *rng.pick(&[
            "Mozilla/5.0 zgrab/0.x",
            "python-requests/2.31.0",
            "Go-http-client/1.1",
        ]),
        _ => *rng.weighted(USER_AGENTS),
    };

    write!(
        out,
        "{}.{}.{}.{} - {user} [{:02}/{}/{}:{:02}:{:02}:{:02} +0000] \"{method} {path} HTTP/{}\" {status} ",
        ip >> 24,
        (ip >> 16) & 0xff,
        (ip >> 8) & 0xff,
        ip & 0xff,
        time.day,
        MONTHS[time.month as usize - 1],
        time.year,
        time.hour,
        time.minute,
        time.second,
        if rng.chance(0.7) { "1.1" } else { "2.0" },
    )
    .unwrap();
    if size == 0 {
        out.push('-');
    } else {
        write!(out, "{size}").unwrap();
    }
    out.push_str(" \"");
    match resource {
        Resource::Health | Resource::Scanner => out.push('-'),
        _ if rng.chance(0.35) => out.push('-'),
        _ => {
            let site = *rng.weighted(REFERRER_SITES);
            out.push_str(site);
            if site.ends_with(".com") {
                match rng.below(3) {
                    0 => out.push('/'),
                    1 => write!(
                        out,
                        "/products/{}-{}",
                        rng.pick(PRODUCTS),
                        1000 + rng.below(9000)
                    )
                    .unwrap(),
                    _ => write!(out, "/c/{}", rng.pick(CATEGORIES)).unwrap(),
                }
            }
        }
    }
    write!(out, "\" \"{agent}\"").unwrap();
}

/// A client address in ranges that ISPs and clouds hand out.
fn public_ip(bits: u64) -> u32 {
    const FIRST_OCTETS: &[u32] = &[
        23, 31, 37, 45, 51, 66, 71, 73, 78, 81, 86, 89, 91, 95, 104, 109, 151, 176, 185, 188, 193,
        203, 212, 217,
    ];
    let first = FIRST_OCTETS[(bits >> 32) as usize % FIRST_OCTETS.len()];
    (first << 24) | (bits as u32 & 0x00ff_ffff)
}

/// Picks a request path, and the method when it is not a read.
fn request_path(rng: &mut Rng, method: &mut &'static str, path: &mut String) -> Resource {
    match rng.below(100) {
        0..=7 => {
            path.push('/');
            Resource::Page
        }
        8..=27 => {
            let build = rng.pick(ASSET_BUILDS);
            match rng.below(4) {
                0 => write!(path, "/static/css/main.{build}.css"),
                1 => write!(path, "/static/js/vendor.{build}.js"),
                _ => write!(path, "/static/js/app.{build}.chunk.{}.js", rng.below(40)),
            }
            .unwrap();
            Resource::Asset
        }
        28..=37 => {
            write!(
                path,
                "/images/products/{}/{}_{}.jpg",
                1000 + rng.below(9000),
                rng.pick(&["thumb", "large", "zoom"]),
                rng.below(6)
            )
            .unwrap();
            Resource::Asset
        }
        38..=49 => {
            write!(
                path,
                "/products/{}-{}",
                rng.pick(PRODUCTS),
                1000 + rng.below(9000)
            )
            .unwrap();
            Resource::Page
        }
        50..=54 => {
            write!(
                path,
                "/c/{}?page={}&sort={}",
                rng.pick(CATEGORIES),
                1 + rng.below(20),
                rng.pick(&["price", "popular", "newest"])
            )
            .unwrap();
            Resource::Page
        }
        55..=69 => {
            write!(path, "/api/v1/users/{}", 1 + rng.below(500_000)).unwrap();
            if rng.chance(0.1) {
                *method = "PUT";
            }
            Resource::Api
        }
        70..=79 => {
            write!(
                path,
                "/api/v1/orders/{}/items",
                10_000_000 + rng.below(5_000_000)
            )
            .unwrap();
            Resource::Api
        }
        80..=83 => {
            *method = if rng.chance(0.8) { "POST" } else { "DELETE" };
            write!(path, "/api/v1/cart/{}", rng.next_u64() & 0xffff_ffff).unwrap();
            Resource::Api
        }
        84..=88 => {
            let words = 1 + rng.below(3);
            path.push_str("/search?q=");
            for w in 0..words {
                if w > 0 {
                    path.push('+');
                }
                path.push_str(rng.pick::<&str>(SEARCH_WORDS));
            }
            Resource::Page
        }
        89..=91 => {
            let p = *rng.pick(&[
                "/login",
                "/logout",
                "/account/settings",
                "/account/orders",
                "/checkout",
            ]);
            if p == "/login" && rng.chance(0.5) {
                *method = "POST";
            }
            path.push_str(p);
            Resource::Page
        }
        92..=95 => {
            path.push_str("/health");
            *method = "GET";
            Resource::Health
        }
        96..=98 => {
            path.push_str(rng.pick::<&str>(&[
                "/favicon.ico",
                "/robots.txt",
                "/sitemap.xml",
                "/manifest.json",
            ]));
            Resource::Asset
        }
        _ => {
            path.push_str(rng.pick::<&str>(&[
                "/wp-login.php",
                "/.env",
                "/admin/config.php",
                "/.git/config",
                "/phpmyadmin/",
            ]));
            Resource::Scanner
        }
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

// ---------------------------------------------------------------------------
// JSON application logs

fn routes(job: &str) -> &'static [&'static str] {
    match job {
        "api" => &[
            "/api/v1/users/:id",
            "/api/v1/orders",
            "/api/v1/orders/:id",
            "/api/v1/products/:id",
            "/api/v1/recommendations",
        ],
        "checkout" => &[
            "/checkout/cart",
            "/checkout/cart/items",
            "/checkout/payment",
            "/checkout/confirm",
        ],
        "auth" => &[
            "/auth/login",
            "/auth/token/refresh",
            "/auth/logout",
            "/auth/mfa/verify",
        ],
        "search" => &["/search", "/search/suggest", "/search/facets"],
        _ => &["/payments/charge", "/payments/refund", "/payments/webhook"],
    }
}

const UPSTREAMS: &[&str] = &[
    "postgres-primary",
    "redis-cache",
    "inventory-svc",
    "pricing-svc",
    "payments-gateway",
    "elasticsearch",
];

const ERRORS: &[&str] = &[
    "context deadline exceeded",
    "connection refused",
    "connection reset by peer",
    "upstream returned 503 Service Unavailable",
    "too many connections",
];

const TABLES: &[&str] = &[
    "users",
    "orders",
    "order_items",
    "products",
    "sessions",
    "carts",
    "payments",
];

fn json_line(rng: &mut Rng, spec: &StreamSpec, time: &Utc, needle: Option<&str>, out: &mut String) {
    let level = match spec.level {
        Some(level) => level,
        None => *rng.weighted(&[("info", 82), ("debug", 5), ("warn", 10), ("error", 3)]),
    };
    out.push_str(r#"{"ts":""#);
    time.write_rfc3339_millis(out);
    write!(out, r#"","level":"{level}","#).unwrap();
    let route = *rng.pick(routes(spec.job));
    let method = if route.ends_with(":id") || route.ends_with("suggest") || route == "/search" {
        "GET"
    } else {
        *rng.weighted(&[("GET", 40), ("POST", 55), ("PUT", 5)])
    };
    let user_id = 1 + rng.below(500_000);
    let msg = |out: &mut String, msg: &str, service: &str, rng: &mut Rng| {
        write!(out, r#""msg":"{msg}","service":"{service}","trace_id":""#).unwrap();
        hex(rng, 32, out);
        out.push_str(r#"","span_id":""#);
        hex(rng, 16, out);
        out.push_str("\",");
    };
    if let Some(token) = needle {
        msg(out, "password reset requested", spec.job, rng);
        write!(out, r#""token":"{token}","user_id":{user_id}}}"#).unwrap();
        return;
    }
    match level {
        "info" => match rng.below(100) {
            0..=69 => {
                msg(out, "request completed", spec.job, rng);
                let status = *rng.weighted(&[(200, 90), (201, 6), (204, 2), (404, 2)]);
                write!(out, r#""method":"{method}","route":"{route}","status":{status},"latency_ms":{:.1},"user_id":{user_id}}}"#, latency(rng, 18.0)).unwrap();
            }
            70..=79 => {
                msg(
                    out,
                    if rng.chance(0.8) {
                        "cache hit"
                    } else {
                        "cache miss"
                    },
                    spec.job,
                    rng,
                );
                write!(
                    out,
                    r#""cache":"redis","key":"user:{user_id}:profile","latency_ms":{:.1}}}"#,
                    latency(rng, 0.8)
                )
                .unwrap();
            }
            80..=89 => {
                msg(out, "event published", spec.job, rng);
                write!(
                    out,
                    r#""topic":"{}.events","partition":{},"offset":{},"user_id":{user_id}}}"#,
                    spec.job,
                    rng.below(12),
                    80_000_000 + rng.below(2_000_000)
                )
                .unwrap();
            }
            _ => {
                msg(out, "order state changed", spec.job, rng);
                write!(
                    out,
                    r#""order_id":{},"from":"pending","to":"{}","amount":{}.{:02},"currency":"{}","user_id":{user_id}}}"#,
                    10_000_000 + rng.below(5_000_000),
                    rng.pick(&["paid", "shipped", "cancelled"]),
                    5 + rng.below(400),
                    rng.below(100),
                    rng.pick(&["EUR", "USD", "GBP"])
                )
                .unwrap();
            }
        },
        "debug" => {
            msg(out, "db query", spec.job, rng);
            write!(
                out,
                r#""db":"postgres","table":"{}","rows":{},"query_ms":{:.2}}}"#,
                rng.pick(TABLES),
                rng.below(200),
                latency(rng, 2.5)
            )
            .unwrap();
        }
        "warn" => {
            if rng.chance(0.6) {
                msg(out, "slow request", spec.job, rng);
                write!(out, r#""method":"{method}","route":"{route}","latency_ms":{:.1},"threshold_ms":500,"user_id":{user_id}}}"#, 500.0 + latency(rng, 900.0)).unwrap();
            } else {
                msg(out, "retrying upstream call", spec.job, rng);
                write!(
                    out,
                    r#""upstream":"{}","attempt":{},"error":"{}"}}"#,
                    rng.pick(UPSTREAMS),
                    1 + rng.below(3),
                    rng.pick(ERRORS)
                )
                .unwrap();
            }
        }
        _ => {
            msg(out, "upstream request failed", spec.job, rng);
            write!(
                out,
                r#""upstream":"{}","error":"{}","status":{},"route":"{route}","latency_ms":{:.1},"user_id":{user_id}}}"#,
                rng.pick(UPSTREAMS),
                rng.pick(ERRORS),
                rng.pick(&[500, 502, 503, 504]),
                latency(rng, 2_000.0)
            )
            .unwrap();
        }
    }
}

// ---------------------------------------------------------------------------
// logfmt job logs

const QUEUES: &[&str] = &[
    "emails",
    "thumbnails",
    "invoices",
    "webhooks",
    "search-index",
    "exports",
];
const TASKS: &[(&str, &str)] = &[
    ("cleanup-sessions", "*/5 * * * *"),
    ("send-digest", "0 * * * *"),
    ("rebuild-sitemap", "15 */2 * * *"),
    ("expire-carts", "*/10 * * * *"),
];

fn logfmt_line(
    rng: &mut Rng,
    spec: &StreamSpec,
    time: &Utc,
    needle: Option<&str>,
    out: &mut String,
) {
    let level = *rng.weighted(&[("info", 78), ("debug", 12), ("warn", 7), ("error", 3)]);
    out.push_str("ts=");
    time.write_rfc3339_millis(out);
    let component = match spec.job {
        "worker" => "worker",
        "queue" => "consumer",
        "scheduler" => "cron",
        _ => "billing",
    };
    if let Some(token) = needle {
        write!(out, " level=info msg=\"password reset email queued\" component={component} queue=emails token={token} user_id={}", 1 + rng.below(500_000)).unwrap();
        return;
    }
    write!(out, " level={level} ").unwrap();
    match (spec.job, level) {
        ("worker", "info") => {
            let queue = rng.pick(QUEUES);
            if rng.chance(0.45) {
                write!(
                    out,
                    "msg=\"job started\" component={component} queue={queue} job_id="
                )
                .unwrap();
                hex(rng, 16, out);
                write!(out, " attempt={}", 1 + rng.below(2)).unwrap();
            } else {
                write!(
                    out,
                    "msg=\"job completed\" component={component} queue={queue} job_id="
                )
                .unwrap();
                hex(rng, 16, out);
                out.push_str(" duration=");
                duration(rng, 35.0, out);
            }
        }
        ("queue", "info") => {
            write!(
                out,
                "msg=\"committed offsets\" component={component} topic={}.events partition={} offset={} lag={}",
                rng.pick(&["orders", "users", "payments", "search"]),
                rng.below(12),
                80_000_000 + rng.below(2_000_000),
                rng.below(50)
            )
            .unwrap();
        }
        ("scheduler", "info") => {
            let (task, cron) = *rng.pick(TASKS);
            if rng.chance(0.5) {
                write!(out, "msg=\"scheduled run\" component={component} task={task} cron=\"{cron}\" run_id=").unwrap();
                hex(rng, 8, out);
            } else {
                write!(
                    out,
                    "msg=\"task finished\" component={component} task={task} items={} duration=",
                    rng.below(5_000)
                )
                .unwrap();
                duration(rng, 800.0, out);
            }
        }
        (_, "info") => {
            write!(
                out,
                "msg=\"invoice generated\" component={component} customer_id={} invoice_id=INV-{} amount={}.{:02} currency={}",
                1 + rng.below(80_000),
                2_000_000 + rng.below(900_000),
                9 + rng.below(900),
                rng.below(100),
                rng.pick(&["EUR", "USD", "GBP"])
            )
            .unwrap();
        }
        (_, "debug") => {
            write!(
                out,
                "msg=\"polling\" component={component} source={} batch={} empty={} duration=",
                rng.pick(QUEUES),
                rng.below(100),
                rng.chance(0.3)
            )
            .unwrap();
            duration(rng, 3.0, out);
        }
        (_, "warn") => {
            write!(
                out,
                "msg=\"retry scheduled\" component={component} queue={} job_id=",
                rng.pick(QUEUES)
            )
            .unwrap();
            hex(rng, 16, out);
            write!(
                out,
                " attempt={} backoff={}s err=\"{}\"",
                2 + rng.below(4),
                1 << rng.below(6),
                rng.pick(ERRORS)
            )
            .unwrap();
        }
        _ => {
            write!(
                out,
                "msg=\"job failed\" component={component} queue={} job_id=",
                rng.pick(QUEUES)
            )
            .unwrap();
            hex(rng, 16, out);
            write!(out, " attempts=5 err=\"{}\" duration=", rng.pick(ERRORS)).unwrap();
            duration(rng, 4_000.0, out);
        }
    }
}

// ---------------------------------------------------------------------------
// Helpers: random numbers, time formatting

/// A latency in milliseconds, exponentially distributed around `mean`.
fn latency(rng: &mut Rng, mean: f64) -> f64 {
    0.1 + -(1.0 - rng.unit()).ln() * mean
}

/// A Go-style duration: `35ms`, `1.204s`.
fn duration(rng: &mut Rng, mean_ms: f64, out: &mut String) {
    let ms = latency(rng, mean_ms);
    if ms < 1000.0 {
        write!(out, "{}ms", ms.round() as u64).unwrap();
    } else {
        write!(out, "{:.3}s", ms / 1000.0).unwrap();
    }
}

fn hex(rng: &mut Rng, digits: usize, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bits = 0u64;
    for k in 0..digits {
        if k % 16 == 0 {
            bits = rng.next_u64();
        }
        out.push(HEX[(bits & 0xf) as usize] as char);
        bits >>= 4;
    }
}

/// SplitMix64's output function: a good 64-bit mixer.
pub fn hash64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64: small, fast, and good enough to make log lines.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    pub fn weighted<'a, T>(&mut self, items: &'a [(T, u32)]) -> &'a T {
        let total: u32 = items.iter().map(|(_, w)| w).sum();
        let mut x = self.below(total as u64) as u32;
        for (item, w) in items {
            if x < *w {
                return item;
            }
            x -= w;
        }
        unreachable!("x is below the sum of the weights")
    }
}

/// A UTC calendar time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub nanos: u32,
}

impl Utc {
    pub fn from_ns(ns: i64) -> Utc {
        let secs = ns.div_euclid(1_000_000_000);
        let nanos = ns.rem_euclid(1_000_000_000) as u32;
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Utc {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
            nanos,
        }
    }

    /// `2024-05-01T12:34:56.789Z`
    pub fn write_rfc3339_millis(&self, out: &mut String) {
        write!(
            out,
            "{}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.nanos / 1_000_000
        )
        .unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const END: i64 = 1_714_566_896_000_000_000; // 2024-05-01T12:34:56Z
    const HOUR: i64 = 3_600_000_000_000;

    fn lines(ds: &Dataset) -> Vec<(usize, i64, String)> {
        let mut line = String::new();
        (0..ds.lines)
            .map(|i| {
                let (s, ts) = ds.entry(i, &mut line);
                (s, ts, line.clone())
            })
            .collect()
    }

    #[test]
    fn calendar_conversion() {
        let t = Utc::from_ns(END + 789_000_000);
        let mut s = String::new();
        t.write_rfc3339_millis(&mut s);
        assert_eq!(s, "2024-05-01T12:34:56.789Z");
        let mut s = String::new();
        Utc::from_ns(951_782_400_000_000_000).write_rfc3339_millis(&mut s); // leap day
        assert_eq!(s, "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn about_a_hundred_streams_with_unique_labels_and_a_tail_stream() {
        let streams = streams();
        assert_eq!(streams.len(), 100);
        let mut labels: Vec<&str> = streams.iter().map(|s| s.labels.as_str()).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), 100);
        assert_eq!(
            streams
                .iter()
                .filter(|s| s.job == TAIL_JOB && s.instance == TAIL_INSTANCE)
                .count(),
            1
        );
        assert!(streams.iter().all(|s| s.labels.starts_with(r#"{job=""#)));
    }

    #[test]
    fn generator_is_deterministic_mixed_and_plants_exactly_the_needles() {
        let a = Dataset::new(7, 20_000, END, 2 * HOUR);
        let b = Dataset::new(7, 20_000, END, 2 * HOUR);
        assert_eq!(a.needle, b.needle);
        assert_eq!(a.needle.len(), 16);
        let la = lines(&a);
        assert_eq!(la, lines(&b));
        // Random access gives the same line as a sequential pass.
        let mut one = String::new();
        assert_eq!(a.entry(12_345, &mut one).1, la[12_345].1);
        assert_eq!(one, la[12_345].2);

        let other = Dataset::new(8, 20_000, END, 2 * HOUR);
        assert_ne!(other.needle, a.needle);
        assert_ne!(lines(&other)[..100], la[..100]);

        // Inside the time range, strictly increasing.
        assert!(la.windows(2).all(|w| w[0].1 < w[1].1));
        assert!(la[0].1 >= END - 2 * HOUR && la.last().unwrap().1 < END);

        // The needle: exactly ten lines, in several streams and formats,
        // spread over the time range.
        let needles: Vec<&(usize, i64, String)> = la
            .iter()
            .filter(|(_, _, l)| l.contains(&a.needle))
            .collect();
        assert_eq!(needles.len(), NEEDLES);
        let mut needle_streams: Vec<usize> = needles.iter().map(|(s, _, _)| *s).collect();
        needle_streams.sort();
        needle_streams.dedup();
        assert!(needle_streams.len() >= 5, "{needle_streams:?}");
        assert!(needles[0].1 < END - 2 * HOUR + HOUR / 4 && needles[9].1 > END - HOUR / 4);

        // The mix: every format and most streams, no format dominating.
        let mut per_format = [0usize; 3];
        let mut per_stream = vec![0usize; a.streams.len()];
        for (s, _, line) in &la {
            per_format[a.streams[*s].format.index()] += 1;
            per_stream[*s] += 1;
            match a.streams[*s].format {
                Format::Combined => {
                    assert!(line.contains(" HTTP/") && line.contains("] \""), "{line}")
                }
                Format::Json => {
                    let v: serde_json::Value =
                        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
                    assert!(
                        v["ts"].is_string() && v["level"].is_string() && v["trace_id"].is_string(),
                        "{line}"
                    );
                    if let Some(level) = a.streams[*s].level {
                        assert_eq!(v["level"], level);
                    }
                }
                Format::Logfmt => assert!(
                    line.starts_with("ts=") && line.contains(" level=") && line.contains(" msg=\""),
                    "{line}"
                ),
            }
        }
        for f in Format::ALL {
            let share = per_format[f.index()] as f64 / la.len() as f64;
            assert!((0.15..0.6).contains(&share), "{}: {share}", f.name());
        }
        assert!(per_stream.iter().filter(|&&n| n > 0).count() >= 95);
        let busiest = *per_stream.iter().max().unwrap();
        let quietest = *per_stream.iter().filter(|&&n| n > 0).min().unwrap();
        assert!(busiest > 5 * quietest, "{busiest} vs {quietest}");

        // Status codes are weighted, not uniform.
        let ok = la.iter().filter(|(_, _, l)| l.contains("\" 200 ")).count();
        let errors = la.iter().filter(|(_, _, l)| l.contains("\" 500 ")).count();
        assert!(ok > 20 * errors.max(1), "{ok} vs {errors}");
    }
}
