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

if [ $# -ne 1 ]; then
  echo "usage: $0 SKALD_BINARY" >&2
  exit 2
fi

HERE="$(cd "$(dirname "$0")" && pwd)"
SKALD_BIN="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
if [ ! -x "$SKALD_BIN" ]; then
  echo "not an executable: $SKALD_BIN" >&2
  exit 2
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/skald-clients.XXXXXX")"
DATA_DIR="$WORK/data"
MANIFEST_DIR="$WORK/manifests"
mkdir -p "$DATA_DIR" "$MANIFEST_DIR"
SERVER_PID=""
SERVER_LOG=""
RUN_NO=0

PASSED=0
FAILED=0
FAILED_NAMES=()

log() { echo "[clients] $*"; }

cleanup() {
  local rc=$?
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT

# ---------------------------------------------------------------- installs

PY_DIR="$HERE/.venv"
PY="$PY_DIR/bin/python"
PY_STAMP="$PY_DIR/.requirements.sha256"

python_deps() {
  local want have=""
  want="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
  [ -f "$PY_STAMP" ] && have="$(cat "$PY_STAMP")"
  if [ -x "$PY" ] && [ "$want" = "$have" ]; then
    return 0
  fi
  log "installing Python packages into $PY_DIR"
  rm -rf "$PY_DIR"
  if python3 -m venv "$PY_DIR" >/dev/null 2>&1; then
    "$PY" -m pip install --quiet --disable-pip-version-check --no-input -r "$HERE/requirements.txt"
  else
    # No ensurepip (Debian without python3-venv): a venv without pip,
    # filled by the system's pip.
    rm -rf "$PY_DIR"
    python3 -m venv --without-pip "$PY_DIR"
    python3 -m pip --python "$PY" install --quiet --disable-pip-version-check --no-input -r "$HERE/requirements.txt"
  fi
  echo "$want" >"$PY_STAMP"
}

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
TRACING_LOKI_BIN="$TRACING_LOKI_TARGET/debug/tracing-loki-check"

rust_deps() {
  log "building the tracing-loki check"
  cargo build --quiet --locked --manifest-path "$TRACING_LOKI_DIR/Cargo.toml" \
    --target-dir "$TRACING_LOKI_TARGET"
}

python_deps
node_deps
rust_deps

# ---------------------------------------------------------------- server

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

HTTP_PORT="$(free_port)"
GRPC_PORT="$(free_port)"
while [ "$GRPC_PORT" = "$HTTP_PORT" ]; do GRPC_PORT="$(free_port)"; done
SKALD_URL="http://127.0.0.1:$HTTP_PORT"

show_server_log() {
  echo "----- skald log ($SERVER_LOG) -----" >&2
  tail -n 200 "$SERVER_LOG" >&2 || true
  echo "----- end of skald log -----" >&2
}

start_server() {
  RUN_NO=$((RUN_NO + 1))
  SERVER_LOG="$WORK/skald.$RUN_NO.log"
  log "starting skald (#$RUN_NO) on $SKALD_URL, data in $DATA_DIR"
  "$SKALD_BIN" serve --data-dir "$DATA_DIR" \
    --http-addr "127.0.0.1:$HTTP_PORT" --grpc-addr "127.0.0.1:$GRPC_PORT" \
    >"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
  local deadline=$((SECONDS + 30))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "skald exited before it was ready" >&2
      show_server_log
      SERVER_PID=""
      return 1
    fi
    if python3 - "$SKALD_URL/ready" <<'PY' 2>/dev/null; then
import sys, urllib.request
sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=2).status == 200 else 1)
PY
      log "skald ready"
      return 0
    fi
    sleep 0.2
  done
  echo "skald did not answer 200 on /ready within 30 s" >&2
  show_server_log
  return 1
}

stop_server() {
  log "stopping skald (SIGTERM)"
  kill -TERM "$SERVER_PID"
  local deadline=$((SECONDS + 30)) rc=0
  while kill -0 "$SERVER_PID" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "skald did not stop within 30 s of SIGTERM" >&2
      show_server_log
      kill -KILL "$SERVER_PID" 2>/dev/null || true
      wait "$SERVER_PID" 2>/dev/null || true
      SERVER_PID=""
      return 1
    fi
    sleep 0.1
  done
  wait "$SERVER_PID" || rc=$?
  SERVER_PID=""
  if [ "$rc" -ne 0 ]; then
    echo "skald exited with status $rc after SIGTERM" >&2
    show_server_log
    return 1
  fi
}

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

if ! start_server; then
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
  stop_server || return 1
  if [ -z "$(ls -A "$MANIFEST_DIR")" ]; then
    echo "no client test left a manifest of what it pushed; nothing to check" >&2
    return 1
  fi
  start_server || return 1
  SKALD_URL="$SKALD_URL" "$PY" "$HERE/verify_persisted.py" "$MANIFEST_DIR"/*.json
}
run_test restart_persistence restart_check

if [ -n "$SERVER_PID" ]; then
  stop_server || { FAILED=$((FAILED + 1)); FAILED_NAMES+=("final-stop"); }
fi

finish
