"""Reading back from Skald through Loki's HTTP query API (standard library only).

Shared by the Python client test and the after-restart check.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter


class CheckFailed(Exception):
    pass


def base_url():
    url = os.environ.get("SKALD_URL")
    if not url:
        raise CheckFailed("SKALD_URL is not set")
    return url.rstrip("/")


def get_json(path, params):
    """GET path?params; returns the decoded JSON body; any non-200 is a failure."""
    url = base_url() + path + "?" + urllib.parse.urlencode(params, doseq=True)
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = resp.read()
            status = resp.status
    except urllib.error.HTTPError as e:
        raise CheckFailed(f"GET {url} -> HTTP {e.code}: {e.read()[:2000]!r}") from None
    if status != 200:
        raise CheckFailed(f"GET {url} -> HTTP {status}: {body[:2000]!r}")
    try:
        doc = json.loads(body)
    except ValueError:
        raise CheckFailed(f"GET {url} -> not JSON: {body[:2000]!r}") from None
    if doc.get("status") != "success":
        raise CheckFailed(f"GET {url} -> status {doc.get('status')!r}: {body[:2000]!r}")
    return doc


def query_range(query, start_ns, end_ns, limit=5000):
    """Runs a log query forward over [start, end]; returns [(labels dict, ts str, line)].

    Also checks the shape of Loki's answer: resultType "streams", each value a
    [ns-string, line] pair, values of a stream in ascending time order.
    """
    params = {
        "query": query,
        "start": str(start_ns),
        "end": str(end_ns),
        "limit": str(limit),
        "direction": "forward",
    }
    doc = get_json("/loki/api/v1/query_range", params)
    data = doc.get("data") or {}
    if data.get("resultType") != "streams":
        raise CheckFailed(f"query_range {query}: resultType {data.get('resultType')!r}, expected 'streams'")
    out = []
    for stream in data.get("result") or []:
        labels = stream.get("stream")
        if not isinstance(labels, dict):
            raise CheckFailed(f"query_range {query}: stream labels not an object: {stream!r:.500}")
        prev = None
        for value in stream.get("values") or []:
            if not (isinstance(value, list) and len(value) >= 2 and isinstance(value[0], str) and isinstance(value[1], str)):
                raise CheckFailed(f"query_range {query}: malformed value {value!r:.500}")
            if not value[0].isdigit():
                raise CheckFailed(f"query_range {query}: timestamp {value[0]!r} is not a nanosecond integer string")
            ts = int(value[0])
            if not start_ns <= ts <= end_ns:
                raise CheckFailed(f"query_range {query}: timestamp {ts} outside [{start_ns}, {end_ns}]")
            if prev is not None and ts < prev:
                raise CheckFailed(f"query_range {query}: forward values out of order in stream {labels}: {prev} then {ts}")
            prev = ts
            out.append((labels, value[0], value[1]))
    return out


def key(labels, line):
    return (tuple(sorted(labels.items())), line)


def compare(expected, got, what):
    """expected/got: lists of (labels dict, line). Every expected entry exactly once, nothing else."""
    want = Counter(key(l, s) for l, s in expected)
    have = Counter(key(l, s) for l, s in got)
    problems = []
    for k, n in want.items():
        if have[k] != n:
            problems.append(f"  expected {n}x, got {have[k]}x: labels={dict(k[0])} line={k[1]!r}")
    for k, n in have.items():
        if k not in want:
            problems.append(f"  unexpected {n}x: labels={dict(k[0])} line={k[1]!r}")
    if problems:
        shown = "\n".join(problems[:30])
        more = f"\n  (and {len(problems) - 30} more)" if len(problems) > 30 else ""
        raise CheckFailed(
            f"{what}: {len(got)} entries returned, {len(expected)} expected; mismatches:\n{shown}{more}"
        )


def poll_until_complete(query, start_ns, end_ns, expected_count, timeout_s=20.0):
    """Re-runs the query until it returns at least expected_count entries or the time is up."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = query_range(query, start_ns, end_ns)
        if len(got) >= expected_count or time.monotonic() > deadline:
            return got
        time.sleep(0.25)


def main_wrapper(fn):
    try:
        fn()
    except CheckFailed as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
