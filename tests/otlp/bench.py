"""OTLP/HTTP ingest rate of a running Skald: pushes pre-encoded
ExportLogsServiceRequest bodies (protobuf, the OpenTelemetry SDK's own
message classes) with concurrent clients and reports records/s and MB/s.

Usage: tests/otlp/.venv/bin/python tests/otlp/bench.py URL [requests] [records] [clients]
(defaults: 200 requests of 1000 records, 4 clients). The bodies are built
before the clock starts; what is timed is the server's decode, mapping,
discovery and durable store, plus the HTTP round trips.
"""

import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource


def kv(k, v):
    return KeyValue(key=k, value=AnyValue(string_value=v))


def body(i, records, t0):
    recs = []
    for j in range(records):
        n = i * records + j
        recs.append(
            LogRecord(
                time_unix_nano=t0 + n * 1000,
                observed_time_unix_nano=t0 + n * 1000,
                severity_number=9 + (n % 3) * 4,
                severity_text=["INFO", "WARN", "ERROR"][n % 3],
                body=AnyValue(string_value=f"GET /api/v1/items/{n} 200 {n % 977}ms user=u{n % 101}"),
                attributes=[kv("http.method", "GET"), kv("http.route", "/api/v1/items/{id}"), kv("user.id", f"u{n % 101}")],
                trace_id=n.to_bytes(16, "big"),
                span_id=(n + 1).to_bytes(8, "big"),
            )
        )
    req = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(
                    attributes=[
                        kv("service.name", f"bench-{i % 8}"),
                        kv("deployment.environment", "bench"),
                        kv("host.name", f"host-{i % 4}"),
                    ]
                ),
                scope_logs=[ScopeLogs(scope=InstrumentationScope(name="bench", version="1"), log_records=recs)],
            )
        ]
    )
    return req.SerializeToString()


def main():
    url = sys.argv[1].rstrip("/") + "/otlp/v1/logs"
    requests = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    records = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    clients = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    t0 = time.time_ns() - 3600 * 10**9
    bodies = [body(i, records, t0) for i in range(requests)]
    total_bytes = sum(len(b) for b in bodies)

    def push(b):
        req = urllib.request.Request(url, data=b, method="POST")
        req.add_header("Content-Type", "application/x-protobuf")
        req.add_header("X-Scope-OrgID", "otlp-bench")
        with urllib.request.urlopen(req, timeout=120) as r:
            if r.status != 200:
                raise RuntimeError(f"status {r.status}")

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(push, bodies))
    took = time.perf_counter() - start
    n = requests * records
    print(
        f"{n} records in {requests} requests ({total_bytes / 1e6:.1f} MB protobuf), {clients} clients: "
        f"{took:.2f} s, {n / took:,.0f} records/s, {total_bytes / took / 1e6:.1f} MB/s"
    )


if __name__ == "__main__":
    main()
