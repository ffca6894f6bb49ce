"""Deployment strategies on the device: shadow, A/B split, ensembles, feature flags.

- :class:`Shadow`: a candidate runs on the same inputs in a background thread; only the
  primary's outputs are returned; the agreement rate is recorded in the primary's telemetry.
- :class:`ABSplit`: each key (device id or request key) goes to one arm by a stable hash, so
  the same key always sees the same version, on every device, across restarts.
- :class:`Ensemble`: several bundles as one model (average of probabilities/values, or vote).
- :class:`FeatureFlags` + :class:`StrategySwitch`: a local JSON file (optionally signed with
  Ed25519) or the custom fields of signed TUF target metadata choose the active strategy;
  editing the file switches it without a redeploy.

Each of them is an :class:`edge_runtime.predictor.Predictor` over Predictors (loaded models,
monitored models, other strategies): ``strict``, ``key`` and ``ids`` are passed on as that
module defines. Wrap anything else (an object with only ``predict(X)``) in a
:class:`~edge_runtime.telemetry.MonitoredModel` first.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from .errors import EdgeRuntimeError, IntegrityError, NoProbabilitiesError
from .errors import StrategyError as StrategyError  # defined in errors.py; importable from here too


def stable_fraction(key: Any, salt: str = "") -> float:
    """A number in [0, 1) fixed by ``salt`` and ``key``: sha256, first 8 bytes, big-endian."""
    digest = hashlib.sha256(f"{salt}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def _same_outputs(a: np.ndarray, b: np.ndarray, atol: float) -> np.ndarray:
    a, b = np.asarray(a).reshape(len(a), -1), np.asarray(b).reshape(len(b), -1)
    if a.dtype.kind in "fc" and b.dtype.kind in "fc":
        return np.all(np.abs(a.astype(np.float64) - b.astype(np.float64)) <= atol, axis=1)
    return np.all(a.astype(str) == b.astype(str), axis=1)


def _shared(models: Sequence[tuple[str, Any]], attr: str, who: str) -> Any:
    """The value of ``attr`` (``None`` if absent) all ``(label, model)`` pairs agree on, else a
    :class:`StrategyError`: one value read for models that disagree would feed or read some
    of them wrong, without an error."""
    value = getattr(models[0][1], attr, None)
    want = _comparable(value)
    for label, m in models[1:]:
        if _comparable(getattr(m, attr, None)) != want:
            raise StrategyError(f"{who}: {label} differs in {attr.replace('_', ' ')}; read it from "
                                "the model itself")
    return value


def _comparable(value: Any) -> Any:
    return value if value is None or isinstance(value, str) else list(value)


class Shadow:
    """Serve ``primary``; run ``candidate`` on the same inputs off the prediction path.

    ``primary`` should be a :class:`~edge_runtime.telemetry.MonitoredModel` (agreement goes
    into its telemetry as ``shadow[<candidate version>]``). Inputs wait in a bounded queue;
    when it is full the shadow comparison is skipped (counted in ``skipped``), never the
    prediction. Labels must match exactly; regression values within ``atol``.

    A :class:`~edge_runtime.predictor.Predictor`: ``strict``, ``key`` and ``ids`` go to the
    primary; the candidate gets the rows only (it is compared, not routed or labelled). The
    attributes are the primary's.
    """

    def __init__(self, primary: Any, candidate: Any, *, queue_max: int = 10_000,
                 atol: float = 1e-6, candidate_version: Optional[str] = None):
        self.primary, self.candidate = primary, candidate
        self.candidate_version = candidate_version or getattr(candidate, "version", None) or \
            candidate.manifest.version
        self.atol = atol
        self.recorder = getattr(primary, "recorder", None)
        self.skipped = 0
        self.compared = 0
        self.agreed = 0
        self._q: queue.Queue = queue.Queue(maxsize=queue_max)
        self._thread = threading.Thread(target=self._run, name="edgert-shadow", daemon=True)
        self._thread.start()

    @property
    def task(self) -> str:
        return self.primary.task

    @property
    def classes(self) -> Any:
        return self.primary.classes

    @property
    def feature_names(self) -> Any:
        return self.primary.feature_names

    @property
    def input_schema(self) -> Any:
        return self.primary.input_schema

    def predict(self, X: Any, *, strict: bool = False, key: Any = None, ids: Any = None) -> np.ndarray:
        y = self.primary.predict(X, strict=strict, key=key, ids=ids)
        self._offer(X, y)
        return y

    def predict_proba(self, X: Any, *, strict: bool = False, key: Any = None,
                      ids: Any = None) -> np.ndarray:
        return self.primary.predict_proba(X, strict=strict, key=key, ids=ids)

    async def predict_async(self, X: Any, *, strict: bool = False, key: Any = None,
                            ids: Any = None) -> np.ndarray:
        y = await self.primary.predict_async(X, strict=strict, key=key, ids=ids)
        self._offer(X, y)
        return y

    async def predict_proba_async(self, X: Any, *, strict: bool = False, key: Any = None,
                                  ids: Any = None) -> np.ndarray:
        return await self.primary.predict_proba_async(X, strict=strict, key=key, ids=ids)

    def _offer(self, X: Any, y: Any) -> None:
        try:
            self._q.put_nowait((X.copy() if isinstance(X, np.ndarray) else X, y))
        except queue.Full:
            self.skipped += 1

    def feedback(self, prediction_id: Any, label: Any) -> None:
        self.primary.feedback(prediction_id, label)

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                self._q.task_done()
                return
            X, y = item
            try:
                got = self.candidate.predict(X)
                same = _same_outputs(y, got, self.atol)
                n, agree = int(same.size), int(same.sum())
            except Exception:  # noqa: BLE001 - a failing candidate disagrees; it never raises
                n, agree = len(y), 0
            self.compared += n
            self.agreed += agree
            if self.recorder is not None:
                self.recorder.shadow_result(self.primary.stream, self.candidate_version, n, agree)
            self._q.task_done()

    def wait(self) -> None:
        """Block until every queued input has been compared (tests, flush points)."""
        self._q.join()

    def close(self) -> None:
        self.wait()
        self._q.put(None)
        self._thread.join(timeout=10)


class ABSplit:
    """Route each key to one arm by stable hash; ``arms`` = {label: (model, weight)}.

    The key is the ``key=`` of each call, else ``default_key`` (e.g. the device id, for a
    per-device split). Arm i takes keys whose :func:`stable_fraction` falls in its share of
    [0, 1), in the order given.

    A :class:`~edge_runtime.predictor.Predictor`: ``key`` chooses the arm and, with ``strict``
    and ``ids``, is passed on to it. ``task``, ``classes`` and ``feature_names`` are the arms'
    when they all agree (else reading one is a :class:`StrategyError`: arms that order their
    features differently cannot share one array layout); ``input_schema`` is the first arm's
    (each arm checks its rows against its own ranges).
    """

    def __init__(self, arms: Mapping[str, tuple[Any, float]], *, salt: str = "",
                 default_key: Optional[str] = None):
        if not arms:
            raise StrategyError("A/B split: 'arms' is empty")
        total = 0.0
        self._bounds: list[tuple[float, str, Any]] = []
        for label, (model, weight) in arms.items():
            if not (isinstance(weight, (int, float)) and weight >= 0):
                raise StrategyError(f"A/B split: weight of arm '{label}' must be >= 0")
            total += float(weight)
            self._bounds.append((total, label, model))
        if total <= 0:
            raise StrategyError("A/B split: the weights add up to 0")
        self._bounds = [(b / total, label, m) for b, label, m in self._bounds]
        self.salt, self.default_key = salt, default_key

    def _arms(self) -> list[tuple[str, Any]]:
        return [(f"arm '{label}'", m) for _, label, m in self._bounds]

    @property
    def task(self) -> str:
        return _shared(self._arms(), "task", "A/B split")

    @property
    def classes(self) -> Any:
        return _shared(self._arms(), "classes", "A/B split")

    @property
    def feature_names(self) -> Any:
        return _shared(self._arms(), "feature_names", "A/B split")

    @property
    def input_schema(self) -> Any:
        self.feature_names  # noqa: B018 - refuses arms whose columns differ
        return self._bounds[0][2].input_schema

    def arm_for(self, key: Any) -> str:
        f = stable_fraction(key, self.salt)
        for bound, label, _ in self._bounds:
            if f < bound:
                return label
        return self._bounds[-1][1]

    def _model(self, key: Any) -> Any:
        if key is None:
            key = self.default_key
        if key is None:
            raise StrategyError("A/B split: give key= (or a default_key such as the device id)")
        label = self.arm_for(key)
        return next(m for _, lab, m in self._bounds if lab == label)

    def predict(self, X: Any, *, strict: bool = False, key: Any = None, ids: Any = None) -> np.ndarray:
        return self._model(key).predict(X, strict=strict, key=key, ids=ids)

    def predict_proba(self, X: Any, *, strict: bool = False, key: Any = None,
                      ids: Any = None) -> np.ndarray:
        return self._model(key).predict_proba(X, strict=strict, key=key, ids=ids)

    async def predict_async(self, X: Any, *, strict: bool = False, key: Any = None,
                            ids: Any = None) -> np.ndarray:
        return await self._model(key).predict_async(X, strict=strict, key=key, ids=ids)

    async def predict_proba_async(self, X: Any, *, strict: bool = False, key: Any = None,
                                  ids: Any = None) -> np.ndarray:
        return await self._model(key).predict_proba_async(X, strict=strict, key=key, ids=ids)

    def feedback(self, prediction_id: Any, label: Any) -> None:
        # all arms share the recorder; it knows which version made the prediction
        self._bounds[0][2].feedback(prediction_id, label)


class Ensemble:
    """Several models with the same features (and classes) as one model.

    ``method="average"``: mean of probabilities (classification) or values (regression),
    weighted by ``weights``; ``"vote"``: the most voted label (ties to the first class in
    ``classes`` order). Exposes ``name``/``version``/``reference`` and :meth:`feature_matrix`
    so it can be monitored.

    A :class:`~edge_runtime.predictor.Predictor`: ``strict`` and ``key`` go to every member;
    ``ids`` deliberately do not (the ensemble's answer is none of the members', so a true label
    belongs to the ensemble: wrap it in a ``MonitoredModel`` to record them).
    ``input_schema`` is the first member's (every member checks the rows itself).
    """

    def __init__(self, models: Sequence[Any], method: str = "average",
                 weights: Optional[Sequence[float]] = None, name: Optional[str] = None):
        if len(models) < 2:
            raise StrategyError("ensemble: needs at least 2 models")
        if method not in ("average", "vote"):
            raise StrategyError(f"ensemble: method must be 'average' or 'vote', not {method!r}")
        first = models[0]
        self.models, self.method = list(models), method
        self.task = first.task
        self.feature_names = list(first.feature_names)
        self.classes = first.classes
        for i, m in enumerate(models[1:], 1):
            if m.task != self.task or list(m.feature_names) != self.feature_names:
                raise StrategyError(f"ensemble: model {i} differs in task or feature names")
            if self.classes is not None and (m.classes is None or
                                             list(m.classes) != list(self.classes)):
                raise StrategyError(f"ensemble: model {i} has different classes")
        if method == "vote" and self.task != "classification":
            raise StrategyError("ensemble: 'vote' needs a classification task")
        w = np.ones(len(models)) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (len(models),) or (w < 0).any() or w.sum() <= 0:
            raise StrategyError("ensemble: weights must be one non-negative number per model")
        self.weights = w / w.sum()
        man = [getattr(m, "manifest", None) for m in models]
        self.name = name or (man[0].name if man[0] is not None else "ensemble")
        self.version = "+".join(m.version if m is not None else "?" for m in man)
        self.reference = man[0].reference if man[0] is not None else None

    @property
    def input_schema(self) -> Any:
        return self.models[0].input_schema

    def feature_matrix(self, X: Any) -> np.ndarray:
        """The first member's :meth:`~edge_runtime.model.Model.feature_matrix` (telemetry)."""
        return self.models[0].feature_matrix(X)

    # --- prediction: ask every member, then combine -----------------------------------------
    def _source(self) -> str:
        """The member method :meth:`predict` combines (probabilities when averaging classes)."""
        if self.task == "regression" or self.method == "vote":
            return "predict"
        self._require_proba()
        return "predict_proba"

    def _require_proba(self) -> None:
        if self.task != "classification":
            raise NoProbabilitiesError.of(self.name, self.task)

    def _average(self, outputs: Sequence[Any]) -> np.ndarray:
        return sum(w * np.asarray(o, dtype=np.float64) for w, o in zip(self.weights, outputs))

    def _decide(self, outputs: Sequence[Any]) -> np.ndarray:
        """:meth:`predict`'s answer from the members' answers to :meth:`_source`."""
        if self.task == "regression":
            return self._average(outputs)
        classes = np.asarray(self.classes)
        if self.method == "average":
            return classes[self._average(outputs).argmax(axis=1)]
        names = classes.astype(str)[None, :]
        votes = sum((np.asarray(y).astype(str)[:, None] == names) * w
                    for w, y in zip(self.weights, outputs))
        return classes[np.asarray(votes).argmax(axis=1)]

    def predict(self, X: Any, *, strict: bool = False, key: Any = None, ids: Any = None) -> np.ndarray:
        source = self._source()
        return self._decide([getattr(m, source)(X, strict=strict, key=key) for m in self.models])

    def predict_proba(self, X: Any, *, strict: bool = False, key: Any = None,
                      ids: Any = None) -> np.ndarray:
        self._require_proba()
        return self._average([m.predict_proba(X, strict=strict, key=key) for m in self.models])

    async def predict_async(self, X: Any, *, strict: bool = False, key: Any = None,
                            ids: Any = None) -> np.ndarray:
        source = self._source() + "_async"
        return self._decide(await asyncio.gather(*(getattr(m, source)(X, strict=strict, key=key)
                                                   for m in self.models)))

    async def predict_proba_async(self, X: Any, *, strict: bool = False, key: Any = None,
                                  ids: Any = None) -> np.ndarray:
        self._require_proba()
        return self._average(await asyncio.gather(*(m.predict_proba_async(X, strict=strict, key=key)
                                                    for m in self.models)))


