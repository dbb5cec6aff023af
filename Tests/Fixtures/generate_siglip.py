#!/usr/bin/env python3
"""Makes Loupe's SigLIP fixtures. Run by hand; see README.md beside this file.

Writes, under Tests/Fixtures/:
  tokenizers/unigram.model          a SentencePiece Unigram model (nmt_nfkc) trained on siglip-corpus.txt
  tokenizers/bpe.model              a SentencePiece BPE model trained on the same
  tokenizers/bpe-byte-fallback.json a tokenizers BPE with byte fallback, Gemma's layout, trained on the same
  tokenizers/unigram.json           a tokenizers Unigram (NFKC, Metaspace), trained on the same
  models/tiny-siglip/               random SiglipModel: SentencePiece tokenizer (SiglipTokenizer), bicubic,
                                    float32, 3 text heads, 5 vision heads, 48 px
  models/tiny-siglip2/              random SiglipModel: tokenizer.json (Siglip2Tokenizer), bilinear, float16,
                                    64 px, 2 text heads, 3 vision heads; saved as transformers 5 saves it
  reference/siglip-tokens.json      ids of every string from sentencepiece, tokenizers and both processors
  reference/<model>.json            text and image embeddings and zero-shot probabilities from SiglipModel
  reference/crops/<model>/          resized 8-bit pixels from SiglipImageProcessorPil
"""
import json
import unicodedata
from pathlib import Path

import numpy as np
import sentencepiece as spm
import torch
from PIL import Image, ImageOps
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoProcessor, SiglipConfig, SiglipModel
from transformers import SiglipImageProcessorPil, SiglipProcessor, SiglipTokenizer
from transformers import Siglip2Tokenizer

HERE = Path(__file__).resolve().parent
torch.set_num_threads(2)

# MARK: - text

# Short phrases in many scripts: the training corpus of both tokenizers and part of the golden strings.
PHRASES = [
    "a blue house by the sea", "a photo of a cat", "two dogs playing in the snow", "the boat leaves the harbour",
    "une maison bleue au bord de la mer", "deux chiens jouent dans la neige", "le bateau quitte le port",
    "ein blaues Haus am Meer", "zwei Hunde spielen im Schnee", "Straße, Größe, Übermaß",
    "una casa azul junto al mar", "dos perros juegan en la nieve", "¿dónde está el barco?",
    "голубой дом у моря", "две собаки играют в снегу", "лодка покидает гавань",
    "ένα μπλε σπίτι δίπλα στη θάλασσα", "δύο σκύλοι παίζουν στο χιόνι",
    "بيت أزرق بجانب البحر", "كلبان يلعبان في الثلج", "القارب يغادر الميناء",
    "समुद्र के किनारे एक नीला घर", "बर्फ में खेलते दो कुत्ते", "नाव बंदरगाह छोड़ती है",
    "บ้านสีฟ้าริมทะเล", "สุนัขสองตัวเล่นในหิมะ", "เรือออกจากท่าเรือ",
    "海边的蓝色房子", "两只狗在雪中玩耍", "船离开港口", "海辺の青い家", "雪の中で遊ぶ二匹の犬", "船が港を出る",
    "바닷가의 파란 집", "눈 속에서 노는 두 마리 개", "배가 항구를 떠난다",
    "בית כחול ליד הים", "Mavi bir ev denizin kenarında", "Một ngôi nhà màu xanh bên bờ biển",
    "ఒక నీలం ఇల్లు", "একটি নীল বাড়ি", "ნიჭიერი ძაღლი", "Հայաստանի տուն",
]


def corpus_lines():
    """A deterministic corpus: every phrase, and phrases joined pairwise, several times."""
    lines = []
    for round_ in range(6):
        for i, phrase in enumerate(PHRASES):
            lines.append(phrase)
            lines.append(phrase + " " + PHRASES[(i * 7 + round_) % len(PHRASES)])
            lines.append(phrase.upper() if round_ % 2 else phrase.capitalize())
    return lines


