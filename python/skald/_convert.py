"""Conversions between the dataclasses and the generated protobuf messages.

Shared by the blocking and the asyncio clients: every ``req_*`` function
builds a request, every ``*_out`` function turns a response into a result.
"""
from __future__ import annotations

import datetime as _dt
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ._proto import log_service_pb2 as pb
from .types import (
    AnalysisReport,
    Anomalies,
    Anomaly,
    AnomalyBaseline,
    DeleteResult,
    Direction,
    DroppedEntries,
    Entry,
    ErrorGroup,
    ExportChunk,
    ExportFormat,
    ExportState,
    ExportStatus,
    Health,
    LabelProblem,
    LabelValidation,
    LogPattern,
    NumberStats,
    PatternSummary,
    HourCount,
    PushResult,
    QueryResult,
    QueryStatistics,
    QueryStatsResult,
    RangeResult,
    Rejection,
    Sample,
    Series,
    ServingStatus,
    Severity,
    Statistics,
    Stream,
    StreamInfo,
    StreamPage,
    StreamSummary,
    TailEvent,
    TenantStatistics,
    UserQuota,
)

#: A time: nanoseconds since the epoch, a ``datetime`` (naive means UTC), or
#: ``None`` for the server's default.
Time = Union[int, float, _dt.datetime, None]
#: An entry to push: an ``Entry``, a line (timestamped "now"), or
#: ``(timestamp_ns, line)`` / ``(timestamp_ns, line, metadata)``.
EntryLike = Union[Entry, str, Tuple[Any, ...]]
#: A stream to push: a ``Stream`` or ``(labels, entries)``.
StreamLike = Union[Stream, Tuple[Mapping[str, str], Iterable[EntryLike]]]


def ns(t: Time) -> int:
    """Nanoseconds since the epoch; 0 (the server's default) for ``None``."""
    if t is None:
        return 0
    if isinstance(t, _dt.datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=_dt.timezone.utc)
        delta = t - _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    if isinstance(t, float):
        raise TypeError("times are integer nanoseconds or datetimes, not floats")
    return int(t)


def labels_in(labels: Optional[Mapping[str, str]]) -> List[pb.Label]:
    return [pb.Label(name=str(k), value=str(v)) for k, v in (labels or {}).items()]


def labels_out(labels: Iterable[pb.Label]) -> Dict[str, str]:
    return {label.name: label.value for label in labels}


def entry_in(e: EntryLike) -> pb.Entry:
    if isinstance(e, Entry):
        return pb.Entry(
            timestamp_ns=e.timestamp_ns, line=e.line, structured_metadata=labels_in(e.structured_metadata)
        )
    if isinstance(e, str):
        return pb.Entry(line=e)
    if isinstance(e, tuple) and len(e) in (2, 3):
        meta = e[2] if len(e) == 3 else None
        return pb.Entry(timestamp_ns=ns(e[0]), line=str(e[1]), structured_metadata=labels_in(meta))
    raise TypeError(f"not an entry: {e!r}")


def stream_in(s: StreamLike) -> pb.Stream:
    if isinstance(s, Stream):
        labels, entries = s.labels, s.entries  # type: Mapping[str, str], Iterable[EntryLike]
    else:
        labels, entries = s
    return pb.Stream(labels=labels_in(labels), entries=[entry_in(e) for e in entries])


def stream_out(s: pb.Stream) -> Stream:
    return Stream(
        labels=labels_out(s.labels),
        entries=[
            Entry(e.timestamp_ns, e.line, labels_out(e.structured_metadata)) for e in s.entries
        ],
    )


# ------------------------------------------------------------------ requests


def req_push_log(labels: Mapping[str, str], line: str, timestamp: Time, metadata: Optional[Mapping[str, str]]) -> pb.PushLogRequest:
    return pb.PushLogRequest(
        labels=labels_in(labels),
        entry=pb.Entry(timestamp_ns=ns(timestamp), line=line, structured_metadata=labels_in(metadata)),
    )


def req_push_batch(streams: Iterable[StreamLike]) -> pb.PushLogBatchRequest:
    return pb.PushLogBatchRequest(streams=[stream_in(s) for s in streams])


