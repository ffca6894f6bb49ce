"""The browser demo end to end: examples/browser served on 127.0.0.1 (Pyodide, onnxruntime-web,
our wheel and a bundle, all from one origin), driven in headless Chromium; the page's prediction
for a form-filled row matches the Python runtime, a bad value is reported by field name, nothing
is requested from any other origin, and a screenshot is saved to tests/artifacts/."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from js_harness import (
    ARTIFACTS,
    CHROMIUM,
    JS_DIR,
    NODE_MODULES,
    ROOT,
    SETUP_HINT,
    build_wheel,
    demo_bundle,
    require_node_modules,
)

import edge_runtime

sys.path.insert(0, str(ROOT / "examples" / "browser"))
import serve  # noqa: E402  (examples/browser/serve.py: the demo's own server)


@pytest.fixture(scope="module")
def page_run(tmp_path_factory):
    node = require_node_modules()
    if not CHROMIUM.exists():
        pytest.skip(f"chromium is not installed: {SETUP_HINT}")
    if not (NODE_MODULES / "playwright-core" / "package.json").exists():
        pytest.skip(f"tests/js/node_modules/playwright-core is missing: {SETUP_HINT}")
    tmp = tmp_path_factory.mktemp("browser")
    wheel = build_wheel(tmp / "wheel")
    bundle, rows = demo_bundle(tmp / "bundles", "logistic")
    model = edge_runtime.load(bundle)
    row = rows[3]
    record = dict(zip(model.feature_names, row))
    spec = tmp / "spec.json"
    spec.write_text(json.dumps({"record": {k: repr(v) for k, v in record.items()},
                                "bad_feature": model.feature_names[2]}))
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "browser-demo.png"
    shot.unlink(missing_ok=True)
    server = serve.make_server(bundle, wheel)
    serve.serve_in_thread(server)
    try:
        host, port = server.server_address[:2]
        r = subprocess.run([node, str(JS_DIR / "drive_browser.mjs"), f"http://{host}:{port}/", str(spec),
                            str(shot)], capture_output=True, text=True, timeout=150, cwd=JS_DIR)
    finally:
        server.shutdown()
        server.server_close()
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    print("browser:", json.dumps({k: out[k] for k in ("page_ready_ms", "timings", "latency_text")}))
    return out, model, row, shot


def test_page_prediction_matches_python_runtime(page_run):
    out, model, row, _ = page_run
    assert out["label"] == model.predict([row]).tolist()[0]
    np.testing.assert_allclose(out["proba"], model.predict_proba([row])[0], atol=1e-5)
    assert out["latency_ms"] > 0
    assert "backend pyodide" in out["model_info"]


def test_bad_value_names_the_field(page_run):
    out, model, _, _ = page_run
    assert out["bad_error"] == f"row 1, feature '{model.feature_names[2]}': 'abc' is not a number"


def test_offline_and_clean(page_run):
    out, _, _, shot = page_run
    assert out["offsite_requests"] == []
    assert out["failed"] == []
    assert out["console"] == []
    assert shot.exists() and shot.stat().st_size > 10_000


def test_server_maps_prefixes_and_refuses_to_escape(tmp_path):
    import urllib.error
    import urllib.request

    nm = tmp_path / "nm"
    (nm / "pyodide").mkdir(parents=True)
    (nm / "pyodide" / "pyodide.mjs").write_text("export {}")
    (nm / "onnxruntime-web" / "dist").mkdir(parents=True)
    (nm / "onnxruntime-web" / "dist" / "x.wasm").write_bytes(b"\0asm")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text("{}")
    wheel = tmp_path / "w.whl"
    wheel.write_bytes(b"PK")
    (tmp_path / "secret.txt").write_text("no")
    server = serve.make_server(bundle, wheel, node_modules=nm)
    serve.serve_in_thread(server)
    host, port = server.server_address[:2]
    base = f"http://{host}:{port}"

    def get(path):
        try:
            with urllib.request.urlopen(base + path, timeout=10) as r:
                return r.status, r.headers.get_content_type()
        except urllib.error.HTTPError as e:
            return e.code, None

    try:
        assert get("/") == (200, "text/html")
        assert get("/pyodide/pyodide.mjs") == (200, "text/javascript")
        assert get("/ort/x.wasm") == (200, "application/wasm")
        assert get("/bundle/manifest.json") == (200, "application/json")
        assert get("/edge_runtime.whl")[0] == 200
        for escape in ("/bundle/../secret.txt", "/bundle/%2e%2e/secret.txt", "/pyodide/../../secret.txt",
                       "/bundle/", "/..%2fsecret.txt"):
            assert get(escape)[0] == 404, escape
    finally:
        server.shutdown()
        server.server_close()
