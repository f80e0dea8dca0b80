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
# A block passes when it exits 0 and its output (stdout and stderr) holds
# every regex expect.tsv gives for it (keyed by its first line).
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
README="${2:-$ROOT/README.md}"
TAG=readme
# shellcheck source=../lib/skald.sh
. "$HERE/../lib/skald.sh"
skald_setup "$1"

PY="${README_PYTHON:-$ROOT/tests/clients/.venv/bin/python}"
if ! "$PY" -c 'import logging_loki' 2>/dev/null; then
  echo "no Python with python-logging-loki at $PY: run tests/clients/run.sh first, or set README_PYTHON" >&2
  exit 2
fi

PASSED=0
FAILED=0
SKIPPED=0

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
skald_start || exit 1

declare -A USED=()
# Checks the output of the block whose first line is $1 against expect.tsv.
expectations_met() {
  local first=$1 out=$2 key regex ok=0
  while IFS=$'\t' read -r key regex; do
    case "$key" in '#'*|'') continue ;; esac
    [[ "$first" == "$key"* ]] || continue
    USED["$key"]=1
    if ! grep -qE -- "$regex" "$out"; then
      echo "    expected output matching: $regex" >&2
      ok=1
    fi
  done <"$HERE/expect.tsv"
  return "$ok"
}

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
      NO_COLOR=1 timeout 120 "${cmd[@]}" </dev/null >"$path.out" 2>&1) &&
    expectations_met "$first" "$path.out"; then
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

while IFS=$'\t' read -r key _; do
  case "$key" in '#'*|'') continue ;; esac
  if [ -z "${USED[$key]:-}" ]; then
    echo "[readme] FAIL expect.tsv names a block that is not in the README: $key" >&2
    FAILED=$((FAILED + 1))
  fi
done <"$HERE/expect.tsv"
if [ $((PASSED + FAILED)) -le 1 ]; then
  echo "no block of $README was run (see blocks.py's error above)" >&2
  FAILED=$((FAILED + 1))
fi
[ "$FAILED" -eq 0 ] || show_server_log
echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
[ "$FAILED" -eq 0 ]
