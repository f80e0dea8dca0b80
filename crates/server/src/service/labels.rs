//! Label names, the values of one name, series (the label sets of the
//! streams matching selectors), and volumes, over a time range.
//!
//! Volumes are uncompressed bytes of lines and metadata, from the index
//! and chunk metadata without reading lines. A segment chunk counts whole
//! when it overlaps the range, and in a ranged volume it is attributed to
//! the step of its first entry.

use super::{Context, Role, ServiceError, blocking};
use crate::AppState;
use skald_model::{LabelSet, Matcher, Timestamp};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Label names of the tenant's streams, or of those `selector` matches.
pub async fn names(
    app: &Arc<AppState>,
    ctx: &Context,
    selector: Option<Vec<Matcher>>,
    start: Timestamp,
    end: Timestamp,
) -> Result<Vec<String>, ServiceError> {
    let tenant = ctx.tenant_for(Role::Read)?;
    let store = app.store.clone();
    blocking(move || {
        let Some(m) = selector.filter(|m| !m.is_empty()) else {
            return Ok(store.label_names(&tenant, start, end));
        };
        let mut names: Vec<String> = store
            .series(&tenant, &[m], start, end)
            .iter()
            .flat_map(|ls| ls.labels().iter().map(|l| l.name.clone()))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    })
    .await
}

/// Values of label `name`, among the streams `matchers` select (all when
/// empty).
pub async fn values(
    app: &Arc<AppState>,
    ctx: &Context,
    name: String,
    matchers: Vec<Matcher>,
    start: Timestamp,
    end: Timestamp,
) -> Result<Vec<String>, ServiceError> {
    let tenant = ctx.tenant_for(Role::Read)?;
    if name.is_empty() {
        return Err(ServiceError::invalid("name", "required"));
    }
    let store = app.store.clone();
    blocking(move || Ok(store.label_values(&tenant, &name, &matchers, start, end))).await
}

/// The label sets of streams matching any of `selectors`.
pub async fn series(
    app: &Arc<AppState>,
    ctx: &Context,
    selectors: Vec<Vec<Matcher>>,
    start: Timestamp,
    end: Timestamp,
) -> Result<Vec<LabelSet>, ServiceError> {
    let tenant = ctx.tenant_for(Role::Read)?;
    if selectors.is_empty() {
        return Err(ServiceError::bad_request(
            "at least one match[] parameter with a stream selector is required",
        ));
    }
    let store = app.store.clone();
    blocking(move || Ok(store.series(&tenant, &selectors, start, end))).await
}

/// A volume query (Loki's `index/volume` and `index/volume_range`).
pub struct VolumeRequest {
    pub matchers: Vec<Matcher>,
    pub start: Timestamp,
    pub end: Timestamp,
    /// `Some`: a ranged volume in steps of this many ns.
    pub step: Option<i64>,
    /// Group by each label name rather than by series.
    pub by_labels: bool,
    /// The labels grouped by; empty: all.
    pub targets: Vec<String>,
    /// Most groups answered, largest first.
    pub limit: usize,
}

/// One group of a volume: its labels (values empty when grouped by label
/// name), bytes per step start (or at `end`), and the total.
pub struct VolumeGroup {
    pub labels: Vec<(String, String)>,
    pub points: BTreeMap<i64, u64>,
    pub total: u64,
}

pub async fn volume(
    app: &Arc<AppState>,
    ctx: &Context,
    req: VolumeRequest,
) -> Result<Vec<VolumeGroup>, ServiceError> {
    let tenant = ctx.tenant_for(Role::Read)?;
    let store = app.store.clone();
    blocking(move || {
        let (start, end) = (req.start, req.end);
        let snap = store.snapshot(&tenant, &req.matchers, start, end);
        let wanted = |name: &str| req.targets.is_empty() || req.targets.iter().any(|t| t == name);
        let mut groups: BTreeMap<Vec<(String, String)>, BTreeMap<i64, u64>> = BTreeMap::new();
        for s in &snap.streams {
            let keys: Vec<Vec<(String, String)>> = if req.by_labels {
                s.labels
                    .labels()
                    .iter()
                    .filter(|l| wanted(&l.name))
                    .map(|l| vec![(l.name.clone(), String::new())])
                    .collect()
            } else {
                vec![
                    s.labels
                        .labels()
                        .iter()
                        .filter(|l| wanted(&l.name))
                        .map(|l| (l.name.clone(), l.value.clone()))
                        .collect(),
                ]
            };
            for src in &s.sources {
                let (_, bytes) = src.size();
                let at = match req.step {
                    Some(step) => {
                        let t = src.min_ts().0.clamp(start.0, end.0);
                        start.0 + (t - start.0) / step * step
                    }
                    None => end.0,
                };
                for k in &keys {
                    *groups.entry(k.clone()).or_default().entry(at).or_default() += bytes;
                }
            }
        }
        let mut ranked: Vec<VolumeGroup> = groups
            .into_iter()
            .map(|(labels, points)| VolumeGroup {
                total: points.values().sum(),
                labels,
                points,
            })
            .collect();
        ranked.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.labels.cmp(&b.labels)));
        ranked.truncate(req.limit);
        Ok(ranked)
    })
    .await
}
