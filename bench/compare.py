#!/usr/bin/env python3
"""Runs the same redis-benchmark against quarry, Kvrocks (when KVROCKS_BIN is set) and Redis,
interleaved test by test, keeps each server's best of ROUNDS runs per row, and prints a
Markdown table with requests per second, p50 and p99 latency, and the ratios.

Called by bench/compare.sh, which builds quarry and installs what is missing; see its header.
"""

import csv
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

REQUESTS = int(os.environ.get("REQUESTS", "200000"))
CLIENTS = int(os.environ.get("CLIENTS", "50"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
WORKERS = os.environ.get("WORKERS", "2")
TESTS = os.environ.get("TESTS", "set,get,incr,mset,lpush,lrange_100,sadd,hset,zadd").split(",")
PIPELINES = [int(p) for p in os.environ.get("PIPELINES", "1,16").split(",")]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ping(port, proc, name):
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{name} exited at start-up (code {proc.returncode})")
        r = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True)
        if r.stdout.strip() == "PONG":
            return
        time.sleep(0.1)
    sys.exit(f"{name} did not answer PING on port {port}")


def start_servers(work):
    servers = []
    quarry = os.environ["QUARRY"]
    port = free_port()
    args = [quarry, "--port", str(port), "--dir", f"{work}/quarry", "--log-dir", work,
            "--workers", WORKERS] + os.environ.get("QUARRY_ARGS", "").split()
    servers.append(("quarry", port, subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                                       stderr=subprocess.DEVNULL)))
    kvrocks = os.environ.get("KVROCKS_BIN")
    if kvrocks:
        port = free_port()
        os.makedirs(f"{work}/kvrocks", exist_ok=True)
        conf = f"{work}/kvrocks.conf"
        with open(conf, "w") as f:
            f.write(f"bind 127.0.0.1\nport {port}\ndir {work}/kvrocks\nworkers {WORKERS}\n"
                    f"log-dir {work}/kvrocks\n")
            for line in os.environ.get("KVROCKS_ARGS", "").split(";"):
                if line.strip():
                    f.write(line.strip() + "\n")
        servers.append(("kvrocks", port, subprocess.Popen(
            [kvrocks, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
    port = free_port()
    servers.append(("redis", port, subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", work,
         "--daemonize", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
    for name, port, proc in servers:
        wait_ping(port, proc, name)
    return servers


def bench(port, pipeline, test):
    """(rps, p50 ms, p99 ms) of one redis-benchmark run."""
    r = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-c", str(CLIENTS), "-n", str(REQUESTS), "-d", "128",
         "-r", "1000000", "-P", str(pipeline), "-t", test, "--csv"],
        capture_output=True, text=True)
    rows = [row for row in csv.reader(io.StringIO(r.stdout)) if row and row[0] != "test"]
    if not rows:
        return (0.0, 0.0, 0.0)
    last = rows[-1]  # LRANGE_100 prints the LPUSH it needs first
    return (float(last[1]), float(last[4]), float(last[6]))


def main():
    work = tempfile.mkdtemp()
    servers = start_servers(work)
    names = [s[0] for s in servers]
    results = []  # (label, {name: (rps, p50, p99)})
    try:
        for pipeline in PIPELINES:
            for test in TESTS:
                label = test.upper() + (f" -P {pipeline}" if pipeline != 1 else "")
                best = {}
                for _ in range(ROUNDS):
                    for name, port, _ in servers:
                        got = bench(port, pipeline, test)
                        if name not in best or got[0] > best[name][0]:
                            best[name] = got
                results.append((label, best))
                line = "  ".join(f"{n} {best[n][0]:,.0f}" for n in names)
                print(f"{label}: {line}", file=sys.stderr, flush=True)
    finally:
        for _, _, proc in servers:
            proc.terminate()
        for _, _, proc in servers:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)

    head = ["test"] + [f"{n} rps" for n in names]
    if "kvrocks" in names:
        head.append("quarry/kvrocks")
    head.append("quarry/redis")
    head += [f"{n} p50/p99 ms" for n in names]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" + "---:|" * (len(head) - 1))
    for label, best in results:
        cells = [label] + [f"{best[n][0]:,.0f}" for n in names]
        q = best["quarry"][0]
        if "kvrocks" in names:
            k = best["kvrocks"][0]
            cells.append(f"{q / k:.2f}" if k else "-")
        r = best["redis"][0]
        cells.append(f"{q / r:.2f}" if r else "-")
        cells += [f"{best[n][1]:.3f} / {best[n][2]:.3f}" for n in names]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
