"""Every engine answers concurrent calls as it answers one at a time: ``edgert serve`` calls one
model from 4 request threads. LiteRT's interpreter held each call's tensors between set_tensor,
invoke and get_tensor, and two threads got each other's answers (189 of 12,000 calls) before
the backend took a lock."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import edge_runtime
from edge_runtime.backends import candidates
from edge_runtime.bundle import open_bundle

pytestmark = pytest.mark.device
THREADS, CALLS = 4, 400


def _engines(path):
    return sorted({c.name for c in candidates(open_bundle(path))})


@pytest.mark.parametrize("name", ["logistic-multiclass-tflite", "routing-forest"])
def test_concurrent_calls_get_their_own_answers_on_every_engine(name, tmp_path, monkeypatch) -> None:
    from committed import bundle, dataset

    monkeypatch.setenv("EDGERT_CACHE_DIR", str(tmp_path))
    path = bundle(name)
    kind = "multiclass" if "multiclass" in name else "binary"
    X = dataset(kind)[2]
    rng = np.random.default_rng(0)
    # mixed batch sizes: an engine that resizes its tensors between calls is caught mid-resize
    batches = [X[rng.integers(0, len(X), size=int(n))] for n in rng.integers(1, 40, size=64)]
    for backend in _engines(path) + ["auto"]:
        model = edge_runtime.load(path, backend=backend) if backend == "auto" else \
            edge_runtime.load(path, backend=backend, threads=1)
        want = [model.predict_proba(x) for x in batches]
        problems: list[str] = []

        def work(seed: int, model=model, want=want, problems=problems) -> None:
            r = np.random.default_rng(seed)
            for _ in range(CALLS):
                i = int(r.integers(0, len(batches)))
                try:
                    got = model.predict_proba(batches[i])
                except Exception as exc:  # noqa: BLE001 - counted and reported below
                    problems.append(f"error: {exc}")
                    continue
                if got.shape != want[i].shape or not np.array_equal(got, want[i]):
                    problems.append(f"batch {i}: another call's answer")

        threads = [threading.Thread(target=work, args=(s,)) for s in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        model.close()
        assert not problems, f"{backend}: {len(problems)} of {THREADS * CALLS} calls: {problems[:3]}"
