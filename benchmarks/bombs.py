#!/usr/bin/env python3
"""Decompression bombs against a running `loupe serve`: COUNT grey PNGs of SIDE×SIDE pixels (a few hundred
kilobytes each, gigabytes decoded) sent at once, while /health and a text are timed every 0.25 s and the
server's resident memory is sampled from /proc. Prints the bombs' statuses and times, the slowest health
and text answers, and the peak memory.
    bombs.py BASE_URL --pid SERVER_PID [--count 4] [--side 16000]      (needs: requests)"""
import argparse
import struct
import threading
import time
import zlib

import requests

from loadtest import resident_mb  # benchmarks/ is on the path: the script's own folder


def grey_png(side):
    rows = zlib.compress(bytes(side + 1) * side, 9)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("base")
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--side", type=int, default=16000)
    args = parser.parse_args()
    bomb = grey_png(args.side)
    image_url = f"{args.base}/computervision/retrieval:vectorizeImage?api-version=2024-02-01"
    text_url = f"{args.base}/computervision/retrieval:vectorizeText?api-version=2024-02-01"
    results = []

    def send():
        start = time.perf_counter()
        response = requests.post(image_url, headers={"Content-Type": "image/png"}, data=bomb, timeout=600)
        results.append((response.status_code, time.perf_counter() - start))

    before = resident_mb(args.pid)
    threads = [threading.Thread(target=send) for _ in range(args.count)]
    for thread in threads:
        thread.start()
    health, text, peak = [], [], before
    while any(thread.is_alive() for thread in threads):
        start = time.perf_counter()
        requests.get(f"{args.base}/health", timeout=60)
        health.append(time.perf_counter() - start)
        start = time.perf_counter()
        requests.post(text_url, headers={"Content-Type": "application/json"}, data=b'{"text": "a blue house"}', timeout=60)
        text.append(time.perf_counter() - start)
        peak = max(peak, resident_mb(args.pid))
        time.sleep(0.25)
    for thread in threads:
        thread.join()
    print(f"{args.count} bombs of {len(bomb) // 1024} KB, {args.side}×{args.side}: statuses {sorted(s for s, _ in results)}, "
          f"{max(t for _, t in results):.1f} s for all")
    print(f"while they decoded: {len(health)} health checks, slowest {max(health) * 1000:.0f} ms; "
          f"texts slowest {max(text) * 1000:.0f} ms")
    print(f"server RSS: {before:.0f} MB before, {peak:.0f} MB peak")


if __name__ == "__main__":
    main()
