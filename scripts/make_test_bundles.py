#!/usr/bin/env python3
"""Generate the bundles and data sets the device-side tests read from ``tests/data/``.

Why: a device install (a Pi, armv7, Pyodide) has no scikit-learn, skl2onnx or onnx, so its
tests cannot train and convert their models; they load these instead (``tests/committed.py``).
Run it on a workstation install (the ``convert`` extra) after changing a converter or the
manifest format; ``tests/test_committed_data.py`` regenerates everything into a temporary
directory and fails, naming the file, when the committed copies are stale.

Reproducible: every estimator and split has a fixed seed, and the manifest's ``created`` time is
pinned to :data:`CREATED` (it is the one field the generator controls that would change per run).

Usage: ``python scripts/make_test_bundles.py [--out tests/data] [NAME ...]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "tests" / "data"
#: The pinned creation time of every committed bundle.
CREATED = "2026-01-01T00:00:00Z"
#: Data sets saved as arrays: the zoo's splits (``zoo.dataset``), float32-representable features.
DATASETS = ("iris", "binary", "multiclass", "regression")
#: The versions of the sync tests' iris bundles (C = 0.5 + their index).
SYNC_VERSIONS = ("1.0.0", "1.1.0", "1.2.0", "1.3.0", "2.0.0")
#: The feature names of the iris bundle the input-path tests use.
IRIS_NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def _paths() -> None:
    for p in (ROOT, ROOT / "tests", ROOT / "benchmarks"):
        if str(p) not in sys.path:
            sys.path.insert(0, str(p))


def _convert(est: Any, X: Any, out: Path, **kwargs: Any) -> Path:
    from converters import convert

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return convert(est, X, out, **kwargs)


def _iris(out: Path) -> Path:
    """iris LogisticRegression ``iris`` 1.0.0: the bundle, archive, store, sync and golden tests' model."""
    from device_support import train_iris_bundle

    return train_iris_bundle(out)


def _iris_relabeled(out: Path) -> Path:
    """``iris`` trained with every class renamed (y + 1) % 3: a swapped model for the golden tests."""
    from sklearn.linear_model import LogisticRegression
    from zoo import dataset

    X, y, X_te, _ = dataset("iris")
    return _convert(LogisticRegression(max_iter=1000).fit(X, (y + 1) % 3), X, out, name="iris",
                    version="1.0.0", holdout=X_te)


def _iris_c(version: str, C: float) -> Callable[[Path], Path]:
    def build(out: Path) -> Path:
        """``iris`` ``version`` fitted with regularisation ``C`` (sync: versions whose answers differ)."""
        from device_support import train_iris_bundle

        return train_iris_bundle(out, version, C=C)
    return build


def _iris_forest(out: Path) -> Path:
    """A 10-tree iris forest (the import-boundary tests: a tree ensemble on the device)."""
    from sklearn.ensemble import RandomForestClassifier
    from zoo import dataset

    X, y, X_te, _ = dataset("iris")
    return _convert(RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y), X, out, holdout=X_te)


def _iris_named(out: Path) -> Path:
    """The iris model with feature names and an allowed range (the input-path tests)."""
    from sklearn.linear_model import LogisticRegression
    from zoo import dataset

    X, y, _, _ = dataset("iris")
    return _convert(LogisticRegression(max_iter=1000).fit(X, y), X, out, feature_names=IRIS_NAMES,
                    feature_ranges={"petal_width": [0.0, 10.0]})


def _zoo(case_id: str, **kwargs: Any) -> Callable[[Path], Path]:
    def build(out: Path) -> Path:
        """A zoo case converted as the ``bundles`` fixture converts it."""
        from zoo import CASES, dataset, fitted

        case = next(c for c in CASES if c.id == case_id)
        X, _, X_te, _ = dataset(case.data)
        return _convert(fitted(case_id), X, out, holdout=X_te, **kwargs)
    return build


def _breast_cancer_demo(version: str) -> Callable[[Path], Path]:
    def build(out: Path) -> Path:
        """The serve demo's breast_cancer logistic (benchmarks/serve_load.py), one version."""
        from serve_load import breast_cancer_split
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        X_tr, X_te, y_tr, names = breast_cancer_split()
        c = {"1.0.0": 1.0, "1.1.0": 0.05}[version]
        est = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000)).fit(X_tr, y_tr)
        return _convert(est, X_tr, out, name="breast-cancer", version=version, holdout=X_te,
                        feature_names=names)
    return build


def _bc_forest(out: Path) -> Path:
    """A small breast_cancer forest (batch and row-by-row answers are bit-identical)."""
    from serve_load import breast_cancer_split
    from sklearn.ensemble import RandomForestClassifier

    X_tr, X_te, y_tr, names = breast_cancer_split()
    est = RandomForestClassifier(n_estimators=15, max_depth=6, random_state=0).fit(X_tr, y_tr)
    return _convert(est, X_tr, out, name="bc-forest", version="1.0.0", holdout=X_te, feature_names=names)


def _routing_forest(out: Path) -> Path:
    """The routing tests' forest on the zoo's binary split."""
    from sklearn.ensemble import RandomForestClassifier
    from zoo import dataset

    X, y, X_te, _ = dataset("binary")
    est = RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0).fit(X, y)
    return _convert(est, X, out, holdout=X_te)


