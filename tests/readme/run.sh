#!/usr/bin/env bash
# Runs the README's commands, so that it never lies: every ```sh block in
# document order (one bash -euo pipefail each, all in one scratch
# directory, so later blocks see the files earlier ones made) and every
# ```python block, against a fresh `skald serve` on free ports.
# `127.0.0.1:3100` and `:9095` in the blocks are rewritten to those ports,
# SKALD_ADDR points the CLI at the server, and `skald` on PATH is the binary
# under test. ```sh no-run blocks (the long-running server, the whole test
# suite, external tools) are only shown, and checked for what they claim
# where that can be checked (the defaults of `skald serve`).
#
# Python blocks need python-logging-loki: README_PYTHON, else the
# virtualenv tests/clients/run.sh makes.
#
# Usage: tests/readme/run.sh path/to/skald [README.md]
# Prints "N passed, M failed" as its last line; exits non-zero if any failed.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 SKALD_BINARY [README]" >&2
  exit 2
fi
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SKALD_BIN="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
README="${2:-$ROOT/README.md}"
[ -x "$SKALD_BIN" ] || { echo "not an executable: $SKALD_BIN" >&2; exit 2; }

PY="${README_PYTHON:-$ROOT/tests/clients/.venv/bin/python}"
if ! "$PY" -c 'import logging_loki' 2>/dev/null; then
  echo "no Python with python-logging-loki at $PY: run tests/clients/run.sh first, or set README_PYTHON" >&2
  exit 2
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/skald-readme.XXXXXX")"
SERVER_PID=""
cleanup() {
  local rc=$?
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT

log() { echo "[readme] $*"; }
PASSED=0
FAILED=0
SKIPPED=0

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
HTTP_PORT="$(free_port)"
GRPC_PORT="$(free_port)"
while [ "$GRPC_PORT" = "$HTTP_PORT" ]; do GRPC_PORT="$(free_port)"; done

# What the opening block says of `skald serve` without flags.
defaults_check() {
  local help
  help="$("$SKALD_BIN" serve --help)"
  for want in '[default: data]' '[default: 127.0.0.1:3100]' '[default: 127.0.0.1:9095]'; do
    if ! grep -qF -- "$want" <<<"$help"; then
      echo "skald serve --help does not show $want, which the README's opening block promises" >&2
      return 1
    fi
  done
}
if defaults_check; then
  log "PASS serve defaults (data in ./data, HTTP 127.0.0.1:3100, gRPC 127.0.0.1:9095)"
  PASSED=$((PASSED + 1))
else
  log "FAIL serve defaults"
  FAILED=$((FAILED + 1))
fi

mkdir -p "$WORK/bin" "$WORK/play" "$WORK/blocks"
ln -s "$SKALD_BIN" "$WORK/bin/skald"
"$SKALD_BIN" serve --data-dir "$WORK/server-data" \
  --http-addr "127.0.0.1:$HTTP_PORT" --grpc-addr "127.0.0.1:$GRPC_PORT" \
  >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 150); do
  curl -sf "http://127.0.0.1:$HTTP_PORT/ready" >/dev/null 2>&1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
  sleep 0.2
done
log "skald serving on 127.0.0.1:$HTTP_PORT (gRPC $GRPC_PORT)"

while read -r verdict file line first; do
  if [ "$verdict" = "skip" ]; then
    # "skip INFO LINE FIRST": `file` holds the info string here.
    log "skip line $line (${file}): ${first:0:70}"
    SKIPPED=$((SKIPPED + 1))
    continue
  fi
  path="$WORK/blocks/$file"
  case "$file" in
    *.sh) cmd=(bash -euo pipefail "$path") ;;
    *.py) cmd=("$PY" "$path") ;;
  esac
  if (cd "$WORK/play" && PATH="$WORK/bin:$PATH" SKALD_ADDR="http://127.0.0.1:$HTTP_PORT" \
      NO_COLOR=1 timeout 120 "${cmd[@]}" </dev/null >"$path.out" 2>&1); then
    log "PASS line $line: ${first:0:70}"
    PASSED=$((PASSED + 1))
  else
    rc=$?
    log "FAIL line $line (exit $rc): ${first:0:70}"
    sed 's/^/    | /' "$path" >&2
    echo "    output:" >&2
    sed 's/^/    > /' "$path.out" >&2
    FAILED=$((FAILED + 1))
  fi
done < <(python3 "$HERE/blocks.py" "$README" "$WORK/blocks" "$HTTP_PORT" "$GRPC_PORT")

if [ $((PASSED + FAILED)) -le 1 ]; then
  echo "no block of $README was run (see blocks.py's error above)" >&2
  FAILED=$((FAILED + 1))
fi
if [ "$FAILED" -gt 0 ]; then
  echo "----- skald log -----" >&2
  tail -n 50 "$WORK/server.log" >&2
fi
echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
[ "$FAILED" -eq 0 ]
