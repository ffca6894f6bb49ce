// Run edge-runtime inside Pyodide under Node, offline: install our wheel, load a bundle through
// onnxruntime-web and print predictions and timings as one JSON line.
//
//   node tests/js/run_pyodide.mjs <wheel> <bundle-dir> <rows.json>
//
// rows.json: a list of rows (lists of numbers). Used by tests/test_pyodide.py; handy by hand too.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { loadPyodide } from "pyodide";
import * as ort from "onnxruntime-web";

const [wheel, bundleDir, rowsFile] = process.argv.slice(2);
if (!rowsFile) {
  console.error("usage: node run_pyodide.mjs <wheel> <bundle-dir> <rows.json>");
  process.exit(2);
}
const here = dirname(fileURLToPath(import.meta.url));
const timings = {};
let t0 = performance.now();
const pyodide = await loadPyodide({ indexURL: join(here, "node_modules", "pyodide") });
timings.load_pyodide_ms = performance.now() - t0;

ort.env.wasm.numThreads = 1;  // no worker threads: the same as a page without cross-origin isolation
pyodide.registerJsModule("onnxruntime_web", ort);

// Install the wheel: micropip when Pyodide has it, else unpack it into site-packages.
t0 = performance.now();
const hasMicropip = pyodide.runPython(
  "import importlib.util\nimportlib.util.find_spec('micropip') is not None");
const wheelBytes = new Uint8Array(readFileSync(wheel));
let installedWith;
if (hasMicropip) {
  const name = "/tmp/" + wheel.split("/").pop();
  pyodide.FS.writeFile(name, wheelBytes);
  pyodide.globals.set("wheel_url", "emfs:" + name);
  await pyodide.runPythonAsync("import micropip\nawait micropip.install(wheel_url, deps=False)");
  installedWith = "micropip";
} else {
  const site = pyodide.runPython("import sysconfig\nsysconfig.get_paths()['purelib']");
  pyodide.unpackArchive(wheelBytes, "wheel", { extractDir: site });
  installedWith = "unpackArchive";
}
timings.install_ms = performance.now() - t0;

// Copy the bundle into Pyodide's file system (a browser page fetches the same files).
function copyTree(src, dst) {
  pyodide.FS.mkdirTree(dst);
  for (const entry of readdirSync(src)) {
    const s = join(src, entry), d = dst + "/" + entry;
    if (statSync(s).isDirectory()) copyTree(s, d);
    else pyodide.FS.writeFile(d, new Uint8Array(readFileSync(s)));
  }
}
copyTree(bundleDir, "/bundle");
pyodide.globals.set("rows_json", readFileSync(rowsFile, "utf8"));

const out = await pyodide.runPythonAsync(`
import json, sys, time
t0 = time.perf_counter()
import edge_runtime
import_ms = (time.perf_counter() - t0) * 1e3
t0 = time.perf_counter()
model = await edge_runtime.load_async("/bundle")   # creates the session, checks golden rows
load_ms = (time.perf_counter() - t0) * 1e3
rows = json.loads(rows_json)
t0 = time.perf_counter()
labels = await model.predict_async(rows)            # one bridge call for all rows
batch_ms = (time.perf_counter() - t0) * 1e3
proba = await model.predict_proba_async(rows)
one = rows[:1]
for _ in range(5):
    await model.predict_proba_async(one)
n = 50
t0 = time.perf_counter()
for _ in range(n):
    await model.predict_proba_async(one)
row_ms = (time.perf_counter() - t0) * 1e3 / n
sync_error = None
try:
    model.predict(one)
except Exception as exc:
    sync_error = f"{type(exc).__name__}: {exc}"
json.dumps({
    "python": sys.version.split()[0], "platform": sys.platform,
    "numpy_loaded": "numpy" in sys.modules, "onnxruntime_loaded": "onnxruntime" in sys.modules,
    "click_loaded": "click" in sys.modules,
    "backend": model.backend.name, "labels": labels, "proba": proba,
    "sync_error": sync_error,
    "timings": {"import_ms": import_ms, "load_async_ms": load_ms, "batch_ms": batch_ms,
                "batch_rows": len(rows), "single_row_ms": row_ms},
})
`);
const result = JSON.parse(out);
Object.assign(result.timings, timings);
result.installed_with = installedWith;
console.log(JSON.stringify(result));
