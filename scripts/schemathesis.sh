#!/usr/bin/env bash
# Property-based API testing: schemathesis reads /openapi.json from a running `loupe serve` (the tests'
# tiny model, an embedded store in a temporary folder) and sends what the document allows and what it
# forbids to every operation, the collection routes included, checking status codes, content types,
# headers and bodies against the document and that nothing is a server error.
#   scripts/schemathesis.sh [--max-examples N]     default 20 per operation (the suite's bound)
# URLs in bodies are rewritten to a loopback fixture server (Tests/API/hooks.py); nothing else is reached.
set -euo pipefail
cd "$(dirname "$0")/.."
examples=20
[ "${1:-}" = "--max-examples" ] && examples="$2"

venv=.build/schemathesis-venv
if [ ! -x $venv/bin/schemathesis ]; then
  # Debian's python3 makes virtual environments only with python3-venv installed.
  if ! python3 -m venv $venv 2>/dev/null; then
    rm -rf $venv
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv
    python3 -m venv $venv
  fi
  $venv/bin/pip install --quiet "schemathesis==4.32.5"
fi
[ -x .build/debug/loupe ] || swift build --product loupe

work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

fixture_port=$(free_port)
mkdir "$work/fixtures"
cp Tests/Fixtures/images/{tiny_rgb_50x40.png,photo_progressive_800x600.jpg,cmyk_360x240.jpg} Tests/Fixtures/README.md "$work/fixtures/"
python3 -m http.server "$fixture_port" --bind 127.0.0.1 --directory "$work/fixtures" >"$work/fixtures.log" 2>&1 &
pids+=($!)

port=$(free_port)
# --allow-private-urls lets the server fetch from the loopback fixture server; the hooks see to it that
# no other URL is ever sent.
.build/debug/loupe serve --model Tests/Fixtures/models/tiny-quickgelu --port "$port" --data "$work/data" \
  --allow-private-urls --url-timeout 5 >"$work/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break
  sleep 0.5
done

status=0
LOUPE_FIXTURE_URL="http://127.0.0.1:$fixture_port" LOUPE_FIXTURE_IMAGES=Tests/Fixtures/images SCHEMATHESIS_HOOKS=hooks PYTHONPATH=Tests/API \
  $venv/bin/schemathesis run "http://127.0.0.1:$port/openapi.json" --checks all --max-examples "$examples" \
  --workers 1 --seed 20261203 --request-timeout 60 --no-color --generation-database none || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- the server's log (last 40 lines)" >&2
  tail -40 "$work/server.log" >&2
fi
exit "$status"
