# systemd-analyze (Debian `systemd`) for tests/test_systemd.py: `systemd-analyze verify` checks
# the example units in examples/systemd/ without a running systemd. Installs only when missing;
# installing the package does not start anything in a container.
if ! command -v systemd-analyze >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends systemd
fi
