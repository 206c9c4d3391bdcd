# SPDX-License-Identifier: GPL-3.0-or-later
"""Tiny qwen3moe-style decoder (the architecture llama.cpp calls `qwen3moe`).

Pre-norm decoder blocks:
    x = x + attn(rmsnorm(x));  x = x + moe(rmsnorm(x))
Attention: bias-free q/k/v/o, per-head RMSNorm on q and k (before RoPE),
NeoX-style RoPE (rotate_half), GQA, causal softmax with scale 1/sqrt(head_dim).
MoE: router logits (no bias) -> softmax over all experts -> top-k ->
renormalised weights -> SwiGLU experts down(silu(gate(x)) * up(x)).
Output projection tied to the token embedding.
"""

import math
from dataclasses import dataclass, asdict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# The Debian torch 1.13 CPU build evaluates exp/sigmoid with scalar code
# (~15x slower than numpy's SIMD exp); softmax, silu and cross-entropy are
# therefore computed through numpy in small autograd Functions.  The maths
# is unchanged (same functions, float32).
_MASKS = {}


def _causal_add_mask(T):
    m = _MASKS.get(T)
    if m is None:
        m = np.triu(np.full((T, T), -np.inf, dtype=np.float32), 1)
        _MASKS[T] = m
    return m


class _NpCausalSoftmax(torch.autograd.Function):
    """softmax(scale * x + causal_mask) over the last dim, x: [..., T, T]."""
    @staticmethod
    def forward(ctx, x, scale):
        xn = x.detach().contiguous().numpy()
        y = np.multiply(xn, np.float32(scale))
        y += _causal_add_mask(xn.shape[-1])
        y -= y.max(-1, keepdims=True)
        np.exp(y, out=y)
        y /= y.sum(-1, keepdims=True)
        yt = torch.from_numpy(y)
        ctx.scale = scale
        ctx.save_for_backward(yt)
        return yt

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        yn = y.numpy()
        gn = g.contiguous().numpy()
        out = np.multiply(gn, yn)
        dot = out.sum(-1, keepdims=True)
        out = np.subtract(gn, dot)
        out *= yn
        out *= np.float32(ctx.scale)
        return torch.from_numpy(out), None


class _NpSilu(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        xn = x.detach().contiguous().numpy()
        s = np.negative(xn)
        np.exp(s, out=s)
        s += 1.0
        np.reciprocal(s, out=s)
        st = torch.from_numpy(s)
        ctx.save_for_backward(x, st)
        return x * st

    @staticmethod
    def backward(ctx, g):
        x, s = ctx.saved_tensors
        return g * s * (1 + x * (1 - s))


class _NpCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, targets):
        x = logits.detach().contiguous().numpy()
        t = targets.numpy()
        rows = np.arange(x.shape[0])
        m = x.max(1, keepdims=True)
        p = np.subtract(x, m)
        np.exp(p, out=p)
        s = p.sum(1, keepdims=True)
        lse = m[:, 0].astype(np.float64) + np.log(s[:, 0])
        loss = float((lse - x[rows, t]).mean())
        p /= s.astype(np.float32)
        ctx.p, ctx.t = p, t
        return torch.tensor(loss, dtype=logits.dtype)

    @staticmethod
    def backward(ctx, g):
        p, t = ctx.p, ctx.t   # softmax buffer is reused for the gradient
        ctx.p = None
        p[np.arange(p.shape[0]), t] -= 1.0
        p *= np.float32(float(g) / p.shape[0])
        return torch.from_numpy(p), None


def causal_softmax(x, scale):
    return _NpCausalSoftmax.apply(x, scale)


def silu(x):
    return _NpSilu.apply(x)


def cross_entropy(logits, targets):
    return _NpCrossEntropy.apply(logits, targets)


@dataclass
class Config:
    vocab_size: int = 8000
    n_layer: int = 4
    n_embd: int = 128
    n_head: int = 4
    n_kv_head: int = 2
    head_dim: int = 32
    n_expert: int = 8
    n_expert_used: int = 2
    expert_ff: int = 256
    rope_theta: float = 10000.0
    rms_eps: float = 1e-6
    max_seq: int = 1024

    def to_dict(self):
        return asdict(self)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return xf.type_as(x) * self.weight


def rope_cache(head_dim, n_pos, theta):
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    t = torch.arange(n_pos, dtype=torch.float64)
    freqs = torch.outer(t, inv)                      # [T, d/2]
    emb = torch.cat([freqs, freqs], dim=-1)          # [T, d]
    return emb.cos().float(), emb.sin().float()


def rotate_half(x):
    d = x.shape[-1] // 2
    return torch.cat([-x[..., d:], x[..., :d]], dim=-1)


