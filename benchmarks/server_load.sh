#!/usr/bin/env bash
# `loupe serve` under wrk (a compiled load generator, Debian's `wrk`) next to `loupe bench`, in one run:
# a lone text request and a lone image request (one connection; p50 latency) against the engine's own
# times, and images at 64 connections against the engine's batch throughput. Prints one JSON object
# with the ratios the targets are stated in.
#
#   benchmarks/server_load.sh MODEL_FOLDER [IMAGE] [SECONDS]
#
# MODEL_FOLDER: a full-size checkpoint, e.g. the random CLIP ViT-B/32 benchmarks/make_checkpoint.py makes.
# IMAGE: the JPEG every image request sends (default: a 640×480 photo that benchmarks/photo_ingest.sh
# makes, or ffmpeg makes here). SECONDS: per lone level (default 20; the 64-connection level runs three times as long).
set -euo pipefail
precision=${PRECISION:-float32}  # PRECISION=int8 runs every side in the 8-bit mode
cd "$(dirname "$0")/.."
model=${1:?usage: benchmarks/server_load.sh MODEL_FOLDER [IMAGE] [SECONDS]}
image=${2:-/tmp/loupe-bench/photos-640x480/photo-001.jpg}
seconds=${3:-20}
command -v wrk >/dev/null || { echo "installing wrk" >&2; sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"; $sudo apt-get install -y -qq wrk >/dev/null; }
if [ ! -f "$image" ]; then
  mkdir -p "$(dirname "$image")"
  ffmpeg -hide_banner -loglevel error -y -f lavfi -i "testsrc2=s=640x480,noise=alls=10:allf=t+u" -frames:v 1 -q:v 2 "$image"
fi
swift build -c release --product loupe >/dev/null 2>&1
loupe=.build/release/loupe
work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
"$loupe" serve --model "$model" --precision "$precision" --port "$port" --data "$work/data" >"$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
until curl -sf "http://127.0.0.1:$port/ready" >/dev/null; do
  kill -0 $server 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
  sleep 0.5
done
base="http://127.0.0.1:$port/computervision/retrieval"
cat >"$work/image.lua" <<LUA
local file = io.open("$image", "rb")
wrk.method = "POST"
wrk.body = file:read("*all")
wrk.headers["Content-Type"] = "application/octet-stream"
file:close()
LUA
cat >"$work/text.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"text": "a blue house"}'
wrk.headers["Content-Type"] = "application/json"
LUA
# wrk's summary as "p50_ms requests_per_s non_2xx" (its --latency percentiles, in ms).
load() {
  local script=$1 connections=$2 threads=$3 endpoint=$4 duration=$5
  wrk -t"$threads" -c"$connections" -d"${duration}s" --latency -s "$work/$script" "$base:$endpoint?api-version=2024-02-01&model-version=2023-04-15" \
    >"$work/wrk.out"
  python3 - "$work/wrk.out" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def ms(value, unit): return float(value) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]
p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print(round(ms(*p50.groups()), 2), rate.group(1), bad.group(1) if bad else 0)
PY
}
engine() { "$loupe" bench --model "$model" --precision "$precision" --batch 32 --images 128 --repeats 21 --decode-image "$image" 2>/dev/null; }
# The engine's figures drift by 10–20 % from minute to minute on shared machines: it is measured right
# before and right after the server's levels (the server idle, on the same cores), and averaged.
before=$(engine)
text_lone=$(load text.lua 1 1 vectorizeText "$seconds")
image_lone=$(load image.lua 1 1 vectorizeImage "$seconds")
# Three times as long: a batch still running when wrk stops (up to 1.5 s of work) counts for nothing.
image_64=$(load image.lua 64 2 vectorizeImage $((3 * seconds)))
after=$(engine)
python3 - "$before" "$after" "$text_lone" "$image_lone" "$image_64" "$image" <<'PY'
import json, sys
before, after = json.loads(sys.argv[1]), json.loads(sys.argv[2])
def engine(key): return round((before[key] + after[key]) / 2, 2)
text, image, many = (sys.argv[i].split() for i in (3, 4, 5))
engine_image = engine("image_ms") + engine("decode_ms") + engine("preprocess_640x480_ms")
print(json.dumps({
    "image": sys.argv[6], "precision": before["precision"], "model_images_per_s": engine("images_per_s"),
    "model_images_per_s_before_after": [before["images_per_s"], after["images_per_s"]],
    "lone_text_ms": float(text[0]), "engine_text_short_ms": engine("text_short_ms"),
    "lone_text_over_engine_ms": round(float(text[0]) - engine("text_short_ms"), 2),
    "lone_image_ms": float(image[0]), "engine_image_decode_preprocess_ms": round(engine_image, 2),
    "lone_image_over_engine_ms": round(float(image[0]) - engine_image, 2),
    "images_64_connections_per_s": float(many[1]), "images_64_over_model": round(float(many[1]) / engine("images_per_s"), 3),
    "non_2xx": int(text[2]) + int(image[2]) + int(many[2]),
}))
PY
