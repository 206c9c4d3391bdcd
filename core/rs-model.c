/* rs-model.c: architecture table, hyperparameters and tensor binding.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "rs-model.h"

#include <math.h>
#include <string.h>

#include "rs-error.h"

/* One row per architecture. Semantics follow the reference
 * implementations (HF modeling_*.py and llama.cpp's build_moe_ffn calls). */
static const RsArchInfo arch_table[] = {
  {
    .name = "olmoe",
    .routing = { .score = RS_SCORE_SOFTMAX, .norm_weights = false, .weight_scale = 1.0f },
    .qk_norm = RS_QK_NORM_FULL, .rope = RS_ROPE_NEOX, .shared = RS_SHARED_NONE,
    .routing_words = "softmax over all experts, top-k, weights are the selected probabilities "
                     "(not renormalised)",
  },
  {
    .name = "qwen2moe",
    .routing = { .score = RS_SCORE_SOFTMAX, .norm_weights = false, .weight_scale = 1.0f },
    .qk_norm = RS_QK_NORM_NONE, .rope = RS_ROPE_NEOX, .shared = RS_SHARED_SIGMOID_GATED,
    .routing_words = "softmax over all experts, top-k, weights are the selected probabilities "
                     "(not renormalised); plus a shared expert gated by sigmoid(w_s . x)",
  },
  {
    .name = "qwen3moe",
    .routing = { .score = RS_SCORE_SOFTMAX, .norm_weights = true, .weight_scale = 1.0f },
    .qk_norm = RS_QK_NORM_HEAD, .rope = RS_ROPE_NEOX, .shared = RS_SHARED_NONE,
    .routing_words = "softmax over all experts, top-k, weights renormalised to sum to 1",
  },
  {
    /* Granite MoE (PowerMoE, Granite 3.x MoE): llama-family attention with
     * embedding, residual, attention and logit multipliers. */
    .name = "granitemoe",
    .routing = { .score = RS_SCORE_SOFTMAX, .norm_weights = true, .weight_scale = 1.0f },
    .qk_norm = RS_QK_NORM_NONE, .rope = RS_ROPE_NORM, .shared = RS_SHARED_PLAIN,
    .routing_words = "top-k of the router logits, weights = softmax over the selected; "
                     "plus an unweighted shared expert when the model has one",
  },
  {
    /* Mixtral and other llama-family MoE (llama.expert_count > 0). */
    .name = "llama",
    .routing = { .score = RS_SCORE_SOFTMAX, .norm_weights = true, .weight_scale = 1.0f },
    .qk_norm = RS_QK_NORM_NONE, .rope = RS_ROPE_NORM, .shared = RS_SHARED_NONE,
    .routing_words = "softmax over all experts, top-k, weights renormalised to sum to 1 "
                     "(= softmax over the selected logits, as Mixtral)",
  },
};

const RsArchInfo *
rs_arch_find (const char *name)
{
  for (gsize i = 0; i < G_N_ELEMENTS (arch_table); i++)
    if (g_strcmp0 (arch_table[i].name, name) == 0)
      return &arch_table[i];
  return NULL;
}

const char *
rs_arch_supported_names (void)
{
  static char *names = NULL;
  if (g_once_init_enter (&names))
    {
      GString *s = g_string_new (NULL);
      for (gsize i = 0; i < G_N_ELEMENTS (arch_table); i++)
        g_string_append_printf (s, "%s%s", i ? ", " : "", arch_table[i].name);
      g_once_init_leave (&names, g_string_free (s, FALSE));
    }
  return names;
}

struct _RsModel {
  RsGguf             *gguf;
  RsHparams           hp;
  RsLayerTensors     *layers;  /* [n_layer] */
  const RsGgufTensor *token_embd, *output_norm, *output;
};

/* ---- hyperparameters ---------------------------------------------------- */

/* "{arch}.{suffix}" */
static const char *
akey (const RsHparams *hp, const char *suffix, char *buf, gsize size)
{
  g_snprintf (buf, size, "%s.%s", hp->arch->name, suffix);
  return buf;
}

