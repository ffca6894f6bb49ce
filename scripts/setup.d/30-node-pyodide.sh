# Pyodide / browser tests (tests/test_pyodide.py, tests/test_browser_demo.py): the pinned npm
# packages in tests/js (pyodide, onnxruntime-web, playwright-core; node_modules is git-ignored)
# and Debian's chromium. Idempotent: installs only what is missing, and runs apt-get update only
# when an install fails without it. Sourced by scripts/test.sh (set -euo pipefail).
_er_apt_install() {
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
  fi
}
_er_js_dir="$(pwd)/tests/js"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "setup 30-node-pyodide: installing nodejs and npm"
  _er_apt_install nodejs npm
fi
if [ ! -f "$_er_js_dir/node_modules/pyodide/pyodide.mjs" ] \
   || [ ! -d "$_er_js_dir/node_modules/onnxruntime-web/dist" ] \
   || [ ! -d "$_er_js_dir/node_modules/playwright-core" ]; then
  echo "setup 30-node-pyodide: npm ci in tests/js"
  (cd "$_er_js_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi
if [ ! -x /usr/bin/chromium ]; then
  echo "setup 30-node-pyodide: installing chromium"
  _er_apt_install chromium
fi
unset _er_js_dir
unset -f _er_apt_install