def golden_strings():
    """≥ 300 strings: CLIP's 227 (tokens.json), the phrases, and hostile and unusual text."""
    clip = [entry["text"] for entry in json.loads((HERE / "reference" / "tokens.json").read_text())]
    extra = [
        "", " ", "\t", "\n", "   leading and trailing   ", "tabs\tand\nnewlines\r\nmixed", "many     spaces",
        "A Blue HOUSE!!!", "what's this? (a test) [really] {yes} <no> \"quoted\" 'single'", "e-mail: a@b.c; 50% off #1",
        "😀 emoji 🏠🌊", "👩‍👩‍👧 family", "🇫🇷 flag", "e\u0301 combining acute", "a\u0308\u0304 stacked marks",
        "ｆｕｌｌ－ｗｉｄｔｈ　ＡＢＣ１２３", "ﬁ ﬂ ligatures ﬀ", "Ⅻ roman ⅻ", "½ ¾ fractions", "x² y³ superscripts",
        "caf\u00e9 vs cafe\u0301", "\u00a0non-breaking\u00a0space", "zero\u200bwidth", "soft\u00adhyphen",
        "ＨＥＬＬＯ　ｗｏｒｌｄ", "㍿ ㌔ squared", "ᄀᄁᄂ old hangul jamo", "ا ب ت ث", "नमस्ते", "ﷺ ligature",
        "▁already▁underscored▁", "<unk> in text", "</s> end in text", "<pad> pad", "<bos>", "<eos>",
        "word " * 80, "a" * 300, "日本語" * 40, "long sentence " + " ".join(PHRASES),
        "\u0000nul", "\u0007bell", "\ufeffbom", "\U0010fffd private", "\ud7ff edge",
    ]
    strings = clip + PHRASES + [p.upper() for p in PHRASES[:20]] + extra
    assert len(strings) >= 300, len(strings)
    return strings


# MARK: - tokenizers

def train_sentencepiece(folder, model_type):
    path = folder / model_type
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus_lines()), model_prefix=str(path), vocab_size=500, model_type=model_type,
        normalization_rule_name="nmt_nfkc", character_coverage=1.0, num_threads=1, seed_sentencepiece_size=100000,
        unk_id=2, bos_id=-1, eos_id=1, pad_id=0, unk_piece="<unk>", eos_piece="</s>", pad_piece="<pad>",
        shuffle_input_sentence=False, minloglevel=2)
    (folder / f"{model_type}.vocab").unlink(missing_ok=True)
    return folder / f"{model_type}.model"


def train_bpe(folder):
    """A byte-fallback BPE laid out as Gemma's tokenizer.json is (SigLIP 2's tokenizer)."""
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tokenizer.normalizer = normalizers.Replace(" ", "▁")
    tokenizer.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
    bytes_ = [f"<0x{b:02X}>" for b in range(256)]
    trainer = trainers.BpeTrainer(vocab_size=900, special_tokens=specials + bytes_, show_progress=False)
    tokenizer.train_from_iterator([line.replace(" ", "▁") for line in corpus_lines()], trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", 2), ("<eos>", 1)])
    tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    data = json.loads(tokenizer.to_str())
    # Byte tokens are ordinary vocabulary entries in Gemma's file, not added tokens.
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] in specials]
    path = folder / "bpe-byte-fallback.json"
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1))
    return path


def train_tokenizers_unigram(folder):
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=400, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>",
                                      show_progress=False)
    tokenizer.train_from_iterator(corpus_lines(), trainer)
    path = folder / "unigram.json"
    path.write_text(json.dumps(json.loads(tokenizer.to_str()), ensure_ascii=False, indent=1))
    return path


# MARK: - models

MODELS = {
    "tiny-siglip": dict(
        dtype=torch.float32, tokenizer="unigram",
        config=dict(
            text_config=dict(hidden_size=30, intermediate_size=44, num_hidden_layers=2,
                             num_attention_heads=3, max_position_embeddings=64, projection_size=40,
                             pad_token_id=1, eos_token_id=1),
            vision_config=dict(hidden_size=40, intermediate_size=56, num_hidden_layers=2, num_attention_heads=5,
                               image_size=48, patch_size=16)),
        preprocessor=dict(size={"height": 48, "width": 48}, resample=3, image_mean=[0.5, 0.5, 0.5],
                          image_std=[0.5, 0.5, 0.5])),
    "tiny-siglip2": dict(
        dtype=torch.float16, tokenizer="bpe",
        config=dict(
            text_config=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                             num_attention_heads=2, max_position_embeddings=64, projection_size=36,
                             pad_token_id=0, eos_token_id=1, bos_token_id=2, layer_norm_eps=1e-6),
            vision_config=dict(hidden_size=36, intermediate_size=52, num_hidden_layers=3, num_attention_heads=3,
                               image_size=64, patch_size=16, layer_norm_eps=1e-6)),
        preprocessor=dict(size={"height": 64, "width": 64}, resample=2, image_mean=[0.5, 0.4, 0.3],
                          image_std=[0.25, 0.3, 0.35])),
}


def make_tokenizer(spec, folder, unigram, bpe):
    if spec["tokenizer"] == "unigram":
        return SiglipTokenizer(vocab_file=str(unigram), model_max_length=64)
    return Siglip2Tokenizer(tokenizer_file=str(bpe), model_max_length=64)


