"""``edgert serve`` under idle connections (slowloris), on 127.0.0.1, from a second process.

Opens N idle connections (half send nothing, half a partial request header), then sends
sequential one-row POST /predict requests, each on a fresh connection, and reports the latency
of each; a request that gets no answer within the timeout counts as locked out. Run with the
server's defaults and with waitress' own defaults (100 connections, 120 s idle timeout) to see
the difference.

    PYTHONPATH=$PWD python benchmarks/serve_idle.py [--idle 500] [--requests 100]
"""

from __future__ import annotations

import argparse
import http.client
import json
import resource
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]


def predict_once(url: str, body: bytes, timeout: float) -> int:
    """One POST /predict on a fresh connection (the harsher case: each needs an accept)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        conn.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def idle_sockets(url: str, n: int) -> list[socket.socket]:
    """``n`` slowloris connections: half send nothing, half a partial request header."""
    parts = urlsplit(url)
    socks = []
    for i in range(n):
        s = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=5)
        if i % 2:
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 10")
        socks.append(s)
    return socks


def still_open(s: socket.socket) -> bool:
    """Whether the server still holds ``s`` open (no EOF, no reset), without waiting."""
    s.setblocking(False)
    try:
        return s.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def one_row(bundle: Path) -> bytes:
    man = json.loads((bundle / "manifest.json").read_text())
    return json.dumps({"rows": man["golden"]["inputs"][:1]}).encode()


def measure(url: str, body: bytes, idle: int, requests: int, timeout: float) -> tuple[list[float], int]:
    """Latencies of ``requests`` sequential requests with ``idle`` idle connections open, and
    how many got no answer within ``timeout``."""
    socks = idle_sockets(url, idle)
    try:
        time.sleep(0.5)
        lat, locked = [], 0
        for _ in range(requests):
            t0 = time.perf_counter()
            try:
                predict_once(url, body, timeout)
                lat.append(time.perf_counter() - t0)
            except (TimeoutError, OSError):
                locked += 1
        return lat, locked
    finally:
        for s in socks:
            s.close()


def _ms(latencies: list[float], q: float) -> float:
    xs = sorted(latencies)
    return xs[min(len(xs) - 1, int(q * (len(xs) - 1)))] * 1000 if xs else float("nan")


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--idle", type=int, default=500)
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=1.0)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import serve_load

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, args.idle + 256)), hard))
    with tempfile.TemporaryDirectory() as tmp:
        bundle, _ = serve_load.build_demo_bundles(Path(tmp))
        body = one_row(bundle)
        for label, extra in (("edgert defaults", ()),
                             ("waitress defaults", ("--connection-limit", "100", "--idle-timeout", "120"))):
            with serve_load.server_process(bundle, extra=extra) as url:
                lat, locked = measure(url, body, args.idle, args.requests, args.timeout)
            p50, p99, top = (_ms(lat, q) for q in (0.5, 0.99, 1.0))
            print(f"{label:18} {args.idle} idle: {len(lat)}/{args.requests} answered within {args.timeout} s, "
                  f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {top:.1f} ms, {locked} locked out")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