static gboolean
get_u32 (const RsGguf *g, const RsHparams *hp, const char *suffix, uint32_t *out, GError **error)
{
  char key[128];
  return rs_gguf_get_u32 (g, akey (hp, suffix, key, sizeof key), out, error);
}

/* Some keys are per-layer arrays in newer files; we need them uniform. */
static gboolean
get_u32_uniform_or (const RsGguf *g, const RsHparams *hp, const char *suffix, uint32_t fallback,
                    uint32_t *out, GError **error)
{
  char key[128];
  akey (hp, suffix, key, sizeof key);
  const RsGgufKv *kv = rs_gguf_find_kv (g, key);
  if (kv != NULL && kv->type == RS_GGUF_ARRAY)
    {
      if (kv->n == 0 || (kv->arr_type != RS_GGUF_UINT32 && kv->arr_type != RS_GGUF_INT32))
        goto bad;
      const uint32_t *v = kv->arr;
      for (uint64_t i = 1; i < kv->n; i++)
        if (v[i] != v[0])
          {
            g_set_error (error, RS_ERROR, RS_ERROR_UNSUPPORTED,
                         "%s: '%s' varies between layers, which is not supported",
                         rs_gguf_path (g), key);
            return FALSE;
          }
      *out = v[0];
      return TRUE;
    }
  return rs_gguf_get_u32_or (g, key, fallback, out, error);
bad:
  g_set_error (error, RS_ERROR, RS_ERROR_FORMAT, "%s: '%s' is an array of the wrong type",
               rs_gguf_path (g), key);
  return FALSE;
}

