"""Export: stream entries (resumable by cursor), or a background job to a file."""
import os

import skald

target = os.environ.get("SKALD_GRPC", "127.0.0.1:9095")

with skald.Client(target, tenant="demo") as c:
    cursor = ""
    for chunk in c.export_logs('{app="shop"}', chunk_size=50):
        print(f"{len(chunk.entries())} entries, {chunk.entries_sent} so far, done={chunk.done}")
        cursor = chunk.cursor  # a new export_logs(..., cursor=cursor) resumes after it

    # Written by the server under <data_dir>/exports/ (relative paths).
    job = c.start_export('{app="shop"}', path="shop.csv", format=skald.ExportFormat.CSV, gzip=True)
    status = c.wait_export(job, timeout=60)
    print(job, status.state.name, status.entries, "entries", status.bytes, "bytes ->", status.path)