# --- feature flags ------------------------------------------------------------------------
STRATEGIES = ("single", "shadow", "ab", "ensemble")


def validate_config(cfg: Any, versions: Optional[Sequence[str]] = None) -> dict[str, Any]:
    """Check a strategy config; every version named must be in ``versions`` when given.

    Raises:
        StrategyError: naming the field that is wrong.
    """
    if not isinstance(cfg, dict):
        raise StrategyError("strategy config: not a JSON object")
    kind = cfg.get("strategy")
    if kind not in STRATEGIES:
        raise StrategyError(f"strategy config: field 'strategy' must be one of {STRATEGIES}")

    def need_version(field: str, v: Any) -> None:
        if not isinstance(v, str) or (versions is not None and v not in versions):
            raise StrategyError(f"strategy config: field '{field}' names no loaded version ({v!r})")

    if kind == "single":
        need_version("version", cfg.get("version"))
    elif kind == "shadow":
        need_version("primary", cfg.get("primary"))
        need_version("candidate", cfg.get("candidate"))
    elif kind == "ab":
        arms = cfg.get("arms")
        if not isinstance(arms, dict) or not arms:
            raise StrategyError("strategy config: field 'arms' must map versions to weights")
        for v, w in arms.items():
            need_version(f"arms.{v}", v)
            if not isinstance(w, (int, float)) or isinstance(w, bool) or w < 0:
                raise StrategyError(f"strategy config: field 'arms.{v}' must be a weight >= 0")
        if not isinstance(cfg.get("salt", ""), str):
            raise StrategyError("strategy config: field 'salt' must be a string")
    else:
        members = cfg.get("members")
        if not isinstance(members, list) or len(members) < 2:
            raise StrategyError("strategy config: field 'members' must list >= 2 versions")
        for i, v in enumerate(members):
            need_version(f"members[{i}]", v)
        if cfg.get("method", "average") not in ("average", "vote"):
            raise StrategyError("strategy config: field 'method' must be 'average' or 'vote'")
    return cfg


