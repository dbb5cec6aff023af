#!/usr/bin/env bash
# Builds (or reuses) a full-size random-weight checkpoint (CLIP ViT-B/32, or with --family siglip SigLIP
# base patch16 at 224), then times PyTorch, ONNX Runtime and
# `loupe bench` (float32, and int8 where the processor has AVX-512 VNNI) on it in one run and prints the
# ratios. With --rounds N the engines run N times in turn and each figure is the median of its N runs:
# on a shared machine whose speed drifts between minutes, engines timed minutes apart are not comparable.
#   benchmarks/run.sh [--family clip|siglip] [--threads 2] [--batch 32] [--images 64] [--rounds 1] [--python /path/to/venv/bin/python]
# The Python side needs: pip install torch transformers onnx onnxruntime safetensors
set -euo pipefail
cd "$(dirname "$0")/.."
family=clip threads=2 batch=32 images=64 repeats=9 rounds=1 python=python3 work=${LOUPE_BENCH_DIR:-/tmp/loupe-bench}
while (($#)); do
  case "$1" in
    --family) family=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --images) images=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
case "$family" in
  clip) model="$work/clip-vit-b32-random" ;;
  siglip) model="$work/siglip-base-p16-224-random" ;;
  *) echo "unknown family $family (clip or siglip)" >&2; exit 2 ;;
esac
work="$work/$family"
"$python" benchmarks/make_checkpoint.py "$model" "$family" >&2
swift build -c release --product loupe >&2

bench() { .build/release/loupe bench --model "$model" --threads "$threads" --batch "$batch" --images "$images" --repeats "$repeats" "$@"; }
runs=$(mktemp)
trap 'rm -f "$runs"' EXIT
for ((round = 1; round <= rounds; round++)); do
  echo "round $round of $rounds" >&2
  "$python" benchmarks/reference.py "$model" "$threads" "$batch" "$images" "$repeats" "$work" >>"$runs"
  bench >>"$runs"
  # The 8-bit mode where the processor has AVX-512 VNNI ("{}" otherwise).
  { bench --precision int8 2>/dev/null || echo '{}'; } >>"$runs"
done
# Each line of $runs is one engine run's JSON, three lines per round; the median of every figure.
mapfile -t medians < <("$python" - "$runs" <<'PY'
import json, statistics, sys
lines = [json.loads(line) for line in open(sys.argv[1])]
rounds = [lines[i:i + 3] for i in range(0, len(lines), 3)]
def median(dicts):
    if not dicts or not dicts[0]:
        return {}
    merged = dict(dicts[0])
    for key, value in dicts[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            merged[key] = round(statistics.median(d[key] for d in dicts), 2)
    return merged
reference = {engine: median([r[0][engine] for r in rounds]) for engine in rounds[0][0]}
for figures in (reference, median([r[1] for r in rounds]), median([r[2] for r in rounds])):
    print(json.dumps(figures))
PY
)
reference=${medians[0]} loupe=${medians[1]} int8=${medians[2]}
"$python" - "$reference" "$loupe" "$threads" "$batch" "$int8" "$rounds" <<'PY'
import json, sys
reference, loupe, int8 = json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[5])
threads, batch = sys.argv[3], sys.argv[4]
rows = [("images_per_s", f"images/s, batch {batch}", True), ("image_ms", "one image, ms", False),
        ("text77_ms", f"one {loupe.get('text77_tokens', 77)}-token text, ms", False), ("text_short_ms", "\"a blue house\", ms", False)]
print(f"| {threads} threads | PyTorch | ONNX Runtime | Loupe | Loupe vs ORT | Loupe vs PyTorch |")
print("|---|---|---|---|---|---|")
for key, label, higher_is_better in rows:
    p, o, l = reference["pytorch"][key], reference["onnxruntime"][key], loupe[key]
    ratio = (lambda r: l / r) if higher_is_better else (lambda r: r / l)
    print(f"| {label} | {p} | {o} | {l} | {ratio(o):.2f}× | {ratio(p):.2f}× |")
print(f"\nLoupe peak RSS: {loupe['rss_mb']} MB; preprocessing a 640×480 image: {loupe['preprocess_640x480_ms']} ms")
def floor(figures, name):
    # The short text's floor: one read of the text weights' bytes on every thread, timed by `loupe bench`.
    if figures.get("text_weights_read_ms"):
        print(f"{name}: reading the {figures['text_weights_mb']} MB of text weights once takes "
              f"{figures['text_weights_read_ms']} ms here; the short text took "
              f"{figures['text_short_ms'] / figures['text_weights_read_ms']:.2f}× that")
floor(loupe, "Loupe float32")
if int8:
    print(f"\n| {threads} threads | Loupe float32 | Loupe int8 | int8 vs float32 | int8 vs ORT |")
    print("|---|---|---|---|---|")
    for key, label, higher_is_better in rows:
        f, i, o = loupe[key], int8[key], reference["onnxruntime"][key]
        ratio = (lambda a, b: a / b) if higher_is_better else (lambda a, b: b / a)
        print(f"| {label} | {f} | {i} | {ratio(i, f):.2f}× | {ratio(i, o):.2f}× |")
    print(f"\nLoupe int8 peak RSS: {int8['rss_mb']} MB")
    floor(int8, "Loupe int8")
print(json.dumps({"rounds": int(sys.argv[6]), "reference": reference, "loupe": loupe, "loupe_int8": int8}))
PY
