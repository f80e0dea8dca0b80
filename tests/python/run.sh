#!/usr/bin/env bash
# Runs the Python client's functional suite (python/tests/test_functional.py)
# against a Skald binary: every LogService operation, valid and invalid input.
#
# Usage: tests/python/run.sh path/to/skald
# Creates python/.venv if needed, installs grpcio, grpcio-tools, protobuf and
# ./python (stubs generated from the proto by its build) into it, runs the
# suite. Prints "N passed, M failed" as its last line; exits non-zero if any
# failed.
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

log() { echo "[python] $*"; }
fail() {
  echo "$*" >&2
  echo "0 passed, 1 failed"
  exit 1
}

PY_DIR="$ROOT/python/.venv"
PY="$PY_DIR/bin/python"
PY_STAMP="$PY_DIR/.requirements.sha256"
PIP_FLAGS=(--quiet --disable-pip-version-check --no-input)

# pip of the venv, or the system's pip aimed at the venv when the venv was
# made without pip (no ensurepip: Debian without python3-venv).
venv_pip() {
  if "$PY" -m pip --version >/dev/null 2>&1; then
    "$PY" -m pip "$@"
  else
    python3 -m pip --python "$PY" "$@"
  fi
}

python_deps() {
  local want have=""
  want="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
  [ -f "$PY_STAMP" ] && have="$(cat "$PY_STAMP")"
  if [ -x "$PY" ] && [ "$want" = "$have" ]; then
    return 0
  fi
  log "installing Python packages into $PY_DIR"
  rm -rf "$PY_DIR"
  if ! python3 -m venv "$PY_DIR" >/dev/null 2>&1; then
    rm -rf "$PY_DIR"
    python3 -m venv --without-pip "$PY_DIR"
  fi
  venv_pip install "${PIP_FLAGS[@]}" -r "$HERE/requirements.txt"
  echo "$want" >"$PY_STAMP"
}

python_deps || fail "could not create the venv or install the requirements"

# The package itself, every run: its stubs are regenerated from the current
# proto. No build isolation, so the venv's pinned grpcio-tools generates them
# (matching the grpcio and protobuf installed beside it).
log "installing ./python"
venv_pip install "${PIP_FLAGS[@]}" --no-build-isolation --no-deps --force-reinstall "$ROOT/python" \
  || fail "could not install ./python"

# The Rust client's side of the cross-client checks.
log "building the Rust client's crosscheck example"
(cd "$ROOT" && cargo build --quiet --release -p skald-client --example crosscheck) \
  || fail "could not build the crosscheck example"
CROSSCHECK_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/crosscheck"

log "running the functional suite against $SKALD_BIN"
cd "$ROOT"
SKALD_BIN="$SKALD_BIN" SKALD_CROSSCHECK_BIN="$CROSSCHECK_BIN" "$PY" "$ROOT/python/tests/test_functional.py"
