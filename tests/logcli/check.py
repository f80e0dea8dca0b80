"""Runs every logcli command against a real `skald serve` and checks each
answer is the one Loki gives for the same data.

Usage: [LOKITOOL=path/to/lokitool] check.py LOGCLI_BINARY SKALD_BINARY

With LOKITOOL, Loki's lokitool also manages rules through Skald's ruler
API (load, list, get, print, diff, sync, delete) in a tenant of its own.

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
import urllib.error
import urllib.parse
import urllib.request

LOGCLI, SKALD = sys.argv[1], sys.argv[2]
# Loki's lokitool (rules commands against the ruler API), when given.
LOKITOOL = os.environ.get("LOKITOOL", "")
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


def run_tool(binary, args, env, drop, check):
    """Runs a Loki tool with `env` set and `drop`ped from the environment."""
    env = dict(os.environ, **env)
    for k in drop:
        env.pop(k, None)
    p = subprocess.run([binary, *args], env=env, capture_output=True, text=True, timeout=60)
    if check and p.returncode != 0:
        raise Failed(f"{os.path.basename(binary)} {' '.join(args)}: exit {p.returncode}: {(p.stdout + p.stderr).strip()[-800:]}")
    return p


def logcli(*args, check=True):
    return run_tool(LOGCLI, args, {"LOKI_ADDR": URL},
                    ("LOKI_USERNAME", "LOKI_PASSWORD", "LOKI_ORG_ID", "LOKI_BEARER_TOKEN"), check)


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
        if LOKITOOL:
            run_lokitool_checks(work)
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
        out = logcli("query", '{app="shop", env="prod"}', "--since", "1h", "-o", "jsonl", "-q",
                     "--include-common-labels").stdout
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
        # As Loki: aggregated by the labels the selector names.
        expect([v["metric"] for v in vec] == [{"app": "shop"}], f"got {out!r}")
        expect(all(int(v["value"][1]) > 0 for v in vec), f"got {out!r}")

    @check("volume_range")
    def _():
        out = logcli("volume_range", '{app="shop"}', "--since", "1h", "--step", "10m", "-q").stdout
        series = json.loads(out)
        expect([s["metric"] for s in series] == [{"app": "shop"}] and series[0]["values"], f"got {out!r}")

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
                # Raw reads: a non-blocking text read with nothing to read
                # raises instead of answering None.
                try:
                    seen += os.read(p.stdout.fileno(), 65536).decode(errors="replace")
                except BlockingIOError:
                    pass
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
        # -o jsonl: logcli decodes start_time/end_time into int64 and
        # prints them back.
        listed = json.loads(logcli("delete", "list", "-o", "jsonl", "-q").stdout)
        expect(len(listed) == 1 and listed[0]["start_time"] == int(start) and listed[0]["end_time"] == int(end),
               f"list -o jsonl: {listed}")
        gone = logcli("query", '{app="victim"}', "--since", "1h", "-o", "raw", "-q").stdout
        expect(gone.strip() == "", f"deleted lines still answered: {gone!r}")
        ids = [v for v in raw_list() if v["query"] == '{app="victim"}']
        logcli("delete", "cancel", f"--request-id={ids[0]['request_id']}", "-q")
        expect(raw_list() == [], "still listed after cancel")
        back = lines_of(logcli("query", '{app="victim"}', "--since", "1h", "-o", "raw", "-q").stdout)
        expect(len(back) == 3, f"after cancel: {back}")


RULES = """namespace: team-a
groups:
  - name: errors
    interval: 1m
    rules:
      - alert: ManyErrors
        expr: sum(count_over_time({app="shop"} |= "error" [5m])) > THRESHOLD
        for: 1m
        labels:
          severity: page
        annotations:
          summary: "{{ $value }} errors in five minutes"
      - record: shop:lines:rate1m
        expr: sum by (env) (rate({app="shop"}[1m]))
"""

LATENCY = """namespace: team-a
groups:
  - name: latency
    rules:
      - alert: SlowRequests
        expr: quantile_over_time(0.99, {app="shop", env="prod"} | json | unwrap ms [5m]) > 25
