"""String operators: what skl2onnx emits for OrdinalEncoder (LabelEncoder) and for
TfidfVectorizer / CountVectorizer (StringNormalizer → Tokenizer → TfIdfVectorizer).

Strings are numpy object arrays of ``str``. The semantics follow onnxruntime, the engine the
converter proves a bundle on: LabelEncoder's NaN key matches NaN; the Tokenizer's regular
expression is RE2's, whose ``\\w`` and ``\\b`` are ASCII (hence ``re.ASCII``); StringNormalizer
changes case with Python's per-character mapping (a UTF-8 locale's towlower/towupper).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from . import ML, op

MICROSOFT = "com.microsoft"
#: TfIdfVectorizer counts n-grams as int64 keys below this (vocabulary size ** n), else row by row
MAX_GRAM_KEY = 2 ** 62
#: the Tokenizer's start- and end-of-text marks (``mark=1``)
_START, _END = "\x02", "\x03"


# --- LabelEncoder (ai.onnx.ml, opsets 1-4) ------------------------------------------------------
def _label_keys_values(node: Any) -> tuple[np.ndarray, np.ndarray, Any]:
    """(keys, values, default) whatever the opset spells them as."""
    if node.opset == 1:  # classes_strings: string -> index, or index -> string
        classes = np.array(node.strings("classes_strings", []), dtype=object)
        default_int = node.int("default_int64", -1)
        default_str = node.str("default_string", "_Unused")
        return classes, np.arange(classes.size, dtype=np.int64), (default_int, default_str)
    keys = values = None
    for name, dtype in (("keys_strings", object), ("keys_int64s", np.int64), ("keys_floats", np.float32)):
        got = node.strings(name, None) if dtype is object else \
            node.ints(name, None) if dtype is np.int64 else node.floats(name, None)
        if got:
            keys = np.array(got, dtype=dtype)
    for name, dtype in (("values_strings", object), ("values_int64s", np.int64),
                        ("values_floats", np.float32)):
        got = node.strings(name, None) if dtype is object else \
            node.ints(name, None) if dtype is np.int64 else node.floats(name, None)
        if got:
            values = np.array(got, dtype=dtype)
    if node.opset >= 4:
        if keys is None and node.has("keys_tensor"):
            keys = node.tensor("keys_tensor")
        if values is None and node.has("values_tensor"):
            values = node.tensor("values_tensor")
    if keys is None or values is None:
        raise node.fail("no keys or no values")
    keys, values = keys.reshape(-1), values.reshape(-1)
    if keys.size != values.size:
        raise node.fail(f"{keys.size} keys for {values.size} values")
    if node.opset >= 4 and node.has("default_tensor"):
        default: Any = node.tensor("default_tensor").reshape(-1)[0]
    elif values.dtype == object:
        default = node.str("default_string", "_Unused")
    elif values.dtype.kind == "i":
        default = node.int("default_int64", -1)
    else:
        default = node.float("default_float", -0.0)
    return keys, values, default


@op("LabelEncoder", ML)
def make_label_encoder(node):
    keys, values, default = _label_keys_values(node)
    if node.opset == 1:
        default_int, default_str = default
        to_index = {k: i for i, k in enumerate(keys.tolist())}
        names = keys.tolist()

        def kernel_v1(x):
            if x.dtype == object:
                flat = [to_index.get(v, default_int) for v in x.reshape(-1).tolist()]
                return [np.array(flat, dtype=np.int64).reshape(x.shape)]
            flat = [names[i] if 0 <= i < len(names) else default_str for i in x.reshape(-1).tolist()]
            return [np.array(flat, dtype=object).reshape(x.shape)]

        return kernel_v1
    out_dtype = values.dtype
    if keys.dtype.kind == "O":
        table = dict(zip(keys.tolist(), values.tolist()))

        def kernel_strings(x):
            flat = [table.get(v, default) for v in x.reshape(-1).tolist()]
            return [np.array(flat, dtype=out_dtype).reshape(x.shape)]

        return kernel_strings
    # numeric keys: one sorted search, vectorised; a NaN key matches NaN (as onnxruntime does)
    order = np.argsort(keys, kind="stable")
    sorted_keys, sorted_values = keys[order], values[order]
    nan_key = keys.dtype.kind == "f" and bool(np.isnan(keys).any())
    nan_value = values[np.flatnonzero(np.isnan(keys))[0]] if nan_key else None
    fill = np.array([default], dtype=out_dtype)

    def kernel_numbers(x):
        xv = x.astype(keys.dtype)
        pos_c = np.minimum(np.searchsorted(sorted_keys, xv), sorted_keys.size - 1)
        out = np.where(sorted_keys[pos_c] == xv, sorted_values[pos_c], fill[0])
        if nan_key:
            out = np.where(np.isnan(xv), nan_value, out)
        return [np.asarray(out, dtype=out_dtype).reshape(x.shape)]

    return kernel_numbers


# --- StringNormalizer (ai.onnx, since 10) ------------------------------------------------------
@op("StringNormalizer", since=10)
def make_string_normalizer(node):
    action = node.str("case_change_action", "NONE")
    if action not in ("NONE", "LOWER", "UPPER"):
        raise node.fail(f"case_change_action {action!r} is not NONE, LOWER or UPPER")
    sensitive = bool(node.int("is_case_sensitive", 0))
    stop = node.strings("stopwords", [])
    stopset = set(stop) if sensitive else {s.lower() for s in stop}
    change = {"LOWER": _lower, "UPPER": _upper}.get(action)

    def kernel(x):
        if x.ndim == 2 and x.shape[0] != 1 or x.ndim not in (1, 2):
            raise node.fail(f"input shape {x.shape}: StringNormalizer takes [C] or [1, C]")
        flat = x.reshape(-1).tolist()
        if stopset:
            flat = [s for s in flat if (s if sensitive else s.lower()) not in stopset]
        if change is not None:
            flat = [change(s) for s in flat]
        if not flat:  # everything was a stop word: one empty string (onnxruntime's output)
            flat = [""]
        out = np.array(flat, dtype=object)
        return [out.reshape(1, -1) if x.ndim == 2 else out]

    return kernel


def _lower(s: str) -> str:
    return s.lower() if s.isascii() else "".join(c if len(c.lower()) != 1 else c.lower() for c in s)


def _upper(s: str) -> str:
    return s.upper() if s.isascii() else "".join(c if len(c.upper()) != 1 else c.upper() for c in s)


# --- Tokenizer (com.microsoft, onnxruntime's contrib op) ---------------------------------------
@op("Tokenizer", MICROSOFT)
def make_tokenizer(node):
    mark = bool(node.int("mark", 0))
    mincharnum = node.int("mincharnum", 1)
    pad = node.str("pad_value", "#")
    tokenexp = node.str("tokenexp", "")
    separators = node.strings("separators", [])
    if node.int("tokenexpsplit", 0):
        raise node.fail("tokenexpsplit=1 is not supported by the numpy backend")
    if tokenexp and separators:
        raise node.fail("both tokenexp and separators are set")
    if not tokenexp and not separators:
        raise node.fail("neither tokenexp nor separators is set")
    try:
        pattern = re.compile(tokenexp if tokenexp else "|".join(separators), re.ASCII)
    except re.error as exc:
        raise node.fail(f"its regular expression does not compile here ({exc})") from None
    least = max(mincharnum, 1)  # an empty match is no token
    if tokenexp and not pattern.groups:  # findall's whole matches, in C
        def split(s: str) -> list[str]:
            return [t for t in pattern.findall(s) if len(t) >= least]
    elif tokenexp:  # with groups, findall gives a group's text: take the whole matches
        def split(s: str) -> list[str]:
            return [t for t in (m.group(0) for m in pattern.finditer(s)) if len(t) >= least]
    else:
        def split(s: str) -> list[str]:
            return [t for t in pattern.split(s) if len(t) >= least]

    def kernel(x):
        flat = x.reshape(-1).tolist()
        tokens = [split(s) for s in flat]
        if mark and any(tokens):  # no token anywhere: [N, 0], without marks (as onnxruntime)
            tokens = [[_START, *t, _END] for t in tokens]
        width = max((len(t) for t in tokens), default=0)
        out = np.full((len(flat), width), pad, dtype=object)
        for i, t in enumerate(tokens):
            out[i, :len(t)] = t
        return [out.reshape(*x.shape, width)]

    return kernel


# --- TfIdfVectorizer (ai.onnx, since 9) --------------------------------------------------------
@op("TfIdfVectorizer", since=9)
def make_tfidf(node):
    min_n = node.int("min_gram_length")
    max_n = node.int("max_gram_length")
    max_skip = node.int("max_skip_count")
    mode = node.str("mode")
    counts = node.ints("ngram_counts")
    indexes = node.ints("ngram_indexes")
    weights = node.floats("weights", [])
    pool: list[Any] = node.strings("pool_strings", []) or node.ints("pool_int64s", [])
    if mode not in ("TF", "IDF", "TFIDF"):
        raise node.fail(f"mode {mode!r} is not TF, IDF or TFIDF")
    if not 1 <= min_n <= max_n or max_skip < 0:
        raise node.fail(f"gram lengths [{min_n}, {max_n}], skip {max_skip}")
    width = max(indexes) + 1 if indexes else 0
    grams = _pool_grams(node, counts, indexes, pool)
    wanted = [n for n in range(min_n, max_n + 1) if any(len(g) == n for g in grams)]
    w = np.asarray(weights, dtype=np.float32) if weights else np.ones(width, dtype=np.float32)
    # vectorised counting: tokens -> vocabulary ids, an n-gram -> one int64 key (base K), looked
    # up in the sorted keys of the pool's n-grams; the row loop below where keys would overflow
    vocab = {t: i for i, t in enumerate(dict.fromkeys(pool))}
    base = len(vocab) + 1
    keyed = bool(wanted) and base ** max(wanted) < MAX_GRAM_KEY
    by_n = _keyed_grams(grams, vocab, base, wanted) if keyed else {}

    def kernel(x):
        if x.ndim not in (1, 2):
            raise node.fail(f"input shape {x.shape}: TfIdfVectorizer takes [C] or [N, C]")
        rows = x.reshape(1, -1) if x.ndim == 1 else x
        if rows.dtype != object:
            rows = rows.astype(np.int64)
        out = np.zeros((rows.shape[0], width), dtype=np.float32)
        if keyed:
            _count_keyed(rows, out, vocab, base, wanted, by_n, max_skip)
        else:
            for i, tokens in enumerate(rows.tolist()):
                _count_row(tokens, out[i], grams, wanted, max_skip)
        if mode == "IDF":
            out = (out > 0).astype(np.float32) * w
        elif mode == "TFIDF":
            out = out * w
        return [out.reshape(-1) if x.ndim == 1 else out]

    return kernel


def _pool_grams(node: Any, counts: list[int], indexes: list[int], pool: list[Any]) -> dict[tuple, int]:
    """n-gram (tuple) -> output column; the pool holds the 1-grams, then the 2-grams, ..."""
    grams: dict[tuple, int] = {}
    k = 0
    bounds = list(counts) + [len(pool)]
    for n in range(1, len(counts) + 1):
        start, stop = bounds[n - 1], bounds[n]
        for at in range(start, stop, n):
            if k >= len(indexes):
                raise node.fail("fewer ngram_indexes than n-grams in the pool")
            grams[tuple(pool[at:at + n])] = indexes[k]
            k += 1
    return grams


def _keyed_grams(grams: dict[tuple, int], vocab: dict[Any, int], base: int,
                 wanted: list[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per n-gram length: the pool's n-gram keys, sorted, and the output column of each."""
    by_n: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for n in wanted:
        items = sorted((_gram_key([vocab[t] for t in g], base), col) for g, col in grams.items() if len(g) == n)
        by_n[n] = (np.array([k for k, _ in items], dtype=np.int64), np.array([c for _, c in items], dtype=np.intp))
    return by_n


