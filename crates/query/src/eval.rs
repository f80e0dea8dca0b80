//! Metric query evaluation: every step of a query at once, over values
//! laid out per series and step.
//!
//! A metric expression evaluates to a scalar (one number per step) or an
//! instant vector per step, held as series with an optional value at each
//! step ([`SeriesVals`]). Range aggregations come from the caller (over the
//! store in [`crate::run_metric_query`], over memory in tests); everything
//! above them — vector aggregations, binary operators with vector
//! matching, `label_replace`, `vector()`, literals — is computed here with
//! Prometheus' semantics, which LogQL follows.

use crate::QueryError;
use foldhash::HashMap;
use skald_logql::{
    BinaryModifier, BinaryOp, Expr, Grouping, LabelReplace, RangeAggregation, RangeOp,
    VectorAggregation, VectorMatching, VectorOp,
};
use skald_model::Label;

/// Evaluation times: `start`, `start + step`, ... up to and including
/// `end`; `n` of them.
#[derive(Debug, Clone, Copy)]
pub struct Grid {
    pub start: i64,
    pub step: i64,
    pub n: usize,
}

impl Grid {
    pub fn new(start: i64, end: i64, step: i64) -> Grid {
        let step = step.max(1);
        let n = if end < start {
            0
        } else {
            ((end - start) / step) as usize + 1
        };
        Grid { start, step, n }
    }

    pub fn times(&self) -> impl Iterator<Item = i64> + '_ {
        (0..self.n).map(|k| self.start + k as i64 * self.step)
    }
}

/// One series: sorted labels and a value (or none) at each step.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesVals {
    pub labels: Vec<Label>,
    pub values: Vec<Option<f64>>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Scalar(Vec<f64>),
    Vector(Vec<SeriesVals>),
}

/// Evaluates range aggregations: the aggregation, a grouping pushed down
/// from an enclosing `sum`, and the most series it may produce.
pub(crate) type RangeFn<'a> = dyn FnMut(&RangeAggregation, Option<&Grouping>, usize) -> Result<Vec<SeriesVals>, QueryError>
    + 'a;

pub(crate) struct Evaluator<'a, 'b> {
    pub grid: Grid,
    pub range: &'a mut RangeFn<'b>,
    /// Series a range aggregation inside the query may produce.
    pub max_inner_series: usize,
}

fn key_of<'l>(labels: impl Iterator<Item = &'l Label>) -> String {
    let mut key = String::new();
    for l in labels {
        key.push_str(&l.name);
        key.push('\u{ff}');
        key.push_str(&l.value);
        key.push('\u{ff}');
    }
    key
}

/// Whether `sum` over this range aggregation may be computed by grouping
/// lines before the range function: true where the function sums.
fn sum_pushes_down(agg: &RangeAggregation) -> bool {
    agg.grouping.is_none()
        && matches!(
            agg.op,
            RangeOp::Rate
                | RangeOp::CountOverTime
                | RangeOp::BytesRate
                | RangeOp::BytesOverTime
                | RangeOp::SumOverTime
        )
}

/// The series limit hit below an aggregation or a binary operation is the
/// bound on what the query holds while it computes (`max_inner_series`),
/// not the result's `max_query_series`: the message says which, so it
/// never names a number the configuration does not show for that limit.
fn inner_limit(e: QueryError, limit: usize) -> QueryError {
    match e {
        QueryError::Limit(m)
            if m.starts_with(&format!(
                "maximum of series ({limit}) reached for a single query"
            )) =>
        {
            QueryError::Limit(format!(
                "maximum of series ({limit}) inside the query reached: an aggregation or binary operation may work on at most {limit} series before it reduces them (its result is limited by max_query_series); narrow the stream selector or filter, or group the inner aggregation by fewer labels"
            ))
        }
        other => other,
    }
}

impl Evaluator<'_, '_> {
    /// Evaluates an operand of an aggregation or binary operation.
    fn eval_inner(&mut self, expr: &Expr) -> Result<Value, QueryError> {
        let limit = self.max_inner_series;
        self.eval(expr, limit).map_err(|e| inner_limit(e, limit))
    }

