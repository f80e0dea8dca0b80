# Sourced by the script suites under tests/: the binary check, a Python
# virtualenv from a requirements file, and one `skald serve` on free
# loopback ports, stopped (and the work directory removed) on exit.
#
# Set TAG (the log prefix) before sourcing; then:
#   skald_setup SKALD_BINARY   SKALD_BIN, WORK (a new temporary directory)
#   python_venv DIR REQS       PY: DIR's python, with REQS installed (again
#                              only when REQS changes)
#   skald_start [ARG...]       starts `skald serve ARG...` on $WORK/data and
#                              waits for /ready: SKALD_URL, HTTP_PORT,
#                              GRPC_PORT (chosen once, kept by restarts),
#                              SERVER_PID, SERVER_LOG
#   skald_stop                 SIGTERM; fails unless it exits 0 within 30 s
#   show_server_log            the end of the current server log, to stderr

log() { echo "[$TAG] $*"; }

skald_setup() {
  if [ $# -ne 1 ]; then
    echo "usage: $0 SKALD_BINARY" >&2
    exit 2
  fi
  SKALD_BIN="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
  if [ ! -x "$SKALD_BIN" ]; then
    echo "not an executable: $SKALD_BIN" >&2
    exit 2
  fi
  WORK="$(mktemp -d "${TMPDIR:-/tmp}/skald-$TAG.XXXXXX")"
  SERVER_PID=""
  SERVER_LOG=""
  SERVER_RUNS=0
  HTTP_PORT=""
  GRPC_PORT=""
  trap _skald_cleanup EXIT
}

_skald_cleanup() {
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

python_venv() {
  local dir=$1 reqs=$2 want have=""
  PY="$dir/bin/python"
  want="$(sha256sum "$reqs" | cut -d' ' -f1)"
  [ -f "$dir/.requirements.sha256" ] && have="$(cat "$dir/.requirements.sha256")"
  if [ -x "$PY" ] && [ "$want" = "$have" ]; then
    return 0
  fi
  log "installing $(basename "$reqs") into $dir"
  rm -rf "$dir"
  if python3 -m venv "$dir" >/dev/null 2>&1; then
    "$PY" -m pip install --quiet --disable-pip-version-check --no-input -r "$reqs"
  else
    # No ensurepip (Debian without python3-venv): a venv without pip,
    # filled by the system's pip.
    rm -rf "$dir"
    python3 -m venv --without-pip "$dir"
    python3 -m pip --python "$PY" install --quiet --disable-pip-version-check --no-input -r "$reqs"
  fi
  echo "$want" >"$dir/.requirements.sha256"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

show_server_log() {
  echo "----- skald log ($SERVER_LOG) -----" >&2
  tail -n 200 "$SERVER_LOG" >&2 || true
  echo "----- end of skald log -----" >&2
}

skald_start() {
  if [ -z "$HTTP_PORT" ]; then
    HTTP_PORT="$(free_port)"
    GRPC_PORT="$(free_port)"
    while [ "$GRPC_PORT" = "$HTTP_PORT" ]; do GRPC_PORT="$(free_port)"; done
  fi
  SKALD_URL="http://127.0.0.1:$HTTP_PORT"
  SERVER_RUNS=$((SERVER_RUNS + 1))
  SERVER_LOG="$WORK/skald.$SERVER_RUNS.log"
  log "starting skald (#$SERVER_RUNS) on $SKALD_URL (gRPC $GRPC_PORT)"
  "$SKALD_BIN" serve --data-dir "$WORK/data" \
    --http-addr "127.0.0.1:$HTTP_PORT" --grpc-addr "127.0.0.1:$GRPC_PORT" "$@" \
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
    if python3 -c 'import sys, urllib.request; sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=2).status == 200 else 1)' \
      "$SKALD_URL/ready" 2>/dev/null; then
      log "skald ready"
      return 0
    fi
    sleep 0.2
  done
  echo "skald did not answer 200 on /ready within 30 s" >&2
  show_server_log
  return 1
}

skald_stop() {
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
