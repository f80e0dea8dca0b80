"""python-logging-loki (unmodified, from PyPI) against Skald.

Sends records through the library's handlers, then reads them back with
query_range and checks that every line arrived exactly once, with the labels
the library gives it:
  - the handler's tags, plus `severity` (level name, lower case) and `logger`
    (logger name) that the library always adds,
  - per-record `extra={"tags": {...}}`, whose names the library cleans
    ("req-kind" -> "req_kind").

Three ways of sending:
  direct  LokiHandler, emitter version "1" -> POST /loki/api/v1/push {"streams":[{"stream":{..},"values":[[ns, line]]}]}
  queue   LokiQueueHandler (a QueueHandler + listener thread around LokiHandler), version "1"
  legacy  LokiHandler, emitter version "0" (the library's default) -> POST /api/prom/push
          {"streams":[{"labels":"{a=\"b\"}","entries":[{"ts":"<RFC3339 with offset>","line":..}]}]}
          run with a +05:30 local time zone so the timestamps carry a non-zero offset.

The library treats any answer but 204 as an error (and only reports it through
logging's handleError), so handler errors are collected and fail the test.

Writes $SKALD_MANIFEST_DIR/python_logging_loki.json listing what was verified,
for the after-restart check.
"""

import datetime
import json
import logging
import os
import queue
import sys
import time
import uuid
import warnings

# Local time zone +05:30 (POSIX form, needs no tz database): the legacy
# emitter formats its timestamps in local time with the offset.
os.environ["TZ"] = "IST-05:30"
time.tzset()

import logging_loki  # noqa: E402
import rfc3339  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lokiq  # noqa: E402
from lokiq import CheckFailed  # noqa: E402

PER_VARIANT = 50
LEGACY_COUNT = 20
LEVELS = [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL]

RUN = uuid.uuid4().hex[:12]
BASE_TAGS = {"app": "py-logging-loki", "run": RUN}


class Capture(logging.Handler):
    """Sits beside the Loki handler on the same logger and records what it should send."""

    def __init__(self, variant):
        super().__init__()
        self.variant = variant
        self.records = []

    def emit(self, record):
        labels = dict(BASE_TAGS)
        labels["variant"] = self.variant
        labels["severity"] = record.levelname.lower()
        labels["logger"] = record.name
        for name, value in (getattr(record, "tags", None) or {}).items():
            labels[name.replace("-", "_").replace(".", "_")] = value
        self.records.append(
            {
                "labels": labels,
                "line": self.format(record),
                "rfc3339": rfc3339.format_microsecond(record.created),
            }
        )


def collect_errors(handler, errors):
    """Records the errors the library hands to logging's handleError (it swallows them otherwise)."""
    original = handler.handleError

    def handle_error(record):
        errors.append(f"record {record.getMessage()[:80]!r}: {sys.exc_info()[1]!r}")
        original(record)

    handler.handleError = handle_error
    # The errors are reported by this test; keep logging from printing a traceback for each.
    logging.raiseExceptions = False


def emit_records(logger, variant, count):
    """count records across all levels, with markers, per-record tags, unicode, a multi-line traceback."""
    for i in range(count):
        level = LEVELS[i % len(LEVELS)]
        marker = uuid.uuid4().hex
        tags = {"req-kind": "even" if i % 2 == 0 else "odd"}
        if i == 7:
            try:
                raise ValueError(f"boom {marker}")
            except ValueError:
                logger.error("py %s %s #%03d failed with traceback", RUN, variant, i, exc_info=True, extra={"tags": tags})
        elif i == 11:
            logger.log(level, 'py %s %s #%03d ünïcödé "quoted" \\back\\slash\ttab {brace} %s', RUN, variant, i, marker, extra={"tags": tags})
        else:
            logger.log(level, "py %s %s #%03d marker=%s", RUN, variant, i, marker, extra={"tags": tags})


