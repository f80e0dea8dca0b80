"""The blocking client of skald.v1.LogService."""
from __future__ import annotations

import os
import threading
import time
from typing import (
    Any,
    Callable,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
)

import grpc

from . import _convert as cv
from ._convert import EntryLike, StreamLike, Time
from ._proto import log_service_pb2 as pb
from ._proto import log_service_pb2_grpc as pb_grpc
from .errors import SkaldError, from_rpc_error
from .types import (
    AnalysisReport,
    Anomalies,
    DeleteResult,
    ErrorGroup,
    LogPattern,
    Direction,
    ExportChunk,
    ExportFormat,
    ExportStatus,
    Health,
    LabelValidation,
    PushResult,
    QueryResult,
    QueryStatsResult,
    RangeResult,
    Statistics,
    StreamInfo,
    StreamPage,
    StreamSummary,
    TailEvent,
    UserQuota,
)

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_TARGET = "127.0.0.1:9095"
DEFAULT_TIMEOUT = 30.0
TENANT_HEADER = "x-scope-orgid"


def _metadata(tenant: Optional[str], token: Optional[str] = None) -> Optional[Tuple[Tuple[str, str], ...]]:
    md = []
    if tenant:
        md.append((TENANT_HEADER, tenant))
    if token:
        md.append(("authorization", f"Bearer {token}"))
    return tuple(md) if md else None


def _token(token: Optional[str]) -> Optional[str]:
    """The token given, or ``SKALD_TOKEN`` from the environment."""
    return token if token is not None else (os.environ.get("SKALD_TOKEN") or None)


class StreamCall(Iterator[T]):
    """An iterator over a server-streaming call (tail, export).

    Stop it early with ``cancel()`` or by using it as a context manager.
    gRPC errors surface as ``SkaldError`` subclasses from ``next()``.
    """

    def __init__(self, call: Any, convert: Callable[[Any], T]):
        self._call = call
        self._convert = convert

    def __iter__(self) -> "StreamCall[T]":
        return self

    def __next__(self) -> T:
        try:
            msg = next(self._call)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.CANCELLED:  # type: ignore[attr-defined]
                raise StopIteration from None
            raise from_rpc_error(e) from None
        return self._convert(msg)

    def cancel(self) -> None:
        self._call.cancel()

    def __enter__(self) -> "StreamCall[T]":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.cancel()


