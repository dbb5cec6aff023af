#!/usr/bin/env bash
# Fuzzes Loupe's input readers with libFuzzer (the targets are in Tests/Fuzz/main.swift):
#   scripts/fuzz.sh [TARGET...] [--seconds N] [--seed S]     targets: image tokenizer manifest body vectors (default: all)
# Each target runs N seconds (default 60; a long run is `--seconds 3600`). With --seed the mutations are
# drawn from that seed, so a run repeats the same inputs wherever it runs: the suite runs a short bound
# from a fixed seed, and a long run draws a new seed each time.
# Seeds are the fixtures, Tests/Fuzz/seeds and Tests/Fuzz/regressions (inputs that once broke a target,
# kept so that they are tried on every run); the corpus grows in .build/fuzz/corpus/TARGET and carries
# over between runs; an input that breaks a target is saved in .build/fuzz/findings.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=60
seed=0  # libFuzzer draws one
targets=()
while (($#)); do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
((${#targets[@]})) || targets=(image tokenizer manifest body vectors)

# Swift's -sanitize=fuzzer wants to supply main itself, which a SwiftPM executable cannot leave out;
# so the code is instrumented for coverage and the address sanitizer, and main calls libFuzzer's driver
# (LLVMFuzzerRunDriver) from the runtime library built without a main.
clang_resources=$(dirname "$(dirname "$(readlink -f "$(command -v swiftc)")")")/lib/clang
driver=$(ls "$clang_resources"/*/lib/linux/libclang_rt.fuzzer_no_main-x86_64.a 2>/dev/null | head -1)
[ -n "$driver" ] || { echo "libFuzzer's runtime (libclang_rt.fuzzer_no_main) is not in the Swift toolchain" >&2; exit 1; }
coverage=edge,inline-8bit-counters,pc-table,trace-cmp
LOUPE_FUZZ=1 swift build --build-path .build/fuzz/build --product loupe-fuzz \
  -Xswiftc -sanitize=address -Xswiftc -sanitize-coverage=$coverage \
  -Xcc -fsanitize=address -Xcc -fsanitize-coverage=$coverage \
  -Xlinker "$driver" -Xlinker -lstdc++
binary=.build/fuzz/build/debug/loupe-fuzz

seeds() {
  case "$1" in
    image) echo Tests/Fixtures/images; echo Tests/Fixtures/formats ;;
    *) echo "Tests/Fuzz/seeds/$1" ;;
  esac
  [ -d "Tests/Fuzz/regressions/$1" ] && echo "Tests/Fuzz/regressions/$1"
  return 0
}

mkdir -p .build/fuzz/findings
for target in "${targets[@]}"; do
  corpus=.build/fuzz/corpus/$target
  mkdir -p "$corpus"
  echo "fuzzing $target for $seconds s"
  log=.build/fuzz/$target.log
  # libFuzzer stops itself after -max_total_time; the kill is only a backstop for a hung input.
  status=0
  # Swift's own crash reporter is off: under the address sanitizer it crashes itself, and libFuzzer
  # reports the crash and saves the input anyway.
  mapfile -t seed_folders < <(seeds "$target")
  SWIFT_BACKTRACE=enable=no LSAN_OPTIONS=suppressions=Tests/Fuzz/leak-suppressions.txt timeout -s KILL $((seconds + 120)) "$binary" "$target" -max_total_time="$seconds" -seed="$seed" \
    -timeout=20 -rss_limit_mb=4096 -artifact_prefix=.build/fuzz/findings/"$target"- -print_final_stats=1 \
    "$corpus" "${seed_folders[@]}" >"$log" 2>&1 || status=$?
  grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==|invariant broken|SUMMARY|Test unit written)" "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -40 "$log" >&2
    echo "fuzz target $target failed (exit $status); the input is in .build/fuzz/findings, the log in $log" >&2
    exit 1
  fi
done
