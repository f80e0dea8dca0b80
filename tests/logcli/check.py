"""Runs every logcli command against a real `skald serve` and checks each
answer is the one Loki gives for the same data.

Usage: check.py LOGCLI_BINARY SKALD_BINARY

logcli is Loki's own command-line client, built from Loki's source (see
README.md beside this file); Skald's CI has no Go toolchain nor Loki's
source, so there the response shapes logcli decodes are pinned by
crates/server/tests/logcli_shapes.rs instead.

The data: 40 logfmt lines in {app="shop", env="dev"} one second apart,
several sharing a timestamp (to test paging across equal timestamps),
10 JSON lines in {app="shop", env="prod"}, and 3 lines in {app="victim"}
for the delete commands. Each check names the command it ran and what
differed. Prints "N passed, M failed" last.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

LOGCLI, SKALD = sys.argv[1], sys.argv[2]
NOW_S = int(time.time())
BASE_NS = (NOW_S - 600) * 10**9


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


HTTP, GRPC = free_port(), free_port()
URL = f"http://127.0.0.1:{HTTP}"

# (ts_ns, line) per stream, oldest first. Entries 10..12 share one
# timestamp, and so do 30 and 31.
DEV = []
for i in range(40):
    second = {11: 10, 12: 10, 31: 30}.get(i, i)
    DEV.append((BASE_NS + second * 10**9, f'level={"error" if i % 10 == 3 else "info"} msg="request {i}" n={i}'))
PROD = [(BASE_NS + (i * 10 + 5) * 10**9, json.dumps({"level": "warn", "path": f"/p/{i}", "ms": i * 3})) for i in range(10)]
VICTIM = [(BASE_NS + (50 + i) * 10**9, f"secret {i}") for i in range(3)]


def push(labels, entries):
    body = {"streams": [{"stream": labels, "values": [[str(ts), line] for ts, line in entries]}]}
    req = urllib.request.Request(URL + "/loki/api/v1/push", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 204, r.status


def logcli(*args, check=True):
    env = dict(os.environ, LOKI_ADDR=URL)
    for k in ("LOKI_USERNAME", "LOKI_PASSWORD", "LOKI_ORG_ID", "LOKI_BEARER_TOKEN"):
        env.pop(k, None)
    p = subprocess.run([LOGCLI, *args], env=env, capture_output=True, text=True, timeout=60)
    if check and p.returncode != 0:
        raise Failed(f"exit {p.returncode}: {p.stderr.strip()[-800:]}")
    return p


class Failed(Exception):
    pass


RESULTS = []


def check(name):
    def wrap(fn):
        try:
            fn()
            RESULTS.append((name, None))
            print(f"[logcli] PASS {name}")
        except Exception as e:  # noqa: BLE001 - every failure is reported
            RESULTS.append((name, str(e)))
            print(f"[logcli] FAIL {name}: {e}")
        return fn
    return wrap


def expect(cond, why):
    if not cond:
        raise Failed(why)


def lines_of(out):
    return [l for l in out.split("\n") if l]


def main():
    work = tempfile.mkdtemp(prefix="skald-logcli.")
    server_log = open(os.path.join(work, "server.log"), "w")
    server = subprocess.Popen([SKALD, "serve", "--data-dir", os.path.join(work, "data"),
                               "--http-addr", f"127.0.0.1:{HTTP}", "--grpc-addr", f"127.0.0.1:{GRPC}"],
                              stdout=server_log, stderr=server_log)
    try:
        for _ in range(150):
            try:
                urllib.request.urlopen(URL + "/ready", timeout=1)
                break
            except Exception:  # noqa: BLE001
                time.sleep(0.2)
        push({"app": "shop", "env": "dev"}, DEV)
        push({"app": "shop", "env": "prod"}, PROD)
        push({"app": "victim"}, VICTIM)
        run_checks()
    finally:
        server.terminate()
        server.wait(timeout=30)
        server_log.close()
    failed = [n for n, e in RESULTS if e]
    print(f"{len(RESULTS) - len(failed)} passed, {len(failed)} failed")
    if failed:
        print(f"(server log in {work})")
    else:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failed else 0)


DEV_LINES = [l for _, l in DEV]


def run_checks():
    @check("query (default output, newest first)")
    def _():
        out = logcli("query", '{app="shop", env="dev"}', "--since", "1h", "--limit", "100", "-q").stdout
        got = lines_of(out)
        expect(len(got) == 40, f"{len(got)} lines, expected 40")
        # Default output: timestamp, then the line (common labels left out).
        expect(got[0].endswith(DEV_LINES[-1]) and got[-1].endswith(DEV_LINES[0]), f"order: {got[0]!r} .. {got[-1]!r}")

    @check("query --batch (paging newest first across equal timestamps)")
    def _():
        out = logcli("query", '{app="shop", env="dev"}', "--since", "1h", "--limit", "35", "--batch", "4",
                     "-o", "raw", "-q").stdout
        got = lines_of(out)
        want = list(reversed(DEV_LINES))[:35]
        expect(sorted(got) == sorted(want), f"got {len(got)} lines; missing {sorted(set(want) - set(got))[:5]}; "
               f"repeated {[l for l in set(got) if got.count(l) > 1][:5]}")

    @check("query --forward --batch (paging oldest first)")
    def _():
        out = logcli("query", '{app="shop", env="dev"}', "--since", "1h", "--limit", "33", "--batch", "5",
                     "--forward", "-o", "raw", "-q").stdout
        got = lines_of(out)
        want = DEV_LINES[:33]
        expect(sorted(got) == sorted(want), f"got {len(got)}; missing {sorted(set(want) - set(got))[:5]}")
        ts_order = [DEV_LINES.index(l) for l in got]
        secs = [DEV[i][0] for i in ts_order]
        expect(secs == sorted(secs), "not in ascending time order")

    @check("query -o raw")
    def _():
        out = logcli("query", '{app="shop"} |= "request 3"', "--since", "1h", "-o", "raw", "-q").stdout
        expect(sorted(lines_of(out)) == sorted(l for l in DEV_LINES if "request 3" in l), f"got {out!r}")

    @check("query -o jsonl")
    def _():
        out = logcli("query", '{app="shop", env="prod"}', "--since", "1h", "-o", "jsonl", "-q").stdout
        docs = [json.loads(l) for l in lines_of(out)]
        expect(len(docs) == 10, f"{len(docs)} objects")
        d = docs[0]
        expect(set(d) >= {"labels", "line", "timestamp"}, f"keys {sorted(d)}")
        expect(d["labels"].get("env") == "prod", f"labels {d['labels']}")
        expect(d["line"] == PROD[-1][1], f"line {d['line']!r}")

    @check("query with a parser and a label filter")
    def _():
        out = logcli("query", '{app="shop"} | logfmt | level="error"', "--since", "1h", "-o", "raw", "-q").stdout
        expect(len(lines_of(out)) == 4, f"got {out!r}")

    @check("query (range metric query)")
    def _():
        out = logcli("query", 'sum by (env) (count_over_time({app="shop"}[1h]))', "--since", "1h",
                     "--step", "10m", "-q").stdout
        series = json.loads(out)
        by_env = {s["metric"].get("env"): s["values"] for s in series}
        expect(set(by_env) == {"dev", "prod"}, f"series {list(by_env)}")
        expect(max(int(v[1]) for v in by_env["dev"]) == 40, f"dev values {by_env['dev']}")

    @check("instant-query")
    def _():
        out = logcli("instant-query", 'sum(count_over_time({app="shop"}[1h]))', "-q").stdout
        vec = json.loads(out)
        expect(len(vec) == 1 and vec[0]["value"][1] == "50", f"got {out!r}")

    @check("labels")
    def _():
        names = lines_of(logcli("labels", "--since", "1h", "-q").stdout)
        expect({"app", "env"} <= set(names), f"names {names}")
        values = lines_of(logcli("labels", "app", "--since", "1h", "-q").stdout)
        expect(values == ["shop", "victim"], f"values {values}")

    @check("series")
    def _():
        out = lines_of(logcli("series", '{app="shop"}', "--since", "1h", "-q").stdout)
        expect(sorted(out) == ['{app="shop", env="dev"}', '{app="shop", env="prod"}'], f"got {out}")

    @check("stats")
    def _():
        out = logcli("stats", '{app="shop"}', "--since", "1h", "-q").stdout
        doc = {}
        for l in lines_of(out):
            if ":" in l:
                k, v = l.split(":", 1)
                doc[k.strip()] = v.strip()
        # logcli prints {\n  bytes: 2.3kB\n  chunks: N\n  streams: 2\n  entries: 50\n}
        expect(doc.get("streams") == "2", f"got {out!r}")
        expect(doc.get("entries") == "50", f"got {out!r}")
        expect(doc.get("chunks", "").isdigit() and doc.get("bytes", "").endswith("B"), f"got {out!r}")

    @check("volume")
    def _():
        out = logcli("volume", '{app="shop"}', "--since", "1h", "-q").stdout
        vec = json.loads(out)
        envs = sorted(v["metric"].get("env") for v in vec)
        expect(envs == ["dev", "prod"], f"got {out!r}")
        expect(all(int(v["value"][1]) > 0 for v in vec), f"got {out!r}")

    @check("volume_range")
    def _():
        out = logcli("volume_range", '{app="shop"}', "--since", "1h", "--step", "10m", "-q").stdout
        series = json.loads(out)
        expect(len(series) == 2 and all(s["values"] for s in series), f"got {out!r}")

    @check("detected-fields")
    def _():
        out = logcli("detected-fields", '{app="shop"}', "--since", "1h", "-q", "-o", "raw").stdout
        expect("ms" in out and "path" in out and "level" in out, f"got {out!r}")

    @check("query --tail")
    def _():
        env = dict(os.environ, LOKI_ADDR=URL)
        p = subprocess.Popen([LOGCLI, "query", "--tail", '{app="tailed"}', "-o", "raw", "-q", "--delay-for", "0"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(2)
            push({"app": "tailed"}, [(time.time_ns(), "live line 1")])
            deadline = time.time() + 20
            seen = ""
            os.set_blocking(p.stdout.fileno(), False)
            while time.time() < deadline and "live line 1" not in seen:
                chunk = p.stdout.read()
                if chunk:
                    seen += chunk
                if p.poll() is not None:
                    break
                time.sleep(0.2)
            expect("live line 1" in seen, f"saw {seen!r}; stderr {p.stderr.read() if p.poll() is not None else ''!r}")
        finally:
            p.kill()
            p.wait()

    @check("delete create | list | cancel")
    def _():
        start, end = str((BASE_NS // 10**9) + 49), str((BASE_NS // 10**9) + 60)
        logcli("delete", "create", '{app="victim"}', "--from", rfc3339(start), "--to", rfc3339(end), "-q")
        out = logcli("delete", "list", "-q").stdout
        expect('{app="victim"}' in out and "received" in out, f"list: {out!r}")
        listed = json.loads(logcli("delete", "list", "--output=json", "-q").stdout)
        expect(len(listed) == 1 and listed[0]["start_time"] == int(start) and listed[0]["end_time"] == int(end),
               f"list --output=json: {listed}")
        gone = logcli("query", '{app="victim"}', "--since", "1h", "-o", "raw", "-q").stdout
        expect(gone.strip() == "", f"deleted lines still answered: {gone!r}")
        ids = [v for v in raw_list() if v["query"] == '{app="victim"}']
        logcli("delete", "cancel", f"--request-id={ids[0]['request_id']}", "-q")
        expect(raw_list() == [], "still listed after cancel")
        back = lines_of(logcli("query", '{app="victim"}', "--since", "1h", "-o", "raw", "-q").stdout)
        expect(len(back) == 3, f"after cancel: {back}")


def raw_list():
    with urllib.request.urlopen(URL + "/loki/api/v1/delete", timeout=10) as r:
        return json.loads(r.read())


def rfc3339(secs):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(secs)))


if __name__ == "__main__":
    main()
