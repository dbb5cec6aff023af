#!/usr/bin/env python3
"""Writes a full-size random-weight ViT-B/32 CLIP checkpoint in Hugging Face format (same shapes and
configuration as openai/clip-vit-base-patch32), with the real CLIP vocabulary from Tests/Fixtures.
Usage: make_checkpoint.py OUTPUT_FOLDER"""
import json
import shutil
import sys
from pathlib import Path

import torch
from transformers import CLIPConfig, CLIPModel

ROOT = Path(__file__).resolve().parent.parent


def main(out: Path):
    if (out / "model.safetensors").exists():
        print(f"reusing {out}")
        return
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    config = CLIPConfig(
        projection_dim=512,
        text_config=dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8,
                         max_position_embeddings=77, hidden_act="quick_gelu", vocab_size=49408,
                         bos_token_id=49406, eos_token_id=49407, pad_token_id=1),
        vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                           image_size=224, patch_size=32, hidden_act="quick_gelu"),
    )
    model = CLIPModel(config).eval()
    model.save_pretrained(out, safe_serialization=True)
    for name in ["vocab.json", "merges.txt"]:
        shutil.copy(ROOT / "Tests/Fixtures/clip-vocab" / name, out / name)
    shutil.copy(ROOT / "Tests/Fixtures/models/tiny-quickgelu/preprocessor_config.json", out / "preprocessor_config.json")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
