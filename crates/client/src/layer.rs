//! A `tracing_subscriber::Layer` that turns events into log entries.
//!
//! Each event becomes one entry of the stream named by the static labels
//! (`service`, `env`, ...), the `level` label and any allow-listed fields:
//!
//! - timestamp: the time the event was recorded;
//! - line: `message key=value ...` (values with spaces or quotes are
//!   quoted), or a JSON object with [`LineFormat::Json`];
//! - fields of the spans the event is in come first, named
//!   `span.field` (`request.id`), outermost span first;
//! - no field becomes a label unless its full (dotted) name is in
//!   [`LokiLayer::with_label_allow_list`]; [`LokiLayer::with_label_deny_list`]
//!   always wins; promoted names are sanitised (`http.status` becomes
//!   `http_status`). Promoted fields stay in the line too.
//!
//! Events from the client's own threads and from the HTTP stack it uses
//! (`hyper`, `reqwest`, `h2`, ...) are ignored: logging them would feed
//! the client its own traffic.

use crate::entry::{Entry, Labels, Timestamp, is_valid_label_name, sanitize_label_name};
use crate::push::{Client, on_client_thread};
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// How the line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LineFormat {
    /// `message key=value ...`.
    #[default]
    Text,
    /// `{"message": "...", "key": "value", ...}`.
    Json,
}

/// Targets whose events are never sent (the client's own stack).
const IGNORED_TARGETS: &[&str] = &[
    "skald_client",
    "reqwest",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "tungstenite",
    "tokio_tungstenite",
];

/// The layer. Build it with [`LokiLayer::new`] and add options.
pub struct LokiLayer {
    client: Client,
    static_labels: Vec<(String, String)>,
    level_label: Option<String>,
    allow: HashSet<String>,
    deny: HashSet<String>,
    format: LineFormat,
    /// Labels per level when no field is promoted, built once.
    cached: parking_lot::Mutex<Option<[Labels; 5]>>,
}

/// Fields recorded on a span, kept in its extensions.
struct SpanFields(Vec<(String, String)>);

impl LokiLayer {
    /// A layer sending to `client`, with a `level` label and no others.
    pub fn new(client: Client) -> LokiLayer {
        LokiLayer {
            client,
            static_labels: Vec::new(),
            level_label: Some("level".into()),
            allow: HashSet::new(),
            deny: HashSet::new(),
            format: LineFormat::Text,
            cached: parking_lot::Mutex::new(None),
        }
    }

    /// Adds a label to every entry (`service`, `env`). Invalid names are
    /// sanitised.
    pub fn with_static_label(mut self, name: &str, value: &str) -> LokiLayer {
        self.static_labels
            .push((sanitize_label_name(name), value.to_string()));
        *self.cached.get_mut() = None;
        self
    }

    /// Names the level label, or removes it with `None`. Default: `level`.
    pub fn with_level_label(mut self, name: Option<&str>) -> LokiLayer {
        self.level_label = name.map(sanitize_label_name);
        *self.cached.get_mut() = None;
        self
    }

    /// Fields (full dotted names) that become labels. Keep these bounded:
    /// see the crate documentation on cardinality.
    pub fn with_label_allow_list<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        names: I,
    ) -> LokiLayer {
        self.allow.extend(names.into_iter().map(Into::into));
        self
    }

    /// Fields that never become labels, even if allow-listed.
    pub fn with_label_deny_list<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        names: I,
    ) -> LokiLayer {
        self.deny.extend(names.into_iter().map(Into::into));
        self
    }

    pub fn with_line_format(mut self, format: LineFormat) -> LokiLayer {
        self.format = format;
        self
    }

    fn promoted(&self, name: &str) -> bool {
        self.allow.contains(name) && !self.deny.contains(name)
    }

    fn labels(&self, level: &Level, promoted: Vec<(String, String)>) -> Option<Labels> {
        let level_name = level_str(level);
        if promoted.is_empty() {
            let mut cached = self.cached.lock();
            if cached.is_none() {
                let levels = [
                    Level::TRACE,
                    Level::DEBUG,
                    Level::INFO,
                    Level::WARN,
                    Level::ERROR,
                ];
                let built: Option<Vec<Labels>> = levels
                    .iter()
                    .map(|l| self.build_labels(l, Vec::new()))
                    .collect();
                *cached = built.and_then(|v| v.try_into().ok());
            }
            let index = match level_name {
                "trace" => 0,
                "debug" => 1,
                "info" => 2,
                "warn" => 3,
                _ => 4,
            };
            return cached.as_ref().map(|c| c[index].clone());
        }
        self.build_labels(level, promoted)
    }

    fn build_labels(&self, level: &Level, promoted: Vec<(String, String)>) -> Option<Labels> {
        let mut pairs: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in promoted {
            pairs.insert(name, value);
        }
        // Static labels and the level win over promoted fields of the same
        // name.
        for (name, value) in &self.static_labels {
            pairs.insert(name.clone(), value.clone());
        }
        if let Some(name) = &self.level_label {
            pairs.insert(name.clone(), level_str(level).to_string());
        }
        if pairs.is_empty() {
            // Loki refuses streams without labels.
            pairs.insert("service_name".into(), "unknown_service".into());
        }
        pairs.retain(|name, _| is_valid_label_name(name));
        Labels::new(pairs).ok()
    }
}

