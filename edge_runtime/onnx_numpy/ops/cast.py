"""Cast and CastLike, including the float 8 types where ``ml_dtypes`` is installed.

numpy has no float 8 type; ``ml_dtypes`` (the package onnx itself uses) does, but its plain
conversion turns values beyond the type's range into NaN (E4M3FN, the FNUZ types) or infinity
(E5M2). ONNX's default (``saturate=1``) is to clamp them to the largest finite value (±448 for
E4M3FN, ±57344 for E5M2), so that is done here first; ``saturate=0`` is the plain conversion,
which is the spec's table for that case. Without ``ml_dtypes`` a cast to float 8 is refused at
load with the type's name: the converters never emit one.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ...errors import UnsupportedModelError
from ..float8 import FLOAT8, FLOAT8_MAX, float8_dtype
from ..proto import DTYPES, type_name
from . import op

Converter = Callable[[np.ndarray], np.ndarray]


def _float8(dtype: np.dtype, top: float, saturate: bool) -> Converter:
    if not saturate:
        return lambda x: x.astype(dtype)
    # clamped in float64 (exact for every float input) and then rounded once, to nearest even:
    # a value whose rounding would exceed the largest finite value becomes that value; NaN
    # stays NaN (np.clip keeps it)
    return lambda x: np.clip(x.astype(np.float64), -top, top).astype(dtype)


def _plain(dtype: Any) -> Converter:
    if np.dtype(dtype) == np.dtype(object):
        return lambda x: x.astype(str).astype(object)
    # no copy when the value already has the type (the converters cast float to float)
    return lambda x: x.astype(dtype, copy=False)


@op("Cast")
def make_cast(node) -> Callable[..., list]:
    code = node.int("to")
    saturate = bool(node.int("saturate", 1))
    if code in FLOAT8:
        dtype = float8_dtype(code)
        if dtype is None:
            raise node.fail(f"cannot cast to {type_name(code)} without the ml_dtypes package")
        convert = _float8(dtype, FLOAT8[code][1], saturate)
    elif code in DTYPES:
        convert = _plain(DTYPES[code])
    else:
        raise node.fail(f"cannot cast to {type_name(code)}: the numpy backend does not "
                        "support that data type")
    return lambda x: [convert(x)]


@op("CastLike")
def make_castlike(node) -> Callable[..., list]:
    """The target type is only known from the second input, at run time."""
    saturate = bool(node.int("saturate", 1))
    last: list = [(None, None)]  # (dtype, converter): the like input is usually a constant

    def kernel(x: np.ndarray, like: np.ndarray) -> list:
        seen = last[0]
        if seen[1] is not None and seen[0] == like.dtype:  # (np.dtype(None) is float64)
            return [seen[1](x)]
        top = FLOAT8_MAX.get(like.dtype.name)
        if top is not None:
            convert = _float8(like.dtype, top, saturate)
        elif like.dtype.kind == "V":  # another ml_dtypes type (bfloat16, int4...): refuse
            raise UnsupportedModelError(
                f"CastLike node '{node.node.name}': cannot cast to {like.dtype.name}: the numpy "
                "backend does not support that data type")
        else:
            convert = _plain(like.dtype)
        last[0] = (like.dtype, convert)
        return [convert(x)]

    return kernel
