#!/usr/bin/env python3
"""Generates the gRPC stubs of skald.v1.LogService into skald/_proto/.

The proto is the repository's proto/skald/v1/log_service.proto. It is copied
into a scratch tree as skald/_proto/log_service.proto before compiling, so that
the generated modules import each other as `skald._proto.log_service_pb2`
and never clash with the `skald` package itself.

Run directly (`python generate.py`) or through the build (setup.py's build_py).
Needs grpcio-tools.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from typing import Dict, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "skald", "_proto")
PROTO_NAME = "log_service.proto"


def find_proto() -> Optional[str]:
    """The service's proto: $SKALD_PROTO, else the repository's copy."""
    candidates = [
        os.environ.get("SKALD_PROTO", ""),
        os.path.join(HERE, "..", "proto", "skald", "v1", PROTO_NAME),
    ]
    for c in candidates:
        if c and os.path.isfile(c):
            return os.path.abspath(c)
    return None


def generated() -> bool:
    return all(
        os.path.isfile(os.path.join(OUT_DIR, n))
        for n in ("__init__.py", "log_service_pb2.py", "log_service_pb2_grpc.py")
    )


def generate() -> None:
    proto = find_proto()
    if proto is None:
        if generated():
            # A source distribution built earlier carries the stubs.
            return
        raise SystemExit(
            "log_service.proto not found (expected ../proto/skald/v1/; "
            "or set SKALD_PROTO)"
        )
    from grpc_tools import protoc  # type: ignore[import-untyped]
    import grpc_tools

    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    with tempfile.TemporaryDirectory() as tmp:
        src_dir = os.path.join(tmp, "src", "skald", "_proto")
        out = os.path.join(tmp, "out")
        os.makedirs(src_dir)
        os.makedirs(out)
        shutil.copyfile(proto, os.path.join(src_dir, PROTO_NAME))
        args = [
            "grpc_tools.protoc",
            f"-I{os.path.join(tmp, 'src')}",
            f"-I{include}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            os.path.join(src_dir, PROTO_NAME),
        ]
        rc = protoc.main(args)
        if rc != 0:
            raise SystemExit(f"protoc failed with status {rc}")
        os.makedirs(OUT_DIR, exist_ok=True)
        produced = os.path.join(out, "skald", "_proto")
        for name in os.listdir(produced):
            shutil.copyfile(os.path.join(produced, name), os.path.join(OUT_DIR, name))
    with open(os.path.join(OUT_DIR, "__init__.py"), "w") as f:
        f.write('"""Generated gRPC stubs of skald.v1.LogService (not edited by hand)."""\n')


def runtime_requirements() -> Dict[str, str]:
    """Minimum grpcio and protobuf versions the generated code checks for.

    The generated modules refuse to import under older runtimes, so the
    package requires at least the versions it was generated for.
    """
    reqs: Dict[str, str] = {}
    try:
        with open(os.path.join(OUT_DIR, "log_service_pb2_grpc.py")) as f:
            m = re.search(r"GRPC_GENERATED_VERSION = '([0-9.]+)'", f.read())
        if m:
            reqs["grpcio"] = m.group(1)
        with open(os.path.join(OUT_DIR, "log_service_pb2.py")) as f:
            m = re.search(
                r"ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,\s*(\d+),\s*(\d+),\s*(\d+)",
                f.read(),
            )
        if m:
            reqs["protobuf"] = ".".join(m.groups())
    except OSError:
        pass
    return reqs


if __name__ == "__main__":
    generate()
    print(f"generated stubs in {os.path.relpath(OUT_DIR)}", file=sys.stderr)
