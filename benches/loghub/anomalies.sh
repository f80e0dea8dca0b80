#!/bin/sh
# Precision and recall of Skald's anomaly detector on Loghub-2k lines with
# injected anomalies (spikes, drops, silences, new error bursts).
#
# Usage: benches/loghub/anomalies.sh <path of a logpai/loghub checkout>
#
# Loghub is licensed for research use: it is read where it is, never copied
# into this repository.
set -eu
if [ $# -ne 1 ] || [ ! -d "$1" ]; then
    echo "usage: $0 <loghub checkout>" >&2
    exit 2
fi
cd "$(dirname "$0")/../.."
exec cargo run --quiet --release -p skald-analysis --example anomalies -- "$1"
