"""Pushing: one entry, a batch of streams, a client stream, a simple log."""
import os
import time

import skald

target = os.environ.get("SKALD_GRPC", "127.0.0.1:9095")

with skald.Client(target, tenant="demo") as c:
    # One entry; structured metadata is stored beside the line, not indexed.
    r = c.push_log({"app": "shop", "env": "dev"}, "order 17 paid", structured_metadata={"order_id": "17"})
    print("push_log:", r.accepted, "accepted")

    # Several streams at once: Stream objects or (labels, entries) pairs;
    # an entry is a line ("now"), (timestamp_ns, line) or an Entry.
    now = time.time_ns()
    r = c.push_log_batch(
        [
            skald.Stream({"app": "shop", "level": "info"}, [skald.Entry(now, "cart created")]),
            ({"app": "shop", "level": "error"}, [(now + 1, "payment declined", {"user_id": "42"})]),
        ]
    )
    print("push_log_batch:", r.accepted, "accepted,", r.rejected, "rejected")

    # Client streaming for throughput: each item is one message (a batch).
    batches = ([({"app": "shop", "level": "debug"}, [f"tick {i}"])] for i in range(100))
    r = c.push_log_stream(batches)
    print("push_log_stream:", r.messages, "messages,", r.accepted, "entries")

    # A message plus well-known fields: stream {service, level, labels...}.
    r = c.push_simple_log("user signed in", service="auth", level="info", fields={"user_id": "42"})
    print("push_simple_log:", r.accepted, "accepted")

    # In a batch, invalid streams are counted and the rest is stored ...
    r = c.push_log_batch([({"app": "shop"}, ["stored"]), ({"bad-name": "x"}, ["refused"])])
    for rej in r.rejections:
        print("rejected:", rej.stream, rej.reason)
    # ... while a single push with invalid labels is an error.
    try:
        c.push_log({"bad-name": "x"}, "refused")
    except skald.InvalidArgument as e:
        print("invalid:", e.details)
