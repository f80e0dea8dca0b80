//! Loki's JSON push body:
//!
//! ```json
//! {"streams": [{"stream": {"app": "api"},
//!               "values": [["1700000000000000000", "a line"],
//!                          ["1700000000000000001", "another", {"trace_id": "abc"}]]}]}
//! ```
//!
//! Timestamps are strings of integer nanoseconds since the epoch; Loki's
//! docs say a JSON number is refused with a 400, and so do we, with a message
//! saying so. The optional third element of a value is structured metadata:
//! an object of strings (`null` is taken as none). Unknown keys are ignored.
//!
//! The parser is a set of serde visitors over `serde_json`, so nothing is
//! materialised as a `serde_json::Value`: each line is copied once, into its
//! [`Entry`]. Errors that belong to a stream or entry are recorded in a side
//! channel at the point they are found, with their indices, because serde's
//! own errors carry only a line and column.
//!
//! The pre-v1 body of `/api/prom/push` (what python-logging-loki sends by
//! default) is accepted too, in the same streams array:
//!
//! ```json
//! {"streams": [{"labels": "{app=\"api\"}",
//!               "entries": [{"ts": "2019-01-02T15:04:05.123456789Z", "line": "a line"}]}]}
//! ```
//!
//! Not here: label validation (see [`super::StreamLabels`]).

use super::{DecodeLimits, ItemBudget, PushRequest, PushStream, StreamLabels};
use crate::WireError;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use skald_model::{Entry, Label, Timestamp};
use std::cell::RefCell;
use std::fmt;

/// Decodes an uncompressed JSON push body.
///
/// Bytes that are not UTF-8 are replaced by U+FFFD first, as in protobuf
/// pushes and as Loki does with both (Go's JSON decoder replaces them):
/// one stray byte must not refuse a whole batch on one path and be stored
/// on the other. A valid body is not copied.
pub(crate) fn decode(body: &[u8], limits: &DecodeLimits) -> Result<PushRequest, WireError> {
    let body = String::from_utf8_lossy(body);
    let body = body.as_bytes();
    let ctx = Ctx {
        failure: RefCell::new(None),
        budget: RefCell::new(ItemBudget::new(limits)),
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let result = RequestSeed(&ctx)
        .deserialize(&mut de)
        .and_then(|request| de.end().map(|()| request));
    match result {
        Ok(request) => Ok(request),
        Err(e) => {
            let recorded = ctx.failure.into_inner();
            match recorded {
                // A recorded failure explains a data error; a syntax error
                // or early end is serde's to describe, with its position.
                Some(failure) if e.is_data() => Err(failure),
                _ => Err(WireError::Json {
                    reason: e.to_string(),
                }),
            }
        }
    }
}

/// State shared by the visitors of one decode.
struct Ctx {
    /// The first structured error found; later ones are consequences.
    failure: RefCell<Option<WireError>>,
    budget: RefCell<ItemBudget>,
}

impl Ctx {
    /// Records `failure` unless an inner visitor already recorded a more
    /// precise one.
    fn record(&self, failure: WireError) {
        let mut slot = self.failure.borrow_mut();
        if slot.is_none() {
            *slot = Some(failure);
        }
    }

    /// Records `failure` and returns a (data) error to unwind with.
    fn fail<E: de::Error>(&self, failure: WireError) -> E {
        let message = failure.to_string();
        self.record(failure);
        E::custom(message)
    }

    /// Records `failure` as the explanation of `cause`, and passes `cause`
    /// on: if it is a syntax error, serde's message (with its position)
    /// wins at the top.
    fn explain<E>(&self, cause: E, failure: WireError) -> E {
        self.record(failure);
        cause
    }

    fn take_item<E: de::Error>(&self) -> Result<(), E> {
        let taken = self.budget.borrow_mut().take(1);
        taken.map_err(|e| self.fail(e))
    }
}

struct RequestSeed<'c>(&'c Ctx);

impl<'de> DeserializeSeed<'de> for RequestSeed<'_> {
    type Value = PushRequest;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<PushRequest, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RequestSeed<'_> {
    type Value = PushRequest;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(r#"an object like {"streams": [...]}"#)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PushRequest, A::Error> {
        let mut request = PushRequest::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Streams => request.streams = map.next_value_seed(StreamsSeed(self.0))?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(request)
    }
}

struct StreamsSeed<'c>(&'c Ctx);