static gboolean
read_hparams (const RsGguf *g, RsHparams *hp, GError **error)
{
  const char *arch_name;
  const char *path = rs_gguf_path (g);
  char key[128];

  if (!rs_gguf_get_str (g, "general.architecture", &arch_name, error))
    return FALSE;
  hp->arch = rs_arch_find (arch_name);
  if (hp->arch == NULL)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_UNSUPPORTED,
                   "%s: unsupported architecture '%s' (supported: %s)", path, arch_name,
                   rs_arch_supported_names ());
      return FALSE;
    }
  hp->routing = hp->arch->routing;

  if (!get_u32 (g, hp, "block_count", &hp->n_layer, error) ||
      !get_u32 (g, hp, "embedding_length", &hp->n_embd, error) ||
      !get_u32_uniform_or (g, hp, "attention.head_count", 0, &hp->n_head, error) ||
      !get_u32_uniform_or (g, hp, "attention.head_count_kv", hp->n_head, &hp->n_head_kv, error) ||
      !get_u32_uniform_or (g, hp, "feed_forward_length", 0, &hp->n_ff, error) ||
      !rs_gguf_get_u32_or (g, akey (hp, "context_length", key, sizeof key), 2048, &hp->n_ctx_train, error) ||
      !rs_gguf_get_u32_or (g, akey (hp, "expert_count", key, sizeof key), 0, &hp->n_expert, error) ||
      !rs_gguf_get_u32_or (g, akey (hp, "expert_used_count", key, sizeof key), 0, &hp->n_expert_used, error))
    return FALSE;

  if (hp->n_layer == 0 || hp->n_layer > 1024 || hp->n_embd == 0 || hp->n_embd > 65536 ||
      hp->n_head == 0 || hp->n_head > 1024 || hp->n_head_kv == 0 || hp->n_head % hp->n_head_kv != 0)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_FORMAT,
                   "%s: implausible hyperparameters: %u layers, n_embd %u, %u heads, %u KV heads",
                   path, hp->n_layer, hp->n_embd, hp->n_head, hp->n_head_kv);
      return FALSE;
    }
  if (hp->n_expert == 0 || hp->n_expert > RS_MAX_EXPERTS || hp->n_expert_used == 0 ||
      hp->n_expert_used > hp->n_expert || hp->n_expert_used > RS_MAX_EXPERTS_USED)
    {
      g_set_error (error, RS_ERROR, hp->n_expert == 0 ? RS_ERROR_UNSUPPORTED : RS_ERROR_FORMAT,
                   "%s: %s.expert_count = %u and expert_used_count = %u: %s", path,
                   hp->arch->name, hp->n_expert, hp->n_expert_used,
                   hp->n_expert == 0 ? "not a mixture-of-experts model"
                                     : "out of range (1 <= used <= count <= 512)");
      return FALSE;
    }

  uint32_t def_head = hp->n_embd / hp->n_head;
  if (!rs_gguf_get_u32_or (g, akey (hp, "attention.key_length", key, sizeof key), def_head, &hp->head_dim, error) ||
      !rs_gguf_get_u32_or (g, akey (hp, "attention.value_length", key, sizeof key), hp->head_dim, &hp->head_dim_v, error) ||
      !rs_gguf_get_u32_or (g, akey (hp, "rope.dimension_count", key, sizeof key), hp->head_dim, &hp->n_rot, error) ||
      !rs_gguf_get_u32_or (g, akey (hp, "expert_feed_forward_length", key, sizeof key), hp->n_ff, &hp->n_ff_exp, error) ||
      !rs_gguf_get_u32_or (g, akey (hp, "expert_shared_feed_forward_length", key, sizeof key), 0, &hp->n_ff_shexp, error))
    return FALSE;
  if (hp->head_dim == 0 || hp->head_dim > 1024 || hp->head_dim % 2 != 0 || hp->head_dim_v != hp->head_dim ||
      hp->n_rot > hp->head_dim || hp->n_rot % 2 != 0)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_FORMAT,
                   "%s: unsupported head sizes: key %u, value %u, rotary %u", path, hp->head_dim,
                   hp->head_dim_v, hp->n_rot);
      return FALSE;
    }

  double base, eps, scale = 1.0, ws = 0.0;
  bool norm = hp->routing.norm_weights;
  if (!rs_gguf_get_f64_or (g, akey (hp, "rope.freq_base", key, sizeof key), 10000.0, &base, error) ||
      !rs_gguf_get_f64_or (g, akey (hp, "attention.layer_norm_rms_epsilon", key, sizeof key), 1e-5, &eps, error) ||
      !rs_gguf_get_f64_or (g, akey (hp, "expert_weights_scale", key, sizeof key), 0.0, &ws, error) ||
      !rs_gguf_get_bool_or (g, akey (hp, "expert_weights_norm", key, sizeof key), norm, &norm, error))
    return FALSE;
  hp->rope_freq_base = base;
  hp->rms_eps = eps;

  /* A missing or zero multiplier means none (as llama.cpp reads them). */
  double emb = 0, res = 0, att = 0, logit = 0;
  if (!rs_gguf_get_f64_or (g, akey (hp, "embedding_scale", key, sizeof key), 0.0, &emb, error) ||
      !rs_gguf_get_f64_or (g, akey (hp, "residual_scale", key, sizeof key), 0.0, &res, error) ||
      !rs_gguf_get_f64_or (g, akey (hp, "attention.scale", key, sizeof key), 0.0, &att, error) ||
      !rs_gguf_get_f64_or (g, akey (hp, "logit_scale", key, sizeof key), 0.0, &logit, error))
    return FALSE;
  hp->embedding_scale = emb != 0.0 ? emb : 1.0;
  hp->residual_scale = res != 0.0 ? res : 1.0;
  hp->attention_scale = att != 0.0 ? att : 1.0 / sqrt ((double) hp->head_dim);
  hp->logit_scale = logit != 0.0 ? logit : 1.0;
  if (ws != 0.0)
    hp->routing.weight_scale = ws;
  hp->routing.norm_weights = norm;

  const RsGgufKv *st = rs_gguf_find_kv (g, akey (hp, "rope.scaling.type", key, sizeof key));
  hp->rope_scaling = RS_ROPE_SCALING_NONE;
  hp->rope_freq_scale = 1.0f;
  if (st != NULL && st->type == RS_GGUF_STRING && g_strcmp0 (st->str, "none") != 0)
    {
      if (g_strcmp0 (st->str, "linear") != 0)
        {
          g_set_error (error, RS_ERROR, RS_ERROR_UNSUPPORTED,
                       "%s: RoPE scaling '%s' (%s) is not supported yet (none, linear)", path,
                       st->str, key);
          return FALSE;
        }
      if (!rs_gguf_get_f64_or (g, akey (hp, "rope.scaling.factor", key, sizeof key), 1.0, &scale, error))
        return FALSE;
      hp->rope_scaling = RS_ROPE_SCALING_LINEAR;
      hp->rope_freq_scale = scale > 0 ? 1.0f / scale : 1.0f;
    }
  return TRUE;
}

