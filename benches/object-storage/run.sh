#!/usr/bin/env bash
# Skald with its segments in S3 (an in-process S3 server on loopback,
# crates/store/examples/s3_server.rs) and, with --catalog, its catalog in
# a throwaway PostgreSQL: `skald bench` then reports, beside the usual
# figures, what each query fetched from the bucket cold and warm.
#
#   benches/object-storage/run.sh [--catalog] [skald bench options...]
#
# Needs a release build (`cargo build --release -p skald` and
# `cargo build --release -p skald-store --example s3_server`) and, for
# --catalog, Debian's postgresql package. Nothing leaves the machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
skald=target/release/skald
s3=target/release/examples/s3_server
[[ -x $skald && -x $s3 ]] || { echo "build first: cargo build --release -p skald && cargo build --release -p skald-store --example s3_server" >&2; exit 2; }

catalog=false
if [[ ${1:-} == --catalog ]]; then catalog=true; shift; fi

work=$(mktemp -d)
chmod 755 "$work"
cleanup() {
  [[ -n ${s3_pid:-} ]] && kill "$s3_pid" 2>/dev/null || true
  if $catalog && [[ -d $work/pg ]]; then
    runuser -u postgres -- "$pg_bin/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

"$s3" > "$work/s3.txt" &
s3_pid=$!
for _ in $(seq 50); do [[ -s $work/s3.txt ]] && break; sleep 0.1; done
read -r endpoint bucket key secret < "$work/s3.txt"
export AWS_ACCESS_KEY_ID=$key AWS_SECRET_ACCESS_KEY=$secret AWS_REGION=us-east-1

args=(--server-arg=--storage --server-arg="s3://$bucket/bench" --server-arg=--s3-endpoint --server-arg="$endpoint")
if $catalog; then
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  port=$((20000 + RANDOM % 20000))
  mkdir -p "$work/pg" && chown postgres "$work/pg"
  echo bench > "$work/pg/pw" && chown postgres "$work/pg/pw"
  runuser -u postgres -- "$pg_bin/initdb" -D "$work/pg/data" -U skald --auth=scram-sha-256 --pwfile="$work/pg/pw" --no-sync >/dev/null
  runuser -u postgres -- "$pg_bin/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w \
    -o "-p $port -k $work/pg -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
  PGPASSWORD=bench psql -h 127.0.0.1 -p "$port" -U skald -d postgres -qc 'CREATE DATABASE bench'
  args+=(--server-arg=--catalog --server-arg="postgres://skald:bench@127.0.0.1:$port/bench")
fi
"$skald" bench "${args[@]}" "$@"
