"""The backend protocol: one primitive (:meth:`Backend.run`) that every engine implements.

A backend gets the artifact's bytes, already checked against the manifest's sha256, and
turns a 2-D input array into the artifact's output tensors. Everything else (input
validation, label mapping, golden checks, telemetry) lives above it, once, in ``Model``.
"""

from __future__ import annotations

import abc
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Optional, Sequence, Union

if TYPE_CHECKING:  # numpy is imported lazily: the core must import without it (Pyodide)
    import numpy as np

    from ..bundle import Artifact


@dataclass(frozen=True)
class BackendOptions:
    """Engine settings, usually taken from a device profile."""

    threads: Optional[int] = None  # None: the engine's default
    optimization: str = "all"  # all | extended | basic | disable
    extra: dict[str, Any] = field(default_factory=dict)


class Backend(abc.ABC):
    """Runs one artifact. Subclasses register themselves with ``@register``."""

    name: ClassVar[str]
    formats: ClassVar[tuple[str, ...]] = ("onnx",)
    #: lower runs first when no device profile orders the backends
    priority: ClassVar[int] = 100
    #: the engine can only answer asynchronously (``run_async``); the loader needs ``load_async``
    async_only: ClassVar[bool] = False
    #: ``BackendOptions.threads`` changes how fast the engine runs, so routing tries thread counts
    threaded: ClassVar[bool] = False
    #: the artifact is executable code: it runs only with a reason in ``options.extra["native_trust"]``
    #: (signature verified, installed through TUF, or ``allow_unsigned_native=True``)
    requires_trust: ClassVar[bool] = False

    def __init__(self, model_bytes: bytes, artifact: Artifact, options: BackendOptions):
        self.artifact = artifact
        self.options = options

    @classmethod
    def is_available(cls) -> bool:
        """True when the engine can be imported here (cheap; must not load a model)."""
        return True

    @classmethod
    def unavailable_reason(cls) -> str:
        """Why :meth:`is_available` is False, for the loader's error message."""
        return "not installed"

    @classmethod
    def accepts(cls, artifact: Artifact) -> bool:
        """True when this engine may run ``artifact`` here, beyond its format (a compiled artifact
        is built for one machine architecture); cheap, reads the manifest entry only."""
        return artifact.format in cls.formats

    @classmethod
    def thread_counts(cls, max_threads: Optional[int] = None) -> list[int]:
        """The thread counts worth trying here: 1 for single-threaded engines; else 1, 2, 4 and
        every core, never more than ``max_threads`` nor than this machine has (oversubscribed
        candidates only add noise)."""
        if not cls.threaded:
            return [1]
        import os

        here = os.cpu_count() or 1
        cores = min(max_threads, here) if max_threads else here
        return sorted({1, min(2, cores), min(4, cores), cores} - {0})

    async def open_async(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Finish opening an engine whose setup is asynchronous (``load_async`` awaits it)."""

    def engine_for(self, rows: int, outputs: Sequence[str] = ()) -> Backend:
        """The engine that answers a call of ``rows`` rows for ``outputs``: this one, except for a
        router (the engine it routes to) or an adapter that would pass such a call through
        unchanged (the engine it wraps). ``Model`` calls that engine itself, saving a dispatch
        frame per layer (~0.15 µs each, 5-10 % of a one-row call)."""
        return self

    @property
    def routes(self) -> list[tuple[int, Backend]]:
        """(largest row count, engine) per route, ascending, the last taking any larger call:
        one route to this engine, except for a router."""
        return [(sys.maxsize, self)]

    def effective_threads(self) -> Optional[int]:
        """The thread count the engine really runs with (read back from the engine where it can
        say, so a report proves a profile's setting took effect); else what it was asked for."""
        return self.options.threads

    @abc.abstractmethod
    def run(self, x: Union[np.ndarray, dict[str, np.ndarray]], outputs: Sequence[str]) -> list[np.ndarray]:
        """Outputs named in ``outputs``, in that order, for the 2-D input ``x``.

        ``x`` is C-contiguous, already of the artifact's input dtype and feature count; for an
        artifact with several named inputs (``artifact.inputs``) it is a dict name -> 2-D array
        (strings as object arrays of ``str``), one entry per input.
        """

    async def run_async(self, x: Any, outputs: Sequence[str]) -> list[Any]:
        """Awaitable twin of :meth:`run`; engines that can only answer asynchronously
        (onnxruntime-web in Pyodide) override this one instead."""
        return self.run(x, outputs)

    def check_names(self, inputs: dict[str, str], outputs: Sequence[str]) -> None:
        """Refuse a manifest whose tensor names (or input dtype) are not the artifact's: every
        run would fail, or worse, read another tensor. ``inputs`` maps name -> dtype ("" when
        the engine does not say).

        Raises:
            BundleError: the manifest's input name, input dtype or an output name is not the
                artifact's (names what it has instead).
        """
        from ..errors import BundleError

        art = self.artifact
        where = f"manifest of '{art.path}'"
        declared = [(s.name, s.dtype) for s in art.inputs] or [(art.input_name, art.input_dtype)]
        for name, want in declared:
            if name not in inputs:
                raise BundleError(f"{where}: input '{name}' is not an input of the model "
                                  f"(it has {sorted(inputs)})")
            dtype = inputs[name]
            if dtype and dtype != want:
                raise BundleError(f"{where}: input '{name}' dtype {want} but the model takes {dtype}"
                                  if art.inputs else f"{where}: input dtype {want} but the model "
                                  f"takes {dtype}")
        unfed = sorted(set(inputs) - {name for name, _ in declared})
        if unfed:  # the engine would refuse every run for want of them
            raise BundleError(f"{where}: the model also takes input(s) {unfed}, which the "
                              "manifest does not feed")
        missing = [f"{role} '{name}'" for role, name in art.outputs.items() if name not in outputs]
        if missing:
            raise BundleError(f"{where}: output {', '.join(missing)} is not an output of the model "
                              f"(it has {list(outputs)})")

    def widths(self) -> dict[str, int]:
        """Tensor name -> its static second dimension, for the tensors whose shape the engine
        declares (``{}``: unknown, nothing is checked)."""
        return {}

    def check_widths(self, n_features: int, n_classes: Optional[int]) -> None:
        """Refuse a manifest whose feature count or class count is not the artifact's (the
        input would fail in the engine; wrong classes would name probability columns wrongly).

        Raises:
            BundleError: the artifact declares another input width or probabilities width.
        """
        from ..errors import BundleError

        art, widths = self.artifact, self.widths()
        for spec_name, width in ([(s.name, len(s.features)) for s in art.inputs]
                                 or [(art.input_name, n_features)]):
            got = widths.get(spec_name)
            if got is not None and got != width:
                raise BundleError(f"manifest of '{art.path}': {width} features"
                                  + (f" in input '{spec_name}'" if art.inputs else "")
                                  + f", but the model takes {got}")
        got = widths.get(art.outputs.get("probabilities", ""))
        if got is not None and n_classes is not None and got != n_classes:
            raise BundleError(f"manifest of '{art.path}': {n_classes} classes, but the model "
                              f"gives {got} probabilities per row")

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release engine resources (sessions, interpreters)."""
