"""The exceptions edge-runtime raises: one base class, so an app can catch everything of ours.

Every exception class of the device side is defined here (one place to read what can go wrong,
one import for an app) and every one is in ``__all__``; the modules that raise them import them
from here, and their old homes (``sync.errors``, ``telemetry.outbox``, ``telemetry.sinks``,
``strategies``, ``onnx_numpy.proto``, ``onnx_numpy.ops``, ``sync.trial``) re-export them so
existing imports keep working. Nothing raises :class:`EdgeRuntimeError` itself: each error says
what went wrong by its class.

Three exceptions to the rule, on purpose:

- ``sync.fetcher.StalledError`` subclasses python-tuf's ``SlowRetrievalError`` so that tuf's
  updater treats a stalled mirror like any slow one; defining it here would import tuf at
  ``import edge_runtime``, and tuf is only on devices with the ``sync`` extra.
- ``commands._util.MissingExtraError`` is a ``click.ClickException`` (click prints it and sets
  the exit code); it exists only inside the CLI.
- ``server.app.HTTPError`` is the WSGI app's control flow (an HTTP status and message); it never
  leaves the app, which turns it into a response.
"""

from __future__ import annotations

from typing import Optional


class EdgeRuntimeError(Exception):
    """Base of every error raised on purpose by edge-runtime."""


class InputError(EdgeRuntimeError, ValueError):
    """Prediction input does not fit the model's schema (names the field or column).

    Messages count rows from 1, on every path (API, CSV, serve, Pyodide): "row 1" is the first
    row of the batch (or the file's first data row). ``row`` is the offending row's 0-based index
    in that batch, when there is one, and ``reason`` the message without its row prefix, so a
    caller that numbers rows otherwise (a chunk of a file) can say the same thing with its own
    number (:meth:`at`).
    """

    def __init__(self, message: str, *, row: Optional[int] = None, reason: Optional[str] = None):
        super().__init__(message)
        self.row = row
        self.reason = reason if reason is not None else message

    @classmethod
    def at(cls, row: int, reason: str) -> InputError:
        """The error for ``reason`` at 0-based ``row``: "row 4, feature 'x': ..." or "row 4: ..."
        (the message counts from 1)."""
        sep = ", " if reason.startswith("feature ") else ": "
        return cls(f"row {row + 1}{sep}{reason}", row=row, reason=reason)


class BundleError(EdgeRuntimeError):
    """A bundle is malformed, incomplete or unsafe to open."""


class IntegrityError(BundleError):
    """An artifact's size or sha256 differs from the manifest: it is never handed to a backend."""


class UnsignedNativeError(IntegrityError):
    """A native (compiled) artifact would run from a bundle that is neither signed by a trusted
    key nor installed through TUF; pass ``allow_unsigned_native=True`` to run it anyway."""


class SchemaVersionError(BundleError):
    """The manifest was written by a newer, incompatible edge-runtime (unknown major version)."""


class UnsafeArchiveError(BundleError):
    """A bundle archive holds a member that could escape or flood the target directory."""


class BackendError(EdgeRuntimeError):
    """A backend cannot be used: missing package, no suitable artifact, or wrong golden outputs."""


class BackendUnavailableError(BackendError):
    """The backend's engine is not installed on this device."""


class GoldenMismatchError(BackendError):
    """A backend failed to reproduce the bundle's golden outputs, so it is not trusted."""


class UnsupportedModelError(BackendError):
    """A model uses an operator or feature that this backend does not implement."""


class ProfileError(EdgeRuntimeError, ValueError):
    """A device profile file is missing or invalid (names the field)."""


class CollectorStoreError(EdgeRuntimeError):
    """The collector's database cannot be used: bad URL, unreachable server, missing driver,
    or a schema newer than this collector (the fleet side raises it; no device does)."""


class ModelFileError(EdgeRuntimeError, ValueError):
    """A model file given to a command is not what it must be (not a joblib/pickle file, or it
    holds something other than a fitted estimator); names the file and what it holds."""


class ServeConfigError(EdgeRuntimeError, ValueError):
    """``edgert serve`` was given a configuration it cannot honour (token file, socket path,
    limits); names the option."""


class AlertDeliveryError(EdgeRuntimeError):
    """An alert webhook refused or did not answer a notification (it is retried next round)."""


