// Latency of edge-runtime inside Pyodide (Node, offline) against onnxruntime-web called straight
// from JS on the same model, in one run. Driven by benchmarks/pyodide_bridge.py:
//   node tests/js/bench_pyodide.mjs <wheel> <bundle-dir> <rows.json> <rounds>
import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { loadPyodide } from "pyodide";
import * as ort from "onnxruntime-web";

const [wheel, bundleDir, rowsFile, roundsArg] = process.argv.slice(2);
const rounds = Number(roundsArg || 200);
const here = dirname(fileURLToPath(import.meta.url));
const out = {};
let t0 = performance.now();
const pyodide = await loadPyodide({ indexURL: join(here, "node_modules", "pyodide") });
out.load_pyodide_ms = performance.now() - t0;
ort.env.wasm.numThreads = 1;
pyodide.registerJsModule("onnxruntime_web", ort);
const site = pyodide.runPython("import sysconfig\nsysconfig.get_paths()['purelib']");
pyodide.unpackArchive(new Uint8Array(readFileSync(wheel)), "wheel", { extractDir: site });
const manifest = JSON.parse(readFileSync(join(bundleDir, "manifest.json"), "utf8"));
const art = manifest.artifacts.find((a) => a.format === "onnx");
pyodide.FS.mkdirTree("/bundle");
pyodide.FS.writeFile("/bundle/manifest.json", new Uint8Array(readFileSync(join(bundleDir, "manifest.json"))));
const modelBytes = new Uint8Array(readFileSync(join(bundleDir, art.path)));
pyodide.FS.writeFile("/bundle/" + art.path, modelBytes);
const rows = JSON.parse(readFileSync(rowsFile, "utf8"));

// JS straight: the floor any bridge sits on.
t0 = performance.now();
const session = await ort.InferenceSession.create(modelBytes, { executionProviders: ["wasm"] });
out.js_session_create_ms = performance.now() - t0;
const input = session.inputNames[0];
const d = rows[0].length;
const jsRun = async (batch) => {
  const t = new ort.Tensor("float32", Float32Array.from(batch.flat()), [batch.length, d]);
  return session.run({ [input]: t });
};
const timeJs = async (batch, n) => {
  for (let i = 0; i < 10; i++) await jsRun(batch);
  const s = performance.now();
  for (let i = 0; i < n; i++) await jsRun(batch);
  return (performance.now() - s) / n;
};
out.js_one_row_ms = await timeJs(rows.slice(0, 1), rounds);
out.js_batch_ms = await timeJs(rows, Math.max(10, rounds / 10));

pyodide.globals.set("rows_json", JSON.stringify(rows));
pyodide.globals.set("rounds", rounds);
const py = JSON.parse(await pyodide.runPythonAsync(`
import json, time
import edge_runtime
rows = json.loads(rows_json)
t0 = time.perf_counter()
model = await edge_runtime.load_async("/bundle", verify=False)
create_ms = (time.perf_counter() - t0) * 1e3
t0 = time.perf_counter()
await model.check_golden_async()
golden_ms = (time.perf_counter() - t0) * 1e3
t0 = time.perf_counter()
await model.predict_proba_async(rows[:1])
first_ms = (time.perf_counter() - t0) * 1e3

async def per_call(batch, n):
    for _ in range(10):
        await model.predict_proba_async(batch)
    t0 = time.perf_counter()
    for _ in range(n):
        await model.predict_proba_async(batch)
    return (time.perf_counter() - t0) * 1e3 / n

one = await per_call(rows[:1], rounds)
batch = await per_call(rows, max(10, rounds // 10))
t0 = time.perf_counter()
for _ in range(rounds):
    model._adapt(rows[:1])
adapt_ms = (time.perf_counter() - t0) * 1e3 / rounds
json.dumps({"py_session_create_ms": create_ms, "py_golden_ms": golden_ms, "py_first_call_ms": first_ms,
            "py_one_row_ms": one, "py_batch_ms": batch, "py_validate_one_row_ms": adapt_ms})
`));
Object.assign(out, py);
out.batch_rows = rows.length;
console.log(JSON.stringify(out));
