"""``load``: open a bundle, pick a backend that can run it, prove it on the golden rows."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Optional, Union

from .backends import available_backends, get_backend
from .backends.base import BackendOptions
from .bundle import Bundle, open_bundle
from .errors import BackendError, BackendUnavailableError, GoldenMismatchError, UnsupportedModelError
from .profiles import DeviceProfile, load_profile

if TYPE_CHECKING:
    from .model import Model


def load(source: Union[str, os.PathLike[str], Bundle], backend: str = "auto", *,
         precision: Optional[str] = None, profile: Union[str, DeviceProfile, None] = None,
         threads: Optional[int] = None, verify: bool = True) -> Model:
    """Load a bundle (directory or ``.tar.gz``) and return a ready :class:`Model`.

    ``backend="auto"`` tries the profile's backends in order (else every installed one by
    preference) and keeps the first that reproduces the golden outputs. Artifact bytes are
    checked against the manifest's sha256 before any engine parses them.

    Raises:
        BundleError: the bundle is malformed, unsafe or from a newer schema.
        IntegrityError: an artifact does not match its digest (never falls through to another).
        BackendError: no backend could run it; the message lists why each was passed over.
    """
    from .model import Model

    bundle = source if isinstance(source, Bundle) else open_bundle(source)
    prof = load_profile(profile) if isinstance(profile, str) else profile
    options = BackendOptions(threads=threads or (prof.threads if prof else None),
                             optimization=prof.optimization if prof else "all")
    want_precision = precision or (prof.precision if prof else None)
    if backend == "auto":
        candidates = list(prof.backends) if prof else available_backends()
    else:
        candidates = [backend]
    reasons = []
    for name in candidates:
        cls = get_backend(name)
        if not cls.is_available():
            reasons.append(f"{name}: not installed")
            if backend != "auto":
                raise BackendUnavailableError(f"backend {name!r} is not installed on this device")
            continue
        art = bundle.artifact_for(cls.formats, want_precision)
        if art is None and want_precision and precision is None:
            art = bundle.artifact_for(cls.formats)  # the profile's precision is a preference only
        if art is None:
            reasons.append(f"{name}: bundle has no {'/'.join(cls.formats)} artifact"
                           + (f" at precision {want_precision}" if want_precision else ""))
            continue
        blob = bundle.read_artifact(art)
        try:
            engine = cls(blob, art, options)
            model = Model(bundle, engine, art)
            if verify:
                model.check_golden()
            return model
        except (GoldenMismatchError, UnsupportedModelError, BackendUnavailableError) as exc:
            if backend != "auto":
                raise
            reasons.append(f"{name}: {exc}")
    raise BackendError(f"{bundle.origin}: no backend can run this bundle ("
                       + "; ".join(reasons or ["no backend installed"]) + ")")
