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

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
TAG=ui
# shellcheck source=../lib/skald.sh
. "$HERE/../lib/skald.sh"
skald_setup "$@"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
  echo "no Chromium at $CHROMIUM (apt-get install chromium)" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

# Playwright for Python, its own browser download never used.
python_venv "$HERE/.venv" "$HERE/requirements.txt"
skald_start || { echo "0 passed, 1 failed"; exit 1; }

# ---------------------------------------------------------------- tests

SHOTS="$ROOT/target/ui-screenshots"
mkdir -p "$SHOTS"
rc=0
SKALD_URL="$SKALD_URL" SCREENSHOT_DIR="$SHOTS" CHROMIUM="$CHROMIUM" PROFILE_DIR="$WORK/profile" \
  "$PY" "$HERE/ui_test.py" || rc=$?
[ "$rc" -eq 0 ] || show_server_log
log "screenshots in $SHOTS"
exit "$rc"
