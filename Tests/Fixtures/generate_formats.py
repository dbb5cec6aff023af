#!/usr/bin/env python3
"""Makes the HEIC, AVIF and ICO fixtures and what Pillow decodes them to. Run by hand; see README.md.

Writes, under Tests/Fixtures/formats/:
  *.heic, *.avif   written by pillow-heif and Pillow (photo-like, rotated/mirrored through the file's
                   own irot/imir boxes, with alpha)
  *.ico            written by Pillow (PNG and 32-bit bitmap entries) and by the bitmap writer below
                   (palette, 1/4/8/16/24-bit entries with AND masks, entries of equal size and
                   different depths)
  reference/*.png  each file as the reference opens it, ImageOps.exif_transpose(Image.open(path)),
                   converted to RGBA
  reference/formats.json  sizes, modes and the library versions that made them
"""
import io
import json
import random
import struct
from pathlib import Path

import numpy as np
import pillow_heif
import PIL
from PIL import Image, ImageDraw, ImageOps

HERE = Path(__file__).resolve().parent / "formats"
REFERENCE = HERE / "reference"
pillow_heif.register_heif_opener()


def photo(width, height, seed):
    """Gradients, shapes and grain: chroma edges and texture, as a photo has."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height) + 64], axis=-1)
    image = Image.fromarray(np.clip(base + rng.normal(0, 9, base.shape), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    random.seed(seed)
    for _ in range(12):
        x0, y0 = random.randrange(width), random.randrange(height)
        size = random.randrange(8, max(9, width // 3))
        colour = tuple(random.randrange(256) for _ in range(3))
        (draw.ellipse if random.random() < 0.5 else draw.rectangle)((x0, y0, x0 + size, y0 + size), fill=colour)
    return image


def with_alpha(image):
    width, height = image.size
    y, x = np.mgrid[0:height, 0:width]
    alpha = (255 * x / max(1, width - 1)).astype(np.uint8)
    alpha[: height // 4] = 0
    rgba = image.convert("RGBA")
    rgba.putalpha(Image.fromarray(alpha))
    return rgba


def exif_orientation(value):
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


# MARK: - bitmap icons

def dib(image, bits, mask):
    """A BMP info header, palette, bottom-up colour rows and AND mask rows (1 = transparent)."""
    width, height = image.size
    palette = b""
    if bits <= 8:
        indexed = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=1 << bits)
        colours = indexed.getpalette()[: 3 * (1 << bits)]
        colours += [0] * (3 * (1 << bits) - len(colours))
        palette = b"".join(bytes((colours[3 * i + 2], colours[3 * i + 1], colours[3 * i], 0)) for i in range(1 << bits))
        samples = np.array(indexed)
    else:
        samples = np.array(image.convert("RGB"))
    rows = []
    for row in range(height - 1, -1, -1):
        if bits <= 8:
            bitstring = "".join(format(int(v), f"0{bits}b") for v in samples[row])
            data = int(bitstring, 2).to_bytes(len(bitstring) // 8 + (len(bitstring) % 8 > 0), "big") if bitstring else b""
            if len(bitstring) % 8:
                data = (int(bitstring, 2) << (8 - len(bitstring) % 8)).to_bytes(len(data), "big")
        elif bits == 16:
            r, g, b = (samples[row].astype(np.uint16) >> 3).T
            data = ((r << 10) | (g << 5) | b).astype("<u2").tobytes()
        else:
            data = samples[row][:, ::-1].tobytes()
        rows.append(data + b"\0" * ((-len(data)) % 4))
    mask_rows = []
    for row in range(height - 1, -1, -1):
        bitstring = "".join("1" if mask[row][col] else "0" for col in range(width))
        bitstring += "0" * ((-len(bitstring)) % 32)
        mask_rows.append(int(bitstring, 2).to_bytes(len(bitstring) // 8, "big"))
    header = struct.pack("<IiiHHIIiiII", 40, width, 2 * height, 1, bits, 0, 0, 0, 0, 0, 0)
    return header + palette + b"".join(rows) + b"".join(mask_rows)


def icon(entries):
    """An ICO file of (width, height, bits, data) entries, in this order."""
    directory, payload = b"", b""
    offset = 6 + 16 * len(entries)
    for width, height, bits, data in entries:
        directory += struct.pack("<BBBBHHII", width % 256, height % 256, 0, 0, 1, bits, len(data), offset + len(payload))
        payload += data
    return struct.pack("<HHH", 0, 1, len(entries)) + directory + payload


def ring_mask(width, height):
    return [[((x - width / 2) ** 2 + (y - height / 2) ** 2) > (min(width, height) / 2.2) ** 2 for x in range(width)] for y in range(height)]


def main():
    HERE.mkdir(exist_ok=True)
    REFERENCE.mkdir(exist_ok=True)
    files = {}

    # HEIC (pillow-heif: libheif + x265) and AVIF (Pillow: libavif + aom), 4:2:0 as cameras write them.
    for extension, format in (("heic", "HEIF"), ("avif", "AVIF")):
        options = {"quality": 90}
        photo(480, 320, 1).save(HERE / f"photo.{extension}", format=format, **options)
        files[f"photo.{extension}"] = None
        photo(120, 80, 2).save(HERE / f"rotated.{extension}", format=format, exif=exif_orientation(6), **options)
        files[f"rotated.{extension}"] = None
        photo(96, 64, 3).save(HERE / f"transposed.{extension}", format=format, exif=exif_orientation(5), **options)
        files[f"transposed.{extension}"] = None
        with_alpha(photo(200, 150, 4)).save(HERE / f"alpha.{extension}", format=format, **options)
        files[f"alpha.{extension}"] = None

    # Pillow's own icons: PNG entries (its default) and 32-bit bitmaps, four sizes each.
    source = with_alpha(photo(64, 64, 5))
    source.save(HERE / "png-entries.ico", sizes=[(16, 16), (24, 24), (32, 32), (64, 64)])
    source.save(HERE / "bitmap-32.ico", sizes=[(16, 16), (32, 32), (48, 48)], bitmap_format="bmp")
    files["png-entries.ico"] = files["bitmap-32.ico"] = None
    # Bitmaps with AND masks; sides that are not multiples of 32 pad the mask rows.
    for bits, side in ((1, 40), (4, 36), (8, 45), (16, 30), (24, 50)):
        image = photo(side, side, 10 + bits)
        (HERE / f"bitmap-{bits}.ico").write_bytes(icon([(side, side, bits, dib(image, bits, ring_mask(side, side)))]))
        files[f"bitmap-{bits}.ico"] = None
    # Equal sizes, different depths, and a smaller entry: Pillow opens the lowest depth of the largest.
    red, blue = Image.new("RGB", (32, 32), (220, 30, 30)), Image.new("RGB", (32, 32), (30, 30, 220))
    no_mask = [[False] * 32 for _ in range(32)]
    (HERE / "depths.ico").write_bytes(icon([
        (16, 16, 24, dib(Image.new("RGB", (16, 16), (30, 220, 30)), 24, [[False] * 16 for _ in range(16)])),
        (32, 32, 24, dib(red, 24, no_mask)),
        (32, 32, 8, dib(blue, 8, no_mask)),
    ]))
    files["depths.ico"] = None

    summary = {"pillow": PIL.__version__, "pillow_heif": pillow_heif.__version__,
               "libheif": pillow_heif.libheif_version(), "files": {}}
    for name in sorted(files):
        opened = Image.open(HERE / name)
        image = ImageOps.exif_transpose(opened)
        summary["files"][name] = {"mode": opened.mode, "size": list(image.size)}
        image.convert("RGBA").save(REFERENCE / (name.rsplit(".", 1)[0] + "-" + name.rsplit(".", 1)[1] + ".png"))
    (REFERENCE / "formats.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
