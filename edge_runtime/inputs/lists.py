"""The numpy-free back end of the input schema, for Pythons without numpy (Pyodide's core).

What comes out is a :class:`Rows` matrix: a flat ``array.array`` of the artifact's dtype (so
float32 rounding happens here, as it does on the numpy path) plus its shape, which a backend
can hand to a JS typed array in one piece.
"""

from __future__ import annotations

from array import array
from typing import Any, Sequence

from ..bundle import Feature
from ..errors import InputError
from .schema import InputSchema

#: artifact input dtypes this back end produces, as ``array.array`` type codes
TYPECODES = {"float32": "f", "float64": "d"}


class Rows:
    """A 2-D float matrix without numpy: ``data`` (flat, row-major ``array.array``) and ``shape``."""

    __slots__ = ("data", "shape")

    def __init__(self, data: array, shape: tuple[int, int]):
        self.data = data
        self.shape = shape

    @property
    def dtype(self) -> str:
        return "float32" if self.data.typecode == "f" else "float64"

    def __len__(self) -> int:
        return self.shape[0]

    def tolist(self) -> list[list[float]]:
        n, d = self.shape
        flat = self.data.tolist()
        return [flat[i * d:(i + 1) * d] for i in range(n)]

    def __repr__(self) -> str:
        return f"Rows(shape={self.shape}, dtype={self.dtype})"


class ListInputAdapter:
    """Validates and converts inputs for one model's feature schema, in pure Python."""

    def __init__(self, features: Sequence[Feature], dtype: str = "float32"):
        if dtype not in TYPECODES:
            raise InputError(f"input dtype {dtype!r} is not supported without numpy "
                             f"(supported: {', '.join(TYPECODES)})")
        self.schema = InputSchema(features, dtype)
        self.names = self.schema.names
        self.dtype = dtype

    def __call__(self, X: Any, strict: bool = False) -> Rows:
        """``X`` as a :class:`Rows` matrix of the artifact's dtype.

        Raises:
            InputError: the input does not fit the schema (the message names row and feature).
        """
        if isinstance(X, Rows):
            X = X.tolist()
        flat, n = self.schema.matrix(X, TYPECODES[self.dtype])
        if not n:
            raise InputError("no rows to predict (got an empty input)")
        self.schema.check(flat, strict)  # after the cast, as on the numpy path
        return Rows(flat, (n, self.schema.width))