"""


def lokitool(*args, check=True):
    return run_tool(LOKITOOL, args, {"LOKI_ADDRESS": URL, "LOKI_TENANT_ID": "tools"},
                    ("LOKI_AUTH_TOKEN", "LOKI_API_USER", "LOKI_API_KEY", "LOKI_USE_LEGACY_ROUTES"), check)


def rules_of(tenant):
    req = urllib.request.Request(URL + "/loki/api/v1/rules", headers={"X-Scope-OrgID": tenant})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read().decode()
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return ""
        raise


def run_lokitool_checks(work):
    files = os.path.join(work, "rules")
    os.makedirs(files, exist_ok=True)
    errors = os.path.join(files, "team-a.yaml")
    latency = os.path.join(files, "latency.yaml")

    def write(path, text):
        with open(path, "w") as f:
            f.write(text)

    write(errors, RULES.replace("THRESHOLD", "3"))
    write(latency, LATENCY)

    @check("lokitool rules load, list, get (tenant from --id)")
    def _():
        lokitool("rules", "load", errors)
        listed = lokitool("rules", "list").stdout
        expect("team-a" in listed and "errors" in listed, f"list: {listed}")
        got = lokitool("rules", "get", "team-a", "errors", "--disable-color").stdout
        for want in ("ManyErrors", '|= "error"', "> 3", "shop:lines:rate1m", "severity: page", "{{ $value }}"):
            expect(want in got, f"get lacks {want!r}: {got}")
        expect("ManyErrors" in rules_of("tools"), "not stored in tenant tools")
        expect("ManyErrors" not in rules_of("fake"), "visible to another tenant")

    @check("lokitool rules print")
    def _():
        out = lokitool("rules", "print", "--disable-color").stdout
        expect("team-a" in out and "ManyErrors" in out and "shop:lines:rate1m" in out, out)

    @check("lokitool rules diff: none, then an update")
    def _():
        out = lokitool("rules", "diff", f"--rule-files={errors}", "--disable-color").stdout
        expect("no changes detected" in out, out)
        write(errors, RULES.replace("THRESHOLD", "5"))
        out = lokitool("rules", "diff", f"--rule-files={errors}", "--disable-color").stdout
        expect("0 Groups Created, 1 Groups Updated, 0 Groups Deleted" in out, out)

    @check("lokitool rules sync: update, create and delete groups")
    def _():
        lokitool("rules", "sync", f"--rule-files={errors}")
        got = lokitool("rules", "get", "team-a", "errors", "--disable-color").stdout
        expect("> 5" in got and "> 3" not in got, f"after sync: {got}")
        # Only the latency group in the files: errors goes, latency comes.
        lokitool("rules", "sync", f"--rule-files={latency}")
        listed = lokitool("rules", "list").stdout
        expect("latency" in listed and "errors" not in listed, f"list: {listed}")
        out = lokitool("rules", "diff", f"--rule-files={latency}", "--disable-color").stdout
        expect("no changes detected" in out, out)

    @check("lokitool rules delete")
    def _():
        lokitool("rules", "delete", "team-a", "latency")
        expect("SlowRequests" not in rules_of("tools"), rules_of("tools"))
        p = lokitool("rules", "get", "team-a", "latency", check=False)
        expect("does not currently exist" in p.stdout + p.stderr, f"exit {p.returncode}: {p.stdout}{p.stderr}")

    @check("lokitool rules load: a log query as an alert is refused")
    def _():
        bad = os.path.join(files, "bad.yaml")
        write(bad, "namespace: team-b\ngroups:\n  - name: g\n    rules:\n      - alert: NotAMetric\n        expr: '{app=\"shop\"} |= \"error\"'\n")
        p = lokitool("rules", "load", bad, check=False)
        expect(p.returncode != 0, f"accepted: {p.stdout}{p.stderr}")
        expect("NotAMetric" not in rules_of("tools"), "stored all the same")


def raw_list():
    with urllib.request.urlopen(URL + "/loki/api/v1/delete", timeout=10) as r:
        return json.loads(r.read())


def rfc3339(secs):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(secs)))


if __name__ == "__main__":
    main()
