"""Monitoring: health, statistics, quota; plus the asyncio client and the
logging handler."""
import asyncio
import logging
import os

import skald
from skald.logging import SkaldHandler

target = os.environ.get("SKALD_GRPC", "127.0.0.1:9095")

with skald.Client(target, tenant="demo") as c:
    h = c.health_check()
    print("serving:", h.serving, "version", h.version, "storage", h.storage_status)

    st = c.get_statistics()
    for t in st.tenants:
        print(f"{t.tenant}: {t.streams} streams, {t.entries} entries, {t.bytes_stored} bytes stored")
    print(f"ingesting {st.ingestion_entries_per_second:.1f} entries/s, up {st.uptime_seconds} s")

    q = c.get_user_quota()
    print(f"tenant {q.tenant}: max line {q.max_line_bytes} B, query limit {q.max_query_limit}, usage {q.entries} entries")


async def main() -> None:
    async with skald.AsyncClient(target, tenant="demo") as ac:
        print("async health:", (await ac.health_check()).status.name)


asyncio.run(main())

# Application logs: labels are the static ones plus `level`; `extra=` fields
# go to structured metadata unless allow-listed as labels.
handler = SkaldHandler(target=target, tenant="demo", labels={"service": "example"}, label_allow_list=["region"])
log = logging.getLogger("example")
log.addHandler(handler)
log.setLevel(logging.INFO)
log.info("handled request", extra={"region": "eu", "request_id": "r-1"})
handler.close()  # flushes
print("handler sent", handler.sent, "entries")
