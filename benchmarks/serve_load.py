"""Bounded load test of ``edgert serve`` on 127.0.0.1, from a second process.

The server runs as a child process (the real CLI); this process is the client: an asyncio
client (httpx) sends a fixed number of POST /predict requests with a fixed concurrency and
reports throughput, p50/p99 latency and every failure. A second run activates a new version in
the served sync store halfway through the load and checks that no request failed and that the
server ended on the new version. The plain alternative, measured in the same run, is calling
``Model.predict`` in-process on one row.

    PYTHONPATH=$PWD python benchmarks/serve_load.py [--requests 5000] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class LoadResult:
    requests: int
    seconds: float
    latencies: list[float]
    failures: list[str] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)
    last_version: Optional[str] = None

    @property
    def ok(self) -> int:
        return self.requests - len(self.failures)

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        xs = sorted(self.latencies)
        if not xs:
            return float("nan")
        return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def breast_cancer_split() -> tuple[Any, Any, Any, list[str]]:
    """The demo's split of breast_cancer (ships with scikit-learn): X_train, X_test, y_train, names."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    data = load_breast_cancer()
    X_tr, X_te, y_tr, _ = train_test_split(data.data, data.target, test_size=0.25, random_state=0,
                                           stratify=data.target)
    return X_tr, X_te, y_tr, [n.replace(" ", "_") for n in data.feature_names]


def build_demo_bundles(work: Path) -> tuple[Path, Path]:
    """Two versions of the breast_cancer logistic model (different regularisation, so they differ)."""
    sys.path.insert(0, str(ROOT))
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from converters import convert

    X_tr, X_te, y_tr, names = breast_cancer_split()
    out = []
    for version, c in (("1.0.0", 1.0), ("1.1.0", 0.05)):
        est = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000)).fit(X_tr, y_tr)
        out.append(convert(est, X_tr, work / f"bundle-{version}", name="breast-cancer", version=version,
                           holdout=X_te, feature_names=names))
    return out[0], out[1]


def make_store(root: Path, bundles: dict[str, Path], current: str) -> Path:
    """A sync-store layout: versions/<v>/ (bundle directories) and active.json."""
    (root / "versions").mkdir(parents=True, exist_ok=True)
    for version, path in bundles.items():
        shutil.copytree(path, root / "versions" / version)
    activate(root, current)
    return root


def activate(store: Path, version: str, previous: Optional[str] = None) -> None:
    """Replace active.json atomically, as the sync agent does."""
    sys.path.insert(0, str(ROOT))
    from edge_runtime.fsutil import atomic_write_json

    atomic_write_json(store / "active.json", {"current": version, "previous": previous,
                                              "known_bad": {}, "history": [version]})


