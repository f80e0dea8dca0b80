"""The asyncio client: ``Client``'s methods as coroutines over ``grpc.aio``."""
from __future__ import annotations

import asyncio
import time
from typing import (
    Any,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Generic,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
)

import grpc
import grpc.aio

from . import _convert as cv
from ._convert import StreamLike, Time
from ._proto import log_service_pb2 as pb
from ._proto import log_service_pb2_grpc as pb_grpc
from .client import DEFAULT_TARGET, DEFAULT_TIMEOUT, _metadata, _token
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


class AsyncStreamCall(Generic[T]):
    """An async iterator over a server-streaming call; ``cancel()`` stops it."""

    def __init__(self, call: Any, convert: Callable[[Any], T]):
        self._call = call
        self._convert = convert

    def __aiter__(self) -> "AsyncStreamCall[T]":
        return self

    async def __anext__(self) -> T:
        try:
            msg = await self._call.read()
        except asyncio.CancelledError:
            raise StopAsyncIteration from None
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.CANCELLED:  # type: ignore[attr-defined]
                raise StopAsyncIteration from None
            raise from_rpc_error(e) from None
        if msg is grpc.aio.EOF:
            raise StopAsyncIteration
        return self._convert(msg)

    def cancel(self) -> None:
        self._call.cancel()

    async def __aenter__(self) -> "AsyncStreamCall[T]":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.cancel()


