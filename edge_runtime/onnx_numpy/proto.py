"""A small, hardened reader for the ONNX protobuf messages the numpy backend needs.

Why our own: the device must not depend on ``onnx``/``protobuf`` (no armv7 or Pyodide wheels
to rely on). Only the fields the interpreter uses are kept; unknown fields are skipped. Every
length is checked against the bytes that remain, nesting depth and element counts are capped,
and every failure is a :class:`ModelDecodeError` naming where decoding stopped.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Optional

from ..errors import ModelDecodeError as ModelDecodeError  # defined in errors.py; importable from here too

#: nesting of graphs inside attributes inside nodes (Scan/If bodies); real models use 1-2
MAX_DEPTH = 16
#: elements in one tensor (about 2 GiB of float64 at most is already absurd on a device)
MAX_ELEMENTS = 1 << 28
MAX_DIMS = 32


# --- ONNX enums -------------------------------------------------------------------------------
FLOAT, UINT8, INT8, UINT16, INT16, INT32, INT64, STRING, BOOL, FLOAT16, DOUBLE, UINT32, UINT64 = \
    range(1, 14)
#: TensorProto.DataType -> numpy dtype string
DTYPES = {FLOAT: "float32", UINT8: "uint8", INT8: "int8", UINT16: "uint16", INT16: "int16",
          INT32: "int32", INT64: "int64", STRING: "object", BOOL: "bool", FLOAT16: "float16",
          DOUBLE: "float64", UINT32: "uint32", UINT64: "uint64"}
#: TensorProto.DataType -> its name, for errors that must say which type (not a number)
TYPE_NAMES = dict(enumerate(
    ("UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16", "INT16", "INT32", "INT64", "STRING", "BOOL",
     "FLOAT16", "DOUBLE", "UINT32", "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16",
     "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "UINT4", "INT4",
     "FLOAT4E2M1", "FLOAT8E8M0", "UINT2", "INT2")))


def type_name(code: int) -> str:
    """``FLOAT8E4M3FN`` for 17; an unknown code as ``data type 99``."""
    return TYPE_NAMES.get(code, f"data type {code}")

A_FLOAT, A_INT, A_STRING, A_TENSOR, A_GRAPH, A_FLOATS, A_INTS, A_STRINGS, A_TENSORS, A_GRAPHS = \
    range(1, 11)


@dataclass
class Tensor:
    name: str = ""
    dims: list[int] = field(default_factory=list)
    data_type: int = 0
    raw_data: Optional[bytes] = None
    float_data: Optional[bytes] = None  # packed little-endian float32
    double_data: Optional[bytes] = None  # packed little-endian float64
    int32_data: list[int] = field(default_factory=list)
    int64_data: list[int] = field(default_factory=list)
    uint64_data: list[int] = field(default_factory=list)
    string_data: list[bytes] = field(default_factory=list)
    external: bool = False


@dataclass
class Attribute:
    name: str = ""
    type: int = 0
    f: float = 0.0
    i: int = 0
    s: bytes = b""
    t: Optional[Tensor] = None
    g: Optional[Graph] = None
    floats: list[float] = field(default_factory=list)
    ints: list[int] = field(default_factory=list)
    strings: list[bytes] = field(default_factory=list)
    tensors: list[Tensor] = field(default_factory=list)
    graphs: list[Graph] = field(default_factory=list)
    _floats_raw: list[bytes] = field(default_factory=list)


@dataclass
class Node:
    op_type: str = ""
    domain: str = ""
    name: str = ""
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    attributes: dict[str, Attribute] = field(default_factory=dict)


@dataclass
class ValueInfo:
    name: str = ""
    elem_type: int = 0
    shape: Optional[list[Any]] = None  # ints or dim_param strings / None per dimension


@dataclass
class Graph:
    name: str = ""
    nodes: list[Node] = field(default_factory=list)
    initializers: list[Tensor] = field(default_factory=list)
    inputs: list[ValueInfo] = field(default_factory=list)
    outputs: list[ValueInfo] = field(default_factory=list)
    value_info: list[ValueInfo] = field(default_factory=list)


@dataclass
class Model:
    ir_version: int = 0
    opset: dict[str, int] = field(default_factory=dict)  # domain ("" = ai.onnx) -> version
    producer: str = ""
    graph: Optional[Graph] = None


# --- wire format ------------------------------------------------------------------------------
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


class _Reader:
    __slots__ = ("buf", "pos", "end", "what")

    def __init__(self, buf: memoryview, pos: int, end: int, what: str):
        self.buf, self.pos, self.end, self.what = buf, pos, end, what

    def fail(self, msg: str) -> ModelDecodeError:
        return ModelDecodeError(f"malformed ONNX model: {msg} in {self.what} at byte {self.pos}")

    def varint(self) -> int:
        buf, pos, end = self.buf, self.pos, self.end
        result = shift = 0
        while True:
            if pos >= end:
                raise self.fail("truncated varint")
            b = buf[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift >= 70:
                raise self.fail("varint longer than 10 bytes")
        self.pos = pos
        return result & 0xFFFFFFFFFFFFFFFF

    def signed(self) -> int:
        v = self.varint()
        return v - (1 << 64) if v >= 1 << 63 else v

    def fields(self):
        """Yields (field number, wire type, value); LEN values are (start, end) spans."""
        while self.pos < self.end:
            key = self.varint()
            num, wt = key >> 3, key & 7
            if num == 0:
                raise self.fail("field number 0")
            if wt == _VARINT:
                yield num, wt, self.varint()
            elif wt == _LEN:
                n = self.varint()
                if n > self.end - self.pos:
                    raise self.fail(f"length {n} past the end of the data")
                start = self.pos
                self.pos += n
                yield num, wt, (start, self.pos)
            elif wt == _I32:
                if self.end - self.pos < 4:
                    raise self.fail("truncated fixed32")
                self.pos += 4
                yield num, wt, bytes(self.buf[self.pos - 4:self.pos])
            elif wt == _I64:
                if self.end - self.pos < 8:
                    raise self.fail("truncated fixed64")
                self.pos += 8
                yield num, wt, bytes(self.buf[self.pos - 8:self.pos])
            else:
                raise self.fail(f"unsupported wire type {wt}")

    def sub(self, span: tuple[int, int], what: str) -> _Reader:
        return _Reader(self.buf, span[0], span[1], what)

    def text(self, span: tuple[int, int]) -> str:
        try:
            return bytes(self.buf[span[0]:span[1]]).decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail("string is not UTF-8") from None

    def raw(self, span: tuple[int, int]) -> bytes:
        return bytes(self.buf[span[0]:span[1]])


def _expect(r: _Reader, wt: int, want: int, name: str) -> None:
    if wt != want:
        raise r.fail(f"field '{name}' has wire type {wt}, expected {want}")


def _varints(r: _Reader, wt: int, val: Any, signed: bool, name: str, out: list[int]) -> None:
    """A repeated integer field, packed (LEN) or not (VARINT)."""
    if wt == _VARINT:
        out.append(val - (1 << 64) if signed and val >= 1 << 63 else val)
        return
    _expect(r, wt, _LEN, name)
    sub = r.sub(val, name)
    while sub.pos < sub.end:
        if len(out) >= MAX_ELEMENTS:
            raise r.fail(f"too many elements in '{name}'")
        out.append(sub.signed() if signed else sub.varint())


def _fixed(r: _Reader, wt: int, val: Any, size: int, name: str, out: list[bytes]) -> None:
    """A repeated fixed-width field: the raw little-endian bytes, packed or one at a time."""
    if wt == (_I32 if size == 4 else _I64):
        out.append(val)
        return
    _expect(r, wt, _LEN, name)
    if (val[1] - val[0]) % size:
        raise r.fail(f"packed '{name}' is not a multiple of {size} bytes")
    out.append(r.raw(val))


def _tensor(r: _Reader, depth: int) -> Tensor:
    t = Tensor()
    floats: list[bytes] = []
    doubles: list[bytes] = []
    for num, wt, val in r.fields():
        if num == 4:
            _fixed(r, wt, val, 4, "float_data", floats)
        elif num == 10:
            _fixed(r, wt, val, 8, "double_data", doubles)
        else:
            _tensor_field(r, t, num, wt, val)
    t.float_data = b"".join(floats) if floats else None
    t.double_data = b"".join(doubles) if doubles else None
    for d in t.dims:
        if d < 0:
            raise r.fail(f"tensor '{t.name}' has a negative dimension {d}")
    return t


def _tensor_field(r: _Reader, t: Tensor, num: int, wt: int, val: Any) -> None:
    """One TensorProto field other than the packed float/double data (unknown ones skipped)."""
    if num == 1:
        _varints(r, wt, val, True, "dims", t.dims)
        if len(t.dims) > MAX_DIMS:
            raise r.fail("tensor has too many dimensions")
    elif num == 2:
        _expect(r, wt, _VARINT, "data_type")
        t.data_type = val
    elif num == 5:
        _varints(r, wt, val, True, "int32_data", t.int32_data)
    elif num == 6:
        _expect(r, wt, _LEN, "string_data")
        t.string_data.append(r.raw(val))
    elif num == 7:
        _varints(r, wt, val, True, "int64_data", t.int64_data)
    elif num == 8:
        _expect(r, wt, _LEN, "name")
        t.name = r.text(val)
    elif num == 9:
        _expect(r, wt, _LEN, "raw_data")
        t.raw_data = r.raw(val)
    elif num == 11:
        _varints(r, wt, val, False, "uint64_data", t.uint64_data)
    elif num == 14:
        t.external = val == 1


def _value_info(r: _Reader) -> ValueInfo:
    vi = ValueInfo()
    for num, wt, val in r.fields():
        if num == 1 and wt == _LEN:
            vi.name = r.text(val)
        elif num == 2 and wt == _LEN:  # TypeProto
            for n2, w2, v2 in r.sub(val, "TypeProto").fields():
                if n2 == 1 and w2 == _LEN:  # TypeProto.Tensor
                    tr = r.sub(v2, "TypeProto.Tensor")
                    for n3, w3, v3 in tr.fields():
                        if n3 == 1 and w3 == _VARINT:
                            vi.elem_type = v3
                        elif n3 == 2 and w3 == _LEN:
                            vi.shape = []
                            for n4, w4, v4 in tr.sub(v3, "TensorShapeProto").fields():
                                if n4 == 1 and w4 == _LEN:
                                    dim: Any = None
                                    dr = tr.sub(v4, "Dimension")
                                    for n5, w5, v5 in dr.fields():
                                        if n5 == 1 and w5 == _VARINT:
                                            dim = v5
                                        elif n5 == 2 and w5 == _LEN:
                                            dim = dr.text(v5)
                                    if len(vi.shape) >= MAX_DIMS:
                                        raise r.fail("shape has too many dimensions")
                                    vi.shape.append(dim)
    return vi


def _attribute(r: _Reader, depth: int) -> Attribute:
    a = Attribute()
    floats: list[bytes] = []
    for num, wt, val in r.fields():
        if num == 7:
            _fixed(r, wt, val, 4, "floats", floats)
        elif num in (5, 6, 10, 11):
            _attribute_nested(r, a, num, wt, val, depth)
        else:
            _attribute_field(r, a, num, wt, val)
    if floats:
        blob = b"".join(floats)
        a.floats = list(struct.unpack(f"<{len(blob) // 4}f", blob))
    if not a.name:
        raise r.fail("attribute without a name")
    return a


def _attribute_field(r: _Reader, a: Attribute, num: int, wt: int, val: Any) -> None:
    """One AttributeProto field holding a name, type, number, string or list of them."""
    if num == 1:
        _expect(r, wt, _LEN, "name")
        a.name = r.text(val)
    elif num == 20:
        _expect(r, wt, _VARINT, "type")
        a.type = val
    elif num == 2:
        _expect(r, wt, _I32, "f")
        a.f = struct.unpack("<f", val)[0]
    elif num == 3:
        _expect(r, wt, _VARINT, "i")
        a.i = val - (1 << 64) if val >= 1 << 63 else val
    elif num == 4:
        _expect(r, wt, _LEN, "s")
        a.s = r.raw(val)
    elif num == 8:
        _varints(r, wt, val, True, "ints", a.ints)
    elif num == 9:
        _expect(r, wt, _LEN, "strings")
        if len(a.strings) >= MAX_ELEMENTS:
            raise r.fail("too many strings")
        a.strings.append(r.raw(val))


def _attribute_nested(r: _Reader, a: Attribute, num: int, wt: int, val: Any, depth: int) -> None:
    """An AttributeProto field holding tensors (5, 10) or subgraphs (6, 11), one level deeper."""
    if num == 5:
        _expect(r, wt, _LEN, "t")
        a.t = _tensor(r.sub(val, "AttributeProto.t"), depth + 1)
    elif num == 6:
        _expect(r, wt, _LEN, "g")
        a.g = _graph(r.sub(val, "AttributeProto.g"), depth + 1)
    elif num == 10:
        _expect(r, wt, _LEN, "tensors")
        a.tensors.append(_tensor(r.sub(val, "AttributeProto.tensors"), depth + 1))
    elif num == 11:
        _expect(r, wt, _LEN, "graphs")
        a.graphs.append(_graph(r.sub(val, "AttributeProto.graphs"), depth + 1))


def _node(r: _Reader, depth: int) -> Node:
    n = Node()
    for num, wt, val in r.fields():
        if num == 1:
            _expect(r, wt, _LEN, "input")
            n.inputs.append(r.text(val))
        elif num == 2:
            _expect(r, wt, _LEN, "output")
            n.outputs.append(r.text(val))
        elif num == 3:
            _expect(r, wt, _LEN, "name")
            n.name = r.text(val)
        elif num == 4:
            _expect(r, wt, _LEN, "op_type")
            n.op_type = r.text(val)
        elif num == 7:
            _expect(r, wt, _LEN, "domain")
            n.domain = r.text(val)
        elif num == 5:
            _expect(r, wt, _LEN, "attribute")
            a = _attribute(r.sub(val, f"attribute of node '{n.name or n.op_type}'"), depth)
            n.attributes[a.name] = a
    if not n.op_type:
        raise r.fail("node without op_type")
    return n


def _graph(r: _Reader, depth: int) -> Graph:
    if depth > MAX_DEPTH:
        raise r.fail(f"graphs nested deeper than {MAX_DEPTH}")
    g = Graph()
    for num, wt, val in r.fields():
        if num == 1:
            _expect(r, wt, _LEN, "node")
            g.nodes.append(_node(r.sub(val, "NodeProto"), depth))
        elif num == 2:
            _expect(r, wt, _LEN, "name")
            g.name = r.text(val)
        elif num == 5:
            _expect(r, wt, _LEN, "initializer")
            g.initializers.append(_tensor(r.sub(val, "initializer"), depth))
        elif num == 11:
            _expect(r, wt, _LEN, "input")
            g.inputs.append(_value_info(r.sub(val, "graph input")))
        elif num == 12:
            _expect(r, wt, _LEN, "output")
            g.outputs.append(_value_info(r.sub(val, "graph output")))
        elif num == 13:
            _expect(r, wt, _LEN, "value_info")
            g.value_info.append(_value_info(r.sub(val, "value_info")))
        elif num == 15:
            raise r.fail("sparse initializers are not supported")
    return g


def decode_model(data: bytes) -> Model:
    """Parse an ONNX ModelProto.

    Raises:
        ModelDecodeError: the bytes are not a well-formed model, or lack a graph.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ModelDecodeError(f"expected model bytes, got {type(data).__name__}")
    buf = memoryview(bytes(data))
    r = _Reader(buf, 0, len(buf), "ModelProto")
    m = Model()
    try:
        for num, wt, val in r.fields():
            if num == 1:
                _expect(r, wt, _VARINT, "ir_version")
                m.ir_version = val
            elif num == 2 and wt == _LEN:
                m.producer = r.text(val)
            elif num == 7:
                _expect(r, wt, _LEN, "graph")
                m.graph = _graph(r.sub(val, "GraphProto"), 0)
            elif num == 8:
                _expect(r, wt, _LEN, "opset_import")
                domain, version = "", 0
                sub = r.sub(val, "OperatorSetIdProto")
                for n2, w2, v2 in sub.fields():
                    if n2 == 1 and w2 == _LEN:
                        domain = sub.text(v2)
                    elif n2 == 2 and w2 == _VARINT:
                        version = v2
                if domain == "ai.onnx":
                    domain = ""
                m.opset[domain] = max(version, m.opset.get(domain, 0))
    except ModelDecodeError:
        raise
    except (RecursionError, MemoryError, OverflowError, ValueError, struct.error) as exc:
        raise ModelDecodeError(f"malformed ONNX model: {type(exc).__name__}: {exc}") from None
    if m.graph is None:
        raise ModelDecodeError("malformed ONNX model: no graph")
    return m