impl<'de> DeserializeSeed<'de> for StreamsSeed<'_> {
    type Value = Vec<PushStream>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<PushStream>, D::Error> {
        // `any`, not `seq`, so that `null` reaches `visit_unit`.
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StreamsSeed<'_> {
    type Value = Vec<PushStream>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of streams")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Vec<PushStream>, E> {
        Ok(Vec::new())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<PushStream>, A::Error> {
        let mut streams = Vec::new();
        loop {
            let index = streams.len();
            let seed = StreamSeed { ctx: self.0, index };
            let next = seq.next_element_seed(seed).map_err(|e| {
                let reason = format!(r#"expected an object with "stream" and "values": {e}"#);
                self.0.explain(
                    e,
                    WireError::Stream {
                        stream: index,
                        reason,
                    },
                )
            })?;
            match next {
                Some(stream) => streams.push(stream),
                None => return Ok(streams),
            }
        }
    }
}

struct StreamSeed<'c> {
    ctx: &'c Ctx,
    index: usize,
}

impl<'de> DeserializeSeed<'de> for StreamSeed<'_> {
    type Value = PushStream;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<PushStream, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for StreamSeed<'_> {
    type Value = PushStream;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(r#"a stream object like {"stream": {...}, "values": [...]}"#)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PushStream, A::Error> {
        self.ctx.take_item()?;
        let mut labels = None;
        let mut selector = None;
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Labels => {
                    let text = map.next_value::<String>().map_err(|e| {
                        let reason = format!(
                            r#""labels" must be a selector string like {{app="api"}}: {e}"#
                        );
                        self.ctx.explain(
                            e,
                            WireError::Stream {
                                stream: self.index,
                                reason,
                            },
                        )
                    })?;
                    selector = Some(text);
                }
                Key::Entries => {
                    entries = map.next_value_seed(LegacyEntriesSeed {
                        ctx: self.ctx,
                        stream: self.index,
                    })?;
                }
                Key::Stream => {
                    let pairs = map.next_value_seed(PairsSeed).map_err(|e| {
                        let reason =
                            format!(r#""stream" must be an object of string label values: {e}"#);
                        self.ctx.explain(
                            e,
                            WireError::Stream {
                                stream: self.index,
                                reason,
                            },
                        )
                    })?;
                    labels = Some(pairs);
                }
                Key::Values => {
                    entries = map.next_value_seed(ValuesSeed {
                        ctx: self.ctx,
                        stream: self.index,
                    })?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let labels = match (labels, selector) {
            (Some(pairs), _) => StreamLabels::Pairs(pairs),
            (None, Some(text)) => StreamLabels::Selector(text),
            // A missing "stream" becomes an empty set, which label
            // validation reports as such.
            (None, None) => StreamLabels::Pairs(Vec::new()),
        };
        Ok(PushStream { labels, entries })
    }
}

struct ValuesSeed<'c> {
    ctx: &'c Ctx,
    stream: usize,
}

impl<'de> DeserializeSeed<'de> for ValuesSeed<'_> {
    type Value = Vec<Entry>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Entry>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValuesSeed<'_> {
    type Value = Vec<Entry>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(r#"an array of values like [["<unix ns>", "<line>"], ...]"#)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Vec<Entry>, E> {
        Ok(Vec::new())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Entry>, A::Error> {
        let mut entries = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        loop {
            let index = entries.len();
            let seed = EntrySeed {
                ctx: self.ctx,
                stream: self.stream,
                entry: index,
            };
            let next = seq.next_element_seed(seed).map_err(|e| {
                let reason = format!(
                    r#"expected ["<unix ns>", "<line>"] or ["<unix ns>", "<line>", {{metadata}}]: {e}"#
                );
                self.ctx.explain(
                    e,
                    WireError::Entry {
                        stream: self.stream,
                        entry: index,
                        reason,
                    },
                )
            })?;
            match next {
                Some(entry) => entries.push(entry),
                None => return Ok(entries),
            }
        }
    }
}

struct EntrySeed<'c> {
    ctx: &'c Ctx,
    stream: usize,
    entry: usize,
}

impl EntrySeed<'_> {
    fn failure(&self, reason: String) -> WireError {
        WireError::Entry {
            stream: self.stream,
            entry: self.entry,
            reason,
        }
    }

    fn fail<E: de::Error>(&self, reason: String) -> E {
        self.ctx.fail(self.failure(reason))
    }

    fn explain<E: fmt::Display>(&self, cause: E, reason: &str) -> E {
        let failure = self.failure(format!("{reason}: {cause}"));
        self.ctx.explain(cause, failure)
    }
}

