#!/usr/bin/env bash
# Runs real, unmodified Loki client libraries against a Skald binary:
#   - python-logging-loki (JSON push, v1 and legacy endpoints; direct and queue handlers)
#   - winston + winston-loki (protobuf+snappy push, and its JSON mode)
#   - pino + pino-loki (JSON push with structured metadata, as a pino transport)
#   - the Rust tracing-loki crate (protobuf + Content-Encoding: snappy), built
#     from tests/clients/tracing-loki (its own lock file, outside the workspace)
#   - grpcio-reflection's client (reflection v1alpha) and the standard gRPC
#     health service
# then restarts the server on the same data directory and checks that every
# line the clients pushed is still there.
#
# Usage: tests/clients/run.sh path/to/skald
# Prints "N passed, M failed" as its last line; exits non-zero if any failed.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
TAG=clients
# shellcheck source=../lib/skald.sh
. "$HERE/../lib/skald.sh"
skald_setup "$@"
MANIFEST_DIR="$WORK/manifests"
mkdir -p "$MANIFEST_DIR"

PASSED=0
FAILED=0
FAILED_NAMES=()

# ---------------------------------------------------------------- installs

NODE_STAMP="$HERE/node_modules/.package-lock.sha256"

node_deps() {
  local want have=""
  want="$(cat "$HERE/package.json" "$HERE/package-lock.json" | sha256sum | cut -d' ' -f1)"
  [ -f "$NODE_STAMP" ] && have="$(cat "$NODE_STAMP")"
  if [ -d "$HERE/node_modules" ] && [ "$want" = "$have" ]; then
    return 0
  fi
  log "installing npm packages into $HERE/node_modules"
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" >"$NODE_STAMP"
}

# The tracing-loki check is a small crate of its own; its build goes under
# the workspace's target/ directory (ignored by git).
TRACING_LOKI_DIR="$HERE/tracing-loki"
TRACING_LOKI_TARGET="$HERE/../../target/tracing-loki-check"
TRACING_LOKI_BIN="$TRACING_LOKI_TARGET/debug/skald-tracing-check"

rust_deps() {
  log "building the tracing-loki check"
  cargo build --quiet --locked --manifest-path "$TRACING_LOKI_DIR/Cargo.toml" \
    --target-dir "$TRACING_LOKI_TARGET"
}

python_venv "$HERE/.venv" "$HERE/requirements.txt"
node_deps
rust_deps

# ---------------------------------------------------------------- tests

run_test() {
  local name=$1
  shift
  log "=== $name"
  local start=$SECONDS
  if SKALD_URL="$SKALD_URL" SKALD_GRPC="127.0.0.1:$GRPC_PORT" \
    SKALD_MANIFEST_DIR="$MANIFEST_DIR" "$@"; then
    log "PASS $name ($((SECONDS - start)) s)"
    PASSED=$((PASSED + 1))
  else
    log "FAIL $name ($((SECONDS - start)) s)"
    FAILED=$((FAILED + 1))
    FAILED_NAMES+=("$name")
    show_server_log
  fi
}

finish() {
  if [ "$FAILED" -gt 0 ]; then
    log "failed: ${FAILED_NAMES[*]}"
  fi
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
}

if ! skald_start; then
  FAILED=$((FAILED + 6))
  FAILED_NAMES+=("server-start")
  finish
fi

run_test python_logging_loki "$PY" "$HERE/python_logging_loki_test.py"
run_test winston_loki node "$HERE/winston_loki_test.js"
run_test pino_loki node "$HERE/pino_loki_test.js"
run_test tracing_loki "$TRACING_LOKI_BIN"
run_test grpc_reflection_and_health "$PY" "$HERE/grpc_reflection_test.py"

# Restart on the same data directory: what the clients were told was stored
# must still be there.
restart_check() {
  skald_stop || return 1
  if [ -z "$(ls -A "$MANIFEST_DIR")" ]; then
    echo "no client test left a manifest of what it pushed; nothing to check" >&2
    return 1
  fi
  skald_start || return 1
  SKALD_URL="$SKALD_URL" "$PY" "$HERE/verify_persisted.py" "$MANIFEST_DIR"/*.json
}
run_test restart_persistence restart_check

if [ -n "$SERVER_PID" ]; then
  skald_stop || { FAILED=$((FAILED + 1)); FAILED_NAMES+=("final-stop"); }
fi

finish
