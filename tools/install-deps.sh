#!/bin/sh
# Installs what Routescope needs to build, test and run, from Debian 12 packages.
# Usage: tools/install-deps.sh [--test]   (--test adds what the test suite needs)
set -eu
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
PKGS="build-essential meson ninja-build pkg-config gettext \
  libglib2.0-dev libglib2.0-bin libopenblas-dev libpcre2-dev libjson-glib-dev libzip-dev \
  libgtk-4-dev libcairo2-dev desktop-file-utils appstream adwaita-icon-theme fonts-dejavu-core"
if [ "${1:-}" = "--test" ]; then
  PKGS="$PKGS python3 python3-numpy xvfb xauth bc"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $PKGS
