#!/usr/bin/env python3
"""Times the reference engines on a CLIP or SigLIP checkpoint: PyTorch eager and ONNX Runtime (CPU), the
same figures `loupe bench` prints. Texts are padded to the model's context (CLIP 77, SigLIP 64 tokens), as
both references run them.
Usage: reference.py MODEL_FOLDER THREADS BATCH IMAGES REPEATS WORK_FOLDER"""
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from transformers import AutoModel


class Vision(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        features = self.model.get_image_features(pixel_values=pixel_values).pooler_output
        return features / features.norm(dim=-1, keepdim=True)


class Text(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids):
        features = self.model.get_text_features(input_ids=input_ids).pooler_output
        return features / features.norm(dim=-1, keepdim=True)


def median_seconds(run, repeats):
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def throughput(run, batch, images):
    run()
    start = time.perf_counter()
    for _ in range(images // batch):
        run()
    return (images // batch * batch) / (time.perf_counter() - start)


def main(folder, threads, batch, images, repeats, work):
    threads, batch, images, repeats = int(threads), int(batch), int(images), int(repeats)
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads)
    model = AutoModel.from_pretrained(folder, dtype=torch.float32).eval()
    vision, text = Vision(model).eval(), Text(model).eval()
    rng = np.random.default_rng(0)
    size = model.config.vision_config.image_size
    pixels = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
    one = pixels[:1]
    if model.config.model_type == "siglip":  # always the whole context: "a blue house" then </s> padding
        long_ids = np.array([[3 + i % 400 for i in range(63)] + [1]], dtype=np.int64)
        short_ids = np.array([[11, 41, 51, 3, 100, 284, 4] + [1] * 57], dtype=np.int64)
    else:
        long_ids = np.array([[49406] + [320 + i % 300 for i in range(75)] + [49407]], dtype=np.int64)
        short_ids = np.array([[49406, 320, 1746, 1212, 49407] + [0] * 72], dtype=np.int64)

    results = {}
    with torch.inference_mode():
        tp = torch.from_numpy
        results["pytorch"] = {
            "images_per_s": throughput(lambda: vision(tp(pixels)), batch, images),
            "image_ms": median_seconds(lambda: vision(tp(one)), repeats) * 1000,
            "text77_ms": median_seconds(lambda: text(tp(long_ids)), repeats) * 1000,
            "text_short_ms": median_seconds(lambda: text(tp(short_ids)), repeats) * 1000,
        }
        vision_path, text_path = work / "vision.onnx", work / "text.onnx"
        if not vision_path.exists():
            torch.onnx.export(vision, (tp(one),), vision_path, input_names=["pixel_values"], output_names=["embeds"],
                              dynamic_axes={"pixel_values": {0: "batch"}}, opset_version=17, dynamo=False)
        if not text_path.exists():
            torch.onnx.export(text, (tp(long_ids),), text_path, input_names=["input_ids"], output_names=["embeds"],
                              opset_version=17, dynamo=False)

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    vision_session = ort.InferenceSession(str(vision_path), options, providers=["CPUExecutionProvider"])
    text_session = ort.InferenceSession(str(text_path), options, providers=["CPUExecutionProvider"])
    results["onnxruntime"] = {
        "images_per_s": throughput(lambda: vision_session.run(None, {"pixel_values": pixels}), batch, images),
        "image_ms": median_seconds(lambda: vision_session.run(None, {"pixel_values": one}), repeats) * 1000,
        "text77_ms": median_seconds(lambda: text_session.run(None, {"input_ids": long_ids}), repeats) * 1000,
        "text_short_ms": median_seconds(lambda: text_session.run(None, {"input_ids": short_ids}), repeats) * 1000,
    }
    print(json.dumps({engine: {k: round(v, 2) for k, v in figures.items()} for engine, figures in results.items()}))


if __name__ == "__main__":
    main(*sys.argv[1:7])
