"""One predictor protocol (issue #20, part 7): every model and wrapper has the signatures of
:class:`edge_runtime.predictor.Predictor`, and ``strict=``, ``key=`` and ``ids=`` given through
the protocol are used or passed on as ``edge_runtime/predictor.py`` documents, never dropped
without a word."""

from __future__ import annotations

import asyncio
import inspect
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_runtime import Predictor, load
from edge_runtime.bundle import pack_bundle
from edge_runtime.errors import InputError
from edge_runtime.hotswap import HotSwapModel
from edge_runtime.model import Model
from edge_runtime.model_lists import ListModel
from edge_runtime.strategies import ABSplit, Ensemble, FeatureFlags, Shadow, StrategyError, StrategySwitch
from edge_runtime.sync.store import VersionStore
from edge_runtime.telemetry import MonitoredModel, Recorder
from edge_runtime.telemetry.recorder import ENTRY

METHODS = ("predict", "predict_proba", "predict_async", "predict_proba_async")
ATTRIBUTES = ("task", "classes", "feature_names", "input_schema")
IMPLEMENTATIONS = (Model, ListModel, MonitoredModel, Shadow, ABSplit, Ensemble, StrategySwitch, HotSwapModel)
X2 = np.array([[0.1, 0.2], [0.3, 0.4]])


def _params(fn: Any) -> list[tuple[str, Any, Any]]:
    """Name, kind and default of each parameter after ``self`` (annotations may differ)."""
    params = list(inspect.signature(fn).parameters.values())
    if params and params[0].name == "self":
        params = params[1:]
    return [(p.name, p.kind, p.default) for p in params]


@pytest.mark.parametrize("cls", IMPLEMENTATIONS, ids=lambda c: c.__name__)
def test_every_implementation_has_the_protocol_signatures(cls: type) -> None:
    for name in METHODS:
        want, got = getattr(Predictor, name), getattr(cls, name)
        assert _params(got) == _params(want), f"{cls.__name__}.{name}"
        assert inspect.iscoroutinefunction(got) == inspect.iscoroutinefunction(want), f"{cls.__name__}.{name}"
    assert [p[0] for p in _params(Predictor.predict)] == ["X", "strict", "key", "ids"]


class Spy:
    """A Predictor answering fixed outputs that remembers the keywords of every call."""

    def __init__(self, label: int = 0, features: tuple[str, ...] = ("a", "b")):
        self.task = "classification"
        self.classes = np.array([0, 1])
        self.feature_names = list(features)
        self.input_schema = f"schema {label}"
        self.label = label
        self.calls: list[tuple[str, bool, Any, Any]] = []

    def _answer(self, method: str, X: Any, strict: bool, key: Any, ids: Any) -> np.ndarray:
        self.calls.append((method, strict, key, ids))
        n = len(X)
        if method.startswith("predict_proba"):
            return np.tile([1.0 - self.label, float(self.label)], (n, 1))
        return np.full(n, self.label)

    def predict(self, X: Any, *, strict: bool = False, key: Any = None, ids: Any = None) -> np.ndarray:
        return self._answer("predict", X, strict, key, ids)

    def predict_proba(self, X: Any, *, strict: bool = False, key: Any = None, ids: Any = None) -> np.ndarray:
        return self._answer("predict_proba", X, strict, key, ids)

    async def predict_async(self, X: Any, *, strict: bool = False, key: Any = None,
                            ids: Any = None) -> np.ndarray:
        return self._answer("predict_async", X, strict, key, ids)

    async def predict_proba_async(self, X: Any, *, strict: bool = False, key: Any = None,
                                  ids: Any = None) -> np.ndarray:
        return self._answer("predict_proba_async", X, strict, key, ids)


def _through_protocol(p: Predictor) -> list[np.ndarray]:
    """Each of the four methods, called as the protocol says, with every keyword given."""
    assert isinstance(p, Predictor)
    kw = {"strict": True, "key": "user-7", "ids": ["r1", "r2"]}
    return [p.predict(X2, **kw), p.predict_proba(X2, **kw),
            asyncio.run(p.predict_async(X2, **kw)), asyncio.run(p.predict_proba_async(X2, **kw))]


ALL_FOUR = [(m, True, "user-7", ["r1", "r2"]) for m in METHODS]


