//! Anomalies: windows of a stream (or of one of its patterns) whose line
//! counts leave their robust baseline, patterns never seen before, error
//! bursts and streams that fall silent.
//!
//! Input is counts per window (see [`StreamWindows`]): the pattern index
//! reads them from its files, the evaluation builds them the same way.
//! Windows are indexed relative to the start of the range asked about;
//! negative indices are history, used only for baselines.
//!
//! # Baselines
//!
//! For a window `k` and a series (the stream's lines, its error lines, or
//! one pattern's lines), the baseline is the median and the median
//! absolute deviation (MAD) of:
//! - the same window on previous days (`season_days`), when at least
//!   `min_season` of them fall after the stream's first line: daily
//!   rhythms are then part of the baseline;
//! - otherwise the `recent_windows` windows before `k` (at least
//!   `min_recent`), leaving out windows already found anomalous, so a
//!   long silence or a long burst does not become its own baseline.
//!
//! The score is `(observed - median) / sigma` with `sigma = max(1.4826 *
//! MAD, sqrt(median), 1)`: the MAD scaled to a standard deviation, never
//! below the noise of a count (Poisson: the square root of its mean).
//!
//! # Kinds
//!
//! - `spike` / `drop`: the stream's lines per window, score beyond
//!   `±z` and at least 1.5× / at most 0.6× the median;
//! - `silence`: a drop to zero lines (the score rule makes a stream of
//!   fewer than `z²` lines per window never "silent");
//! - `error_spike`: error lines (as error groups count them:
//!   `crate::errors::classify`) against what the error
//!   share of the baseline windows predicts for this window's lines
//!   (so a spike of all lines is not also an error spike): score beyond
//!   `error_z`, at least 5 lines and twice the prediction plus 3;
//! - `new_pattern`: a pattern whose first line falls in the range, in a
//!   stream that had been logging for `warmup_windows` before, with at
//!   least `new_pattern_min_lines` lines in its first two windows;
//! - `pattern_spike` / `pattern_drop`: one pattern's lines, in windows
//!   where the stream's volume is normal, at the stricter `pattern_z`, a
//!   median of at least 10 and 2× / 0.3× the median.
//!
//! Consecutive anomalous windows of one kind, stream and pattern are one
//! anomaly, reported with its peak window's score, count and baseline.
//!
//! Not here: reading counts (the pattern index), and the HTTP shapes.

use std::collections::BTreeMap;

/// Tuning of the detector. The defaults are those measured in
/// `docs/analysis.md`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// Score beyond which a stream's window is anomalous.
    pub z: f64,
    /// Score beyond which a stream's error lines are anomalous.
    pub error_z: f64,
    /// Score beyond which one pattern's window is anomalous.
    pub pattern_z: f64,
    /// Previous days looked at for the same window.
    pub season_days: usize,
    /// Previous days needed for a seasonal baseline.
    pub min_season: usize,
    /// Windows before the one judged, for the recent baseline.
    pub recent_windows: usize,
    /// Windows needed for a recent baseline.
    pub min_recent: usize,
    /// Windows a stream must have been logging before a pattern of it can
    /// be new.
    pub warmup_windows: i64,
    /// Lines in its first two windows for a new pattern to be reported.
    pub new_pattern_min_lines: u64,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            z: 4.5,
            error_z: 5.0,
            pattern_z: 6.0,
            season_days: 7,
            min_season: 3,
            recent_windows: 12,
            min_recent: 6,
            warmup_windows: 12,
            new_pattern_min_lines: 5,
        }
    }
}

/// One pattern's lines per window.
#[derive(Debug, Clone, Default)]
pub struct PatternWindows {
    pub pattern: String,
    pub level: String,
    /// Window index → lines; windows without lines are absent.
    pub counts: BTreeMap<i64, u64>,
}

/// A stream's patterns with their counts per window.
#[derive(Debug, Clone, Default)]
pub struct StreamWindows {
    /// The stream's labels, as Loki prints them.
    pub labels: String,
    pub patterns: Vec<PatternWindows>,
    /// Error lines (as error groups count them) per window.
    pub errors: BTreeMap<i64, u64>,
}

/// What an anomaly is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Spike,
    Drop,
    Silence,
    ErrorSpike,
    NewPattern,
    PatternSpike,
    PatternDrop,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Spike => "spike",
            Kind::Drop => "drop",
            Kind::Silence => "silence",
            Kind::ErrorSpike => "error_spike",
            Kind::NewPattern => "new_pattern",
            Kind::PatternSpike => "pattern_spike",
            Kind::PatternDrop => "pattern_drop",
        }
    }
}