impl<'de> DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = Entry;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Entry, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_> {
    type Value = Entry;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Entry, A::Error> {
        self.ctx.take_item()?;
        let missing = || r#"expected ["<unix ns>", "<line>"], got fewer elements"#.to_string();
        let ts = match seq.next_element::<RawTimestamp>()? {
            Some(RawTimestamp::Nanos(ts)) => ts,
            Some(RawTimestamp::Invalid(reason)) => return Err(self.fail(reason)),
            None => return Err(self.fail(missing())),
        };
        let line = match seq.next_element::<String>() {
            Ok(Some(line)) => line,
            Ok(None) => return Err(self.fail(missing())),
            Err(e) => return Err(self.explain(e, "line must be a string")),
        };
        let metadata = match seq.next_element_seed(OptionalPairsSeed) {
            Ok(metadata) => metadata.flatten().unwrap_or_default(),
            Err(e) => {
                return Err(self.explain(e, "structured metadata must be an object of strings"));
            }
        };
        if !metadata.is_empty() {
            let taken = self.ctx.budget.borrow_mut().take(metadata.len());
            taken.map_err(|e| self.ctx.fail::<A::Error>(e))?;
        }
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(self.fail("expected at most 3 elements: timestamp, line, metadata".into()));
        }
        Ok(Entry { ts, line, metadata })
    }
}

/// The `entries` array of the pre-v1 format.
struct LegacyEntriesSeed<'c> {
    ctx: &'c Ctx,
    stream: usize,
}

impl<'de> DeserializeSeed<'de> for LegacyEntriesSeed<'_> {
    type Value = Vec<Entry>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Entry>, D::Error> {
        d.deserialize_any(self)
    }
}

/// One pre-v1 entry as sent; the timestamp is checked after parsing so that
/// the error names the entry.
#[derive(serde::Deserialize)]
struct LegacyEntry {
    ts: String,
    line: String,
}

impl<'de> Visitor<'de> for LegacyEntriesSeed<'_> {
    type Value = Vec<Entry>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(
            r#"an array of entries like [{"ts": "<RFC 3339 time>", "line": "<line>"}, ...]"#,
        )
    }

    fn visit_unit<E: de::Error>(self) -> Result<Vec<Entry>, E> {
        Ok(Vec::new())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Entry>, A::Error> {
        let mut entries = Vec::new();
        loop {
            let index = entries.len();
            let failure = |reason: String| WireError::Entry {
                stream: self.stream,
                entry: index,
                reason,
            };
            let next = seq.next_element::<LegacyEntry>().map_err(|e| {
                let reason =
                    format!(r#"expected {{"ts": "<RFC 3339 time>", "line": "<line>"}}: {e}"#);
                self.ctx.explain(e, failure(reason))
            })?;
            let Some(raw) = next else {
                return Ok(entries);
            };
            self.ctx.take_item()?;
            let ts = crate::params::parse_rfc3339(&raw.ts).map_err(|reason| {
                self.ctx.fail::<A::Error>(failure(format!(
                    "timestamp {:?}: {reason}",
                    WireError::quote(&raw.ts)
                )))
            })?;
            entries.push(Entry {
                ts: Timestamp(ts),
                line: raw.line,
                metadata: Vec::new(),
            });
        }
    }
}

/// A timestamp element, judged without failing the parse so the error can
/// name its entry.
enum RawTimestamp {
    Nanos(Timestamp),
    Invalid(String),
}

impl<'de> de::Deserialize<'de> for RawTimestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawTimestampVisitor)
    }
}

struct RawTimestampVisitor;

impl RawTimestampVisitor {
    fn number(shown: impl fmt::Display) -> RawTimestamp {
        RawTimestamp::Invalid(format!(
            r#"timestamp {shown} must be a string of unix nanoseconds, like "{shown}", not a json number"#
        ))
    }
}

