"""pgvector's side of the index benchmark, on the vectors and queries `index-bench` wrote.

    python index_bench.py DIR POSTGRES_URL LOUPE_JSON

Loads DIR/vectors.f32 into a `vector(512)` table with binary COPY, builds pgvector's HNSW index
(`vector_cosine_ops`, the M and ef_construction Loupe used), answers DIR/queries.f32 one by one over a
single connection at each ef_search Loupe used, scores recall@10 against DIR/truth.i32 (Loupe's exact
search), and prints the two sides together as JSON and as a Markdown table.
"""

import json
import os
import sys
import time

import numpy as np
import psycopg
from pgvector.psycopg import register_vector


def main() -> None:
    folder, url, loupe_json = sys.argv[1], sys.argv[2], sys.argv[3]
    loupe = json.loads(open(loupe_json).read())
    dimension, k = loupe["dimension"], 10
    vectors = np.fromfile(os.path.join(folder, "vectors.f32"), dtype="<f4").reshape(-1, dimension)
    queries = np.fromfile(os.path.join(folder, "queries.f32"), dtype="<f4").reshape(-1, dimension)
    truth = np.fromfile(os.path.join(folder, "truth.i32"), dtype="<i4").reshape(-1, k)

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(connection)
        connection.execute("DROP TABLE IF EXISTS bench_items")
        connection.execute(f"CREATE TABLE bench_items (key integer PRIMARY KEY, embedding vector({dimension}) NOT NULL)")
        started = time.perf_counter()
        with connection.cursor().copy("COPY bench_items (key, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["int4", "vector"])
            for key, vector in enumerate(vectors):
                copy.write_row((key, vector))
        load_s = time.perf_counter() - started

        # pgvector builds in memory when the graph fits maintenance_work_mem, with parallel workers.
        connection.execute("SET maintenance_work_mem = '8GB'")
        connection.execute("SET max_parallel_maintenance_workers = 1")  # two processes on two cores
        started = time.perf_counter()
        connection.execute(
            f"CREATE INDEX ON bench_items USING hnsw (embedding vector_cosine_ops) "
            f"WITH (m = {loupe['hnsw_m']}, ef_construction = {loupe['hnsw_ef_construction']})"
        )
        build_s = time.perf_counter() - started
        connection.execute("ANALYZE bench_items")

        results = []
        for setting in loupe["hnsw"]:
            ef = int(setting["ef_search"])
            connection.execute(f"SET hnsw.ef_search = {ef}")
            plan = connection.execute(
                "EXPLAIN SELECT key FROM bench_items ORDER BY embedding <=> %s LIMIT 10", (queries[0],)
            ).fetchall()
            assert any("Index Scan" in row[0] for row in plan), plan
            found = 0
            started = time.perf_counter()
            for query, expected in zip(queries, truth):
                rows = connection.execute(
                    "SELECT key FROM bench_items ORDER BY embedding <=> %s LIMIT 10", (query,), prepare=True
                ).fetchall()
                found += len(set(row[0] for row in rows) & set(expected.tolist()))
            elapsed = time.perf_counter() - started
            results.append({"ef_search": ef, "qps": len(queries) / elapsed, "recall_at_10": found / (len(queries) * k)})
        version = connection.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
        connection.execute("DROP TABLE bench_items")

    pgvector = {"version": version, "load_s": load_s, "hnsw_build_s": build_s, "hnsw": results}
    print(json.dumps({"loupe": loupe, "pgvector": pgvector}))
    count = loupe["count"]
    print(f"\n{count:,} vectors, {dimension}-d, {loupe['clusters']} clusters, {len(queries)} queries, "
          f"M={loupe['hnsw_m']}, ef_construction={loupe['hnsw_ef_construction']}\n")
    print("| index | build s | ef_search | queries/s | recall@10 |")
    print("|---|---|---|---|---|")
    print(f"| Loupe exact | – | – | {loupe['exact_qps']:.1f} | 1.000 |")
    for name, side in (("Loupe HNSW", loupe), (f"pgvector {version} HNSW", pgvector)):
        for row in side["hnsw"]:
            print(f"| {name} | {side['hnsw_build_s']:.0f} | {int(row['ef_search'])} | {row['qps']:.0f} | {row['recall_at_10']:.3f} |")


if __name__ == "__main__":
    main()
