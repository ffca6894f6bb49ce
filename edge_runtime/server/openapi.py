"""The OpenAPI document a server actually honours: the repository's ``openapi.json`` with the
served model's rows, the row limit the server enforces, ``proba`` only where the model has
probabilities, the address it listens on and, with a token, the bearer scheme. Built per loaded
model, so clients and schema-driven tests (schemathesis) see exactly what ``/predict`` accepts."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Optional

from ..manifest_checks import MAX_CATEGORY_CHARS, MAX_TEXT_CHARS
from .auth import CHALLENGE, OPEN_PATHS
from .limits import feature_bounds

OPENAPI_PATH = Path(__file__).with_name("openapi.json")


def base_document() -> dict[str, Any]:
    """The repository's document, as shipped (a fresh copy each call)."""
    return json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))


def openapi_for_model(doc: dict[str, Any], manifest: Any, max_rows: int, *, dtype: str = "float32",
                      strict: bool = False, server_url: Optional[str] = None,
                      token: bool = False) -> dict[str, Any]:
    """``doc`` (from :func:`base_document`) specialised for ``manifest`` as served: the ``Row``
    schema (feature names, count, which accept null, the bounds the input schema enforces),
    ``maxItems`` = the server's row limit, the ``proba`` parameter limited to 0/false for a
    regressor, ``servers`` = ``server_url`` and, with ``token``, bearer security on every path
    but the open ones (with their 401)."""
    doc = copy.deepcopy(doc)

    def feature_schema(f: Any) -> dict[str, Any]:
        if f.kind != "numeric":  # strings: the input schema's length bound, and the categories
            out: dict[str, Any] = {"type": "string", "maxLength": MAX_CATEGORY_CHARS
                                   if f.kind == "categorical" else MAX_TEXT_CHARS}
            if f.kind == "categorical" and f.unknown == "error":
                out["enum"] = list(f.categories)
            return out
        lo, hi = feature_bounds(f, dtype, strict=strict)
        types = ["number"] + (["boolean"] if lo <= 0 and hi >= 1 else []) + (["null"] if f.allow_nan else [])
        return {"type": types, "minimum": lo, "maximum": hi}

    feats = list(manifest.features)
    doc["info"]["x-model"] = {"name": manifest.name, "version": manifest.version}
    schemas = doc["components"]["schemas"]
    schemas["Row"] = {"oneOf": [
        {"type": "array", "description": "Values in feature order: " + ", ".join(f.name for f in feats),
         "prefixItems": [feature_schema(f) for f in feats], "items": False,
         "minItems": len(feats), "maxItems": len(feats)},
        {"type": "object", "description": "Values keyed by feature name",
         "properties": {f.name: feature_schema(f) for f in feats},
         "required": [f.name for f in feats], "additionalProperties": False},
    ]}
    for form in schemas["PredictRequest"]["oneOf"]:
        (form["properties"]["rows"] if form["type"] == "object" else form)["maxItems"] = max_rows
    predict = doc["paths"]["/predict"]["post"]
    if manifest.task != "classification":
        for param in predict["parameters"]:
            if param["name"] == "proba":
                param["schema"]["enum"] = ["0", "false"]
                param["description"] = "Regression model: no probabilities (only 0 or false is accepted)."
        props = schemas["PredictResponse"]["properties"]
        for key in ("labels", "classes", "probabilities"):
            props.pop(key, None)
        schemas["PredictResponse"]["required"] = ["model", "version", "predictions"]
    else:
        schemas["PredictResponse"]["properties"].pop("predictions", None)
        schemas["PredictResponse"]["required"] = ["model", "version", "labels"]
    return for_server(doc, server_url=server_url, token=token)


def for_server(doc: dict[str, Any], *, server_url: Optional[str], token: bool) -> dict[str, Any]:
    """``doc`` with the server's own parts: ``servers`` = ``server_url`` and, with ``token``,
    bearer security on every path but the open ones (with their 401). Also used while no model
    is loaded, so even that document names the real address."""
    if server_url:
        doc["servers"] = [{"url": server_url}]
    if token:
        _add_bearer(doc)
    return doc


def _add_bearer(doc: dict[str, Any]) -> None:
    doc["components"]["securitySchemes"] = {"bearer": {
        "type": "http", "scheme": "bearer",
        "description": "The token in the server's --token-file"}}
    doc["security"] = [{"bearer": []}]
    unauthorized = {
        "description": "Missing or wrong bearer token",
        "headers": {"WWW-Authenticate": {"schema": {"const": CHALLENGE}}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    for path, ops in doc["paths"].items():
        for op in ops.values():
            if path in OPEN_PATHS:
                op["security"] = []
            else:
                op["responses"]["401"] = copy.deepcopy(unauthorized)
