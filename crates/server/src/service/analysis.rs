//! Log analysis: patterns, error groups, anomalies and the analysis
//! report, for the HTTP endpoints (`/loki/api/v1/patterns`,
//! `/skald/api/v1/{errors,anomalies,analyze}`) and the gRPC operations
//! (`ListPatterns`, `ListErrorGroups`, `ListAnomalies`, `AnalyzeLogs`).
//!
//! Patterns, error groups and anomalies are read from the pattern index
//! (mined at ingest, `skald_analysis::index`); they answer
//! UNAVAILABLE when mining is off. The report reads the lines of a log
//! query (at most `report_max_lines`, newest first) and mines them afresh,
//! then adds the anomalies of the query's streams from the index when it
//! is on. Every operation reads one tenant, with role `read`, over a range
//! no longer than the tenant's `max_query_length`.
//!
//! Not here: the analysis itself (`skald-analysis`), wire shapes.

use super::query::{LogRequest, ParsedLogQuery, admitted_logs, check_length};
use super::{Context, Role, ServiceError, blocking};
use crate::AppState;
use skald_analysis::anomaly::{self, Detection, Range};
use skald_analysis::groups::{self, ErrorGroup, ErrorQuery, GroupLookup};
use skald_analysis::index::{PatternIndex, PatternQuery, PatternSeries};
use skald_analysis::report::{Builder, Line, Report, ReportConfig};
use skald_model::{Matcher, TenantId, Timestamp};
use skald_query::Direction;
use std::sync::Arc;

const SECOND_NS: i64 = 1_000_000_000;
/// Window widths anomalies are judged in: each divides a day, so "the
/// same window of previous days" is well defined.
const WINDOWS_SECS: [i64; 10] = [60, 120, 300, 600, 900, 1800, 3600, 7200, 21_600, 86_400];
/// Windows a range is cut into when no width is asked for.
const DEFAULT_WINDOWS: i64 = 288;

/// The streams and range an index read is about.
pub struct AnalysisRange {
    pub selector: Vec<Matcher>,
    pub start: Timestamp,
    pub end: Timestamp,
    /// Nanoseconds: sample width (patterns, error groups), window width
    /// (anomalies). `None`: chosen from the range.
    pub step: Option<i64>,
}

impl AnalysisRange {
    /// `[start, end]` in whole seconds, the end included.
    fn secs(&self) -> (i64, i64) {
        (
            self.start.0.div_euclid(SECOND_NS),
            self.end.0.div_euclid(SECOND_NS) + 1,
        )
    }

    fn step_secs(&self) -> Result<i64, ServiceError> {
        match self.step {
            Some(s) if s <= 0 => Err(ServiceError::invalid("step", "must be positive")),
            Some(s) => {
                super::query::check_points(self.start, self.end, s)?;
                Ok((s / SECOND_NS).max(1))
            }
            None => {
                let (start, end) = self.secs();
                Ok(((end - start) / 100).max(10))
            }
        }
    }
}

fn index(app: &AppState) -> Result<Arc<PatternIndex>, ServiceError> {
    app.analysis
        .clone()
        .ok_or_else(|| ServiceError::unavailable("pattern mining is off (http.analysis.enabled)"))
}

/// The tenant of a read over `r`, after the checks every read shares.
fn reader(app: &AppState, ctx: &Context, r: &AnalysisRange) -> Result<TenantId, ServiceError> {
    let tenant = ctx.tenant_for(Role::Read)?;
    check_length(app, &tenant, r.start, r.end)?;
    Ok(tenant)
}

fn io(what: &str) -> impl Fn(std::io::Error) -> ServiceError + '_ {
    move |e| ServiceError::internal(format!("reading {what}: {e}"))
}

/// Patterns of the selected streams with their counts per step, most
/// frequent first.
pub async fn patterns(
    app: &Arc<AppState>,
    ctx: &Context,
    r: AnalysisRange,
) -> Result<Vec<PatternSeries>, ServiceError> {
    let tenant = reader(app, ctx, &r)?;
    let step = r.step_secs()?;
    let index = index(app)?;
    blocking(move || {
        let (start, end) = r.secs();
        index
            .query(&PatternQuery {
                tenant: &tenant,
                matchers: &r.selector,
                start,
                end,
                step,
            })
            .map_err(io("patterns"))
    })
    .await
}

/// Error groups of the selected streams, most lines first; `examples`
/// lines each.
pub async fn error_groups(
    app: &Arc<AppState>,
    ctx: &Context,
    r: AnalysisRange,
    examples: usize,
) -> Result<Vec<ErrorGroup>, ServiceError> {
    let tenant = reader(app, ctx, &r)?;
    let step = r.step_secs()?;
    let index = index(app)?;
    let lookback = app.config.analysis.error_lookback_days as i64 * 86_400;
    blocking(move || read_groups(&index, &tenant, &r, step, lookback, examples.clamp(1, 20))).await
}

fn read_groups(
    index: &PatternIndex,
    tenant: &TenantId,
    r: &AnalysisRange,
    step: i64,
    lookback_secs: i64,
    examples: usize,
) -> Result<Vec<ErrorGroup>, ServiceError> {
    let (start, end) = r.secs();
    groups::query(
        index,
        &ErrorQuery {
            tenant,
            matchers: &r.selector,
            start,
            end,
            step,
            lookback_secs,
            examples,
            streams: 10,
        },
    )
    .map_err(io("error groups"))
}

