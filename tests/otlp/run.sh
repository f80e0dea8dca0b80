#!/usr/bin/env bash
# Runs the real OpenTelemetry Python SDK (OTLP/HTTP and OTLP gRPC exporters,
# through logging's LoggingHandler) against a Skald binary; see otlp_test.py.
#
# Usage: tests/otlp/run.sh path/to/skald
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

WORK="$(mktemp -d "${TMPDIR:-/tmp}/skald-otlp.XXXXXX")"
SERVER_PID=""
log() { echo "[otlp] $*"; }

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

# The SDK, pinned, in a venv of its own (reinstalled when requirements.txt
# changes).
PY_DIR="$HERE/.venv"
PY="$PY_DIR/bin/python"
PY_STAMP="$PY_DIR/.requirements.sha256"
want="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
have=""
[ -f "$PY_STAMP" ] && have="$(cat "$PY_STAMP")"
if [ ! -x "$PY" ] || [ "$want" != "$have" ]; then
  log "installing the OpenTelemetry SDK into $PY_DIR"
  rm -rf "$PY_DIR"
  if python3 -m venv "$PY_DIR" >/dev/null 2>&1; then
    "$PY" -m pip install --quiet --disable-pip-version-check --no-input -r "$HERE/requirements.txt"
  else
    rm -rf "$PY_DIR"
    python3 -m venv --without-pip "$PY_DIR"
    python3 -m pip --python "$PY" install --quiet --disable-pip-version-check --no-input -r "$HERE/requirements.txt"
  fi
  echo "$want" >"$PY_STAMP"
fi

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
HTTP_PORT="$(free_port)"
GRPC_PORT="$(free_port)"
while [ "$GRPC_PORT" = "$HTTP_PORT" ]; do GRPC_PORT="$(free_port)"; done

"$SKALD_BIN" serve --data-dir "$WORK/data" \
  --http-addr "127.0.0.1:$HTTP_PORT" --grpc-addr "127.0.0.1:$GRPC_PORT" \
  >"$WORK/skald.log" 2>&1 &
SERVER_PID=$!
deadline=$((SECONDS + 30))
ready() {
  python3 -c 'import sys, urllib.request; sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=2).status == 200 else 1)' \
    "http://127.0.0.1:$HTTP_PORT/ready" 2>/dev/null
}
until ready; do
  if ! kill -0 "$SERVER_PID" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
    echo "skald did not become ready" >&2
    cat "$WORK/skald.log" >&2
    echo "0 passed, 1 failed"
    exit 1
  fi
  sleep 0.2
done
log "skald ready on $HTTP_PORT (gRPC $GRPC_PORT)"

rc=0
SKALD_URL="http://127.0.0.1:$HTTP_PORT" SKALD_GRPC="127.0.0.1:$GRPC_PORT" \
  "$PY" "$HERE/otlp_test.py" || rc=$?
if [ "$rc" -ne 0 ]; then
  echo "----- skald log -----" >&2
  tail -n 100 "$WORK/skald.log" >&2
fi
exit "$rc"