class Attention(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.c = c
        self.q_proj = nn.Linear(c.n_embd, c.n_head * c.head_dim, bias=False)
        self.k_proj = nn.Linear(c.n_embd, c.n_kv_head * c.head_dim, bias=False)
        self.v_proj = nn.Linear(c.n_embd, c.n_kv_head * c.head_dim, bias=False)
        self.o_proj = nn.Linear(c.n_head * c.head_dim, c.n_embd, bias=False)
        self.q_norm = RMSNorm(c.head_dim, c.rms_eps)
        self.k_norm = RMSNorm(c.head_dim, c.rms_eps)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        c = self.c
        q = self.q_proj(x).view(B, T, c.n_head, c.head_dim)
        k = self.k_proj(x).view(B, T, c.n_kv_head, c.head_dim)
        v = self.v_proj(x).view(B, T, c.n_kv_head, c.head_dim)
        q = self.q_norm(q).transpose(1, 2)           # [B, H, T, D]
        k = self.k_norm(k).transpose(1, 2)
        v = v.transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = c.n_head // c.n_kv_head
        if rep > 1:
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        att = causal_softmax(q @ k.transpose(-1, -2), 1.0 / math.sqrt(c.head_dim))
        y = (att @ v).transpose(1, 2).reshape(B, T, c.n_head * c.head_dim)
        return self.o_proj(y)


class MoE(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.c = c
        E, d, f = c.n_expert, c.n_embd, c.expert_ff
        self.gate = nn.Linear(d, E, bias=False)          # router
        self.w_gate = nn.Parameter(torch.empty(E, f, d))  # torch [out, in] per expert
        self.w_up = nn.Parameter(torch.empty(E, f, d))
        self.w_down = nn.Parameter(torch.empty(E, d, f))

    def forward(self, x):
        c = self.c
        shp = x.shape
        x = x.reshape(-1, shp[-1])
        logits = self.gate(x)                              # [N, E]
        probs = logits.float().softmax(-1)
        topw, topi = probs.topk(c.n_expert_used, dim=-1)   # [N, k]
        topw = topw / topw.sum(-1, keepdim=True)           # norm_topk_prob
        topw = topw.to(x.dtype)
        out = torch.zeros_like(x)
        for e in range(c.n_expert):
            tok, slot = (topi == e).nonzero(as_tuple=True)
            if tok.numel() == 0:
                continue
            xe = x.index_select(0, tok)
            h = silu(xe @ self.w_gate[e].t()) * (xe @ self.w_up[e].t())
            ye = h @ self.w_down[e].t()
            out.index_add_(0, tok, ye * topw[tok, slot].unsqueeze(-1))
        # Switch-style load balancing: E * sum_i f_i * P_i
        frac = F.one_hot(topi, c.n_expert).float().sum(1).mean(0) / c.n_expert_used
        pmean = probs.mean(0)
        aux = c.n_expert * (frac * pmean).sum()
        return out.view(shp), aux, probs


class Block(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.attn_norm = RMSNorm(c.n_embd, c.rms_eps)
        self.attn = Attention(c)
        self.ffn_norm = RMSNorm(c.n_embd, c.rms_eps)
        self.moe = MoE(c)

    def forward(self, x, cos, sin, mask):
        x = x + self.attn(self.attn_norm(x), cos, sin, mask)
        m, aux, probs = self.moe(self.ffn_norm(x))
        return x + m, aux, probs


class TinyQwen3Moe(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.c = c
        self.embed = nn.Embedding(c.vocab_size, c.n_embd)
        self.blocks = nn.ModuleList([Block(c) for _ in range(c.n_layer)])
        self.norm = RMSNorm(c.n_embd, c.rms_eps)
        cos, sin = rope_cache(c.head_dim, c.max_seq, c.rope_theta)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.reset_parameters()

    def reset_parameters(self):
        std = 0.02
        resid_std = std / math.sqrt(2 * self.c.n_layer)
        nn.init.normal_(self.embed.weight, std=std)
        for b in self.blocks:
            for lin in (b.attn.q_proj, b.attn.k_proj, b.attn.v_proj, b.moe.gate):
                nn.init.normal_(lin.weight, std=std)
            nn.init.normal_(b.attn.o_proj.weight, std=resid_std)
            nn.init.normal_(b.moe.w_gate, std=std)
            nn.init.normal_(b.moe.w_up, std=std)
            nn.init.normal_(b.moe.w_down, std=resid_std)

    def forward(self, idx, targets=None, return_probs=False):
        B, T = idx.shape
        x = self.embed(idx)
        cos, sin = self.cos[:T], self.sin[:T]
        mask = torch.ones(T, T, dtype=torch.bool, device=idx.device).triu(1)
        auxs, probs = [], []
        for b in self.blocks:
            x, aux, p = b(x, cos, sin, mask)
            auxs.append(aux)
            if return_probs:
                probs.append(p.view(B, T, -1))
        x = self.norm(x)
        logits = x @ self.embed.weight.t()
        aux = torch.stack(auxs).mean()
        loss = None
        if targets is not None:
            loss = cross_entropy(logits.reshape(-1, logits.size(-1)).float(),
                                 targets.reshape(-1))
        if return_probs:
            return logits, loss, aux, probs
        return logits, loss, aux

    def param_counts(self):
        c = self.c
        total = sum(p.numel() for p in self.parameters())
        per_expert = 3 * c.expert_ff * c.n_embd
        inactive = c.n_layer * (c.n_expert - c.n_expert_used) * per_expert
        return total, total - inactive

    @torch.no_grad()
    def generate_greedy(self, ids, n_new):
        ids = list(ids)
        for _ in range(n_new):
            x = torch.tensor([ids[-self.c.max_seq:]], dtype=torch.long)
            logits, _, _ = self(x)
            ids.append(int(logits[0, -1].argmax()))
        return ids
