"""The int8 operators onnxruntime.quantization writes: dynamic (DynamicQuantizeLinear →
MatMulInteger → scale) and static QDQ (QuantizeLinear / DequantizeLinear), as the ONNX spec
defines them: round half to even, saturate to the integer type, per-tensor, per-axis or blocked
scales (``block_size``: one scale per run of that many values along the axis). 8-bit and 16-bit
integers only (no float8/int4)."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from . import op

#: TensorProto element types of the integer encodings supported here
_INTEGER = {2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16}


def _along(param: np.ndarray, x: np.ndarray, axis: int, block: int = 0) -> np.ndarray:
    """A scale or zero point: a scalar, one value per slice of ``x`` along ``axis``, or (with
    ``block``) an array of ``x``'s rank with one value per ``block`` values along ``axis``.

    Raises:
        ValueError: blocked parameters whose shape does not cover ``x`` (the backend reports it).
    """
    p = np.asarray(param)
    if block:
        if p.ndim != x.ndim or -(-x.shape[axis] // block) != p.shape[axis]:
            raise ValueError(f"blocked scale of shape {p.shape} does not fit input {x.shape} "
                             f"with block_size {block} on axis {axis}")
        return np.repeat(p, block, axis=axis)[(slice(None),) * axis + (slice(0, x.shape[axis]),)]
    if p.ndim == 0 or p.size == 1:
        return p.reshape(())
    shape = [1] * x.ndim
    shape[axis] = p.size
    return p.reshape(shape)


def _checked(node: Any) -> tuple[int, int]:
    """(axis, block_size) of a Quantize/DequantizeLinear node."""
    block = node.int("block_size", 0)
    if block < 0:
        raise node.fail(f"block_size {block} is negative")
    return node.int("axis", 1), block


@op("QuantizeLinear", since=10)
def make_quantize_linear(node):
    axis, block = _checked(node)
    out_type = node.int("output_dtype", 0)
    if out_type and out_type not in _INTEGER:
        raise node.fail(f"output type {out_type} is not an 8/16-bit integer")

    def kernel(x: np.ndarray, scale: np.ndarray, zero_point: Optional[np.ndarray] = None) -> list:
        dtype = zero_point.dtype if zero_point is not None else _INTEGER.get(out_type, np.uint8)
        if np.dtype(dtype) not in {np.dtype(t) for t in _INTEGER.values()}:
            raise node.fail(f"zero point of type {np.dtype(dtype)} is not an 8/16-bit integer")
        ax = axis % x.ndim if x.ndim else 0
        y = np.rint(x.astype(np.float32) / _along(scale, x, ax, block))
        if zero_point is not None:
            y += _along(zero_point, x, ax, block)
        info = np.iinfo(dtype)
        return [np.clip(y, info.min, info.max).astype(dtype)]

    return kernel


@op("DequantizeLinear", since=10)
def make_dequantize_linear(node):
    axis, block = _checked(node)

    def kernel(x: np.ndarray, scale: np.ndarray, zero_point: Optional[np.ndarray] = None) -> list:
        ax = axis % x.ndim if x.ndim else 0
        s = _along(scale, x, ax, block)
        v = x.astype(np.int32) if x.dtype.kind in "iu" else x
        if zero_point is not None:
            v = v - _along(zero_point, x, ax, block).astype(np.int32)
        return [(v * s).astype(s.dtype)]

    return kernel


@op("DynamicQuantizeLinear", since=11)
def make_dynamic_quantize_linear(node):
    def kernel(x: np.ndarray) -> list:
        lo = min(float(np.min(x, initial=0.0)), 0.0)
        hi = max(float(np.max(x, initial=0.0)), 0.0)
        scale = np.float32((np.float32(hi) - np.float32(lo)) / np.float32(255.0))
        if scale == 0:  # all zeros
            return [np.zeros(x.shape, np.uint8), scale, np.uint8(0)]
        zero_point = np.uint8(np.clip(np.rint(-np.float32(lo) / scale), 0, 255))
        y = np.clip(np.rint(x.astype(np.float32) / scale) + zero_point, 0, 255).astype(np.uint8)
        return [y, scale, zero_point]

    return kernel


@op("MatMulInteger", since=10)
def make_matmul_integer(node):
    def kernel(a: np.ndarray, b: np.ndarray, a_zero: Optional[np.ndarray] = None,
               b_zero: Optional[np.ndarray] = None) -> list:
        # through float64 BLAS: every product of 8-bit values and their sums over any realistic
        # inner dimension are exact integers below 2**53, and far faster than integer matmul
        av = a.astype(np.float64)
        bv = b.astype(np.float64)
        if a_zero is not None:
            az = np.asarray(a_zero, np.float64)
            av -= az.reshape(-1, 1) if az.ndim == 1 and az.size > 1 else az.reshape(())
        if b_zero is not None:
            bz = np.asarray(b_zero, np.float64)
            bv -= bz.reshape(()) if bz.size == 1 else bz
        return [np.matmul(av, bv).astype(np.int32)]

    return kernel
