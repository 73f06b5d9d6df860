#!/usr/bin/env bash
# Replication benchmarks: catch-up speed after a replica restart with a 1,000,000-write gap,
# full-sync throughput for a 2 GB dataset, replication lag under a redis-benchmark load, and
# what continuous verification costs the benchmark (off, default, aggressive).
#
#   bench/replication.sh                      # all four
#   bench/replication.sh catchup lag verify   # some of them
#   GAP=200000 FULLSYNC_MB=512 bench/replication.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps --bench
source scripts/env.sh
cargo build --bin quarry >/dev/null
QUARRY="$CARGO_TARGET_DIR/debug/quarry" exec python3 bench/replication.py "$@"
