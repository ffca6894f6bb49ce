"""TensorProto -> numpy array, with the element count checked against the declared dims."""

from __future__ import annotations

from typing import Any

import numpy as np

from .float8 import FLOAT8, float8_dtype
from .proto import (
    BOOL,
    DOUBLE,
    DTYPES,
    FLOAT,
    FLOAT16,
    INT64,
    MAX_ELEMENTS,
    STRING,
    UINT32,
    UINT64,
    ModelDecodeError,
    Tensor,
    type_name,
)


def _element_count(t: Tensor) -> int:
    """The product of the dims, refused past MAX_ELEMENTS (checked as it grows)."""
    count = 1
    for d in t.dims:
        count *= d
        if count > MAX_ELEMENTS:
            raise ModelDecodeError(f"tensor '{t.name}' declares too many elements")
    return count


def _float8_values(t: Tensor, dtype: Any, count: int) -> np.ndarray:
    """A float 8 tensor: one byte per value, in raw_data or int32_data."""
    if t.raw_data is None and any(not 0 <= v <= 255 for v in t.int32_data):
        raise ModelDecodeError(f"tensor '{t.name}' holds out-of-range float 8 bytes")
    raw = t.raw_data if t.raw_data is not None else \
        np.array(t.int32_data, dtype=np.int64).astype(np.uint8).tobytes()
    if len(raw) != count:
        raise ModelDecodeError(f"tensor '{t.name}': {len(raw)} float 8 values, dims {t.dims} "
                               f"need {count}")
    return np.frombuffer(raw, dtype=np.uint8).view(dtype).copy()


def _typed_field_values(t: Tensor, dtype: Any) -> np.ndarray:
    """The values from the typed repeated field that holds ``t``'s type (no raw_data)."""
    if t.data_type == FLOAT:
        return np.frombuffer(t.float_data or b"", dtype="<f4").astype(np.float32)
    if t.data_type == DOUBLE:
        return np.frombuffer(t.double_data or b"", dtype="<f8").astype(np.float64)
    if t.data_type == INT64:
        return np.array(t.int64_data, dtype=np.int64)
    if t.data_type in (UINT32, UINT64):
        return np.array(t.uint64_data, dtype=dtype)
    if t.data_type == FLOAT16:
        return np.array(t.int32_data, dtype=np.uint16).view(np.float16)
    if t.data_type == BOOL:
        return np.array(t.int32_data, dtype=np.int64) != 0
    try:
        return np.array(t.int32_data, dtype=np.int64).astype(dtype)
    except OverflowError:
        raise ModelDecodeError(f"tensor '{t.name}' holds out-of-range values") from None


def to_array(t: Tensor) -> np.ndarray:
    """The tensor's values as a numpy array of its declared type and shape.

    Raises:
        ModelDecodeError: unknown type, external data, or a size that does not match the dims.
    """
    if t.external:
        raise ModelDecodeError(f"tensor '{t.name}' keeps its data in an external file")
    dtype = DTYPES.get(t.data_type) or float8_dtype(t.data_type)
    if dtype is None:
        raise ModelDecodeError(f"tensor '{t.name}' has data type {type_name(t.data_type)}, "
                               "which the numpy backend does not support")
    count = _element_count(t)
    if t.data_type == STRING:
        arr = np.array([s.decode("utf-8", "replace") for s in t.string_data], dtype=object)
    elif t.data_type in FLOAT8:  # one byte per value, in raw_data or int32_data
        arr = _float8_values(t, dtype, count)
    elif t.raw_data is not None:
        itemsize = np.dtype(dtype).itemsize
        if len(t.raw_data) != count * itemsize:
            raise ModelDecodeError(f"tensor '{t.name}': raw_data has {len(t.raw_data)} bytes, "
                                   f"dims {t.dims} need {count * itemsize}")
        arr = np.frombuffer(t.raw_data, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype)
    else:
        arr = _typed_field_values(t, dtype)
    if arr.size != count:
        raise ModelDecodeError(f"tensor '{t.name}' holds {arr.size} values, dims {t.dims} "
                               f"need {count}")
    return arr.reshape(t.dims)
