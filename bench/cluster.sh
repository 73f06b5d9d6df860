#!/usr/bin/env bash
# redis-benchmark against a local 3-master quarry cluster (--cluster) and against one quarry
# node, same load: 50 clients, 128-byte values, 1,000,000 random keys, SET and GET.
#
#   bench/cluster.sh
#   REQUESTS=500000 bench/cluster.sh
#
# All nodes run on this machine, on free loopback ports, and are stopped at the end. On a
# 2-core machine the three masters share the cores, so the cluster shows what routing costs
# rather than what more machines would give.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps --bench
source scripts/env.sh
cargo build --bin quarry --bin quarry-cluster >/dev/null
QUARRY="$CARGO_TARGET_DIR/debug/quarry"
ADMIN="$CARGO_TARGET_DIR/debug/quarry-cluster"
REQUESTS="${REQUESTS:-200000}"
CLIENTS="${CLIENTS:-50}"

work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start() { # port extra-args...
  local port=$1; shift
  "$QUARRY" --port "$port" --dir "$work/$port" --log-dir "$work/$port" "$@" &
  pids+=($!)
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && return; sleep 0.1; done
  echo "node $port did not start" >&2; exit 1
}

single=$(free_port); start "$single"
ports=(); addrs=()
for _ in 1 2 3; do p=$(free_port); start "$p" --cluster-enabled yes; ports+=("$p"); addrs+=("127.0.0.1:$p"); done
"$ADMIN" create "${addrs[@]}" >/dev/null

run() { # extra-args... -> "set_rps get_rps"
  redis-benchmark "$@" -c "$CLIENTS" -n "$REQUESTS" -d 128 -r 1000000 -t set,get --csv 2>/dev/null \
    | grep -E '^"(SET|GET)"' | tr -d '"' | awk -F, '{printf "%s ", $2}'
}
read -r s_set s_get <<<"$(run -p "$single")"
read -r c_set c_get <<<"$(run --cluster -p "${ports[0]}")"
printf '%-8s %16s %22s %8s\n' "test" "one node rps" "3-master cluster rps" "ratio"
awk -v a="$s_set" -v b="$c_set" 'BEGIN { printf "%-8s %16.0f %22.0f %8.2f\n", "SET", a, b, b / a }'
awk -v a="$s_get" -v b="$c_get" 'BEGIN { printf "%-8s %16.0f %22.0f %8.2f\n", "GET", a, b, b / a }'
