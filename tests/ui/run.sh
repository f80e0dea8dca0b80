#!/usr/bin/env bash
# Drives Skald's web UI in a real browser: Debian's Chromium, headless,
# through Playwright for Python (its own browser download is never used).
# Starts the given binary on free ports with a fresh data directory, runs
# tests/ui/ui_test.py against it, and leaves a screenshot of every view in
# target/ui-screenshots/.
#
# Usage: tests/ui/run.sh path/to/skald
# Needs /usr/bin/chromium (.ci/run installs it). Prints "N passed, M failed"
# as its last line; exits non-zero if any failed.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 SKALD_BINARY" >&2
  exit 2
fi

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SKALD_BIN="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
if [ ! -x "$SKALD_BIN" ]; then
  echo "not an executable: $SKALD_BIN" >&2
  exit 2
fi
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
  echo "no Chromium at $CHROMIUM (apt-get install chromium)" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

log() { echo "[ui] $*"; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/skald-ui.XXXXXX")"
SERVER_PID=""
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
want="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
have=""
[ -f "$PY_STAMP" ] && have="$(cat "$PY_STAMP")"
if [ ! -x "$PY" ] || [ "$want" != "$have" ]; then
  log "installing Playwright for Python into $PY_DIR (no browser download)"
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

# ---------------------------------------------------------------- server

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
HTTP_PORT="$(free_port)"
GRPC_PORT="$(free_port)"
while [ "$GRPC_PORT" = "$HTTP_PORT" ]; do GRPC_PORT="$(free_port)"; done
SKALD_URL="http://127.0.0.1:$HTTP_PORT"
SERVER_LOG="$WORK/skald.log"

log "starting skald on $SKALD_URL"
"$SKALD_BIN" serve --data-dir "$WORK/data" \
  --http-addr "127.0.0.1:$HTTP_PORT" --grpc-addr "127.0.0.1:$GRPC_PORT" \
  >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!
ready=0
for _ in $(seq 1 150); do
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
  if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$SKALD_URL/ready" 2>/dev/null; then
    ready=1
    break
  fi
  sleep 0.2
done
if [ "$ready" != 1 ]; then
  echo "skald did not become ready" >&2
  tail -n 100 "$SERVER_LOG" >&2 || true
  echo "0 passed, 1 failed"
  exit 1
fi

# ---------------------------------------------------------------- tests

SHOTS="$ROOT/target/ui-screenshots"
mkdir -p "$SHOTS"
rc=0
SKALD_URL="$SKALD_URL" SCREENSHOT_DIR="$SHOTS" CHROMIUM="$CHROMIUM" PROFILE_DIR="$WORK/profile" \
  "$PY" "$HERE/ui_test.py" || rc=$?
if [ "$rc" -ne 0 ]; then
  echo "----- skald log -----" >&2
  tail -n 100 "$SERVER_LOG" >&2 || true
fi
log "screenshots in $SHOTS"
exit "$rc"
