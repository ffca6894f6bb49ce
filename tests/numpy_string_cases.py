"""One-node ONNX models of the string kernels (LabelEncoder, StringNormalizer, Tokenizer,
TfIdfVectorizer) and random string rows for them; shared by the differential tests and the
kernel-coverage check of tests/test_numpy_differential.py."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from onnx import TensorProto, helper, numpy_helper

S, I64, F = TensorProto.STRING, TensorProto.INT64, TensorProto.FLOAT

#: words of the random texts: mixed case, digits, punctuation, non-ASCII letters, near-duplicates
WORDS = ["good", "Good", "GREAT", "bad", "awful", "plot", "a", "I", "x1", "42", "movie",
         "film", "nice!", "don't", "Élan", "école", "straße", "naïve", "über", "co-op", "", "  "]
CATEGORIES = ["red", "green", "blue", "Red", "", "ünïcode", "unknown-1", "n/a"]


def _model(node: Any, inputs: list, outputs: list, opsets: dict[str, int]) -> Any:
    graph = helper.make_graph([node], "g", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()])
    model.ir_version = 8
    return model


def _io(name: str, dtype: int, shape: list) -> Any:
    return helper.make_tensor_value_info(name, dtype, shape)


def label_encoder(opset: int, key: str, value: str, nan_key: bool = False, tensors: bool = False) -> Any:
    """LabelEncoder mapping ``key`` (strings/int64s/floats) to ``value`` at ml opset ``opset``."""
    keys: dict[str, list] = {"strings": CATEGORIES[:5], "int64s": [3, -1, 7, 0, 100],
                             "floats": [0.5, -2.0, 3.25, 1e6, 0.0]}
    if nan_key:
        keys["floats"] = keys["floats"][:4] + [float("nan")]
    values: dict[str, list] = {"strings": ["A", "B", "C", "D", "E"], "int64s": [10, 20, 30, 40, 50],
                               "floats": [1.5, -0.25, 2.0, 8.0, 0.125]}
    types = {"strings": S, "int64s": I64, "floats": F}
    defaults = {"strings": ("default_string", "none"), "int64s": ("default_int64", -9),
                "floats": ("default_float", -7.5)}
    if opset == 1:
        attrs = {"classes_strings": CATEGORIES[:5], "default_int64": -9}
    elif tensors:
        kt = np.array(keys[key], dtype=object if key == "strings" else np.int64 if key == "int64s" else np.float32)
        vt = np.array(values[value], dtype=object if value == "strings" else np.int64 if value == "int64s"
                      else np.float32)
        dv = np.array([defaults[value][1]], dtype=vt.dtype)
        attrs = {"keys_tensor": numpy_helper.from_array(kt, "k"), "values_tensor": numpy_helper.from_array(vt, "v"),
                 "default_tensor": numpy_helper.from_array(dv, "d")}
    else:
        attrs = {f"keys_{key}": keys[key], f"values_{value}": values[value],
                 defaults[value][0]: defaults[value][1]}
    node = helper.make_node("LabelEncoder", ["x"], ["y"], domain="ai.onnx.ml", **attrs)
    return _model(node, [_io("x", types[key], [None, 1])], [_io("y", types[value], [None, 1])],
                  {"": 17, "ai.onnx.ml": opset})


def string_normalizer(action: str, stopwords: list[str], case_sensitive: int) -> Any:
    node = helper.make_node("StringNormalizer", ["x"], ["y"], case_change_action=action,
                            is_case_sensitive=case_sensitive, locale="C.UTF-8",
                            **({"stopwords": stopwords} if stopwords else {}))
    return _model(node, [_io("x", S, [None])], [_io("y", S, [None])], {"": 17})


def tokenizer(mark: int, mincharnum: int, tokenexp: str = "", separators: tuple = (),
              two_d: bool = False) -> Any:
    attrs: dict[str, Any] = {"mark": mark, "mincharnum": mincharnum, "pad_value": "#"}
    if tokenexp:
        attrs["tokenexp"] = tokenexp
    else:
        attrs["separators"] = list(separators)
    node = helper.make_node("Tokenizer", ["x"], ["y"], domain="com.microsoft", **attrs)
    shape = [None, 2] if two_d else [None]
    return _model(node, [_io("x", S, shape)], [_io("y", S, None)], {"": 17, "com.microsoft": 1})


def tfidf(mode: str, min_n: int, max_n: int, skip: int, ints: bool = False) -> Any:
    uni = ["good", "bad", "plot", "movie", "a"] if not ints else [1, 2, 3, 4, 5]
    bi = ["good", "movie", "bad", "plot", "a", "good"] if not ints else [1, 4, 2, 3, 5, 1]
    pool = uni + bi
    n_grams = len(uni) + len(bi) // 2
    attrs = {"mode": mode, "min_gram_length": min_n, "max_gram_length": max_n, "max_skip_count": skip,
             "ngram_counts": [0, len(uni)], "ngram_indexes": list(range(n_grams)),
             "weights": [0.5 + i for i in range(n_grams)]}
    attrs["pool_int64s" if ints else "pool_strings"] = pool
    node = helper.make_node("TfIdfVectorizer", ["x"], ["y"], **attrs)
    return _model(node, [_io("x", I64 if ints else S, [None, 6])], [_io("y", F, [None, n_grams])], {"": 17})


def models() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for opset in (2, 3):
        for key in ("strings", "int64s", "floats"):
            for value in ("strings", "int64s", "floats"):
                if key != value or key != "int64s":
                    out[f"LabelEncoder/ml{opset}/{key}->{value}"] = label_encoder(opset, key, value)
    out["LabelEncoder/ml1/classes_strings"] = label_encoder(1, "strings", "int64s")
    out["LabelEncoder/ml4/tensors/strings->int64s"] = label_encoder(4, "strings", "int64s", tensors=True)
    out["LabelEncoder/ml4/tensors/floats->strings"] = label_encoder(4, "floats", "strings", tensors=True)
    out["LabelEncoder/ml4/nan-key/floats->floats"] = label_encoder(4, "floats", "floats", nan_key=True)
    for action in ("NONE", "LOWER", "UPPER"):
        out[f"StringNormalizer/{action}"] = string_normalizer(action, [], 0)
    out["StringNormalizer/LOWER/stopwords"] = string_normalizer("LOWER", ["good", "A", "x1"], 0)
    out["StringNormalizer/NONE/stopwords-case-sensitive"] = string_normalizer("NONE", ["good", "A"], 1)
    out["Tokenizer/regex"] = tokenizer(0, 1, tokenexp="[a-zA-Z0-9_]+")
    out["Tokenizer/regex/mark/min3"] = tokenizer(1, 3, tokenexp="[a-zA-Z0-9_]+")
    out["Tokenizer/regex/2d"] = tokenizer(0, 2, tokenexp="[a-z]+", two_d=True)
    out["Tokenizer/separators"] = tokenizer(0, 1, separators=(" ", "-"))
    out["Tokenizer/regex/groups"] = tokenizer(0, 1, tokenexp="([a-z])([a-z0-9]+)")
    for mode in ("TF", "IDF", "TFIDF"):
        out[f"TfIdfVectorizer/{mode}/1-2"] = tfidf(mode, 1, 2, 0)
    out["TfIdfVectorizer/TF/2-2/skip2"] = tfidf("TF", 2, 2, 2)
    out["TfIdfVectorizer/TFIDF/1-2/skip1/int64"] = tfidf("TFIDF", 1, 2, 1, ints=True)
    return out


def _text(rng: np.random.Generator) -> str:
    return " ".join(rng.choice(WORDS, size=int(rng.integers(0, 7))).tolist())


def rows(model: Any, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random input for ``model``'s single input at ``n`` rows."""
    inp = model.graph.input[0]
    dtype = inp.type.tensor_type.elem_type
    dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    op = model.graph.node[0].op_type
    cols = dims[1] if len(dims) == 2 else None
    shape: tuple = (n, cols) if cols else (n,)
    make: Callable[[], Any]
    if op == "LabelEncoder":
        pools: dict[int, list] = {S: CATEGORIES, I64: [3, -1, 7, 0, 100, 5, -100],
                                  F: [0.5, -2.0, 3.25, 1e6, 0.0, -0.0, float("nan"), 2.5]}
        pool = pools[dtype]
        values = [pool[i] for i in rng.integers(0, len(pool), size=int(np.prod(shape)))]
        arr = np.array(values, dtype=object if dtype == S else np.int64 if dtype == I64 else np.float32)
        return {inp.name: arr.reshape(shape)}
    if op == "TfIdfVectorizer":
        if dtype == I64:
            return {inp.name: rng.integers(0, 7, size=shape).astype(np.int64)}
        vocab = ["good", "bad", "plot", "movie", "a", "film", "#"]
        return {inp.name: np.array(rng.choice(vocab, size=shape).tolist(), dtype=object)}
    make = lambda: _text(rng)  # noqa: E731
    return {inp.name: np.array([make() for _ in range(int(np.prod(shape)))], dtype=object).reshape(shape)}