/// Where a baseline comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselineSource {
    /// The same window on previous days.
    PreviousDays,
    /// The windows just before.
    RecentWindows,
    /// No history: the pattern was never seen (new patterns).
    None,
}

impl BaselineSource {
    pub fn as_str(self) -> &'static str {
        match self {
            BaselineSource::PreviousDays => "previous_days",
            BaselineSource::RecentWindows => "recent_windows",
            BaselineSource::None => "none",
        }
    }
}

/// The expected count of a window.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Baseline {
    pub median: f64,
    pub mad: f64,
    pub source: BaselineSource,
    /// Windows the median was taken over.
    pub windows: usize,
}

impl Baseline {
    fn sigma(&self) -> f64 {
        (1.4826 * self.mad)
            .max(self.median.max(1.0).sqrt())
            .max(1.0)
    }

    fn score(&self, observed: u64) -> f64 {
        (observed as f64 - self.median) / self.sigma()
    }
}

/// One anomaly: a run of windows.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Anomaly {
    pub kind: Kind,
    pub labels: String,
    /// The pattern, for pattern kinds.
    pub pattern: Option<String>,
    /// Unix seconds: start of the first window, end of the last.
    pub start: i64,
    pub end: i64,
    /// The peak window's score (lines, for a new pattern).
    pub score: f64,
    /// Lines in the peak window.
    pub observed: u64,
    pub baseline: Baseline,
    /// One sentence saying why.
    pub evidence: String,
}

/// The detector's answer.
#[derive(Debug, Clone, Default)]
pub struct Detection {
    /// Strongest first.
    pub anomalies: Vec<Anomaly>,
    /// Stream windows that had a baseline (were judged).
    pub windows_judged: u64,
    /// Of those, windows found anomalous at the stream level.
    pub windows_anomalous: u64,
}

/// The range judged: `windows` windows of `window_secs` from `start`.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    /// Unix seconds.
    pub start: i64,
    pub window_secs: i64,
    pub windows: i64,
}

impl Range {
    /// Windows of history needed before the range.
    pub fn history_windows(&self, config: &DetectConfig) -> i64 {
        let seasonal = config.season_days as i64 * self.day_windows();
        seasonal.max(config.recent_windows as i64 + config.warmup_windows)
    }

    fn day_windows(&self) -> i64 {
        (86_400 / self.window_secs.max(1)).max(1)
    }

    /// The window index of a unix second.
    pub fn window_of(&self, secs: i64) -> i64 {
        (secs - self.start).div_euclid(self.window_secs.max(1))
    }

    fn secs(&self, window: i64) -> i64 {
        self.start + window * self.window_secs
    }
}

/// A dense series over `[-history, windows)`.
struct Series {
    values: Vec<u64>,
}

impl Series {
    fn new(len: usize) -> Self {
        Series {
            values: vec![0; len],
        }
    }

    fn add(&mut self, counts: &BTreeMap<i64, u64>, history: i64) {
        for (&k, &c) in counts {
            if let Some(v) = usize::try_from(k + history)
                .ok()
                .and_then(|i| self.values.get_mut(i))
            {
                *v += c;
            }
        }
    }

    fn first_nonzero(&self) -> Option<usize> {
        self.values.iter().position(|&v| v > 0)
    }
}

/// Median and MAD of `values` (not empty).
fn median_mad(values: &mut [f64]) -> (f64, f64) {
    let median = median(values);
    let mut dev: Vec<f64> = values.iter().map(|v| (v - median).abs()).collect();
    (median, self::median(&mut dev))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The windows the baseline of dense window `at` is taken over, using
/// windows from `first` on and not `flagged`.
fn baseline_windows(
    at: usize,
    first: usize,
    flagged: &[bool],
    day: usize,
    config: &DetectConfig,
) -> Option<(Vec<usize>, BaselineSource)> {
    let usable = |j: usize| j >= first && !flagged[j];
    let seasonal: Vec<usize> = (1..=config.season_days)
        .filter_map(|d| at.checked_sub(d * day))
        .filter(|&j| usable(j))
        .collect();
    if seasonal.len() >= config.min_season.max(1) {
        return Some((seasonal, BaselineSource::PreviousDays));
    }
    let recent: Vec<usize> = (first..at)
        .rev()
        .filter(|&j| usable(j))
        .take(config.recent_windows)
        .collect();
    (recent.len() >= config.min_recent.max(1)).then_some((recent, BaselineSource::RecentWindows))
}

/// Median and MAD of `series` over `windows`.
fn baseline_of(series: &Series, windows: &[usize], source: BaselineSource) -> Baseline {
    let mut values: Vec<f64> = windows.iter().map(|&j| series.values[j] as f64).collect();
    let (median, mad) = median_mad(&mut values);
    Baseline {
        median,
        mad,
        source,
        windows: windows.len(),
    }
}

fn baseline(
    series: &Series,
    at: usize,
    first: usize,
    flagged: &[bool],
    day: usize,
    config: &DetectConfig,
) -> Option<Baseline> {
    let (windows, source) = baseline_windows(at, first, flagged, day, config)?;
    Some(baseline_of(series, &windows, source))
}

/// Anomalous windows of one kind, merged into runs.
struct Runs<'a> {
    range: Range,
    labels: &'a str,
    out: &'a mut Vec<Anomaly>,
    open: Option<Anomaly>,
}

