# Cross compilers and qemu-user for native artifacts (converters/native): `edgert convert
# --format native --target x86_64,aarch64,armv7` builds with Debian's gcc-aarch64-linux-gnu and
# gcc-arm-linux-gnueabihf, and checks each ARM library's parity under qemu-user-static (with the
# cross toolchains' own libc as the loader root). Installs only what is missing.
_er_missing=""
command -v gcc >/dev/null 2>&1 || _er_missing="$_er_missing gcc libc6-dev"
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || _er_missing="$_er_missing gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
command -v arm-linux-gnueabihf-gcc >/dev/null 2>&1 || _er_missing="$_er_missing gcc-arm-linux-gnueabihf libc6-dev-armhf-cross"
{ command -v qemu-aarch64-static && command -v qemu-arm-static; } >/dev/null 2>&1 || _er_missing="$_er_missing qemu-user-static"
if [ -n "$_er_missing" ]; then
  echo "setup 60-cross: installing$_er_missing"
  _er_sudo=""
  if [ "$(id -u)" != "0" ]; then _er_sudo="sudo"; fi
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $_er_sudo apt-get install -y -qq --no-install-recommends $_er_missing >/dev/null \
    || { $_er_sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $_er_sudo apt-get install -y -qq \
         --no-install-recommends $_er_missing >/dev/null; } \
    || echo "setup 60-cross: could not install$_er_missing; the cross-target native tests will skip"
  unset _er_sudo
fi
unset _er_missing
