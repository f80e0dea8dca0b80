"""Labels: names, values, and validating a label set before using it."""
import os

import skald

target = os.environ.get("SKALD_GRPC", "127.0.0.1:9095")

with skald.Client(target, tenant="demo") as c:
    print("names:", c.get_labels())
    print("apps:", c.get_label_values("app"))
    print("levels of shop:", c.get_label_values("level", query='{app="shop"}'))

    v = c.validate_labels({"app": "shop", "request_id": "3f2b8c1e-4d5a-4b6c-9e7f-0a1b2c3d4e5f", "__x": "1"})
    print("valid:", v.valid, v.normalized)
    for p in v.problems:
        print(f"  {p.severity.name.lower()} {p.name}: {p.code} ({p.message})")
