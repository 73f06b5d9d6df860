#!/usr/bin/env bash
# Runs the same redis-benchmark against quarry, Kvrocks (when KVROCKS_BIN points at a kvrocks
# binary, e.g. one built by ../shared/peers/build-kvrocks.sh) and Debian's redis-server
# (persistence off), side by side, and prints a Markdown table: requests per second, the
# quarry/kvrocks and quarry/redis ratios, and p50/p99 latency per server.
#
#   bench/compare.sh                       # 50 clients, 128-byte values, 1,000,000 random keys
#   KVROCKS_BIN=~/peers/kvrocks/bin/kvrocks bench/compare.sh
#   TESTS=set,get PIPELINES=16 bench/compare.sh   # a subset (default: SET GET INCR MSET LPUSH
#                                                 # LRANGE_100 SADD HSET ZADD; pipelines 1,16)
#   REQUESTS=500000 ROUNDS=5 WORKERS=8 bench/compare.sh
#
# The servers take turns test by test (quarry, kvrocks, redis), ROUNDS times (default 3), and
# each keeps its best run per row: background work (RocksDB flushes and compactions) then lands
# in no single server's numbers. quarry and Kvrocks both run with `workers $WORKERS` (default 2,
# one per core here) and their defaults otherwise (WAL on, not fsynced). QUARRY_ARGS adds
# quarry options; KVROCKS_ARGS adds kvrocks.conf lines, separated by ';'.
# All servers run on this machine, on free loopback ports, and are stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps --bench
source scripts/env.sh
cargo build --bin quarry >/dev/null
export QUARRY="$CARGO_TARGET_DIR/debug/quarry"
exec python3 bench/compare.py
