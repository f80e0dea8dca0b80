"""Streams: list (paged), inspect, delete."""
import os

import skald

target = os.environ.get("SKALD_GRPC", "127.0.0.1:9095")

with skald.Client(target, tenant="demo") as c:
    page = c.list_streams('{app="shop"}', page_size=10)
    print(page.total, "streams")
    for s in c.iter_streams('{app="shop"}'):
        info = c.get_stream_info(stream_id=s.stream_id)
        print(s.stream_id, s.labels, info.entries, "entries,", info.bytes, "bytes")

    try:
        c.get_stream_info({"app": "no-such-app"})
    except skald.NotFound as e:
        print("not found:", e.details)

    # Entries matching disappear from queries at once.
    d = c.delete_stream('{app="shop", level="debug"}')
    print("delete request", d.request_id, d.status)
