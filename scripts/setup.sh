#!/usr/bin/env bash
# Installs what Loupe needs on Debian 12 that is not there yet. Safe to run again.
set -euo pipefail

packages=(pkg-config libopenblas-dev libturbojpeg0-dev libpng-dev libwebp-dev libgif-dev libtiff-dev libheif-dev libsqlite3-dev
  libavformat-dev libavcodec-dev libswscale-dev libavutil-dev)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v swift >/dev/null; then
  echo "Swift 6 is not installed: get the toolchain for Debian 12 from https://www.swift.org/install/linux/" >&2
  exit 1
fi
