"""The pyodide backend's place in the registry, checked on the host by pretending to be
Pyodide (the real bridge runs in tests/test_pyodide.py under Node)."""

from __future__ import annotations

import sys
import types

import pytest

import edge_runtime
from edge_runtime.backends import available_backends, get_backend
from edge_runtime.errors import BackendError


@pytest.fixture
def fake_pyodide(monkeypatch):
    monkeypatch.setattr(sys, "platform", "emscripten")
    monkeypatch.setitem(sys.modules, "onnxruntime_web", types.ModuleType("onnxruntime_web"))


pytestmark = pytest.mark.device


@pytest.fixture(scope="module")
def bundle():
    """The iris LogisticRegression bundle (committed, read only)."""
    from committed import bundle

    return bundle("iris")


def test_unavailable_off_pyodide():
    assert not get_backend("pyodide").is_available()
    assert "pyodide" not in available_backends()


def test_auto_ranks_it_after_in_process_engines(fake_pyodide):
    names = available_backends()
    assert "pyodide" in names
    for in_process in ("onnxruntime", "numpy"):
        if in_process in names:
            assert names.index(in_process) < names.index("pyodide")


def test_sync_load_and_run_say_to_await(fake_pyodide, bundle):
    with pytest.raises(BackendError, match=r"await edge_runtime\.load_async"):
        edge_runtime.load(bundle, backend="pyodide")
    # auto passes over it (onnxruntime answers synchronously here)
    assert edge_runtime.load(bundle).backend.name != "pyodide"
    cls = get_backend("pyodide")
    bundle_obj = edge_runtime.open_bundle(bundle)
    art = bundle_obj.manifest.artifacts[0]
    engine = cls(bundle_obj.read_artifact(art), art, edge_runtime.backends.BackendOptions())
    with pytest.raises(BackendError, match=r"await model\.predict_async\(rows\)"):
        engine.run(None, ["x"])


def test_a_backend_module_whose_engine_is_missing_does_not_break_the_registry(tmp_path, monkeypatch):
    """Inside Pyodide without numpy, a backend module importing numpy at the top must not take
    load() down for every other backend."""
    import edge_runtime.backends as registry

    (tmp_path / "needs_missing_engine.py").write_text("import engine_that_is_not_installed\n")
    monkeypatch.setattr(registry, "__path__", [*registry.__path__, str(tmp_path)])
    monkeypatch.setattr(registry, "_DISCOVERED", False)
    monkeypatch.setattr(registry, "_UNIMPORTABLE", {})
    assert "onnxruntime" in registry.backend_names()
    with pytest.raises(BackendError, match="needs_missing_engine could not be imported.*engine_that_is_not"):
        registry.get_backend("needs-missing-engine")


def test_off_pyodide_the_error_says_where_it_runs(bundle):
    from edge_runtime.errors import BackendUnavailableError

    with pytest.raises(BackendUnavailableError, match="only runs inside Pyodide"):
        edge_runtime.load(bundle, backend="pyodide")
