#!/usr/bin/python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Export a train.py checkpoint + SentencePiece model to GGUF (arch qwen3moe).

    /usr/bin/python3 tools/train-demo-model/export_gguf.py \
        --ckpt /work/build-data/ckpt/last.pt \
        --spm /work/build-data/demo/spm.model \
        --out data/models/routescope-demo.gguf

Self-contained GGUF v3 writer (little-endian, alignment 32); it does not use
gguf-py.  Norm weights are written as F32, matrices as F16 (or Q8_0 with
--q8).  ggml lists dimensions innermost first, so a torch tensor of shape
[out, in] becomes ne = [in, out] with identical bytes (row-major).  The
output projection is tied to token_embd.weight and therefore omitted.
"""

import argparse
import os
import struct
import sys

import numpy as np
import torch

# GGUF metadata value types
T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32, T_BOOL, T_STRING, \
    T_ARRAY, T_UINT64, T_INT64, T_FLOAT64 = range(13)
# ggml tensor types
GGML_F32, GGML_F16, GGML_Q8_0 = 0, 1, 8
ALIGN = 32
# SentencePiece / llama.cpp token types
TOK_NORMAL, TOK_UNKNOWN, TOK_CONTROL, TOK_USER, TOK_UNUSED, TOK_BYTE = 1, 2, 3, 4, 5, 6


def s_bytes(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


class GGUFWriter:
    def __init__(self):
        self.kv = []        # (key, bytes of type+value)
        self.tensors = []   # (name, ne list, ggml type, raw bytes)

    def _add(self, key, vtype, payload):
        self.kv.append((key, struct.pack("<I", vtype) + payload))

    def u32(self, key, v):
        self._add(key, T_UINT32, struct.pack("<I", v))

    def f32(self, key, v):
        self._add(key, T_FLOAT32, struct.pack("<f", v))

    def boolean(self, key, v):
        self._add(key, T_BOOL, struct.pack("<B", 1 if v else 0))

    def string(self, key, v):
        self._add(key, T_STRING, s_bytes(v))

    def arr_str(self, key, vals):
        self._add(key, T_ARRAY, struct.pack("<IQ", T_STRING, len(vals)) + b"".join(s_bytes(v) for v in vals))

    def arr_f32(self, key, vals):
        self._add(key, T_ARRAY, struct.pack("<IQ", T_FLOAT32, len(vals)) + np.asarray(vals, "<f4").tobytes())

    def arr_i32(self, key, vals):
        self._add(key, T_ARRAY, struct.pack("<IQ", T_INT32, len(vals)) + np.asarray(vals, "<i4").tobytes())

    def tensor(self, name, arr, gtype):
        """arr: numpy array in torch dimension order (outermost first)."""
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        ne = list(reversed(arr.shape))
        if gtype == GGML_F32:
            raw = arr.astype("<f4").tobytes()
        elif gtype == GGML_F16:
            raw = arr.astype("<f2").tobytes()
        elif gtype == GGML_Q8_0:
            raw = quantize_q8_0(arr)
        else:
            raise ValueError(gtype)
        self.tensors.append((name, ne, gtype, raw))

    def write(self, path):
        out = bytearray()
        out += b"GGUF" + struct.pack("<IQQ", 3, len(self.tensors), len(self.kv))
        for k, v in self.kv:
            out += s_bytes(k) + v
        offset = 0
        offsets = []
        for name, ne, gtype, raw in self.tensors:
            offsets.append(offset)
            out += s_bytes(name) + struct.pack("<I", len(ne))
            out += b"".join(struct.pack("<Q", n) for n in ne)
            out += struct.pack("<IQ", gtype, offset)
            offset += (len(raw) + ALIGN - 1) // ALIGN * ALIGN
        out += b"\0" * ((-len(out)) % ALIGN)
        for (name, ne, gtype, raw), off in zip(self.tensors, offsets):
            out += raw
            out += b"\0" * ((-len(raw)) % ALIGN)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(out)
        os.replace(tmp, path)
        return len(out)


def quantize_q8_0(arr):
    """ggml Q8_0: blocks of 32 along the innermost dim; f16 scale + 32 int8."""
    x = arr.reshape(-1, 32).astype(np.float32)
    amax = np.abs(x).max(axis=1)
    d = amax / 127.0
    inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1.0), 0.0)
    q = np.clip(np.rint(x * inv[:, None]), -127, 127).astype(np.int8)
    blk = np.zeros(len(x), dtype=[("d", "<f2"), ("q", "i1", (32,))])
    blk["d"] = d.astype(np.float16)
    blk["q"] = q
    return blk.tobytes()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--spm", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", default="Routescope demo MoE")
    ap.add_argument("--context-length", type=int, default=1024)
    ap.add_argument("--q8", action="store_true", help="Q8_0 instead of F16 for matrices")
    a = ap.parse_args()

    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=a.spm)
    ck = torch.load(a.ckpt, map_location="cpu")
    c = ck["config"]
    sd = {k: v.float().numpy() for k, v in ck["model"].items()}
    assert sp.get_piece_size() == c["vocab_size"], "tokenizer/model vocab mismatch"

    w = GGUFWriter()
    arch = "qwen3moe"
    w.string("general.architecture", arch)
    w.string("general.name", a.name)
    w.string("general.license", "GPL-3.0-or-later")
    w.u32("general.alignment", ALIGN)
    w.u32(f"{arch}.block_count", c["n_layer"])
    w.u32(f"{arch}.context_length", a.context_length)
    w.u32(f"{arch}.embedding_length", c["n_embd"])
    w.u32(f"{arch}.feed_forward_length", c["expert_ff"])
    w.u32(f"{arch}.attention.head_count", c["n_head"])
    w.u32(f"{arch}.attention.head_count_kv", c["n_kv_head"])
    w.u32(f"{arch}.attention.key_length", c["head_dim"])
    w.u32(f"{arch}.attention.value_length", c["head_dim"])
    w.f32(f"{arch}.rope.freq_base", float(c["rope_theta"]))
    w.f32(f"{arch}.attention.layer_norm_rms_epsilon", float(c["rms_eps"]))
    w.u32(f"{arch}.expert_count", c["n_expert"])
    w.u32(f"{arch}.expert_used_count", c["n_expert_used"])
    w.u32(f"{arch}.expert_feed_forward_length", c["expert_ff"])

    tokens, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        if sp.is_unknown(i):
            t = TOK_UNKNOWN
        elif sp.is_control(i):
            t = TOK_CONTROL
        elif sp.is_byte(i):
            t = TOK_BYTE
        elif sp.is_unused(i):
            t = TOK_UNUSED
        else:
            t = TOK_NORMAL
        types.append(t)
    w.string("tokenizer.ggml.model", "llama")
    w.string("tokenizer.ggml.pre", "default")
    w.arr_str("tokenizer.ggml.tokens", tokens)
    w.arr_f32("tokenizer.ggml.scores", scores)
    w.arr_i32("tokenizer.ggml.token_type", types)
    w.u32("tokenizer.ggml.bos_token_id", sp.bos_id())
    w.u32("tokenizer.ggml.eos_token_id", sp.eos_id())
    w.u32("tokenizer.ggml.unknown_token_id", sp.unk_id())
    w.boolean("tokenizer.ggml.add_bos_token", True)
    w.boolean("tokenizer.ggml.add_eos_token", False)
    w.boolean("tokenizer.ggml.add_space_prefix", True)

    mat = GGML_Q8_0 if a.q8 else GGML_F16
    w.tensor("token_embd.weight", sd["embed.weight"], mat)
    w.tensor("output_norm.weight", sd["norm.weight"], GGML_F32)
    for i in range(c["n_layer"]):
        p = f"blocks.{i}."
        b = f"blk.{i}."
        w.tensor(b + "attn_norm.weight", sd[p + "attn_norm.weight"], GGML_F32)
        w.tensor(b + "attn_q.weight", sd[p + "attn.q_proj.weight"], mat)
        w.tensor(b + "attn_k.weight", sd[p + "attn.k_proj.weight"], mat)
        w.tensor(b + "attn_v.weight", sd[p + "attn.v_proj.weight"], mat)
        w.tensor(b + "attn_output.weight", sd[p + "attn.o_proj.weight"], mat)
        w.tensor(b + "attn_q_norm.weight", sd[p + "attn.q_norm.weight"], GGML_F32)
        w.tensor(b + "attn_k_norm.weight", sd[p + "attn.k_norm.weight"], GGML_F32)
        w.tensor(b + "ffn_norm.weight", sd[p + "ffn_norm.weight"], GGML_F32)
        # router: torch [n_expert, n_embd] -> ne [n_embd, n_expert]; kept F32 (tiny,
        # and routing decisions are what Routescope inspects)
        w.tensor(b + "ffn_gate_inp.weight", sd[p + "moe.gate.weight"], GGML_F32)
        w.tensor(b + "ffn_gate_exps.weight", sd[p + "moe.w_gate"], mat)   # [E, ff, d]
        w.tensor(b + "ffn_up_exps.weight", sd[p + "moe.w_up"], mat)       # [E, ff, d]
        w.tensor(b + "ffn_down_exps.weight", sd[p + "moe.w_down"], mat)   # [E, d, ff]
    n = w.write(a.out)
    print(f"wrote {a.out}: {n} bytes, {len(w.tensors)} tensors, {len(w.kv)} keys")


if __name__ == "__main__":
    sys.exit(main())
