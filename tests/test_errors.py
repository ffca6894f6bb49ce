"""One place for every exception: each class lives in ``edge_runtime/errors.py`` (or
``converters/errors.py``), is exported, is still importable from where it used to live, nothing
raises the bare base class, and "no probabilities" is one error on every predictor."""

from __future__ import annotations

import ast
import asyncio
import builtins
import importlib
import inspect
import json
import shutil
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

import edge_runtime
from edge_runtime import errors

ROOT = Path(__file__).resolve().parents[1]

#: exception classes that live outside errors.py on purpose (each one says why in errors.py)
OUTSIDE_ERRORS = {
    ("edge_runtime/sync/fetcher.py", "StalledError"),  # subclasses tuf's SlowRetrievalError
    ("edge_runtime/commands/_util.py", "MissingExtraError"),  # a click.ClickException
    ("edge_runtime/server/app.py", "HTTPError"),  # the WSGI app's control flow, never escapes
}

#: old import path -> name; apps imported these from there before they moved to errors.py
OLD_HOMES = [
    ("edge_runtime.telemetry.outbox", "OutboxError"),
    ("edge_runtime.telemetry.sinks", "SinkError"),
    ("edge_runtime.telemetry.sinks", "BatchRejected"),
    ("edge_runtime.telemetry.sinks", "SinkAuthError"),
    ("edge_runtime.strategies", "StrategyError"),
    ("edge_runtime.onnx_numpy.proto", "ModelDecodeError"),
    ("edge_runtime.onnx_numpy", "ModelDecodeError"),
    ("edge_runtime.onnx_numpy.ops", "AttributeMissing"),
    ("edge_runtime.sync.trial", "CandidateFailed"),
    ("edge_runtime.sync.trial", "TrialUnavailable"),
    ("edge_runtime.sync", "SyncError"),
    ("edge_runtime.sync", "UpdateRejected"),
    *[("edge_runtime.sync.errors", n) for n in ("SyncError", "UpdateRejected", "StoreError",
                                                "TransitionError", "StoreBusy")],
]
CONVERTER_OLD_HOMES = [("converters.publish", "PublishError"), ("converters.signing", "SigningError")]

_BUILTIN_EXCEPTIONS = {n for n, v in vars(builtins).items()
                       if inspect.isclass(v) and issubclass(v, BaseException)}


