#!/usr/bin/env python3
"""Makes Loupe's reference fixtures. Run by hand; see README.md beside this file.

Writes, under Tests/Fixtures/:
  clip-vocab/        vocab.json + merges.txt built from OpenAI's BPE file (as shipped in open_clip)
  models/<name>/     tiny random-weight CLIP checkpoints in Hugging Face format
  images/            generated test images (several sizes, aspect ratios, formats and modes)
  reference/         token ids (open_clip tokenizer), resized crops, pixel values and embeddings
                     from transformers' CLIPModel + CLIPImageProcessorPil
and Sources/CLIP/Resources/text_tables.json (character tables from Python's html module and ftfy).
"""
import gzip
import html
import html.entities
import io
import json
import os
import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageOps
from safetensors.torch import save_file

import ftfy.bad_codecs  # noqa: F401  (registers sloppy-windows-1252)
import ftfy.chardata
import ftfy.fixes
import open_clip
from open_clip.tokenizer import bytes_to_unicode, default_bpe
from transformers import CLIPConfig, CLIPModel
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
torch.set_num_threads(2)


# MARK: - vocabulary

def write_vocabulary():
    """vocab.json / merges.txt exactly as OpenAI's simple_tokenizer builds its tables."""
    lines = gzip.open(default_bpe()).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    out = HERE / "clip-vocab"
    out.mkdir(exist_ok=True)
    (out / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False))
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    assert len(vocab) == 49408


def write_text_tables():
    cp1252 = bytes(range(0x80, 0x100)).decode("sloppy-windows-1252")
    tables = {
        "html5": html.entities.html5,
        "invalid_charrefs": {str(k): v for k, v in html._invalid_charrefs.items()},
        "invalid_codepoints": sorted(html._invalid_codepoints),
        "ftfy_entities": ftfy.chardata.HTML_ENTITIES,
        "ligatures": {str(k): v for k, v in ftfy.chardata.LIGATURES.items()},
        "widths": {str(k): v for k, v in ftfy.chardata.WIDTH_MAP.items()},
        "controls": sorted(ftfy.chardata.CONTROL_CHARS.keys()),
        "cp1252": list(cp1252),
    }
    path = ROOT / "Sources/CLIP/Resources/text_tables.json"
    path.write_text(json.dumps(tables, ensure_ascii=False, sort_keys=True))


# MARK: - strings for the tokenizer

