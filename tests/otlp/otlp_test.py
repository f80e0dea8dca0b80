"""The real OpenTelemetry Python SDK against a running Skald.

Logs go through the standard `logging` module and the SDK's LoggingHandler,
inside spans, to
  - the OTLP/HTTP exporter (protobuf) on POST /otlp/v1/logs,
  - the OTLP gRPC exporter on the gRPC port (LogsService/Export),
  - and, as OTLP/JSON (lowerCamelCase, hex ids, gzip), the very request the
    SDK builds, re-encoded as the OTLP/JSON specification says,
each as its own tenant. Every line is read back with LogQL, including
`| trace_id="..."`, and checked for Loki 3's mapping (stream labels from
resource attributes, structured metadata for the rest, detected_level).
Then bad payloads, tenant isolation and the Drilldown endpoints.

Environment: SKALD_URL (http://host:port), SKALD_GRPC (host:port).
Prints "N passed, M failed" last; exits non-zero when anything failed.
"""

import base64
import gzip
import json
import logging
import os
import sys
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
import uuid

from google.protobuf import json_format
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

URL = os.environ["SKALD_URL"]
GRPC = os.environ["SKALD_GRPC"]
RUN = uuid.uuid4().hex[:8]
tracer = TracerProvider().get_tracer("otlp-test")


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)


def http(method, path, tenant, body=None, headers=None, params=None):
    url = URL + path
    if params:
        url += "?" + urllib.parse.urlencode(params)
    req = urllib.request.Request(url, data=body, method=method)
    req.add_header("X-Scope-OrgID", tenant)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def get_json(path, tenant, params, categorize=False):
    headers = {"X-Loki-Response-Encoding-Flags": "categorize-labels"} if categorize else {}
    status, body = http("GET", path, tenant, headers=headers, params=params)
    check(status == 200, f"GET {path} {params}: {status} {body[:300]!r}")
    return json.loads(body)


def query(tenant, q, categorize=True):
    """[(stream labels, line, structured metadata)] of a log query over the last hour."""
    now = time.time_ns()
    params = {"query": q, "start": now - 3600 * 10**9, "end": now + 10**9, "limit": 1000, "direction": "forward"}
    data = get_json("/loki/api/v1/query_range", tenant, params, categorize)["data"]
    out = []
    for s in data["result"]:
        for v in s["values"]:
            meta = v[2].get("structuredMetadata", {}) if len(v) > 2 else {}
            out.append((s["stream"], v[1], meta))
    return out


def wait_query(tenant, q, n, categorize=True):
    """Polls until the query has n lines (exports are acknowledged after the
    store has them, so one try is normally enough)."""
    deadline = time.time() + 20
    while True:
        got = query(tenant, q, categorize)
        if len(got) >= n or time.time() > deadline:
            return got
        time.sleep(0.2)


