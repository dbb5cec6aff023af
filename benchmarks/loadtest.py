#!/usr/bin/env python3
"""A bounded load test of `loupe serve` on loopback: image and text requests at 1, 8 and 64 concurrent
clients; prints throughput and p50/p99 latency per level as a Markdown table.
Usage: loadtest.py BASE_URL IMAGE_FILE [--requests N] [--key KEY]   (needs: requests)"""
import argparse
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests


def run_level(url, headers, body, clients, total):
    local = threading.local()

    def one(_):
        if not hasattr(local, "session"):
            local.session = requests.Session()
        start = time.perf_counter()
        response = local.session.post(url, headers=headers, data=body, timeout=300)
        elapsed = time.perf_counter() - start
        return elapsed, response.status_code

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(one, range(total)))
    wall = time.perf_counter() - started
    latencies = sorted(r[0] for r in results)
    failures = sum(1 for r in results if r[1] != 200)
    p99 = latencies[min(len(latencies) - 1, int(round(0.99 * (len(latencies) - 1))))]
    return total / wall, statistics.median(latencies) * 1000, p99 * 1000, failures


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("base")
    parser.add_argument("image")
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--key")
    args = parser.parse_args()
    common = {"Ocp-Apim-Subscription-Key": args.key} if args.key else {}
    image = open(args.image, "rb").read()
    text = b'{"text": "a painting of a blue house by the sea"}'
    kinds = [
        ("image", f"{args.base}/computervision/retrieval:vectorizeImage?api-version=2024-02-01",
         {**common, "Content-Type": "application/octet-stream"}, image),
        ("text", f"{args.base}/computervision/retrieval:vectorizeText?api-version=2024-02-01",
         {**common, "Content-Type": "application/json"}, text),
    ]
    print("| requests | clients | per second | p50 ms | p99 ms | failed |")
    print("|---|---|---|---|---|---|")
    for name, url, headers, body in kinds:
        run_level(url, headers, body, 1, 2)  # warm-up
        for clients in (1, 8, 64):
            total = max(args.requests, clients)
            rate, p50, p99, failures = run_level(url, headers, body, clients, total)
            print(f"| {name} × {total} | {clients} | {rate:.1f} | {p50:.0f} | {p99:.0f} | {failures} |", flush=True)


if __name__ == "__main__":
    main()
