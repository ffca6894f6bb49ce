# promtool (Debian `prometheus`) for tests/test_prometheus_rules.py and `promtool check metrics`
# on the collector's /metrics. Idempotent; sourced by scripts/test.sh (set -euo pipefail).
if ! command -v promtool >/dev/null 2>&1; then
  echo "setup 70-prometheus: installing prometheus (for promtool)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; }
fi
