"""Every point where a numpy-backend kernel changes its code path with the size of its input.

A kernel that is right below a switch and wrong above it gives a silent wrong answer that small
tests (golden rows, ONNX's node tests) never see: ArgMin once returned the argmax from 32 rows
on. So the switch points live here, in one place, and the differential tests
(``tests/test_numpy_differential.py``) read them and check that their row counts straddle each
one; a new switch added elsewhere fails the test that scans the kernels for literal row bounds.

Two kinds:

- :data:`ROW_SWITCHES`: the path depends on the number of rows alone. Each entry is the first
  row count on the *upper* path, so the tests run ``value - 1`` and ``value``.
- :data:`SCALED_SWITCHES`: the bound is on rows times a model dimension (nodes, points, trees
  × outputs): the row count where the path changes differs per model, and the tests compute it
  from the model they run (``cells // dimension`` and one more).

The remaining constants bound a dimension that is not rows (columns, k, nodes, axis length);
the single-node kernel tests cross them with their input shapes.
"""

from __future__ import annotations

# --- row-count switches -----------------------------------------------------------------------

#: row reductions (ReduceSum/Max/LogSumExp, ArgMax/ArgMin) of a narrow float matrix loop over
#: its columns from this many rows on (``ops/_rows.py``)
COLUMN_LOOP_MIN_ROWS = 32
#: tree ensembles walk one row by the single-row path; from this many rows on, the batch path
TREE_BATCH_MIN_ROWS = 2
#: tree ensembles sum leaf weights with one ``add.accumulate`` up to this many rows, above it
#: one vector add per tree (``ops/ml_tree.py``)
TREE_ACCUMULATE_MAX_ROWS = 64
#: SVM pairwise coupling runs row by row up to this many rows, above it all rows at once
SVM_COUPLING_LOOP_MAX_ROWS = 4

# --- switches on rows x a model dimension -----------------------------------------------------

#: tree ensembles decide every node up front while rows x nodes is at most this
TREE_SMALL_BATCH_CELLS = 1 << 16
#: rows x trees x outputs per chunk when a tree ensemble aggregates by MIN/MAX
TREE_CHUNK_CELLS = 1 << 22
#: float64 cells (rows x scanned points) of k-NN's distance matrix per chunk (2 MiB)
SCAN_DISTANCE_CHUNK_CELLS = 1 << 18
#: keys (rows x axis length) per chunk of TopK's selection by repeated argmin (256 KiB)
TOPK_ARGMIN_CHUNK_CELLS = 1 << 16

# --- switches on other dimensions -------------------------------------------------------------

#: the column loop of ``COLUMN_LOOP_MIN_ROWS`` applies to at most this many columns
COLUMN_LOOP_MAX_COLUMNS = 8
#: a single row walks trees of at most this many nodes by repeated squaring of the step table
TREE_SQUARING_MAX_NODES = 1024
#: TopK selects by repeated argmin for k up to this
TOPK_ARGMIN_MAX_K = 8
#: TopK sorts axes of at most this length outright (no partition first)
TOPK_SORT_MAX_AXIS = 64

#: name -> the first row count on the upper path
ROW_SWITCHES: dict[str, int] = {
    "COLUMN_LOOP_MIN_ROWS": COLUMN_LOOP_MIN_ROWS,
    "TREE_BATCH_MIN_ROWS": TREE_BATCH_MIN_ROWS,
    "TREE_ACCUMULATE_MAX_ROWS": TREE_ACCUMULATE_MAX_ROWS + 1,
    "SVM_COUPLING_LOOP_MAX_ROWS": SVM_COUPLING_LOOP_MAX_ROWS + 1,
}

#: name -> (cells, the model dimension the row count is multiplied by)
SCALED_SWITCHES: dict[str, tuple[int, str]] = {
    "TREE_SMALL_BATCH_CELLS": (TREE_SMALL_BATCH_CELLS, "tree nodes"),
    "TREE_CHUNK_CELLS": (TREE_CHUNK_CELLS, "trees x outputs"),
    "SCAN_DISTANCE_CHUNK_CELLS": (SCAN_DISTANCE_CHUNK_CELLS, "scanned points"),
    "TOPK_ARGMIN_CHUNK_CELLS": (TOPK_ARGMIN_CHUNK_CELLS, "TopK axis length"),
}

#: name -> bound, for dimensions other than rows
OTHER_SWITCHES: dict[str, int] = {
    "COLUMN_LOOP_MAX_COLUMNS": COLUMN_LOOP_MAX_COLUMNS,
    "TREE_SQUARING_MAX_NODES": TREE_SQUARING_MAX_NODES,
    "TOPK_ARGMIN_MAX_K": TOPK_ARGMIN_MAX_K,
    "TOPK_SORT_MAX_AXIS": TOPK_SORT_MAX_AXIS,
}


def rows_where_switching(cells: int, dimension: int) -> tuple[int, int]:
    """The last row count below a scaled switch and the first above it, for a model whose
    dimension is ``dimension``: ``rows * dimension <= cells`` holds up to the first value."""
    last = max(1, cells // max(1, dimension))
    return last, last + 1
