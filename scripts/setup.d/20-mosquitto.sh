# Mosquitto (MQTT broker) for the telemetry tests: they start their own broker on 127.0.0.1
# with an ephemeral port and a temporary config, and stop it. Installs only when missing.
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends mosquitto
  # the Debian package starts a system broker on port 1883; the tests do not need it
  $SUDO systemctl disable --now mosquitto >/dev/null 2>&1 || true
fi