def build_model(name, spec, unigram, bpe):
    torch.manual_seed(sum(map(ord, name)))
    config = SiglipConfig(**spec["config"])
    config.text_config.vocab_size = len(make_tokenizer(spec, None, unigram, bpe))
    model = SiglipModel(config).eval()
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if key.endswith("position_ids"):
                continue
            if "norm" in key and key.endswith("weight"):
                tensor.copy_(1 + 0.1 * torch.randn_like(tensor))
            else:
                tensor.copy_(0.08 * torch.randn_like(tensor))
        model.logit_scale.fill_(2.3)
        model.logit_bias.fill_(-1.7)
        for parameter in model.parameters():
            parameter.copy_(parameter.to(spec["dtype"]).float())
    folder = HERE / "models" / name
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    model.to(spec["dtype"]).save_pretrained(folder)
    model.float()
    images = SiglipImageProcessorPil(do_resize=True, do_rescale=True, do_normalize=True, do_convert_rgb=True,
                                     **spec["preprocessor"])
    processor = SiglipProcessor(image_processor=images, tokenizer=make_tokenizer(spec, folder, unigram, bpe))
    processor.save_pretrained(folder)
    # The reference is what transformers loads back from the folder, as a user would.
    return model, AutoProcessor.from_pretrained(folder)


def l2(vector):
    return (vector / vector.norm(dim=-1, keepdim=True)).tolist()


def text_ids(processor, texts):
    encoded = processor(text=texts, padding="max_length", max_length=64, truncation=True, return_tensors="pt")
    return encoded["input_ids"]


def reference_outputs(name, model, processor, strings):
    texts = [s for s in strings if s.strip()][:40:2] + ["a blue house", "x" * 300, "日本語" * 40] + PHRASES[::3]
    labels = ["a blue house", "a photo of a cat", "голубой дом", "海边的蓝色房子", "two dogs", "a boat"]
    result = {"model": name, "texts": [], "images": [], "labels": labels}
    with torch.no_grad():
        ids = text_ids(processor, texts)
        vectors = model.get_text_features(input_ids=ids).pooler_output
        for text, row, vector in zip(texts, ids.tolist(), vectors):
            result["texts"].append({"text": text, "ids": row, "vector": l2(vector)})
        label_ids = text_ids(processor, labels)
        for path in sorted((HERE / "images").iterdir()):
            image = ImageOps.exif_transpose(Image.open(path))
            pixel_values = processor(images=image, return_tensors="pt")["pixel_values"]
            vector = model.get_image_features(pixel_values=pixel_values).pooler_output[0]
            logits = model(input_ids=label_ids, pixel_values=pixel_values).logits_per_image[0]
            result["images"].append({"file": path.name, "vector": l2(vector),
                                     "probabilities": torch.sigmoid(logits).tolist()})
    (HERE / "reference" / f"{name}.json").write_text(json.dumps(result, ensure_ascii=False, indent=1))
    # The resized 8-bit pixels, to compare exactly.
    resized = SiglipImageProcessorPil(**{**processor.image_processor.to_dict(), "do_rescale": False, "do_normalize": False})
    crop_dir = HERE / "reference" / "crops" / name
    crop_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted((HERE / "images").iterdir()):
        image = ImageOps.exif_transpose(Image.open(path))
        pixels = resized(image, return_tensors="np")["pixel_values"][0]
        Image.fromarray(np.round(pixels).astype(np.uint8).transpose(1, 2, 0), "RGB").save(crop_dir / (path.name + ".png"))


def main():
    folder = HERE / "tokenizers"
    folder.mkdir(exist_ok=True)
    (folder / "siglip-corpus.txt").write_text("\n".join(corpus_lines()) + "\n")
    unigram = train_sentencepiece(folder, "unigram")
    sentencepiece_bpe = spm.SentencePieceProcessor(model_file=str(train_sentencepiece(folder, "bpe")))
    bpe = train_bpe(folder)
    tokenizers_unigram = Tokenizer.from_file(str(train_tokenizers_unigram(folder)))
    strings = golden_strings()
    processors_ = {}
    for name, spec in MODELS.items():
        model, processor = build_model(name, spec, unigram, bpe)
        reference_outputs(name, model, processor, strings)
        processors_[name] = processor
    sentencepiece = spm.SentencePieceProcessor(model_file=str(unigram))
    bpe_tokenizer = Tokenizer.from_file(str(bpe))
    golden = []
    for text in strings:
        golden.append({
            "text": text,
            "sentencepiece": sentencepiece.encode(text),
            "sentencepiece_bpe": sentencepiece_bpe.encode(text),
            "tokenizers": bpe_tokenizer.encode(text).ids,
            "tokenizers_unigram": tokenizers_unigram.encode(text).ids,
            **{name: text_ids(p, [text])[0].tolist() for name, p in processors_.items()},
        })
    (HERE / "reference" / "siglip-tokens.json").write_text(json.dumps(golden, ensure_ascii=False, indent=0))


if __name__ == "__main__":
    main()
