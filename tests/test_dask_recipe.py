"""The documented Dask recipe (docs/batch-scoring.md): the same bundle as ``map_partitions`` over a
dataframe, scored in worker processes, gives the labels ``Model.predict`` gives row by row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from serve_support import breast_cancer_rows, serve_bench, two_bundles, write_csv  # noqa: F401

dd = pytest.importorskip("dask.dataframe")
pd = pytest.importorskip("pandas")

from edge_runtime import load  # noqa: E402
from edge_runtime.scoring.dask_recipe import dask_predict  # noqa: E402


def test_dask_map_partitions_matches_the_model(tmp_path: Path, two_bundles: tuple[Path, Path]) -> None:  # noqa: F811
    names, X = breast_cancer_rows(2000, seed=3)
    src = write_csv(tmp_path / "rows.csv", names, X)
    bundle = str(two_bundles[0])
    ddf = dd.read_csv(src, blocksize=60_000)  # several partitions, as from a bigger-than-memory file
    assert ddf.npartitions > 2
    scored = dask_predict(ddf, bundle, proba=True)
    assert list(scored.columns) == ["label", "proba_0", "proba_1"]
    out = scored.compute(scheduler="processes", num_workers=2)
    model = load(bundle)
    assert out["label"].tolist() == [model.predict(X[i:i + 1])[0] for i in range(len(X))]
    single = np.vstack([model.predict_proba(X[i:i + 1]) for i in range(len(X))])
    assert np.max(np.abs(out[["proba_0", "proba_1"]].to_numpy() - single)) <= 4 * np.finfo(np.float32).eps
    # the id column passes through with its rows
    with_ids = dask_predict(ddf, bundle, keep=["id"]).compute(scheduler="sync")
    assert list(with_ids.columns) == ["id", "label"]
    assert with_ids["id"].tolist() == [f"r{i}" for i in range(len(X))]
    assert with_ids["label"].tolist() == out["label"].tolist()


def test_partition_missing_a_feature_names_it(two_bundles: tuple[Path, Path]) -> None:  # noqa: F811
    from edge_runtime.errors import InputError
    from edge_runtime.scoring.dask_recipe import predict_partition

    with pytest.raises(InputError, match="missing feature column"):
        predict_partition(pd.DataFrame({"x": [1.0]}), str(two_bundles[0]))
