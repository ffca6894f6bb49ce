"""Bring your own model: bundle an ONNX or TFLite file exported by another tool (onnxmltools
for LightGBM/XGBoost, a PyTorch export, …). The schema comes from the model's own inputs and
outputs; the golden rows from running it on the sample, so a device can prove its backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from edge_runtime.bundle import Artifact, Feature, json_safe, new_manifest, write_bundle
from edge_runtime.golden import MIN_GOLDEN_ROWS

from .errors import ConversionError
from .golden import select_golden_rows
from .onnx_export import Exported
from .training_stats import reference_statistics, training_bounds


def _roles_onnx(data: bytes) -> tuple[str, str, dict[str, str], dict[str, int], Optional[int]]:
    import onnx

    model = onnx.load_from_string(data)
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise ConversionError(f"the model has {len(inputs)} inputs; wrap needs exactly one 2-D tensor")
    inp = inputs[0]
    elem = inp.type.tensor_type.elem_type
    dtype = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.DOUBLE: "float64"}.get(elem)
    if dtype is None:
        raise ConversionError(f"input '{inp.name}' is {onnx.TensorProto.DataType.Name(elem)}; "
                              "wrap takes float or double tensors")
    dims = inp.type.tensor_type.shape.dim
    width = dims[1].dim_value if len(dims) == 2 and dims[1].dim_value else None
    roles: dict[str, str] = {}
    for out in model.graph.output:
        t = out.type
        if not t.HasField("tensor_type"):
            raise ConversionError(f"output '{out.name}' is not a tensor (a ZipMap?); re-export "
                                  "with zipmap disabled")
        elem = t.tensor_type.elem_type
        rank = len(t.tensor_type.shape.dim)
        last = t.tensor_type.shape.dim[-1].dim_value if rank == 2 else 0
        if elem in (onnx.TensorProto.INT64, onnx.TensorProto.INT32, onnx.TensorProto.STRING):
            roles.setdefault("label", out.name)
        elif rank == 2 and last != 1:
            roles.setdefault("probabilities", out.name)
        else:
            roles.setdefault("prediction", out.name)
    opset = {(imp.domain or ""): int(imp.version) for imp in model.opset_import}
    return inp.name, dtype, roles, opset, width


def wrap(model_path: Any, sample_X: Any, out_dir: Any, *, name: Optional[str] = None,
         version: str = "1.0.0", feature_names: Optional[Sequence[str]] = None,
         classes: Optional[Sequence[Any]] = None, n_golden: int = MIN_GOLDEN_ROWS) -> Path:
    """Bundle an existing ``.onnx`` file; its golden rows are ``n_golden`` sample rows stratified
    by the model's own labels (or prediction quantiles), so every class it predicts is proven.

    Raises:
        ConversionError: naming what is off (file type, input, outputs, sample shape).
    """
    path = Path(model_path)
    data = path.read_bytes()
    if path.suffix.lower() != ".onnx":
        raise ConversionError(f"{path.name}: wrap takes .onnx files here (got {path.suffix or 'no suffix'})")
    input_name, dtype, roles, opset, width = _roles_onnx(data)
    X = np.asarray(sample_X, dtype=np.float64)
    if X.ndim != 2:
        raise ConversionError(f"sample must be 2-D, got shape {X.shape}")
    if width and X.shape[1] != width:
        raise ConversionError(f"the model takes {width} features, the sample has {X.shape[1]}")
    if "prediction" in roles and ("label" in roles or "probabilities" in roles):
        roles.pop("prediction")
    task = "classification" if ("label" in roles or "probabilities" in roles) else "regression"
    exported = Exported(data=data, format="onnx", precision="fp32" if dtype == "float32" else "fp64",
                        input_name=input_name, input_dtype=dtype, outputs=roles, opset=opset,
                        extra={"source": "wrapped", "original_file": path.name})
    from .core import run_exported

    got = run_exported(exported, X, None)
    if task == "classification":
        if classes is None:
            if "probabilities" in got:
                classes = list(range(got["probabilities"].shape[1]))
            else:
                classes = sorted(set(got["label"].tolist()))
        classes = [c.item() if hasattr(c, "item") else c for c in classes]
    labels = None if classes is None else list(classes)
    names = list(feature_names or [f"x{i}" for i in range(X.shape[1])])
    def key(rows: np.ndarray) -> np.ndarray:
        out = run_exported(exported, rows, labels)
        if "label" in out:
            return out["label"]
        return out["probabilities"].argmax(axis=1) if "probabilities" in out else out["prediction"]

    g, selection = select_golden_rows(X, None, key, task, n=n_golden, source="sample")
    gout = run_exported(exported, g, labels)
    golden: dict[str, Any] = {"inputs": json_safe(g.tolist()), "atol": 1e-4, "rtol": 1e-5,
                              "selection": selection}
    for role, arr in gout.items():
        golden[role] = json_safe(np.asarray(arr).reshape(g.shape[0], -1).tolist()
                                 if role == "probabilities" else np.asarray(arr).reshape(-1).tolist())
    features = [Feature(name=n, allow_nan=False, train_min=b[0] if b else None,
                        train_max=b[1] if b else None) for n, b in zip(names, training_bounds(X, dtype))]
    manifest = new_manifest(name=name or path.stem, version=version, task=task, features=features,
                            classes=labels, golden=golden,
                            reference=reference_statistics(X, names),
                            provenance={"framework": "external", "source_file": path.name,
                                        "converter": "edgert wrap"})
    art = Artifact(path="model.onnx", format="onnx", precision=exported.precision, sha256="0" * 64,
                   size=len(data), input_name=input_name, input_dtype=dtype, outputs=roles,
                   opset=opset, parity={"reference": "the wrapped file itself (no training framework)"},
                   extra=exported.extra)
    return write_bundle(out_dir, manifest, [(art, data)])