def _iris_two_formats(out: Path) -> Path:
    """iris with class values 10/20/30, as ONNX and TFLite (routing across formats)."""
    import numpy as np
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_iris(return_X_y=True)
    X = X.astype(np.float32).astype(np.float64)
    y = np.array([10, 20, 30])[y]
    est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X, y)
    return _convert(est, X, out, holdout=X[::4], formats=("onnx", "tflite"))


def _telemetry(version: str) -> Callable[[Path], Path]:
    def build(out: Path) -> Path:
        """The telemetry tests' ``cancer`` bundles (tests/telemetry/telemetry_bundles.py)."""
        sys.path.insert(0, str(ROOT / "tests" / "telemetry"))
        import telemetry_bundles

        return telemetry_bundles.build_one(version, out)
    return build


def _probation(model: str, version: str) -> Callable[[Path], Path]:
    def build(out: Path) -> Path:
        """The probation tests' versions (tests/sync/probation_bundles.py)."""
        sys.path.insert(0, str(ROOT / "tests" / "sync"))
        import probation_bundles

        return probation_bundles.train(model, version, out)
    return build


#: name -> builder(out_dir) -> bundle directory. Keep each small: the whole set is committed.
BUNDLES: dict[str, Callable[[Path], Path]] = {
    "iris": _iris,
    "iris-relabeled": _iris_relabeled,
    "iris-named": _iris_named,
    "iris-forest": _iris_forest,
    "iris-1.1.0-c3": _iris_c("1.1.0", 3.0),
    **{f"iris-sync-{v}": _iris_c(v, 0.5 + i) for i, v in enumerate(SYNC_VERSIONS)},
    "iris-two-formats": _iris_two_formats,
    "logistic-binary": _zoo("logistic-binary"),
    "logistic-multiclass": _zoo("logistic-multiclass"),
    "logistic-multiclass-tflite": _zoo("logistic-multiclass", formats=("onnx", "tflite")),
    "ridge-regression": _zoo("ridge-regression"),
    "breast-cancer-1.0.0": _breast_cancer_demo("1.0.0"),
    "breast-cancer-1.1.0": _breast_cancer_demo("1.1.0"),
    "bc-forest": _bc_forest,
    "routing-forest": _routing_forest,
    "cancer-1.0.0": _telemetry("1.0.0"),
    "cancer-1.1.0": _telemetry("1.1.0"),
    "cancer-2.0.0": _telemetry("2.0.0"),
    **{f"probation-cancer-{v}": _probation("cancer", v) for v in ("1.0.0", "1.1.0", "1.2.0", "1.3.0")},
    **{f"probation-diabetes-{v}": _probation("diabetes", v) for v in ("1.0.0", "1.1.0", "1.2.0")},
}


def _pin(bundle: Path) -> None:
    """Pin the creation time (the manifest is not signed, so rewriting it keeps it valid)."""
    from edge_runtime.fsutil import atomic_write_json

    path = bundle / "manifest.json"
    doc = json.loads(path.read_text())
    doc["created"] = CREATED
    atomic_write_json(path, doc)


def write_datasets(out: Path) -> None:
    """Each zoo split as ``datasets/<kind>/{X_train,y_train,X_test,y_test}.npy`` (the features as
    float32, exact: they are float32-representable), and breast_cancer's raw table with its names
    and the row indices of the serve demo's split."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split
    from zoo import dataset

    for kind in DATASETS:
        d = out / "datasets" / kind
        d.mkdir(parents=True, exist_ok=True)
        for part, arr in zip(("X_train", "y_train", "X_test", "y_test"), dataset(kind)):
            if part.startswith("X"):
                assert np.array_equal(arr.astype(np.float32).astype(np.float64), arr), (kind, part)
                arr = arr.astype(np.float32)
            np.save(d / f"{part}.npy", np.ascontiguousarray(arr), allow_pickle=False)
    raw = load_breast_cancer()
    d = out / "datasets" / "breast_cancer"
    d.mkdir(parents=True, exist_ok=True)
    np.save(d / "data.npy", np.ascontiguousarray(raw.data), allow_pickle=False)
    np.save(d / "target.npy", np.ascontiguousarray(raw.target.astype(np.int64)), allow_pickle=False)
    (d / "feature_names.json").write_text(json.dumps([str(n) for n in raw.feature_names]) + "\n")
    rows = np.arange(len(raw.data))
    tr, te = train_test_split(rows, test_size=0.25, random_state=0, stratify=raw.target)  # the demo's split
    np.save(d / "train_index.npy", tr.astype(np.int64), allow_pickle=False)
    np.save(d / "test_index.npy", te.astype(np.int64), allow_pickle=False)


def generate(out: Path, names: list[str] | None = None) -> list[Path]:
    """Write the named bundles (default: all) and the data sets under ``out``; returns the bundles."""
    _paths()
    if not names:
        write_datasets(out)
    made = []
    for name in names or list(BUNDLES):
        dest = out / "bundles" / name
        shutil.rmtree(dest, ignore_errors=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        made.append(BUNDLES[name](dest))
        _pin(dest)
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"bundles to regenerate (default: all): {', '.join(BUNDLES)}")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(BUNDLES))
    if unknown:
        parser.error(f"unknown bundle name(s) {unknown}; known: {', '.join(BUNDLES)}")
    for path in generate(args.out, args.names or None):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