    pub(crate) fn eval(&mut self, expr: &Expr, max_series: usize) -> Result<Value, QueryError> {
        let n = self.grid.n;
        match expr {
            Expr::Literal(v) => Ok(Value::Scalar(vec![*v; n])),
            Expr::Vector(v) => Ok(Value::Vector(vec![SeriesVals {
                labels: Vec::new(),
                values: vec![Some(*v); n],
            }])),
            Expr::RangeAggregation(agg) if agg.op == RangeOp::AbsentOverTime => {
                let by_nothing = Grouping {
                    without: false,
                    labels: Vec::new(),
                };
                let inner = (self.range)(agg, Some(&by_nothing), max_series)?;
                let mut values = vec![Some(1.0); n];
                for s in &inner {
                    for (k, v) in s.values.iter().enumerate() {
                        if v.is_some() {
                            values[k] = None;
                        }
                    }
                }
                let mut labels: Vec<Label> = Vec::new();
                for m in &agg.range.log.selector {
                    let equal = m.op == skald_model::MatchOp::Eq;
                    if equal && !labels.iter().any(|l| l.name == m.name) {
                        labels.push(Label::new(m.name.clone(), m.value.clone()));
                    }
                }
                labels.sort();
                Ok(Value::Vector(vec![SeriesVals { labels, values }]))
            }
            Expr::RangeAggregation(agg) => Ok(Value::Vector((self.range)(agg, None, max_series)?)),
            Expr::VectorAggregation(va) => self.vector_aggregation(va),
            Expr::Binary(b) => {
                let lhs = self.eval_inner(&b.lhs)?;
                let rhs = self.eval_inner(&b.rhs)?;
                binary(b.op, &b.modifier, lhs, rhs, n)
            }
            Expr::LabelReplace(lr) => {
                let inner = self.eval(&lr.inner, max_series)?;
                match inner {
                    Value::Vector(v) => label_replace(lr, v).map(Value::Vector),
                    Value::Scalar(_) => Err(QueryError::Eval(
                        "label_replace needs a vector, not a scalar".into(),
                    )),
                }
            }
            Expr::Log(_) => Err(QueryError::Eval(
                "a log query cannot be part of a metric query".into(),
            )),
            #[allow(unreachable_patterns)]
            other => Err(QueryError::Unsupported(format!(
                "expression `{other}` is not supported"
            ))),
        }
    }

    fn vector_aggregation(&mut self, va: &VectorAggregation) -> Result<Value, QueryError> {
        let inner = match (&*va.inner, va.op) {
            (Expr::RangeAggregation(agg), VectorOp::Sum) if sum_pushes_down(agg) => {
                let group = va.grouping.clone().unwrap_or(Grouping {
                    without: false,
                    labels: Vec::new(),
                });
                let inner = (self.range)(agg, Some(&group), self.max_inner_series)
                    .map_err(|e| inner_limit(e, self.max_inner_series))?;
                // The range aggregation already summed by these labels:
                // unless a series kept an error label, nothing is left to add.
                let kept = |l: &Label| group.labels.contains(&l.name) != group.without;
                if inner.iter().all(|s| s.labels.iter().all(kept)) {
                    return Ok(Value::Vector(inner));
                }
                inner
            }
            _ => match self.eval_inner(&va.inner)? {
                Value::Vector(v) => v,
                Value::Scalar(_) => {
                    return Err(QueryError::Eval(format!(
                        "{} needs a vector, not a scalar",
                        va.op.as_str()
                    )));
                }
            },
        };
        Ok(Value::Vector(aggregate(va, inner, self.grid.n)))
    }
}

/// The labels a series keeps under `by`/`without`.
fn grouped(labels: &[Label], grouping: Option<&Grouping>) -> Vec<Label> {
    match grouping {
        None => Vec::new(),
        Some(g) => labels
            .iter()
            .filter(|l| g.labels.contains(&l.name) != g.without)
            .cloned()
            .collect(),
    }
}

