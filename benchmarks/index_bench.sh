#!/usr/bin/env bash
# Exact and HNSW search in Loupe next to numpy, hnswlib, FAISS and pgvector's HNSW, on the same clustered
# 512-d vectors, on this machine, in one run. Usage: benchmarks/index_bench.sh [COUNT ...]   (default: 100000 1000000)
# Results go to benchmarks/results/index-COUNT.json and, as tables, to standard output. INDEX_EF (a comma-separated
# list, default 40,96,200) sets the ef_search values every side is measured at, e.g. INDEX_EF=40,96,200,400,800;
# INDEX_M and INDEX_EF_CONSTRUCTION (default 16 and 64) the graph every side builds.
set -euo pipefail
cd "$(dirname "$0")/.."
counts=("$@")
[ $# -gt 0 ] || counts=(100000 1000000)

scripts/setup.sh
swift build -c release --product index-bench

venv=benchmarks/.venv-index
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet numpy "psycopg[binary]" pgvector hnswlib faiss-cpu
fi

# A PostgreSQL of the benchmark's own (scripts/postgres.sh), with room for the 1M table and its graph.
export LOUPE_POSTGRES_DATA="${LOUPE_POSTGRES_HOME:-/var/tmp/loupe-postgres}/bench-data" LOUPE_POSTGRES_PORT=55434
url=$(scripts/postgres.sh start)
psql --quiet --no-psqlrc "$url" \
  --command="ALTER SYSTEM SET shared_buffers = '6GB'" --command="ALTER SYSTEM SET max_wal_size = '8GB'"
scripts/postgres.sh stop
url=$(scripts/postgres.sh start)
trap 'scripts/postgres.sh stop' EXIT

mkdir -p benchmarks/results
for count in "${counts[@]}"; do
  data=$(mktemp -d)
  # Exact search reads every vector per query: fewer queries at 1M keep the run under an hour.
  queries=1000
  [ "$count" -le 100000 ] || queries=200
  .build/release/index-bench "$count" "$data" "$queries" "${INDEX_EF:-40,96,200}" "${INDEX_M:-16}" "${INDEX_EF_CONSTRUCTION:-64}" \
    >"$data/loupe.json"
  "$venv/bin/python" benchmarks/index_bench.py "$data" "$url" "$data/loupe.json" | tee "$data/report.txt"
  head -n 1 "$data/report.txt" >"benchmarks/results/index-$count.json"
  rm -rf "$data"
done
