"""One input schema for every path (API, ``edgert predict``, ``edgert serve``, Pyodide).

:mod:`.schema` holds the rules and the messages and needs no numpy; :mod:`.lists` is the
numpy-free back end (:class:`ListInputAdapter`, :class:`Rows`), :mod:`.arrays` the numpy one
(:class:`InputAdapter`, imported on first use so this package loads where numpy cannot).
"""

from __future__ import annotations

from typing import Any

from .lists import ListInputAdapter, Rows
from .schema import MISSING_TEXT, InputSchema, check_columns, name_mismatch, names_hint, text_value

__all__ = ["MISSING_TEXT", "InputAdapter", "InputSchema", "ListInputAdapter", "Rows",
           "check_columns", "name_mismatch", "names_hint", "text_value"]


def __getattr__(name: str) -> Any:
    if name == "InputAdapter":
        from .arrays import InputAdapter

        return InputAdapter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