@contextlib.contextmanager
def server_process(source: Path, *, threads: int = 4, poll_interval: float = 0.05,
                   extra: tuple[str, ...] = ()) -> Iterator[str]:
    """Start ``python -m edge_runtime serve SOURCE --port 0`` and yield its base URL (or
    ``unix:PATH`` when ``extra`` holds ``--unix-socket PATH``)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    where = () if "--unix-socket" in extra else ("--port", "0")
    proc = subprocess.Popen([sys.executable, "-m", "edge_runtime", "serve", str(source), *where,
                             "--threads", str(threads), "--poll-interval", str(poll_interval), *extra],
                            env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    lines: list[str] = []
    url = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        m = re.search(r"on (http://[\d.]+:\d+|unix:\S+)", line)
        if m:
            url = m.group(1)
            break
    if url is None:
        proc.kill()
        raise RuntimeError("server did not start:\n" + "".join(lines) + proc.stderr.read())
    # keep draining stderr so the server never blocks on a full pipe
    threading.Thread(target=lambda: [lines.append(x) for x in proc.stderr], daemon=True).start()  # type: ignore[union-attr]
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _load(base_url: str, n: int, concurrency: int, body: bytes,
                at_half: Optional[Callable[[], None]]) -> LoadResult:
    import httpx

    latencies: list[float] = []
    failures: list[str] = []
    versions: dict[str, int] = {}
    last: list[Optional[str]] = [None]
    next_i = [0]
    done = [0]
    fired = [False]
    headers = {"content-type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30.0) as client:
        async def worker() -> None:
            while next_i[0] < n:
                next_i[0] += 1
                t0 = time.perf_counter()
                try:
                    r = await client.post("/predict", content=body, headers=headers)
                    dt = time.perf_counter() - t0
                    if r.status_code != 200:
                        failures.append(f"HTTP {r.status_code}: {r.text[:200]}")
                    else:
                        v = r.json()["version"]
                        versions[v] = versions.get(v, 0) + 1
                        last[0] = v
                        latencies.append(dt)
                except Exception as exc:  # noqa: BLE001 - every failure is counted, none hidden
                    failures.append(f"{type(exc).__name__}: {exc}")
                done[0] += 1
                if at_half is not None and not fired[0] and done[0] >= n // 2:
                    fired[0] = True
                    await asyncio.get_running_loop().run_in_executor(None, at_half)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - t0
    return LoadResult(n, seconds, latencies, failures, versions, last[0])


def run_load(base_url: str, n: int = 2000, concurrency: int = 16, rows: int = 1,
             at_half: Optional[Callable[[], None]] = None) -> LoadResult:
    """Send ``n`` POST /predict requests (``rows`` rows each); ``at_half`` runs after half are done."""
    row = [14.0, 19.0, 91.0, 650.0, 0.096, 0.1, 0.088, 0.048, 0.18, 0.062, 0.4, 1.2, 2.8, 40.0, 0.007,
           0.025, 0.03, 0.011, 0.02, 0.0037, 16.0, 25.0, 107.0, 880.0, 0.13, 0.25, 0.27, 0.11, 0.29, 0.083]
    body = json.dumps({"rows": [row] * rows}).encode()
    return asyncio.run(_load(base_url, n, concurrency, body, at_half))


def wait_for_version(base_url: str, version: str, timeout: float = 30.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(base_url + "/readyz").json().get("version") == version:
            return
        time.sleep(0.02)
    raise TimeoutError(f"server did not swap to {version}")


def _in_process_baseline(bundle: Path, seconds: float = 1.0) -> float:
    sys.path.insert(0, str(ROOT))
    import numpy as np

    from edge_runtime import load

    m = load(bundle)
    x = np.ones((1, len(m.feature_names)), dtype=np.float32)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        m.predict(x)
        n += 1
    return n / (time.perf_counter() - t0)


def report(title: str, r: LoadResult) -> None:
    print(f"{title}: {r.requests} requests in {r.seconds:.2f} s = {r.throughput:.0f} req/s; "
          f"p50 {r.percentile(50) * 1e3:.2f} ms, p99 {r.percentile(99) * 1e3:.2f} ms; "
          f"errors {len(r.failures)}; versions {r.versions}")
    for f in r.failures[:5]:
        print("   failure:", f)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, default=4,
                    help="client connections (more than the server threads only queue)")
    ap.add_argument("--threads", type=int, default=4, help="server request threads")
    ap.add_argument("--rows", type=int, default=1, help="rows per request")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="edgert-serve-bench-"))
    try:
        b1, b2 = build_demo_bundles(work)
        store = make_store(work / "store", {"1.0.0": b1, "1.1.0": b2}, "1.0.0")
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; server threads {args.threads}, "
              f"client concurrency {args.concurrency}, {args.rows} row(s)/request")
        base = _in_process_baseline(b1)
        print(f"plain alternative: in-process Model.predict, one row: {base:.0f} calls/s")
        with server_process(store, threads=args.threads) as url:
            run_load(url, 200, args.concurrency, args.rows)  # warm-up
            steady = run_load(url, args.requests, args.concurrency, args.rows)
            report("steady", steady)
            swap = run_load(url, args.requests, args.concurrency, args.rows,
                            at_half=lambda: activate(store, "1.1.0", "1.0.0"))
            report("swap mid-load (1.0.0 -> 1.1.0)", swap)
        print(f"HTTP overhead: in-process is {base / steady.throughput:.1f}x the served req/s")
        bad = len(steady.failures) + len(swap.failures)
        swapped = swap.last_version == "1.1.0"
        print(f"result: {'OK' if bad == 0 and swapped else 'FAILED'} (errors {bad}, ended on "
              f"{swap.last_version})")
        return 0 if bad == 0 and swapped else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
