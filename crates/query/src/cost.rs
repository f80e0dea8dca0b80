//! What a query would read, from the index and chunk metadata alone: the
//! check behind Loki's `max_query_bytes_read`, made before any line is
//! read.

use crate::QueryError;
use skald_logql::{Expr, LogExpr};
use skald_model::{Matcher, TenantId, Timestamp};
use skald_store::Store;

/// Uncompressed bytes (lines and metadata) of every head block and chunk
/// the query's selectors cover over the time it reads: `[start, end)` for
/// a log query, each range aggregation's windows for a metric query.
///
/// A log query without line filters or parsers counts nothing: it stops
/// at its limit, and Loki does not enforce the limit on it either.
pub fn bytes_to_read(
    store: &Store,
    tenant: &TenantId,
    expr: &Expr,
    start: Timestamp,
    end: Timestamp,
) -> u64 {
    match expr {
        Expr::Log(l) => log_bytes_to_read(store, tenant, l, start, end),
        _ => expr
            .range_aggregations()
            .iter()
            .map(|r| {
                // Windows `(t - offset - range, t - offset]`.
                let from = start.0.saturating_sub(r.range.offset + r.range.range);
                let to = end.0.saturating_sub(r.range.offset);
                covered(
                    store,
                    tenant,
                    &r.range.log.selector,
                    Timestamp(from.saturating_add(1)),
                    Timestamp(to.saturating_add(1)),
                )
            })
            .sum(),
    }
}

/// [`bytes_to_read`] of a log query over `[start, end)`.
pub fn log_bytes_to_read(
    store: &Store,
    tenant: &TenantId,
    log: &LogExpr,
    start: Timestamp,
    end: Timestamp,
) -> u64 {
    if log.pipeline.is_empty() {
        return 0;
    }
    covered(store, tenant, &log.selector, start, end)
}

fn covered(
    store: &Store,
    tenant: &TenantId,
    selector: &[Matcher],
    from: Timestamp,
    to: Timestamp,
) -> u64 {
    let snap = store.snapshot(tenant, selector, from, to);
    snap.streams
        .iter()
        .flat_map(|s| &s.sources)
        .map(|src| src.size().1)
        .sum()
}

/// Refuses a query that would read `bytes` when `limit` are allowed (0:
/// no limit), with Loki's message.
pub fn check_bytes_to_read(bytes: u64, limit: u64) -> Result<(), QueryError> {
    if limit > 0 && bytes > limit {
        return Err(QueryError::Limit(format!(
            "the query would read too many bytes (query: {}, limit: {}); consider adding more specific stream selectors or reduce the time range of the query (max_query_bytes_read)",
            human_bytes(bytes),
            human_bytes(limit)
        )));
    }
    Ok(())
}

/// Bytes in SI units as Loki prints them: `812 B`, `1.2 GB`, `15 MB`.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 10 {
        return format!("{n} B");
    }
    let e = ((n as f64).log10() / 3.0).floor() as usize;
    let e = e.min(UNITS.len() - 1);
    let value = (n as f64 / 1000f64.powi(e as i32) * 10.0 + 0.5).floor() / 10.0;
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[e])
    } else {
        format!("{value:.0} {}", UNITS[e])
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn bytes_are_printed_like_loki() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(812), "812 B");
        assert_eq!(human_bytes(1_234), "1.2 kB");
        assert_eq!(human_bytes(15_000_000), "15 MB");
        assert_eq!(human_bytes(1_250_000_000), "1.3 GB");
        assert_eq!(human_bytes(150_000_000_000), "150 GB");
    }
}
