#!/usr/bin/python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Train the tiny qwen3moe demo model on CPU.

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \
    OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1 nohup /usr/bin/python3 \
        tools/train-demo-model/train.py --data /work/build-data/demo \
        --ckpt /work/build-data/ckpt --deadline 2026-11-24T06:35:00Z \
        > /work/build-data/train.log 2>&1 &

Batches: B random windows of T-1 tokens from the packed token stream
(segments separated by </s>), each prefixed with <s>.  Window positions are
drawn from a generator seeded with (seed, step), so a resumed run sees the
same data as an uninterrupted one.

Schedule: linear warmup (first --warmup fraction), cosine decay to 10 %.
With --steps N the schedule runs over N steps.  With --steps 0 and
--deadline, progress is the fraction of the wall-clock training budget used
(deadline minus start minus 90 s; capped by --max-tokens), so the cosine
ends at the deadline whatever the CPU speed (the CPU is shared).  The loop
also stops at --deadline unconditionally; a final checkpoint and
final.json (losses, tokens, seconds) are written either way.

tcmalloc is preloaded because glibc's malloc returns large blocks to the
kernel and re-faulting them costs more than the arithmetic here.
"""

import argparse
import datetime as dt
import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import Config, TinyQwen3Moe  # noqa: E402


def parse_deadline(s):
    if not s:
        return None
    d = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.timezone.utc)
    return d.timestamp()


def get_batch(data, step, seed, B, T, salt=0):
    g = np.random.default_rng([seed, salt, step])
    starts = g.integers(0, len(data) - T, size=B)
    x = np.empty((B, T + 1), dtype=np.int64)
    x[:, 0] = 1  # <s>
    for i, s in enumerate(starts):
        x[i, 1:] = data[s:s + T]
    return torch.from_numpy(x[:, :-1]), torch.from_numpy(x[:, 1:].copy())


@torch.no_grad()
def evaluate(model, data, seed, B, T, n_batches):
    if data is None or len(data) <= T + 1:
        return float("nan")
    model.eval()
    tot = 0.0
    for i in range(n_batches):
        x, y = get_batch(data, i, seed, B, T, salt=7)
        _, loss, _ = model(x, y)
        tot += float(loss)
    model.train()
    return tot / n_batches


def lr_at(progress, warmup, lr_max, lr_min_frac=0.1):
    """Linear warmup over the first `warmup` fraction, cosine to lr_min_frac."""
    if progress < warmup:
        return lr_max * max(progress, 1e-3) / warmup
    p = min(1.0, (progress - warmup) / (1 - warmup))
    return lr_max * (lr_min_frac + (1 - lr_min_frac) * 0.5 * (1 + math.cos(math.pi * p)))


def save(path, model, opt, state):
    tmp = path + ".tmp"
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                "config": model.c.to_dict(), "state": state}, tmp)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="dir from prepare.py")
    ap.add_argument("--ckpt", required=True, help="checkpoint dir")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--deadline", default=None, help="ISO time, e.g. 2026-11-24T06:35:00Z")
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--max-tokens", type=int, default=20_000_000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=float, default=0.03, help="fraction of the schedule")
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--aux-coef", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--eval-batches", type=int, default=8)
    ap.add_argument("--ckpt-seconds", type=float, default=300)
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-embd", type=int, default=128)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--n-kv-head", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=32)
    ap.add_argument("--n-expert", type=int, default=8)
    ap.add_argument("--n-expert-used", type=int, default=2)
    ap.add_argument("--expert-ff", type=int, default=256)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    deadline = parse_deadline(a.deadline)
    os.makedirs(a.ckpt, exist_ok=True)
    ckpt_path = os.path.join(a.ckpt, "last.pt")

    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=os.path.join(a.data, "spm.model"))
    train = np.fromfile(os.path.join(a.data, "train.bin"), dtype=np.uint16)
    val = np.fromfile(os.path.join(a.data, "val.bin"), dtype=np.uint16)
    hp = os.path.join(a.data, "heldout.bin")
    held = np.fromfile(hp, dtype=np.uint16) if os.path.exists(hp) else None

    if a.resume and os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path)
        cfg = Config(**ck["config"])
        model = TinyQwen3Moe(cfg)
        model.load_state_dict(ck["model"])
        state = ck["state"]
        a.lr, a.warmup, a.batch, a.seq, a.seed = (state["args"][k] for k in ("lr", "warmup", "batch", "seq", "seed"))
    else:
        cfg = Config(vocab_size=sp.get_piece_size(), n_layer=a.n_layer, n_embd=a.n_embd,
                     n_head=a.n_head, n_kv_head=a.n_kv_head, head_dim=a.head_dim,
                     n_expert=a.n_expert, n_expert_used=a.n_expert_used, expert_ff=a.expert_ff)
        model = TinyQwen3Moe(cfg)
        budget = 0.0
        if not a.steps:
            if not deadline:
                sys.exit("need --steps or --deadline")
            budget = deadline - time.time() - 90  # room for the final eval/checkpoint
        state = {"step": 0, "tokens": 0, "train_seconds": 0.0, "total_steps": a.steps,
                 "budget": budget, "args": vars(a), "history": []}
        ck = None

    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (decay if p.dim() >= 2 else no_decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.wd},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
    if ck is not None:
        opt.load_state_dict(ck["opt"])
    tot_p, act_p = model.param_counts()
    print(f"config {cfg.to_dict()}", flush=True)
    print(f"params total {tot_p} active/token {act_p}; train tokens {len(train)} val {len(val)} "
          f"heldout {0 if held is None else len(held)}", flush=True)

    B, T = a.batch, a.seq
    tok_per_step = B * (T - 1)   # predicted tokens (position 0 is <s>)
    max_steps_tokens = max(1, a.max_tokens // tok_per_step)
    if a.resume and a.steps:
        state["total_steps"] = a.steps
    t_start = time.time()
    t_ckpt = t_start
    calib_step0 = state["step"]
    sum_loss, sum_aux, n_acc = 0.0, 0.0, 0
    model.train()
    stop_reason = None
    while True:
        step = state["step"]
        now = time.time()
        if state["total_steps"]:
            progress = step / state["total_steps"]
        else:
            # wall-clock schedule: fraction of the training-time budget used
            progress = max(step / max_steps_tokens,
                           (state["train_seconds"] + now - t_ckpt) / state["budget"])
        if progress >= 1.0:
            stop_reason = "schedule done"
            break
        if deadline and now >= deadline:
            stop_reason = "deadline"
            break
        lr = lr_at(progress, a.warmup, a.lr)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = get_batch(train, step, a.seed, B, T - 1)
        _, loss, aux = model(x, y)
        (loss + a.aux_coef * aux).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        state["step"] += 1
        state["tokens"] += tok_per_step
        sum_loss += float(loss)
        sum_aux += float(aux)
        n_acc += 1
        now = time.time()

        if state["step"] % 25 == 0:
            el = now - t_start
            print(f"step {state['step']} tok {state['tokens'] / 1e6:.2f}M loss {sum_loss / n_acc:.4f} "
                  f"aux {sum_aux / n_acc:.4f} lr {lr:.2e} tok/s {(state['step'] - calib_step0) * tok_per_step / el:.0f}",
                  flush=True)
            sum_loss, sum_aux, n_acc = 0.0, 0.0, 0
        if state["step"] % a.eval_every == 0:
            vl = evaluate(model, val, a.seed, B, T - 1, a.eval_batches)
            hl = evaluate(model, held, a.seed, B, T - 1, a.eval_batches)
            state["history"].append({"step": state["step"], "tokens": state["tokens"], "val": vl, "heldout": hl})
            print(f"eval step {state['step']} val {vl:.4f} heldout {hl:.4f}", flush=True)
        if now - t_ckpt >= a.ckpt_seconds:
            state["train_seconds"] += now - t_ckpt
            t_ckpt = now
            save(ckpt_path, model, opt, state)
            print(f"checkpoint step {state['step']}", flush=True)

    now = time.time()
    state["train_seconds"] += now - t_ckpt
    vl = evaluate(model, val, a.seed, B, T - 1, 4 * a.eval_batches)
    hl = evaluate(model, held, a.seed, B, T - 1, 4 * a.eval_batches)
    state["final"] = {"step": state["step"], "tokens": state["tokens"], "val": vl, "heldout": hl,
                      "train_seconds": round(state["train_seconds"], 1), "stop": stop_reason}
    save(ckpt_path, model, opt, state)
    with open(os.path.join(a.ckpt, "final.json"), "w") as f:
        json.dump({"config": cfg.to_dict(), "params_total": tot_p, "params_active": act_p,
                   "final": state["final"], "total_steps": state["total_steps"],
                   "args": state["args"], "history": state["history"]}, f, indent=1)
    print(f"done ({stop_reason}): step {state['step']} tokens {state['tokens']} val {vl:.4f} "
          f"heldout {hl:.4f} train_seconds {state['train_seconds']:.0f}", flush=True)


if __name__ == "__main__":
    main()
