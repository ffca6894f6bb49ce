"""The exceptions edge-runtime raises: one base class, so an app can catch everything of ours."""

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


class NoProbabilitiesError(EdgeRuntimeError, AttributeError):
    """The model gives no class probabilities (a regressor, or a classifier exported without
    them): an ``AttributeError`` too, as scikit-learn's missing ``predict_proba`` is."""


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
