# PostgreSQL server binaries for the collector's tests and benchmark: they initdb a private
# cluster in a temporary directory, run it on 127.0.0.1:<ephemeral> as the unprivileged
# `postgres` user (initdb refuses root), and stop it. Installs only when missing; the
# system cluster Debian creates is not needed and is stopped.
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql
  $SUDO systemctl disable --now postgresql >/dev/null 2>&1 || true
fi
