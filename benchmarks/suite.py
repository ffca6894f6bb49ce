"""The reproducible benchmark suite: trains the fixed model set on breast_cancer (ships with
scikit-learn), converts each model, and measures in ONE run, on this machine:

- scikit-learn's own predict_proba and a raw onnxruntime session (one thread),
- every edge-runtime engine installed here that can run the bundle (``native`` too), at each
  thread count it offers, and ``auto`` as a user gets it (untuned, fresh cache),

at 1, 32, 1,024 and 10,000 rows, then writes ``benchmarks/RESULTS.md`` with the ratio of
``auto`` to the best engine and to scikit-learn, and auto's load time with and without its
first-load measurement. Regenerate it whenever
performance work lands:

    python benchmarks/suite.py [--quick] [--out benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import compare  # noqa: E402

BATCH = 10_000


def models() -> dict[str, Any]:
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "logistic pipeline": make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)),
        "forest 100×d10": RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0, n_jobs=1),
        "boosting 100": GradientBoostingClassifier(n_estimators=100, random_state=0),
        "MLP 64×64": make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(64, 64),
                                                                   max_iter=500, random_state=0)),
    }


def _load_average() -> str:
    """Other processes' load skews every figure (multi-threaded ones most): say how busy it was."""
    try:
        one, five, _ = os.getloadavg()
    except (OSError, AttributeError):
        return "load average unknown"
    return (f"load average at the end {one:.2f} (1 min) / {five:.2f} (5 min) on {os.cpu_count()} cores"
            + (" — the machine was shared, so treat ratios as indicative" if five > 0.75 * (os.cpu_count() or 1)
               else ""))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import onnxruntime

    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}, Python "
            f"{platform.python_version()}, numpy {np.__version__}, onnxruntime {onnxruntime.__version__}")


COUNTS = (1, 32, 1024, BATCH)
#: calls per round at each row count: short rounds, many of them, so that some rounds of every
#: contender run undisturbed on a shared machine
NUMBER = {1: 40, 32: 20, 1024: 2, BATCH: 1}
#: interleaved rounds per row count (each contender timed once per round, in a shuffled order);
#: every figure is a contender's fastest round. A median of 7 moved 10-20 % between runs on
#: the shared 2-core machine (two pinned copies of one engine differed by 1.3x), too much to
#: show "within 1.1x"; other work only ever adds time, so the fastest round is the steady one
ROUNDS, QUICK_ROUNDS = 31, 5
#: rounds of the head-to-head of auto and the fastest engine (scaled down with --quick)
DUEL_ROUNDS = 91
#: contenders that are not one of edge-runtime's engines
_NOT_ENGINES = ("auto", "scikit-learn", "raw onnxruntime:1")