/* ---- tensors ------------------------------------------------------------ */

/* Finds tensor "blk.L.NAME" (or NAME when layer < 0) and checks its shape.
 * ne lists the expected dims (0 ends the list; -1 = any). */
static const RsGgufTensor *
bind (const RsModel *m, int layer, const char *name, gboolean required, const int64_t *ne,
      int n_dims, GError **error)
{
  char full[160];
  if (layer >= 0)
    g_snprintf (full, sizeof full, "blk.%d.%s", layer, name);
  else
    g_strlcpy (full, name, sizeof full);
  const RsGgufTensor *t = rs_gguf_find_tensor (m->gguf, full);
  if (t == NULL)
    {
      if (required)
        g_set_error (error, RS_ERROR, RS_ERROR_FORMAT, "%s: missing tensor '%s'",
                     rs_gguf_path (m->gguf), full);
      return NULL;
    }
  /* Trailing dims of size 1 may be omitted or present. */
  gboolean ok = t->n_dims <= MAX (n_dims, 1) || (n_dims == 1 && t->ne[1] == 1);
  for (int d = 0; d < 4 && ok; d++)
    {
      int64_t want = d < n_dims ? ne[d] : 1;
      if (want >= 0 && t->ne[d] != want)
        ok = FALSE;
    }
  if (!ok)
    {
      g_autoptr (GString) want = g_string_new (NULL);
      for (int d = 0; d < n_dims; d++)
        g_string_append_printf (want, "%s%" G_GINT64_FORMAT, d ? " x " : "", ne[d]);
      g_set_error (error, RS_ERROR, RS_ERROR_FORMAT,
                   "%s: tensor '%s' has shape %" G_GINT64_FORMAT " x %" G_GINT64_FORMAT " x %"
                   G_GINT64_FORMAT " x %" G_GINT64_FORMAT ", expected %s", rs_gguf_path (m->gguf),
                   full, t->ne[0], t->ne[1], t->ne[2], t->ne[3], want->str);
      return NULL;
    }
  return t;
}

#define BIND(dst, layer, name, req, ...)                                              \
  do {                                                                                \
    const int64_t ne_[] = { __VA_ARGS__ };                                            \
    dst = bind (m, layer, name, req, ne_, G_N_ELEMENTS (ne_), error);                 \
    if (dst == NULL && (req))                                                         \
      return FALSE;                                                                   \
    if (error != NULL && *error != NULL)                                              \
      return FALSE;                                                                   \
  } while (0)

