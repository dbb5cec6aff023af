#!/usr/bin/env python3
"""Load tests of `loupe serve` on loopback (needs: requests).

Levels: image and text requests at 1, 8 and 64 concurrent clients; prints throughput and p50/p99 latency
per level as a Markdown table.
    loadtest.py BASE_URL IMAGE_FILE [--requests N] [--key KEY]

Soak: CLIENTS clients (64 by default) send a mix of images and texts for SECONDS without pause; prints
the status counts, throughput and latency by kind, and the server's resident memory (read from /proc
every 10 s) so that growth shows.
    loadtest.py BASE_URL IMAGE_FILE [IMAGE_FILE...] --soak SECONDS --pid SERVER_PID [--clients 64]"""
import argparse
import collections
import random
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


def resident_mb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def soak(args, common):
    images = [open(path, "rb").read() for path in args.images]
    texts = ["a blue house", "a painting of a ship in a storm at sea, oil on canvas", "portrait of a woman in a red dress",
             "still life with flowers and fruit", "ein blaues Haus am Meer"]
    image_url = f"{args.base}/computervision/retrieval:vectorizeImage?api-version=2024-02-01"
    text_url = f"{args.base}/computervision/retrieval:vectorizeText?api-version=2024-02-01"
    deadline = time.monotonic() + args.soak
    lock = threading.Lock()
    statuses = collections.Counter()
    latencies = collections.defaultdict(list)
    errors = collections.Counter()

    def client(number):
        session = requests.Session()
        chooser = random.Random(number)
        while time.monotonic() < deadline:
            if chooser.random() < 0.5:
                kind, url, headers, body = "image", image_url, {**common, "Content-Type": "application/octet-stream"}, chooser.choice(images)
            else:
                kind, url, headers = "text", text_url, {**common, "Content-Type": "application/json"}
                body = ('{"text": "%s"}' % chooser.choice(texts)).encode()
            start = time.perf_counter()
            try:
                status = session.post(url, headers=headers, data=body, timeout=120).status_code
            except requests.RequestException as error:
                with lock:
                    errors[type(error).__name__] += 1
                continue
            with lock:
                statuses[status] += 1
                latencies[kind].append(time.perf_counter() - start)

    memory = []
    threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        memory.append((time.monotonic() - started, resident_mb(args.pid)))
        time.sleep(10)
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    total = sum(statuses.values())
    print(f"{args.clients} clients for {wall:.0f} s: {total} requests, {total / wall:.1f}/s; "
          f"statuses {dict(sorted(statuses.items()))}; client errors {dict(errors)}; "
          f"5xx {sum(n for s, n in statuses.items() if s >= 500)}")
    print("| kind | requests | per second | p50 ms | p99 ms |")
    print("|---|---|---|---|---|")
    for kind, values in sorted(latencies.items()):
        values.sort()
        p99 = values[min(len(values) - 1, int(round(0.99 * (len(values) - 1))))]
        print(f"| {kind} | {len(values)} | {len(values) / wall:.1f} | {statistics.median(values) * 1000:.0f} | {p99 * 1000:.0f} |")
    minute = [rss for t, rss in memory if t <= 60]
    last = [rss for t, rss in memory if t >= wall - 60]
    print(f"server RSS MB: after the first minute {max(minute):.0f}, peak {max(r for _, r in memory):.0f}, "
          f"last minute {min(last):.0f}-{max(last):.0f}")
    print("RSS every minute: " + ", ".join(f"{rss:.0f}" for t, rss in memory[::6]))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("base")
    parser.add_argument("images", nargs="+")
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--key")
    parser.add_argument("--soak", type=float, help="seconds of continuous mixed load")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--pid", type=int, help="the server's process id (soak: its memory is sampled)")
    args = parser.parse_args()
    common = {"Ocp-Apim-Subscription-Key": args.key} if args.key else {}
    if args.soak:
        soak(args, common)
        return
    image = open(args.images[0], "rb").read()
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
