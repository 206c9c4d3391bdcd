#!/usr/bin/python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Routing statistics of the demo model on the held-out parallel set.

    /usr/bin/python3 tools/train-demo-model/routing_stats.py \
        --ckpt /work/build-data/ckpt/last.pt --spm /work/build-data/demo/spm.model \
        --heldout /work/build-data/train/heldout.tsv --out /work/build-data/routing.json

For every sentence (<s> + SentencePiece ids, at most 256 tokens) and layer:
  importance  = mean over its tokens (BOS excluded) of the softmax router probs
  frequency   = share of the top-k selections that went to each expert
1. Cross-lingual routing divergence: per layer, the entropy-normalised JSD
   between a sentence's importance vector P and the English sentence Q with
   the same id:  JSD = 1/2 KL(P||M) + 1/2 KL(Q||M), M = 1/2 (P+Q) (>= 1e-10),
   divided by max(ln E - 1/2 (H(P) + H(Q)), 1e-6), H(p) = -sum p ln(p + 1e-10);
   averaged over sentences.
2. Language identification from expert frequencies: nearest centroid
   (Euclidean), ids split 80/20 into train/test by a seeded permutation so a
   test id's translations are never in the training split.
"""

import argparse
import collections
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import Config, TinyQwen3Moe  # noqa: E402


def jsd_norm(p, q, n_expert):
    m = np.maximum(0.5 * (p + q), 1e-10)
    kl = lambda a: float(np.sum(np.where(a > 0, a * np.log(np.maximum(a, 1e-30) / m), 0.0)))
    jsd = 0.5 * kl(p) + 0.5 * kl(q)
    h = lambda a: float(-np.sum(a * np.log(a + 1e-10)))
    return jsd / max(math.log(n_expert) - 0.5 * (h(p) + h(q)), 1e-6)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--spm", required=True)
    ap.add_argument("--heldout", required=True)
    ap.add_argument("--out", default=None)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--batch", type=int, default=32)
    a = ap.parse_args()
    torch.set_num_threads(1)

    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=a.spm)
    ck = torch.load(a.ckpt, map_location="cpu")
    cfg = Config(**ck["config"])
    model = TinyQwen3Moe(cfg)
    model.load_state_dict(ck["model"])
    model.eval()
    L, E, K = cfg.n_layer, cfg.n_expert, cfg.n_expert_used

    rows = []
    with open(a.heldout, encoding="utf-8") as f:
        for ln in f:
            p = ln.rstrip("\n").split("\t")
            if len(p) == 3 and p[0] != "id":
                rows.append((p[0], p[1], p[2]))
    seqs = [[1] + sp.encode(t)[:255] for _, _, t in rows]
    imp = np.zeros((len(rows), L, E))
    frq = np.zeros((len(rows), L, E))
    order = sorted(range(len(rows)), key=lambda i: len(seqs[i]))
    with torch.no_grad():
        for b in range(0, len(order), a.batch):
            idx = order[b:b + a.batch]
            T = max(len(seqs[i]) for i in idx)
            x = torch.full((len(idx), T), 2, dtype=torch.long)   # right-pad (causal: no effect)
            for j, i in enumerate(idx):
                x[j, :len(seqs[i])] = torch.tensor(seqs[i])
            _, _, _, probs = model(x, return_probs=True)
            for l in range(L):
                pr = probs[l].numpy()                                 # [B, T, E]
                top = np.argsort(-pr, axis=-1)[..., :K]
                for j, i in enumerate(idx):
                    n = len(seqs[i])
                    if n < 2:
                        continue
                    imp[i, l] = pr[j, 1:n].mean(0)
                    frq[i, l] = np.bincount(top[j, 1:n].ravel(), minlength=E) / (K * (n - 1))

    by_id = collections.defaultdict(dict)
    for i, (sid, lang, _) in enumerate(rows):
        by_id[sid][lang] = i
    langs = sorted({r[1] for r in rows})
    others = [x for x in langs if x != "en"]

    # 1. JSD vs English, per layer and language
    jsd = {lang: [[] for _ in range(L)] for lang in others}
    for sid, d in by_id.items():
        if "en" not in d:
            continue
        for lang in others:
            if lang in d:
                for l in range(L):
                    jsd[lang][l].append(jsd_norm(imp[d[lang], l], imp[d["en"], l], E))
    jsd_tab = {lang: [float(np.mean(v)) for v in jsd[lang]] for lang in others}
    jsd_layer = [float(np.mean([jsd_tab[lang][l] for lang in others])) for l in range(L)]

    # 2. language ID by nearest centroid on expert frequencies
    ids = sorted(by_id)
    rng = np.random.default_rng(a.seed)
    perm = rng.permutation(len(ids))
    test_ids = {ids[i] for i in perm[: len(ids) // 5]}
    lab = np.array([langs.index(r[1]) for r in rows])
    is_test = np.array([r[0] in test_ids for r in rows])

    def nc_acc(feat):
        cents = np.stack([feat[(~is_test) & (lab == c)].mean(0) for c in range(len(langs))])
        d = ((feat[is_test][:, None, :] - cents[None]) ** 2).sum(-1)
        pred = d.argmin(1)
        return float((pred == lab[is_test]).mean())

    acc_layer = [nc_acc(frq[:, l]) for l in range(L)]
    acc_all = nc_acc(frq.reshape(len(rows), -1))
    acc_all_imp = nc_acc(imp.reshape(len(rows), -1))

    res = {"n_sentences": len(rows), "n_ids": len(by_id), "languages": langs,
           "jsd_norm_vs_en_per_layer_mean": jsd_layer,
           "jsd_norm_vs_en_per_language": jsd_tab,
           "langid_nearest_centroid_freq_per_layer": acc_layer,
           "langid_nearest_centroid_freq_all_layers": acc_all,
           "langid_nearest_centroid_importance_all_layers": acc_all_imp,
           "langid_chance": 1.0 / len(langs),
           "test_fraction": float(is_test.mean()),
           "expert_load_per_layer": [frq[:, l].mean(0).round(4).tolist() for l in range(L)]}
    print(json.dumps(res, indent=1))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
