#!/usr/bin/python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Train the SentencePiece BPE tokenizer and tokenize the training text.

    /usr/bin/python3 tools/train-demo-model/prepare.py \
        --train /work/build-data/train/train.txt \
        --heldout /work/build-data/train/heldout.tsv \
        --out /work/build-data/demo

Writes <out>/spm.model, <out>/spm.vocab, <out>/train.bin, <out>/val.bin,
<out>/heldout.bin (uint16 token streams; every line/segment is followed by
</s> = 2) and <out>/prepare.json.  The last --val-lines lines of train.txt
(which is already shuffled) are kept apart as a validation split.
"""

import argparse
import json
import os
import random
import sys
import time

import numpy as np
import sentencepiece as spm


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True)
    ap.add_argument("--heldout", default=None, help="id<TAB>lang<TAB>text")
    ap.add_argument("--out", required=True)
    ap.add_argument("--vocab-size", type=int, default=6000)
    ap.add_argument("--spm-sample-lines", type=int, default=400000)
    ap.add_argument("--val-lines", type=int, default=5000)
    ap.add_argument("--max-tokens", type=int, default=80_000_000,
                    help="stop tokenizing train.txt after this many tokens")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    t0 = time.time()

    with open(a.train, encoding="utf-8") as f:
        lines = [ln.rstrip("\n") for ln in f]
    lines = [ln for ln in lines if ln.strip()]
    print(f"{len(lines)} non-empty lines", flush=True)
    val = lines[-a.val_lines:]
    train = lines[:-a.val_lines]

    # Tokenizer sample: uniform random lines from the training split.
    rng = random.Random(a.seed)
    sample = train if len(train) <= a.spm_sample_lines else rng.sample(train, a.spm_sample_lines)
    sample_path = os.path.join(a.out, "spm-sample.txt")
    with open(sample_path, "w", encoding="utf-8") as f:
        for ln in sample:
            f.write(ln + "\n")
    prefix = os.path.join(a.out, "spm")
    # Settings chosen so that llama.cpp's SPM tokenizer reproduces the
    # segmentation: no NFKC normalisation, no whitespace collapsing,
    # dummy-prefix space, byte fallback for anything outside the vocab.
    spm.SentencePieceTrainer.train(
        input=sample_path,
        model_prefix=prefix,
        model_type="bpe",
        vocab_size=a.vocab_size,
        character_coverage=0.9995,
        byte_fallback=True,
        split_digits=True,
        add_dummy_prefix=True,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        max_sentence_length=8192,
        input_sentence_size=a.spm_sample_lines,
        shuffle_input_sentence=True,
        seed_sentencepiece_size=1000000,
        num_threads=a.threads,
        minloglevel=1,
    )
    os.remove(sample_path)
    sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    print(f"tokenizer trained ({time.time() - t0:.0f}s), vocab {sp.get_piece_size()}", flush=True)

    def encode_stream(texts, path, max_tokens=None):
        out = []
        n = 0
        chunk = 20000
        for i in range(0, len(texts), chunk):
            for ids in sp.encode(texts[i:i + chunk], out_type=int):
                ids.append(2)
                out.append(np.asarray(ids, dtype=np.uint16))
                n += len(ids)
            if max_tokens and n >= max_tokens:
                break
        arr = np.concatenate(out) if out else np.zeros(0, np.uint16)
        arr.tofile(path)
        return len(arr)

    stats = {"lines_total": len(lines), "val_lines": len(val)}
    stats["val_tokens"] = encode_stream(val, os.path.join(a.out, "val.bin"))
    stats["train_tokens"] = encode_stream(train, os.path.join(a.out, "train.bin"), a.max_tokens)
    if a.heldout:
        held = []
        with open(a.heldout, encoding="utf-8") as f:
            for ln in f:
                p = ln.rstrip("\n").split("\t")
                if len(p) == 3 and p[0] != "id":
                    held.append(p[2])
        stats["heldout_tokens"] = encode_stream(held, os.path.join(a.out, "heldout.bin"))
    stats["chars_per_token_val"] = sum(len(x) + 1 for x in val) / max(1, stats["val_tokens"])
    stats["vocab_size"] = sp.get_piece_size()
    stats["seconds"] = round(time.time() - t0, 1)
    with open(os.path.join(a.out, "prepare.json"), "w") as f:
        json.dump(stats, f, indent=1)
    print(json.dumps(stats), flush=True)


if __name__ == "__main__":
    main()