def emit(exporter, service, tenant_note, lines):
    """Logs `lines` through LoggingHandler inside one span; returns the
    trace id (hex) and the records' extra attribute value."""
    provider = LoggerProvider(
        resource=Resource.create(
            {
                "service.name": service,
                "deployment.environment": "ci",
                "host.name": "test-host",
                "k8s.namespace.name": "otlp-ns",
            }
        )
    )
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = logging.getLogger(f"otlp.{service}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = LoggingHandler(level=logging.DEBUG, logger_provider=provider)
    logger.addHandler(handler)
    with tracer.start_as_current_span(f"span-{tenant_note}") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        span_id = format(span.get_span_context().span_id, "016x")
        for level, line in lines:
            logger.log(level, line, extra={"user.id": "u-42", "retries": 3})
    provider.force_flush()
    logger.removeHandler(handler)
    provider.shutdown()
    return trace_id, span_id


def check_mapping(got, service, trace_id, span_id, levels):
    for stream, line, meta in got:
        check(stream.get("service_name") == service, f"service_name label: {stream}")
        check(stream.get("deployment_environment") == "ci", f"deployment_environment label: {stream}")
        check(stream.get("k8s_namespace_name") == "otlp-ns", f"k8s_namespace_name label: {stream}")
        check("host_name" not in stream, f"host.name must be metadata, not a label: {stream}")
        check(meta.get("host_name") == "test-host", f"host_name metadata: {meta}")
        check(meta.get("trace_id") == trace_id, f"trace_id {meta.get('trace_id')} != {trace_id}")
        check(meta.get("span_id") == span_id, f"span_id {meta.get('span_id')} != {span_id}")
        check(meta.get("user_id") == "u-42", f"user_id metadata: {meta}")
        check(meta.get("retries") == "3", f"retries metadata: {meta}")
        check(meta.get("scope_name", "").startswith("otlp."), f"scope_name metadata: {meta}")
        check("severity_number" in meta, f"severity_number metadata: {meta}")
    got_levels = sorted((m.get("severity_text"), m.get("detected_level")) for _, _, m in got)
    check(got_levels == sorted(levels), f"severity_text/detected_level {got_levels} != {sorted(levels)}")


def test_http_protobuf():
    service = f"otlp-http-{RUN}"
    exporter = HttpExporter(endpoint=f"{URL}/otlp/v1/logs", headers={"X-Scope-OrgID": "otlp-a"})
    lines = [(logging.INFO, f"hello over http {RUN}"), (logging.WARNING, f"careful {RUN}"), (logging.ERROR, f"boom {RUN}")]
    trace_id, span_id = emit(exporter, service, "http", lines)
    got = wait_query("otlp-a", f'{{service_name="{service}"}} | trace_id="{trace_id}"', 3)
    check(sorted(l for _, l, _ in got) == sorted(l for _, l in lines), f"lines: {got}")
    check_mapping(got, service, trace_id, span_id, [("INFO", "info"), ("WARN", "warn"), ("ERROR", "error")])
    # Without categorize-labels, structured metadata shows as labels, as in Loki.
    plain = query("otlp-a", f'{{service_name="{service}"}} | detected_level="error"', categorize=False)
    check(len(plain) == 1 and plain[0][1] == f"boom {RUN}", f"detected_level filter: {plain}")
    # Another tenant sees none of it.
    other = query("otlp-b", f'{{service_name="{service}"}}')
    check(other == [], f"tenant otlp-b sees otlp-a's lines: {other}")


def test_grpc():
    service = f"otlp-grpc-{RUN}"
    exporter = GrpcExporter(endpoint=GRPC, insecure=True, headers=(("x-scope-orgid", "otlp-b"),))
    lines = [(logging.DEBUG, f"debugging over grpc {RUN}"), (logging.CRITICAL, f"down {RUN}")]
    trace_id, span_id = emit(exporter, service, "grpc", lines)
    got = wait_query("otlp-b", f'{{service_name="{service}"}} | trace_id="{trace_id}"', 2)
    check(sorted(l for _, l, _ in got) == sorted(l for _, l in lines), f"lines: {got}")
    check_mapping(got, service, trace_id, span_id, [("DEBUG", "debug"), ("FATAL", "fatal")])
    check(query("otlp-a", f'{{service_name="{service}"}}') == [], "tenant otlp-a sees otlp-b's lines")


class Capture(LogRecordExporter):
    """Keeps the ExportLogsServiceRequest the SDK would send."""

    def __init__(self):
        self.requests = []

    def export(self, batch):
        self.requests.append(encode_logs(batch))
        return LogRecordExportResult.SUCCESS

    def shutdown(self):
        pass

    def force_flush(self, timeout_millis=30000):
        return True


def to_otlp_json(request):
    """OTLP/JSON of a request: protobuf's JSON mapping with enums as numbers
    and trace/span ids in hex rather than base64, as the OTLP spec says."""
    doc = json_format.MessageToDict(request, use_integers_for_enums=True)
    for rl in doc.get("resourceLogs", []):
        for sl in rl.get("scopeLogs", []):
            for rec in sl.get("logRecords", []):
                for key in ("traceId", "spanId"):
                    if key in rec:
                        rec[key] = base64.b64decode(rec[key]).hex()
    return doc


def test_json_gzip():
    service = f"otlp-json-{RUN}"
    capture = Capture()
    lines = [(logging.INFO, f"json one {RUN}"), (logging.ERROR, f"json two {RUN}")]
    trace_id, span_id = emit(capture, service, "json", lines)
    check(len(capture.requests) == 2, f"captured {len(capture.requests)} requests")
    for request in capture.requests:
        doc = to_otlp_json(request)
        text = json.dumps(doc)
        check('"timeUnixNano"' in text and trace_id in text, f"not OTLP/JSON: {text[:300]}")
        status, body = http(
            "POST",
            "/otlp/v1/logs",
            "otlp-c",
            body=gzip.compress(text.encode()),
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        check(status == 200, f"OTLP/JSON push: {status} {body!r}")
        check(json.loads(body) == {} or "partialSuccess" in json.loads(body), f"answer: {body!r}")
    got = wait_query("otlp-c", f'{{service_name="{service}"}} | trace_id="{trace_id}"', 2)
    check(sorted(l for _, l, _ in got) == sorted(l for _, l in lines), f"lines: {got}")
    check_mapping(got, service, trace_id, span_id, [("INFO", "info"), ("ERROR", "error")])


def test_bad_payloads():
    cases = [
        ("garbage protobuf", b"\xff\xff\xff\xff", {"Content-Type": "application/x-protobuf"}, 400, "invalid OTLP protobuf body"),
        ("JSON of the wrong shape", b'{"resourceLogs": 3}', {"Content-Type": "application/json"}, 400, "invalid OTLP JSON body"),
        ("not JSON", b"{", {"Content-Type": "application/json"}, 400, "invalid OTLP JSON body"),
        ("wrong content type", b"x", {"Content-Type": "text/plain"}, 415, "unsupported content type"),
        ("bad gzip", b"not gzip", {"Content-Type": "application/json", "Content-Encoding": "gzip"}, 400, "gzip"),
        (
            "short trace id",
            json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "abcd", "body": {"stringValue": "x"}}]}]}]}).encode(),
            {"Content-Type": "application/json"},
            400,
            "traceId: must be 16 bytes",
        ),
    ]
    for name, body, headers, want_status, want_text in cases:
        status, answer = http("POST", "/otlp/v1/logs", "otlp-bad", body=body, headers=headers)
        text = answer.decode(errors="replace")
        check(status == want_status and want_text in text, f"{name}: {status} {text!r}")
    # Nothing from the bad requests was stored.
    now = time.time_ns()
    names = get_json("/loki/api/v1/labels", "otlp-bad", {"start": now - 3600 * 10**9, "end": now})
    check(names.get("data", []) == [], f"bad payloads stored something: {names}")


