#!/usr/bin/env bash
# Runs the same redis-benchmark against quarry and against Debian's redis-server (persistence
# off) side by side, and prints requests per second and the quarry/redis ratio.
#
#   bench/compare.sh            # 50 clients, 128-byte values, 1,000,000 random keys
#   REQUESTS=500000 bench/compare.sh
#   TESTS=set,get bench/compare.sh   # a subset (default: SET GET INCR MSET LPUSH LRANGE_100
#                                    # SADD HSET ZADD)
#
# Both servers run on this machine, on free loopback ports, and are stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps --bench
source scripts/env.sh
cargo build --bin quarry >/dev/null
QUARRY="$CARGO_TARGET_DIR/debug/quarry"
REQUESTS="${REQUESTS:-200000}"
CLIENTS="${CLIENTS:-50}"
TESTS="${TESTS:-set,get,incr,mset,lpush,lrange_100,sadd,hset,zadd}"

work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
qport=$(free_port); rport=$(free_port)
"$QUARRY" --port "$qport" --dir "$work/quarry" --log-dir "$work" ${QUARRY_ARGS:-} &
qpid=$!
redis-server --port "$rport" --save '' --appendonly no --dir "$work" --daemonize no >"$work/redis.log" 2>&1 &
rpid=$!
trap 'kill $qpid $rpid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
for p in "$qport" "$rport"; do
  for _ in $(seq 100); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
done

run() { # port pipeline test -> requests per second
  redis-benchmark -p "$1" -c "$CLIENTS" -n "$REQUESTS" -d 128 -r 1000000 -P "$2" -t "$3" --csv 2>/dev/null \
    | tail -n 1 | tr -d '"' | awk -F, '{print $2}'   # LRANGE_100 prints the LPUSH it needs first
}

# Each test runs against Redis first and then quarry, one test at a time, so that neither
# server's background work (RocksDB flushes and compactions) lands in the other's numbers.
printf '%-28s %14s %14s %8s\n' "test" "quarry rps" "redis rps" "ratio"
for pipeline in 1 16; do
  for t in ${TESTS//,/ }; do
    rrps=$(run "$rport" "$pipeline" "$t"); qrps=$(run "$qport" "$pipeline" "$t")
    label="$(echo "$t" | tr a-z A-Z)"; [ "$pipeline" != 1 ] && label="$label -P $pipeline"
    awk -v l="$label" -v q="$qrps" -v r="$rrps" 'BEGIN { printf "%-28s %14.0f %14.0f %8.2f\n", l, q, r, (r > 0 ? q / r : 0) }'
  done
done
