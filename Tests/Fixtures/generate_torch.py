#!/usr/bin/env python3
"""Makes the PyTorch-format checkpoints Loupe's loader is tested on, from the committed safetensors
weights (so nothing is drawn at random again). Run by hand; see README.md beside this file.

Writes, under Tests/Fixtures/torch/:
  tiny-quickgelu/pytorch_model.bin
      the float16 weights of models/tiny-quickgelu as transformers 4 saved a state dict
      (torch.save of the tensors, with the int64 `position_ids` buffers it kept then)
  tiny-gelu-sharded/pytorch_model-0000N-of-00002.bin + pytorch_model.bin.index.json
      the bfloat16 weights of models/tiny-gelu in two shards; each attention's q, k and v weights are views
      into one storage (non-zero storage offsets) and visual_projection.weight is a transposed view
      (strides that are not row-major)
  float32.bin
      three float32 tensors: a [4, 3] matrix, its transpose as a view of the same storage, and a slice
      of it (storage offset 3)
  forbidden-global.bin
      a state dict that also holds an object whose pickle calls os.system: a checkpoint that must be
      refused without running anything
"""
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file

HERE = Path(__file__).resolve().parent
OUT = HERE / "torch"


def with_position_ids(state, config):
    state = dict(state)
    state["text_model.embeddings.position_ids"] = torch.arange(config["text_config"]["max_position_embeddings"]).unsqueeze(0)
    vision = config["vision_config"]
    patches = (vision["image_size"] // vision["patch_size"]) ** 2 + 1
    state["vision_model.embeddings.position_ids"] = torch.arange(patches).unsqueeze(0)
    return state


def single_file():
    name = "tiny-quickgelu"
    config = json.loads((HERE / "models" / name / "config.json").read_text())
    state = with_position_ids(load_file(HERE / "models" / name / "model.safetensors"), config)
    folder = OUT / name
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / "pytorch_model.bin")


def sharded_with_views():
    name = "tiny-gelu"
    state = load_file(HERE / "models" / name / "model.safetensors")
    shards = [{}, {}]
    for key in sorted(state):
        if key.endswith(("k_proj.weight", "v_proj.weight")):
            continue  # stored with their q_proj below
        shard = shards[0] if key.startswith("text_model") else shards[1]
        if key.endswith("q_proj.weight"):
            parts = [state[key], state[key.replace("q_proj", "k_proj")], state[key.replace("q_proj", "v_proj")]]
            fused = torch.cat(parts)
            rows = parts[0].shape[0]
            for index, projection in enumerate(["q_proj", "k_proj", "v_proj"]):
                shard[key.replace("q_proj", projection)] = fused[index * rows : (index + 1) * rows]
        elif key == "visual_projection.weight":
            shard[key] = state[key].t().contiguous().t()
            assert not shard[key].is_contiguous()
        else:
            shard[key] = state[key]
    folder = OUT / f"{name}-sharded"
    folder.mkdir(parents=True, exist_ok=True)
    weight_map = {}
    for index, shard in enumerate(shards):
        file = f"pytorch_model-{index + 1:05d}-of-{len(shards):05d}.bin"
        torch.save(shard, folder / file)
        weight_map.update({key: file for key in shard})
    total = sum(t.numel() * t.element_size() for t in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index, indent=2) + "\n")


def float32_views():
    matrix = torch.arange(12, dtype=torch.float32).reshape(4, 3) / 8
    torch.save({"matrix": matrix, "transposed": matrix.t(), "rows": matrix[1:3]}, OUT / "float32.bin")


class RunsACommand:
    def __reduce__(self):
        return (os.system, ("echo loupe-ran-the-pickle > /tmp/loupe-pickle-ran",))


def forbidden_global():
    torch.save({"logit_scale": torch.tensor(2.5), "payload": RunsACommand()}, OUT / "forbidden-global.bin")


if __name__ == "__main__":
    single_file()
    sharded_with_views()
    float32_views()
    forbidden_global()
