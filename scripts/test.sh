#!/usr/bin/env bash
# Sets up what is missing, builds, and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The server tests also run a Python client written the way Azure's documentation writes one.
if ! python3 -c "import requests" 2>/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get install -y -qq --no-install-recommends python3 python3-requests
fi
swift build --build-tests
swift test --skip-build