def tokenizer_strings():
    base = [
        "a blue house", "A photo of a cat", "a painting of a ship at sea", "", " ", "hello world",
        "HELLO WORLD", "Hello, World!", "it's", "It's", "IT'S", "don't stop", "they're here", "we've been",
        "I'm fine", "you'll see", "he'd go", "can't won't shouldn't", "'s alone", "''s", "rock 'n' roll",
        "café", "naïve façade", "Ångström", "São Paulo", "Zürich über alles", "crème brûlée", "ŁÓDŹ",
        "Ελληνικά γράμματα", "ΟΔΟΣ", "Москва зимой", "日本語のテキスト", "中文字符测试", "한국어 문장",
        "ภาษาไทย", "العربية", "עברית", "हिन्दी", "🙂", "I ❤️ NY", "👩‍👩‍👧‍👦 family", "🇫🇷 flag",
        "emoji🙂inside", "!!!", "???!!!...", "--->", "a...b", "(parenthesised)", "[brackets] {braces}",
        "#hashtag @mention", "e-mail@example.com", "https://example.com/path?q=1&r=2", "C:\\Windows\\System32",
        "12345", "3.14159", "1,000,000", "2023-04-15", "10:30pm", "½ cup", "²³", "Ⅻ", "٣ arabic digit",
        "the year 1889", "$100 and €50 and £20 and ¥1000", "50% off", "a+b=c", "x^2 + y^2 = z^2",
        "tab\tseparated", "new\nline", "multiple   spaces", "  leading and trailing  ", "\u00a0nbsp\u00a0",
        "zero\u200bwidth", "soft\u00adhyphen", "line\u2028separator", "ideographic\u3000space",
        "She said “hello”", "it’s curly", "‘single’ quotes", "„German“ quotes", "«French» quotes",
        "the ﬁrst ﬂoor", "ﬀ ﬃ ﬄ", "Ｆｕｌｌ　ｗｉｄｔｈ", "ｶﾀｶﾅ halfwidth", "&amp;", "&lt;tag&gt;",
        "fish &amp; chips", "&mdash; dash", "&#39;quoted&#39;", "&#x263A; smile", "&nbsp;space",
        "&amp;amp;", "&copy 2020", "AT&T", "this&not that", "&NTILDE;", "P&EACUTE;REZ", "<b>bold</b> &amp;",
        "cafÃ©", "Ã©tÃ©", "donâ€™t", "Â£5", "naÃ¯ve", "\x1b[31mred\x1b[0m", "bell\x07char", "C1\x85control",
        "e\u0301 combining", "n\u0303", "Å vs A\u030a", "İstanbul", "ǅungla", "ß strasse", "ΣΊΣΥΦΟΣ",
        "<start_of_text>", "before <end_of_text> after", "<|endoftext|>", "a" * 300, "ab " * 60,
        "supercalifragilisticexpialidocious", "pneumonoultramicroscopicsilicovolcanoconiosis",
        "The Starry Night by Vincent van Gogh", "Mona Lisa, Leonardo da Vinci, oil on poplar panel",
        "Portrait of a young woman, Rococo, French school, 1751-1800",
        "a still life with flowers, fruit and a dead partridge on a marble ledge",
        "religious painting: the Annunciation", "landscape with windmills near Haarlem",
        "don't panic!", "ROCK-N-ROLL", "state-of-the-art", "U.S.A.", "Mr. & Mrs. Smith", "O'Brien's",
        "snake_case_name", "camelCaseName", "PascalCase", "1st 2nd 3rd 4th", "007", "v2.0.1", "#1",
        "😀😃😄😁", "✓ ✗ ★ ☆", "→ ← ↑ ↓", "©®™", "§¶†‡", "…", "—–-", "•·°", "µ", "Ω ohm",
        "ñandú", "Ærø", "œuvre", "ĳssel", "ŉ", "Ǆ", "ᴬᴮ superscript letters", "ℌ𝔢𝔩𝔩𝔬 fraktur",
        "𝐛𝐨𝐥𝐝 math", "Ⓐ circled", "ｱｲｳ", "ﾟ", "\ufeffBOM at start", "text\ufeff", "\u2060joiner",
        "x" * 76, "word " * 80,
    ]
    words = ["painting", "portrait", "river", "mountain", "Madonna", "child", "sunset", "boats",
             "harbour", "still", "life", "baroque", "impressionist", "école", "naïf", "rené", "größe"]
    rng = random.Random(7)
    generated = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 12))) for _ in range(40)]
    punct = [rng.choice(words) + rng.choice(["!", "?", "...", ",", ";", ":", "'s", "'", '"']) for _ in range(20)]
    strings = base + generated + punct
    assert len(strings) >= 200, len(strings)
    return strings


def reference_ids(tokenizer, text):
    sot = tokenizer.sot_token_id
    eot = tokenizer.eot_token_id
    ids = [sot] + tokenizer.encode(text) + [eot]
    if len(ids) > 77:
        ids = ids[:77]
        ids[-1] = eot
    padded = tokenizer([text])[0].tolist()
    assert padded[: len(ids)] == ids, text
    return ids


# MARK: - images

