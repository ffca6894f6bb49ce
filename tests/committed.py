"""The committed test data (tests/data, written by scripts/make_test_bundles.py): bundles and
data sets the device-side tests use instead of training, so ``pytest -m device`` runs where only
the device install exists (no scikit-learn, skl2onnx or onnx). Reads with numpy alone."""

from __future__ import annotations

import json
import shutil
from functools import cache
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data"


def bundle(name: str) -> Path:
    """The committed bundle directory ``name``: read only (use :func:`copy_bundle` to change it)."""
    path = DATA / "bundles" / name
    if not (path / "manifest.json").is_file():
        raise FileNotFoundError(f"no committed bundle {name!r} under {DATA / 'bundles'}: "
                                "run python scripts/make_test_bundles.py")
    return path


def copy_bundle(name: str, dest: Path) -> Path:
    """A private copy of the committed bundle ``name`` at ``dest`` (tests that edit or tamper)."""
    shutil.copytree(bundle(name), dest)
    return dest


@cache
def dataset(kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, y_train, X_test, y_test) of ``zoo.dataset(kind)``, equal to it (the features as
    float64, as the zoo gives them) for kind in iris, binary, multiclass, regression."""
    d = DATA / "datasets" / kind
    X_tr, y_tr, X_te, y_te = (np.load(d / f"{p}.npy", allow_pickle=False)
                              for p in ("X_train", "y_train", "X_test", "y_test"))
    return X_tr.astype(np.float64), y_tr, X_te.astype(np.float64), y_te


@cache
def breast_cancer() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """scikit-learn's breast_cancer table: (data, target, feature names with underscores)."""
    d = DATA / "datasets" / "breast_cancer"
    names = json.loads((d / "feature_names.json").read_text())
    return (np.load(d / "data.npy", allow_pickle=False), np.load(d / "target.npy", allow_pickle=False),
            [n.replace(" ", "_") for n in names])


def breast_cancer_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(X_train, X_test, y_train, y_test, names): the demo's 75/25 stratified split (seed 0),
    ``train_test_split``'s row indices committed with the table."""
    data, target, names = breast_cancer()
    d = DATA / "datasets" / "breast_cancer"
    tr, te = (np.load(d / f"{p}_index.npy", allow_pickle=False) for p in ("train", "test"))
    return data[tr], data[te], target[tr], target[te], names
