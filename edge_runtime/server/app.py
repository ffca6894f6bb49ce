"""The WSGI application behind ``edgert serve``.

Plain WSGI and the standard library, served by waitress (pure Python, no C extension, no
dependencies, actively maintained by the Pylons project, a thread pool that suits a device with
a few cores; onnxruntime releases the GIL while it runs, so the threads predict in parallel).
An ASGI stack (starlette + uvicorn + anyio) would add several packages for nothing we need: the
model call is synchronous and short.

Every failure a client can cause is a 4xx with ``{"error": "<message naming the problem>"}``;
an unexpected exception is a 500 for that request only and the server keeps serving.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Union
from urllib.parse import parse_qs

from ..errors import EdgeRuntimeError, InputError
from .auth import CHALLENGE, OPEN_PATHS, authorized
from .limits import row_limit
from .metrics import Metrics
from .openapi import OPENAPI_PATH, base_document, for_server, openapi_for_model
from .slot import ModelSlot

if TYPE_CHECKING:
    from ..hotswap import HotSwapModel

log = logging.getLogger("edge_runtime.server")

DEFAULT_MAX_BODY = 1024 * 1024
#: None: the rows that always fit in the body limit for the served model (server/limits.py)
DEFAULT_MAX_ROWS: Optional[int] = None

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
            411: "Length Required", 413: "Content Too Large", 415: "Unsupported Media Type",
            422: "Unprocessable Content", 500: "Internal Server Error", 503: "Service Unavailable"}

StartResponse = Callable[..., Any]
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HTTPError(Exception):
    """The app's own control flow: an HTTP status, message and headers for the response.
    Raised and caught inside :class:`PredictionApp` only (it never reaches a caller), so it is
    not an :class:`~edge_runtime.errors.EdgeRuntimeError` and not exported."""

    def __init__(self, code: int, message: str, headers: Optional[list[tuple[str, str]]] = None):
        super().__init__(message)
        self.code, self.message, self.headers = code, message, headers or []


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _finite(value: Any) -> Any:
    """JSON has no NaN/Infinity: map them to null so every response is valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


