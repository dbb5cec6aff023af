#!/usr/bin/env bash
# The README's first command, checked as far as a machine without the Hugging Face Hub allows:
# `scripts/start.sh serve` with its default model id, from a Hub on loopback laid out file for file as
# huggingface.co's openai/clip-vit-base-patch32 is today (Tests/FixtureHubServer: PyTorch weights in
# main, safetensors in the conversion bot's pull request; the tiny test model inside), then again
# offline from the cache the first run filled. Run by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
swift build --product fixture-hub >/dev/null
.build/debug/fixture-hub >"$work/hub" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/hub" ] && break; sleep 0.1; done
endpoint=$(head -n 1 "$work/hub")

# Starts the server with the given environment, waits until it is ready (the first start builds Loupe
# in release mode), asks for a text vector and stops it.
serve_and_ask() {
  env "$@" HF_HOME="$work/hf" scripts/start.sh serve --port "$port" >"$work/serve.log" 2>&1 &
  local server=$!
  pids+=("$server")
  for _ in $(seq 1800); do
    curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break
    kill -0 "$server" 2>/dev/null || { cat "$work/serve.log" >&2; echo "check-start: the server stopped" >&2; return 1; }
    sleep 1
  done
  local answer
  answer=$(curl -sf -X POST "http://127.0.0.1:$port/computervision/retrieval:vectorizeText?api-version=2024-02-01" \
    -H "Content-Type: application/json" -d '{"text": "a blue house"}')
  kill "$server"
  wait "$server" || true
  python3 -c 'import json, sys; v = json.loads(sys.argv[1])["vector"]; assert len(v) > 0 and all(isinstance(x, float) for x in v)' "$answer"
}

serve_and_ask HF_ENDPOINT="$endpoint"
echo "check-start: scripts/start.sh serve answered with openai/clip-vit-base-patch32 from a Hub shaped like the real one"
kill "${pids[0]}"
serve_and_ask HF_ENDPOINT=http://127.0.0.1:1 HF_HUB_OFFLINE=1
echo "check-start: and again offline from the cache"
