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

Many files rather than one frame: :func:`dask_score_files` runs :func:`score_file` (what
``edgert predict`` runs) once per file in the workers, so each output is byte-identical to the
CLI's, with its reject file.

    import dask
    from edge_runtime.scoring.dask_recipe import dask_score_files

    tasks = dask_score_files(["in/a.csv", "in/b.csv"], "/models/breast-cancer", "scored/",
                             proba=True, id_column="id", on_error="skip")
    summaries = dask.compute(*tasks)                           # scored/a.csv, scored/b.csv, ...

The bundle path must be readable from every worker (a shared filesystem, or copy it there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

from ..errors import ScoringOptionError
from .engine import worker_model
from .file import ScoreRequest, ScoreSummary, score_file
from .readers import detect_format
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


def dask_score_files(paths: Sequence[str], bundle: str, out_dir: str, *, out_fmt: Optional[str] = None,
                     backend: str = "auto", **options: Any) -> list[Any]:
    """One ``dask.delayed`` :func:`score_file` per input file, for many files on a cluster with
    ``edgert predict``'s exact output: ``out_dir/<input stem>.<format>`` per input (format:
    ``out_fmt``, else the input's), reject files, atomic outputs, the same errors. ``options``
    are :class:`ScoreRequest`'s (``proba``, ``id_column``, ``on_error``, ``chunk_rows``, ...).
    Run them with ``dask.compute(*tasks)``, which returns one :class:`ScoreSummary` per file.

    Raises:
        ScoringOptionError: options that cannot work, or two inputs with one output name
            (checked here, before anything runs).
    """
    import dask

    requests: dict[Path, ScoreRequest] = {}
    for path in paths:
        target = Path(out_dir) / f"{Path(path).stem}.{out_fmt or detect_format(str(path), options.get('fmt'))}"
        if target in requests:
            raise ScoringOptionError(f"{path} and {requests[target].input} would both write {target}")
        requests[target] = ScoreRequest(bundle, str(path), str(target), out_fmt=out_fmt, backend=backend,
                                        **options).check()
    return [dask.delayed(_score_one, pure=False)(req) for req in requests.values()]


def _score_one(req: ScoreRequest) -> ScoreSummary:
    """In a Dask worker: the process's cached model (golden rows checked once per process)."""
    return score_file(req, worker_model(req.bundle, req.backend, req.threads))