def test_drilldown():
    now = time.time_ns()
    rng = {"start": now - 3600 * 10**9, "end": now + 10**9}
    labels = get_json("/loki/api/v1/detected_labels", "otlp-a", {"query": "{service_name=~\".+\"}", **rng})
    names = {d["label"]: d["cardinality"] for d in labels["detectedLabels"]}
    check("service_name" in names and "deployment_environment" in names, f"detected_labels: {labels}")
    fields = get_json("/loki/api/v1/detected_fields", "otlp-a", {"query": f'{{service_name="otlp-http-{RUN}"}}', **rng})
    by = {f["label"]: f for f in fields["fields"]}
    for name in ("trace_id", "span_id", "detected_level", "severity_text", "user_id", "host_name"):
        check(name in by, f"detected_fields lacks {name}: {sorted(by)}")
    check(by["retries"]["type"] == "int" and by["retries"]["parsers"] is None, f"retries: {by['retries']}")
    check(fields["limit"] == 1000, f"limit: {fields}")
    values = get_json("/loki/api/v1/detected_field/detected_level/values", "otlp-a", {"query": f'{{service_name="otlp-http-{RUN}"}}', **rng})
    check(sorted(values["values"]) == ["error", "info", "warn"], f"detected_level values: {values}")
    unknown = get_json("/loki/api/v1/detected_field/no_such_field/values", "otlp-a", {"query": f'{{service_name="otlp-http-{RUN}"}}', **rng})
    check(unknown["values"] == [], f"unknown field: {unknown}")
    # Tenant otlp-b does not see tenant otlp-a's streams or fields.
    other = get_json("/loki/api/v1/detected_fields", "otlp-b", {"query": f'{{service_name="otlp-http-{RUN}"}}', **rng})
    check(other["fields"] == [], f"otlp-b sees otlp-a's fields: {other}")


def main():
    passed = failed = 0
    for name, fn in [
        ("http_protobuf", test_http_protobuf),
        ("grpc", test_grpc),
        ("json_gzip", test_json_gzip),
        ("bad_payloads", test_bad_payloads),
        ("drilldown", test_drilldown),
    ]:
        start = time.time()
        try:
            fn()
            passed += 1
            print(f"[otlp] PASS {name} ({time.time() - start:.1f} s)", flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure and go on
            failed += 1
            print(f"[otlp] FAIL {name}: {e}", flush=True)
            if not isinstance(e, Failed):
                traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