impl Runs<'_> {
    fn push(&mut self, window: i64, mut anomaly: Anomaly) {
        anomaly.labels = self.labels.to_owned();
        if let Some(open) = &mut self.open
            && open.kind == anomaly.kind
            && open.pattern == anomaly.pattern
            && open.end == self.range.secs(window)
        {
            open.end = self.range.secs(window + 1);
            if anomaly.score.abs() > open.score.abs() {
                anomaly.start = open.start;
                anomaly.end = open.end;
                *open = anomaly;
            }
            return;
        }
        self.close();
        anomaly.start = self.range.secs(window);
        anomaly.end = self.range.secs(window + 1);
        self.open = Some(anomaly);
    }

    fn close(&mut self) {
        if let Some(a) = self.open.take() {
            self.out.push(a);
        }
    }
}

fn describe(observed: u64, b: &Baseline, window_secs: i64) -> String {
    let over = match b.source {
        BaselineSource::PreviousDays => format!("the same window of {} previous days", b.windows),
        BaselineSource::RecentWindows => format!("the {} windows before", b.windows),
        BaselineSource::None => "no history".to_owned(),
    };
    format!(
        "{observed} lines in {window_secs}s against a median of {:.1} (MAD {:.1}) over {over}",
        b.median, b.mad
    )
}

fn anomaly(
    kind: Kind,
    pattern: Option<&str>,
    observed: u64,
    b: Baseline,
    evidence: String,
) -> Anomaly {
    Anomaly {
        kind,
        labels: String::new(),
        pattern: pattern.map(str::to_owned),
        start: 0,
        end: 0,
        score: b.score(observed),
        observed,
        baseline: b,
        evidence,
    }
}

/// Finds the anomalies of `streams` in `range`.
pub fn detect(streams: &[StreamWindows], range: Range, config: &DetectConfig) -> Detection {
    let mut detection = Detection::default();
    for stream in streams {
        detect_stream(stream, range, config, &mut detection);
    }
    detection.anomalies.sort_by(|a, b| {
        b.score
            .abs()
            .total_cmp(&a.score.abs())
            .then_with(|| a.start.cmp(&b.start))
            .then_with(|| a.labels.cmp(&b.labels))
    });
    detection
}

fn detect_stream(
    stream: &StreamWindows,
    range: Range,
    config: &DetectConfig,
    detection: &mut Detection,
) {
    let history = range.history_windows(config);
    let len = (history + range.windows.max(0)) as usize;
    let day = range.day_windows() as usize;
    let mut total = Series::new(len);
    let mut errors = Series::new(len);
    errors.add(&stream.errors, history);
    for p in &stream.patterns {
        total.add(&p.counts, history);
    }
    let Some(first) = total.first_nonzero() else {
        return;
    };
    let w = range.window_secs;
    let mut out = Vec::new();
    let mut flagged = vec![false; len];
    let mut volume = Runs {
        range,
        labels: &stream.labels,
        out: &mut out,
        open: None,
    };
    let mut error_runs = Vec::new();
    for k in 0..range.windows {
        let at = (history + k) as usize;
        let Some((windows, source)) = baseline_windows(at, first, &flagged, day, config) else {
            continue;
        };
        detection.windows_judged += 1;
        let b = baseline_of(&total, &windows, source);
        let x = total.values[at];
        // Errors: the share of error lines in the baseline windows
        // predicts this window's errors from its lines.
        let (err, all): (u64, u64) = windows
            .iter()
            .map(|&j| (errors.values[j], total.values[j]))
            .fold((0, 0), |(e, t), (a, b)| (e + a, t + b));
        let expected = x as f64 * err as f64 / all.max(1) as f64;
        let e = errors.values[at];
        let eb = Baseline {
            median: expected,
            mad: 0.0,
            source,
            windows: windows.len(),
        };
        if e >= 5 && eb.score(e) >= config.error_z && e as f64 >= 2.0 * expected + 3.0 {
            let evidence = format!(
                "{e} error lines of {x} in {w}s where the error share of {} (of {}) predicts {expected:.1}",
                match source {
                    BaselineSource::PreviousDays => "the same window of previous days",
                    _ => "the windows before",
                },
                windows.len()
            );
            error_runs.push((k, anomaly(Kind::ErrorSpike, None, e, eb, evidence)));
        }
        let z = b.score(x);
        let median = b.median;
        let kind = if z <= -config.z && x == 0 {
            Kind::Silence
        } else if z <= -config.z && (x as f64) <= 0.6 * median {
            Kind::Drop
        } else if z >= config.z && (x as f64) >= 1.5 * median {
            Kind::Spike
        } else {
            volume.close();
            continue;
        };
        flagged[at] = true;
        detection.windows_anomalous += 1;
        volume.push(k, anomaly(kind, None, x, b, describe(x, &b, w)));
    }
    volume.close();
    let mut runs = Runs {
        range,
        labels: &stream.labels,
        out: &mut out,
        open: None,
    };
    let mut last = None;
    for (k, a) in error_runs {
        if last.is_some_and(|l| l + 1 != k) {
            runs.close();
        }
        last = Some(k);
        runs.push(k, a);
    }
    runs.close();
    for p in &stream.patterns {
        pattern_anomalies(p, &flagged, first, range, config, &stream.labels, &mut out);
    }
    detection.anomalies.extend(out);
}

