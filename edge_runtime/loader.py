"""``load``: open a bundle, pick a backend that can run it, prove it on the golden rows."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Union

from .backends import Candidate, candidates
from .backends.base import Backend, BackendOptions
from .bundle import Artifact, Bundle, open_bundle
from .errors import (
    BackendError,
    BackendUnavailableError,
    EdgeRuntimeError,
    GoldenMismatchError,
    IntegrityError,
    UnsignedNativeError,
    UnsupportedModelError,
)
from .profiles import DeviceProfile, load_profile
from .signing import TrustSource, manifest_gate, profile_trust, required_trust, verify_bundle

if TYPE_CHECKING:
    from .model import Model


def load(source: Union[str, os.PathLike[str], Bundle], backend: str = "auto", *,
         precision: Optional[str] = None, profile: Union[str, DeviceProfile, None] = None,
         threads: Optional[int] = None, verify: bool = True, tune: bool = False,
         trust: Optional[TrustSource] = None, allow_unsigned_native: bool = False) -> Model:
    """Load a bundle (directory or ``.tar.gz``) and return a ready :class:`Model`.

    ``backend="auto"`` tries the profile's backends in order (else every installed one by
    preference) and keeps the first that reproduces the golden outputs. Artifact bytes are
    checked against the manifest's sha256 before any engine parses them. The golden rows are
    run all at once and one row at a time, at tolerances capped by :mod:`edge_runtime.golden`
    whatever the manifest says; a bundle without golden rows loads only with ``verify=False``.
    With ``auto`` and no explicit ``threads``, a row-count routing table tuned for this bundle
    and profile (``tune=True`` or ``edgert bench --tune``), else one from a short, bounded
    measurement on the first load (cached; off with the profile's ``auto_measure = false`` or
    ``EDGERT_AUTO_MEASURE=0``: the measured rule alone), sends each call to the engine and
    thread count expected fastest for its row count (:mod:`edge_runtime.routing`,
    :mod:`edge_runtime.routing_rule`). Backends that can only answer
    asynchronously (``pyodide``: onnxruntime-web) need :func:`load_async`. ``trust`` (PEM public
    key paths, or the device policy ``EDGERT_TRUST`` / ``EDGERT_REQUIRE_SIGNATURE=1``) makes a
    valid signature over every file of the bundle required (:mod:`edge_runtime.signing`).
    A ``native`` artifact (compiled code) runs only from a bundle whose signature verified
    against that trust, or that the sync agent installed through TUF; ``allow_unsigned_native=True``
    lifts that for a bundle you built yourself (golden rows still prove it).

    Raises:
        BundleError: the bundle is malformed, unsafe or from a newer schema, or (with
            ``verify``) has no golden rows to prove an engine on.
        IntegrityError: an artifact does not match its digest (never falls through to another),
            or a required signature is missing, untrusted or does not match the files.
        UnsignedNativeError: the only artifact that could run is native and the bundle is
            neither signed by a trusted key nor installed through TUF.
        BackendError: no backend could run it; the message lists why each was passed over.
    """
    from .model import Model

    model_cls = model_class()
    plan = _Plan(source, backend, precision, profile, threads, trust, allow_unsigned_native)
    # routing measures and proves its routes with numpy: without it the loop picks one engine
    if plan.auto and threads is None and verify and model_cls is Model:
        routed = _routed(plan, tune)
        if routed is not None:
            return routed
    for cls, art in plan.candidates(sync=True):
        try:
            engine = cls(plan.bundle.read_artifact(art), art, plan.options_for(cls))
            plan.check_widths(engine)
            model = model_cls(plan.bundle, engine, art)
            if verify:
                _proven(model, model.check_golden)
            return model
        except (GoldenMismatchError, UnsupportedModelError, BackendUnavailableError) as exc:
            plan.passed_over(cls.name, exc)
    raise plan.failure()


def model_class() -> type[Model]:
    """The model class for this Python: :class:`Model` where numpy imports, else the plain-lists
    :class:`~edge_runtime.model_lists.ListModel` (Pyodide's core). Chosen here, once per load, so
    neither model module imports the other and the numpy path pays nothing per call."""
    from .model import Model

    try:
        import numpy  # noqa: F401
    except ImportError:
        from .model_lists import ListModel

        return ListModel
    return Model


def _proven(model: Model, check: Callable[[], object]) -> None:
    """Run the golden check; a model that fails it is closed before the error goes on."""
    try:
        check()
    except BaseException:
        model.close()
        raise


def _routed(plan: _Plan, tune: bool) -> Optional[Model]:
    """``auto``: a model routing each call by its row count, through the table cached for this
    bundle, machine and profile, else a full tuning (``tune``), else the first-load plan
    (:mod:`edge_runtime.routing_rule`); every route proven on the golden rows. None when there is
    nothing to route between or a route cannot be built: the plain loop then picks one engine
    (and says why others were passed over). Only called where numpy imports: the measurements
    and the routes' golden proofs use it."""
    from . import routing, routing_rule
    from .model import Model

    first = next(iter(candidates(plan.bundle, plan.profile, plan.precision)), None)
    if first is None:
        return None
    primary = first.artifact
    engines: dict[str, Backend] = {}
    table: Optional[dict[str, Any]]
    try:
        if tune:
            table = routing.tune(plan.bundle, primary, profile=plan.profile)
        else:
            table = routing.cached(plan.bundle, primary, plan.profile)
            if table is None:
                table, engines = routing_rule.first_load(plan.bundle, primary, plan.profile)
        if not table:
            return None
        backend = routing.routed(plan.bundle, primary, table, engines, plan.options.optimization)
    except IntegrityError:
        raise  # a tampered artifact is an error, never a reason to route elsewhere
    except (EdgeRuntimeError, KeyError, ValueError, TypeError):
        # a cached route that no longer reproduces the golden rows (or names an engine gone
        # since, or is malformed) is not used: the plain loop answers instead
        return None
    try:
        for _, engine in backend.routes:
            plan.check_widths(engine)
    except BaseException:
        backend.close()
        raise
    return Model(plan.bundle, backend, primary)


async def load_async(source: Union[str, os.PathLike[str], Bundle], backend: str = "auto", *,
                     precision: Optional[str] = None, profile: Union[str, DeviceProfile, None] = None,
                     threads: Optional[int] = None, verify: bool = True,
                     trust: Optional[TrustSource] = None, allow_unsigned_native: bool = False) -> Model:
    """Awaitable :func:`load` that works with every backend, including those that answer only
    asynchronously (``pyodide``, i.e. onnxruntime-web through Pyodide's JS bridge, where
    nothing can block on a JS promise). Golden rows are checked with ``await``.

    Raises:
        BundleError, IntegrityError, BackendError: as :func:`load`.
    """
    model_cls = model_class()
    plan = _Plan(source, backend, precision, profile, threads, trust, allow_unsigned_native)
    for cls, art in plan.candidates(sync=False):
        try:
            engine = cls(plan.bundle.read_artifact(art), art, plan.options_for(cls))
            plan.check_widths(engine)
            await engine.open_async()
            model = model_cls(plan.bundle, engine, art)
            if verify:
                try:
                    await model.check_golden_async()
                except BaseException:
                    model.close()
                    raise
            return model
        except (GoldenMismatchError, UnsupportedModelError, BackendUnavailableError) as exc:
            plan.passed_over(cls.name, exc)
    raise plan.failure()


def open_trusted(source: Union[str, os.PathLike[str], Bundle], trust: Optional[TrustSource] = None, *,
                 profile: Optional[DeviceProfile] = None, allow_unsigned_native: bool = False) -> Bundle:
    """The bundle, its signature checked before any engine sees a byte (when the device requires
    one: ``trust``, the profile's ``[signing]``, ``EDGERT_TRUST``), and
    :attr:`Bundle.native_trust` set to why its native code may run here ("" when it may not):
    a verified signature, an install through TUF by the sync agent, or the explicit opt-in.
    ``load``, ``edgert bench`` and routing all build their engines from such a bundle.

    Raises:
        IntegrityError: a required signature is missing or does not verify.
    """
    keys = required_trust(trust if trust is not None else profile_trust(profile))
    # a path's manifest is checked against the signature before it is parsed
    bundle = source if isinstance(source, Bundle) else open_bundle(source, gate=manifest_gate(keys))
    signed = verify_bundle(bundle, keys) if keys is not None else None
    bundle.signature = signed
    if signed is not None:
        bundle.native_trust = f"signature verified (key {signed.key.short}…)"
    else:
        from .sync.store import installed_through_tuf

        bundle.native_trust = ("installed through TUF by the sync agent" if installed_through_tuf(bundle)
                               else "allow_unsigned_native=True" if allow_unsigned_native else "")
    return bundle


class _Plan:
    """The backends to try for one bundle, in order, and why each one was passed over."""

    def __init__(self, source: Union[str, os.PathLike[str], Bundle], backend: str,
                 precision: Optional[str], profile: Union[str, DeviceProfile, None],
                 threads: Optional[int], trust: Optional[TrustSource] = None,
                 allow_unsigned_native: bool = False):
        prof = load_profile(profile) if isinstance(profile, str) else profile
        self.bundle = open_trusted(source, trust, profile=prof, allow_unsigned_native=allow_unsigned_native)
        self.refused: Optional[UnsignedNativeError] = None
        self.yielded = 0
        self.profile = prof
        self.threads = threads
        self.options = BackendOptions(threads=threads or (prof.threads if prof else None),
                                      optimization=prof.optimization if prof else "all")
        self.precision = precision  # explicit: that precision only; the profile's is a preference
        self.auto = backend == "auto"
        self.names = None if self.auto else [backend]
        self.reasons: list[str] = []

    def candidates(self, sync: bool) -> Iterator[tuple[type[Backend], Artifact]]:
        found = candidates(self.bundle, self.profile, self.precision, backends=self.names, sync=sync)
        if not self.auto:
            for s in found.skipped:
                if s.refusal is not None:
                    raise s.refusal
        self.reasons.extend(found.reasons())
        c: Candidate
        for s in found.skipped:
            if s.kind == "untrusted" and isinstance(s.refusal, UnsignedNativeError):
                self.refused = s.refusal
        for c in found:
            self.yielded += 1
            yield c.backend, c.artifact

    def options_for(self, cls: type[Backend]) -> BackendOptions:
        """The engine options; a backend of executable code also gets why it may run."""
        if not cls.requires_trust:
            return self.options
        from dataclasses import replace

        return replace(self.options, extra={**self.options.extra, "native_trust": self.bundle.native_trust})

    def check_widths(self, engine: Backend) -> None:
        """Raises: BundleError when the manifest's feature or class count is not the artifact's."""
        m = self.bundle.manifest
        engine.check_widths(len(m.features), len(m.classes) if m.classes is not None else None)

    def passed_over(self, name: str, exc: Exception) -> None:
        if not self.auto:
            raise exc
        self.reasons.append(f"{name}: {exc}")

    def failure(self) -> EdgeRuntimeError:
        if self.refused is not None and not self.yielded:  # nothing else could even try
            return self.refused
        return BackendError(f"{self.bundle.origin}: no backend can run this bundle ("
                            + "; ".join(self.reasons or ["no backend installed"]) + ")")
