#!/usr/bin/env python3
"""Replication benchmarks for quarry (issue 4), run by bench/replication.sh.

1. Catch-up after a replica restart with a gap of GAP writes: batches/s and MB/s.
2. Full-sync throughput for a dataset of FULLSYNC_MB megabytes: MB/s.
3. Replication lag (p50/p99) under a redis-benchmark SET load.
4. What continuous verification costs: redis-benchmark SET throughput on a master with a
   replica, verification off (verify-cycle-seconds 0), at its defaults, and at an aggressive
   setting (the whole keyspace every VERIFY_FAST_CYCLE seconds), on VERIFY_KEYS preloaded keys.

Every node runs on a free loopback port with its own directory and is stopped at the end.
"""
import os, socket, subprocess, sys, tempfile, time, shutil, statistics, threading

QUARRY = os.environ["QUARRY"]
GAP = int(os.environ.get("GAP", "1000000"))
FULLSYNC_MB = int(os.environ.get("FULLSYNC_MB", "2048"))
LAG_SECONDS = int(os.environ.get("LAG_SECONDS", "20"))
VERIFY_KEYS = int(os.environ.get("VERIFY_KEYS", "200000"))
VERIFY_FAST_CYCLE = int(os.environ.get("VERIFY_FAST_CYCLE", "20"))
VERIFY_REQUESTS = int(os.environ.get("VERIFY_REQUESTS", "300000"))
VERIFY_ROUNDS = int(os.environ.get("VERIFY_ROUNDS", "3"))
WORK = tempfile.mkdtemp(prefix="quarry-bench-")
procs = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start(name, *args, port=None):
    port = port or free_port()
    d = os.path.join(WORK, name)
    os.makedirs(d, exist_ok=True)
    p = subprocess.Popen([QUARRY, "--port", str(port), "--dir", d, "--log-dir", d, *args],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(p)
    for _ in range(300):
        try:
            if cmd(port, "PING") == "PONG":
                return port, p
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{name} did not start")


def stop(p):
    p.terminate()
    p.wait(60)


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.f = self.s.makefile("rb")

    def call(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.s.sendall(out)
        return self.read()

    def read(self):
        line = self.f.readline()[:-2]
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)[:-2]
            return data.decode(errors="replace")
        if t == b"*":
            return [self.read() for _ in range(int(rest))]
        raise RuntimeError(f"bad reply {line!r}")


def cmd(port, *args):
    c = Conn(port)
    try:
        return c.call(*args)
    finally:
        c.s.close()


def info(port, field, section="replication"):
    for line in cmd(port, "INFO", section).splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1]
    return ""


def wait_synced(m, r, timeout=3600):
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            if info(r, "master_link_status") == "up" and \
                    info(m, "master_repl_offset") == info(r, "master_repl_offset"):
                return
        except (OSError, RuntimeError):
            pass
        time.sleep(0.01)
    raise RuntimeError("replica did not catch up")


def same_digest(m, r, timeout=60):
    # Compared at one sequence (writes may still be arriving).
    t0 = time.time()
    while True:
        dm, dr = cmd(m, "DIGEST"), cmd(r, "DIGEST")
        if dm[1] == dr[1]:
            if dm != dr:
                raise RuntimeError(f"digests differ: {dm} vs {dr}")
            return dm
        if time.time() - t0 > timeout:
            raise RuntimeError(f"never at one sequence: {dm} vs {dr}")
        time.sleep(0.05)


def bench_load(port, n, size, pipeline=16, clients=50, keyspace=1000000):
    subprocess.run(["redis-benchmark", "-p", str(port), "-t", "set", "-n", str(n), "-d", str(size),
                    "-r", str(keyspace), "-P", str(pipeline), "-c", str(clients), "-q"],
                   check=True, stdout=subprocess.DEVNULL)


def catch_up():
    m, _ = start("catchup-master")
    r, rp = start("catchup-replica", "--slaveof", f"127.0.0.1 {m}")
    wait_synced(m, r)
    rport = r
    stop(rp)
    before = int(info(m, "master_repl_offset"))
    bench_load(m, GAP, 128)
    gap = int(info(m, "master_repl_offset")) - before
    t0 = time.time()
    r, rp = start("catchup-replica", "--slaveof", f"127.0.0.1 {m}", port=rport)
    wait_synced(m, r)
    secs = time.time() - t0
    batches = int(info(r, "repl_applied_batches"))
    mb = int(info(r, "repl_applied_bytes")) / 1e6
    same_digest(m, r)
    full = info(m, "sync_full", "stats")
    print(f"catch-up after restart: gap {gap} writes, {batches} batches, {mb:.1f} MB in {secs:.1f} s "
          f"= {batches / secs:,.0f} batches/s, {mb / secs:.1f} MB/s (master sync_full={full})")


