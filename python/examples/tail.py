"""Live tail: historical entries first, then new ones as they are stored."""
import os
import sys

import skald

target = os.environ.get("SKALD_GRPC", "127.0.0.1:9095")
query = sys.argv[1] if len(sys.argv) > 1 else '{app="shop"}'

with skald.Client(target, tenant="demo") as c:
    # Ctrl-C stops; `timeout` (seconds) bounds the whole call if given.
    with c.tail_logs(query, limit=10) as tail:
        try:
            for event in tail:
                for labels, entry in event.entries():
                    print(entry.timestamp_ns, labels, entry.line)
                for d in event.dropped:
                    print(f"(dropped {d.count} entries of {d.labels})")
        except KeyboardInterrupt:
            pass
