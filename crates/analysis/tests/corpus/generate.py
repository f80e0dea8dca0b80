#!/usr/bin/env python3
"""Writes labelled.tsv: a small labelled log corpus for the miner's CI test.

Each output line is `<event id>\t<log line>`. Lines are drawn from the
templates below with a fixed seed, so the file is reproducible; values are
numbers, IPs, UUIDs, durations and sizes with units, paths, quoted words,
key=value pairs, timestamps and words (user and host names). Some events
differ only by one constant word (startup/shutdown) and must stay apart.

Usage: python3 generate.py > labelled.tsv
"""
import random

rng = random.Random(15)

USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"]
HOSTS = ["web-1.example.com", "db.internal", "cache7.example.net", "api.example.org"]
SERVICES = ["nginx", "postgres", "redis", "kafka"]
VERBS = ["GET", "POST", "PUT", "DELETE"]
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]


def ip():
    return ".".join(str(rng.randint(1, 254)) for _ in range(4))


def uuid():
    h = "".join(rng.choice("0123456789abcdef") for _ in range(32))
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def dur():
    return rng.choice([f"{rng.randint(1, 999)}ms", f"{rng.uniform(0.1, 9):.2f}s", f"{rng.randint(1, 90)} ms"])


def size():
    return rng.choice([f"{rng.randint(1, 900)}KB", f"{rng.uniform(1, 9):.1f} MB", f"{rng.randint(1, 99)}B"])


def ts():
    return f"2026-12-0{rng.randint(1, 6)}T{rng.randint(0, 23):02}:{rng.randint(0, 59):02}:{rng.randint(0, 59):02}.{rng.randint(0, 999):03}Z"


def path():
    return "/" + "/".join(rng.choice(["var", "log", "srv", "data", "tmp", "etc"]) for _ in range(rng.randint(2, 4))) + f"/f{rng.randint(1, 99)}.log"


TEMPLATES = {
    "E01": lambda: f"Accepted password for {rng.choice(USERS)} from {ip()} port {rng.randint(1024, 65535)} ssh2",
    "E02": lambda: f"Invalid user {rng.choice(USERS)} from {ip()}",
    "E03": lambda: f"{ip()} - - [{ts()}] \"{rng.choice(VERBS)} /api/v1/items/{rng.randint(1, 9999)} HTTP/1.1\" {rng.choice([200, 201, 204])} {rng.randint(100, 99999)}",
    "E04": lambda: f"request id={uuid()} method={rng.choice(VERBS)} status={rng.choice([200, 404, 500])} duration={dur()}",
    "E07": lambda: f"Connection from {rng.choice(HOSTS)}:{rng.randint(1024, 65535)} closed after {dur()}",
    "E08": lambda: f"Wrote {size()} to {path()} in {dur()}",
    "E09": lambda: f"ERROR Failed to open {path()}: permission denied",
    "E10": lambda: f"ERROR Failed to open {path()}: no such file or directory",
    "E11": lambda: f"java.lang.NullPointerException: Cannot invoke \"String.length()\" because \"{rng.choice(WORDS)}\" is null",
    "E12": lambda: f"\tat com.example.service.Handler.handle(Handler.java:{rng.randint(10, 400)})",
    "E13": lambda: f"Task {uuid()} finished with exit code {rng.randint(0, 3)} after {dur()}",
    "E14": lambda: f"Cache hit ratio {rng.uniform(0, 1):.3f} over {rng.randint(100, 100000)} lookups",
    "E15": lambda: f"User {rng.choice(USERS)} logged out",
    "E16": lambda: f"User {rng.choice(USERS)} logged in from {ip()}",
    "E17": lambda: f"Checkpoint {rng.randint(1, 9999)} written: {size()}, {rng.randint(1, 500)} pages",
    "E18": lambda: f"GC pause {dur()} young gen {size()} -> {size()}",
    "E19": lambda: f"dial tcp {ip()}:{rng.randint(1, 65535)}: connect: connection refused",
    "E20": lambda: f"context deadline exceeded while calling {rng.choice(SERVICES)} after {dur()}",
    "E21": lambda: f"Memory cgroup out of memory: Killed process {rng.randint(100, 99999)} ({rng.choice(SERVICES)}) total-vm:{rng.randint(1000, 9999999)}kB",
    "E22": lambda: f"session opened for user {rng.choice(USERS)} by (uid={rng.randint(0, 1000)})",
    "E23": lambda: f"session closed for user {rng.choice(USERS)}",
    "E24": lambda: f"level=info msg=\"flushed\" stream={rng.randint(1, 999)} bytes={rng.randint(1, 10**6)} took={dur()}",
    "E25": lambda: f"level=warn msg=\"slow query\" query_id={rng.randint(1, 10**6)} took={dur()}",
    "E26": lambda: f"Starting worker pool with {rng.randint(1, 64)} threads",
    "E27": lambda: f"Stopping worker pool with {rng.randint(1, 64)} threads",
    "E28": lambda: f"upstream {rng.choice(HOSTS)} returned HTTP {rng.choice([500, 502, 503])} for {path()}",
    "E29": lambda: f"Loaded configuration from {path()} (sha256 {''.join(rng.choice('0123456789abcdef') for _ in range(16))})",
    "E30": lambda: f"heartbeat from node-{rng.randint(1, 40)} at {ts()} lag {dur()}",
}

# The first word names the event (as in Drain and Loghub's labels): a
# program's startup and shutdown are events of their own.
for service in SERVICES:
    TEMPLATES[f"E05-{service}"] = lambda service=service: f"{service} startup succeeded"
    TEMPLATES[f"E06-{service}"] = lambda service=service: f"{service} shutdown succeeded"

lines = []
for event, make in TEMPLATES.items():
    lines += [(event, make()) for _ in range(rng.randint(15, 60))]
rng.shuffle(lines)
for event, line in lines:
    print(f"{event}\t{line}")