def test_monitored_model_records_ids_and_passes_everything_on(tmp_path: Path) -> None:
    spy = Spy(label=1)
    rec = Recorder(tmp_path / "s", start=False)
    mm = MonitoredModel(spy, rec, name="m", version="1.0.0")
    for name in METHODS:  # the recording closures that replace the methods on the instance, too
        assert _params(getattr(mm, name)) == _params(getattr(Predictor, name)), name
        assert inspect.iscoroutinefunction(getattr(mm, name)) == name.endswith("_async"), name
    before = len(rec.buf)
    _through_protocol(mm)
    assert spy.calls == ALL_FOUR
    assert len(rec.buf) - before == 4 * ENTRY  # four calls recorded
    assert rec.buf[ENTRY - 1::ENTRY][-4:] == [["r1", "r2"]] * 4  # ids: the last field of each entry
    assert (mm.task, list(mm.classes), mm.feature_names, mm.input_schema) == \
        ("classification", [0, 1], ["a", "b"], "schema 1")
    rec.close()


def test_monitored_plain_object_gets_no_key_or_ids_and_refuses_strict(tmp_path: Path) -> None:
    class Plain:  # anything with predict(X) may be monitored; it cannot use key, ids, strict
        def predict(self, X: Any) -> np.ndarray:
            return np.zeros(len(X), dtype=int)

    rec = Recorder(tmp_path / "s", start=False)
    mm = MonitoredModel(Plain(), rec, name="m", version="1.0.0")
    assert not isinstance(Plain(), Predictor)
    assert mm.predict(X2, key="k", ids=["r1", "r2"]).tolist() == [0, 0]
    assert rec.buf[-1] == ["r1", "r2"]  # recorded here, where feedback() will look
    with pytest.raises(TypeError):  # asked to check ranges it cannot check: an error, not a pass
        mm.predict(X2, strict=True)
    assert asyncio.run(mm.predict_async(X2, ids=["r3", "r4"])).tolist() == [0, 0]
    assert rec.buf[-1] == ["r3", "r4"]
    rec.close()


def test_shadow_gives_every_keyword_to_the_primary_and_rows_only_to_the_candidate() -> None:
    primary, candidate = Spy(label=1), Spy(label=1)
    shadow = Shadow(primary, candidate, candidate_version="2.0.0")
    try:
        _through_protocol(shadow)
        shadow.wait()
    finally:
        shadow.close()
    assert primary.calls == ALL_FOUR
    assert candidate.calls == [("predict", False, None, None)] * 2  # the two predict calls
    assert (shadow.compared, shadow.agreed) == (4, 4)
    assert shadow.input_schema == "schema 1"


def test_ab_split_routes_by_key_and_passes_everything_on() -> None:
    arms = {"a": Spy(label=0), "b": Spy(label=1)}
    split = ABSplit({label: (m, 1.0) for label, m in arms.items()}, salt="s")
    chosen = split.arm_for("user-7")
    out = _through_protocol(split)
    assert arms[chosen].calls == ALL_FOUR
    assert all(not m.calls for label, m in arms.items() if label != chosen)
    assert out[0].tolist() == [arms[chosen].label] * 2
    assert (split.task, split.feature_names, split.input_schema) == ("classification", ["a", "b"], "schema 0")


def test_ab_split_refuses_one_column_order_for_arms_that_differ() -> None:
    split = ABSplit({"a": (Spy(features=("a", "b")), 1.0), "b": (Spy(features=("b", "a")), 1.0)})
    assert split.task == "classification"
    with pytest.raises(StrategyError, match="arm 'b' differs in feature names"):
        split.feature_names  # noqa: B018
    with pytest.raises(StrategyError, match="feature names"):
        split.input_schema  # noqa: B018


@pytest.mark.parametrize("method", ["average", "vote"])
def test_ensemble_passes_strict_and_key_to_members_but_keeps_ids(method: str) -> None:
    members = [Spy(label=1), Spy(label=1), Spy(label=0)]
    ens = Ensemble(members, method)
    out = _through_protocol(ens)
    asked = "predict_proba" if method == "average" else "predict"
    want = [(asked, True, "user-7", None), ("predict_proba", True, "user-7", None),
            (asked + "_async", True, "user-7", None), ("predict_proba_async", True, "user-7", None)]
    assert all(m.calls == want for m in members)
    assert out[0].tolist() == out[2].tolist() == [1, 1]
    assert np.allclose(out[1], [[1 / 3, 2 / 3]] * 2) and np.allclose(out[3], out[1])


def test_router_passes_everything_to_the_active_strategy() -> None:
    models = {"1.0.0": Spy(label=0), "1.1.0": Spy(label=1), "1.2.0": Spy(label=1)}
    flags = FeatureFlags({"strategy": "single", "version": "1.0.0"})
    router = StrategySwitch(models, flags, device_id="dev-1")
    _through_protocol(router)
    assert models["1.0.0"].calls == ALL_FOUR  # key= and ids= reach the model (were popped)
    flags.config, flags.generation = {"strategy": "ab", "arms": {"1.1.0": 1, "1.2.0": 0}}, 2
    _through_protocol(router)
    assert models["1.1.0"].calls == ALL_FOUR and not models["1.2.0"].calls
    assert router.feature_names == ["a", "b"] and router.input_schema == "schema 1"