def _base_name(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def _sources(package: str) -> list[tuple[str, ast.Module]]:
    return [(str(p.relative_to(ROOT)), ast.parse(p.read_text(), str(p)))
            for p in sorted((ROOT / package).rglob("*.py"))]


def exception_classes(package: str) -> Iterator[tuple[str, str]]:
    """(file, class) of every class in ``package`` whose bases make it an exception: a builtin
    exception, a class found to be one (to a fixed point, across files), or a foreign base named
    like one (``exceptions.SlowRetrievalError``, ``click.ClickException``)."""
    known = set(_BUILTIN_EXCEPTIONS) | set(errors.__all__)
    classes = [(f, node) for f, tree in _sources(package) for node in ast.walk(tree)
               if isinstance(node, ast.ClassDef)]
    found: set[tuple[str, str]] = set()
    grew = True
    while grew:
        grew = False
        for f, node in classes:
            names = [_base_name(b) for b in node.bases]
            if (f, node.name) not in found and any(
                    n in known or n.endswith(("Error", "Exception")) for n in names):
                found.add((f, node.name))
                known.add(node.name)
                grew = True
    return iter(sorted(found))


def test_every_device_side_exception_class_is_defined_in_errors_py() -> None:
    stray = {c for c in exception_classes("edge_runtime") if c[0] != "edge_runtime/errors.py"}
    assert stray == OUTSIDE_ERRORS


def test_the_scan_finds_exception_classes() -> None:
    """The scan above must see the classes it is about, or it would pass on nothing."""
    inside = {name for f, name in exception_classes("edge_runtime") if f == "edge_runtime/errors.py"}
    assert {"EdgeRuntimeError", "InputError", "SinkAuthError", "AttributeMissing"} <= inside


def test_every_workstation_exception_class_is_defined_in_converters_errors_py() -> None:
    found = set(exception_classes("converters"))
    assert {name for _, name in found} >= {"ConversionError", "PublishError", "SigningError"}
    assert {f for f, _ in found} == {"converters/errors.py"}


def test_the_collector_defines_no_exception_class_of_its_own() -> None:
    assert not set(exception_classes("collector"))  # its errors are in edge_runtime/errors.py


def test_errors_all_lists_every_class_and_the_package_exports_each() -> None:
    defined = {n for n, v in vars(errors).items()
               if inspect.isclass(v) and issubclass(v, BaseException) and v.__module__ == errors.__name__}
    assert set(errors.__all__) == defined
    for name in errors.__all__:
        assert name in edge_runtime.__all__
        assert getattr(edge_runtime, name) is getattr(errors, name)
        assert issubclass(getattr(errors, name), errors.EdgeRuntimeError)


@pytest.mark.parametrize(("module", "name"), OLD_HOMES)
def test_old_import_paths_still_work(module: str, name: str) -> None:
    assert getattr(importlib.import_module(module), name) is getattr(errors, name)


@pytest.mark.parametrize(("module", "name"), CONVERTER_OLD_HOMES)
def test_old_converter_import_paths_still_work(module: str, name: str) -> None:
    conv_errors = importlib.import_module("converters.errors")
    cls = getattr(conv_errors, name)
    assert getattr(importlib.import_module(module), name) is cls
    assert getattr(importlib.import_module("converters"), name) is cls
    assert name in conv_errors.__all__


def test_stalled_error_keeps_its_tuf_base() -> None:
    pytest.importorskip("tuf")
    from tuf.api import exceptions

    from edge_runtime.sync.fetcher import StalledError

    assert issubclass(StalledError, exceptions.SlowRetrievalError)


@pytest.mark.parametrize("package", ["edge_runtime", "converters", "collector"])
def test_nothing_raises_the_bare_base_class(package: str) -> None:
    bare = []
    for f, tree in _sources(package):
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and node.exc is not None:
                target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if _base_name(target) == "EdgeRuntimeError":
                    bare.append(f"{f}:{node.lineno}")
    assert not bare, "raise a subclass that says what went wrong: " + ", ".join(bare)


# --- one "no probabilities" error on every predictor --------------------------------------------
@pytest.fixture(scope="module")
def ridge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.linear_model import Ridge
    from zoo import dataset

    import converters

    X, y, X_te, _ = dataset("regression")
    return converters.convert(Ridge().fit(X, y), X, tmp_path_factory.mktemp("ridge") / "b",
                              name="ridge", version="1.0.0", holdout=X_te)


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    from zoo import dataset

    return np.asarray(dataset("regression")[2][:3], dtype=np.float32)


NO_PROBA = "model 'ridge' gives no probabilities (task regression); use predict()"


async def _wait(awaitable: Any) -> Any:
    return await awaitable


def _check(call: Any, *args: Any, **kw: Any) -> None:
    with pytest.raises(errors.NoProbabilitiesError) as info:
        out = call(*args, **kw)
        if inspect.isawaitable(out):
            asyncio.run(_wait(out))
    assert str(info.value) == NO_PROBA
    assert isinstance(info.value, errors.EdgeRuntimeError) and isinstance(info.value, AttributeError)


def test_no_probabilities_from_model_and_list_model(ridge: Path, rows: np.ndarray) -> None:
    from edge_runtime.model_lists import ListModel

    model = edge_runtime.load(ridge, backend="numpy")
    lists = ListModel(model.bundle, model.backend, model.artifact)
    for m in (model, lists):
        _check(m.predict_proba, rows)
        _check(m.predict_proba_async, rows)
    assert model.predict(rows).shape == (len(rows),)  # the model itself works


def test_no_probabilities_from_every_strategy(ridge: Path, rows: np.ndarray, tmp_path: Path) -> None:
    from edge_runtime.strategies import ABSplit, Ensemble, FeatureFlags, Shadow, StrategySwitch

    a, b = edge_runtime.load(ridge, backend="numpy"), edge_runtime.load(ridge, backend="numpy")
    shadow = Shadow(a, b, candidate_version="1.0.1")
    try:
        _check(shadow.predict_proba, rows)
    finally:
        shadow.close()
    _check(ABSplit({"1.0.0": (a, 1.0)}).predict_proba, rows, key="device-1")
    _check(Ensemble([a, b]).predict_proba, rows)
    router = StrategySwitch({"1.0.0": a}, FeatureFlags({"strategy": "single", "version": "1.0.0"}))
    _check(router.predict_proba, rows, key="device-1")


def test_no_probabilities_from_monitored_model(ridge: Path, rows: np.ndarray, tmp_path: Path) -> None:
    from edge_runtime.telemetry import MonitoredModel, Recorder

    class ValuesOnly:  # a predictor without predict_proba at all
        name, version, task = "ridge", "1.0.0", "regression"

        def predict(self, X: Any) -> np.ndarray:
            return np.zeros(len(X))

    rec = Recorder(tmp_path / "state")
    try:
        _check(MonitoredModel(edge_runtime.load(ridge, backend="numpy"), rec).predict_proba, rows)
        _check(MonitoredModel(ValuesOnly(), rec).predict_proba, rows)
    finally:
        rec.close()


def test_no_probabilities_from_hot_swap_and_not_counted_against_probation(
        ridge: Path, rows: np.ndarray, tmp_path: Path) -> None:
    """Asking a regression model for probabilities is the caller's mistake: it must not count
    as an error of the version on probation (it did, and could roll a good version back)."""
    from edge_runtime.bundle import pack_bundle
    from edge_runtime.hotswap import HotSwapModel
    from edge_runtime.sync.store import VersionStore

    store = VersionStore(tmp_path / "state")
    for version in ("1.0.0", "1.1.0"):
        d = tmp_path / "src" / version
        shutil.copytree(ridge, d)
        m = json.loads((d / "manifest.json").read_text())
        m["version"] = version
        (d / "manifest.json").write_text(json.dumps(m))
        store.install(version, pack_bundle(d, tmp_path / "src" / f"ridge-{version}.tar.gz"))
        store.activate(version)
        if version == "1.0.0":
            store.commit(version, "test: judged good")  # 1.1.0 stays on probation
    hot = HotSwapModel(store.root, backend="numpy", check_every_s=3600)
    try:
        assert hot.version == "1.1.0"
        monitor = hot._monitor_for("1.1.0")  # noqa: SLF001 - the probation judge of this version
        assert monitor is not None
        for _ in range(3):
            _check(hot.predict_proba, rows)
        assert monitor.errors == 0
        assert store.read_active()["current"] == "1.1.0"
    finally:
        hot.close()
