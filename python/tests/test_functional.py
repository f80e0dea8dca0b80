"""Functional suite: every LogService operation through the Python client,
against a real skald binary.

The binary is $SKALD_BIN (default: `skald` on PATH). The server is started
once on free ports with a temporary data directory and stopped at the end.
Each test works in its own label space (a unique `suite` label value) or its
own tenant, so tests do not see each other's data.

Run: SKALD_BIN=path/to/skald python tests/test_functional.py
Prints one line per test and "N passed, M failed" last.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request
import uuid
from typing import Any, List, Optional

import skald
from skald.logging import SkaldHandler

SERVER: Optional[subprocess.Popen] = None
TMP = ""
GRPC = ""
HTTP = ""
LAST_LOG = ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_log() -> str:
    try:
        with open(os.path.join(TMP, "skald.log")) as f:
            return "".join(f.readlines()[-100:])
    except OSError:
        return ""


def setUpModule() -> None:
    global SERVER, TMP, GRPC, HTTP
    binary = os.environ.get("SKALD_BIN") or shutil.which("skald")
    if not binary:
        raise RuntimeError("set SKALD_BIN to the skald binary")
    TMP = tempfile.mkdtemp(prefix="skald-py-")
    http_port = free_port()
    grpc_port = free_port()
    while grpc_port == http_port:
        grpc_port = free_port()
    HTTP = f"127.0.0.1:{http_port}"
    GRPC = f"127.0.0.1:{grpc_port}"
    log = open(os.path.join(TMP, "skald.log"), "w")
    SERVER = subprocess.Popen(
        [binary, "serve", "--data-dir", os.path.join(TMP, "data"), "--http-addr", HTTP, "--grpc-addr", GRPC],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if SERVER.poll() is not None:
            raise RuntimeError(f"skald exited with {SERVER.returncode}:\n{server_log()}")
        try:
            if urllib.request.urlopen(f"http://{HTTP}/ready", timeout=2).status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"skald not ready within 30 s:\n{server_log()}")


def tearDownModule() -> None:
    if SERVER is not None and SERVER.poll() is None:
        SERVER.terminate()
        try:
            SERVER.wait(30)
        except subprocess.TimeoutExpired:
            SERVER.kill()
            SERVER.wait()
    global LAST_LOG
    LAST_LOG = server_log()
    if TMP:
        shutil.rmtree(TMP, ignore_errors=True)


def now_ns() -> int:
    return time.time_ns()


class Base(unittest.TestCase):
    tenant: Optional[str] = None

    def setUp(self) -> None:
        self.id_ = uuid.uuid4().hex[:12]
        self.client = skald.Client(GRPC, tenant=self.tenant, timeout=10)
        self.addCleanup(self.client.close)

    def sel(self, **extra: str) -> str:
        parts = [f'suite="{self.id_}"'] + [f'{k}="{v}"' for k, v in extra.items()]
        return "{" + ", ".join(parts) + "}"

    def labels(self, **extra: str) -> dict:
        return {"suite": self.id_, **extra}


@unittest.skipUnless(
    os.environ.get("SKALD_CROSSCHECK_BIN"),
    "set SKALD_CROSSCHECK_BIN to the Rust client's crosscheck example",
)
class CrossClientTest(Base):
    """What the Rust client (skald-client, over Loki's HTTP API) pushes, this
    client reads over gRPC, and the other way round."""

    def crosscheck(self, *args: str) -> str:
        out = subprocess.run(
            [os.environ["SKALD_CROSSCHECK_BIN"], *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        return out.stdout

    def test_rust_pushes_python_reads(self) -> None:
        self.crosscheck("push", f"http://{HTTP}", self.id_, "25")
        res = self.client.query_logs(
            f'{{app="crosscheck", from="rust"}} |= "{self.id_}"', limit=1000, direction=skald.Direction.FORWARD
        )
        # Each entry's metadata differs, so each comes as its own stream:
        # order by time.
        entries = sorted((e for _, e in res.entries()), key=lambda e: e.timestamp_ns)
        self.assertEqual([e.line for e in entries], [f"rust {self.id_} {i}" for i in range(25)])
        self.assertEqual(entries[3].structured_metadata, {"seq": "3"})

    def test_rust_grpc_pushes_python_reads(self) -> None:
        self.crosscheck("grpc-push", f"http://{GRPC}", self.id_, "25")
        res = self.client.query_logs(
            f'{{app="crosscheck", from="rust-grpc"}} |= "{self.id_}"', limit=1000, direction=skald.Direction.FORWARD
        )
        # Sorted by time: the server groups entries by labels and metadata.
        entries = sorted((e for _, e in res.entries()), key=lambda e: e.timestamp_ns)
        self.assertEqual([e.line for e in entries], [f"rust-grpc {self.id_} {i}" for i in range(25)])
        self.assertEqual([e.structured_metadata for e in entries], [{"seq": str(i)} for i in range(25)])

    def test_python_pushes_rust_grpc_reads(self) -> None:
        t = now_ns() - 1_000_000_000
        lines = [f"python-grpc {self.id_} {i}" for i in range(25)]
        r = self.client.push_log_batch(
            [({"app": "crosscheck", "from": "python-grpc"}, [(t + i, l, {"seq": str(i)}) for i, l in enumerate(lines)])]
        )
        self.assertEqual(r.accepted, 25)
        got = self.crosscheck("grpc-read", f"http://{GRPC}", self.id_).splitlines()
        self.assertEqual(got, [f"{line}\t{i}" for i, line in enumerate(lines)])

    def test_python_pushes_rust_reads(self) -> None:
        t = now_ns()
        lines = [f"python {self.id_} {i}" for i in range(25)]
        r = self.client.push_log_batch([({"app": "crosscheck", "from": "python"}, [(t + i, l) for i, l in enumerate(lines)])])
        self.assertEqual(r.accepted, 25)
        self.assertEqual(self.crosscheck("read", f"http://{HTTP}", self.id_).splitlines(), lines)


class PushTest(Base):
    def test_push_log_then_query(self) -> None:
        t = now_ns()
        r = self.client.push_log(self.labels(app="api"), "hello world", t, {"request_id": "r-1"})
        self.assertEqual((r.accepted, r.rejected), (1, 0))
        self.assertGreater(r.accepted_bytes, 0)
        res = self.client.query_logs(self.sel(app="api"))
        [(labels, entry)] = res.entries()
        self.assertEqual(entry.line, "hello world")
        self.assertEqual(entry.timestamp_ns, t)
        self.assertEqual(entry.structured_metadata, {"request_id": "r-1"})
        self.assertEqual(labels["app"], "api")
        # Same entry again: a duplicate, not a second entry.
        again = self.client.push_log(self.labels(app="api"), "hello world", t, {"request_id": "r-1"})
        self.assertEqual(again.accepted + again.duplicates, 1)
        self.assertEqual(len(self.client.query_logs(self.sel(app="api")).entries()), 1)

    def test_push_log_invalid(self) -> None:
        # Bad label name: either refused outright or counted as rejected.
        try:
            r = self.client.push_log({"bad-name": "x"}, "line")
        except skald.InvalidArgument:
            return
        self.assertEqual(r.accepted, 0)
        self.assertEqual(r.rejected, 1)
        self.assertTrue(r.rejections and r.rejections[0].reason)

    def test_push_log_batch(self) -> None:
        t = now_ns()
        r = self.client.push_log_batch(
            [
                skald.Stream(self.labels(app="a"), [skald.Entry(t, "a1"), skald.Entry(t + 1, "a2")]),
                (self.labels(app="b"), [(t + 2, "b1", {"k": "v"}), "b2"]),
            ]
        )
        self.assertEqual((r.accepted, r.rejected), (4, 0))
        fwd = self.client.query_logs(self.sel(app="a"), direction=skald.Direction.FORWARD)
        self.assertEqual(fwd.lines(), ["a1", "a2"])
        bwd = self.client.query_logs(self.sel(app="a"))
        self.assertEqual(bwd.lines(), ["a2", "a1"])
        self.assertEqual(sorted(self.client.query_logs(self.sel()).lines()), ["a1", "a2", "b1", "b2"])

    def test_push_log_batch_partial(self) -> None:
        # One valid stream, one with an invalid label name: the valid one is stored.
        r = self.client.push_log_batch(
            [(self.labels(app="ok"), ["fine"]), ({"0bad": "x", "suite": self.id_}, ["refused"])]
        )
        self.assertEqual(r.accepted, 1)
        self.assertEqual(r.rejected, 1)
        self.assertEqual(len(r.rejections), 1)
        self.assertEqual(self.client.query_logs(self.sel()).lines(), ["fine"])

    def test_push_reserved_label_name_rejected(self) -> None:
        # The proto reserves names starting with `__`: ValidateLabels reports
        # them as errors and pushes refuse such streams.
        self.assertFalse(self.client.validate_labels({"__reserved": "x"}).valid)
        r = self.client.push_log({"__reserved": "x", "suite": self.id_}, "reserved")
        self.assertEqual((r.accepted, r.rejected), (0, 1))

    def test_push_log_stream(self) -> None:
        t = now_ns()
        batches = ([(self.labels(app="s"), [(t + i, f"msg {i}")])] for i in range(20))
        r = self.client.push_log_stream(batches)
        self.assertEqual(r.messages, 20)
        self.assertEqual(r.accepted, 20)
        res = self.client.query_logs(self.sel(app="s"), limit=100, direction=skald.Direction.FORWARD)
        self.assertEqual(res.lines(), [f"msg {i}" for i in range(20)])

    def test_push_log_stream_invalid(self) -> None:
        r = self.client.push_log_stream([[({"0bad": "x"}, ["nope"])], [(self.labels(), ["yes"])]])
        self.assertEqual(r.messages, 2)
        self.assertEqual((r.accepted, r.rejected), (1, 1))

    def test_push_simple_log(self) -> None:
        r = self.client.push_simple_log(
            "user logged in", service=f"svc-{self.id_}", level="info", labels={"env": "test"}, fields={"user_id": "42"}
        )
        self.assertEqual(r.accepted, 1)
        res = self.client.query_logs(f'{{service="svc-{self.id_}", level="info", env="test"}}')
        [(labels, entry)] = res.entries()
        self.assertEqual(entry.line, "user logged in")
        self.assertEqual(entry.structured_metadata, {"user_id": "42"})

    def test_push_simple_log_invalid(self) -> None:
        with self.assertRaises(skald.InvalidArgument) as cm:
            self.client.push_simple_log("no service", service="")
        self.assertIn("service", cm.exception.details)


class QueryTest(Base):
    def setUp(self) -> None:
        super().setUp()
        t = now_ns() - 10_000_000_000
        self.t0 = t
        streams = []
        for level, n in (("info", 6), ("error", 3)):
            streams.append((self.labels(level=level), [(t + i * 1_000_000, f"{level} line {i}") for i in range(n)]))
        r = self.client.push_log_batch(streams)
        self.assertEqual(r.accepted, 9)

    def test_query_logs_filters_and_limit(self) -> None:
        res = self.client.query_logs(self.sel() + ' |= "error"')
        self.assertEqual(len(res.lines()), 3)
        self.assertTrue(all("error" in line for line in res.lines()))
        self.assertEqual(len(self.client.query_logs(self.sel(), limit=4).lines()), 4)
        self.assertGreaterEqual(res.stats.lines_processed, 3)
        # A time range that excludes everything.
        self.assertEqual(self.client.query_logs(self.sel(), start=1, end=2).lines(), [])

    def test_query_logs_invalid(self) -> None:
        with self.assertRaises(skald.InvalidArgument):
            self.client.query_logs('{suite="x"')
        with self.assertRaises(skald.InvalidArgument):
            self.client.query_logs("")
        with self.assertRaises(skald.ResourceExhausted):
            self.client.query_logs(self.sel(), limit=1_000_000)

    def test_query_range(self) -> None:
        res = self.client.query_range(f"sum by (level) (count_over_time({self.sel()}[1h]))", step_ns=60 * 10**9)
        by_level = {s.labels.get("level"): s for s in res.series}
        self.assertEqual(set(by_level), {"info", "error"})
        self.assertEqual(max(x.value for x in by_level["info"].samples), 6)
        self.assertEqual(max(x.value for x in by_level["error"].samples), 3)

    def test_query_range_invalid(self) -> None:
        with self.assertRaises(skald.InvalidArgument):
            self.client.query_range("sum(rate(")

    def test_query_stats(self) -> None:
        est = self.client.query_stats(self.sel())
        self.assertEqual(est.streams, 2)
        self.assertEqual(est.entries, 9)
        self.assertIsNone(est.run)
        run = self.client.query_stats(self.sel(level="error"), run_limit=100)
        self.assertIsNotNone(run.run)
        assert run.run is not None
        self.assertEqual(run.run.entries_returned, 3)

    def test_query_stats_invalid(self) -> None:
        with self.assertRaises(skald.InvalidArgument):
            self.client.query_stats("not logql")


class TailTest(Base):
    def test_tail_sees_pushed_entry(self) -> None:
        self.client.push_log(self.labels(), "before")
        events: List[skald.TailEvent] = []
        with self.client.tail_logs(self.sel(), limit=10, timeout=20) as tail:

            def push_later() -> None:
                time.sleep(0.5)
                with skald.Client(GRPC, timeout=10) as c:
                    c.push_log(self.labels(), "live entry")

            threading.Thread(target=push_later, daemon=True).start()
            seen: List[str] = []
            for ev in tail:
                events.append(ev)
                seen += [e.line for _, e in ev.entries()]
                if "live entry" in seen:
                    break
        self.assertIn("before", seen)
        self.assertIn("live entry", seen)
        self.assertLess(seen.index("before"), seen.index("live entry"))

    def test_tail_invalid(self) -> None:
        with self.assertRaises(skald.InvalidArgument):
            with self.client.tail_logs("{broken", timeout=10) as tail:
                next(tail)


class LabelsTest(Base):
    def test_labels_and_values(self) -> None:
        key = f"k_{self.id_}"
        self.client.push_log_batch(
            [(self.labels(**{key: "one"}), ["x"]), (self.labels(**{key: "two"}), ["y"])]
        )
        self.assertIn(key, self.client.get_labels())
        self.assertIn("suite", self.client.get_labels(query=self.sel()))
        self.assertEqual(sorted(self.client.get_label_values(key)), ["one", "two"])
        self.assertEqual(self.client.get_label_values(key, query=f'{{{key}="one"}}'), ["one"])
        self.assertEqual(self.client.get_label_values(f"nope_{self.id_}"), [])

    def test_labels_invalid(self) -> None:
        with self.assertRaises(skald.InvalidArgument):
            self.client.get_label_values("")
        with self.assertRaises(skald.InvalidArgument):
            self.client.get_labels(query="{oops")

    def test_validate_labels(self) -> None:
        ok = self.client.validate_labels({"app": "api", "env": "prod"})
        self.assertTrue(ok.valid)
        self.assertEqual(ok.problems, [])
        self.assertIn('app="api"', ok.normalized)
        bad = self.client.validate_labels({"__name": "x", "bad-name": "y", "client_ip": "10.1.2.3"})
        self.assertFalse(bad.valid)
        codes = {(p.name, p.code, p.severity) for p in bad.problems}
        self.assertIn(("__name", "reserved_name", skald.Severity.ERROR), codes)
        self.assertIn(("bad-name", "invalid_name", skald.Severity.ERROR), codes)
        self.assertIn(("client_ip", "high_cardinality", skald.Severity.WARNING), codes)
        # Warnings alone keep the set valid.
        warn = self.client.validate_labels({"request_id": "3f2b8c1e-4d5a-4b6c-9e7f-0a1b2c3d4e5f"})
        self.assertTrue(warn.valid)
        self.assertEqual([p.code for p in warn.warnings], ["high_cardinality"])
        dup = self.client.validate_labels([("a", "1"), ("a", "2")])
        self.assertIn("duplicate_name", [p.code for p in dup.errors])
        empty = self.client.validate_labels({})
        self.assertFalse(empty.valid)
        self.assertIn("no_labels", [p.code for p in empty.problems])


class StreamsTest(Base):
    def test_list_info_delete(self) -> None:
        for app in ("a", "b", "c"):
            self.client.push_log_batch([(self.labels(app=app), [f"{app}-1", f"{app}-2"])])
        page = self.client.list_streams(self.sel())
        self.assertEqual(page.total, 3)
        self.assertEqual(sorted(s.labels["app"] for s in page.streams), ["a", "b", "c"])
        self.assertEqual(page.next_page_token, "")
        paged = list(self.client.iter_streams(self.sel(), page_size=1))
        self.assertEqual(sorted(s.stream_id for s in paged), sorted(s.stream_id for s in page.streams))
        first = self.client.list_streams(self.sel(), page_size=1)
        self.assertEqual(len(first.streams), 1)
        self.assertNotEqual(first.next_page_token, "")

        info = self.client.get_stream_info(self.labels(app="a"))
        self.assertEqual(info.entries, 2)
        self.assertEqual(info.labels, self.labels(app="a"))
        self.assertEqual(len(info.stream_id), 16)
        self.assertLessEqual(info.first_entry_ns, info.last_entry_ns)
        self.assertEqual(self.client.get_stream_info(stream_id=info.stream_id), info)

        d = self.client.delete_stream(self.sel(app="a"))
        self.assertTrue(d.request_id)
        self.assertEqual(d.status, "received")
        self.assertEqual(self.client.query_logs(self.sel(app="a")).lines(), [])
        self.assertEqual(sorted(self.client.query_logs(self.sel()).lines()), ["b-1", "b-2", "c-1", "c-2"])

    def test_delete_with_line_filter(self) -> None:
        self.client.push_log_batch([(self.labels(), ["keep me", "password=hunter2"])])
        self.client.delete_stream(self.sel() + ' |= "password"')
        self.assertEqual(self.client.query_logs(self.sel()).lines(), ["keep me"])

    def test_streams_invalid(self) -> None:
        with self.assertRaises(skald.NotFound):
            self.client.get_stream_info({"suite": self.id_, "missing": "yes"})
        with self.assertRaises(skald.NotFound):
            self.client.get_stream_info(stream_id="0123456789abcdef")
        with self.assertRaises(skald.InvalidArgument):
            self.client.get_stream_info(stream_id="not-hex")
        with self.assertRaises(skald.InvalidArgument):
            self.client.list_streams("{bad")
        with self.assertRaises(skald.InvalidArgument):
            self.client.delete_stream("")


class ExportTest(Base):
    N = 25

    def setUp(self) -> None:
        super().setUp()
        t = now_ns() - 5_000_000_000
        self.t0 = t
        r = self.client.push_log_batch(
            [(self.labels(app="x"), [(t + i * 2, f"x{i}") for i in range(0, self.N, 2)]),
             (self.labels(app="y"), [(t + i * 2, f"x{i}") for i in range(1, self.N, 2)])]
        )
        self.assertEqual(r.accepted, self.N)

    def test_export_stream_and_resume(self) -> None:
        chunks = list(self.client.export_logs(self.sel(), chunk_size=10))
        self.assertEqual(len(chunks), 3)
        self.assertTrue(chunks[-1].done)
        self.assertFalse(any(c.done for c in chunks[:-1]))
        self.assertEqual(chunks[-1].entries_sent, self.N)
        entries = sorted((e.timestamp_ns, e.line) for c in chunks for _, e in c.entries())
        self.assertEqual([line for _, line in entries], [f"x{i}" for i in range(self.N)])
        # Oldest first within and across chunks.
        ts = [e.timestamp_ns for c in chunks for s in c.streams for e in s.entries]
        per_chunk_min_max = [(min(e.timestamp_ns for _, e in c.entries()), max(e.timestamp_ns for _, e in c.entries())) for c in chunks]
        for (_, hi), (lo, _) in zip(per_chunk_min_max, per_chunk_min_max[1:]):
            self.assertLess(hi, lo)
        self.assertEqual(len(ts), self.N)
        # Resume after the first chunk: the rest, nothing repeated.
        rest = list(self.client.export_logs(self.sel(), chunk_size=10, cursor=chunks[0].cursor))
        self.assertEqual(sum(len(c.entries()) for c in rest), self.N - 10)

    def test_export_job(self) -> None:
        job = self.client.start_export(self.sel(), path=f"suite-{self.id_}.ndjson")
        self.assertTrue(job)
        st = self.client.wait_export(job, timeout=30)
        self.assertEqual(st.state, skald.ExportState.COMPLETED, st.error)
        self.assertEqual(st.entries, self.N)
        self.assertEqual(st.percent, 100.0)
        self.assertGreater(st.bytes, 0)
        self.assertGreater(st.finished_ns, 0)
        self.assertTrue(os.path.isfile(st.path), st.path)
        with open(st.path) as f:
            lines = [json.loads(x) for x in f if x.strip()]
        self.assertEqual(len(lines), self.N)

    def test_export_invalid(self) -> None:
        with self.assertRaises(skald.InvalidArgument):
            list(self.client.export_logs("{nope"))
        with self.assertRaises(skald.NotFound):
            self.client.get_export_status("no-such-job")


class MonitoringTest(Base):
    def setUp(self) -> None:
        self.tenant = f"tenant-{uuid.uuid4().hex[:8]}"
        super().setUp()

    def test_statistics(self) -> None:
        self.client.push_log_batch([(self.labels(a="1"), ["x", "y"]), (self.labels(a="2"), ["z"])])
        st = self.client.get_statistics(self.tenant)
        [mine] = [t for t in st.tenants if t.tenant == self.tenant]
        self.assertEqual((mine.streams, mine.entries), (2, 3))
        self.assertGreaterEqual(mine.bytes_raw, 3)
        everyone = self.client.get_statistics()
        self.assertIn(self.tenant, [t.tenant for t in everyone.tenants])
        assert everyone.total is not None
        self.assertGreaterEqual(everyone.total.entries, 3)

    def test_user_quota(self) -> None:
        self.client.push_log(self.labels(), "one")
        q = self.client.get_user_quota()
        self.assertEqual(q.tenant, self.tenant)
        self.assertEqual(q.max_query_limit, 5000)
        self.assertEqual(q.max_line_bytes, 256_000)
        self.assertEqual((q.streams, q.entries), (1, 1))

    def test_health(self) -> None:
        h = self.client.health_check()
        self.assertTrue(h.serving)
        self.assertTrue(h.version)
        self.assertEqual(h.storage_status, "ok")
        self.assertEqual(h.corrupt_files, 0)

    def test_tenant_isolation(self) -> None:
        self.client.push_log(self.labels(), "mine")
        other = self.client.with_tenant(self.tenant + "-other")
        self.assertEqual(other.query_logs(self.sel()).lines(), [])
        self.assertEqual(self.client.query_logs(self.sel()).lines(), ["mine"])


class ErrorsTest(Base):
    def test_unavailable(self) -> None:
        with skald.Client(f"127.0.0.1:{free_port()}", timeout=2) as c:
            with self.assertRaises(skald.Unavailable):
                c.health_check()

    def test_hierarchy(self) -> None:
        for cls in (skald.InvalidArgument, skald.NotFound, skald.ResourceExhausted, skald.Unavailable):
            self.assertTrue(issubclass(cls, skald.SkaldError))
        try:
            self.client.query_logs("{")
        except skald.SkaldError as e:
            self.assertIsInstance(e, skald.InvalidArgument)
            self.assertEqual(e.code.name, "INVALID_ARGUMENT")  # type: ignore[union-attr]


class LoggingHandlerTest(Base):
    def test_handler_labels_and_flush(self) -> None:
        h = SkaldHandler(
            target=GRPC,
            labels={"suite": self.id_, "service": "py"},
            label_allow_list=["region"],
            flush_interval=60,  # only flush() sends
        )
        log = logging.getLogger(f"skald-test-{self.id_}")
        log.propagate = False
        log.setLevel(logging.DEBUG)
        log.addHandler(h)
        try:
            log.info("started %s", "ok", extra={"region": "eu", "request_id": "r-9"})
            log.error("failed")
            for i in range(30):
                log.debug("tick %d", i)
            h.flush()
            self.assertEqual(h.sent, 32)
            res = self.client.query_logs(self.sel(), limit=100)
            self.assertEqual(len(res.lines()), 32)
            [(labels, entry)] = self.client.query_logs(self.sel(level="info")).entries()
            self.assertEqual(entry.line, "started ok")
            self.assertEqual(entry.structured_metadata.get("request_id"), "r-9")
            streams = self.client.list_streams(self.sel()).streams
            # Stream labels: static + level + the allow-listed region only.
            for s in streams:
                self.assertLessEqual(set(s.labels), {"suite", "service", "level", "region"})
            self.assertEqual(
                sorted(s.labels["level"] for s in streams), ["debug", "error", "info"]
            )
            log.warning("last words")
        finally:
            log.removeHandler(h)
            h.close()  # drains
        self.assertEqual(self.client.query_logs(self.sel(level="warning")).lines(), ["last words"])
        self.assertEqual(h.dropped, 0)


class AsyncClientTest(Base):
    """Every operation through ``AsyncClient``, valid and invalid input."""

    def run_async(self, coro: Any) -> Any:
        return asyncio.run(coro)

    def test_async_push_and_query(self) -> None:
        async def run() -> None:
            async with skald.AsyncClient(GRPC, timeout=10) as c:
                t = now_ns() - 5_000_000_000
                r = await c.push_log(self.labels(level="info"), "async one", t, {"request_id": "r-1"})
                self.assertEqual((r.accepted, r.rejected), (1, 0))
                with self.assertRaises(skald.InvalidArgument) as cm:
                    await c.push_log({"bad-name": "x"}, "refused")
                self.assertIn("bad-name", cm.exception.details)

                r = await c.push_log_batch(
                    [(self.labels(level="error"), [(t + 1, "async err 1"), (t + 2, "async err 2")]),
                     ({"0bad": "x"}, ["refused"])]
                )
                self.assertEqual((r.accepted, r.rejected), (2, 1))

                async def batches():
                    for i in range(3):
                        yield [(self.labels(level="info"), [(t + 10 + i, f"async stream {i}")])]

                r = await c.push_log_stream(batches())
                self.assertEqual((r.messages, r.accepted), (3, 3))
                r = await c.push_log_stream([[({"0bad": "x"}, ["no"])]])
                self.assertEqual((r.messages, r.accepted, r.rejected), (1, 0, 1))

                r = await c.push_simple_log("async simple", service=f"svc-{self.id_}", level="warn", fields={"k": "v"})
                self.assertEqual(r.accepted, 1)
                with self.assertRaises(skald.InvalidArgument) as cm:
                    await c.push_simple_log("no service", service="")
                self.assertIn("service", cm.exception.details)

                res = await c.query_logs(self.sel(), direction=skald.Direction.FORWARD)
                by_time = [e.line for _, e in sorted(res.entries(), key=lambda le: le[1].timestamp_ns)]
                self.assertEqual(
                    by_time, ["async one", "async err 1", "async err 2"] + [f"async stream {i}" for i in range(3)]
                )
                [(labels, entry)] = (await c.query_logs(self.sel() + ' |= "one"')).entries()
                self.assertEqual((entry.timestamp_ns, entry.structured_metadata), (t, {"request_id": "r-1"}))
                simple = await c.query_logs(f'{{service="svc-{self.id_}", level="warn"}}')
                self.assertEqual(simple.lines(), ["async simple"])
                with self.assertRaises(skald.InvalidArgument):
                    await c.query_logs("{")
                with self.assertRaises(skald.ResourceExhausted):
                    await c.query_logs(self.sel(), limit=1_000_000)

                rng = await c.query_range(f"sum by (level) (count_over_time({self.sel()}[1h]))", step_ns=60 * 10**9)
                peaks = {s.labels.get("level"): max(x.value for x in s.samples) for s in rng.series}
                self.assertEqual(peaks, {"info": 4, "error": 2})
                with self.assertRaises(skald.InvalidArgument):
                    await c.query_range("sum(rate(")

                est = await c.query_stats(self.sel())
                self.assertEqual((est.streams, est.entries), (2, 6))
                run = await c.query_stats(self.sel(level="error"), run_limit=100)
                assert run.run is not None
                self.assertEqual(run.run.entries_returned, 2)
                with self.assertRaises(skald.InvalidArgument):
                    await c.query_stats("not logql")

        self.run_async(run())

    def test_async_tail(self) -> None:
        async def run() -> None:
            async with skald.AsyncClient(GRPC, timeout=10) as c:
                await c.push_log(self.labels(), "async before")
                async with c.tail_logs(self.sel(), limit=10, timeout=20) as tail:

                    async def push_later() -> None:
                        await asyncio.sleep(0.3)
                        await c.push_log(self.labels(), "async live")

                    task = asyncio.ensure_future(push_later())
                    seen: List[str] = []
                    async for ev in tail:
                        seen += [e.line for _, e in ev.entries()]
                        if "async live" in seen:
                            break
                    await task
                self.assertEqual(seen, ["async before", "async live"])
                with self.assertRaises(skald.InvalidArgument):
                    async with c.tail_logs("{broken", timeout=10) as bad:
                        async for _ in bad:
                            pass

        self.run_async(run())

    def test_async_labels_and_streams(self) -> None:
        async def run() -> None:
            async with skald.AsyncClient(GRPC, timeout=10) as c:
                key = f"k_{self.id_}"
                for app in ("a", "b"):
                    await c.push_log_batch([(self.labels(app=app, **{key: app}), [f"{app}-1", f"{app}-2"])])
                self.assertIn(key, await c.get_labels())
                self.assertEqual(sorted(await c.get_label_values(key)), ["a", "b"])
                with self.assertRaises(skald.InvalidArgument):
                    await c.get_label_values("")
                with self.assertRaises(skald.InvalidArgument):
                    await c.get_labels(query="{oops")
                self.assertTrue((await c.validate_labels({"a": "b"})).valid)
                bad = await c.validate_labels({"__name": "x"})
                self.assertFalse(bad.valid)
                self.assertIn("reserved_name", [p.code for p in bad.errors])

                page = await c.list_streams(self.sel())
                self.assertEqual(page.total, 2)
                paged = [s.stream_id async for s in c.iter_streams(self.sel(), page_size=1)]
                self.assertEqual(sorted(paged), sorted(s.stream_id for s in page.streams))
                with self.assertRaises(skald.InvalidArgument):
                    await c.list_streams("{bad")
                info = await c.get_stream_info(self.labels(app="a", **{key: "a"}))
                self.assertEqual(info.entries, 2)
                self.assertEqual(await c.get_stream_info(stream_id=info.stream_id), info)
                with self.assertRaises(skald.NotFound):
                    await c.get_stream_info(stream_id="0123456789abcdef")
                with self.assertRaises(skald.InvalidArgument):
                    await c.get_stream_info(stream_id="not-hex")
                d = await c.delete_stream(self.sel(app="a"))
                self.assertEqual(d.status, "received")
                self.assertEqual(sorted((await c.query_logs(self.sel())).lines()), ["b-1", "b-2"])
                with self.assertRaises(skald.InvalidArgument):
                    await c.delete_stream("")

        self.run_async(run())

    def test_async_export_and_monitoring(self) -> None:
        async def run() -> None:
            tenant = f"tenant-{uuid.uuid4().hex[:8]}"
            async with skald.AsyncClient(GRPC, tenant=tenant, timeout=10) as c:
                t = now_ns() - 5_000_000_000
                await c.push_log_batch([(self.labels(), [(t + i, f"e{i}") for i in range(12)])])
                chunks = [ch async for ch in c.export_logs(self.sel(), chunk_size=5)]
                self.assertEqual(len(chunks), 3)
                self.assertTrue(chunks[-1].done)
                self.assertEqual([e.line for ch in chunks for _, e in ch.entries()], [f"e{i}" for i in range(12)])
                rest = [e.line async for ch in c.export_logs(self.sel(), chunk_size=5, cursor=chunks[0].cursor) for _, e in ch.entries()]
                self.assertEqual(rest, [f"e{i}" for i in range(5, 12)])
                with self.assertRaises(skald.InvalidArgument):
                    async for _ in c.export_logs("{nope"):
                        pass
                job = await c.start_export(self.sel(), path=f"async-{self.id_}.ndjson")
                st = await c.wait_export(job, timeout=30)
                self.assertEqual(st.state, skald.ExportState.COMPLETED, st.error)
                self.assertEqual(st.entries, 12)
                self.assertEqual((await c.get_export_status(job)).job_id, job)
                with self.assertRaises(skald.NotFound):
                    await c.get_export_status("no-such-job")

                stats = await c.get_statistics(tenant)
                [mine] = stats.tenants
                self.assertEqual((mine.tenant, mine.streams, mine.entries), (tenant, 1, 12))
                with self.assertRaises(skald.InvalidArgument):
                    await c.get_statistics("a/b")
                q = await c.get_user_quota()
                self.assertEqual((q.tenant, q.entries, q.max_query_limit), (tenant, 12, 5000))
                with self.assertRaises(skald.InvalidArgument):
                    await c.with_tenant("a/b").get_user_quota()
                h = await c.health_check()
                self.assertTrue(h.serving)
                self.assertEqual(h.storage_status, "ok")
            async with skald.AsyncClient(f"127.0.0.1:{free_port()}", timeout=2) as gone:
                with self.assertRaises(skald.Unavailable):
                    await gone.health_check()

        self.run_async(run())


class AnalysisTest(Base):
    """Patterns, error groups, anomalies and the report (sync and async)."""

    def setUp(self) -> None:
        self.tenant = f"analysis-{uuid.uuid4().hex[:8]}"
        super().setUp()
        # Thirty minutes of steady lines and a refused connection a minute,
        # then a burst of a new exception four minutes ago.
        now = now_ns()
        minute = 60 * 1_000_000_000
        entries = []
        for m in range(30, 5, -1):
            for i in range(10):
                entries.append((now - m * minute + i * 1_000_000_000, f"level=info GET /items/{i} took {10 + i}ms"))
            entries.append((now - m * minute + 30_000_000_000, f"level=error db 10.0.0.{m}:5432 connection refused"))
        for i in range(8):
            entries.append((now - 4 * minute + i * 1_000_000_000, f"ValueError: bad input {i}"))
        self.total = len(entries)
        r = self.client.push_log_batch([(self.labels(app="py"), entries)])
        self.assertEqual(r.accepted, self.total)
        self.now = now

    def test_patterns_groups_anomalies_and_report(self) -> None:
        sel = self.sel()
        patterns = self.client.list_patterns(sel)
        self.assertEqual(patterns[0].pattern, "level=<_> GET <_> took <_>")
        self.assertEqual(patterns[0].count, 250)
        self.assertEqual(sum(c for _, c in patterns[0].samples), 250)

        groups = self.client.list_error_groups(sel, start=self.now - 400 * 1_000_000_000, examples=1)
        by = {g.category: g for g in groups}
        self.assertEqual(by["exception"].exception, "ValueError")
        self.assertEqual(by["exception"].count, 8)
        self.assertTrue(by["exception"].is_new)
        self.assertFalse(by["connection_refused"].is_new)
        self.assertEqual(by["exception"].streams[0][0]["app"], "py")
        self.assertEqual(len(by["exception"].examples), 1)

        found = self.client.list_anomalies(sel, window_ns=60 * 1_000_000_000)
        self.assertEqual(found.window_ns, 60 * 1_000_000_000)
        kinds = {a.kind for a in found.anomalies}
        self.assertIn("new_pattern", kinds, found)
        new = [a for a in found.anomalies if a.kind == "new_pattern"][0]
        self.assertIn("ValueError", new.pattern)
        self.assertEqual(new.baseline.source, "none")

        report = self.client.analyze_logs(sel, top_patterns=3)
        self.assertEqual(report.lines, self.total)
        self.assertEqual(report.error_lines, 25 + 8)
        self.assertAlmostEqual(report.error_rate, 33 / self.total)
        took = report.patterns[0].numbers[0]
        self.assertEqual((took.name, took.unit, took.p99), ("took", "ms", 19.0))
        self.assertEqual(sum(h.lines for h in report.hourly), self.total)
        self.assertEqual(report.anomaly_count, len(report.anomalies))

        async def run() -> None:
            async with skald.AsyncClient(GRPC, tenant=self.tenant, timeout=10) as c:
                self.assertEqual((await c.list_patterns(sel))[0].count, 250)
                self.assertEqual(len(await c.list_error_groups(sel)), 2)
                self.assertGreater((await c.list_anomalies(sel)).windows_judged, 0)
                self.assertEqual((await c.analyze_logs(sel)).lines, self.total)
                with self.assertRaises(skald.InvalidArgument):
                    await c.analyze_logs("{")

        asyncio.run(run())

    def test_analysis_invalid(self) -> None:
        with self.assertRaises(skald.InvalidArgument) as cm:
            self.client.list_patterns("{app=")
        self.assertIn("query", cm.exception.details)
        with self.assertRaises(skald.ResourceExhausted):
            self.client.list_error_groups(self.sel(), start=1)
        with self.assertRaises(skald.InvalidArgument):
            self.client.list_anomalies(self.sel(), window_ns=-1)
        with self.assertRaises(skald.InvalidArgument):
            self.client.analyze_logs('sum(rate({app="py"}[1m]))')
        with self.assertRaises(skald.ResourceExhausted):
            self.client.analyze_logs(self.sel(), max_lines=10**9)
        other = self.client.with_tenant(self.tenant + "-other")
        self.assertEqual(other.list_error_groups(self.sel()), [])
        self.assertEqual(other.list_patterns('{app="none"}'), [])


def main() -> int:
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    start = time.monotonic()
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    failed = len(result.failures) + len(result.errors)
    passed = result.testsRun - failed - len(result.skipped)
    if failed and LAST_LOG:
        print("----- skald log (tail) -----\n" + LAST_LOG, file=sys.stderr)
    print(f"suite took {time.monotonic() - start:.1f} s")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and result.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main())


class AuthTest(unittest.TestCase):
    """A server started with --auth: the client sends its token (argument
    or SKALD_TOKEN) and is held to the token's tenant and role."""

    def setUp(self) -> None:
        self.binary = os.environ.get("SKALD_BIN") or shutil.which("skald") or ""
        self.tmp = tempfile.mkdtemp(prefix="skald-py-auth-")
        self.data = os.path.join(self.tmp, "data")
        http, grpc_port = free_port(), free_port()
        self.grpc = f"127.0.0.1:{grpc_port}"
        self.server = subprocess.Popen(
            [self.binary, "serve", "--auth", "--data-dir", self.data,
             "--http-addr", f"127.0.0.1:{http}", "--grpc-addr", self.grpc],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{http}/ready", timeout=2).status == 200:
                    break
            except OSError:
                pass
            self.assertLess(time.monotonic(), deadline, "server not ready")
            time.sleep(0.1)

    def tearDown(self) -> None:
        self.server.terminate()
        self.server.wait(30)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def token(self, tenant: str, role: str) -> str:
        out = subprocess.run(
            [self.binary, "token", "create", "--data-dir", self.data, "--tenant", tenant, "--role", role],
            check=True, capture_output=True, text=True,
        ).stdout
        self.assertEqual(len(out.splitlines()), 1)
        return out.strip()

    def test_token_is_sent_and_bound_to_its_tenant_and_role(self) -> None:
        admin = self.token("py-auth", "admin")
        read = self.token("py-auth", "read")
        time.sleep(1.5)  # the server re-reads tokens.json within a second
        with skald.Client(self.grpc, timeout=10) as anonymous:
            with self.assertRaises(skald.Unauthenticated):
                anonymous.get_labels()
        with skald.Client(self.grpc, timeout=10, token=admin) as c:
            c.push_log({"app": "py"}, "hello")
            self.assertEqual(c.query_logs('{app="py"}').lines(), ["hello"])
            with self.assertRaises(skald.PermissionDenied):
                c.with_tenant("someone-else").get_labels()
        os.environ["SKALD_TOKEN"] = read
        try:
            with skald.Client(self.grpc, timeout=10) as c:
                self.assertEqual(c.query_logs('{app="py"}').lines(), ["hello"])
                with self.assertRaises(skald.PermissionDenied):
                    c.push_log({"app": "py"}, "refused")
        finally:
            del os.environ["SKALD_TOKEN"]
