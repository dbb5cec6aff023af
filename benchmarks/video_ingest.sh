#!/usr/bin/env bash
# Video ingestion next to the model's own batch throughput, in one run: `loupe bench` (images/s in
# batches of 32), then, for each video, `loupe ingest` (frames/s over the pipeline, as its progress line
# reports) and the same ingest with the tiny test model, where decoding is nearly all the work. Prints
# one JSON object per video.
#
#   benchmarks/video_ingest.sh MODEL_FOLDER [VIDEO ...]
#
# MODEL_FOLDER: a full-size checkpoint, e.g. the random CLIP ViT-B/32 benchmarks/make_checkpoint.py makes.
# VIDEO: by default two 10-minute 720p H.264 videos made here with ffmpeg when missing (testsrc2 with
# light moving noise, 30 frames/s, libx264 veryfast CRF 23: about 2.7 Mbit/s, like camera footage):
# /tmp/loupe-bench/video-720p-10min.mp4 with x264's default keyframe interval (at most 250 frames, and at
# cuts), and /tmp/loupe-bench/video-720p-10min-keyframe-1s.mp4 with a keyframe every 30 frames (one a
# second, as many cameras and phones record), where Loupe decodes keyframes only.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: benchmarks/video_ingest.sh MODEL_FOLDER [VIDEO ...]}
shift
videos=("$@")
make_video() { # PATH [x264 options]
  local path=$1
  shift
  [ -f "$path" ] && return
  mkdir -p "$(dirname "$path")"
  ffmpeg -hide_banner -loglevel error -y -f lavfi -i "testsrc2=s=1280x720:r=30:d=600,noise=alls=4:allf=t" \
    -c:v libx264 -preset veryfast -crf 23 -pix_fmt yuv420p "$@" "$path"
}
if [ ${#videos[@]} -eq 0 ]; then
  videos=(/tmp/loupe-bench/video-720p-10min.mp4 /tmp/loupe-bench/video-720p-10min-keyframe-1s.mp4)
  make_video "${videos[0]}"
  make_video "${videos[1]}" -g 30
fi
swift build -c release --product loupe >/dev/null 2>&1
loupe=.build/release/loupe
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

bench=$($loupe bench --model "$model" --batch 32 --images 256 2>/dev/null)
# The rate in the last progress line: frames embedded per second since the run started (after the model loaded).
ingest_rate() {
  local media=$1 data=$2 chosen_model=$3
  "$loupe" ingest "$media" --collection video --model "$chosen_model" --data "$data" --batch 32 2>&1 >/dev/null \
    | grep -o 'video frames [0-9]* ([0-9.]*/s)' | tail -1 | sed -E 's/.*\(([0-9.]+)\/s\)/\1/'
}
for video in "${videos[@]}"; do
  media="$work/media-$(basename "$video")"
  mkdir "$media"
  cp "$video" "$media/video.mp4"
  start=$(date +%s.%N)
  rate=$(ingest_rate "$media" "$work/data-model-$(basename "$video")" "$model")
  wall=$(echo "$(date +%s.%N) - $start" | bc)
  decode_rate=$(ingest_rate "$media" "$work/data-tiny-$(basename "$video")" Tests/Fixtures/models/tiny-gelu)
  python3 - "$bench" "$rate" "$wall" "$decode_rate" "$video" <<'PY'
import json, sys
bench, rate, wall, decode_rate, video = json.loads(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
print(json.dumps({
    "video": video, "model_images_per_s": bench["images_per_s"], "ingest_frames_per_s": rate,
    "ingest_over_model": round(rate / bench["images_per_s"], 3), "ingest_wall_s": round(wall, 1),
    "decode_only_frames_per_s": decode_rate, "precision": bench["precision"],
}))
PY
done