static gboolean
bind_tensors (RsModel *m, GError **error)
{
  RsHparams *hp = &m->hp;
  const int64_t E = hp->n_embd, V = -1;
  const int64_t q_dim = (int64_t) hp->n_head * hp->head_dim;
  const int64_t kv_dim = (int64_t) hp->n_head_kv * hp->head_dim;
  const int64_t X = hp->n_expert;

  BIND (m->token_embd, -1, "token_embd.weight", TRUE, E, V);
  hp->n_vocab = m->token_embd->ne[1];
  BIND (m->output_norm, -1, "output_norm.weight", TRUE, E);
  BIND (m->output, -1, "output.weight", FALSE, E, hp->n_vocab);
  hp->tied_output = m->output == NULL;
  if (hp->tied_output)
    m->output = m->token_embd;

  m->layers = g_new0 (RsLayerTensors, hp->n_layer);
  for (int il = 0; il < (int) hp->n_layer; il++)
    {
      RsLayerTensors *L = &m->layers[il];
      BIND (L->attn_norm, il, "attn_norm.weight", TRUE, E);
      BIND (L->wq, il, "attn_q.weight", TRUE, E, q_dim);
      BIND (L->wk, il, "attn_k.weight", TRUE, E, kv_dim);
      BIND (L->wv, il, "attn_v.weight", TRUE, E, kv_dim);
      BIND (L->wo, il, "attn_output.weight", TRUE, q_dim, E);
      BIND (L->bq, il, "attn_q.bias", FALSE, q_dim);
      BIND (L->bk, il, "attn_k.bias", FALSE, kv_dim);
      BIND (L->bv, il, "attn_v.bias", FALSE, kv_dim);
      switch (hp->arch->qk_norm)
        {
        case RS_QK_NORM_FULL:
          BIND (L->q_norm, il, "attn_q_norm.weight", TRUE, q_dim);
          BIND (L->k_norm, il, "attn_k_norm.weight", TRUE, kv_dim);
          break;
        case RS_QK_NORM_HEAD:
          BIND (L->q_norm, il, "attn_q_norm.weight", TRUE, hp->head_dim);
          BIND (L->k_norm, il, "attn_k_norm.weight", TRUE, hp->head_dim);
          break;
        case RS_QK_NORM_NONE:
          break;
        }
      BIND (L->ffn_norm, il, "ffn_norm.weight", TRUE, E);

      BIND (L->router, il, "ffn_gate_inp.weight", FALSE, E, X);
      L->is_moe = L->router != NULL;
      if (!L->is_moe)
        {
          if (hp->n_ff == 0)
            {
              g_set_error (error, RS_ERROR, RS_ERROR_FORMAT,
                           "%s: layer %d has no router (blk.%d.ffn_gate_inp.weight) and the "
                           "model declares no dense FFN width", rs_gguf_path (m->gguf), il, il);
              return FALSE;
            }
          BIND (L->ffn_gate, il, "ffn_gate.weight", TRUE, E, hp->n_ff);
          BIND (L->ffn_up, il, "ffn_up.weight", TRUE, E, hp->n_ff);
          BIND (L->ffn_down, il, "ffn_down.weight", TRUE, hp->n_ff, E);
          continue;
        }
      hp->n_moe_layers++;
      if (hp->n_ff_exp == 0)
        {
          g_set_error (error, RS_ERROR, RS_ERROR_FORMAT, "%s: %s.expert_feed_forward_length "
                       "is missing", rs_gguf_path (m->gguf), hp->arch->name);
          return FALSE;
        }
      char legacy[64];
      g_snprintf (legacy, sizeof legacy, "blk.%d.ffn_gate.0.weight", il);
      if (rs_gguf_find_tensor (m->gguf, legacy) != NULL)
        {
          g_set_error (error, RS_ERROR, RS_ERROR_UNSUPPORTED,
                       "%s: experts stored as separate tensors (%s): this legacy layout is not "
                       "supported; re-convert the model with a current converter",
                       rs_gguf_path (m->gguf), legacy);
          return FALSE;
        }
      BIND (L->router_bias, il, "ffn_gate_inp.bias", FALSE, X);
      BIND (L->gate_exps, il, "ffn_gate_exps.weight", TRUE, E, hp->n_ff_exp, X);
      BIND (L->up_exps, il, "ffn_up_exps.weight", TRUE, E, hp->n_ff_exp, X);
      BIND (L->down_exps, il, "ffn_down_exps.weight", TRUE, hp->n_ff_exp, E, X);
      /* Granite's shared expert is optional: present when sized. */
      gboolean want_shared = hp->arch->shared == RS_SHARED_SIGMOID_GATED ||
                             (hp->arch->shared == RS_SHARED_PLAIN && hp->n_ff_shexp > 0);
      if (want_shared)
        {
          if (hp->n_ff_shexp == 0)
            {
              const RsGgufTensor *probe = rs_gguf_find_tensor (m->gguf, "blk.0.ffn_up_shexp.weight");
              hp->n_ff_shexp = probe != NULL ? probe->ne[1] : hp->n_ff_exp;
            }
          BIND (L->gate_shexp, il, "ffn_gate_shexp.weight", TRUE, E, hp->n_ff_shexp);
          BIND (L->up_shexp, il, "ffn_up_shexp.weight", TRUE, E, hp->n_ff_shexp);
          BIND (L->down_shexp, il, "ffn_down_shexp.weight", TRUE, hp->n_ff_shexp, E);
          if (hp->arch->shared == RS_SHARED_SIGMOID_GATED)
            BIND (L->shexp_gate, il, "ffn_gate_inp_shexp.weight", TRUE, E);
        }
    }
  if (hp->n_moe_layers == 0)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_UNSUPPORTED, "%s: no layer has experts",
                   rs_gguf_path (m->gguf));
      return FALSE;
    }
  return TRUE;
}