class PredictionApp:
    """Routes: POST /predict, GET /healthz, /readyz, /metrics, /model, /openapi.json."""

    def __init__(self, slot: Union[ModelSlot, HotSwapModel], *, metrics: Optional[Metrics] = None,
                 max_body: int = DEFAULT_MAX_BODY, max_rows: Optional[int] = DEFAULT_MAX_ROWS,
                 strict: bool = False, token: Optional[bytes] = None, server_url: Optional[str] = None):
        self.slot = slot
        self.strict = strict  # also refuse values outside the training min/max
        self.metrics = metrics or Metrics()
        self.max_body = max_body
        self.max_rows = max_rows  # None: derived per served model from max_body (limits.py)
        self.token = token  # None: no authentication (bind to 127.0.0.1 or a 0600 Unix socket)
        self.server_url = server_url  # the document's `servers` entry: the bound address
        self._openapi_cache: Optional[tuple[Any, bytes]] = None
        self._limit_cache: Optional[tuple[Any, int]] = None
        self.routes: dict[str, dict[str, Callable[[dict[str, Any]], tuple[int, str, bytes]]]] = {
            "/predict": {"POST": self._predict},
            "/healthz": {"GET": self._healthz},
            "/readyz": {"GET": self._readyz},
            "/metrics": {"GET": self._metrics},
            "/model": {"GET": self._model},
            "/openapi.json": {"GET": self._openapi_doc},
        }

    # --- WSGI -------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET").upper()
        extra: list[tuple[str, str]] = []
        try:
            if path not in OPEN_PATHS and not authorized(self.token, environ.get("HTTP_AUTHORIZATION")):
                raise HTTPError(401, "missing or wrong bearer token: send 'Authorization: Bearer <token>' "
                                     "(edgert serve --token-file)", [("WWW-Authenticate", CHALLENGE)])
            methods = self.routes.get(path)
            if methods is None:
                raise HTTPError(404, f"no such path {path!r}; try one of {sorted(self.routes)}")
            handler = methods.get("GET" if method == "HEAD" else method)
            if handler is None:
                raise HTTPError(405, f"{method} is not allowed on {path}; use {', '.join(methods)}",
                                [("Allow", ", ".join(methods))])
            code, ctype, body = handler(environ)
        except HTTPError as exc:
            code, ctype, body = exc.code, "application/json", self._error_body(exc.message)
            extra = exc.headers
        except Exception:  # noqa: BLE001 - one bad request must never stop the server
            log.exception("%s %s", method, path)
            code, ctype, body = 500, "application/json", self._error_body("internal error (see server log)")
        # label values come from a fixed set, so clients cannot grow the metrics without bound
        self.metrics.http(method if method in _METHODS else "other",
                          path if path in self.routes else "other", code)
        headers = [("Content-Type", ctype), ("Content-Length", str(len(body))),
                   ("Cache-Control", "no-store")] + extra
        start_response(f"{code} {_REASONS.get(code, '')}".strip(), headers)
        return [b""] if method == "HEAD" else [body]

    @staticmethod
    def _error_body(message: str) -> bytes:
        return json.dumps({"error": message}).encode()

    @staticmethod
    def _json(code: int, obj: Any) -> tuple[int, str, bytes]:
        return code, "application/json", json.dumps(obj, default=_json_default,
                                                    allow_nan=False).encode()

    # --- /predict ---------------------------------------------------------------------------
    def _predict(self, environ: dict[str, Any]) -> tuple[int, str, bytes]:
        with self.slot.lease() as loaded:  # this request uses this model to the end
            if loaded is None:
                raise HTTPError(503, "no model is loaded")
            return self._predict_with(loaded, environ)

    def _predict_with(self, loaded: Any, environ: dict[str, Any]) -> tuple[int, str, bytes]:
        t0 = time.perf_counter()
        code, kind, rows = 200, None, 0
        try:
            proba = self._proba_param(environ.get("QUERY_STRING", ""))
            model = loaded.model
            rows_in = self._parse_rows(self._read_body(environ), self.row_limit(loaded))
            rows = len(rows_in)
            if proba and model.task != "classification":
                raise HTTPError(400, f"proba=1: model '{model.manifest.name}' is a {model.task} model "
                                     "and gives no probabilities")
            kw = {"strict": True} if self.strict else {}
            # through the slot (a store's version on probation is judged on these calls); the
            # model's input schema judges the values: the API's message, word for word
            try:
                values = self.slot.run(loaded, "predict", rows_in, **kw)
                probs = self.slot.run(loaded, "predict_proba", rows_in, **kw) if proba else None
            except InputError as exc:
                raise HTTPError(422, str(exc)) from None
            key = "labels" if model.task == "classification" else "predictions"
            out: dict[str, Any] = {"model": model.manifest.name, "version": loaded.version,
                                   key: _finite(values.tolist())}
            if probs is not None:
                out["classes"] = model.manifest.classes
                out["probabilities"] = _finite(probs.tolist())
            return self._json(200, out)
        except HTTPError as exc:
            code, kind = exc.code, "input"
            raise
        except Exception:
            code, kind = 500, "internal"
            raise
        finally:
            self.metrics.predict(loaded.version, code, time.perf_counter() - t0,
                                 rows if code == 200 else 0, kind)

    @staticmethod
    def _proba_param(query: str) -> bool:
        try:
            params = parse_qs(query, keep_blank_values=True, strict_parsing=False)
        except ValueError as exc:
            raise HTTPError(400, f"query string: {exc}") from None
        unknown = sorted(set(params) - {"proba"})
        if unknown:
            raise HTTPError(400, f"unknown query parameter(s) {unknown}; only 'proba' is accepted")
        values = params.get("proba", ["0"])
        if len(values) != 1 or values[0] not in ("0", "1", "true", "false"):
            raise HTTPError(400, f"query parameter 'proba' must be 0, 1, true or false, got {values!r}")
        return values[0] in ("1", "true")

    def _read_body(self, environ: dict[str, Any]) -> bytes:
        length_text = environ.get("CONTENT_LENGTH") or ""
        stream = environ.get("wsgi.input")
        if length_text:
            try:
                length = int(length_text)
            except ValueError:
                raise HTTPError(400, f"Content-Length {length_text!r} is not a number") from None
            if length > self.max_body:
                raise HTTPError(413, f"request body is {length} bytes; the limit is {self.max_body} "
                                     "bytes (edgert serve --max-body)")
            body = stream.read(length) if stream is not None and length > 0 else b""
        else:  # chunked: read at most one byte past the limit
            body = stream.read(self.max_body + 1) if stream is not None else b""
            if len(body) > self.max_body:
                raise HTTPError(413, f"request body is larger than the limit of {self.max_body} bytes "
                                     "(edgert serve --max-body)")
        if not body:
            raise HTTPError(400, 'empty request body; send JSON such as {"rows": [[...feature values...]]}')
        ctype = (environ.get("CONTENT_TYPE") or "application/json").split(";")[0].strip().lower()
        if ctype not in ("application/json", "text/json", "") and not ctype.endswith("+json"):
            raise HTTPError(415, f"Content-Type {ctype!r} is not JSON; send application/json")
        return body

    def row_limit(self, loaded: Any) -> int:
        """The most rows one request may carry to ``loaded``: ``max_rows``, or the rows that
        always fit in ``max_body`` for its features."""
        cached = self._limit_cache
        if cached is None or cached[0] is not loaded:
            model = loaded.model
            cached = self._limit_cache = (loaded, row_limit(
                self.max_rows, self.max_body, model.manifest.features, model.artifact.input_dtype,
                strict=self.strict))
        return cached[1]

    def _parse_rows(self, body: bytes, max_rows: int) -> list[Any]:
        """The request's rows: arrays in feature order or objects keyed by feature name. Only
        the request's shape is checked here; the values are the model's input schema's job."""
        try:
            doc = json.loads(body)
        except UnicodeDecodeError:
            raise HTTPError(400, "request body is not UTF-8 text") from None
        except ValueError as exc:
            raise HTTPError(400, f"request body is not valid JSON: {exc}") from None
        except RecursionError:
            raise HTTPError(400, "request body is not valid JSON: nested too deeply") from None
        if isinstance(doc, dict):
            unknown = sorted(set(doc) - {"rows"})
            if unknown:
                raise HTTPError(400, f"unknown field(s) {unknown[:5]} in the request; send "
                                     '{"rows": [...]}, each row an array of feature values or an '
                                     "object keyed by feature name")
            if "rows" not in doc:
                raise HTTPError(400, "missing field 'rows' in the request")
            rows = doc["rows"]
        else:
            rows = doc
        if not isinstance(rows, list):
            raise HTTPError(400, f"'rows' must be an array of rows, got {type(rows).__name__}")
        if not rows:
            raise HTTPError(400, "'rows' is empty; send at least one row")
        # a schema violation (the document's maxItems), like every other one: 422; 413 is kept
        # for the body limit, which no schema can express
        if len(rows) > max_rows:
            raise HTTPError(422, f"{len(rows)} rows in one request; the limit is {max_rows} "
                                 "(edgert serve --max-rows; by default what --max-body always holds)")
        for i, r in enumerate(rows):
            if not isinstance(r, (list, dict)):
                raise HTTPError(400, f"row {i + 1} is a {type(r).__name__}; each row must be an array of "
                                     "feature values or an object keyed by feature name")
        return rows

    # --- the rest ---------------------------------------------------------------------------
    def _healthz(self, environ: dict[str, Any]) -> tuple[int, str, bytes]:
        return self._json(200, {"status": "ok"})

    def _readyz(self, environ: dict[str, Any]) -> tuple[int, str, bytes]:
        loaded = self.slot.current
        if loaded is None:
            return self._json(503, {"ready": False, "reason": "no model loaded"})
        return self._json(200, {"ready": True, "model": loaded.model.manifest.name,
                                "version": loaded.version, "backend": loaded.model.backend.name})

    def _metrics(self, environ: dict[str, Any]) -> tuple[int, str, bytes]:
        loaded = self.slot.current
        info = None
        if loaded is not None:
            info = {"name": loaded.model.manifest.name, "version": loaded.version,
                    "backend": loaded.model.backend.name}
        return 200, "text/plain; version=0.0.4; charset=utf-8", self.metrics.render(info).encode()

    def _model(self, environ: dict[str, Any]) -> tuple[int, str, bytes]:
        loaded = self.slot.current
        if loaded is None:
            raise HTTPError(503, "no model is loaded")
        m = loaded.model
        info = m.info
        summary = {
            "name": info["name"], "version": info["version"], "task": info["task"],
            "classes": info["classes"], "backend": info["backend"], "artifact": info["artifact"],
            "features": [f.to_json() for f in m.manifest.features],  # with train_min/max if known
            "source": loaded.source, "loaded_at": loaded.loaded_at,
            "store": str(self.slot.store_root) if self.slot.store_root else None,
            "swaps": self.slot.swaps, "last_swap_error": self.slot.last_swap_error,
        }
        return self._json(200, summary)

    def _openapi_doc(self, environ: dict[str, Any]) -> tuple[int, str, bytes]:
        loaded = self.slot.current
        if loaded is None:  # the generic rows; still the real address and security
            doc = for_server(base_document(), server_url=self.server_url, token=self.token is not None)
            return 200, "application/json", json.dumps(doc).encode()
        cached = self._openapi_cache
        if cached is None or cached[0] is not loaded:
            model = loaded.model
            doc = openapi_for_model(base_document(), model.manifest, self.row_limit(loaded),
                                    dtype=model.artifact.input_dtype, strict=self.strict,
                                    server_url=self.server_url, token=self.token is not None)
            cached = self._openapi_cache = (loaded, json.dumps(doc).encode())
        return 200, "application/json", cached[1]


def make_app(slot: Union[ModelSlot, HotSwapModel], **kwargs: Any) -> PredictionApp:
    """The WSGI callable for ``slot`` (keyword arguments: ``metrics``, ``max_body``, ``max_rows``,
    ``strict``, ``token``, ``server_url``)."""
    return PredictionApp(slot, **kwargs)


def single_model_slot(model: Any) -> ModelSlot:
    """A slot that serves one already-loaded, golden-checked model."""
    from .slot import LoadedModel

    return ModelSlot(LoadedModel(model, model.manifest.version, str(model.bundle.origin)))


__all__ = ["DEFAULT_MAX_BODY", "DEFAULT_MAX_ROWS", "EdgeRuntimeError", "OPENAPI_PATH",
           "PredictionApp", "make_app", "single_model_slot"]
