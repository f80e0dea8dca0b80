//! What the rule and alert read APIs show, in the shapes of Prometheus'
//! `/api/v1/rules` and `/api/v1/alerts` (which Grafana reads); the server
//! wraps them in `{"status": "success", "data": ...}`.

use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize)]
pub struct GroupStatus {
    pub name: String,
    /// The namespace (Prometheus calls it the file).
    pub file: String,
    pub rules: Vec<RuleStatus>,
    /// Seconds.
    pub interval: f64,
    pub limit: u64,
    #[serde(rename = "evaluationTime")]
    pub evaluation_time: f64,
    #[serde(rename = "lastEvaluation")]
    pub last_evaluation: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum RuleStatus {
    Alerting {
        /// The most severe state of its alerts.
        state: String,
        name: String,
        query: String,
        /// `for`, seconds.
        duration: f64,
        #[serde(rename = "keepFiringFor")]
        keep_firing_for: f64,
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
        alerts: Vec<AlertStatus>,
        health: String,
        #[serde(rename = "lastError", skip_serializing_if = "String::is_empty")]
        last_error: String,
        #[serde(rename = "evaluationTime")]
        evaluation_time: f64,
        #[serde(rename = "lastEvaluation")]
        last_evaluation: String,
    },
    Recording {
        name: String,
        query: String,
        labels: BTreeMap<String, String>,
        health: String,
        #[serde(rename = "lastError", skip_serializing_if = "String::is_empty")]
        last_error: String,
        #[serde(rename = "evaluationTime")]
        evaluation_time: f64,
        #[serde(rename = "lastEvaluation")]
        last_evaluation: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertStatus {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub state: String,
    #[serde(rename = "activeAt")]
    pub active_at: String,
    #[serde(rename = "keepFiringSince", skip_serializing_if = "Option::is_none")]
    pub keep_firing_since: Option<String>,
    /// Go's `%e` form, as Prometheus prints it (`2.5e+00`).
    pub value: String,
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`.
pub fn go_float_e(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let s = format!("{v:e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

#[cfg(test)]
mod tests {
    #[test]
    fn floats_print_as_go_does() {
        assert_eq!(super::go_float_e(2.5), "2.5e+00");
        assert_eq!(super::go_float_e(1234.0), "1.234e+03");
        assert_eq!(super::go_float_e(0.001), "1e-03");
        assert_eq!(super::go_float_e(0.0), "0e+00");
    }
}
