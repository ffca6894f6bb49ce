// The browser demo: Pyodide + our wheel + onnxruntime-web, everything from this origin.
// Flow: load Pyodide → hand onnxruntime-web to Python → unpack the wheel → copy the bundle into
// Pyodide's file system → `await edge_runtime.load_async(...)` (golden rows checked) → a form
// with one field per feature → `await model.predict_async([record])` on submit.
const $ = (id) => document.getElementById(id);
const status = (text, state = "loading") => { $("status").textContent = text; $("status").dataset.state = state; };
const here = (path) => new URL(path, location.href).href;
const timings = {};

async function timed(name, fn) {
  const t0 = performance.now();
  const value = await fn();
  timings[name] = performance.now() - t0;
  return value;
}

async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

async function start() {
  status("Loading Pyodide…");
  const { loadPyodide } = await import("./pyodide/pyodide.mjs");
  const pyodide = await timed("loadPyodide_ms", () => loadPyodide({ indexURL: here("./pyodide/") }));

  status("Loading onnxruntime-web and edge-runtime…");
  const ort = await import("./ort/ort.wasm.bundle.min.mjs");
  ort.env.wasm.wasmPaths = here("./ort/");
  ort.env.wasm.numThreads = 1;  // a plain static page is not cross-origin isolated: no threads
  pyodide.registerJsModule("onnxruntime_web", ort);
  await timed("install_wheel_ms", async () => {
    const site = pyodide.runPython("import sysconfig\nsysconfig.get_paths()['purelib']");
    pyodide.unpackArchive(await fetchBytes("./edge_runtime.whl"), "wheel", { extractDir: site });
  });

  status("Fetching the bundle…");
  const manifestBytes = await fetchBytes("./bundle/manifest.json");
  const manifest = JSON.parse(new TextDecoder().decode(manifestBytes));
  pyodide.FS.mkdirTree("/bundle");
  pyodide.FS.writeFile("/bundle/manifest.json", manifestBytes);
  for (const artifact of manifest.artifacts) {
    if (artifact.format !== "onnx") continue;  // onnxruntime-web runs the ONNX artifacts only
    const parts = artifact.path.split("/");
    if (parts.length > 1) pyodide.FS.mkdirTree("/bundle/" + parts.slice(0, -1).join("/"));
    pyodide.FS.writeFile("/bundle/" + artifact.path, await fetchBytes("./bundle/" + artifact.path));
  }

  status("Creating the inference session and checking the golden rows…");
  await timed("load_async_ms", () => pyodide.runPythonAsync(`
import json, time
import edge_runtime
from edge_runtime.errors import EdgeRuntimeError
from edge_runtime.inputs import text_value
model = await edge_runtime.load_async("/bundle")   # sha256 checked, golden rows compared

async def predict_record(record_json):
    # form fields are text: read them as CSV cells are read (the model refuses text itself)
    record = {k: text_value(v) if isinstance(v, str) else v for k, v in json.loads(record_json).items()}
    try:
        t0 = time.perf_counter()
        label = (await model.predict_async([record]))[0]
        latency_ms = (time.perf_counter() - t0) * 1e3
        proba = (await model.predict_proba_async([record]))[0] if model.task == "classification" else None
    except EdgeRuntimeError as exc:
        return json.dumps({"error": str(exc)})
    return json.dumps({"label": label, "proba": proba, "latency_ms": latency_ms})
`));
  const info = JSON.parse(pyodide.runPython(
    "json.dumps({'info': {k: model.info[k] for k in ('name', 'version', 'task', 'features', 'classes', 'backend')},"
    + " 'golden': (model.manifest.golden or {}).get('inputs', [None])[0]})"));
  return { pyodide, info: info.info, golden: info.golden };
}

function buildForm({ info, golden }) {
  $("model-name").textContent = `${info.name} ${info.version}`;
  $("model-info").textContent = `${info.task}, ${info.features.length} features`
    + (info.classes ? `, classes ${JSON.stringify(info.classes)}` : "") + `, backend ${info.backend}`;
  const fields = $("fields");
  info.features.forEach((name, i) => {
    const label = document.createElement("label");
    label.textContent = name;
    const input = document.createElement("input");
    input.name = name;
    input.inputMode = "decimal";
    input.value = golden && golden[i] !== null ? String(golden[i]) : "";
    input.dataset.golden = input.value;
    label.appendChild(input);
    fields.appendChild(label);
  });
  $("model").hidden = false;
  $("features").hidden = false;
}

async function predict(pyodide) {
  const record = {};
  for (const input of $("fields").querySelectorAll("input")) {
    record[input.name] = input.value.trim() === "" ? null : input.value.trim();  // Python validates
  }
  const t0 = performance.now();
  const predictRecord = pyodide.globals.get("predict_record");
  const out = JSON.parse(await predictRecord(JSON.stringify(record)));
  predictRecord.destroy();
  const roundTrip = performance.now() - t0;
  const result = $("result");
  result.hidden = false;
  if (out.error) {
    $("error").textContent = out.error;
    $("label").textContent = "—";
    $("proba").textContent = "";
    $("latency").textContent = "";
    result.dataset.state = "error";
    return;
  }
  $("error").textContent = "";
  $("label").textContent = String(out.label);
  $("label").dataset.value = JSON.stringify(out.label);
  $("proba").textContent = out.proba ? out.proba.map((p) => p.toFixed(4)).join(" / ") : "n/a";
  $("proba").dataset.value = JSON.stringify(out.proba);
  $("latency").textContent = `${out.latency_ms.toFixed(2)} ms in Python (predict_async), `
    + `${roundTrip.toFixed(2)} ms for the whole click (label + probabilities)`;
  $("latency").dataset.ms = String(out.latency_ms);
  result.dataset.state = "done";
  result.dataset.count = String(Number(result.dataset.count || 0) + 1);
}

try {
  const ready = await start();
  buildForm(ready);
  $("features").addEventListener("submit", (event) => {
    event.preventDefault();
    predict(ready.pyodide).catch((err) => { status(`Prediction failed: ${err}`, "error"); });
  });
  $("reset").addEventListener("click", () => {
    for (const input of $("fields").querySelectorAll("input")) input.value = input.dataset.golden;
  });
  $("timings").textContent = Object.entries(timings).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(" · ");
  $("timings").dataset.value = JSON.stringify(timings);
  status("Ready: fill in the features and press Predict.", "ready");
} catch (err) {
  console.error(err);
  status(`Failed to start: ${err}`, "error");
}
