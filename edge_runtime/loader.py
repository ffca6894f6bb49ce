"""``load``: open a bundle, pick a backend that can run it, prove it on the golden rows."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable, Iterator, Optional, Union

from .backends import available_backends, backend_names, get_backend
from .backends.base import Backend, BackendOptions
from .bundle import Artifact, Bundle, open_bundle
from .errors import (
    BackendError,
    BackendUnavailableError,
    EdgeRuntimeError,
    GoldenMismatchError,
    UnsignedNativeError,
    UnsupportedModelError,
)
from .profiles import DeviceProfile, load_profile
from .signing import TrustSource, profile_trust
from .signing import enforce as enforce_signature

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
    and profile (``tune=True`` or ``edgert bench --tune``) sends each call to the engine and
    thread count measured fastest for its row count (:mod:`edge_runtime.routing`). Backends that can only answer
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

    plan = _Plan(source, backend, precision, profile, threads, trust, allow_unsigned_native)
    for cls, art in plan.candidates(sync=True):
        try:
            engine = cls(plan.bundle.read_artifact(art), art, plan.options_for(cls))
            plan.check_widths(engine)
            model = Model(plan.bundle, engine, art)
            if verify:
                _proven(model, model.check_golden)
            return _maybe_routed(model, plan, tune)
        except (GoldenMismatchError, UnsupportedModelError, BackendUnavailableError) as exc:
            plan.passed_over(cls.name, exc)
    raise plan.failure()


def _proven(model: Model, check: Callable[[], object]) -> None:
    """Run the golden check; a model that fails it is closed before the error goes on."""
    try:
        check()
    except BaseException:
        model.close()
        raise


def _maybe_routed(model: Model, plan: _Plan, tune: bool) -> Model:
    if not plan.auto or plan.threads is not None or model.artifact.format != "onnx":
        return model
    from . import routing
    from .model import Model

    name = plan.profile.name if plan.profile else None
    table = (routing.tune(plan.bundle, model.artifact, profile_name=name,
                          backends=plan.profile.backends if plan.profile else None,
                          max_threads=plan.profile.cores if plan.profile else None)
             if tune else routing.cached(model.artifact, name))
    if not table:
        return model
    model.close()
    return Model(plan.bundle, routing.routed(plan.bundle, model.artifact, table), model.artifact)


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
    from .model import Model

    plan = _Plan(source, backend, precision, profile, threads, trust, allow_unsigned_native)
    for cls, art in plan.candidates(sync=False):
        try:
            engine = cls(plan.bundle.read_artifact(art), art, plan.options_for(cls))
            plan.check_widths(engine)
            opener = getattr(engine, "open_async", None)
            if opener is not None:
                await opener()
            model = Model(plan.bundle, engine, art)
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


class _Plan:
    """The backends to try for one bundle, in order, and why each one was passed over."""

    def __init__(self, source: Union[str, os.PathLike[str], Bundle], backend: str,
                 precision: Optional[str], profile: Union[str, DeviceProfile, None],
                 threads: Optional[int], trust: Optional[TrustSource] = None,
                 allow_unsigned_native: bool = False):
        self.bundle = source if isinstance(source, Bundle) else open_bundle(source)
        prof = load_profile(profile) if isinstance(profile, str) else profile
        # before any engine
        self.signed = enforce_signature(self.bundle, trust if trust is not None else profile_trust(prof))
        self.allow_unsigned_native = allow_unsigned_native
        self.refused: Optional[UnsignedNativeError] = None
        self.yielded = 0
        self.profile = prof
        self.threads = threads
        self.options = BackendOptions(threads=threads or (prof.threads if prof else None),
                                      optimization=prof.optimization if prof else "all")
        self.explicit = precision
        self.precision = precision or (prof.precision if prof else None)
        self.auto = backend == "auto"
        if self.auto:
            self.names = list(prof.backends) if prof else available_backends()
        else:
            self.names = [backend]
        self.reasons: list[str] = []

    def candidates(self, sync: bool) -> Iterator[tuple[type[Backend], Artifact]]:
        for name in self.names:
            if self.auto and name not in backend_names():
                self.reasons.append(f"{name}: no such backend in this edge-runtime")
                continue  # a profile may list backends of a newer release
            cls = get_backend(name)
            if not cls.is_available():
                why = getattr(cls, "unavailable_reason", None)
                why = why() if why is not None else "not installed"
                self.reasons.append(f"{name}: {why}")
                if not self.auto:
                    raise BackendUnavailableError(
                        f"backend {name!r} is not installed on this device" if why == "not installed"
                        else f"backend {name!r} is not available here: {why}")
                continue
            if sync and getattr(cls, "async_only", False):
                message = (f"{name}: answers only asynchronously; use `model = await "
                           "edge_runtime.load_async(...)` and `await model.predict_async(rows)`")
                if not self.auto:
                    raise BackendError(f"backend {message}")
                self.reasons.append(message)
                continue
            art = self.bundle.artifact_for(cls.formats, self.precision, cls.accepts)
            if art is None and self.precision and self.explicit is None:
                # the profile's precision is a preference only
                art = self.bundle.artifact_for(cls.formats, accept=cls.accepts)
            if art is None:
                unfit = [a for a in self.bundle.manifest.artifacts if a.format in cls.formats and not cls.accepts(a)]
                if unfit:  # there are some, built for another machine: never loaded
                    built = ", ".join(sorted({str(a.extra.get("arch")) for a in unfit}))
                    self.reasons.append(f"{name}: bundle has no {'/'.join(cls.formats)} artifact for this machine "
                                        f"(only for {built})")
                    if not self.auto:
                        raise UnsupportedModelError(f"backend {self.reasons[-1]}")
                    continue
                self.reasons.append(f"{name}: bundle has no {'/'.join(cls.formats)} artifact"
                                    + (f" at precision {self.precision}" if self.precision else ""))
                continue
            if getattr(cls, "requires_trust", False) and not self.trust_reason():
                self.refused = UnsignedNativeError(
                    f"{self.bundle.origin}: '{art.path}' is native code and the bundle is neither signed by a "
                    "key this device trusts (trust=, EDGERT_TRUST, profile [signing]) nor installed "
                    "through TUF by the sync agent; pass allow_unsigned_native=True to run it anyway")
                if not self.auto:
                    raise self.refused
                self.reasons.append(f"{name}: {self.refused}")
                continue
            self.yielded += 1
            yield cls, art

    def trust_reason(self) -> str:
        """Why native code from this bundle may run ("" when it may not)."""
        if self.signed is not None:
            return f"signature verified (key {self.signed.key.short}…)"
        from .sync.store import installed_through_tuf

        if installed_through_tuf(self.bundle):
            return "installed through TUF by the sync agent"
        return "allow_unsigned_native=True" if self.allow_unsigned_native else ""

    def options_for(self, cls: type[Backend]) -> BackendOptions:
        """The engine options; a backend of executable code also gets why it may run."""
        if not getattr(cls, "requires_trust", False):
            return self.options
        from dataclasses import replace

        return replace(self.options, extra={**self.options.extra, "native_trust": self.trust_reason()})

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