def req_push_simple(
    message: str,
    service: str,
    level: str,
    labels: Optional[Mapping[str, str]],
    fields: Optional[Mapping[str, str]],
    timestamp: Time,
) -> pb.PushSimpleLogRequest:
    return pb.PushSimpleLogRequest(
        message=message,
        service=service,
        level=level,
        labels={str(k): str(v) for k, v in (labels or {}).items()},
        fields={str(k): str(v) for k, v in (fields or {}).items()},
        timestamp_ns=ns(timestamp),
    )


def req_query_logs(query: str, start: Time, end: Time, limit: int, direction: Direction) -> pb.QueryLogsRequest:
    return pb.QueryLogsRequest(
        query=query, start_ns=ns(start), end_ns=ns(end), limit=limit, direction=Direction(direction).value  # type: ignore[arg-type]
    )


def req_query_range(query: str, start: Time, end: Time, step_ns: int) -> pb.QueryRangeRequest:
    return pb.QueryRangeRequest(query=query, start_ns=ns(start), end_ns=ns(end), step_ns=int(step_ns))


def req_tail(query: str, limit: int, start: Time, delay_for_seconds: int) -> pb.TailLogsRequest:
    return pb.TailLogsRequest(query=query, limit=limit, start_ns=ns(start), delay_for_seconds=delay_for_seconds)


def req_query_stats(query: str, start: Time, end: Time, run_limit: int) -> pb.QueryStatsRequest:
    return pb.QueryStatsRequest(query=query, start_ns=ns(start), end_ns=ns(end), run_limit=run_limit)


def req_labels(start: Time, end: Time, query: str) -> pb.GetLabelsRequest:
    return pb.GetLabelsRequest(start_ns=ns(start), end_ns=ns(end), query=query)


def req_label_values(name: str, start: Time, end: Time, query: str) -> pb.GetLabelValuesRequest:
    return pb.GetLabelValuesRequest(name=name, start_ns=ns(start), end_ns=ns(end), query=query)


def req_validate(labels: Union[Mapping[str, str], Sequence[Tuple[str, str]]]) -> pb.ValidateLabelsRequest:
    # A sequence of pairs lets callers check duplicate names, which a dict cannot hold.
    pairs = labels.items() if isinstance(labels, Mapping) else labels
    return pb.ValidateLabelsRequest(labels=[pb.Label(name=n, value=v) for n, v in pairs])


def req_list_streams(selector: str, start: Time, end: Time, page_size: int, page_token: str) -> pb.ListStreamsRequest:
    return pb.ListStreamsRequest(
        selector=selector, start_ns=ns(start), end_ns=ns(end), page_size=page_size, page_token=page_token
    )


def req_stream_info(labels: Optional[Mapping[str, str]], stream_id: str) -> pb.GetStreamInfoRequest:
    if not labels and not stream_id:
        raise ValueError("get_stream_info needs labels or a stream_id")
    return pb.GetStreamInfoRequest(labels=labels_in(labels), stream_id=stream_id)


def req_delete(query: str, start: Time, end: Time) -> pb.DeleteStreamRequest:
    return pb.DeleteStreamRequest(query=query, start_ns=ns(start), end_ns=ns(end))


def req_export(
    query: str,
    start: Time,
    end: Time,
    chunk_size: int,
    cursor: str,
    destination: Optional[Tuple[str, ExportFormat, bool]] = None,
) -> pb.ExportLogsRequest:
    req = pb.ExportLogsRequest(query=query, start_ns=ns(start), end_ns=ns(end), chunk_size=chunk_size, cursor=cursor)
    if destination is not None:
        path, fmt, gzip = destination
        req.destination.CopyFrom(pb.ExportDestination(path=path, format=ExportFormat(fmt).value, gzip=gzip))  # type: ignore[arg-type]
    return req


# ------------------------------------------------------------------ responses


def push_out(r: pb.PushResponse) -> PushResult:
    return PushResult(
        accepted=r.accepted,
        accepted_bytes=r.accepted_bytes,
        rejected=r.rejected,
        duplicates=r.duplicates,
        rejections=[Rejection(x.stream, x.reason, x.entries) for x in r.rejections],
        messages=r.messages,
    )


def stats_out(s: pb.QueryStatistics) -> QueryStatistics:
    return QueryStatistics(
        exec_time_seconds=s.exec_time_seconds,
        streams=s.streams,
        chunks_referenced=s.chunks_referenced,
        chunks_skipped=s.chunks_skipped,
        chunks_read=s.chunks_read,
        bytes_processed=s.bytes_processed,
        lines_processed=s.lines_processed,
        compressed_bytes=s.compressed_bytes,
        entries_returned=s.entries_returned,
    )


