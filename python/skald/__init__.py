"""Python client for Skald's gRPC log service (skald.v1.LogService).

    import skald
    with skald.Client("127.0.0.1:9095", tenant="team-a") as c:
        c.push_log({"app": "api"}, "hello")
        for labels, entry in c.query_logs('{app="api"}').entries():
            print(labels, entry.line)

``skald.AsyncClient`` offers the same methods over ``grpc.aio``;
``skald.logging.SkaldHandler`` ships ``logging`` records.
"""
from .aio import AsyncClient
from .client import DEFAULT_TARGET, TENANT_HEADER, Client, StreamCall
from .errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    SkaldError,
    Unauthenticated,
    Unavailable,
    Unimplemented,
)
from .types import (
    AnalysisReport,
    Anomalies,
    Anomaly,
    AnomalyBaseline,
    DeleteResult,
    ErrorGroup,
    HourCount,
    LogPattern,
    NumberStats,
    PatternSummary,
    Direction,
    DroppedEntries,
    Entry,
    ExportChunk,
    ExportFormat,
    ExportState,
    ExportStatus,
    Health,
    LabelProblem,
    LabelValidation,
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

__version__ = "0.1.0"

__all__ = [
    "AsyncClient", "Client", "StreamCall", "DEFAULT_TARGET", "TENANT_HEADER",
    "SkaldError", "InvalidArgument", "NotFound", "ResourceExhausted", "FailedPrecondition",
    "Unavailable", "DeadlineExceeded", "Unimplemented", "Unauthenticated", "PermissionDenied",
    "DeleteResult", "Direction", "DroppedEntries", "Entry", "ExportChunk", "ExportFormat",
    "ExportState", "ExportStatus", "Health", "LabelProblem", "LabelValidation", "PushResult",
    "QueryResult", "QueryStatistics", "QueryStatsResult", "RangeResult", "Rejection", "Sample",
    "Series", "ServingStatus", "Severity", "Statistics", "Stream", "StreamInfo", "StreamPage",
    "StreamSummary", "TailEvent", "TenantStatistics", "UserQuota",
    "AnalysisReport", "Anomalies", "Anomaly", "AnomalyBaseline", "ErrorGroup", "HourCount",
    "LogPattern", "NumberStats", "PatternSummary",
]