# --- using a loaded model --------------------------------------------------------------------
class NoProbabilitiesError(EdgeRuntimeError, AttributeError):
    """This model gives no probabilities (a regression, anomaly or clustering model, or a
    classifier converted without them): ``predict_proba`` is not there to call.

    Every predictor (``Model``, ``ListModel``, the strategies, ``Ensemble``, ``MonitoredModel``,
    ``HotSwapModel``) raises this one class with the same message (:meth:`of`); it is an
    ``AttributeError`` too, so ``hasattr``-style probing code keeps working.
    """

    @classmethod
    def of(cls, name: str, task: str) -> NoProbabilitiesError:
        """The error for model ``name`` of ``task``, worded alike on every path."""
        return cls(f"model '{name}' gives no probabilities (task {task}); use predict()")


class ModelUseError(EdgeRuntimeError):
    """A method was called that this model's task or outputs do not provide (``scores`` of a
    model without a scores output, ``transform`` of a model that is not a clustering)."""


class BackendOutputError(BackendError):
    """A backend answered with a shape the model cannot decode (values per row, row count):
    the backend is broken, not the input."""


class NumpyRequiredError(BackendError):
    """The bundle needs numpy (named inputs, strings among them) and this Python has none."""


class ModelDecodeError(UnsupportedModelError):
    """The bytes are not a well-formed ONNX model (truncated, corrupt or hostile)."""


class AttributeMissing(ModelDecodeError):
    """A required attribute of an ONNX node is absent or has the wrong type."""


class StrategyError(EdgeRuntimeError, ValueError):
    """A strategy or feature-flag configuration is invalid (the message names the field)."""


class BenchError(EdgeRuntimeError):
    """``edgert bench`` cannot time a bundle: a cold-start child process failed, or there are no
    rows to time (no golden rows and no ``--data``)."""


# --- sync agent and version store ------------------------------------------------------------
class SyncError(EdgeRuntimeError):
    """The agent could not complete a sync (network, repository, lock); the device keeps its model."""


class UpdateRejected(SyncError):
    """A candidate version failed a check (TUF, digests, load, smoke test, probation) and was
    marked bad; the previous version stays active."""


class CandidateFailed(UpdateRejected):
    """The candidate's load or smoke test failed in the trial process (any exception, a
    timeout, a crash, out of memory); the reason says which, and the version is marked bad."""


class TrialUnavailable(SyncError):
    """The trial process failed before it touched the candidate (cannot start Python, a broken
    install, a memory limit too small for the interpreter): the device's fault, not the
    version's, so the version is not marked bad and the next pass tries again."""


class StoreError(SyncError):
    """The version store refused or could not record a change; ``active.json`` is unchanged."""


class TransitionError(StoreError):
    """A state change that the store's state machine does not allow from the version's state
    (e.g. committing a version that is not on probation, rolling back to a bad version)."""


class StoreBusy(StoreError):
    """Another process held the store's record lock past the time limit; try again later."""


class NoServableModelError(EdgeRuntimeError):
    """A version store has no version that can be served: none verifies, loads and passes its
    golden check, or the one served was withdrawn and nothing replaced it."""


# --- telemetry -------------------------------------------------------------------------------
class OutboxError(EdgeRuntimeError):
    """The telemetry outbox cannot be opened or is not an outbox."""


class SinkError(EdgeRuntimeError):
    """A batch was not acknowledged (network down, refused, bad answer). Retry later."""


class BatchRejected(SinkError):
    """The collector refuses this batch's content (HTTP 400/422): resending cannot help."""


class SinkAuthError(SinkError):
    """The collector or broker refuses our credentials (HTTP 401/403, MQTT not authorised).

    Permanent until the token is fixed: the uploader stops at once instead of backing off.
    """

class ScoringOptionError(EdgeRuntimeError, ValueError):
    """Batch-scoring options that cannot work together (Parquet to stdout, skipped rows with
    nowhere to go, probabilities of a regressor): refused before any row is read."""


__all__ = [
    "AlertDeliveryError", "AttributeMissing", "BackendError", "BackendOutputError",
    "BackendUnavailableError", "BatchRejected", "BenchError", "BundleError", "CandidateFailed",
    "CollectorStoreError", "EdgeRuntimeError", "GoldenMismatchError", "InputError", "IntegrityError",
    "ModelDecodeError", "ModelFileError", "ModelUseError", "NoProbabilitiesError",
    "NoServableModelError", "NumpyRequiredError", "OutboxError", "ProfileError",
    "SchemaVersionError", "ScoringOptionError", "ServeConfigError", "SinkAuthError", "SinkError", "StoreBusy",
    "StoreError", "StrategyError", "SyncError", "TransitionError", "TrialUnavailable",
    "UnsafeArchiveError", "UnsignedNativeError", "UnsupportedModelError", "UpdateRejected",
]