fn pattern_anomalies(
    p: &PatternWindows,
    stream_flagged: &[bool],
    stream_first: usize,
    range: Range,
    config: &DetectConfig,
    labels: &str,
    out: &mut Vec<Anomaly>,
) {
    let history = range.history_windows(config);
    let in_range: u64 = p.counts.range(0..range.windows).map(|(_, c)| c).sum();
    if in_range == 0 {
        return;
    }
    let len = stream_flagged.len();
    let mut series = Series::new(len);
    series.add(&p.counts, history);
    let Some(first) = series.first_nonzero() else {
        return;
    };
    let w = range.window_secs;
    let pattern = Some(p.pattern.as_str());
    if first as i64 >= history && (first - stream_first) as i64 >= config.warmup_windows {
        let lines: u64 = series.values[first..len.min(first + 2)].iter().sum();
        if lines >= config.new_pattern_min_lines {
            let k = first as i64 - history;
            let b = Baseline {
                median: 0.0,
                mad: 0.0,
                source: BaselineSource::None,
                windows: 0,
            };
            let mut a = anomaly(
                Kind::NewPattern,
                pattern,
                series.values[first],
                b,
                format!(
                    "first seen: {lines} lines ({}) in its first {}s, after {}s of the stream's history without it",
                    p.level,
                    2 * w,
                    (first - stream_first) as i64 * w
                ),
            );
            a.score = lines as f64;
            a.labels = labels.to_owned();
            a.start = range.secs(k);
            a.end = range.secs(k + 1);
            out.push(a);
        }
    }
    let day = range.day_windows() as usize;
    let mut flagged = vec![false; len];
    let mut runs = Runs {
        range,
        labels,
        out,
        open: None,
    };
    for k in 0..range.windows {
        let at = (history + k) as usize;
        if stream_flagged[at] || at < first {
            runs.close();
            continue;
        }
        let Some(b) = baseline(&series, at, first, &flagged, day, config) else {
            continue;
        };
        let x = series.values[at];
        let z = b.score(x);
        let kind = if b.median < 10.0 {
            None
        } else if z >= config.pattern_z && x as f64 >= 2.0 * b.median {
            Some(Kind::PatternSpike)
        } else if z <= -config.pattern_z && x as f64 <= 0.3 * b.median {
            Some(Kind::PatternDrop)
        } else {
            None
        };
        match kind {
            Some(kind) => {
                flagged[at] = true;
                runs.push(k, anomaly(kind, pattern, x, b, describe(x, &b, w)));
            }
            None => runs.close(),
        }
    }
    runs.close();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream of one pattern with `per_window(k)` lines in window `k`
    /// (all errors at level error).
    fn stream(level: &str, from: i64, to: i64, per_window: impl Fn(i64) -> u64) -> StreamWindows {
        let counts: BTreeMap<i64, u64> = (from..to)
            .map(|k| (k, per_window(k)))
            .filter(|&(_, c)| c > 0)
            .collect();
        StreamWindows {
            labels: r#"{app="a"}"#.into(),
            errors: if level == "error" {
                counts.clone()
            } else {
                BTreeMap::new()
            },
            patterns: vec![PatternWindows {
                pattern: "GET <_>".into(),
                level: level.into(),
                counts,
            }],
        }
    }

    fn range(windows: i64) -> Range {
        Range {
            start: 1_000_000 * 300,
            window_secs: 300,
            windows,
        }
    }

    /// Deterministic noise around 100 (±10).
    fn noisy(k: i64) -> u64 {
        (100 + (k * 7919).rem_euclid(21) - 10) as u64
    }

    fn kinds(d: &Detection) -> Vec<(Kind, i64)> {
        let r = range(0);
        let mut v: Vec<_> = d
            .anomalies
            .iter()
            .map(|a| (a.kind, r.window_of(a.start)))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn steady_noise_is_not_anomalous() {
        let s = stream("info", -100, 48, noisy);
        let d = detect(&[s], range(48), &DetectConfig::default());
        assert!(d.anomalies.is_empty(), "{:?}", d.anomalies);
        assert_eq!(d.windows_judged, 48);
    }

    #[test]
    fn spikes_drops_and_silences_are_found_and_merged() {
        let s = stream("info", -100, 48, |k| match k {
            10..=11 => 400,
            20 => 30,
            30..=35 => 0,
            _ => noisy(k),
        });
        let d = detect(&[s], range(48), &DetectConfig::default());
        assert_eq!(
            kinds(&d),
            [(Kind::Spike, 10), (Kind::Drop, 20), (Kind::Silence, 30)],
            "{:#?}",
            d.anomalies
        );
        let silence = d
            .anomalies
            .iter()
            .find(|a| a.kind == Kind::Silence)
            .unwrap();
        assert_eq!(
            silence.end - silence.start,
            6 * 300,
            "one run of six windows"
        );
        assert_eq!(silence.baseline.source, BaselineSource::RecentWindows);
        assert!(silence.evidence.contains("0 lines"), "{}", silence.evidence);
    }

    #[test]
    fn previous_days_make_the_baseline_when_there_are_enough() {
        // A daily rhythm: 300 lines in window 12 of each day, 100 otherwise.
        let day = 288;
        let s = stream("info", -4 * day, 24, |k| {
            if k.rem_euclid(day) == 12 {
                300
            } else {
                noisy(k)
            }
        });
        let d = detect(&[s], range(24), &DetectConfig::default());
        assert!(d.anomalies.is_empty(), "{:#?}", d.anomalies);
    }

    #[test]
    fn new_error_patterns_and_error_spikes() {
        let mut s = stream("info", -100, 48, noisy);
        s.patterns.push(PatternWindows {
            pattern: "ERROR disk <_> failed".into(),
            level: "error".into(),
            counts: [(40, 30), (41, 12)].into_iter().collect(),
        });
        s.errors = [(40, 30), (41, 12)].into_iter().collect();
        let d = detect(&[s], range(48), &DetectConfig::default());
        assert_eq!(
            kinds(&d),
            [(Kind::ErrorSpike, 40), (Kind::NewPattern, 40)],
            "{:#?}",
            d.anomalies
        );
        let new = d
            .anomalies
            .iter()
            .find(|a| a.kind == Kind::NewPattern)
            .unwrap();
        assert_eq!(new.pattern.as_deref(), Some("ERROR disk <_> failed"));
        assert_eq!(new.score, 42.0);
    }

    #[test]
    fn a_new_stream_has_no_new_patterns_and_no_baseline() {
        let s = stream("error", 40, 48, |_| 50);
        let d = detect(&[s], range(48), &DetectConfig::default());
        assert!(d.anomalies.is_empty(), "{:#?}", d.anomalies);
    }

    #[test]
    fn one_pattern_shifting_inside_a_steady_stream() {
        let mut s = stream("info", -100, 48, noisy);
        s.patterns.push(PatternWindows {
            pattern: "cache miss <_>".into(),
            level: "info".into(),
            counts: (-100..48)
                .map(|k| (k, if k == 25 { 200 } else { 40 }))
                .collect(),
        });
        s.patterns[0].counts = (-100..48)
            .map(|k| (k, noisy(k) + 200 - if k == 25 { 160 } else { 0 }))
            .collect();
        let d = detect(&[s], range(48), &DetectConfig::default());
        let got: Vec<_> = kinds(&d);
        assert!(
            got.contains(&(Kind::PatternSpike, 25)),
            "{:#?}",
            d.anomalies
        );
        assert!(!got.iter().any(|(k, _)| *k == Kind::Spike), "{got:?}");
    }
}