# --- the real thing: a loaded Model and the hot-swap holder -----------------------------------
@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("sklearn")  # the workstation side makes the bundle; the spies need none
    from sklearn.linear_model import LogisticRegression
    from zoo import dataset

    import converters

    X, y, X_te, _ = dataset("iris")
    est = LogisticRegression(max_iter=1000).fit(X, y)
    return converters.convert(est, X, tmp_path_factory.mktemp("iris") / "b", name="iris",
                              version="1.0.0", holdout=X_te)


ROW = [[5.1, 3.5, 1.4, 0.2]]
OUT_OF_TRAINING = [[5.1, 3.5, 1.4, 99.0]]  # petal width far above the training max


def _through_protocol_rows(p: Any, rows: Any) -> list[Any]:
    kw = {"key": "user-7", "ids": ["r1"]}
    return [p.predict(rows, **kw), p.predict_proba(rows, **kw),
            asyncio.run(p.predict_async(rows, **kw)), asyncio.run(p.predict_proba_async(rows, **kw))]


def test_model_honours_strict_and_ignores_key_and_ids(iris: Path) -> None:
    model = load(iris)
    plain = [model.predict(ROW), model.predict_proba(ROW)]
    for got, want in zip(_through_protocol_rows(model, ROW), plain * 2):
        assert np.array_equal(got, want)
    assert model.predict(OUT_OF_TRAINING).shape == (1,)
    with pytest.raises(InputError, match="training range"):
        model.predict(OUT_OF_TRAINING, strict=True, key="k", ids=["r"])
    assert model.feature_matrix(ROW).tolist() == np.asarray(ROW, dtype=np.float32).tolist()


def test_hot_swap_passes_strict_and_key_on_and_keeps_ids_for_probation(iris: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    shutil.copytree(iris, src)
    m = json.loads((src / "manifest.json").read_text())
    (src / "manifest.json").write_text(json.dumps({**m, "version": "1.0.0"}))
    store = VersionStore(tmp_path / "state")
    store.install("1.0.0", pack_bundle(src, tmp_path / "iris.tar.gz"))
    store.activate("1.0.0")
    store.commit("1.0.0", "test: judged good")
    hot = HotSwapModel(store.root)
    try:
        assert isinstance(hot, Predictor)
        seen: list[tuple[str, Any, dict[str, Any]]] = []
        run = hot.run

        def spy_run(served: Any, method: str, X: Any, ids: Any = None, **kw: Any) -> Any:
            seen.append((method, ids, kw))
            return run(served, method, X, ids=ids, **kw)

        monkeypatch.setattr(hot, "run", spy_run)
        direct = load(iris)
        for got, want in zip(_through_protocol_rows(hot, ROW),
                             [direct.predict(ROW), direct.predict_proba(ROW)] * 2):
            assert np.array_equal(got, want)
        assert seen == [(name, ["r1"], {"strict": False, "key": "user-7"})
                        for name in ("predict", "predict_proba") * 2]
        with pytest.raises(InputError, match="training range"):
            hot.predict(OUT_OF_TRAINING, strict=True)
        assert (hot.task, hot.feature_names) == (direct.task, direct.feature_names)
        assert list(hot.classes) == list(direct.classes)
        assert hot.input_schema.names == direct.input_schema.names
    finally:
        hot.close()


WRAPPER_FILES = ("model.py", "model_lists.py", "predictor.py", "strategies.py", "hotswap.py",
                 "telemetry/monitored.py")


def _foreign_private(source: str, where: str) -> list[str]:
    """``obj._name`` and ``getattr(obj, "_name")`` where ``obj`` is not ``self``/``cls``."""
    import ast

    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute):
            owner, name = node.value, node.attr
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in ("getattr", "hasattr") and len(node.args) >= 2 \
                and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str):
            owner, name = node.args[0], node.args[1].value
        else:
            continue
        if name.startswith("_") and not name.startswith("__") \
                and not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
            found.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_wrappers_reach_into_no_other_objects_private_members() -> None:
    import edge_runtime

    root = Path(edge_runtime.__file__).parent
    assert [hit for f in WRAPPER_FILES for hit in _foreign_private((root / f).read_text(), f)] == []
    caught = _foreign_private("self._a\nmodel._adapt(X)\ngetattr(first, '_adapt', None)\nx.__dict__\n", "t")
    assert sorted(caught) == ["t:2: model._adapt", "t:3: getattr(first, '_adapt', None)"]  # what it finds
