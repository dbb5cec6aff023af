#!/usr/bin/env bash
# The three stores side by side, in one run: `loupe import` of N random 512-d vectors (pure store
# writes, in transactions of 500 rows as ingest's batches are written), the same import again (every
# row read back and skipped), and `loupe export` (every item read in id order). Prints one JSON object
# with seconds and rows/s per store.
#
#   benchmarks/store_write.sh [N]      (default 20000)
#
# BASELINE=path/to/another/loupe adds a row "postgres-baseline": the same PostgreSQL writes by that
# binary (another version of Loupe), into a collection of its own, in the same run.
#
# PostgreSQL and Milvus are the local ones scripts/postgres.sh and scripts/milvus.sh run, on ports of
# their own and fresh data folders, stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-20000}
loupe=${LOUPE:-.build/release/loupe}
[ -n "${LOUPE:-}" ] || swift build -c release --product loupe >/dev/null 2>&1
work=$(mktemp -d)
export LOUPE_POSTGRES_DATA=$work/postgres LOUPE_POSTGRES_PORT=55499 LOUPE_MILVUS_DATA=$work/milvus LOUPE_MILVUS_PORT=19599
trap 'scripts/postgres.sh stop >/dev/null 2>&1 || true; scripts/milvus.sh stop || true; rm -rf "$work"' EXIT
[ "$(id -u)" -ne 0 ] || chmod 755 "$work"  # the PostgreSQL user reads its data folder under it
postgres=$(scripts/postgres.sh start)
milvus=$(scripts/milvus.sh start)/bench

python3 - "$work/vectors.npy" "$count" <<'PY'
import random, struct, sys
path, count = sys.argv[1], int(sys.argv[2])
random.seed(1)
header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, 512), }" % count
header += " " * (63 - (10 + len(header)) % 64) + "\n"
with open(path, "wb") as out:
    out.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
    for _ in range(count):
        out.write(struct.pack("<512f", *(random.gauss(0, 1) for _ in range(512))))
with open(path + ".ids.txt", "w") as ids:
    ids.writelines(f"item-{i:07d}\n" for i in range(count))
PY

timed() {
  local start
  start=$(date +%s.%N)
  "$@" >/dev/null 2>"$work/stderr" || { cat "$work/stderr" >&2; exit 1; }
  echo "$(date +%s.%N) - $start" | bc
}
results=""
# The baseline writes first, so the binary under test never meets a table the other left emptier.
stores=("embedded:--data $work/data")
[ -z "${BASELINE:-}" ] || stores+=("postgres-baseline:--store $postgres --data $work/data")
stores+=("postgres:--store $postgres --data $work/data" "milvus:--store $milvus --data $work/data")
for store in "${stores[@]}"; do
  name=${store%%:*}
  read -ra flags <<<"${store#*:}"
  binary=$loupe collection=bench
  [ "$name" != postgres-baseline ] || binary=$BASELINE collection=bench_baseline
  import=(import "$work/vectors.npy" --collection $collection --model azure:https://example.cognitiveservices.azure.com --dimension 512 "${flags[@]}")
  first=$(timed "$binary" "${import[@]}")
  again=$(timed "$binary" "${import[@]}")
  export=$(timed "$binary" export --collection $collection -o "$work/$name.csv" "${flags[@]}")
  results+="$name $first $again $export;"
done
python3 - "$count" "$results" <<'PY'
import json, sys
count = int(sys.argv[1])
report = {"rows": count}
for entry in filter(None, sys.argv[2].split(";")):
    name, *times = entry.split()
    first, again, export = map(float, times)
    report[name] = {"import_s": round(first, 2), "import_rows_per_s": round(count / first),
                    "reimport_s": round(again, 2), "export_s": round(export, 2), "export_rows_per_s": round(count / export)}
print(json.dumps(report, indent=1))
PY