def make_logger(variant, loki_handler):
    logger = logging.getLogger(f"skald.clients.{variant}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    capture = Capture(variant)
    logger.addHandler(capture)
    logger.addHandler(loki_handler)
    return logger, capture


def rfc3339_to_ns(text):
    d = datetime.datetime.fromisoformat(text)
    delta = d - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def check_variant(variant, records, start_ns, end_ns, exact_ts=False):
    query = f'{{app="{BASE_TAGS["app"]}",run="{RUN}",variant="{variant}"}}'
    got = lokiq.poll_until_complete(query, start_ns, end_ns, len(records))
    lokiq.compare(
        [(r["labels"], r["line"]) for r in records],
        [(labels, line) for labels, _ts, line in got],
        f"{variant}: {query}",
    )
    if exact_ts:
        want = {r["line"]: rfc3339_to_ns(r["rfc3339"]) for r in records}
        for _labels, ts, line in got:
            if int(ts) != want[line]:
                raise CheckFailed(
                    f"{variant}: line {line!r:.80} stored at {ts}, but pushed with ts "
                    f"{next(r['rfc3339'] for r in records if r['line'] == line)!r} = {want[line]} ns"
                )
    print(f"  {variant}: {len(records)} records read back exactly once with labels {sorted(records[0]['labels'])}")


def check_metadata_endpoints(all_records, start_ns, end_ns):
    rng = {"start": str(start_ns), "end": str(end_ns)}
    names = lokiq.get_json("/loki/api/v1/labels", rng).get("data") or []
    for name in ["app", "run", "variant", "severity", "logger", "req_kind"]:
        if name not in names:
            raise CheckFailed(f"/loki/api/v1/labels: {name!r} missing from {names}")
    values = lokiq.get_json("/loki/api/v1/label/run/values", rng).get("data") or []
    if RUN not in values:
        raise CheckFailed(f"/loki/api/v1/label/run/values: {RUN!r} missing from {values}")
    severities = lokiq.get_json("/loki/api/v1/label/severity/values", rng).get("data") or []
    for s in ["debug", "info", "warning", "error", "critical"]:
        if s not in severities:
            raise CheckFailed(f"/loki/api/v1/label/severity/values: {s!r} missing from {severities}")
    series = lokiq.get_json("/loki/api/v1/series", dict(rng, **{"match[]": f'{{run="{RUN}"}}'})).get("data") or []
    want = {tuple(sorted(r["labels"].items())) for r in all_records}
    have = [tuple(sorted(s.items())) for s in series]
    if sorted(have) != sorted(want):
        raise CheckFailed(
            f"/loki/api/v1/series match[]={{run=\"{RUN}\"}}: got {len(have)} series, expected {len(want)}:\n"
            f"  missing: {sorted(want - set(have))}\n  unexpected: {sorted(set(have) - want)}"
        )
    print(f"  labels, label values and series agree ({len(want)} series)")


def main():
    base = lokiq.base_url()
    start_ns = time.time_ns() - 60 * 10**9
    errors = []
    print(f"python-logging-loki {logging_loki.__version__}, run {RUN}, server {base}")

    # direct: one HTTP push per record.
    direct_handler = logging_loki.LokiHandler(
        url=base + "/loki/api/v1/push", tags=dict(BASE_TAGS, variant="direct"), version="1"
    )
    collect_errors(direct_handler, errors)
    direct_logger, direct_capture = make_logger("direct", direct_handler)
    emit_records(direct_logger, "direct", PER_VARIANT)
    direct_handler.close()

    # queue: records handed to a listener thread that pushes them.
    queue_handler = logging_loki.LokiQueueHandler(
        queue.Queue(-1), url=base + "/loki/api/v1/push", tags=dict(BASE_TAGS, variant="queue"), version="1"
    )
    collect_errors(queue_handler.handler, errors)
    queue_logger, queue_capture = make_logger("queue", queue_handler)
    emit_records(queue_logger, "queue", PER_VARIANT)
    queue_handler.listener.stop()  # drains the queue, then joins the thread
    queue_handler.handler.close()

    # legacy: the library's default emitter, Loki's pre-v1 push format and path.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        legacy_handler = logging_loki.LokiHandler(url=base + "/api/prom/push", tags=dict(BASE_TAGS, variant="legacy"))
    if not isinstance(legacy_handler.emitter, logging_loki.emitter.LokiEmitterV0):
        raise CheckFailed(f"expected the library's default emitter to be V0, got {type(legacy_handler.emitter)}")
    collect_errors(legacy_handler, errors)
    legacy_logger, legacy_capture = make_logger("legacy", legacy_handler)
    emit_records(legacy_logger, "legacy", LEGACY_COUNT)
    legacy_handler.close()

    end_ns = time.time_ns() + 60 * 10**9

    if errors:
        shown = "\n".join(errors[:5])
        raise CheckFailed(f"the library reported {len(errors)} failed pushes (it expects HTTP 204); first:\n{shown}")
    for capture, want in [(direct_capture, PER_VARIANT), (queue_capture, PER_VARIANT), (legacy_capture, LEGACY_COUNT)]:
        if len(capture.records) != want:
            raise CheckFailed(f"{capture.variant}: captured {len(capture.records)} records, expected {want}")

    check_variant("direct", direct_capture.records, start_ns, end_ns)
    check_variant("queue", queue_capture.records, start_ns, end_ns)
    check_variant("legacy", legacy_capture.records, start_ns, end_ns, exact_ts=True)

    all_records = direct_capture.records + queue_capture.records + legacy_capture.records
    # The whole run through one selector: nothing more, nothing less.
    query = f'{{run="{RUN}"}}'
    got = lokiq.query_range(query, start_ns, end_ns)
    lokiq.compare(
        [(r["labels"], r["line"]) for r in all_records], [(l, s) for l, _t, s in got], f"all variants: {query}"
    )
    check_metadata_endpoints(all_records, start_ns, end_ns)

    manifest_dir = os.environ.get("SKALD_MANIFEST_DIR")
    if manifest_dir:
        with open(os.path.join(manifest_dir, "python_logging_loki.json"), "w") as f:
            json.dump(
                {
                    "name": "python_logging_loki",
                    "query": query,
                    "start": start_ns,
                    "end": end_ns,
                    "expected": [{"labels": r["labels"], "line": r["line"]} for r in all_records],
                },
                f,
            )
    print(f"python-logging-loki: OK, {len(all_records)} lines")


if __name__ == "__main__":
    lokiq.main_wrapper(main)
