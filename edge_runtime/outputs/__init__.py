"""One output decoder for every path (``Model``, the numpy-free ``ListModel``, routing between
artifacts, the converter's parity check).

:mod:`.plan` holds the decisions (which outputs each call requests, index or class-valued
labels, ``label_from: probabilities``) and needs no numpy; :mod:`.lists` decodes into plain
lists, :mod:`.arrays` into numpy arrays (imported on first use so this package loads where
numpy cannot).
"""

from __future__ import annotations

from typing import Any

from .lists import ListDecoder
from .plan import ROLES, OutputPlan, index_encoded

__all__ = ["ROLES", "ArrayDecoder", "ListDecoder", "OutputPlan", "index_encoded"]


def __getattr__(name: str) -> Any:
    if name == "ArrayDecoder":
        from .arrays import ArrayDecoder

        return ArrayDecoder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
