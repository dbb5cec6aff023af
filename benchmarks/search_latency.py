#!/usr/bin/env python3
"""Time to results for the search page's text query on a large collection.
Creates collection `latency` through the running server (so it records the server's model), fills it
with synthetic unit vectors straight into the store's SQLite file, then times POST /collections/latency/search
as the page sends it (`k` 24): the first query (which loads or builds the index) and the median (p50), p90
and slowest of the next 60, each a different sentence, so nothing is answered from a cache.
Usage: search_latency.py BASE_URL DATA_FOLDER [--items 100000]   (needs: requests, numpy)"""
import argparse
import json
import sqlite3
import statistics
import time

import numpy as np
import requests

parser = argparse.ArgumentParser()
parser.add_argument("base")
parser.add_argument("data")
parser.add_argument("--items", type=int, default=100_000)
args = parser.parse_args()

requests.post(f"{args.base}/collections", json={"name": "latency"}, timeout=30)
dimension = next(c["dimension"] for c in requests.get(f"{args.base}/collections", timeout=30).json()["collections"]
                 if c["name"] == "latency")
rng = np.random.default_rng(0)
vectors = rng.standard_normal((args.items, dimension)).astype("<f4")
vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
with sqlite3.connect(f"{args.data}/loupe.sqlite") as db:
    db.executemany(
        "INSERT OR REPLACE INTO items (collection, id, source, content_hash, metadata, vector) VALUES (?, ?, ?, ?, ?, ?)",
        [("latency", f"item-{i}", "/nonexistent", f"{i:064x}",
          json.dumps({"TITLE": f"Painting {i}", "AUTHOR": f"Painter {i % 97}", "DATE": str(1400 + i % 500)}),
          vectors[i].tobytes()) for i in range(args.items)])

subjects = ["a blue house", "a portrait of a woman in a red dress", "boats in a harbour at sunset", "still life with fruit",
            "the annunciation", "a winter landscape with skaters", "a horse", "an old man reading", "a storm at sea",
            "angels playing music", "a market square", "a dog asleep by the fire"]
styles = ["", "in oil", "at night", "in the style of the Dutch masters", "seen from far away"]
queries = [f"{subject} {style}".strip() for style in styles for subject in subjects][:61]
times = []
for query in queries:
    start = time.perf_counter()
    response = requests.post(f"{args.base}/collections/latency/search", json={"text": query, "k": 24}, timeout=120)
    times.append((time.perf_counter() - start) * 1000)
    assert response.status_code == 200 and len(response.json()["results"]) == 24, response.text
later = sorted(times[1:])
print(json.dumps({"items": args.items, "first_ms": round(times[0], 1), "p50_ms": round(statistics.median(later), 1),
                  "p90_ms": round(later[int(0.9 * len(later))], 1), "max_ms": round(later[-1], 1), "queries": len(later)}))