def query_logs_out(r: pb.QueryLogsResponse) -> QueryResult:
    return QueryResult([stream_out(s) for s in r.streams], stats_out(r.stats), list(r.warnings))


def query_range_out(r: pb.QueryRangeResponse) -> RangeResult:
    return RangeResult(
        [Series(labels_out(s.labels), [Sample(x.timestamp_ns, x.value) for x in s.samples]) for s in r.series],
        stats_out(r.stats),
        list(r.warnings),
    )


def tail_out(r: pb.TailLogsResponse) -> TailEvent:
    return TailEvent(
        [stream_out(s) for s in r.streams],
        [DroppedEntries(labels_out(d.labels), d.timestamp_ns, d.count) for d in r.dropped_entries],
    )


def query_stats_out(r: pb.QueryStatsResponse) -> QueryStatsResult:
    return QueryStatsResult(
        streams=r.streams,
        chunks=r.chunks,
        bytes=r.bytes,
        entries=r.entries,
        run=stats_out(r.run) if r.HasField("run") else None,
    )


def labels_names_out(r: pb.GetLabelsResponse) -> List[str]:
    return list(r.names)


def label_values_out(r: pb.GetLabelValuesResponse) -> List[str]:
    return list(r.values)


def validate_out(r: pb.ValidateLabelsResponse) -> LabelValidation:
    return LabelValidation(
        valid=r.valid,
        problems=[LabelProblem(p.name, Severity(p.severity), p.code, p.message) for p in r.problems],
        normalized=r.normalized,
    )


def summary_out(s: pb.StreamSummary) -> StreamSummary:
    return StreamSummary(labels_out(s.labels), s.stream_id, s.first_entry_ns, s.last_entry_ns)


def list_streams_out(r: pb.ListStreamsResponse) -> StreamPage:
    return StreamPage([summary_out(s) for s in r.streams], r.next_page_token, r.total)


def stream_info_out(r: pb.StreamInfo) -> StreamInfo:
    return StreamInfo(
        labels_out(r.labels), r.stream_id, r.first_entry_ns, r.last_entry_ns, r.entries, r.bytes, r.chunks
    )


def delete_out(r: pb.DeleteStreamResponse) -> DeleteResult:
    return DeleteResult(r.request_id, r.status)


def export_chunk_out(r: pb.ExportLogsResponse) -> ExportChunk:
    return ExportChunk([stream_out(s) for s in r.streams], r.cursor, r.entries_sent, r.done, r.job_id)


def export_status_out(r: pb.ExportStatus) -> ExportStatus:
    return ExportStatus(
        job_id=r.job_id,
        state=ExportState(r.state),
        entries=r.entries,
        bytes=r.bytes,
        percent=r.percent,
        error=r.error,
        path=r.path,
        started_ns=r.started_ns,
        finished_ns=r.finished_ns,
    )


def tenant_stats_out(t: pb.TenantStatistics) -> TenantStatistics:
    return TenantStatistics(
        tenant=t.tenant,
        streams=t.streams,
        entries=t.entries,
        bytes_raw=t.bytes_raw,
        bytes_stored=t.bytes_stored,
        compression_ratio=t.compression_ratio,
        segments=t.segments,
        oldest_entry_ns=t.oldest_entry_ns,
        newest_entry_ns=t.newest_entry_ns,
    )


def statistics_out(r: pb.GetStatisticsResponse) -> Statistics:
    return Statistics(
        tenants=[tenant_stats_out(t) for t in r.tenants],
        total=tenant_stats_out(r.total) if r.HasField("total") else None,
        ingestion_entries_per_second=r.ingestion_entries_per_second,
        ingestion_bytes_per_second=r.ingestion_bytes_per_second,
        entries_rejected=r.entries_rejected,
        uptime_seconds=r.uptime_seconds,
    )


def quota_out(r: pb.GetUserQuotaResponse) -> UserQuota:
    return UserQuota(
        tenant=r.tenant,
        max_line_bytes=r.max_line_bytes,
        max_label_names_per_series=r.max_label_names_per_series,
        max_label_name_length=r.max_label_name_length,
        max_label_value_length=r.max_label_value_length,
        max_push_body_bytes=r.max_push_body_bytes,
        max_query_limit=r.max_query_limit,
        max_query_length_hours=r.max_query_length_hours,
        reject_old_samples_max_age_secs=r.reject_old_samples_max_age_secs,
        streams=r.streams,
        entries=r.entries,
        bytes_stored=r.bytes_stored,
    )


