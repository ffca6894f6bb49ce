"""JSON from untrusted bytes with bounded depth and only finite numbers.

``json.loads`` recurses once per nesting level (a manifest nested 50,000 deep is a
``RecursionError``, not a parse error), reads ``NaN``/``Infinity`` and ``1e400`` (inf) as
numbers, turns a 5,000-digit integer into a ``ValueError`` from ``int()`` and keeps the last of
two duplicate keys silently. :func:`loads_bounded` refuses all of these with one
:class:`~edge_runtime.errors.BundleError`, and measures the depth *before* the parser runs:
strings are cut out with one regular expression, then innermost ``[]``/``{}`` pairs are removed
once per level, so the cost is ``max_depth`` linear passes in C whatever the input. Numbers
go through Python hooks only when the text outside strings holds a literal that could overflow
(a 3-digit exponent or 33+ digits in a row): the hooks cost 4x on a manifest of golden rows.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from .errors import BundleError

MAX_DEPTH = 32
MAX_INT_DIGITS = 32

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_INNERMOST = re.compile(rb"\[\]|\{\}")
_RISKY_NUMBER = re.compile(rb"[eE][+-]?[0-9]{3}|[0-9]{33}")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def check_depth(raw: bytes, what: str, max_depth: int = MAX_DEPTH) -> None:
    """Refuse JSON text nested deeper than ``max_depth`` without parsing it.

    Raises:
        BundleError: deeper than ``max_depth``, or brackets that do not pair up.
    """
    _check_depth(_STRING.sub(b"", raw), what, max_depth)


def _check_depth(skeleton: bytes, what: str, max_depth: int) -> None:
    brackets = skeleton.translate(None, _NOT_BRACKET)
    for _ in range(max_depth):
        if not brackets:
            return
        inner = _INNERMOST.sub(b"", brackets)
        if inner == brackets:  # a balanced sequence always has an innermost pair
            raise BundleError(f"{what} is not valid JSON: unbalanced brackets")
        brackets = inner
    if brackets:
        raise BundleError(f"{what} nests deeper than {max_depth} levels")


def loads_bounded(raw: bytes, what: str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse UTF-8 JSON: depth checked first, numbers finite, keys unique, text encodable.

    Raises:
        BundleError: invalid UTF-8 or JSON, too deep, NaN/Infinity, a number out of float
            range, an integer over ``MAX_INT_DIGITS`` digits, a duplicate key, or a lone
            surrogate escape (``"\\ud800"``, which no UTF-8 writer can write back).
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BundleError(f"{what} is not valid JSON: {exc}") from None
    skeleton = _STRING.sub(b"", raw)
    _check_depth(skeleton, what, max_depth)
    hooks: dict[str, Any] = {}
    if _RISKY_NUMBER.search(skeleton):
        hooks = {"parse_float": _float(what), "parse_int": _int(what)}
    try:
        data = json.loads(text, parse_constant=_constant(what), object_pairs_hook=_unique(what),
                          **hooks)
    except json.JSONDecodeError as exc:
        raise BundleError(f"{what} is not valid JSON: {exc}") from None
    try:
        if _SURROGATE_ESCAPE.search(raw):  # a pair is fine (json joins it), a lone one is not
            json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BundleError(f"{what} holds a lone surrogate escape (not valid Unicode text)") from None
    return data


def _constant(what: str) -> Any:
    def refuse(name: str) -> Any:
        raise BundleError(f"{what} holds {name}: NaN and infinities are not JSON numbers")
    return refuse


def _float(what: str) -> Any:
    def parse(literal: str) -> float:
        value = float(literal)
        if not math.isfinite(value):
            raise BundleError(f"{what} holds the number {literal[:40]} (beyond float range)")
        return value
    return parse


def _int(what: str) -> Any:
    def parse(literal: str) -> int:
        if len(literal.lstrip("-")) > MAX_INT_DIGITS:
            raise BundleError(f"{what} holds an integer of {len(literal)} digits "
                              f"(at most {MAX_INT_DIGITS})")
        return int(literal)
    return parse


def _unique(what: str) -> Any:
    def build(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise BundleError(f"{what} has the key {key[:60]!r} twice in one object")
            out[key] = value
        return out
    return build
