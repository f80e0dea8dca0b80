#!/usr/bin/env bash
# CI's run of Loki's own tools against Skald: builds logcli and lokitool
# from Loki's source (build-logcli.sh, offline, Go from PyPI) and runs
# every check of check.py with both.
#
# Loki's source, the first found:
#   - $LOKI_SRC: a Loki checkout, or a .tar.gz of one;
#   - loki-src.tar.gz in the shared/ folder beside the repository (made by
#     pack-loki-source.sh).
# Without either, says so and succeeds: the shapes logcli decodes are
# pinned all the same by crates/server/tests/logcli_shapes.rs.
#
# Usage: tests/logcli/ci.sh path/to/skald
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 SKALD_BINARY" >&2
  exit 2
fi
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SRC="${LOKI_SRC:-}"
if [ -z "$SRC" ] && [ -f "$ROOT/../shared/loki-src.tar.gz" ]; then
  SRC="$ROOT/../shared/loki-src.tar.gz"
fi
if [ -z "$SRC" ] || [ ! -e "$SRC" ]; then
  echo "[logcli] skipped: no Loki source (LOKI_SRC, or shared/loki-src.tar.gz; see tests/logcli/README.md)"
  exit 0
fi
TOOLS="$ROOT/target/loki-tools"
if [ ! -x "$TOOLS/logcli" ] || [ ! -x "$TOOLS/lokitool" ] || [ "$SRC" -nt "$TOOLS/logcli" ]; then
  echo "[logcli] building logcli and lokitool from $SRC"
  bash "$HERE/build-logcli.sh" "$SRC" "$TOOLS"
fi
LOKITOOL="$TOOLS/lokitool" exec bash "$HERE/run.sh" "$1" "$TOOLS/logcli"
