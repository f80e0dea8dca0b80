//! Label names, the values of one name, series (the label sets of the
//! streams matching selectors), and volumes, over a time range.
//!
//! Each reads one tenant, or several (`X-Scope-OrgID: a|b`, read granted
//! on each) as Loki's multi-tenant querier does: names gain
//! `__tenant_id__`, whose values are the tenants; each series gains its
//! tenant's `__tenant_id__`; volumes of the same labels add up; and a
//! `__tenant_id__` matcher picks tenants rather than streams.
//!
//! Volumes are uncompressed bytes of lines and metadata, from the index
//! and chunk metadata without reading lines. A segment chunk counts whole
//! when it overlaps the range, and in a ranged volume it is attributed to
//! the step of its first entry.

use super::query::{TENANT_LABEL, pick_tenants, with_tenant_label};
use super::{Context, Role, ServiceError, blocking};
use crate::AppState;
use skald_model::{LabelSet, Matcher, TenantId, Timestamp};
use skald_store::Store;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Label names of the tenants' streams, or of those `selector` matches.
pub async fn names(
    app: &Arc<AppState>,
    ctx: &Context,
    selector: Option<Vec<Matcher>>,
    start: Timestamp,
    end: Timestamp,
) -> Result<Vec<String>, ServiceError> {
    let all = ctx.tenants_for(Role::Read)?;
    let multi = all.len() > 1;
    let (tenants, selector) = pick_tenants(&all, &selector.unwrap_or_default());
    let store = app.store.clone();
    blocking(move || {
        let mut names = Vec::new();
        for tenant in &tenants {
            if selector.is_empty() {
                names.extend(store.label_names(tenant, start, end));
                continue;
            }
            names.extend(
                store
                    .series(tenant, std::slice::from_ref(&selector), start, end)
                    .iter()
                    .flat_map(|ls| ls.labels().iter().map(|l| l.name.clone())),
            );
        }
        if multi && !tenants.is_empty() {
            names.push(TENANT_LABEL.to_string());
        }
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
    let all = ctx.tenants_for(Role::Read)?;
    if name.is_empty() {
        return Err(ServiceError::invalid("name", "required"));
    }
    let multi = all.len() > 1;
    let (tenants, matchers) = pick_tenants(&all, &matchers);
    if multi && name == TENANT_LABEL {
        return Ok(tenants.iter().map(|t| t.to_string()).collect());
    }
    let store = app.store.clone();
    blocking(move || {
        let mut values = Vec::new();
        for tenant in &tenants {
            values.extend(store.label_values(tenant, &name, &matchers, start, end));
        }
        values.sort();
        values.dedup();
        Ok(values)
    })
    .await
}

/// The label sets of streams matching any of `selectors`.
pub async fn series(
    app: &Arc<AppState>,
    ctx: &Context,
    selectors: Vec<Vec<Matcher>>,
    start: Timestamp,
    end: Timestamp,
) -> Result<Vec<LabelSet>, ServiceError> {
    let all = ctx.tenants_for(Role::Read)?;
    if selectors.is_empty() {
        return Err(ServiceError::bad_request(
            "at least one match[] parameter with a stream selector is required",
        ));
    }
    if all.len() < 2 {
        let store = app.store.clone();
        return blocking(move || Ok(store.series(&all[0], &selectors, start, end))).await;
    }
    let store = app.store.clone();
    blocking(move || {
        let mut out = Vec::new();
        for tenant in &all {
            // Each selector names the tenants it reads.
            let own: Vec<Vec<Matcher>> = selectors
                .iter()
                .filter_map(|s| {
                    let (picked, rest) = pick_tenants(&all, s);
                    picked.contains(tenant).then_some(rest)
                })
                .collect();
            if own.is_empty() {
                continue;
            }
            out.extend(
                store
                    .series(tenant, &own, start, end)
                    .iter()
                    .map(|ls| with_tenant_label(ls, tenant)),
            );
        }
        out.sort();
        Ok(out)
    })
    .await
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

/// Bytes per label group and step of one tenant's streams.
type Volumes = BTreeMap<Vec<(String, String)>, BTreeMap<i64, u64>>;

fn volumes_of(store: &Store, tenant: &TenantId, req: &VolumeRequest, groups: &mut Volumes) {
    let (start, end) = (req.start, req.end);
    let snap = store.snapshot(tenant, &req.matchers, start, end);
    let wanted = |name: &str| req.targets.is_empty() || req.targets.iter().any(|t| t == name);
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
}

/// Volumes of the tenants' streams, largest first; over several tenants,
/// the groups of the same labels add up (as Loki merges them).
pub async fn volume(
    app: &Arc<AppState>,
    ctx: &Context,
    mut req: VolumeRequest,
) -> Result<Vec<VolumeGroup>, ServiceError> {
    let (tenants, matchers) = pick_tenants(&ctx.tenants_for(Role::Read)?, &req.matchers);
    req.matchers = matchers;
    let store = app.store.clone();
    blocking(move || {
        let mut groups = Volumes::new();
        for tenant in &tenants {
            volumes_of(&store, tenant, &req, &mut groups);
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
