//! Request parameters as Loki reads them: from the query string, and for
//! POST from a form body too; times in every form Loki accepts.

use crate::ApiError;
use bytes::Bytes;
use skald_model::{Matcher, Timestamp};

/// Parameters of a request, in order; repeated names (`match[]`) allowed.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn from_request(query: Option<&str>, body: &Bytes) -> Params {
        let mut v: Vec<(String, String)> = Vec::new();
        if let Some(q) = query {
            v.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        if !body.is_empty() {
            v.extend(form_urlencoded::parse(body).into_owned());
        }
        Params(v)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn time(&self, name: &str) -> Result<Option<Timestamp>, ApiError> {
        self.get(name)
            .map(|v| {
                skald_wire::parse_time(v)
                    .map_err(|e| ApiError::bad_request(format!("invalid parameter {name:?}: {e}")))
            })
            .transpose()
    }

    /// A duration parameter in nanoseconds.
    pub fn duration(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.get(name)
            .map(|v| {
                skald_wire::parse_duration(v)
                    .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
                    .map_err(|e| ApiError::bad_request(format!("invalid parameter {name:?}: {e}")))
            })
            .transpose()
    }

    /// `start`/`end`/`since` resolved as Loki does: `end` defaults to now,
    /// `start` to `end - since`, `since` to one hour (or `default_since`).
    pub fn range(&self, default_since_ns: i64) -> Result<(Timestamp, Timestamp), ApiError> {
        let end = self.time("end")?.unwrap_or_else(Timestamp::now);
        let since = self.duration("since")?.unwrap_or(default_since_ns);
        let start = match self.time("start")? {
            Some(s) => s,
            None => end.saturating_sub(since),
        };
        if end < start {
            return Err(ApiError::bad_request(
                "invalid time range: end timestamp must not be before start time",
            ));
        }
        Ok((start, end))
    }
}

impl Params {
    /// The streams of the `query` parameter, a selector or a log query
    /// (its pipeline ignored), for the index endpoints.
    pub(crate) fn query_selector(&self) -> Result<Vec<Matcher>, ApiError> {
        let text = self
            .get("query")
            .ok_or_else(|| ApiError::bad_request("missing parameter \"query\""))?;
        stream_selector(text, true)
    }
}

/// The matchers of a stream selector given as a query parameter. With
/// `pipeline_allowed`, a log query's pipeline is accepted and ignored (the
/// index endpoints answer for its streams).
pub(crate) fn stream_selector(
    text: &str,
    pipeline_allowed: bool,
) -> Result<Vec<Matcher>, ApiError> {
    match skald_logql::parse_expr(text).map_err(|e| ApiError::bad_request(e.to_string()))? {
        skald_logql::Expr::Log(l) if pipeline_allowed || l.pipeline.is_empty() => Ok(l.selector),
        _ => Err(ApiError::bad_request(format!(
            "{text:?} is not a stream selector; expected something like {{app=\"api\"}}"
        ))),
    }
}