fn aggregate(va: &VectorAggregation, inner: Vec<SeriesVals>, n: usize) -> Vec<SeriesVals> {
    match va.op {
        VectorOp::Sort | VectorOp::SortDesc => return inner,
        VectorOp::Topk | VectorOp::Bottomk => {
            return top_k(va, inner, n);
        }
        _ => {}
    }
    let mut index: HashMap<String, usize> = HashMap::default();
    let mut groups: Vec<(Vec<Label>, Vec<usize>)> = Vec::new();
    for (i, s) in inner.iter().enumerate() {
        let labels = grouped(&s.labels, va.grouping.as_ref());
        let key = key_of(labels.iter());
        let g = *index.entry(key).or_insert_with(|| {
            groups.push((labels, Vec::new()));
            groups.len() - 1
        });
        groups[g].1.push(i);
    }
    let mut out = Vec::with_capacity(groups.len());
    let mut vals: Vec<f64> = Vec::new();
    for (labels, members) in groups {
        let mut values = vec![None; n];
        for (k, slot) in values.iter_mut().enumerate() {
            vals.clear();
            vals.extend(members.iter().filter_map(|&i| inner[i].values[k]));
            if vals.is_empty() {
                continue;
            }
            let count = vals.len() as f64;
            let mean = vals.iter().sum::<f64>() / count;
            let variance = || vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / count;
            *slot = Some(match va.op {
                VectorOp::Sum => vals.iter().sum(),
                VectorOp::Avg => mean,
                VectorOp::Count => count,
                VectorOp::Min => vals
                    .iter()
                    .copied()
                    .fold(f64::NAN, |m, v| if v < m || m.is_nan() { v } else { m }),
                VectorOp::Max => vals
                    .iter()
                    .copied()
                    .fold(f64::NAN, |m, v| if v > m || m.is_nan() { v } else { m }),
                VectorOp::Stdvar => variance(),
                VectorOp::Stddev => variance().sqrt(),
                _ => continue,
            });
        }
        out.push(SeriesVals { labels, values });
    }
    out
}

/// `topk`/`bottomk`: at each step, the k largest (smallest) of each group,
/// keeping their labels.
fn top_k(va: &VectorAggregation, inner: Vec<SeriesVals>, n: usize) -> Vec<SeriesVals> {
    let k = va.param.unwrap_or(1.0).max(0.0) as usize;
    let top = va.op == VectorOp::Topk;
    let mut groups: Vec<Vec<usize>> = Vec::new();
    if va.grouping.is_none() {
        // One group: no keys to build (a topk over a series per path).
        groups.push((0..inner.len()).collect());
    } else {
        let mut index: HashMap<String, usize> = HashMap::default();
        for (i, s) in inner.iter().enumerate() {
            let key = key_of(grouped(&s.labels, va.grouping.as_ref()).iter());
            let g = *index.entry(key).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[g].push(i);
        }
    }
    // Largest first for topk, smallest for bottomk; ties go to the
    // earlier series.
    let order = |a: &(f64, usize), b: &(f64, usize)| {
        let by_value = a.0.total_cmp(&b.0);
        let by_value = if top { by_value.reverse() } else { by_value };
        by_value.then(a.1.cmp(&b.1))
    };
    // keep[i * n + step]: series i is among the chosen at that step.
    let mut keep = vec![false; n * inner.len()];
    // Each step's candidates, pruned to the best k as they pile up:
    // series are visited one after the other, values in memory order.
    let mut best: Vec<Vec<(f64, usize)>> = vec![Vec::new(); n];
    let prune_at = (2 * k).max(64);
    for members in &groups {
        best.iter_mut().for_each(Vec::clear);
        if k == 0 {
            continue;
        }
        for &i in members {
            for (step, v) in inner[i].values.iter().enumerate() {
                let Some(v) = *v else { continue };
                let candidates = &mut best[step];
                candidates.push((v, i));
                if candidates.len() >= prune_at {
                    candidates.select_nth_unstable_by(k - 1, order);
                    candidates.truncate(k);
                }
            }
        }
        for (step, candidates) in best.iter_mut().enumerate() {
            candidates.sort_by(order);
            for &(_, i) in candidates.iter().take(k) {
                keep[i * n + step] = true;
            }
        }
    }
    inner
        .into_iter()
        .zip(keep.chunks(n.max(1)))
        .filter_map(|(mut s, keep)| {
            for (v, &keep) in s.values.iter_mut().zip(keep) {
                if !keep {
                    *v = None;
                }
            }
            s.values.iter().any(Option::is_some).then_some(s)
        })
        .collect()
}

