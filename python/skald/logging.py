"""``SkaldHandler``: ships ``logging`` records to Skald in batches.

Label discipline (as Loki recommends): a record's stream is the handler's
static labels plus ``level``. No record attribute becomes a label unless its
name is in ``label_allow_list`` (and not in ``label_deny_list``, which always
wins); other ``extra=`` attributes go to structured metadata, which is stored
beside the line but not indexed.

Records are queued and pushed by a background thread with ``push_log_batch``
when ``batch_size`` records are waiting or ``flush_interval`` seconds have
passed. The queue is bounded: when full, new records are dropped and counted
in ``dropped``. ``flush()`` waits until everything queued so far was pushed;
``close()`` flushes and stops the thread.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from .client import Client
from .errors import SkaldError
from .types import Entry, Stream

# Attributes every LogRecord has; anything else came from `extra=`.
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime", "taskName"}
)

_FLUSH = object()
_STOP = object()


class SkaldHandler(logging.Handler):
    def __init__(
        self,
        client: Optional[Client] = None,
        *,
        target: str = "127.0.0.1:9095",
        tenant: Optional[str] = None,
        labels: Optional[Mapping[str, str]] = None,
        label_allow_list: Iterable[str] = (),
        label_deny_list: Iterable[str] = (),
        level_label: str = "level",
        metadata: bool = True,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        max_queue: int = 10_000,
        level: int = logging.NOTSET,
    ):
        super().__init__(level)
        self._own_client = client is None
        self.client = client if client is not None else Client(target, tenant=tenant)
        self.static_labels: Dict[str, str] = dict(labels or {})
        self.label_allow_list = frozenset(label_allow_list)
        self.label_deny_list = frozenset(label_deny_list)
        self.level_label = level_label
        self.metadata = metadata
        self.batch_size = max(1, batch_size)
        self.flush_interval = flush_interval
        self._queue: "queue.Queue[Any]" = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self.dropped = 0  # records dropped because the queue was full
        self.sent = 0  # entries the server accepted
        self.failed = 0  # entries of pushes that failed or were rejected
        self.last_error: Optional[BaseException] = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="skald-log-handler", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ records

    def labels_for(self, record: logging.LogRecord) -> Dict[str, str]:
        labels = dict(self.static_labels)
        if self.level_label:
            labels[self.level_label] = record.levelname.lower()
        for name in self.label_allow_list:
            if name in self.label_deny_list:
                continue
            value = getattr(record, name, None)
            if value is not None:
                labels[name] = str(value)
        for name in self.label_deny_list:
            labels.pop(name, None)
        return labels

    def metadata_for(self, record: logging.LogRecord, labels: Mapping[str, str]) -> Dict[str, str]:
        if not self.metadata:
            return {}
        meta = {"logger": record.name}
        for k, v in vars(record).items():
            if k not in _RECORD_ATTRS and k not in labels and not k.startswith("_"):
                meta[k] = str(v)
        return meta

    def emit(self, record: logging.LogRecord) -> None:
        if self._closed:
            return
        try:
            line = self.format(record)
            labels = self.labels_for(record)
            entry = Entry(int(record.created * 1e9), line, self.metadata_for(record, labels))
            self._queue.put_nowait((labels, entry))
        except queue.Full:
            with self._lock:
                self.dropped += 1
        except Exception:
            self.handleError(record)

    # ------------------------------------------------------------ worker

    def _run(self) -> None:
        pending: List[Tuple[Dict[str, str], Entry]] = []
        waiters: List[threading.Event] = []
        deadline = time.monotonic() + self.flush_interval
        stop = False
        while not stop:
            timeout = max(0.0, deadline - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            if item is _STOP:
                stop = True
            elif isinstance(item, tuple) and len(item) == 2 and item[0] is _FLUSH:
                waiters.append(item[1])
            elif item is not None:
                pending.append(item)
            due = time.monotonic() >= deadline
            if pending and (stop or waiters or due or len(pending) >= self.batch_size):
                self._push(pending)
                pending = []
            if due or not pending:
                deadline = time.monotonic() + self.flush_interval
            for w in waiters:
                w.set()
            waiters = []

    def _push(self, items: List[Tuple[Dict[str, str], Entry]]) -> None:
        streams: Dict[Tuple[Tuple[str, str], ...], Stream] = {}
        for labels, entry in items:
            key = tuple(sorted(labels.items()))
            s = streams.get(key)
            if s is None:
                s = streams[key] = Stream(labels)
            s.entries.append(entry)
        try:
            res = self.client.push_log_batch(list(streams.values()))
            with self._lock:
                self.sent += res.accepted
                self.failed += res.rejected
            if res.rejections:
                self.last_error = SkaldError("; ".join(f"{r.stream}: {r.reason}" for r in res.rejections[:3]))
        except Exception as e:  # never let the worker die
            with self._lock:
                self.failed += len(items)
            self.last_error = e

    # ------------------------------------------------------------ lifecycle

    def flush(self, timeout: Optional[float] = 30.0) -> None:
        """Waits until every record emitted before the call was pushed."""
        if self._closed or not self._thread.is_alive():
            return
        done = threading.Event()
        self._queue.put((_FLUSH, done))
        done.wait(timeout)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._thread.is_alive():
                self._queue.put(_STOP)
                self._thread.join(30.0)
            if self._own_client:
                self.client.close()
        super().close()