def full_sync():
    opts = ["--rocksdb.compression", "no", "--rocksdb.wal_ttl_seconds", "0",
            "--rocksdb.wal_size_limit_mb", "0"]
    m, _ = start("fullsync-master", *opts)
    value = 4096
    n = FULLSYNC_MB * 1024 * 1024 // value
    bench_load(m, n, value, keyspace=n * 4)
    cmd(m, "FLUSHMEMTABLE")
    cmd(m, "COMPACT")
    time.sleep(1)
    size = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in
               os.walk(os.path.join(WORK, "fullsync-master", "db")) for f in fs)
    t0 = time.time()
    r, _ = start("fullsync-replica", "--slaveof", f"127.0.0.1 {m}")
    wait_synced(m, r)
    secs = time.time() - t0
    same_digest(m, r)
    log = open(os.path.join(WORK, "fullsync-replica", "quarry.log")).read()
    fetched = [l for l in log.splitlines() if "full sync finished" in l]
    got = 0
    if fetched:
        got = int(fetched[-1].split("bytes=")[1].split()[0])
    print(f"full sync: {size / 1e6:,.0f} MB on disk, {got / 1e6:,.0f} MB fetched, done in {secs:.1f} s "
          f"= {got / 1e6 / secs:.0f} MB/s (until the replica was serving and in sync)")


def lag():
    m, _ = start("lag-master")
    r, _ = start("lag-replica", "--slaveof", f"127.0.0.1 {m}")
    wait_synced(m, r)
    stop_flag = threading.Event()

    def load():
        while not stop_flag.is_set():
            bench_load(m, 200000, 128, pipeline=1, clients=50)

    t = threading.Thread(target=load)
    t.start()
    time.sleep(1)
    cm, cr = Conn(m), Conn(r)
    lags = []
    end = time.time() + LAG_SECONDS
    i = 0
    while time.time() < end:
        i += 1
        cm.call("SET", "lag-probe", i)
        t0 = time.perf_counter()
        while cr.call("GET", "lag-probe") != str(i):
            pass
        lags.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.01)
    stop_flag.set()
    t.join()
    lags.sort()
    p = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))]
    print(f"replication lag under redis-benchmark SET load (50 clients): {len(lags)} probes, "
          f"p50 {p(0.50):.2f} ms, p99 {p(0.99):.2f} ms, max {lags[-1]:.2f} ms")


def rps(port, pipeline):
    out = subprocess.run(["redis-benchmark", "-p", str(port), "-t", "set", "-n", str(VERIFY_REQUESTS),
                          "-d", "128", "-r", str(VERIFY_KEYS), "-P", str(pipeline), "-c", "50", "-q"],
                         check=True, capture_output=True, text=True).stdout
    # "SET: 81234.56 requests per second, p50=0.535 msec" (the last of the \r-separated updates)
    last = out.replace("\r", "\n").strip().splitlines()[-1]
    return float(last.split(":")[1].split("requests")[0])


def verify_cost():
    m, _ = start("verify-master", "--verify-cycle-seconds", "0")
    r, _ = start("verify-replica", "--slaveof", f"127.0.0.1 {m}")
    bench_load(m, VERIFY_KEYS, 128, keyspace=VERIFY_KEYS)
    wait_synced(m, r)
    settings = [("off", "0"), ("default (3600 s)", "3600"), (f"every {VERIFY_FAST_CYCLE} s", str(VERIFY_FAST_CYCLE))]
    for pipeline in (1, 16):
        best = {name: 0.0 for name, _ in settings}
        for _ in range(VERIFY_ROUNDS):
            for name, cycle in settings:
                cmd(m, "CONFIG", "SET", "verify-cycle-seconds", cycle)
                cmd(m, "VERIFY", "RUN")
                best[name] = max(best[name], rps(m, pipeline))
        base = best["off"]
        row = ", ".join(f"{name} {v:,.0f} req/s ({v / base:.3f}x)" for name, v in best.items())
        print(f"verification cost, SET -P {pipeline} with a replica on {VERIFY_KEYS:,} keys: {row}")
    cmd(m, "CONFIG", "SET", "verify-cycle-seconds", "0")
    wait_synced(m, r)
    same_digest(m, r)
    checked = info(r, "verify_slices_checked", "verification")
    bad = info(r, "verify_mismatches", "verification")
    print(f"  the replica checked {checked} slices meanwhile, mismatches: {bad}")


try:
    which = sys.argv[1:] or ["catchup", "fullsync", "lag", "verify"]
    for w in which:
        {"catchup": catch_up, "fullsync": full_sync, "lag": lag, "verify": verify_cost}[w]()
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            p.wait(60)
        procs.clear()
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
    shutil.rmtree(WORK, ignore_errors=True)
