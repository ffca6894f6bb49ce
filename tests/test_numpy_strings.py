"""The numpy backend's string kernels (LabelEncoder, StringNormalizer, Tokenizer,
TfIdfVectorizer) against onnxruntime, one-node models at every row count of the differential
suite and at 10,000 rows: mixed case, non-ASCII letters, empty strings, NaN keys, unknown keys.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from numpy_diff import assert_same, ort_session
from numpy_string_cases import models, rows

from edge_runtime.onnx_numpy.plan import load_plan

ROW_COUNTS = (1, 2, 4, 5, 7, 31, 32, 33, 64, 65, 1000, 10_000)
MODELS = models()


@pytest.mark.parametrize("model_id", list(MODELS))
def test_string_kernel_matches_onnxruntime(model_id):
    model = MODELS[model_id]
    blob = model.SerializeToString()
    sess = ort_session(blob)
    plan, _ = load_plan(blob)
    rng = np.random.default_rng(zlib.crc32(model_id.encode()))
    counts = ROW_COUNTS if not model_id.startswith("TfIdf") else ROW_COUNTS[:-1] + (3000,)
    for n in counts:
        feeds = rows(model, n, rng)
        want = sess.run(None, feeds)
        got = plan.run(feeds)
        for j, (w, g) in enumerate(zip(want, got)):
            w, g = np.asarray(w), np.asarray(g)
            if w.dtype.kind in "OUS":
                w, g = w.astype(str), g.astype(str)
            assert_same(w, g, f"{model_id} rows={n} output {j}")


@pytest.mark.parametrize("model_id", [m for m in MODELS if m.startswith("TfIdf")])
def test_tfidf_row_by_row_counting_matches_onnxruntime(model_id, monkeypatch):
    """The row loop the kernel falls back to when n-gram keys would overflow int64."""
    from edge_runtime.onnx_numpy.ops import text

    monkeypatch.setattr(text, "MAX_GRAM_KEY", 0)
    model = MODELS[model_id]
    blob = model.SerializeToString()
    sess, (plan, _) = ort_session(blob), load_plan(blob)
    rng = np.random.default_rng(7)
    for n in (1, 33, 500):
        feeds = rows(model, n, rng)
        assert_same(sess.run(None, feeds)[0], plan.run(feeds)[0], f"{model_id} rows={n} (row loop)")


def test_tokenizer_refuses_what_it_lacks():
    from numpy_string_cases import S, _io, _model
    from onnx import helper

    from edge_runtime.errors import UnsupportedModelError

    node = helper.make_node("Tokenizer", ["x"], ["y"], domain="com.microsoft", mark=0, mincharnum=1,
                            pad_value="#", tokenexp="[a-z]+", tokenexpsplit=1)
    model = _model(node, [_io("x", S, [None])], [_io("y", S, None)], {"": 17, "com.microsoft": 1})
    with pytest.raises(UnsupportedModelError, match="tokenexpsplit"):
        load_plan(model.SerializeToString())
