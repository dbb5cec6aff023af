#!/usr/bin/env bash
# Ingest of camera-sized photos next to the model's own batch throughput, in one run: `loupe bench`
# (images/s in batches of 32), then `loupe ingest` of generated 12-megapixel JPEGs (decoded reduced,
# the default, and with --exact-decode) and of 640×480 JPEGs, each with its rate (the last progress
# line's img/s) and its peak memory. Prints one JSON object.
#
#   benchmarks/photo_ingest.sh MODEL_FOLDER [COUNT]
#
# MODEL_FOLDER: a full-size checkpoint, e.g. the random CLIP ViT-B/32 benchmarks/make_checkpoint.py makes.
# COUNT: photos per set (default 128: four batches, so that the first batch, which has no model work to
# overlap, weighs little). The photos are made here with ffmpeg (testsrc2 with grain, JPEG
# quality 2: about 2.5 MB at 4032×3024) and kept in /tmp/loupe-bench/photos-*.
set -euo pipefail
precision=${PRECISION:-float32}  # PRECISION=int8 runs every side in the 8-bit mode
cd "$(dirname "$0")/.."
model=${1:?usage: benchmarks/photo_ingest.sh MODEL_FOLDER [COUNT]}
count=${2:-128}
make_photos() {
  local folder=$1 size=$2
  [ "$(find "$folder" -name '*.jpg' 2>/dev/null | wc -l)" -ge "$count" ] && return
  mkdir -p "$folder"
  ffmpeg -hide_banner -loglevel error -y -f lavfi -i "testsrc2=s=$size:r=5,noise=alls=10:allf=t+u" -frames:v "$count" \
    -q:v 2 -pix_fmt yuvj420p "$folder/photo-%03d.jpg"
}
make_photos /tmp/loupe-bench/photos-4032x3024 4032x3024
make_photos /tmp/loupe-bench/photos-640x480 640x480
swift build -c release --product loupe >/dev/null 2>&1
loupe=.build/release/loupe
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

bench=$($loupe bench --model "$model" --precision "$precision" --batch 32 --images 256 2>/dev/null)
# "rate peak_kB": the last progress line's img/s and the process's peak resident memory.
ingest() {
  local name=$1 folder=$2
  shift 2
  /usr/bin/time -f "peak %M" "$loupe" ingest "$folder" --collection photos --model "$model" --precision "$precision" --data "$work/$name" --batch 32 "$@" \
    >/dev/null 2>"$work/$name.log"
  echo "$(grep -o '[0-9.]* img/s' "$work/$name.log" | tail -1 | cut -d' ' -f1) $(grep -o 'peak [0-9]*' "$work/$name.log" | cut -d' ' -f2)"
}
large=$(ingest large /tmp/loupe-bench/photos-4032x3024)
exact=$(ingest exact /tmp/loupe-bench/photos-4032x3024 --exact-decode)
small=$(ingest small /tmp/loupe-bench/photos-640x480)
python3 - "$bench" "$large" "$exact" "$small" "$count" <<'PY'
import json, sys
bench = json.loads(sys.argv[1])
engine = bench["images_per_s"]
def row(figures):
    rate, peak = figures.split()
    return {"images_per_s": float(rate), "over_model": round(float(rate) / engine, 3), "peak_rss_mb": round(int(peak) / 1024)}
print(json.dumps({
    "photos_per_set": int(sys.argv[5]), "model_images_per_s": engine, "precision": bench["precision"],
    "jpeg_4032x3024": row(sys.argv[2]), "jpeg_4032x3024_exact_decode": row(sys.argv[3]), "jpeg_640x480": row(sys.argv[4]),
}))
PY