def make_images():
    out = HERE / "images"
    out.mkdir(exist_ok=True)
    rng = np.random.default_rng(11)

    def scene(width, height, seed):
        """Gradients, shapes and a little noise: smooth enough to compress, busy enough to resample."""
        y, x = np.mgrid[0:height, 0:width].astype(np.float32)
        r = 127 + 120 * np.sin(x / (17 + seed)) * np.cos(y / 23)
        g = 255 * x / max(width - 1, 1)
        b = 255 * (1 - y / max(height - 1, 1))
        image = np.stack([r, g, b], axis=-1) + rng.normal(0, 2, (height, width, 3))
        image = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB")
        draw = ImageDraw.Draw(image)
        for i in range(6):
            x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
            x1, y1 = x0 + int(rng.integers(5, max(6, width // 3))), y0 + int(rng.integers(5, max(6, height // 3)))
            color = tuple(int(c) for c in rng.integers(0, 256, 3))
            (draw.ellipse if i % 2 else draw.rectangle)([x0, y0, x1, y1], fill=color)
        return image

    scene(512, 384, 1).save(out / "landscape_rgb_512x384.png")
    scene(300, 500, 2).save(out / "portrait_rgb_300x500.png")
    scene(257, 199, 3).convert("L").save(out / "gray_l_257x199.png")
    rgba = scene(400, 300, 4).convert("RGBA")
    alpha = np.tile(np.linspace(0, 255, 400, dtype=np.uint8), (300, 1))
    rgba.putalpha(Image.fromarray(alpha, "L"))
    rgba.save(out / "alpha_rgba_400x300.png")
    scene(200, 150, 5).quantize(colors=16).save(out / "palette_p_200x150.png")
    scene(50, 40, 6).save(out / "tiny_rgb_50x40.png")
    scene(800, 200, 7).save(out / "wide_lossless_800x200.webp", lossless=True)
    scene(800, 600, 8).save(out / "photo_progressive_800x600.jpg", quality=90, progressive=True)
    scene(320, 240, 9).convert("L").save(out / "gray_l_320x240.jpg", quality=85)
    scene(360, 240, 10).convert("CMYK").save(out / "cmyk_360x240.jpg", quality=92)
    scene(150, 100, 11).save(out / "bitmap_rgb_150x100.bmp")
    scene(130, 170, 12).save(out / "tiff_rgb_130x170.tiff")
    scene(120, 90, 13).quantize(colors=64).save(out / "frame_gif_120x90.gif")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90° clockwise to display
    scene(240, 160, 14).save(out / "exif_rotated_240x160.jpg", quality=90, exif=exif.tobytes())


# MARK: - models

MODELS = {
    # quick_gelu, OpenAI's preprocessing, float16 weights, 3 attention heads.
    "tiny-quickgelu": dict(
        dtype=torch.float16,
        config=dict(
            projection_dim=16,
            text_config=dict(hidden_size=24, intermediate_size=48, num_hidden_layers=2, num_attention_heads=3,
                             max_position_embeddings=77, hidden_act="quick_gelu", vocab_size=49408,
                             bos_token_id=49406, eos_token_id=49407, pad_token_id=1),
            vision_config=dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=3,
                               image_size=224, patch_size=32, hidden_act="quick_gelu"),
        ),
        preprocessor=dict(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}),
    ),
    # exact gelu, another crop and normalisation, bfloat16 weights, 5 attention heads, eps 1e-6.
    "tiny-gelu": dict(
        dtype=torch.bfloat16,
        config=dict(
            projection_dim=12,
            text_config=dict(hidden_size=16, intermediate_size=40, num_hidden_layers=2, num_attention_heads=2,
                             max_position_embeddings=77, hidden_act="gelu", vocab_size=49408, layer_norm_eps=1e-6,
                             bos_token_id=49406, eos_token_id=49407, pad_token_id=1),
            vision_config=dict(hidden_size=40, intermediate_size=64, num_hidden_layers=3, num_attention_heads=5,
                               image_size=64, patch_size=16, hidden_act="gelu", layer_norm_eps=1e-6),
        ),
        preprocessor=dict(size={"shortest_edge": 72}, crop_size={"height": 64, "width": 64},
                          image_mean=[0.5, 0.4, 0.3], image_std=[0.25, 0.3, 0.35]),
    ),
}

PREPROCESSOR_DEFAULTS = dict(
    do_resize=True, resample=3, do_center_crop=True, do_rescale=True, rescale_factor=1 / 255,
    do_normalize=True, do_convert_rgb=True,
    image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711],
)


