#!/usr/bin/env bash
# Builds (or reuses) a full-size random-weight ViT-B/32 checkpoint, then times PyTorch, ONNX Runtime and
# `loupe bench` on it in one run and prints the ratios.
#   benchmarks/run.sh [--threads 2] [--batch 32] [--images 64] [--python /path/to/venv/bin/python]
# The Python side needs: pip install torch transformers onnx onnxruntime safetensors
set -euo pipefail
cd "$(dirname "$0")/.."
threads=2 batch=32 images=64 repeats=9 python=python3 work=${LOUPE_BENCH_DIR:-/tmp/loupe-bench}
while (($#)); do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --images) images=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
model="$work/clip-vit-b32-random"
"$python" benchmarks/make_checkpoint.py "$model" >&2
swift build -c release --product loupe >&2

reference=$("$python" benchmarks/reference.py "$model" "$threads" "$batch" "$images" "$repeats" "$work")
bench() { .build/release/loupe bench --model "$model" --threads "$threads" --batch "$batch" --images "$images" --repeats "$repeats" "$@"; }
loupe=$(bench)
# The 8-bit mode where the processor has AVX-512 VNNI ("{}" otherwise).
int8=$(bench --precision int8 2>/dev/null || echo '{}')
"$python" - "$reference" "$loupe" "$threads" "$batch" "$int8" <<'PY'
import json, sys
reference, loupe, int8 = json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[5])
threads, batch = sys.argv[3], sys.argv[4]
rows = [("images_per_s", f"images/s, batch {batch}", True), ("image_ms", "one image, ms", False),
        ("text77_ms", "one 77-token text, ms", False), ("text_short_ms", "\"a blue house\", ms", False)]
print(f"| {threads} threads | PyTorch | ONNX Runtime | Loupe | Loupe vs ORT | Loupe vs PyTorch |")
print("|---|---|---|---|---|---|")
for key, label, higher_is_better in rows:
    p, o, l = reference["pytorch"][key], reference["onnxruntime"][key], loupe[key]
    ratio = (lambda r: l / r) if higher_is_better else (lambda r: r / l)
    print(f"| {label} | {p} | {o} | {l} | {ratio(o):.2f}× | {ratio(p):.2f}× |")
print(f"\nLoupe peak RSS: {loupe['rss_mb']} MB; preprocessing a 640×480 image: {loupe['preprocess_640x480_ms']} ms")
if int8:
    print(f"\n| {threads} threads | Loupe float32 | Loupe int8 | int8 vs float32 | int8 vs ORT |")
    print("|---|---|---|---|---|")
    for key, label, higher_is_better in rows:
        f, i, o = loupe[key], int8[key], reference["onnxruntime"][key]
        ratio = (lambda a, b: a / b) if higher_is_better else (lambda a, b: b / a)
        print(f"| {label} | {f} | {i} | {ratio(i, f):.2f}× | {ratio(i, o):.2f}× |")
    print(f"\nLoupe int8 peak RSS: {int8['rss_mb']} MB")
print(json.dumps({"reference": reference, "loupe": loupe, "loupe_int8": int8}))
PY
