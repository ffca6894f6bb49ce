# promtool (Debian `prometheus`) checks the collector's /metrics exposition in the tests
# (`promtool check metrics`). Installs only when missing; the Prometheus server it brings
# is not needed and is stopped.
if ! command -v promtool >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus
  $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