fn level_str(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        _ => "error",
    }
}

/// Collects fields as name/value text, with a name prefix.
struct Collector<'a> {
    prefix: &'a str,
    message: Option<String>,
    fields: Vec<(String, String)>,
}

impl Collector<'_> {
    fn push(&mut self, field: &Field, value: String) {
        if self.prefix.is_empty() && field.name() == "message" {
            self.message = Some(value);
            return;
        }
        let name = if self.prefix.is_empty() {
            field.name().to_string()
        } else {
            format!("{}.{}", self.prefix, field.name())
        };
        self.fields.push((name, value));
    }
}

impl Visit for Collector<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.push(field, format!("{value:?}"));
    }
}

fn write_text_value(out: &mut String, value: &str) {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| !c.is_whitespace() && c != '"' && c != '=' && !c.is_control());
    if plain {
        out.push_str(value);
    } else {
        crate::entry::write_quoted(out, value);
    }
}

impl<S> tracing_subscriber::Layer<S> for LokiLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut collector = Collector {
            prefix: span.name(),
            message: None,
            fields: Vec::new(),
        };
        attrs.record(&mut collector);
        span.extensions_mut().insert(SpanFields(collector.fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut collector = Collector {
            prefix: span.name(),
            message: None,
            fields: Vec::new(),
        };
        values.record(&mut collector);
        let mut extensions = span.extensions_mut();
        match extensions.get_mut::<SpanFields>() {
            Some(fields) => {
                for (name, value) in collector.fields {
                    match fields.0.iter_mut().find(|(n, _)| *n == name) {
                        Some(slot) => slot.1 = value,
                        None => fields.0.push((name, value)),
                    }
                }
            }
            None => extensions.insert(SpanFields(collector.fields)),
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        let target = metadata.target();
        let ignored = IGNORED_TARGETS.iter().any(|t| {
            target
                .strip_prefix(t)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
        });
        if ignored || on_client_thread() {
            return;
        }
        let timestamp = Timestamp::now();
        let mut fields: Vec<(String, String)> = Vec::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(span_fields) = span.extensions().get::<SpanFields>() {
                    fields.extend(span_fields.0.iter().cloned());
                }
            }
        }
        let mut collector = Collector {
            prefix: "",
            message: None,
            fields,
        };
        event.record(&mut collector);
        let message = collector.message.unwrap_or_default();
        let fields = collector.fields;

        let promoted: Vec<(String, String)> = if self.allow.is_empty() {
            Vec::new()
        } else {
            fields
                .iter()
                .filter(|(name, _)| self.promoted(name))
                .map(|(name, value)| (sanitize_label_name(name), value.clone()))
                .collect()
        };
        let Some(labels) = self.labels(metadata.level(), promoted) else {
            return;
        };
        let line = match self.format {
            LineFormat::Text => {
                let mut line = message;
                for (name, value) in &fields {
                    if !line.is_empty() {
                        line.push(' ');
                    }
                    let _ = write!(line, "{name}=");
                    write_text_value(&mut line, value);
                }
                line
            }
            LineFormat::Json => {
                let mut object = serde_json::Map::new();
                object.insert("message".into(), message.into());
                for (name, value) in fields {
                    object.insert(name, value.into());
                }
                serde_json::Value::Object(object).to_string()
            }
        };
        // A closed or full client drops the event; the client counts it.
        let _ = self.client.send(Entry {
            labels,
            timestamp,
            line,
            metadata: Vec::new(),
        });
    }
}