def _load_public_key(key: Union[bytes, str, os.PathLike[str]]) -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    if isinstance(key, os.PathLike) or (isinstance(key, str) and Path(key).is_file()):
        key = Path(key).read_bytes()
    if isinstance(key, str):
        key = key.encode()
    if key.startswith(b"-----BEGIN"):
        pub = load_pem_public_key(key)
        if not isinstance(pub, Ed25519PublicKey):
            raise StrategyError("feature flags: the public key is not Ed25519")
        return pub
    return Ed25519PublicKey.from_public_bytes(key if len(key) == 32 else base64.b64decode(key))


class FeatureFlags:
    """The active strategy config, from a JSON file (re-read when it changes) or a dict.

    With ``public_key`` (Ed25519: PEM, 32 raw bytes or base64) the file must come with
    ``<file>.sig`` holding the signature of its exact bytes (raw or base64); a file whose
    signature does not verify is never used: the last good config stays active and
    ``last_error`` says why.
    """

    def __init__(self, source: Union[str, os.PathLike[str], Mapping[str, Any]], *,
                 public_key: Union[bytes, str, None] = None, poll_s: float = 5.0,
                 versions: Optional[Sequence[str]] = None):
        self.versions = list(versions) if versions is not None else None
        self.poll_s = poll_s
        self.last_error: Optional[str] = None
        self.generation = 0
        self._key = _load_public_key(public_key) if public_key is not None else None
        self._path: Optional[Path] = None
        self._stamp: Any = None
        self._next_poll = 0.0
        if isinstance(source, Mapping):
            self.config = validate_config(dict(source), self.versions)
            self.generation = 1
        else:
            self._path = Path(source)
            self.config = self._read()
            self.generation = 1

    def _read(self) -> dict[str, Any]:
        assert self._path is not None
        raw = self._path.read_bytes()
        if self._key is not None:
            from cryptography.exceptions import InvalidSignature

            sig_path = self._path.with_name(self._path.name + ".sig")
            if not sig_path.is_file():
                raise IntegrityError(f"feature flags: {sig_path} is missing")
            sig = sig_path.read_bytes()  # raw 64 bytes (never strip them) or base64 text
            if len(sig) != 64:
                try:
                    sig = base64.b64decode(sig.strip(), validate=True)
                except ValueError:
                    raise IntegrityError(f"feature flags: {sig_path} is not a signature") from None
            try:
                self._key.verify(sig, raw)
            except InvalidSignature:
                raise IntegrityError(f"feature flags: signature of {self._path} does not verify") from None
        try:
            cfg = json.loads(raw)
        except ValueError as exc:
            raise StrategyError(f"feature flags: {self._path} is not JSON ({exc})") from None
        st = self._path.stat()
        self._stamp = (st.st_mtime_ns, st.st_size)
        return validate_config(cfg, self.versions)

    def poll(self) -> bool:
        """Re-read the file if it changed (at most every ``poll_s``). True if switched."""
        if self._path is None:
            return False
        now = time.monotonic()
        if now < self._next_poll:
            return False
        self._next_poll = now + self.poll_s
        try:
            st = self._path.stat()
            if (st.st_mtime_ns, st.st_size) == self._stamp:
                return False
            cfg = self._read()
        except (OSError, EdgeRuntimeError) as exc:
            self.last_error = str(exc)
            return False
        self.last_error = None
        if cfg != self.config:
            self.config = cfg
            self.generation += 1
            return True
        return False


