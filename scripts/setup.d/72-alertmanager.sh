# Alertmanager (Debian `prometheus-alertmanager`) for tests/telemetry/test_collector_alerts.py:
# the test starts its own on 127.0.0.1 (temporary config and storage) and stops it.
# Idempotent; sourced by scripts/test.sh (set -euo pipefail).
if ! command -v prometheus-alertmanager >/dev/null 2>&1; then
  echo "setup 72-alertmanager: installing prometheus-alertmanager"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus-alertmanager \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus-alertmanager; }
  # the Debian package may start a system Alertmanager on :9093; the tests do not need it
  systemctl disable --now prometheus-alertmanager >/dev/null 2>&1 || true
fi