/// Anomalies of the selected streams, with the window width used.
pub struct Anomalies {
    pub window_secs: i64,
    pub detection: Detection,
}

/// Anomalies of the selected streams in the range's whole windows.
pub async fn anomalies(
    app: &Arc<AppState>,
    ctx: &Context,
    r: AnalysisRange,
) -> Result<Anomalies, ServiceError> {
    let tenant = reader(app, ctx, &r)?;
    let index = index(app)?;
    let config = app.config.analysis.anomalies.clone();
    let range = anomaly_range(&r)?;
    blocking(move || detect(&index, &tenant, &r.selector, range, &config)).await
}

fn detect(
    index: &PatternIndex,
    tenant: &TenantId,
    selector: &[Matcher],
    range: Range,
    config: &anomaly::DetectConfig,
) -> Result<Anomalies, ServiceError> {
    let counts = index
        .window_counts(tenant, selector, range, config)
        .map_err(io("pattern counts"))?;
    Ok(Anomalies {
        window_secs: range.window_secs,
        detection: anomaly::detect(&counts, range, config),
    })
}

/// The windows of a range: the asked width rounded up to one that
/// divides a day (or a 288th of the range), from the start of the
/// range's first minute.
fn anomaly_range(r: &AnalysisRange) -> Result<Range, ServiceError> {
    let span = (r.end.0 - r.start.0) / SECOND_NS;
    let asked = match r.step {
        Some(s) if s <= 0 => return Err(ServiceError::invalid("step", "must be positive")),
        Some(s) => s / SECOND_NS,
        None => span / DEFAULT_WINDOWS,
    };
    let window_secs = WINDOWS_SECS
        .iter()
        .copied()
        .find(|&w| w >= asked)
        .unwrap_or(86_400);
    Ok(Range {
        // Windows hold whole minutes, so a day's counts read the same
        // before and after its files are rolled up to minutes.
        start: r.start.0.div_euclid(SECOND_NS).div_euclid(60) * 60,
        window_secs,
        windows: span / window_secs,
    })
}

/// What a report is asked about.
pub struct AnalyzeRequest {
    pub query: ParsedLogQuery,
    pub start: Timestamp,
    pub end: Timestamp,
    /// Lines read at most (`None`: the configured `report_max_lines`).
    pub max_lines: Option<usize>,
    pub top_patterns: Option<usize>,
}

/// The report, and whether it saw every line of the range.
pub struct Analysis {
    pub report: Report,
    /// More lines matched than were read (the newest were read).
    pub truncated: bool,
    pub window_secs: i64,
}

/// The analysis report of a log query over a range.
pub async fn analyze(
    app: &Arc<AppState>,
    ctx: &Context,
    req: AnalyzeRequest,
) -> Result<Analysis, ServiceError> {
    let tenant = ctx.tenant_for(Role::Read)?;
    check_length(app, &tenant, req.start, req.end)?;
    let most = app.config.analysis.report_max_lines;
    let max_lines = req.max_lines.unwrap_or(most);
    if max_lines == 0 || max_lines > most {
        return Err(ServiceError::limit(format!(
            "max_lines must be between 1 and the server's report_max_lines ({most}), got {max_lines}"
        )));
    }
    let config = ReportConfig {
        top_patterns: req.top_patterns.unwrap_or(10).clamp(1, 100),
        ..ReportConfig::default()
    };
    let range = AnalysisRange {
        selector: req.query.selector.clone(),
        start: req.start,
        end: req.end,
        step: None,
    };
    let log = LogRequest {
        query: req.query,
        start: req.start,
        end: req.end,
        limit: Some(max_lines),
        direction: Direction::Backward,
        interval: 0,
    };
    let result = admitted_logs(app, tenant.clone(), log, max_lines).await?;
    let index = app.analysis.clone();
    let detect_config = app.config.analysis.anomalies.clone();
    let lookback = app.config.analysis.error_lookback_days as i64 * 86_400;
    let windows = anomaly_range(&range)?;
    blocking(move || {
        let mut builder = Builder::new(config);
        if let Some(index) = &index {
            // Error groups named as the index names them: the same
            // fingerprints, and `new` from the index's history.
            let (start, end) = range.secs();
            let known = GroupLookup::new(
                index,
                &ErrorQuery {
                    tenant: &tenant,
                    matchers: &range.selector,
                    start,
                    end,
                    step: range.step_secs()?,
                    lookback_secs: lookback,
                    examples: 1,
                    streams: 10,
                },
            )
            .map_err(io("error groups"))?;
            builder = builder.with_groups(known);
        }
        let mut read = 0usize;
        for stream in &result.streams {
            let labels = stream.labels.to_string();
            for e in &stream.entries {
                let metadata: Vec<(&str, &str)> = e
                    .metadata
                    .iter()
                    .map(|l| (l.name.as_str(), l.value.as_str()))
                    .collect();
                builder.add(&Line {
                    labels: &labels,
                    ts: e.ts.0,
                    line: &e.line,
                    metadata: &metadata,
                });
                read += 1;
            }
        }
        let mut report = builder.finish();
        if let Some(index) = index {
            let found = detect(&index, &tenant, &range.selector, windows, &detect_config)?;
            let d = found.detection;
            report.anomaly_rate = d.windows_anomalous as f64 / d.windows_judged.max(1) as f64;
            report.anomalies = d.anomalies;
        }
        Ok(Analysis {
            report,
            truncated: read >= max_lines,
            window_secs: windows.window_secs,
        })
    })
    .await
}