RsModel *
rs_model_open (const char *path, GError **error)
{
  g_autoptr (RsModel) m = g_new0 (RsModel, 1);
  GError *local = NULL; /* bind_tensors tests *error, so it must not be NULL */
  m->gguf = rs_gguf_open (path, error);
  if (m->gguf == NULL)
    return NULL;
  if (!read_hparams (m->gguf, &m->hp, &local) || !bind_tensors (m, &local))
    {
      g_propagate_error (error, local);
      return NULL;
    }
  return g_steal_pointer (&m);
}

void
rs_model_free (RsModel *m)
{
  if (m == NULL)
    return;
  g_free (m->layers);
  rs_gguf_free (m->gguf);
  g_free (m);
}

const RsGguf *rs_model_gguf (const RsModel *m) { return m->gguf; }
const RsHparams *rs_model_hparams (const RsModel *m) { return &m->hp; }
const RsGgufTensor *rs_model_token_embd (const RsModel *m) { return m->token_embd; }
const RsGgufTensor *rs_model_output_norm (const RsModel *m) { return m->output_norm; }
const RsGgufTensor *rs_model_output (const RsModel *m) { return m->output; }

const RsLayerTensors *
rs_model_layer (const RsModel *m, int layer)
{
  g_return_val_if_fail (layer >= 0 && layer < (int) m->hp.n_layer, NULL);
  return &m->layers[layer];
}

static uint64_t
n_el (const RsGgufTensor *t)
{
  return t != NULL ? (uint64_t) t->n_elements : 0;
}

static uint64_t
n_bytes (const RsGgufTensor *t)
{
  return t != NULL ? t->nbytes : 0;
}

void
rs_model_param_counts (const RsModel *m, uint64_t *total, uint64_t *active)
{
  uint64_t all = 0;
  for (int64_t i = 0; i < rs_gguf_n_tensors (m->gguf); i++)
    all += rs_gguf_tensor (m->gguf, i)->n_elements;
  /* Active: everything except the unselected experts. */
  uint64_t inactive = 0;
  for (uint32_t il = 0; il < m->hp.n_layer; il++)
    {
      const RsLayerTensors *L = &m->layers[il];
      if (!L->is_moe)
        continue;
      uint64_t experts = n_el (L->gate_exps) + n_el (L->up_exps) + n_el (L->down_exps);
      inactive += experts / m->hp.n_expert * (m->hp.n_expert - m->hp.n_expert_used);
    }
  *total = all;
  *active = all - inactive;
}

uint64_t
rs_model_active_bytes (const RsModel *m)
{
  /* A decode step reads every non-expert weight, k experts per MoE layer,
   * one embedding row and the whole output projection. */
  uint64_t bytes = 0;
  for (int64_t i = 0; i < rs_gguf_n_tensors (m->gguf); i++)
    bytes += rs_gguf_tensor (m->gguf, i)->nbytes;
  for (uint32_t il = 0; il < m->hp.n_layer; il++)
    {
      const RsLayerTensors *L = &m->layers[il];
      if (!L->is_moe)
        continue;
      uint64_t experts = n_bytes (L->gate_exps) + n_bytes (L->up_exps) + n_bytes (L->down_exps);
      bytes -= experts / m->hp.n_expert * (m->hp.n_expert - m->hp.n_expert_used);
    }
  if (!m->hp.tied_output)
    bytes -= m->token_embd->nbytes - m->token_embd->nbytes / m->hp.n_vocab;
  return bytes;
}

gboolean
rs_model_lock_memory (RsModel *m, GError **error)
{
  return rs_gguf_lock_memory (m->gguf, error);
}