fn arith(op: BinaryOp, l: f64, r: f64) -> Option<f64> {
    Some(match op {
        BinaryOp::Add => l + r,
        BinaryOp::Sub => l - r,
        BinaryOp::Mul => l * r,
        BinaryOp::Div => l / r,
        BinaryOp::Mod => l % r,
        BinaryOp::Pow => l.powf(r),
        _ => return None,
    })
}

fn compare(op: BinaryOp, l: f64, r: f64) -> bool {
    match op {
        BinaryOp::Eq => l == r,
        BinaryOp::Neq => l != r,
        BinaryOp::Gt => l > r,
        BinaryOp::Ge => l >= r,
        BinaryOp::Lt => l < r,
        BinaryOp::Le => l <= r,
        _ => false,
    }
}

/// One element of a binary operation: the value, or `None` when a
/// comparison without `bool` filters it out. `keep` is the value a
/// filtering comparison keeps.
fn element(op: BinaryOp, return_bool: bool, l: f64, r: f64, keep: f64) -> Option<f64> {
    if op.is_comparison() {
        let holds = compare(op, l, r);
        if return_bool {
            return Some(if holds { 1.0 } else { 0.0 });
        }
        return holds.then_some(keep);
    }
    arith(op, l, r)
}

fn signature(labels: &[Label], matching: Option<&VectorMatching>) -> String {
    match matching {
        None => key_of(labels.iter()),
        Some(m) => key_of(labels.iter().filter(|l| m.labels.contains(&l.name) == m.on)),
    }
}

pub(crate) fn binary(
    op: BinaryOp,
    modifier: &BinaryModifier,
    lhs: Value,
    rhs: Value,
    n: usize,
) -> Result<Value, QueryError> {
    let rb = modifier.return_bool;
    match (lhs, rhs) {
        (Value::Scalar(l), Value::Scalar(r)) => {
            if op.is_set() {
                return Err(QueryError::Eval(format!(
                    "set operator `{}` needs vectors on both sides",
                    op.as_str()
                )));
            }
            let values = l
                .iter()
                .zip(&r)
                .map(|(&a, &b)| element(op, true, a, b, a).unwrap_or(f64::NAN))
                .collect();
            Ok(Value::Scalar(values))
        }
        (Value::Vector(v), Value::Scalar(s)) | (Value::Scalar(s), Value::Vector(v))
            if op.is_set() =>
        {
            let _ = (v, s);
            Err(QueryError::Eval(format!(
                "set operator `{}` needs vectors on both sides",
                op.as_str()
            )))
        }
        (Value::Vector(mut v), Value::Scalar(s)) => {
            for series in &mut v {
                for (k, slot) in series.values.iter_mut().enumerate() {
                    *slot = slot.and_then(|x| element(op, rb, x, s[k], x));
                }
            }
            Ok(Value::Vector(v))
        }
        (Value::Scalar(s), Value::Vector(mut v)) => {
            for series in &mut v {
                for (k, slot) in series.values.iter_mut().enumerate() {
                    *slot = slot.and_then(|x| element(op, rb, s[k], x, x));
                }
            }
            Ok(Value::Vector(v))
        }
        (Value::Vector(l), Value::Vector(r)) if op.is_set() => {
            Ok(Value::Vector(set_op(op, modifier, l, r, n)))
        }
        (Value::Vector(l), Value::Vector(r)) => vector_op(op, modifier, l, r, n).map(Value::Vector),
    }
}

