"""Schemathesis hooks for scripts/schemathesis.sh: every URL the generator writes into a body is pointed at
the loopback fixture server (an image, a missing file, bytes that are not an image, or a redirect), so the
URL-input operations are exercised without reaching anything else."""
import os
import zlib

import schemathesis

FIXTURES = os.environ["LOUPE_FIXTURE_URL"]
TARGETS = ["tiny_rgb_50x40.png", "photo_progressive_800x600.jpg", "cmyk_360x240.jpg", "no-such-image.png", "README.md"]


@schemathesis.hook
def map_body(ctx, body):
    if isinstance(body, dict) and isinstance(body.get("url"), str):
        choice = TARGETS[zlib.crc32(body["url"].encode("utf-8", "surrogatepass")) % len(TARGETS)]
        body = {**body, "url": f"{FIXTURES}/{choice}"}
    return body
