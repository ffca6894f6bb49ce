# Xvfb (a virtual X display) for the desktop example's test (examples/desktop/), which runs the
# Tkinter app under xvfb-run; x11-apps' xwd takes the screenshot, netpbm turns it into a PNG.
# Installs only what is missing.
if ! command -v xvfb-run >/dev/null 2>&1 || ! command -v xwd >/dev/null 2>&1 \
   || ! command -v xwdtopnm >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    xvfb xauth x11-apps netpbm
fi