class Client:
    """A connection to a Skald server's gRPC service.

    ``target`` is ``host:port`` of the gRPC listener; ``tenant`` is sent as
    the ``x-scope-orgid`` metadata (the server's default tenant when None);
    ``timeout`` (seconds) bounds every unary call; streaming calls take their
    own. ``token`` (default: the ``SKALD_TOKEN`` environment variable) is
    sent as ``authorization: Bearer <token>`` on every call, for servers
    started with ``--auth``. Pass ``channel`` to reuse an existing
    ``grpc.Channel`` (TLS, options).
    Use as a context manager, or call ``close()``.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        tenant: Optional[str] = None,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
        *,
        channel: Optional[grpc.Channel] = None,
        options: Sequence[Tuple[str, Any]] = (),
        token: Optional[str] = None,
    ):
        self.target = target
        self.tenant = tenant
        self.timeout = timeout
        self.token = _token(token)
        self._own_channel = channel is None
        self._channel = channel if channel is not None else grpc.insecure_channel(target, options=list(options))
        self._stub = pb_grpc.LogServiceStub(self._channel)
        self._closed = threading.Event()

    # ------------------------------------------------------------ plumbing

    def with_tenant(self, tenant: Optional[str]) -> "Client":
        """A client for another tenant sharing this one's connection."""
        return Client(self.target, tenant, self.timeout, channel=self._channel, token=self.token)

    def close(self) -> None:
        if self._own_channel and not self._closed.is_set():
            self._closed.set()
            self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _unary(self, method: str, request: Any, convert: Callable[[Any], R], timeout: Optional[float] = None) -> R:
        try:
            reply = getattr(self._stub, method)(
                request, timeout=timeout if timeout is not None else self.timeout, metadata=_metadata(self.tenant, self.token)
            )
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        return convert(reply)

    def _stream(self, method: str, request: Any, convert: Callable[[Any], T], timeout: Optional[float]) -> StreamCall[T]:
        call = getattr(self._stub, method)(request, timeout=timeout, metadata=_metadata(self.tenant, self.token))
        return StreamCall(call, convert)

    # ------------------------------------------------------------ pushing

    def push_log(
        self,
        labels: Mapping[str, str],
        line: str,
        timestamp: Time = None,
        structured_metadata: Optional[Mapping[str, str]] = None,
    ) -> PushResult:
        """Stores one entry (timestamp None: now). Rejections are counted, not raised."""
        return self._unary("PushLog", cv.req_push_log(labels, line, timestamp, structured_metadata), cv.push_out)

    def push_log_batch(self, streams: Iterable[StreamLike]) -> PushResult:
        """Stores many streams: ``Stream`` objects or ``(labels, entries)`` pairs."""
        return self._unary("PushLogBatch", cv.req_push_batch(streams), cv.push_out)

    def push_log_stream(self, batches: Iterable[Iterable[StreamLike]], timeout: Optional[float] = None) -> PushResult:
        """Client-streaming push: each item of ``batches`` is one message (a
        list of streams). Returns the server's totals once all are sent."""
        requests = (cv.req_push_batch(b) for b in batches)
        try:
            reply = self._stub.PushLogStream(requests, timeout=timeout, metadata=_metadata(self.tenant, self.token))
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        return cv.push_out(reply)

    def push_simple_log(
        self,
        message: str,
        service: str,
        level: str = "",
        labels: Optional[Mapping[str, str]] = None,
        fields: Optional[Mapping[str, str]] = None,
        timestamp: Time = None,
    ) -> PushResult:
        """One line in the stream {service=..., level=..., labels...};
        ``fields`` become structured metadata (not indexed)."""
        return self._unary(
            "PushSimpleLog", cv.req_push_simple(message, service, level, labels, fields, timestamp), cv.push_out
        )

    # ------------------------------------------------------------ querying

    def query_logs(
        self,
        query: str,
        start: Time = None,
        end: Time = None,
        limit: int = 100,
        direction: Direction = Direction.BACKWARD,
    ) -> QueryResult:
        """A LogQL log query over [start, end) (default: the last hour)."""
        return self._unary("QueryLogs", cv.req_query_logs(query, start, end, limit, direction), cv.query_logs_out)

    def query_range(self, query: str, start: Time = None, end: Time = None, step_ns: int = 0) -> RangeResult:
        """A LogQL metric query; ``step_ns`` 0 lets the server choose."""
        return self._unary("QueryRange", cv.req_query_range(query, start, end, step_ns), cv.query_range_out)

    def tail_logs(
        self, query: str, limit: int = 100, start: Time = None, delay_for_seconds: int = 0, timeout: Optional[float] = None
    ) -> StreamCall[TailEvent]:
        """Live tail: an iterator of ``TailEvent``s until cancelled."""
        return self._stream("TailLogs", cv.req_tail(query, limit, start, delay_for_seconds), cv.tail_out, timeout)

    def query_stats(self, query: str, start: Time = None, end: Time = None, run_limit: int = 0) -> QueryStatsResult:
        """What a query would touch; with ``run_limit`` > 0 also runs it."""
        return self._unary("QueryStats", cv.req_query_stats(query, start, end, run_limit), cv.query_stats_out)

    # ------------------------------------------------------------ labels

    def get_labels(self, start: Time = None, end: Time = None, query: str = "") -> List[str]:
        return self._unary("GetLabels", cv.req_labels(start, end, query), cv.labels_names_out)

    def get_label_values(self, name: str, start: Time = None, end: Time = None, query: str = "") -> List[str]:
        return self._unary("GetLabelValues", cv.req_label_values(name, start, end, query), cv.label_values_out)

    def validate_labels(self, labels: Union[Mapping[str, str], Sequence[Tuple[str, str]]]) -> LabelValidation:
        """Checks a label set without storing anything."""
        return self._unary("ValidateLabels", cv.req_validate(labels), cv.validate_out)

    # ------------------------------------------------------------ streams

    def list_streams(
        self, selector: str = "", start: Time = None, end: Time = None, page_size: int = 0, page_token: str = ""
    ) -> StreamPage:
        """One page of streams; see ``iter_streams`` for all of them."""
        return self._unary(
            "ListStreams", cv.req_list_streams(selector, start, end, page_size, page_token), cv.list_streams_out
        )

    def iter_streams(self, selector: str = "", start: Time = None, end: Time = None, page_size: int = 0) -> Iterator[StreamSummary]:
        """Every stream matching, following page tokens."""
        token = ""
        while True:
            page = self.list_streams(selector, start, end, page_size, token)
            yield from page.streams
            token = page.next_page_token
            if not token:
                return

    def get_stream_info(self, labels: Optional[Mapping[str, str]] = None, stream_id: str = "") -> StreamInfo:
        """One stream by its exact labels or its id; ``NotFound`` if unknown."""
        return self._unary("GetStreamInfo", cv.req_stream_info(labels, stream_id), cv.stream_info_out)

    def delete_stream(self, query: str, start: Time = None, end: Time = None) -> DeleteResult:
        """Deletes matching entries (selector plus optional line filters)."""
        return self._unary("DeleteStream", cv.req_delete(query, start, end), cv.delete_out)

    # ------------------------------------------------------------ export

    def export_logs(
        self,
        query: str,
        start: Time = None,
        end: Time = None,
        chunk_size: int = 0,
        cursor: str = "",
        timeout: Optional[float] = None,
    ) -> StreamCall[ExportChunk]:
        """Streams the query's entries oldest first, in chunks with cursors."""
        return self._stream("ExportLogs", cv.req_export(query, start, end, chunk_size, cursor), cv.export_chunk_out, timeout)

    def start_export(
        self,
        query: str,
        path: str = "",
        format: ExportFormat = ExportFormat.NDJSON,
        gzip: bool = False,
        start: Time = None,
        end: Time = None,
    ) -> str:
        """Starts a background export to a file on the server; returns the
        job id for ``get_export_status``. Relative paths are under the
        server's <data_dir>/exports/."""
        req = cv.req_export(query, start, end, 0, "", (path, format, gzip))
        with self._stream("ExportLogs", req, cv.export_chunk_out, self.timeout) as chunks:
            for chunk in chunks:
                if chunk.job_id:
                    return chunk.job_id
        raise SkaldError("the server started no export job")

    def get_export_status(self, job_id: str) -> ExportStatus:
        return self._unary("GetExportStatus", pb.GetExportStatusRequest(job_id=job_id), cv.export_status_out)

    def wait_export(self, job_id: str, timeout: float = 60.0, interval: float = 0.1) -> ExportStatus:
        """Polls ``get_export_status`` until the job completes or fails."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.get_export_status(job_id)
            if status.finished or time.monotonic() >= deadline:
                return status
            time.sleep(interval)

    # ------------------------------------------------------------ monitoring

    def get_statistics(self, tenant: str = "") -> Statistics:
        """Storage statistics of one tenant, or of every tenant and the total."""
        return self._unary("GetStatistics", pb.GetStatisticsRequest(tenant=tenant), cv.statistics_out)

    def get_user_quota(self) -> UserQuota:
        """Limits and usage of this client's tenant."""
        return self._unary("GetUserQuota", pb.GetUserQuotaRequest(), cv.quota_out)

    def health_check(self) -> Health:
        return self._unary("HealthCheck", pb.HealthCheckRequest(), cv.health_out)

    # ------------------------------------------------------------ analysis

    def list_patterns(self, query: str, start: Time = None, end: Time = None, step_ns: int = 0) -> List[LogPattern]:
        """Patterns mined at ingest of the selected streams, most frequent first."""
        return self._unary("ListPatterns", cv.req_patterns(query, start, end, step_ns), cv.patterns_out)

    def list_error_groups(
        self, query: str, start: Time = None, end: Time = None, step_ns: int = 0, examples: int = 0
    ) -> List[ErrorGroup]:
        """Error groups of the selected streams; ``is_new`` when first seen in the range."""
        return self._unary(
            "ListErrorGroups", cv.req_error_groups(query, start, end, step_ns, examples), cv.error_groups_out
        )

    def list_anomalies(self, query: str, start: Time = None, end: Time = None, window_ns: int = 0) -> Anomalies:
        """Anomalies of the selected streams, strongest first."""
        return self._unary("ListAnomalies", cv.req_anomalies(query, start, end, window_ns), cv.anomalies_out)

    def analyze_logs(
        self, query: str, start: Time = None, end: Time = None, max_lines: int = 0, top_patterns: int = 0
    ) -> AnalysisReport:
        """The analysis report of a log query (as ``skald analyze``)."""
        return self._unary(
            "AnalyzeLogs", cv.req_analyze(query, start, end, max_lines, top_patterns), cv.analyze_out
        )
