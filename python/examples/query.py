"""Querying: log queries, metric queries, query statistics."""
import os

import skald

target = os.environ.get("SKALD_GRPC", "127.0.0.1:9095")

with skald.Client(target, tenant="demo") as c:
    res = c.query_logs('{app="shop"} |= "payment"', limit=20, direction=skald.Direction.FORWARD)
    for labels, entry in res.entries():
        print(entry.timestamp_ns, labels, entry.line, entry.structured_metadata)
    print("lines scanned:", res.stats.lines_processed)

    series = c.query_range('sum by (level) (count_over_time({app="shop"}[5m]))', step_ns=60 * 10**9)
    for s in series.series:
        print(s.labels, [(x.timestamp_ns, x.value) for x in s.samples][-3:])

    est = c.query_stats('{app="shop"}', run_limit=100)
    print("would touch", est.streams, "streams,", est.chunks, "chunks,", est.entries, "entries")
    if est.run:
        print("the run read", est.run.chunks_read, "chunks")

    try:
        c.query_logs('{app="shop"')
    except skald.InvalidArgument as e:
        print("bad query:", e.details)