def engines_for(bundle: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Every edge-runtime engine that runs the bundle here, at each thread count it offers, each a
    ``Model`` (the same layer ``auto`` answers through), "native" included when installed."""
    import edge_runtime
    from edge_runtime.backends import candidates
    from edge_runtime.loader import open_trusted

    out = {}
    for c in candidates(open_trusted(bundle)):  # signed, with EDGERT_TRUST set: native included
        for t in c.backend.thread_counts():
            try:
                out[f"{c.name}:{t}"] = edge_runtime.load(bundle, backend=c.name, threads=t,
                                                         precision=c.artifact.precision)
            except edge_runtime.EdgeRuntimeError as exc:
                log(f"  {c.name}:{t}: cannot run: {exc}")
    return out


def run_model(name: str, est: Any, X_tr: np.ndarray, y_tr: np.ndarray, X_te: np.ndarray, tmp: Path,
              quick: bool, log: Callable[[str], None], sign_with: Optional[Path] = None) -> dict[str, Any]:
    import onnxruntime as ort

    import edge_runtime
    from converters import EXPORTERS, convert
    from converters.core import _load_optional_exporters
    from edge_runtime.backends import backend_names

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X_tr, y_tr)
    _load_optional_exporters()
    # a TFLite artifact only when this checkout can also run it (its parity is measured on litert);
    # a native one when the native exporter and backend are both here
    formats = ["onnx"] + [f for f, b in (("tflite", "litert"), ("native", "native"))
                          if f in EXPORTERS and b in backend_names()]
    bundle = convert(est, X_tr, tmp / name.split()[0], holdout=X_te, formats=tuple(formats), force=False,
                     sign_with=sign_with)
    onnx_path = bundle / "model.onnx" if (bundle / "model.onnx").exists() else next(bundle.glob("*.onnx"))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    raw = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    in_name = raw.get_inputs()[0].name
    engines = engines_for(bundle, log)
    # auto as a user gets it: no tuning step, a fresh cache (the first load measures, ≤ ~200 ms)
    with tempfile.TemporaryDirectory() as fresh:
        os.environ["EDGERT_CACHE_DIR"] = fresh
        t0 = time.perf_counter()
        auto = edge_runtime.load(bundle)
        first_load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        edge_runtime.load(bundle).close()
        cached_load_s = time.perf_counter() - t0
    os.environ["EDGERT_AUTO_MEASURE"] = "0"
    t0 = time.perf_counter()
    edge_runtime.load(bundle).close()
    rule_load_s = time.perf_counter() - t0
    del os.environ["EDGERT_AUTO_MEASURE"]
    rounds = QUICK_ROUNDS if quick else ROUNDS
    table = getattr(auto.backend, "table", {})
    out: dict[str, Any] = {"ms": {}, "routes": table.get("best", {}), "method": table.get("method", "plain"),
                           "load_ms": {"auto first load": first_load_s * 1e3, "auto cached": cached_load_s * 1e3,
                                       "auto rule only": rule_load_s * 1e3}, "duel": {}}
    for n in COUNTS:
        x = np.ascontiguousarray(np.resize(X_te, (n, X_te.shape[1])), dtype=np.float32)
        x64 = x.astype(np.float64)
        calls: dict[str, Callable[[], Any]] = {"raw onnxruntime:1": lambda x=x: raw.run(None, {in_name: x})}
        for label, m in engines.items():
            calls[label] = lambda m=m, x=x: m.predict_proba(x)
        calls["auto"] = lambda x=x: auto.predict_proba(x)
        calls["scikit-learn"] = lambda x=x64: est.predict_proba(x)
        log(f"{name}: {n} rows")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = compare(calls, rounds=rounds, number=NUMBER[n], warmup=2, rotate=True, statistic=min)
            # the fastest engine against auto, head to head: with a dozen contenders, each one's
            # fastest round still depends on what ran before it (spinning BLAS and onnxruntime
            # threads), and the fastest of a dozen noisy figures is biased low; two contenders
            # alone, in twice the rounds, is the precise comparison (and what a device runs)
            best = min((k for k in got if k not in _NOT_ENGINES), key=got.__getitem__)
            duel = compare({"auto": calls["auto"], best: calls[best]}, rounds=DUEL_ROUNDS * rounds // ROUNDS,
                           number=2 * NUMBER[n], warmup=2, rotate=True, statistic=min)
        out["ms"][str(n)] = {k: v / 1e3 for k, v in got.items()}
        out["duel"][str(n)] = {"best": best, "auto": duel["auto"] / 1e3, "best_ms": duel[best] / 1e3}
    out["watched"] = _watched(auto)
    for m in engines.values():
        m.close()
    auto.close()
    return out


def _watched(auto: Any) -> str:
    """Per batch route watched on live calls (edge_runtime.routing_live): its two engines, the
    one serving at the end of the run and how often it changed."""
    from edge_runtime.routing_live import LiveRoute

    def key(e: Any) -> str:
        return f"{e.name}:{e.options.threads}"

    counts = [int(n) for n in getattr(auto.backend, "table", {}).get("row_counts", [])]
    routes = getattr(auto.backend, "routes", [])
    cells = [f"{n}: {'/'.join(key(e) for e in r.engines)} → {key(r.serving)}, {r.switches} switch(es)"
             for n, (_, r) in zip(counts, routes) if isinstance(r, LiveRoute)]
    return "; ".join(cells) or "none"


def render(results: dict[str, dict[str, Any]], info: str, seconds: float, rounds: int = ROUNDS) -> str:
    lines = ["# Benchmark results", "",
             "Generated by `python benchmarks/suite.py` — do not edit by hand.", "",
             f"- machine: {info}",
             f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, suite took {seconds:.0f} s; "
             f"{_load_average()}",
             "- data: breast_cancer (30 features); each figure is the time of one `predict_proba` call on "
             f"that many rows in the contender's fastest of {rounds} interleaved rounds (each round times every "
             f"contender once, {', '.join(f'{NUMBER[n]} calls at {n:,}' for n in COUNTS)} rows, in a new "
             "seeded shuffle each round), the same statistic for every contender, all in this one run: "
             "other processes only ever add time, so the fastest round is the figure that holds between runs.",
             "- `auto` is `edge_runtime.load(bundle)` as a user gets it: no tuning step, a fresh routing "
             "cache (its first load measures the rule's few best engines, bounded to ~200 ms). "
             "`backend:threads` are the same `Model` layer pinned to one engine; \"best\" is the fastest "
             "of those; `raw onnxruntime:1` is a bare one-thread session (no input checks).",
             f"- \"auto / best, head to head\": the fastest engine of that table timed again against `auto` "
             f"alone, {DUEL_ROUNDS * rounds // ROUNDS} interleaved rounds of the two, twice the calls per round "
             "(fastest round each): among a "
             "dozen contenders each one's fastest round still depends on what ran before it (spinning BLAS "
             "and onnxruntime threads on 2 cores), and the fastest of a dozen noisy figures is biased low. "
             "The targets below use this figure.",
             "- scikit-learn runs as configured in the suite (forest `n_jobs=1`).", ""]
    for n in COUNTS:
        lines += [f"## {n:,} row{'s' if n > 1 else ''} (ms per call)", ""]
        engines = list(dict.fromkeys(k for r in results.values() for k in r["ms"][str(n)]
                                     if k not in _NOT_ENGINES))
        cols = ["model", "auto", "best engine", "auto / best", "auto / best, head to head", "auto / sklearn",
                "auto / raw ORT",
                "scikit-learn", "raw onnxruntime:1"] + engines
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "---|" * len(cols))
        for model, r in results.items():
            t = r["ms"][str(n)]
            best = min(engines, key=lambda e: t.get(e, float("inf")))
            cells = [model, f"{t['auto']:.4f}", f"{best} {t[best]:.4f}", f"{t['auto'] / t[best]:.2f}",
                     f"{_duel(r, n):.2f}", f"{t['auto'] / t['scikit-learn']:.2f}",
                     f"{t['auto'] / t['raw onnxruntime:1']:.2f}",
                     f"{t['scikit-learn']:.4f}", f"{t['raw onnxruntime:1']:.4f}"]
            cells += [f"{t[e]:.4f}" if e in t else "–" for e in engines]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## auto's routes and load time", "",
              "| model | method | routes (rows → engine:threads) | first load ms | cached load ms "
              "| rule-only load ms | measurement ms (first − rule-only) | watched on live calls |",
              "|---|---|---|---|---|---|---|---|"]
    for model, r in results.items():
        ld = r["load_ms"]
        lines.append(f"| {model} | {r['method']} | {r['routes']} | {ld['auto first load']:.1f} | "
                     f"{ld['auto cached']:.1f} | {ld['auto rule only']:.1f} | {_measurement_ms(r):.1f} "
                     f"| {r.get('watched', 'none')} |")
    from edge_runtime.backends import backend_names

    native = "native" in backend_names()
    lines += ["", "## Targets (issue 17)", "",
              f"The `native` backend is {'installed' if native else 'NOT installed in this checkout'}"
              + ("." if native else ": the 10k-row target against scikit-learn on the tree models needs it."),
              "The raw onnxruntime one-row figure moves between runs on a shared machine (its column above); "
              "compare ratios within one run only.", ""]
    for model, r in results.items():
        one, big = r["ms"]["1"], r["ms"][str(BATCH)]
        within = [n for n in COUNTS if _duel(r, n) > 1.1]
        lines.append(f"- {model}: one row auto / raw onnxruntime = {one['auto'] / one['raw onnxruntime:1']:.2f} "
                     f"(target ≤ 0.5: {'ok' if one['auto'] <= 0.5 * one['raw onnxruntime:1'] else 'MISS'}); "
                     + ("auto within 1.1× of the best engine at every row count" if not within else
                        "auto within 1.1× of the best engine at "
                        + (", ".join(str(n) for n in COUNTS if n not in within) or "no row count")
                        + f", MISS at {', '.join(str(n) for n in within)}")
                     + f"; 10k rows auto / scikit-learn = {big['auto'] / big['scikit-learn']:.2f} (target ≤ 0.7: "
                     f"{'ok' if big['auto'] <= 0.7 * big['scikit-learn'] else 'MISS'})"
                     + _native_vs_ort(model, big)
                     + f"; first-load measurement {_measurement_ms(r):.0f} ms (target ≤ 200: "
                     f"{'ok' if _measurement_ms(r) <= 200 else 'MISS'})")
    lines.append("")
    return "\n".join(lines)


def _duel(r: dict[str, Any], n: int) -> float:
    """auto / the fastest engine, timed head to head."""
    d = r["duel"][str(n)]
    return float(d["auto"] / d["best_ms"])


def _measurement_ms(r: dict[str, Any]) -> float:
    """What the first load's measurement cost: the first load less a rule-only load."""
    return float(r["load_ms"]["auto first load"] - r["load_ms"]["auto rule only"])


def _native_vs_ort(model: str, big: dict[str, float]) -> str:
    """native's best over onnxruntime's best at 10k rows (the target holds for the tree models)."""
    native = [v for k, v in big.items() if k.startswith("native:")]
    ort = [v for k, v in big.items() if k.startswith("onnxruntime:")]
    if not native or not ort:
        return ""
    ratio = min(native) / min(ort)
    target = (f" (target ≤ 0.5: {'ok' if ratio <= 0.5 else 'MISS'})"
              if model.startswith(("forest", "boosting")) else "")
    return f"; 10k rows best native / best onnxruntime = {ratio:.2f}{target}"


def main() -> None:
    ap = argparse.ArgumentParser(description="edge-runtime benchmark suite")
    ap.add_argument("--quick", action="store_true", help="fewer rounds (smoke run)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "RESULTS.md"))
    args = ap.parse_args()
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    X, y = load_breast_cancer(return_X_y=True)
    X = X.astype(np.float32).astype(np.float64)
    X_tr, X_te, y_tr, _ = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    t0 = time.perf_counter()
    results = {}
    from converters.signing import init_signing_key

    with tempfile.TemporaryDirectory() as tmp:
        # bundles signed as an owner would ship them, and a device that trusts the key: native
        # code runs only from a signed bundle (or one installed through TUF)
        key, public = init_signing_key(Path(tmp) / "keys")
        os.environ["EDGERT_TRUST"] = str(public)
        for name, est in models().items():
            results[name] = run_model(name, est, X_tr, y_tr, X_te, Path(tmp), args.quick,
                                      lambda m: print(m, file=sys.stderr), sign_with=key)
    text = render(results, machine(), time.perf_counter() - t0, QUICK_ROUNDS if args.quick else ROUNDS)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