impl<'de> Visitor<'de> for RawTimestampVisitor {
    type Value = RawTimestamp;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string of unix nanoseconds")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<RawTimestamp, E> {
        Ok(match parse_nanos(s) {
            Some(nanos) => RawTimestamp::Nanos(Timestamp(nanos)),
            None => RawTimestamp::Invalid(format!(
                "timestamp {:?} is not an integer number of nanoseconds",
                WireError::quote(s)
            )),
        })
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawTimestamp, E> {
        Ok(Self::number(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawTimestamp, E> {
        Ok(Self::number(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawTimestamp, E> {
        Ok(Self::number(v))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawTimestamp, E> {
        Ok(RawTimestamp::Invalid(format!(
            "timestamp must be a string of unix nanoseconds, not {v}"
        )))
    }

    fn visit_unit<E: de::Error>(self) -> Result<RawTimestamp, E> {
        Ok(RawTimestamp::Invalid(
            "timestamp must be a string of unix nanoseconds, not null".into(),
        ))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawTimestamp, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(RawTimestamp::Invalid(
            "timestamp must be a string of unix nanoseconds, not an array".into(),
        ))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawTimestamp, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(RawTimestamp::Invalid(
            "timestamp must be a string of unix nanoseconds, not an object".into(),
        ))
    }
}

/// Parses `[+-]?[0-9]+` into nanoseconds, as Go's `strconv.ParseInt`.
fn parse_nanos(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A JSON object of string values, as name/value pairs in order.
struct PairsSeed;

impl<'de> DeserializeSeed<'de> for PairsSeed {
    type Value = Vec<Label>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Label>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PairsSeed {
    type Value = Vec<Label>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of strings")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<Label>, A::Error> {
        let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some((name, value)) = map.next_entry::<String, String>()? {
            pairs.push(Label { name, value });
        }
        Ok(pairs)
    }
}

/// Structured metadata: an object of strings, or `null`.
struct OptionalPairsSeed;

impl<'de> DeserializeSeed<'de> for OptionalPairsSeed {
    type Value = Option<Vec<Label>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<Vec<Label>>, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for OptionalPairsSeed {
    type Value = Option<Vec<Label>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of strings or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        PairsSeed.deserialize(d).map(Some)
    }
}

/// The object keys the visitors care about, matched without allocating.
enum Key {
    Streams,
    Stream,
    Values,
    Labels,
    Entries,
    Other,
}

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_identifier(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Key, E> {
        Ok(match s {
            "streams" => Key::Streams,
            "stream" => Key::Stream,
            "values" => Key::Values,
            "labels" => Key::Labels,
            "entries" => Key::Entries,
            _ => Key::Other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_is_replaced_as_in_protobuf() {
        let mut body =
            br#"{"streams":[{"stream":{"app":"aXb"},"values":[["1","beforeX-after"]]}]}"#.to_vec();
        for at in [31, 58] {
            assert_eq!(body[at], b'X');
            body[at] = 0xff;
        }
        let r = decode(&body, &DecodeLimits::default()).unwrap();
        let labels = r.streams[0].labels.to_label_set().unwrap();
        assert_eq!(labels.get("app"), Some("a\u{fffd}b"));
        assert_eq!(r.streams[0].entries[0].line, "before\u{fffd}-after");
    }

    #[test]
    fn legacy_format_is_accepted() {
        let body = br#"{"streams":[{"labels":"{app=\"x\", env=\"p\"}","entries":[
            {"ts":"2026-12-02T18:10:00.123+05:30","line":"hello"},
            {"ts":"2026-12-02T12:40:00Z","line":"world"}]}]}"#;
        let r = decode(body, &DecodeLimits::default()).unwrap();
        assert_eq!(r.streams.len(), 1);
        let labels = r.streams[0].labels.to_label_set().unwrap();
        assert_eq!(labels.to_string(), r#"{app="x", env="p"}"#);
        let e = &r.streams[0].entries;
        assert_eq!(e[0].ts, Timestamp(1_796_215_200_123_000_000));
        assert_eq!(e[0].line, "hello");
        assert_eq!(e[1].ts, Timestamp(1_796_215_200_000_000_000));
    }

    #[test]
    fn legacy_format_errors_name_the_entry() {
        let body = br#"{"streams":[{"labels":"{app=\"x\"}","entries":[
            {"ts":"2026-12-02T12:40:00Z","line":"ok"},{"ts":"yesterday","line":"bad"}]}]}"#;
        let e = decode(body, &DecodeLimits::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("entry 1") || e.contains("entry #1"), "{e}");
        assert!(e.contains("yesterday"), "{e}");
        let body = br#"{"streams":[{"labels":5,"entries":[]}]}"#;
        let e = decode(body, &DecodeLimits::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("selector string"), "{e}");
    }

    #[test]
    fn parses_nanos_like_go() {
        assert_eq!(parse_nanos("0"), Some(0));
        assert_eq!(parse_nanos("-5"), Some(-5));
        assert_eq!(parse_nanos("+5"), Some(5));
        assert_eq!(parse_nanos("9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_nanos("9223372036854775808"), None);
        for bad in ["", "-", "1.5", "1e9", " 1", "abc", "0x10"] {
            assert_eq!(parse_nanos(bad), None, "{bad}");
        }
    }
}