def health_out(r: pb.HealthCheckResponse) -> Health:
    return Health(
        status=ServingStatus(r.status),
        version=r.version,
        uptime_seconds=r.uptime_seconds,
        storage_status=r.storage_status,
        corrupt_files=r.corrupt_files,
        head_bytes=r.head_bytes,
    )


# ------------------------------------------------------------ analysis


def req_patterns(query: str, start: Time, end: Time, step_ns: int) -> pb.ListPatternsRequest:
    return pb.ListPatternsRequest(query=query, start_ns=ns(start), end_ns=ns(end), step_ns=int(step_ns))


def req_error_groups(query: str, start: Time, end: Time, step_ns: int, examples: int) -> pb.ListErrorGroupsRequest:
    return pb.ListErrorGroupsRequest(
        query=query, start_ns=ns(start), end_ns=ns(end), step_ns=int(step_ns), examples=examples
    )


def req_anomalies(query: str, start: Time, end: Time, window_ns: int) -> pb.ListAnomaliesRequest:
    return pb.ListAnomaliesRequest(query=query, start_ns=ns(start), end_ns=ns(end), window_ns=int(window_ns))


def req_analyze(query: str, start: Time, end: Time, max_lines: int, top_patterns: int) -> pb.AnalyzeLogsRequest:
    return pb.AnalyzeLogsRequest(
        query=query, start_ns=ns(start), end_ns=ns(end), max_lines=max_lines, top_patterns=top_patterns
    )


def _samples(samples: Iterable[pb.PatternSample]) -> List[Tuple[int, int]]:
    return [(s.timestamp_ns, s.count) for s in samples]


def patterns_out(r: pb.ListPatternsResponse) -> List[LogPattern]:
    return [LogPattern(p.pattern, p.level, p.count, _samples(p.samples)) for p in r.patterns]


def error_group_out(g: pb.ErrorGroup) -> ErrorGroup:
    return ErrorGroup(
        fingerprint=g.fingerprint,
        category=g.category,
        exception=g.exception,
        frame=g.frame,
        pattern=g.pattern,
        count=g.count,
        first_seen_ns=g.first_seen_ns,
        last_seen_ns=g.last_seen_ns,
        is_new=g.is_new,
        samples=_samples(g.samples),
        examples=list(g.examples),
        streams=[(labels_out(s.labels), s.count) for s in g.streams],
    )


def error_groups_out(r: pb.ListErrorGroupsResponse) -> List[ErrorGroup]:
    return [error_group_out(g) for g in r.groups]


def anomaly_out(a: pb.Anomaly) -> Anomaly:
    b = a.baseline
    return Anomaly(
        kind=a.kind,
        labels=labels_out(a.labels),
        pattern=a.pattern,
        start_ns=a.start_ns,
        end_ns=a.end_ns,
        score=a.score,
        observed=a.observed,
        baseline=AnomalyBaseline(b.median, b.mad, b.source, b.windows),
        evidence=a.evidence,
    )


def anomalies_out(r: pb.ListAnomaliesResponse) -> Anomalies:
    return Anomalies([anomaly_out(a) for a in r.anomalies], r.window_ns, r.windows_judged, r.windows_anomalous)


def analyze_out(r: pb.AnalyzeLogsResponse) -> AnalysisReport:
    return AnalysisReport(
        lines=r.lines,
        truncated=r.truncated,
        streams=r.streams,
        patterns_total=r.patterns_total,
        levels={lc.level: lc.lines for lc in r.levels},
        error_lines=r.error_lines,
        error_rate=r.error_rate,
        anomaly_count=r.anomaly_count,
        anomaly_rate=r.anomaly_rate,
        patterns=[
            PatternSummary(
                p.pattern,
                p.level,
                p.count,
                p.share,
                [NumberStats(n.name, n.unit, n.count, n.p50, n.p95, n.p99) for n in p.numbers],
            )
            for p in r.patterns
        ],
        error_groups=[error_group_out(g) for g in r.error_groups],
        hourly=[HourCount(h.start_ns, h.lines, h.errors) for h in r.hourly],
        anomalies=[anomaly_out(a) for a in r.anomalies],
    )
