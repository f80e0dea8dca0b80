#!/usr/bin/env bash
# Runs the real OpenTelemetry Python SDK (OTLP/HTTP and OTLP gRPC exporters,
# through logging's LoggingHandler) against a Skald binary; see otlp_test.py.
#
# Usage: tests/otlp/run.sh path/to/skald
# Prints "N passed, M failed" as its last line; exits non-zero if any failed.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
TAG=otlp
# shellcheck source=../lib/skald.sh
. "$HERE/../lib/skald.sh"
skald_setup "$@"
# The SDK, pinned, in a venv of its own.
python_venv "$HERE/.venv" "$HERE/requirements.txt"

# Discovery as Loki 3 does it by default (Skald's default is off).
cat >"$WORK/skald.toml" <<'TOML'
[ingest]
discover_service_name = ["service", "app", "application", "app_name", "name",
  "app_kubernetes_io_name", "container", "container_name", "k8s_container_name",
  "component", "workload", "job", "k8s_job_name"]
discover_log_levels = true
TOML

skald_start --config "$WORK/skald.toml" || { echo "0 passed, 1 failed"; exit 1; }

rc=0
SKALD_URL="$SKALD_URL" SKALD_GRPC="127.0.0.1:$GRPC_PORT" \
  "$PY" "$HERE/otlp_test.py" || rc=$?
[ "$rc" -eq 0 ] || show_server_log
exit "$rc"
