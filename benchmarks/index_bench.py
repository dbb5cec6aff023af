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


def recall(found, truth: np.ndarray) -> float:
    """Share of the true top 10 found; `found` holds one row of keys per query (rows may be shorter)."""
    return sum(len(set(np.asarray(row).tolist()) & set(expected.tolist())) for row, expected in zip(found, truth)) / truth.size


def best_qps(run, queries: np.ndarray) -> tuple[float, object]:
    """Queries per second of the fastest of three passes of `run()` over every query (as Loupe's side
    measures, so that a moment's noise on the machine does not decide a ratio), and the last pass's answer."""
    best, answer = float("inf"), None
    for _ in range(3):
        started = time.perf_counter()
        answer = run()
        best = min(best, time.perf_counter() - started)
    return len(queries) / best, answer


def libraries(vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, loupe: dict) -> dict:
    """numpy, hnswlib and FAISS on this machine, in this run."""
    import faiss
    import hnswlib

    k, m, construction = 10, loupe["hnsw_m"], loupe["hnsw_ef_construction"]
    sides = {}
    qps, _ = best_qps(lambda: [np.argpartition(-(vectors @ query), k)[:k] for query in queries], queries)
    sides["numpy"] = {"version": np.__version__, "exact_qps": qps}

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
        qps, found = best_qps(lambda: np.array([index.knn_query(query, k=k)[0][0] for query in queries]), queries)
        rows.append({"ef_search": setting["ef_search"], "qps": qps, "recall_at_10": recall(found, truth)})
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
        qps, found = best_qps(lambda: np.array([graph.search(query.reshape(1, -1), k)[1][0] for query in queries]), queries)
        rows.append({"ef_search": setting["ef_search"], "qps": qps, "recall_at_10": recall(found, truth)})
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
            qps, found = best_qps(lambda: [[row[0] for row in connection.execute(
                "SELECT key FROM bench_items ORDER BY embedding <=> %s LIMIT 10", (query,), prepare=True).fetchall()]
                for query in queries], queries)
            results.append({"ef_search": ef, "qps": qps, "recall_at_10": recall(found, truth)})

        # Filtered: btree-indexed columns keeping 1, 10 or 50 % of the rows, as Loupe's side picks them
        # ("independent": a hash of the key; "clustered": key % 100, whole clusters), with pgvector 0.8's
        # iterative index scan in strict order (as Loupe's PostgreSQL store asks for); the planner may also
        # choose the btree and sort exactly, as it would for a user.
        connection.execute("ALTER TABLE bench_items ADD COLUMN independent integer "
                           "GENERATED ALWAYS AS (((key::bigint * 2654435761) % 4294967296) % 100) STORED, "
                           "ADD COLUMN clustered integer GENERATED ALWAYS AS (key % 100) STORED")
        connection.execute("CREATE INDEX ON bench_items (independent)")
        connection.execute("CREATE INDEX ON bench_items (clustered)")
        connection.execute("ANALYZE bench_items")
        connection.execute("SET hnsw.iterative_scan = strict_order")
        filtered = []
        for row in loupe.get("hnsw_filtered", []):
            kind, percent, ef = row["filter"], int(row["percent"]), int(row["ef_search"])
            connection.execute(f"SET hnsw.ef_search = {ef}")
            expected = np.fromfile(os.path.join(folder, f"truth-{kind}-{percent}.i32"), dtype="<i4").reshape(-1, k)
            sql = f"SELECT key FROM bench_items WHERE {kind} < %s ORDER BY embedding <=> %s LIMIT 10"
            plan = " ".join(line[0] for line in connection.execute("EXPLAIN " + sql, (percent, queries[0])).fetchall())
            qps, found = best_qps(lambda: [[line[0] for line in connection.execute(sql, (percent, query), prepare=True).fetchall()]
                                           for query in queries], queries)
            filtered.append({"filter": kind, "percent": percent, "ef_search": ef, "qps": qps, "recall_at_10": recall(found, expected),
                             "plan": "HNSW, iterative scan" if "embedding_idx" in plan else "btree, then exact sort"})
        version = connection.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
        connection.execute("DROP TABLE bench_items")

    pgvector = {"version": version, "load_s": load_s, "hnsw_build_s": build_s, "hnsw": results, "hnsw_filtered": filtered}
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
    if loupe.get("hnsw_filtered"):
        print("\nFiltered (a filter keeping a share of the items, picked by a hash of the key (independent) or as whole "
              "clusters (clustered); Loupe: compared one by one when few, else a filtered graph walk; pgvector: its "
              "planner's choice, HNSW with iterative scan in strict order)\n")
        print("| filter | keeps | ef_search | Loupe q/s | recall@10 | pgvector q/s | recall@10 | pgvector plan | Loupe over pgvector |")
        print("|---|---|---|---|---|---|---|---|---|")
        for ours, theirs in zip(loupe["hnsw_filtered"], filtered):
            print(f"| {ours['filter']} | {int(ours['percent'])} % | {int(ours['ef_search'])} | {ours['qps']:.0f} | {ours['recall_at_10']:.3f} | "
                  f"{theirs['qps']:.0f} | {theirs['recall_at_10']:.3f} | {theirs['plan']} | {ours['qps'] / theirs['qps']:.2f} |")


if __name__ == "__main__":
    main()
