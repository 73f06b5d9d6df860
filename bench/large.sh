#!/usr/bin/env bash
# The case a disk store exists for: a dataset several times larger than the block cache.
# Loads KEYS keys of VALUE bytes into quarry and (when KVROCKS_BIN is set) Kvrocks, both with
# `rocksdb.block_cache_size $CACHE_MB` and `workers $WORKERS`, drops the page cache (as root),
# then runs GET and SET on random keys at 50 clients against each, one after the other, and
# prints requests per second with p50 and p99 latency as a Markdown table.
#
#   bench/large.sh                                     # 5,000,000 keys of 512 bytes, 256 MB cache
#   KEYS=20000000 KVROCKS_BIN=~/peers/kvrocks/bin/kvrocks bench/large.sh
#
# Needs about KEYS x VALUE x 1.2 bytes of free disk per server under $WORK_DIR (default /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps --bench
source scripts/env.sh
cargo build --bin quarry >/dev/null
QUARRY="$CARGO_TARGET_DIR/debug/quarry"
KEYS="${KEYS:-5000000}"
VALUE="${VALUE:-512}"
CACHE_MB="${CACHE_MB:-256}"
WORKERS="${WORKERS:-2}"
REQUESTS="${REQUESTS:-300000}"
CLIENTS="${CLIENTS:-50}"
work=$(mktemp -d "${WORK_DIR:-/tmp}/quarry-large.XXXXXX")
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ping() { for _ in $(seq 300); do redis-cli -p "$1" ping >/dev/null 2>&1 && return; sleep 0.2; done; echo "no PING on $1" >&2; exit 1; }

start_quarry() {
  "$QUARRY" --port "$1" --dir "$work/quarry" --log-dir "$work" --workers "$WORKERS" \
    --rocksdb.block_cache_size "$CACHE_MB" >/dev/null 2>&1 &
  pids+=($!)
}
start_kvrocks() {
  mkdir -p "$work/kvrocks"
  printf 'bind 127.0.0.1\nport %s\ndir %s\nworkers %s\nrocksdb.block_cache_size %s\n' \
    "$1" "$work/kvrocks" "$WORKERS" "$CACHE_MB" >"$work/kvrocks.conf"
  "$KVROCKS_BIN" -c "$work/kvrocks.conf" >/dev/null 2>&1 &
  pids+=($!)
}

# Keys key:000000000000 ... as redis-benchmark's -r names them, so that GET finds them.
load() {
  echo "loading $KEYS keys of $VALUE bytes into $1 (port $2)" >&2
  # Every key once, in order, pipelined.
  python3 - "$2" "$KEYS" "$VALUE" <<'PY'
import socket, sys
port, n, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port))
value = b"x" * size
batch = 1000
for start in range(0, n, batch):
    parts = []
    for i in range(start, min(n, start + batch)):
        k = b"key:%012d" % i
        parts.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, size, value))
    s.sendall(b"".join(parts))
    want, got = min(n, start + batch) - start, 0
    buf = b""
    while got < want:
        buf += s.recv(65536)
        got = buf.count(b"\r\n")
PY
  redis-cli -p "$2" compact >/dev/null 2>&1 || true
}

measure() { # name port -> table rows
  sync
  echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || echo "(could not drop the page cache)" >&2
  for t in get set; do
    redis-benchmark -p "$2" -c "$CLIENTS" -n "$REQUESTS" -r "$KEYS" -d "$VALUE" -t "$t" --csv \
      | tail -n 1 | tr -d '"' \
      | awk -F, -v s="$1" '{ printf "| %s | %s | %.0f | %s | %s |\n", toupper($1), s, $2, $5, $7 }'
  done
}

qport=$(free_port); start_quarry "$qport"; wait_ping "$qport"
load quarry "$qport"
rows=$(measure quarry "$qport")
if [ -n "${KVROCKS_BIN:-}" ]; then
  kport=$(free_port); start_kvrocks "$kport"; wait_ping "$kport"
  load kvrocks "$kport"
  rows="$rows"$'\n'$(measure kvrocks "$kport")
fi
echo "$KEYS keys x $VALUE bytes, block cache $CACHE_MB MB, workers $WORKERS, $CLIENTS clients"
echo "disk: quarry $(du -sh "$work/quarry" | cut -f1)${KVROCKS_BIN:+, kvrocks $(du -sh "$work/kvrocks" | cut -f1)}"
echo
echo "| test | server | rps | p50 ms | p99 ms |"
echo "|---|---|---:|---:|---:|"
echo "$rows" | sort
