// Run edge-runtime inside Pyodide under Node, offline: install our wheel, load a bundle through
// onnxruntime-web and print predictions and timings as one JSON line.
//
//   node tests/js/run_pyodide.mjs <spec.json>
//
// spec.json: {"wheel": path, "cases": [{"bundle": dir, "rows": [[...], ...], "bad_rows": [...]}]}
// Used by tests/test_pyodide.py; handy by hand too (docs/pyodide.md).
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { loadPyodide } from "pyodide";
import * as ort from "onnxruntime-web";

const specFile = process.argv[2];
if (!specFile) {
  console.error("usage: node run_pyodide.mjs <spec.json>");
  process.exit(2);
}
const spec = JSON.parse(readFileSync(specFile, "utf8"));
const wheel = spec.wheel;
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
const cases = spec.cases.map((c, i) => {
  copyTree(c.bundle, `/bundles/${i}`);
  return { bundle: `/bundles/${i}`, rows: c.rows, bad_rows: c.bad_rows ?? null };
});
pyodide.globals.set("cases_json", JSON.stringify(cases));

const out = await pyodide.runPythonAsync(`
import json, sys, time
t0 = time.perf_counter()
import edge_runtime
import_ms = (time.perf_counter() - t0) * 1e3
results = []
for case in json.loads(cases_json):
    t0 = time.perf_counter()
    model = await edge_runtime.load_async(case["bundle"])   # session + golden rows, awaited
    load_ms = (time.perf_counter() - t0) * 1e3
    rows = case["rows"]
    t0 = time.perf_counter()
    labels = await model.predict_async(rows)                 # one bridge call for all rows
    batch_ms = (time.perf_counter() - t0) * 1e3
    proba = await model.predict_proba_async(rows) if model.task == "classification" else None
    one = rows[:1]
    for _ in range(5):
        await model.predict_async(one)
    n = 50
    t0 = time.perf_counter()
    for _ in range(n):
        await model.predict_async(one)
    row_ms = (time.perf_counter() - t0) * 1e3 / n
    errors = {}
    try:
        model.predict(one)
    except Exception as exc:
        errors["sync"] = f"{type(exc).__name__}: {exc}"
    if case["bad_rows"] is not None:
        try:
            await model.predict_async(case["bad_rows"])
        except Exception as exc:
            errors["bad_rows"] = f"{type(exc).__name__}: {exc}"
    results.append({"backend": model.backend.name, "model_class": type(model).__name__,
                    "labels": labels, "proba": proba, "errors": errors,
                    "timings": {"load_async_ms": load_ms, "batch_ms": batch_ms,
                                "batch_rows": len(rows), "single_row_ms": row_ms}})
json.dumps({
    "python": sys.version.split()[0], "platform": sys.platform, "import_ms": import_ms,
    "loaded": sorted(m for m in ("numpy", "onnxruntime", "click") if m in sys.modules),
    "cases": results,
})
`);
const result = JSON.parse(out);
result.timings = timings;
result.installed_with = installedWith;
console.log(JSON.stringify(result));
