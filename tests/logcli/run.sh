#!/usr/bin/env bash
# Runs Loki's own logcli (every command), and lokitool's rules commands
# when LOKITOOL names one, against a fresh `skald serve` and checks each
# answer is the one Loki gives (check.py says what is run and checked).
# Skipped, successfully, when no logcli binary is given; ci.sh builds both
# tools from Loki's source (README.md here).
#
# Usage: [LOKITOOL=path/to/lokitool] tests/logcli/run.sh path/to/skald [path/to/logcli]
#        (or LOGCLI=path/to/logcli tests/logcli/run.sh path/to/skald)
# Prints "N passed, M failed" as its last line.
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 SKALD_BINARY [LOGCLI_BINARY]" >&2
  exit 2
fi
HERE="$(cd "$(dirname "$0")" && pwd)"
SKALD_BIN="$1"
LOGCLI_BIN="${2:-${LOGCLI:-}}"
if [ -z "$LOGCLI_BIN" ]; then
  echo "[logcli] skipped: no logcli binary given (see tests/logcli/README.md)"
  exit 0
fi
[ -x "$SKALD_BIN" ] || { echo "not an executable: $SKALD_BIN" >&2; exit 2; }
[ -x "$LOGCLI_BIN" ] || { echo "not an executable: $LOGCLI_BIN" >&2; exit 2; }
echo "[logcli] $("$LOGCLI_BIN" --version 2>&1 | head -n 1)"
if [ -n "${LOKITOOL:-}" ]; then
  [ -x "$LOKITOOL" ] || { echo "not an executable: $LOKITOOL" >&2; exit 2; }
  echo "[logcli] with lokitool $("$LOKITOOL" version 2>&1 | head -n 1)"
fi
exec python3 "$HERE/check.py" "$LOGCLI_BIN" "$SKALD_BIN"
