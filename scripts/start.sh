#!/usr/bin/env bash
# Sets up what is missing, builds Loupe in release mode and starts it with any arguments given.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --product loupe
exec .build/release/loupe "$@"