class StrategySwitch:
    """One predictor over several loaded versions, arranged as the feature flags say.

    ``models`` maps version -> (monitored) model. Every call polls the flags cheaply (a
    clock read; the file is stat'ed at most every ``poll_s``) and rebuilds the strategy
    when they changed.

    A :class:`~edge_runtime.predictor.Predictor` whose arguments and attributes are the active
    strategy's: ``key`` picks the arm of an A/B split and reaches the model of any other
    strategy (which ignores it); ``ids`` reach the model that answers, except under an
    ensemble (see :class:`Ensemble`).
    """

    def __init__(self, models: Mapping[str, Any], flags: FeatureFlags, *,
                 device_id: Optional[str] = None):
        self.models, self.flags, self.device_id = dict(models), flags, device_id
        if flags.versions is None:
            flags.versions = list(self.models)
            validate_config(flags.config, flags.versions)
        self._active: Any = None
        self._generation = -1
        self._build()

    def _build(self) -> None:
        cfg = self.flags.config
        kind = cfg["strategy"]
        old = self._active
        if kind == "single":
            self._active = self.models[cfg["version"]]
        elif kind == "shadow":
            self._active = Shadow(self.models[cfg["primary"]], self.models[cfg["candidate"]])
        elif kind == "ab":
            self._active = ABSplit({v: (self.models[v], w) for v, w in cfg["arms"].items()},
                                   salt=cfg.get("salt", ""), default_key=self.device_id)
        else:
            self._active = Ensemble([self.models[v] for v in cfg["members"]],
                                    method=cfg.get("method", "average"))
        self._generation = self.flags.generation
        if isinstance(old, Shadow):
            old.close()

    @property
    def active(self) -> Any:
        self.flags.poll()
        if self.flags.generation != self._generation:
            self._build()
        return self._active

    # --- the Predictor: everything goes to the active strategy, which defines what it uses ----
    @property
    def task(self) -> str:
        return self.active.task

    @property
    def classes(self) -> Any:
        return self.active.classes

    @property
    def feature_names(self) -> Any:
        return self.active.feature_names

    @property
    def input_schema(self) -> Any:
        return self.active.input_schema

    def predict(self, X: Any, *, strict: bool = False, key: Any = None, ids: Any = None) -> np.ndarray:
        return self.active.predict(X, strict=strict, key=key, ids=ids)

    def predict_proba(self, X: Any, *, strict: bool = False, key: Any = None,
                      ids: Any = None) -> np.ndarray:
        return self.active.predict_proba(X, strict=strict, key=key, ids=ids)

    async def predict_async(self, X: Any, *, strict: bool = False, key: Any = None,
                            ids: Any = None) -> np.ndarray:
        return await self.active.predict_async(X, strict=strict, key=key, ids=ids)

    async def predict_proba_async(self, X: Any, *, strict: bool = False, key: Any = None,
                                  ids: Any = None) -> np.ndarray:
        return await self.active.predict_proba_async(X, strict=strict, key=key, ids=ids)

    def feedback(self, prediction_id: Any, label: Any) -> None:
        fb = getattr(self._active, "feedback", None)
        if fb is None:
            fb = next(m.feedback for m in self.models.values() if hasattr(m, "feedback"))
        fb(prediction_id, label)


#: the name of :class:`StrategySwitch` until 2026-12 (docs showed it): kept importable
StrategyRouter = StrategySwitch