def _count_keyed(rows: np.ndarray, out: np.ndarray, vocab: dict[Any, int], base: int, wanted: list[int],
                 by_n: dict[int, tuple[np.ndarray, np.ndarray]], max_skip: int) -> None:
    """Adds each row's n-gram counts to ``out``, all rows at once through the int64 keys."""
    size = rows.shape[1]
    ids = np.array([vocab.get(t, -1) for t in rows.reshape(-1).tolist()], dtype=np.int64).reshape(rows.shape)
    for skip in range(max_skip + 1):
        step = skip + 1
        for n in wanted:
            span = (n - 1) * step
            if (n == 1 and skip) or span >= size:  # a 1-gram has no gaps: counted at skip 0
                continue
            starts = size - span
            key = np.zeros((rows.shape[0], starts), dtype=np.int64)
            valid = np.ones(key.shape, dtype=bool)
            for k in range(n):
                part = ids[:, k * step:k * step + starts]
                valid &= part >= 0
                key = key * base + np.maximum(part, 0)
            keys, cols = by_n[n]
            at = np.minimum(np.searchsorted(keys, key), keys.size - 1)
            r, c = np.nonzero(valid & (keys[at] == key))
            np.add.at(out, (r, cols[at[r, c]]), 1)


def _count_row(tokens: list[Any], out: np.ndarray, grams: dict[tuple, int], wanted: list[int],
               max_skip: int) -> None:
    """Adds one row's n-gram counts to ``out``, token by token (where keys would overflow)."""
    size = len(tokens)
    for skip in range(max_skip + 1):
        step = skip + 1
        for start in range(size):
            for n in wanted:
                if n == 1 and skip:  # a 1-gram has no gaps: counted once, at skip 0
                    continue
                last = start + (n - 1) * step
                if last >= size:
                    break
                col = grams.get(tuple(tokens[start:last + 1:step]))
                if col is not None:
                    out[col] += 1


def _gram_key(ids: list[int], base: int) -> int:
    key = 0
    for i in ids:
        key = key * base + i
    return key