class AsyncClient:
    """As ``skald.Client``, for asyncio. Create it inside a running loop;
    use ``async with`` or ``await close()``."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        tenant: Optional[str] = None,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
        *,
        channel: Optional[grpc.aio.Channel] = None,
        options: Sequence[Tuple[str, Any]] = (),
        token: Optional[str] = None,
    ):
        self.target = target
        self.tenant = tenant
        self.timeout = timeout
        self.token = _token(token)
        self._own_channel = channel is None
        self._channel = channel if channel is not None else grpc.aio.insecure_channel(target, options=list(options))
        self._stub = pb_grpc.LogServiceStub(self._channel)

    def with_tenant(self, tenant: Optional[str]) -> "AsyncClient":
        return AsyncClient(self.target, tenant, self.timeout, channel=self._channel, token=self.token)

    async def close(self) -> None:
        if self._own_channel:
            await self._channel.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def _unary(self, method: str, request: Any, convert: Callable[[Any], R]) -> R:
        try:
            reply = await getattr(self._stub, method)(request, timeout=self.timeout, metadata=_metadata(self.tenant, self.token))
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        return convert(reply)

    def _stream(self, method: str, request: Any, convert: Callable[[Any], T], timeout: Optional[float]) -> AsyncStreamCall[T]:
        return AsyncStreamCall(getattr(self._stub, method)(request, timeout=timeout, metadata=_metadata(self.tenant, self.token)), convert)

    # pushing

    async def push_log(
        self,
        labels: Mapping[str, str],
        line: str,
        timestamp: Time = None,
        structured_metadata: Optional[Mapping[str, str]] = None,
    ) -> PushResult:
        return await self._unary("PushLog", cv.req_push_log(labels, line, timestamp, structured_metadata), cv.push_out)

    async def push_log_batch(self, streams: Iterable[StreamLike]) -> PushResult:
        return await self._unary("PushLogBatch", cv.req_push_batch(streams), cv.push_out)

    async def push_log_stream(
        self,
        batches: Union[Iterable[Iterable[StreamLike]], AsyncIterable[Iterable[StreamLike]]],
        timeout: Optional[float] = None,
    ) -> PushResult:
        """Client-streaming push from a (sync or async) iterable of batches."""

        async def requests() -> AsyncIterator[pb.PushLogBatchRequest]:
            if hasattr(batches, "__aiter__"):
                async for b in batches:  # type: ignore[union-attr]
                    yield cv.req_push_batch(b)
            else:
                for b in batches:  # type: ignore[union-attr]
                    yield cv.req_push_batch(b)

        try:
            reply = await self._stub.PushLogStream(requests(), timeout=timeout, metadata=_metadata(self.tenant, self.token))
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        return cv.push_out(reply)

    async def push_simple_log(
        self,
        message: str,
        service: str,
        level: str = "",
        labels: Optional[Mapping[str, str]] = None,
        fields: Optional[Mapping[str, str]] = None,
        timestamp: Time = None,
    ) -> PushResult:
        return await self._unary(
            "PushSimpleLog", cv.req_push_simple(message, service, level, labels, fields, timestamp), cv.push_out
        )

    # querying

    async def query_logs(
        self, query: str, start: Time = None, end: Time = None, limit: int = 100, direction: Direction = Direction.BACKWARD
    ) -> QueryResult:
        return await self._unary("QueryLogs", cv.req_query_logs(query, start, end, limit, direction), cv.query_logs_out)

    async def query_range(self, query: str, start: Time = None, end: Time = None, step_ns: int = 0) -> RangeResult:
        return await self._unary("QueryRange", cv.req_query_range(query, start, end, step_ns), cv.query_range_out)

    def tail_logs(
        self, query: str, limit: int = 100, start: Time = None, delay_for_seconds: int = 0, timeout: Optional[float] = None
    ) -> AsyncStreamCall[TailEvent]:
        return self._stream("TailLogs", cv.req_tail(query, limit, start, delay_for_seconds), cv.tail_out, timeout)

    async def query_stats(self, query: str, start: Time = None, end: Time = None, run_limit: int = 0) -> QueryStatsResult:
        return await self._unary("QueryStats", cv.req_query_stats(query, start, end, run_limit), cv.query_stats_out)

    # labels

    async def get_labels(self, start: Time = None, end: Time = None, query: str = "") -> List[str]:
        return await self._unary("GetLabels", cv.req_labels(start, end, query), cv.labels_names_out)

    async def get_label_values(self, name: str, start: Time = None, end: Time = None, query: str = "") -> List[str]:
        return await self._unary("GetLabelValues", cv.req_label_values(name, start, end, query), cv.label_values_out)

    async def validate_labels(self, labels: Union[Mapping[str, str], Sequence[Tuple[str, str]]]) -> LabelValidation:
        return await self._unary("ValidateLabels", cv.req_validate(labels), cv.validate_out)

    # streams

    async def list_streams(
        self, selector: str = "", start: Time = None, end: Time = None, page_size: int = 0, page_token: str = ""
    ) -> StreamPage:
        return await self._unary(
            "ListStreams", cv.req_list_streams(selector, start, end, page_size, page_token), cv.list_streams_out
        )

    async def iter_streams(
        self, selector: str = "", start: Time = None, end: Time = None, page_size: int = 0
    ) -> AsyncIterator[StreamSummary]:
        token = ""
        while True:
            page = await self.list_streams(selector, start, end, page_size, token)
            for s in page.streams:
                yield s
            token = page.next_page_token
            if not token:
                return

    async def get_stream_info(self, labels: Optional[Mapping[str, str]] = None, stream_id: str = "") -> StreamInfo:
        return await self._unary("GetStreamInfo", cv.req_stream_info(labels, stream_id), cv.stream_info_out)

    async def delete_stream(self, query: str, start: Time = None, end: Time = None) -> DeleteResult:
        return await self._unary("DeleteStream", cv.req_delete(query, start, end), cv.delete_out)

    # export

    def export_logs(
        self, query: str, start: Time = None, end: Time = None, chunk_size: int = 0, cursor: str = "", timeout: Optional[float] = None
    ) -> AsyncStreamCall[ExportChunk]:
        return self._stream("ExportLogs", cv.req_export(query, start, end, chunk_size, cursor), cv.export_chunk_out, timeout)

    async def start_export(
        self,
        query: str,
        path: str = "",
        format: ExportFormat = ExportFormat.NDJSON,
        gzip: bool = False,
        start: Time = None,
        end: Time = None,
    ) -> str:
        req = cv.req_export(query, start, end, 0, "", (path, format, gzip))
        async with self._stream("ExportLogs", req, cv.export_chunk_out, self.timeout) as chunks:
            async for chunk in chunks:
                if chunk.job_id:
                    return chunk.job_id
        raise SkaldError("the server started no export job")

    async def get_export_status(self, job_id: str) -> ExportStatus:
        return await self._unary("GetExportStatus", pb.GetExportStatusRequest(job_id=job_id), cv.export_status_out)

    async def wait_export(self, job_id: str, timeout: float = 60.0, interval: float = 0.1) -> ExportStatus:
        deadline = time.monotonic() + timeout
        while True:
            status = await self.get_export_status(job_id)
            if status.finished or time.monotonic() >= deadline:
                return status
            await asyncio.sleep(interval)

    # monitoring

    async def get_statistics(self, tenant: str = "") -> Statistics:
        return await self._unary("GetStatistics", pb.GetStatisticsRequest(tenant=tenant), cv.statistics_out)

    async def get_user_quota(self) -> UserQuota:
        return await self._unary("GetUserQuota", pb.GetUserQuotaRequest(), cv.quota_out)

    async def health_check(self) -> Health:
        return await self._unary("HealthCheck", pb.HealthCheckRequest(), cv.health_out)

    # ------------------------------------------------------------ analysis

    async def list_patterns(self, query: str, start: Time = None, end: Time = None, step_ns: int = 0) -> List[LogPattern]:
        """Patterns mined at ingest of the selected streams, most frequent first."""
        return await self._unary("ListPatterns", cv.req_patterns(query, start, end, step_ns), cv.patterns_out)

    async def list_error_groups(
        self, query: str, start: Time = None, end: Time = None, step_ns: int = 0, examples: int = 0
    ) -> List[ErrorGroup]:
        """Error groups of the selected streams; ``is_new`` when first seen in the range."""
        return await self._unary(
            "ListErrorGroups", cv.req_error_groups(query, start, end, step_ns, examples), cv.error_groups_out
        )

    async def list_anomalies(self, query: str, start: Time = None, end: Time = None, window_ns: int = 0) -> Anomalies:
        """Anomalies of the selected streams, strongest first."""
        return await self._unary("ListAnomalies", cv.req_anomalies(query, start, end, window_ns), cv.anomalies_out)

    async def analyze_logs(
        self, query: str, start: Time = None, end: Time = None, max_lines: int = 0, top_patterns: int = 0
    ) -> AnalysisReport:
        """The analysis report of a log query (as ``skald analyze``)."""
        return await self._unary(
            "AnalyzeLogs", cv.req_analyze(query, start, end, max_lines, top_patterns), cv.analyze_out
        )
