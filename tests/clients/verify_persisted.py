"""After a restart on the same data directory: every line a client test verified must still be there.

Usage: verify_persisted.py MANIFEST.json...  (SKALD_URL in the environment)
Each manifest (written by a client test) holds a query, a time range and the
(labels, line) entries that query returned before the restart.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lokiq  # noqa: E402


def main():
    if len(sys.argv) < 2:
        raise lokiq.CheckFailed("no manifests given")
    for path in sys.argv[1:]:
        with open(path) as f:
            m = json.load(f)
        expected = [(e["labels"], e["line"]) for e in m["expected"]]
        got = lokiq.query_range(m["query"], int(m["start"]), int(m["end"]))
        lokiq.compare(expected, [(l, s) for l, _t, s in got], f"after restart, {m['name']}: {m['query']}")
        print(f"  {m['name']}: all {len(expected)} lines still there after the restart")


if __name__ == "__main__":
    lokiq.main_wrapper(main)
