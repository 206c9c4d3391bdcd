#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
# End-to-end recipe for data/models/routescope-demo.gguf (see data/models/README.md).
# Usage: tools/train-demo-model/recipe.sh DEADLINE   e.g. 2026-11-24T06:35:00Z
# Needs: apt-get install python3-torch python3-sentencepiece python3-numpy libtcmalloc-minimal4
set -eu
DEADLINE=${1:?deadline (ISO 8601, UTC) at which training stops}
W=${WORKDIR:-/work/build-data}
PY=/usr/bin/python3
export OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
TC=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4

# 1. corpus: train.txt (held-out parallel set excluded) + heldout.tsv
[ -f "$W/train/READY" ] || $PY tools/make-corpus/make-corpus.py --workdir "$W" --out data/corpus
# 2. tokenizer (SentencePiece BPE, 6000) + packed uint16 token streams
$PY tools/train-demo-model/prepare.py --train "$W/train/train.txt" \
    --heldout "$W/train/heldout.tsv" --out "$W/demo" --vocab-size 6000 --seed 1234
# 3. training (1 thread, wall-clock cosine schedule ending at DEADLINE)
LD_PRELOAD=$TC $PY tools/train-demo-model/train.py --data "$W/demo" --ckpt "$W/ckpt" \
    --deadline "$DEADLINE" --seed 1234 > "$W/train.log" 2>&1
# 4. export
$PY tools/train-demo-model/export_gguf.py --ckpt "$W/ckpt/last.pt" --spm "$W/demo/spm.model" \
    --out data/models/routescope-demo.gguf
# 5. routing statistics on the held-out parallel set
LD_PRELOAD=$TC $PY tools/train-demo-model/routing_stats.py --ckpt "$W/ckpt/last.pt" \
    --spm "$W/demo/spm.model" --heldout "$W/train/heldout.tsv" --out "$W/routing.json"
