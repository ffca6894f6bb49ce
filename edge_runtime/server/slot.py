"""What the server predicts with. A sync store is served by the one hot-swap implementation,
:class:`edge_runtime.hotswap.HotSwapModel` (it follows ``active.json``, verifies and
golden-checks a new version off the request path, judges probation through the store and keeps
the record honest); a plain bundle by :class:`ModelSlot`, which holds one fixed model.

Both offer what the app needs: ``current`` (read once per request), ``lease()`` (the model of
one request, kept open until it ends), ``run(loaded, method, X)``, ``store_root``, ``swaps`` and
``last_swap_error`` (for ``/model``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator, Optional

from ..hotswap import LoadedModel
from ..sync.store import is_store as is_sync_store
from ..sync.store import resolve_version_dir


class ModelSlot:
    """One fixed model (``edgert serve BUNDLE``); reading ``current`` is one attribute load."""

    def __init__(self, current: Optional[LoadedModel] = None):
        self.current: Optional[LoadedModel] = current
        self.store_root: Optional[Path] = None
        self.last_swap_error: Optional[str] = None
        self.swaps = 0

    @contextlib.contextmanager
    def lease(self) -> Iterator[Optional[LoadedModel]]:
        yield self.current

    @staticmethod
    def run(loaded: LoadedModel, method: str, X: Any, **kw: Any) -> Any:
        return getattr(loaded.model, method)(X, **kw)


def load_checked(loader: Any, path: Path) -> LoadedModel:
    """Load a bundle with ``loader`` (which checks golden rows) as a :class:`LoadedModel`.

    Raises:
        EdgeRuntimeError: whatever the loader raises (integrity, golden mismatch, no backend).
    """
    model = loader(path)
    return LoadedModel(model, model.manifest.version, str(path))


__all__ = ["LoadedModel", "ModelSlot", "is_sync_store", "load_checked", "resolve_version_dir"]
