"""Scoring data bigger than one machine: the same bundle as a Dask ``map_partitions``.

Each Dask worker process loads the bundle once (cached per process, golden rows checked) and
scores its partitions with ``Model.predict`` on the partition's feature columns, so the results
are the ones ``edgert predict`` and ``Model.predict`` give. Dask is an optional extra
(``pip install 'edge-runtime[dask]'``); this module imports neither dask nor pandas at import time.

    import dask.dataframe as dd
    from edge_runtime.scoring.dask_recipe import dask_predict

    ddf = dd.read_parquet("s3://bucket/rows/*.parquet")      # or read_csv, from_pandas, ...
    scored = dask_predict(ddf, "/models/breast-cancer", proba=True, keep=["id"])
    scored.to_parquet("scored/")                               # id, label, proba_<class> per row

The bundle path must be readable from every worker (a shared filesystem, or copy it there).
"""

from __future__ import annotations

from typing import Any, Sequence

from .engine import worker_model
from .writers import output_columns, target_column


def predict_partition(df: Any, bundle: str, *, proba: bool = False, backend: str = "auto",
                      keep: Sequence[str] = ()) -> Any:
    """Score one pandas partition: a frame with the ``keep`` columns passed through (ids), then
    ``label`` (or ``prediction``) and, with ``proba``, ``proba_<class>`` columns, on the
    partition's index. Other columns (targets, extras) are left out.

    Raises:
        InputError: a feature column is missing or not numeric, or a value is invalid.
    """

    model = worker_model(bundle, backend)
    names = model.feature_names
    missing = [n for n in names if n not in df.columns]
    if missing:
        from ..errors import InputError

        raise InputError(f"partition: missing feature column(s) {missing[:5]}")
    target = target_column(model.task)
    cols = output_columns(model.task, model.manifest.classes, proba)
    out = df[list(keep)].copy()
    if len(df) == 0:
        for name, col in _meta(model, proba).items():
            out[name] = col
        return out
    x = df[names]
    out[target] = model.predict(x)
    if proba:
        p = model.predict_proba(x)
        for j, c in enumerate(model.manifest.classes or []):
            out[f"proba_{c}"] = p[:, j]
    return out[list(keep) + cols]


def _meta(model: Any, proba: bool) -> Any:
    """The empty output frame: the target column (a classifier's by its class labels' dtype),
    then float32 probabilities."""
    import numpy as np
    import pandas as pd

    target = target_column(model.task)
    if model.task == "classification":
        classes = np.asarray(model.manifest.classes or [0])
        data: dict[str, Any] = {target: pd.Series([], dtype=classes.dtype)}
        if proba:
            for c in model.manifest.classes or []:
                data[f"proba_{c}"] = pd.Series([], dtype="float32")
    else:
        data = {target: pd.Series([], dtype="float32")}
    return pd.DataFrame(data)


def dask_predict(ddf: Any, bundle: str, *, proba: bool = False, backend: str = "auto",
                 keep: Sequence[str] = ()) -> Any:
    """``ddf.map_partitions(predict_partition, ...)`` with the output schema (``meta``) filled in,
    so Dask needs no trial run. The bundle is loaded here once to check it and learn the schema."""
    import pandas as pd

    model = worker_model(bundle, backend)
    meta = _meta(model, proba)
    if proba:
        dtype = model.predict_proba(model_first_row(model)).dtype
        for c in model.manifest.classes or []:
            meta[f"proba_{c}"] = meta[f"proba_{c}"].astype(dtype)
    target = target_column(model.task)
    meta[target] = meta[target].astype(model.predict(model_first_row(model)).dtype)
    kept = pd.DataFrame({c: pd.Series([], dtype=ddf.dtypes[c]) for c in keep})
    meta = pd.concat([kept, meta], axis=1)
    return ddf.map_partitions(predict_partition, bundle, proba=proba, backend=backend, keep=list(keep),
                              meta=meta)


def model_first_row(model: Any) -> Any:
    """One golden row (or zeros) to learn output dtypes from."""
    import numpy as np

    golden = (model.manifest.golden or {}).get("inputs") or [[0.0] * len(model.feature_names)]
    return np.array([[np.nan if v is None else v for v in golden[0]]], dtype=np.float64)