fn set_op(
    op: BinaryOp,
    modifier: &BinaryModifier,
    l: Vec<SeriesVals>,
    r: Vec<SeriesVals>,
    n: usize,
) -> Vec<SeriesVals> {
    let matching = modifier.matching.as_ref();
    let lsig: Vec<String> = l.iter().map(|s| signature(&s.labels, matching)).collect();
    let rsig: Vec<String> = r.iter().map(|s| signature(&s.labels, matching)).collect();
    let present_at = |series: &[SeriesVals], sigs: &[String], k: usize| -> Vec<String> {
        series
            .iter()
            .zip(sigs)
            .filter(|(s, _)| s.values[k].is_some())
            .map(|(_, sig)| sig.clone())
            .collect()
    };
    let mut left = l;
    let mut right = r;
    for k in 0..n {
        match op {
            BinaryOp::And | BinaryOp::Unless => {
                let rs = present_at(&right, &rsig, k);
                for (s, sig) in left.iter_mut().zip(&lsig) {
                    let matched = rs.contains(sig);
                    if matched != (op == BinaryOp::And) {
                        s.values[k] = None;
                    }
                }
            }
            _ => {
                let ls = present_at(&left, &lsig, k);
                for (s, sig) in right.iter_mut().zip(&rsig) {
                    if ls.contains(sig) {
                        s.values[k] = None;
                    }
                }
            }
        }
    }
    if op == BinaryOp::Or {
        left.extend(right);
        return merge_same_labels(left);
    }
    left
}

/// Joins series with equal labels (from the two sides of `or`).
fn merge_same_labels(series: Vec<SeriesVals>) -> Vec<SeriesVals> {
    let mut index: HashMap<String, usize> = HashMap::default();
    let mut out: Vec<SeriesVals> = Vec::new();
    for s in series {
        let key = key_of(s.labels.iter());
        match index.get(&key) {
            Some(&i) => {
                for (mine, theirs) in out[i].values.iter_mut().zip(s.values) {
                    if mine.is_none() {
                        *mine = theirs;
                    }
                }
            }
            None => {
                index.insert(key, out.len());
                out.push(s);
            }
        }
    }
    out
}

fn vector_op(
    op: BinaryOp,
    modifier: &BinaryModifier,
    l: Vec<SeriesVals>,
    r: Vec<SeriesVals>,
    n: usize,
) -> Result<Vec<SeriesVals>, QueryError> {
    let matching = modifier.matching.as_ref();
    let group = modifier.group.as_ref();
    // The "many" side drives; one-to-one is treated as many-to-one with a
    // uniqueness check on the left.
    let right_is_one = group.is_none_or(|g| g.left);
    let (many, one) = if right_is_one { (&l, &r) } else { (&r, &l) };
    let many_sig: Vec<String> = many
        .iter()
        .map(|s| signature(&s.labels, matching))
        .collect();
    let one_sig: Vec<String> = one.iter().map(|s| signature(&s.labels, matching)).collect();
    let mut index: HashMap<String, usize> = HashMap::default();
    let mut out: Vec<SeriesVals> = Vec::new();
    for k in 0..n {
        let mut ones: HashMap<&str, usize> = HashMap::default();
        for (j, s) in one.iter().enumerate() {
            if s.values[k].is_none() {
                continue;
            }
            if ones.insert(one_sig[j].as_str(), j).is_some() {
                return Err(QueryError::Eval(format!(
                    "found duplicate series for the match group {} on the {} hand-side of the operation; many-to-many matching not allowed: matching labels must be unique on one side",
                    show(&one[j].labels),
                    if right_is_one { "right" } else { "left" }
                )));
            }
        }
        if group.is_none() {
            let mut seen: HashMap<&str, ()> = HashMap::default();
            for (i, s) in many.iter().enumerate() {
                if s.values[k].is_some()
                    && ones.contains_key(many_sig[i].as_str())
                    && seen.insert(many_sig[i].as_str(), ()).is_some()
                {
                    return Err(QueryError::Eval(format!(
                        "multiple matches for labels {}: many-to-one matching must be explicit (group_left/group_right)",
                        show(&s.labels)
                    )));
                }
            }
        }
        for (i, s) in many.iter().enumerate() {
            let Some(mv) = s.values[k] else { continue };
            let Some(&j) = ones.get(many_sig[i].as_str()) else {
                continue;
            };
            let Some(ov) = one[j].values[k] else { continue };
            let (lv, rv) = if right_is_one { (mv, ov) } else { (ov, mv) };
            let Some(value) = element(op, modifier.return_bool, lv, rv, lv) else {
                continue;
            };
            let labels = result_metric(&s.labels, &one[j].labels, op, modifier);
            let key = key_of(labels.iter());
            let at = *index.entry(key).or_insert_with(|| {
                out.push(SeriesVals {
                    labels,
                    values: vec![None; n],
                });
                out.len() - 1
            });
            out[at].values[k] = Some(value);
        }
    }
    Ok(out)
}

