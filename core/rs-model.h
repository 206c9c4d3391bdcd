/* rs-model.h: a MoE language model opened from GGUF: its architecture,
 * hyperparameters and weight tensors (still in the file mapping).
 *
 * Architectures are rows of one table (RsArchInfo): how attention
 * normalises q and k, the RoPE pairing, biases, shared experts and the
 * routing rule. The forward pass reads the row; it has no per-model fork.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "rs-gguf.h"
#include "rs-router.h"

G_BEGIN_DECLS

typedef enum {
  RS_QK_NORM_NONE = 0,
  RS_QK_NORM_FULL,      /* RMSNorm over the whole q (k) projection (OLMoE) */
  RS_QK_NORM_HEAD,      /* RMSNorm per head (Qwen3) */
} RsQkNorm;

typedef enum {
  RS_ROPE_NORM = 0,     /* rotate pairs (2i, 2i+1) (llama.cpp's converters permute q/k for it) */
  RS_ROPE_NEOX,         /* rotate pairs (i, i + d/2) (HF rotate_half) */
} RsRopeOrder;

typedef enum {
  RS_SHARED_NONE = 0,
  RS_SHARED_SIGMOID_GATED,  /* + sigmoid(w_s . x) * FFN_s(x) (Qwen2-MoE) */
  RS_SHARED_PLAIN,          /* + FFN_s(x) (DeepSeek) */
} RsSharedExpert;

typedef struct {
  const char     *name;         /* general.architecture */
  RsRoutingRule   routing;
  RsQkNorm        qk_norm;
  RsRopeOrder     rope;
  RsSharedExpert  shared;
  const char     *routing_words; /* the rule in words, for `info` */
} RsArchInfo;

/* NULL when @name is not an architecture we run. */
const RsArchInfo *rs_arch_find (const char *name);
/* Comma-separated list of supported architecture names. */
const char *rs_arch_supported_names (void);

typedef enum { RS_ROPE_SCALING_NONE = 0, RS_ROPE_SCALING_LINEAR } RsRopeScaling;

typedef struct {
  const RsArchInfo *arch;
  RsRoutingRule     routing;      /* arch row adjusted by the file's expert_weights_* keys */
  uint32_t n_vocab;
  uint32_t n_ctx_train;
  uint32_t n_embd;
  uint32_t n_layer;
  uint32_t n_head;
  uint32_t n_head_kv;
  uint32_t head_dim;              /* key_length */
  uint32_t head_dim_v;            /* value_length */
  uint32_t n_ff;                  /* dense FFN width (0 when no dense layer) */
  uint32_t n_expert;
  uint32_t n_expert_used;
  uint32_t n_ff_exp;              /* per-expert FFN width */
  uint32_t n_ff_shexp;            /* shared-expert FFN width (0: none) */
  uint32_t n_moe_layers;
  uint32_t n_rot;                 /* rotated dims per head */
  float    rope_freq_base;
  RsRopeScaling rope_scaling;
  float    rope_freq_scale;       /* 1 / linear scaling factor */
  float    rms_eps;
  /* Granite's multipliers; 1 (and 1/sqrt(head_dim) for attention) elsewhere */
  float    embedding_scale;       /* x = embd * s */
  float    residual_scale;        /* x += s * block(x) */
  float    attention_scale;       /* softmax(s * q.k) */
  float    logit_scale;           /* logits = out / s */
  bool     tied_output;           /* output projection is token_embd */
} RsHparams;

typedef struct {
  const RsGgufTensor *attn_norm, *wq, *wk, *wv, *wo, *bq, *bk, *bv, *q_norm, *k_norm;
  const RsGgufTensor *ffn_norm;
  /* dense FFN */
  const RsGgufTensor *ffn_gate, *ffn_up, *ffn_down;
  /* MoE: router [n_embd -> E], experts [E][ff][n_embd] and [E][n_embd][ff] */
  const RsGgufTensor *router, *router_bias, *gate_exps, *up_exps, *down_exps;
  const RsGgufTensor *shexp_gate, *gate_shexp, *up_shexp, *down_shexp;
  bool is_moe;
} RsLayerTensors;

typedef struct _RsModel RsModel;

/* Opens @path, checks the architecture, hyperparameters and every tensor's
 * presence, type and shape. Errors name the file and the key or tensor. */
RsModel *rs_model_open (const char *path, GError **error);
void     rs_model_free (RsModel *model);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RsModel, rs_model_free)

const RsGguf         *rs_model_gguf    (const RsModel *model);
const RsHparams      *rs_model_hparams (const RsModel *model);
const RsLayerTensors *rs_model_layer   (const RsModel *model, int layer);
const RsGgufTensor   *rs_model_token_embd  (const RsModel *model);
const RsGgufTensor   *rs_model_output_norm (const RsModel *model);
const RsGgufTensor   *rs_model_output      (const RsModel *model);

/* Parameter counts: all weights, and those one token touches (shared
 * weights + n_expert_used experts per MoE layer; embeddings counted once). */
void rs_model_param_counts (const RsModel *model, uint64_t *total, uint64_t *active);
/* Bytes of weights one decode step reads (for bandwidth bounds). */
uint64_t rs_model_active_bytes (const RsModel *model);

/* Locks the mapped weights in RAM (mlock); FALSE with an error if the
 * system refuses (e.g. RLIMIT_MEMLOCK). */
gboolean rs_model_lock_memory (RsModel *model, GError **error);

G_END_DECLS
