#!/usr/bin/env python3
"""Writes reference/classification.json: zero-shot label probabilities from transformers for every
committed model and fixture image. Reads the committed checkpoints, so it draws nothing at random.
Run with the environment of generate.py (see README.md): python Tests/Fixtures/generate_classification.py

For each model: CLIPModel(input_ids, pixel_values, attention_mask).logits_per_image, which is
exp(logit_scale) * cos(image, label), turned into probabilities with a softmax across the labels, as
transformers' zero-shot-image-classification pipeline does for CLIP.
"""
import json
from pathlib import Path

import torch
from PIL import Image, ImageOps
from transformers import CLIPModel, CLIPTokenizer
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

HERE = Path(__file__).resolve().parent
LABELS = ["a photo of a cat", "a blue house", "a painting of the sea", "a red car", "text", "a grey square"]
torch.set_num_threads(2)


def main():
    result = {"labels": LABELS, "models": {}}
    for folder in sorted((HERE / "models").iterdir()):
        model = CLIPModel.from_pretrained(folder, dtype=torch.float32).eval()
        tokenizer = CLIPTokenizer.from_pretrained(folder)
        settings = json.loads((folder / "preprocessor_config.json").read_text())
        processor = CLIPImageProcessorPil(**{k: v for k, v in settings.items() if k != "image_processor_type"})
        texts = tokenizer(LABELS, padding=True, return_tensors="pt")
        images = []
        with torch.no_grad():
            for path in sorted((HERE / "images").iterdir()):
                image = ImageOps.exif_transpose(Image.open(path))
                pixel_values = processor(image, return_tensors="pt")["pixel_values"]
                output = model(input_ids=texts["input_ids"], attention_mask=texts["attention_mask"], pixel_values=pixel_values)
                probabilities = output.logits_per_image.softmax(dim=-1)[0]
                images.append({"file": path.name, "probabilities": probabilities.tolist()})
        result["models"][folder.name] = {"logit_scale": model.logit_scale.item(), "images": images}
    (HERE / "reference" / "classification.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
