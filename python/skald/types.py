"""Results and inputs of the client, as dataclasses.

Timestamps are integer nanoseconds since the Unix epoch (UTC), as on the
wire. Label sets are plain ``dict``s, in the order the server sent them.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple


class Direction(enum.Enum):
    """Order of query results."""

    BACKWARD = 0  # newest first (the default)
    FORWARD = 1  # oldest first


class ExportFormat(enum.Enum):
    NDJSON = 0
    JSON = 1
    CSV = 2


class ExportState(enum.Enum):
    PENDING = 0
    RUNNING = 1
    COMPLETED = 2
    FAILED = 3


class Severity(enum.Enum):
    ERROR = 0  # the server would reject the stream
    WARNING = 1  # accepted, but likely a mistake


class ServingStatus(enum.Enum):
    UNKNOWN = 0
    SERVING = 1
    NOT_SERVING = 2


@dataclass
class Entry:
    """One log entry."""

    timestamp_ns: int
    line: str
    structured_metadata: Dict[str, str] = field(default_factory=dict)


@dataclass
class Stream:
    """A label set and its entries (as pushed, queried, tailed, exported)."""

    labels: Dict[str, str]
    entries: List[Entry] = field(default_factory=list)


@dataclass
class Rejection:
    stream: str
    reason: str
    entries: int


@dataclass
class PushResult:
    """What a push stored. Rejected entries are counted, not raised."""

    accepted: int
    accepted_bytes: int
    rejected: int
    duplicates: int
    rejections: List[Rejection]
    messages: int = 0  # push_log_stream only


@dataclass
class QueryStatistics:
    exec_time_seconds: float = 0.0
    streams: int = 0
    chunks_referenced: int = 0
    chunks_skipped: int = 0
    chunks_read: int = 0
    bytes_processed: int = 0
    lines_processed: int = 0
    compressed_bytes: int = 0
    entries_returned: int = 0


def _flatten(streams: List[Stream]) -> Iterator[Tuple[Dict[str, str], Entry]]:
    for s in streams:
        for e in s.entries:
            yield s.labels, e


@dataclass
class QueryResult:
    streams: List[Stream]
    stats: QueryStatistics
    warnings: List[str]

    def entries(self) -> List[Tuple[Dict[str, str], Entry]]:
        """Every (labels, entry) pair of every stream."""
        return list(_flatten(self.streams))

    def lines(self) -> List[str]:
        return [e.line for _, e in _flatten(self.streams)]


@dataclass
class Sample:
    timestamp_ns: int
    value: float


@dataclass
class Series:
    labels: Dict[str, str]
    samples: List[Sample]


@dataclass
class RangeResult:
    series: List[Series]
    stats: QueryStatistics
    warnings: List[str]


@dataclass
class DroppedEntries:
    labels: Dict[str, str]
    timestamp_ns: int
    count: int


@dataclass
class TailEvent:
    """One message of a live tail: entries, or counts of entries dropped."""

    streams: List[Stream]
    dropped: List[DroppedEntries]

    def entries(self) -> List[Tuple[Dict[str, str], Entry]]:
        return list(_flatten(self.streams))


@dataclass
class QueryStatsResult:
    """Estimate from the index; ``run`` is set when the query was run."""

    streams: int
    chunks: int
    bytes: int
    entries: int
    run: Optional[QueryStatistics] = None


@dataclass
class LabelProblem:
    name: str
    severity: Severity
    code: str
    message: str


@dataclass
class LabelValidation:
    valid: bool
    problems: List[LabelProblem]
    normalized: str

    @property
    def errors(self) -> List[LabelProblem]:
        return [p for p in self.problems if p.severity is Severity.ERROR]

    @property
    def warnings(self) -> List[LabelProblem]:
        return [p for p in self.problems if p.severity is Severity.WARNING]


@dataclass
class StreamSummary:
    labels: Dict[str, str]
    stream_id: str
    first_entry_ns: int
    last_entry_ns: int


@dataclass
class StreamPage:
    streams: List[StreamSummary]
    next_page_token: str
    total: int


@dataclass
class StreamInfo:
    labels: Dict[str, str]
    stream_id: str
    first_entry_ns: int
    last_entry_ns: int
    entries: int
    bytes: int
    chunks: int


@dataclass
class DeleteResult:
    request_id: str
    status: str


@dataclass
class ExportChunk:
    """One message of a streaming export; resume from ``cursor``."""

    streams: List[Stream]
    cursor: str
    entries_sent: int
    done: bool
    job_id: str = ""

    def entries(self) -> List[Tuple[Dict[str, str], Entry]]:
        return list(_flatten(self.streams))


@dataclass
class ExportStatus:
    job_id: str
    state: ExportState
    entries: int
    bytes: int
    percent: float
    error: str
    path: str
    started_ns: int
    finished_ns: int

    @property
    def finished(self) -> bool:
        return self.state in (ExportState.COMPLETED, ExportState.FAILED)


@dataclass
class TenantStatistics:
    tenant: str
    streams: int
    entries: int
    bytes_raw: int
    bytes_stored: int
    compression_ratio: float
    segments: int
    oldest_entry_ns: int
    newest_entry_ns: int


@dataclass
class Statistics:
    tenants: List[TenantStatistics]
    total: Optional[TenantStatistics]
    ingestion_entries_per_second: float
    ingestion_bytes_per_second: float
    entries_rejected: int
    uptime_seconds: int


@dataclass
class UserQuota:
    tenant: str
    max_line_bytes: int
    max_label_names_per_series: int
    max_label_name_length: int
    max_label_value_length: int
    max_push_body_bytes: int
    max_query_limit: int
    max_query_length_hours: int
    reject_old_samples_max_age_secs: int
    streams: int
    entries: int
    bytes_stored: int


@dataclass
class Health:
    status: ServingStatus
    version: str
    uptime_seconds: int
    storage_status: str
    corrupt_files: int
    head_bytes: int

    @property
    def serving(self) -> bool:
        return self.status is ServingStatus.SERVING


# ------------------------------------------------------------ analysis


@dataclass
class LogPattern:
    """A pattern mined at ingest, with its lines per step."""

    pattern: str
    level: str
    count: int
    samples: List[Tuple[int, int]] = field(default_factory=list)  # (timestamp_ns, lines)


@dataclass
class ErrorGroup:
    """Error lines sharing a fingerprint (pattern, exception, top frame, category)."""

    fingerprint: str
    category: str
    exception: str
    frame: str
    pattern: str
    count: int
    first_seen_ns: int
    last_seen_ns: int
    is_new: bool
    samples: List[Tuple[int, int]] = field(default_factory=list)
    examples: List[str] = field(default_factory=list)
    streams: List[Tuple[Dict[str, str], int]] = field(default_factory=list)


@dataclass
class AnomalyBaseline:
    median: float
    mad: float
    source: str  # previous_days, recent_windows or none
    windows: int


@dataclass
class Anomaly:
    """A spike, drop, silence, error spike, new pattern or pattern shift."""

    kind: str
    labels: Dict[str, str]
    pattern: str
    start_ns: int
    end_ns: int
    score: float
    observed: int
    baseline: AnomalyBaseline
    evidence: str


@dataclass
class Anomalies:
    anomalies: List[Anomaly]
    window_ns: int
    windows_judged: int
    windows_anomalous: int


@dataclass
class NumberStats:
    """A number with a unit found in a pattern's lines (ms or bytes)."""

    name: str
    unit: str
    count: int
    p50: float
    p95: float
    p99: float


@dataclass
class PatternSummary:
    pattern: str
    level: str
    count: int
    share: float
    numbers: List[NumberStats] = field(default_factory=list)


@dataclass
class HourCount:
    start_ns: int
    lines: int
    errors: int


@dataclass
class AnalysisReport:
    """The analysis report of a log query (``skald analyze``)."""

    lines: int
    truncated: bool
    streams: int
    patterns_total: int
    levels: Dict[str, int]
    error_lines: int
    error_rate: float
    anomaly_count: int
    anomaly_rate: float
    patterns: List[PatternSummary]
    error_groups: List[ErrorGroup]
    hourly: List[HourCount]
    anomalies: List[Anomaly]