def build_model(name, spec):
    torch.manual_seed(sum(map(ord, name)))
    config = CLIPConfig(**spec["config"])
    model = CLIPModel(config).eval()
    # Random weights with more spread than the default initialisation, so layers really mix.
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if key.endswith("position_ids"):
                continue
            if "norm" in key and key.endswith("weight"):
                tensor.copy_(1 + 0.1 * torch.randn_like(tensor))
            else:
                tensor.copy_(0.08 * torch.randn_like(tensor))
    stored = {k: v.to(spec["dtype"]).contiguous() for k, v in model.state_dict().items() if not k.endswith("position_ids")}
    # The reference runs in float32 on exactly the stored (rounded) weights.
    model.load_state_dict({k: v.float() for k, v in stored.items()}, strict=False)

    folder = HERE / "models" / name
    folder.mkdir(parents=True, exist_ok=True)
    save_file(stored, folder / "model.safetensors", metadata={"format": "pt"})
    config_dict = config.to_dict()
    config_dict["architectures"] = ["CLIPModel"]
    (folder / "config.json").write_text(json.dumps(config_dict, indent=2, sort_keys=True))
    preprocessor = {**PREPROCESSOR_DEFAULTS, **spec["preprocessor"], "image_processor_type": "CLIPImageProcessor"}
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2, sort_keys=True))
    for file in ["vocab.json", "merges.txt"]:
        link = folder / file
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(Path("../../clip-vocab") / file)
    return model, preprocessor


def l2(vector):
    return (vector / vector.norm(dim=-1, keepdim=True)).tolist()


def reference_outputs(name, model, preprocessor, tokenizer, texts, spec_saves_pixels):
    """Embeddings of `texts` and of every image; resized crops; pixel values when asked (they are large)."""
    kwargs = {k: v for k, v in preprocessor.items() if k != "image_processor_type"}
    processor = CLIPImageProcessorPil(**kwargs)
    crops = CLIPImageProcessorPil(**{**kwargs, "do_rescale": False, "do_normalize": False})
    crop_dir = HERE / "reference" / "crops" / name
    pixel_dir = HERE / "reference" / "pixels" / name
    crop_dir.mkdir(parents=True, exist_ok=True)
    if spec_saves_pixels:
        pixel_dir.mkdir(parents=True, exist_ok=True)
    result = {"model": name, "texts": [], "images": []}
    with torch.no_grad():
        for text in texts:
            ids = reference_ids(tokenizer, text)
            padded = torch.tensor([ids + [0] * (77 - len(ids))])
            pooled = model.text_model(input_ids=padded).pooler_output
            result["texts"].append({"text": text, "vector": l2(model.text_projection(pooled)[0])})
        for path in sorted((HERE / "images").iterdir()):
            image = ImageOps.exif_transpose(Image.open(path))
            pixel_values = processor(image, return_tensors="pt")["pixel_values"]
            crop = crops(image, return_tensors="np")["pixel_values"][0]
            Image.fromarray(np.round(crop).astype(np.uint8).transpose(1, 2, 0), "RGB").save(crop_dir / (path.name + ".png"))
            if spec_saves_pixels:
                pixel_values.numpy().astype("<f4").tofile(pixel_dir / (path.name + ".f32"))
            pooled = model.vision_model(pixel_values=pixel_values).pooler_output
            result["images"].append({"file": path.name, "vector": l2(model.visual_projection(pooled)[0])})
    (HERE / "reference" / f"{name}.json").write_text(json.dumps(result, ensure_ascii=False, indent=1))


def main():
    write_vocabulary()
    write_text_tables()
    make_images()
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    strings = tokenizer_strings()
    (HERE / "reference").mkdir(exist_ok=True)
    tokens = [{"text": s, "ids": reference_ids(tokenizer, s)} for s in strings]
    (HERE / "reference" / "tokens.json").write_text(json.dumps(tokens, ensure_ascii=False, indent=0))
    embedded_texts = [s for s in strings if s.strip()][:40:2] + ["a blue house", "x" * 300]
    for name, spec in MODELS.items():
        model, preprocessor = build_model(name, spec)
        reference_outputs(name, model, preprocessor, tokenizer, embedded_texts, name == "tiny-gelu")


if __name__ == "__main__":
    main()
