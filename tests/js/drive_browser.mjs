// Drive the browser demo in headless Chromium (Debian's /usr/bin/chromium via playwright-core):
// wait for the page to load Pyodide and the bundle, submit one bad value (expect an error naming
// the field), then fill a row, press Predict, read the result and save a screenshot.
//
//   node tests/js/drive_browser.mjs <url> <spec.json> <screenshot.png>
//
// spec.json: {"record": {feature: value, ...}, "bad_feature": name}. Prints one JSON line.
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const [url, specFile, screenshot] = process.argv.slice(2);
const spec = JSON.parse(readFileSync(specFile, "utf8"));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const out = { console: [], offsite_requests: [], failed: [] };
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const origin = new URL(url).origin;
  page.on("console", (msg) => { if (msg.type() === "error") out.console.push(msg.text()); });
  page.on("response", (res) => { if (res.status() >= 400) out.failed.push(`${res.status()} ${res.url()}`); });
  page.on("request", (req) => {
    if (!req.url().startsWith(origin) && !req.url().startsWith("data:") && !req.url().startsWith("blob:")) {
      out.offsite_requests.push(req.url());
    }
  });
  const t0 = Date.now();
  await page.goto(url);
  await page.waitForSelector('#status[data-state="ready"], #status[data-state="error"]', { timeout: 90000 });
  out.page_ready_ms = Date.now() - t0;
  out.status = await page.textContent("#status");
  if ((await page.getAttribute("#status", "data-state")) !== "ready") throw new Error(out.status);
  out.timings = JSON.parse(await page.getAttribute("#timings", "data-value"));
  out.model_info = await page.textContent("#model-info");

  const fill = async (record) => {
    for (const [name, value] of Object.entries(record)) await page.fill(`input[name="${name}"]`, String(value));
  };
  let count = 0;
  const submit = async () => {
    count += 1;
    await page.click("#predict");
    await page.waitForSelector(`#result[data-count="${count}"], #result[data-state="error"]`, { timeout: 30000 });
  };
  // 1. a bad value: Python's InputError is shown, naming the field
  await fill({ ...spec.record, [spec.bad_feature]: "abc" });
  await page.click("#predict");
  await page.waitForSelector('#result[data-state="error"]', { timeout: 30000 });
  out.bad_error = await page.textContent("#error");
  // 2. the real row, twice (the second click is a warm call)
  await fill(spec.record);
  await submit();
  await submit();
  out.label = JSON.parse(await page.getAttribute("#label", "data-value"));
  out.proba = JSON.parse(await page.getAttribute("#proba", "data-value"));
  out.latency_ms = Number(await page.getAttribute("#latency", "data-ms"));
  out.latency_text = await page.textContent("#latency");
  await page.screenshot({ path: screenshot, fullPage: true });
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
