"""The other side of the index benchmark, on the vectors and queries `index-bench` wrote.

    python index_bench.py DIR POSTGRES_URL LOUPE_JSON

numpy's exact search (one BLAS matrix-vector product per query), hnswlib's and FAISS's HNSW (built on
two threads with the M and ef_construction Loupe used, queried one at a time on one thread at each
ef_search), and pgvector's HNSW (`vector_cosine_ops`, loaded with binary COPY, queried one by one over a
single connection). Recall@10 is scored against DIR/truth.i32 (Loupe's exact search). Prints every side
together as JSON, then a Markdown table with each library's queries per second over Loupe's.
"""

import json
import os
import sys
import time

import numpy as np
import psycopg
from pgvector.psycopg import register_vector


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return sum(len(set(row.tolist()) & set(expected.tolist())) for row, expected in zip(found, truth)) / truth.size


def libraries(vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, loupe: dict) -> dict:
    """numpy, hnswlib and FAISS on this machine, in this run."""
    import faiss
    import hnswlib

    k, m, construction = 10, loupe["hnsw_m"], loupe["hnsw_ef_construction"]
    sides = {}
    started = time.perf_counter()
    for query in queries:
        np.argpartition(-(vectors @ query), k)[:k]
    sides["numpy"] = {"version": np.__version__, "exact_qps": len(queries) / (time.perf_counter() - started)}

    index = hnswlib.Index(space="ip", dim=vectors.shape[1])
    index.init_index(max_elements=len(vectors), M=m, ef_construction=construction, random_seed=1)
    index.set_num_threads(2)
    started = time.perf_counter()
    index.add_items(vectors, np.arange(len(vectors)))
    build = time.perf_counter() - started
    index.set_num_threads(1)
    rows = []
    for setting in loupe["hnsw"]:
        index.set_ef(int(setting["ef_search"]))
        started = time.perf_counter()
        found = np.array([index.knn_query(query, k=k)[0][0] for query in queries])
        rows.append({"ef_search": setting["ef_search"], "qps": len(queries) / (time.perf_counter() - started), "recall_at_10": recall(found, truth)})
    sides["hnswlib"] = {"version": getattr(hnswlib, "__version__", "0.8"), "hnsw_build_s": build, "build_threads": 2, "hnsw": rows}

    faiss.omp_set_num_threads(2)
    graph = faiss.IndexHNSWFlat(vectors.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    graph.hnsw.efConstruction = construction
    started = time.perf_counter()
    graph.add(vectors)
    build = time.perf_counter() - started
    faiss.omp_set_num_threads(1)
    rows = []
    for setting in loupe["hnsw"]:
        graph.hnsw.efSearch = int(setting["ef_search"])
        started = time.perf_counter()
        found = np.array([graph.search(query.reshape(1, -1), k)[1][0] for query in queries])
        rows.append({"ef_search": setting["ef_search"], "qps": len(queries) / (time.perf_counter() - started), "recall_at_10": recall(found, truth)})
    sides["faiss"] = {"version": faiss.__version__, "hnsw_build_s": build, "build_threads": 2, "hnsw": rows}
    return sides


def main() -> None:
    folder, url, loupe_json = sys.argv[1], sys.argv[2], sys.argv[3]
    loupe = json.loads(open(loupe_json).read())
    dimension, k = loupe["dimension"], 10
    vectors = np.fromfile(os.path.join(folder, "vectors.f32"), dtype="<f4").reshape(-1, dimension)
    queries = np.fromfile(os.path.join(folder, "queries.f32"), dtype="<f4").reshape(-1, dimension)
    truth = np.fromfile(os.path.join(folder, "truth.i32"), dtype="<i4").reshape(-1, k)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    others = libraries(vectors, queries, truth, loupe)

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
    print(json.dumps({"loupe": loupe, "pgvector": pgvector, **others}))
    count = loupe["count"]
    print(f"\n{count:,} vectors, {dimension}-d, {loupe['clusters']} clusters, {len(queries)} queries, "
          f"M={loupe['hnsw_m']}, ef_construction={loupe['hnsw_ef_construction']}; queries one at a time on one thread\n")
    print("| index | build s (threads) | ef_search | queries/s | recall@10 | Loupe's q/s over it |")
    print("|---|---|---|---|---|---|")
    print(f"| Loupe exact | – | – | {loupe['exact_qps']:.1f} | 1.000 | – |")
    print(f"| numpy {others['numpy']['version']} exact | – | – | {others['numpy']['exact_qps']:.1f} | 1.000 | "
          f"{loupe['exact_qps'] / others['numpy']['exact_qps']:.2f} |")
    for row in loupe.get("exact_compact", [])[1:]:
        print(f"| Loupe exact, {row['vectors']} vectors ({row['bytes_per_vector']} B each), float32 rescoring | – | – | "
              f"{row['qps']:.1f} | {row['recall_at_10']:.3f} | – |")
    loupe_qps = {row["ef_search"]: row["qps"] for row in loupe["hnsw"]}
    if "hnsw_float16" in loupe:
        for row in loupe["hnsw_float16"]:
            print(f"| Loupe HNSW, float16 vectors, float32 rescoring | {loupe['hnsw_float16_build_s']:.1f} ({loupe['build_threads']}) | "
                  f"{int(row['ef_search'])} | {row['qps']:.0f} | {row['recall_at_10']:.3f} | – |")
    sides = (("Loupe HNSW", loupe, loupe.get("build_threads", 1)), (f"hnswlib {others['hnswlib']['version']}", others["hnswlib"], 2),
             (f"FAISS {others['faiss']['version']} HNSWFlat", others["faiss"], 2), (f"pgvector {version} HNSW", pgvector, 2))
    for name, side, threads in sides:
        for row in side["hnsw"]:
            ratio = "–" if side is loupe else f"{loupe_qps[row['ef_search']] / row['qps']:.2f}"
            print(f"| {name} | {side['hnsw_build_s']:.1f} ({threads}) | {int(row['ef_search'])} | {row['qps']:.0f} | "
                  f"{row['recall_at_10']:.3f} | {ratio} |")


if __name__ == "__main__":
    main()
