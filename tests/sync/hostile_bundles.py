"""Real bundles that misbehave at load or smoke test, built from a good converted bundle: its
manifest edited (raises TypeError / RecursionError), or its ONNX graph given a hostile prefix
(a Loop of 1e15 iterations, a tensor past the memory limit).
The artifact's digest and size are fixed up, so only the trial can tell they are bad."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, Callable


def with_manifest(src: Path, dst: Path, edit: Callable[[dict[str, Any]], None], *, version: str,
                  nest: int = 0) -> Path:
    """A copy of bundle ``src`` as ``version`` with ``edit`` applied to its manifest; ``nest``
    adds a field nested that many lists deep (the JSON parser recurses on it)."""
    shutil.copytree(src, dst)
    m = json.loads((dst / "manifest.json").read_text())
    m["version"] = version
    edit(m)
    text = json.dumps(m)
    if nest:
        text = text[:-1] + ', "deep": ' + "[" * nest + "]" * nest + "}"
    (dst / "manifest.json").write_text(text)
    return dst


def with_graph_prefix(src: Path, dst: Path, kind: str, *, version: str, huge_elements: int = 2**28) -> Path:
    """A copy of ONNX bundle ``src`` whose graph input first goes through ``kind``:
    ``loop`` (1e15 iterations of Identity) or
    ``huge`` (adds zero times the sum of a ``huge_elements`` float32 tensor: 1 GiB by default,
    whatever the row count; its shape is computed from the input, so nothing folds it away)."""
    import onnx
    from onnx import TensorProto, helper

    shutil.copytree(src, dst)
    m = json.loads((dst / "manifest.json").read_text())
    m["version"] = version
    art = next(a for a in m["artifacts"] if a["format"] == "onnx")
    model = onnx.load(str(dst / art["path"]))
    graph = model.graph
    x = graph.input[0].name
    inner = f"{x}__inner"
    for node in graph.node:
        node.input[:] = [inner if i == x else i for i in node.input]
    const = helper.make_tensor
    if kind == "loop":
        body = helper.make_graph(
            [helper.make_node("Identity", ["c_in"], ["c_out"]), helper.make_node("Identity", ["v_in"], ["v_out"])],
            "forever",
            [helper.make_tensor_value_info("i", TensorProto.INT64, []),
             helper.make_tensor_value_info("c_in", TensorProto.BOOL, []),
             helper.make_tensor_value_info("v_in", TensorProto.FLOAT, None)],
            [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
             helper.make_tensor_value_info("v_out", TensorProto.FLOAT, None)])
        prefix = [helper.make_node("Constant", [], ["trips"], value=const("t", TensorProto.INT64, [], [10**15])),
                  helper.make_node("Constant", [], ["go"], value=const("g", TensorProto.BOOL, [], [True])),
                  helper.make_node("Loop", ["trips", "go", x], [inner], body=body)]
    elif kind == "huge":
        prefix = [helper.make_node("Constant", [], ["n"], value=const("n", TensorProto.INT64, [1], [huge_elements])),
                  helper.make_node("Shape", [x], ["xs"]),
                  helper.make_node("Slice", ["xs", "zero", "one"], ["rows"]),
                  helper.make_node("Div", ["rows", "rows"], ["unit"]),  # [1], but only known at run time
                  helper.make_node("Concat", ["unit", "n"], ["big_shape"], axis=0),
                  helper.make_node("ConstantOfShape", ["big_shape"], ["big"],
                                   value=const("v", TensorProto.FLOAT, [1], [1.0])),
                  helper.make_node("ReduceSum", ["big"], ["total"], keepdims=0),
                  helper.make_node("Constant", [], ["nought"], value=const("z", TensorProto.FLOAT, [], [0.0])),
                  helper.make_node("Mul", ["total", "nought"], ["zero_f"]),
                  helper.make_node("Add", [x, "zero_f"], [inner])]
        graph.initializer.extend([const("zero", TensorProto.INT64, [1], [0]),
                                  const("one", TensorProto.INT64, [1], [1])])
    else:
        raise ValueError(kind)
    nodes = prefix + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    data = model.SerializeToString()
    (dst / art["path"]).write_bytes(data)
    art["sha256"], art["size"] = hashlib.sha256(data).hexdigest(), len(data)
    (dst / "manifest.json").write_text(json.dumps(m))
    return dst


def publish_deep(bundle: Path, repo: Path, keys: Path) -> str:
    """``converters.publish.publish`` for a manifest nested deeper than Python's default
    recursion limit: the publisher parses it too, so it runs here in a thread with a raised
    limit and a large stack (a careless or compromised publisher could sign such a bundle)."""
    import sys
    import threading

    from converters import publish as pub

    out: dict[str, Any] = {}

    def run() -> None:
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(1_000_000)
        try:
            out["path"] = pub.publish(bundle, repo, keys, verify=False)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            out["error"] = exc
        finally:
            sys.setrecursionlimit(limit)

    old = threading.stack_size(512 * 1024 * 1024)
    try:
        thread = threading.Thread(target=run)
        thread.start()
    finally:
        threading.stack_size(old)
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["path"]
