#!/usr/bin/env python3
"""Makes the WordPiece `tokenizer.json` fixture and its golden ids. Run by hand; see README.md.

Trains a WordPiece model with the `tokenizers` library on tokenizers/siglip-corpus.txt, laid out as a BERT
checkpoint's tokenizer.json is (BertNormalizer with lowercase, accents stripped, Chinese characters
spaced and control characters cleaned; BertPreTokenizer; BertProcessing with [CLS] and [SEP]), then
encodes the strings of reference/siglip-tokens.json with it.

Writes tokenizers/wordpiece.json and reference/wordpiece-tokens.json ([{"text", "ids"}]).
"""
import json
from pathlib import Path

import tokenizers
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

HERE = Path(__file__).resolve().parent


def main():
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    trainer = trainers.WordPieceTrainer(vocab_size=600, special_tokens=specials, show_progress=False)
    tokenizer.train([str(HERE / "tokenizers/siglip-corpus.txt")], trainer)
    tokenizer.post_processor = processors.BertProcessing(("[SEP]", tokenizer.token_to_id("[SEP]")), ("[CLS]", tokenizer.token_to_id("[CLS]")))
    tokenizer.save(str(HERE / "tokenizers/wordpiece.json"))

    texts = [case["text"] for case in json.loads((HERE / "reference/siglip-tokens.json").read_text())]
    # Words longer than the model's limit become [UNK]; two such texts make sure that rule is exercised.
    texts += ["a " + "x" * 101 + " b", "supercalifragilistic" * 6]
    golden = [{"text": text, "ids": Tokenizer.from_file(str(HERE / "tokenizers/wordpiece.json")).encode(text).ids} for text in texts]
    (HERE / "reference/wordpiece-tokens.json").write_text(json.dumps({"tokenizers": tokenizers.__version__, "cases": golden},
                                                                     ensure_ascii=False, indent=0) + "\n")


if __name__ == "__main__":
    main()
