"""The issue-16 zoo: at least 35 families across every task, each converted, run on every
backend that can run it and compared with the framework; docs/zoo.md lists them all."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from zoo import measure, zoo_cases

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import zoo_table  # noqa: E402

pytest.importorskip("lightgbm")
pytest.importorskip("xgboost")
pytest.importorskip("catboost")

#: every family the issue names must be in the zoo (by id prefix)
NAMED = ("polynomial-ridge", "pca-logistic", "quantile-", "calibrated-", "stacking", "bagging",
         "adaboost", "voting", "svr", "linearsvr", "robust-", "maxabs-", "normalizer-", "lightgbm",
         "xgboost", "catboost", "isolationforest", "kmeans", "minibatchkmeans", "passthrough-")


def test_zoo_covers_the_families_and_tasks():
    cases = zoo_cases()
    ids = [c.id for c in cases]
    assert len(ids) >= 35 and len(set(ids)) == len(ids)
    assert {c.task for c in cases} == {"classification", "regression", "anomaly", "clustering"}
    assert {c.data for c in cases} >= {"binary", "multiclass", "regression"}
    for prefix in NAMED:
        assert any(i.startswith(prefix) for i in ids), prefix


def test_docs_zoo_lists_every_entry(repo_root):
    listed = zoo_table.listed_ids((repo_root / "docs" / "zoo.md").read_text(encoding="utf-8"))
    assert listed == [c.id for c in zoo_cases()], "regenerate: python benchmarks/zoo_table.py"


@pytest.mark.slow
def test_every_zoo_entry_matches_on_every_backend(tmp_path):
    """One test over the whole zoo (~80 s on 2 shared cores): all failures are listed at once."""
    failed, ran = [], {}
    for case in zoo_cases():
        row = measure(case, tmp_path)
        for backend, fig in row["backends"].items():
            if "skipped" in fig:
                continue
            ran[backend] = ran.get(backend, 0) + 1
            if not fig["passed"]:
                failed.append(f"{row['id']} on {backend}: {fig}")
        assert row["backends"]["onnxruntime"].get("passed"), row  # the default engine runs them all
    assert not failed, "\n".join(failed)
    assert ran["numpy"] >= 30 and ran["litert"] >= 5
