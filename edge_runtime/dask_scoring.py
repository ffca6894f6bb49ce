"""Scoring data bigger than one machine: the same bundle as a Dask ``map_partitions``.

Each Dask worker process loads the bundle once (cached per process, golden rows checked) and
scores its partitions with ``Model.predict`` on the partition's feature columns, so the results
are the ones ``edgert predict`` and ``Model.predict`` give. Dask is an optional extra
(``pip install 'edge-runtime[dask]'``); this module imports neither dask nor pandas at import time.

    import dask.dataframe as dd
    from edge_runtime.dask_scoring import dask_predict

    ddf = dd.read_parquet("s3://bucket/rows/*.parquet")      # or read_csv, from_pandas, ...
    scored = dask_predict(ddf, "/models/breast-cancer", proba=True)
    scored.to_parquet("scored/")                               # label, proba_<class> per row

The bundle path must be readable from every worker (a shared filesystem, or copy it there).
"""

from __future__ import annotations

import threading
from typing import Any

_MODELS: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()


def _model(bundle: str, backend: str) -> Any:
    key = (str(bundle), backend)
    model = _MODELS.get(key)
    if model is None:
        with _LOCK:
            model = _MODELS.get(key)
            if model is None:
                from .loader import load

                model = _MODELS[key] = load(bundle, backend=backend)
    return model


def predict_partition(df: Any, bundle: str, *, proba: bool = False, backend: str = "auto") -> Any:
    """Score one pandas partition: a frame with ``label`` (or ``prediction``) and, with ``proba``,
    ``proba_<class>`` columns, on the partition's index. Columns other than the model's features
    (ids, targets) are ignored here; join on the index to keep them.

    Raises:
        InputError: a feature column is missing or not numeric, or a value is invalid.
    """
    import pandas as pd

    model = _model(bundle, backend)
    names = model.feature_names
    missing = [n for n in names if n not in df.columns]
    if missing:
        from .errors import InputError

        raise InputError(f"partition: missing feature column(s) {missing[:5]}")
    target = "label" if model.task == "classification" else "prediction"
    cols = [target] + ([f"proba_{c}" for c in model.manifest.classes or []] if proba else [])
    if len(df) == 0:
        return _meta(model, proba).set_index(df.index)
    x = df[names]
    out = pd.DataFrame({target: model.predict(x)}, index=df.index)
    if proba:
        p = model.predict_proba(x)
        for j, c in enumerate(model.manifest.classes or []):
            out[f"proba_{c}"] = p[:, j]
    return out[cols]


def _meta(model: Any, proba: bool) -> Any:
    import numpy as np
    import pandas as pd

    if model.task == "classification":
        classes = np.asarray(model.manifest.classes or [0])
        data: dict[str, Any] = {"label": pd.Series([], dtype=classes.dtype)}
        if proba:
            for c in model.manifest.classes or []:
                data[f"proba_{c}"] = pd.Series([], dtype="float32")
    else:
        data = {"prediction": pd.Series([], dtype="float32")}
    return pd.DataFrame(data)


def dask_predict(ddf: Any, bundle: str, *, proba: bool = False, backend: str = "auto") -> Any:
    """``ddf.map_partitions(predict_partition, ...)`` with the output schema (``meta``) filled in,
    so Dask needs no trial run. The bundle is loaded here once to check it and learn the schema."""
    model = _model(bundle, backend)
    meta = _meta(model, proba)
    if proba:
        dtype = model.predict_proba(model_first_row(model)).dtype
        for c in model.manifest.classes or []:
            meta[f"proba_{c}"] = meta[f"proba_{c}"].astype(dtype)
    if model.task != "classification":
        meta["prediction"] = meta["prediction"].astype(model.predict(model_first_row(model)).dtype)
    else:
        meta["label"] = meta["label"].astype(model.predict(model_first_row(model)).dtype)
    return ddf.map_partitions(predict_partition, bundle, proba=proba, backend=backend, meta=meta)


def model_first_row(model: Any) -> Any:
    """One golden row (or zeros) to learn output dtypes from."""
    import numpy as np

    golden = (model.manifest.golden or {}).get("inputs") or [[0.0] * len(model.feature_names)]
    return np.array([[np.nan if v is None else v for v in golden[0]]], dtype=np.float64)
