#!/usr/bin/env python3
"""Writes a full-size random-weight checkpoint in Hugging Face format:
  clip    the shapes and configuration of openai/clip-vit-base-patch32, with the real CLIP vocabulary;
  siglip  the shapes and configuration of google/siglip-base-patch16-224 (32,000-token vocabulary, 64
          positions, 224 px, patch 16), with the SentencePiece model of Tests/Fixtures/models/tiny-siglip.
Usage: make_checkpoint.py OUTPUT_FOLDER [clip|siglip]"""
import json
import shutil
import sys
from pathlib import Path

import torch
from transformers import CLIPConfig, CLIPModel, SiglipConfig, SiglipModel

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "Tests/Fixtures/models"


def clip(out):
    config = CLIPConfig(
        projection_dim=512,
        text_config=dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8,
                         max_position_embeddings=77, hidden_act="quick_gelu", vocab_size=49408,
                         bos_token_id=49406, eos_token_id=49407, pad_token_id=1),
        vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                           image_size=224, patch_size=32, hidden_act="quick_gelu"),
    )
    CLIPModel(config).eval().save_pretrained(out, safe_serialization=True)
    for name in ["vocab.json", "merges.txt"]:
        shutil.copy(ROOT / "Tests/Fixtures/clip-vocab" / name, out / name)
    shutil.copy(FIXTURES / "tiny-quickgelu/preprocessor_config.json", out / "preprocessor_config.json")


def siglip(out):
    config = SiglipConfig(
        text_config=dict(vocab_size=32000, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                         num_attention_heads=12, max_position_embeddings=64, pad_token_id=1, eos_token_id=1),
        vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                           image_size=224, patch_size=16),
    )
    SiglipModel(config).eval().save_pretrained(out, safe_serialization=True)
    for name in ["spiece.model", "tokenizer_config.json"]:
        shutil.copy(FIXTURES / "tiny-siglip" / name, out / name)
    settings = json.loads((FIXTURES / "tiny-siglip/processor_config.json").read_text())["image_processor"]
    settings["size"] = {"height": 224, "width": 224}
    (out / "preprocessor_config.json").write_text(json.dumps(settings, indent=2))


def main(out: Path, family: str):
    if (out / "model.safetensors").exists():
        print(f"reusing {out}")
        return
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    {"clip": clip, "siglip": siglip}[family](out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "clip")