/// The labels of a vector-vector result, as Prometheus forms them.
fn result_metric(
    many: &[Label],
    one: &[Label],
    op: BinaryOp,
    modifier: &BinaryModifier,
) -> Vec<Label> {
    let mut labels = many.to_vec();
    let filtering = op.is_comparison() && !modifier.return_bool;
    if modifier.group.is_none()
        && !filtering
        && let Some(m) = &modifier.matching
    {
        labels.retain(|l| m.labels.contains(&l.name) == m.on);
    }
    if let Some(g) = &modifier.group {
        for name in &g.labels {
            labels.retain(|l| &l.name != name);
            if let Some(l) = one.iter().find(|l| &l.name == name && !l.value.is_empty()) {
                labels.push(l.clone());
            }
        }
        labels.sort();
    }
    labels
}

fn show(labels: &[Label]) -> String {
    let parts: Vec<String> = labels
        .iter()
        .map(|l| format!("{}={:?}", l.name, l.value))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

fn label_replace(
    lr: &LabelReplace,
    series: Vec<SeriesVals>,
) -> Result<Vec<SeriesVals>, QueryError> {
    let re = regex::Regex::new(&format!("^(?s:{})$", lr.regex))
        .map_err(|e| QueryError::Eval(format!("invalid regex in label_replace: {e}")))?;
    if !skald_model::is_valid_label_name(&lr.dst) {
        return Err(QueryError::Eval(format!(
            "invalid destination label name in label_replace: {:?}",
            lr.dst
        )));
    }
    let mut out: Vec<SeriesVals> = Vec::with_capacity(series.len());
    let mut index: HashMap<String, usize> = HashMap::default();
    for mut s in series {
        let src = s
            .labels
            .iter()
            .find(|l| l.name == lr.src)
            .map(|l| l.value.as_str())
            .unwrap_or("");
        if let Some(caps) = re.captures(src) {
            let mut value = String::new();
            caps.expand(&lr.replacement, &mut value);
            s.labels.retain(|l| l.name != lr.dst);
            if !value.is_empty() {
                s.labels.push(Label::new(lr.dst.clone(), value));
                s.labels.sort();
            }
        }
        let key = key_of(s.labels.iter());
        match index.get(&key) {
            Some(&i) => {
                for (mine, theirs) in out[i].values.iter_mut().zip(s.values) {
                    if theirs.is_some() {
                        if mine.is_some() {
                            return Err(QueryError::Eval(
                                "vector cannot contain metrics with the same labelset".into(),
                            ));
                        }
                        *mine = theirs;
                    }
                }
            }
            None => {
                index.insert(key, out.len());
                out.push(s);
            }
        }
    }
    Ok(out)
}

/// Whether the order of an instant result is part of its meaning, and
/// which way: `Some(true)` largest first.
pub(crate) fn result_order(expr: &Expr) -> Option<bool> {
    match expr {
        Expr::VectorAggregation(va) => match va.op {
            VectorOp::Topk | VectorOp::SortDesc => Some(true),
            VectorOp::Bottomk | VectorOp::Sort => Some(false),
            _ => None,
        },
        _ => None,
    }
}
