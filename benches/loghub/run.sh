#!/bin/sh
# Grouping accuracy of Skald's pattern miner on Loghub-2k, per system and
# averaged, plus the miner's speed on the same lines.
#
# Usage: benches/loghub/run.sh <path of a logpai/loghub checkout>
#
# Loghub is licensed for research use: it is read where it is, never copied
# into this repository.
set -eu
if [ $# -ne 1 ] || [ ! -d "$1" ]; then
    echo "usage: $0 <loghub checkout>" >&2
    exit 2
fi
cd "$(dirname "$0")/../.."
exec cargo run --quiet --release -p skald-analysis --example loghub -- "$1"
