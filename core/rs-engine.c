/* rs-engine.c: the CPU forward pass.
 *
 * One forward step over B tokens at positions pos0 .. pos0+B-1:
 *
 *   x [B, E] = token_embd[tokens]
 *   per layer:
 *     h = rmsnorm(x) * attn_norm
 *     q [B, Hq*D], k, v [B, Hkv*D] = h Wq, h Wk, h Wv (+ biases)
 *     q, k: optional RMSNorm (whole projection or per head), then RoPE
 *     k, v -> KV cache; a [B, Hq*D] = causal attention over the cache
 *     x += a Wo
 *     h = rmsnorm(x) * ffn_norm
 *     MoE: router stage (logits, interventions, rs_route_token), then the
 *          selected experts only, tokens grouped by expert; shared expert
 *     dense: SwiGLU FFN
 *     x += ffn
 *   logits = (rmsnorm(x) * output_norm) W_out
 *
 * Decode (B == 1) batches the independent mat-vecs of a stage into one
 * parallel step (q/k/v; gate/up of all selected experts; their down
 * projections), so a token pays few thread synchronisations.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "rs-engine.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "rs-error.h"
#include "rs-matmul.h"
#include "rs-ops.h"
#include "rs-quant.h"
#include "rs-threadpool.h"

typedef struct {
  float *attn_norm, *ffn_norm, *q_norm, *k_norm; /* f32 copies of the small vectors */
  float *bq, *bk, *bv, *router_bias, *shexp_gate;
  RsMatrix wq, wk, wv, wo, router, ffn_gate, ffn_up, ffn_down;
  RsMatrix gate_shexp, up_shexp, down_shexp, shexp_gate_m;
  RsMatrix *gate_exps, *up_exps, *down_exps;     /* [n_expert] slices */
  /* interventions */
  gboolean       has_control;
  RsRouterControl control;
  float         *ctl_bias, *ctl_soft;
  uint8_t       *ctl_mode;
} LayerState;

struct _RsSession {
  const RsModel   *model;
  const RsHparams *hp;
  int              n_ctx, n_batch, pos;
  RsThreadPool    *pool;
  RsMatmulScratch *mm;
  LayerState      *layers;
  float           *output_norm;
  RsMatrix         output;
  atomic_int       cancel;

  /* KV cache: [n_layer][n_ctx][Hkv*D] */
  float *k_cache, *v_cache;

  /* activations, [n_batch, ...] */
  float *x, *h, *q, *k, *v, *attn, *ffn_out;
  float *att_scratch;                  /* [n_threads][n_ctx] */
  float *router_logits, *router_raw, *router_scores, *route_work; /* [B, X] */
  RsRouteResult *routes, *routes_base; /* [B] */
  float   *exp_maxabs;                 /* [B, RS_MAX_EXPERTS_USED] */
  int32_t *exp_argmax;
  float   *shared_gate, *resid_maxabs; /* [B] */
  /* expert grouping */
  int32_t *exp_count, *exp_offset;     /* [X + 1] */
  int32_t *exp_token, *exp_slot;       /* [B * kmax] */
  float   *xe, *ge, *ue, *de;          /* gathered: [B, E], [B, ff], [B, ff], [B, E] */
  float   *sh_g, *sh_u, *sh_d;         /* shared expert: [B, ff_sh], [B, ff_sh], [B, E] */
  float   *last;                       /* [B, E] normalised final rows */

  RsRouterObserver observer;
  void            *observer_data;
};

/* ---- setup -------------------------------------------------------------- */

static RsMatrix
matrix_of (const RsGgufTensor *t)
{
  RsMatrix m = { 0 };
  if (t == NULL)
    return m;
  m.type = t->type;
  m.n_cols = t->ne[0];
  m.n_rows = t->ne[1];
  m.row_stride = rs_type_row_size (t->type, t->ne[0]);
  m.data = t->data;
  return m;
}

/* Expert @e's [ne1, ne0] slice of a [ne0, ne1, n_expert] tensor. */
static RsMatrix
expert_slice (const RsGgufTensor *t, int e)
{
  RsMatrix m = matrix_of (t);
  m.data = (const uint8_t *) t->data + (size_t) e * m.row_stride * m.n_rows;
  return m;
}

/* f32 copy of a small vector tensor (norm weights, biases). */
static float *
vector_f32 (const RsGgufTensor *t)
{
  if (t == NULL)
    return NULL;
  float *v = g_new (float, t->n_elements);
  rs_dequantize_row (t->type, t->data, v, t->n_elements);
  return v;
}

static void *
zalloc (size_t n)
{
  return g_malloc0 (MAX (n, 1));
}

RsSession *
rs_session_new (const RsModel *model, const RsSessionParams *params, GError **error)
{
  const RsHparams *hp = rs_model_hparams (model);
  RsSessionParams p = params != NULL ? *params : (RsSessionParams) { 0 };
  int n_ctx = p.n_ctx > 0 ? p.n_ctx : (int) MIN (4096u, hp->n_ctx_train);
  int n_batch = p.n_batch > 0 ? p.n_batch : 512;
  n_batch = MIN (n_batch, n_ctx);

  const int64_t E = hp->n_embd, X = hp->n_expert, D = hp->head_dim;
  const int64_t q_dim = (int64_t) hp->n_head * D, kv_dim = (int64_t) hp->n_head_kv * D;
  const int64_t ff_max = MAX (MAX (hp->n_ff, hp->n_ff_exp), hp->n_ff_shexp);
  const int64_t kmax = RS_MAX_EXPERTS_USED;

  uint64_t kv_bytes = 2ull * hp->n_layer * n_ctx * kv_dim * sizeof (float);
  if (n_ctx > 1 << 20 || kv_bytes > (64ull << 30))
    {
      g_set_error (error, RS_ERROR, RS_ERROR_RESOURCE,
                   "a context of %d tokens needs %" G_GUINT64_FORMAT " MiB of KV cache; "
                   "ask for a smaller one (-c)", n_ctx, kv_bytes >> 20);
      return NULL;
    }

  RsSession *s = g_new0 (RsSession, 1);
  s->model = model;
  s->hp = hp;
  s->n_ctx = n_ctx;
  s->n_batch = n_batch;
  s->pool = rs_thread_pool_new (p.n_threads);
  int nth = rs_thread_pool_n_threads (s->pool);
  int64_t max_cols = MAX (MAX (E, q_dim), ff_max);
  s->mm = rs_matmul_scratch_new (nth, max_cols, n_batch);

  s->layers = g_new0 (LayerState, hp->n_layer);
  for (uint32_t il = 0; il < hp->n_layer; il++)
    {
      const RsLayerTensors *T = rs_model_layer (model, il);
      LayerState *L = &s->layers[il];
      L->attn_norm = vector_f32 (T->attn_norm);
      L->ffn_norm = vector_f32 (T->ffn_norm);
      L->q_norm = vector_f32 (T->q_norm);
      L->k_norm = vector_f32 (T->k_norm);
      L->bq = vector_f32 (T->bq);
      L->bk = vector_f32 (T->bk);
      L->bv = vector_f32 (T->bv);
      L->wq = matrix_of (T->wq);
      L->wk = matrix_of (T->wk);
      L->wv = matrix_of (T->wv);
      L->wo = matrix_of (T->wo);
      if (!T->is_moe)
        {
          L->ffn_gate = matrix_of (T->ffn_gate);
          L->ffn_up = matrix_of (T->ffn_up);
          L->ffn_down = matrix_of (T->ffn_down);
          continue;
        }
      L->router = matrix_of (T->router);
      L->router_bias = vector_f32 (T->router_bias);
      L->gate_exps = g_new (RsMatrix, X);
      L->up_exps = g_new (RsMatrix, X);
      L->down_exps = g_new (RsMatrix, X);
      for (int e = 0; e < X; e++)
        {
          L->gate_exps[e] = expert_slice (T->gate_exps, e);
          L->up_exps[e] = expert_slice (T->up_exps, e);
          L->down_exps[e] = expert_slice (T->down_exps, e);
        }
      L->gate_shexp = matrix_of (T->gate_shexp);
      L->up_shexp = matrix_of (T->up_shexp);
      L->down_shexp = matrix_of (T->down_shexp);
      if (T->shexp_gate != NULL)
        {
          /* A [n_embd] (or [n_embd, 1]) vector used as a 1-row matrix. */
          L->shexp_gate_m = matrix_of (T->shexp_gate);
          L->shexp_gate_m.n_rows = 1;
        }
    }
  s->output_norm = vector_f32 (rs_model_output_norm (model));
  s->output = matrix_of (rs_model_output (model));

  s->k_cache = zalloc ((size_t) hp->n_layer * n_ctx * kv_dim * sizeof (float));
  s->v_cache = zalloc ((size_t) hp->n_layer * n_ctx * kv_dim * sizeof (float));
  if (s->k_cache == NULL || s->v_cache == NULL)
    {
      rs_session_free (s);
      g_set_error (error, RS_ERROR, RS_ERROR_RESOURCE, "cannot allocate the KV cache");
      return NULL;
    }

  const int64_t B = n_batch;
  s->x = zalloc (B * E * 4);
  s->h = zalloc (B * E * 4);
  s->q = zalloc (B * q_dim * 4);
  s->k = zalloc (B * kv_dim * 4);
  s->v = zalloc (B * kv_dim * 4);
  s->attn = zalloc (B * q_dim * 4);
  s->ffn_out = zalloc (B * E * 4);
  s->att_scratch = zalloc ((size_t) nth * n_ctx * 4);
  s->router_logits = zalloc (B * X * 4);
  s->router_raw = zalloc (B * X * 4);
  s->router_scores = zalloc (B * X * 4);
  s->route_work = zalloc (X * 4);
  s->routes = zalloc (B * sizeof (RsRouteResult));
  s->routes_base = zalloc (B * sizeof (RsRouteResult));
  s->exp_maxabs = zalloc (B * kmax * 4);
  s->exp_argmax = zalloc (B * kmax * 4);
  s->shared_gate = zalloc (B * 4);
  s->resid_maxabs = zalloc (B * 4);
  s->exp_count = zalloc ((X + 1) * 4);
  s->exp_offset = zalloc ((X + 1) * 4);
  s->exp_token = zalloc (B * kmax * 4);
  s->exp_slot = zalloc (B * kmax * 4);
  s->xe = zalloc (B * E * 4);
  s->ge = zalloc (B * MAX (ff_max, kmax * (int64_t) hp->n_ff_exp) * 4);
  s->ue = zalloc (B * MAX (ff_max, kmax * (int64_t) hp->n_ff_exp) * 4);
  s->de = zalloc (B * MAX (E, kmax * E) * 4);
  s->sh_g = zalloc (B * MAX (hp->n_ff_shexp, 1) * 4);
  s->sh_u = zalloc (B * MAX (hp->n_ff_shexp, 1) * 4);
  s->sh_d = zalloc (B * E * 4);
  s->last = zalloc (B * E * 4);
  return s;
}

void
rs_session_free (RsSession *s)
{
  if (s == NULL)
    return;
  for (uint32_t il = 0; il < s->hp->n_layer; il++)
    {
      LayerState *L = &s->layers[il];
      g_free (L->attn_norm); g_free (L->ffn_norm); g_free (L->q_norm); g_free (L->k_norm);
      g_free (L->bq); g_free (L->bk); g_free (L->bv); g_free (L->router_bias);
      g_free (L->gate_exps); g_free (L->up_exps); g_free (L->down_exps);
      g_free (L->ctl_bias); g_free (L->ctl_soft); g_free (L->ctl_mode);
    }
  g_free (s->layers);
  g_free (s->output_norm);
  rs_matmul_scratch_free (s->mm);
  rs_thread_pool_free (s->pool);
  void *bufs[] = { s->k_cache, s->v_cache, s->x, s->h, s->q, s->k, s->v, s->attn, s->ffn_out,
                   s->att_scratch, s->router_logits, s->router_raw, s->router_scores,
                   s->route_work, s->routes, s->routes_base, s->exp_maxabs, s->exp_argmax,
                   s->shared_gate, s->resid_maxabs, s->exp_count, s->exp_offset, s->exp_token,
                   s->exp_slot, s->xe, s->ge, s->ue, s->de, s->sh_g, s->sh_u, s->sh_d, s->last };
  for (gsize i = 0; i < G_N_ELEMENTS (bufs); i++)
    g_free (bufs[i]);
  g_free (s);
}

const RsModel *rs_session_model (const RsSession *s) { return s->model; }
int rs_session_n_ctx (const RsSession *s) { return s->n_ctx; }
int rs_session_n_threads (const RsSession *s) { return rs_thread_pool_n_threads (s->pool); }
int rs_session_pos (const RsSession *s) { return s->pos; }

void
rs_session_truncate (RsSession *s, int pos)
{
  s->pos = CLAMP (pos, 0, s->pos);
}

void
rs_session_cancel (RsSession *s)
{
  atomic_store (&s->cancel, 1);
}

void
rs_session_set_router_observer (RsSession *s, RsRouterObserver observer, void *user_data)
{
  s->observer = observer;
  s->observer_data = user_data;
}

gboolean
rs_session_set_router_control (RsSession *s, int layer, const RsRouterControl *ctl,
                               GError **error)
{
  if (layer < 0 || layer >= (int) s->hp->n_layer)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "layer %d does not exist (the model has "
                   "layers 0 to %u)", layer, s->hp->n_layer - 1);
      return FALSE;
    }
  LayerState *L = &s->layers[layer];
  if (L->gate_exps == NULL)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "layer %d has no experts (dense FFN)",
                   layer);
      return FALSE;
    }
  const int X = s->hp->n_expert;
  g_clear_pointer (&L->ctl_bias, g_free);
  g_clear_pointer (&L->ctl_soft, g_free);
  g_clear_pointer (&L->ctl_mode, g_free);
  memset (&L->control, 0, sizeof L->control);
  L->has_control = ctl != NULL;
  if (ctl == NULL)
    return TRUE;
  if (ctl->logit_bias != NULL)
    L->control.logit_bias = L->ctl_bias = g_memdup2 (ctl->logit_bias, X * sizeof (float));
  if (ctl->soft_bias != NULL)
    L->control.soft_bias = L->ctl_soft = g_memdup2 (ctl->soft_bias, X * sizeof (float));
  if (ctl->mode != NULL)
    L->control.mode = L->ctl_mode = g_memdup2 (ctl->mode, X);
  L->control.top_k = ctl->top_k;
  L->control.top_p = ctl->top_p;
  return TRUE;
}

/* ---- small ops ---------------------------------------------------------- */

static void
rmsnorm_rows (const float *x, const float *w, float *y, int64_t rows, int64_t n, float eps)
{
  for (int64_t r = 0; r < rows; r++)
    rs_rmsnorm_row (x + r * n, w, y + r * n, (int) n, eps);
}

static void
add_bias (float *y, const float *b, int64_t rows, int64_t n)
{
  if (b == NULL)
    return;
  for (int64_t r = 0; r < rows; r++)
    for (int64_t i = 0; i < n; i++)
      y[r * n + i] += b[i];
}

static float
max_abs (const float *v, int64_t n, int32_t *argmax)
{
  float m = 0.0f;
  int32_t at = 0;
  for (int64_t i = 0; i < n; i++)
    {
      float a = fabsf (v[i]);
      if (a > m)
        {
          m = a;
          at = (int32_t) i;
        }
    }
  if (argmax != NULL)
    *argmax = at;
  return m;
}

/* ---- attention ---------------------------------------------------------- */

typedef struct {
  RsSession *s;
  int        layer;
  int64_t    n_tokens;
  int64_t    pos0;
} AttnJob;

/* Causal attention for every (token, head) pair, split across threads. */
static void
attention_worker (void *ctx, int ith, int nth)
{
  const AttnJob *job = ctx;
  RsSession *s = job->s;
  const RsHparams *hp = s->hp;
  const int D = hp->head_dim, Hq = hp->n_head, Hkv = hp->n_head_kv;
  const int64_t q_dim = (int64_t) Hq * D, kv_dim = (int64_t) Hkv * D;
  const float scale = hp->attention_scale;
  const float *kc = s->k_cache + (size_t) job->layer * s->n_ctx * kv_dim;
  const float *vc = s->v_cache + (size_t) job->layer * s->n_ctx * kv_dim;
  float *att = s->att_scratch + (size_t) ith * s->n_ctx;

  int64_t begin, end;
  rs_split_range (job->n_tokens * Hq, 1, ith, nth, &begin, &end);
  for (int64_t idx = begin; idx < end; idx++)
    {
      int64_t t = idx / Hq;
      int h = (int) (idx % Hq);
      int hk = h / (Hq / Hkv);
      int64_t n_keys = job->pos0 + t + 1;
      const float *qh = s->q + t * q_dim + (int64_t) h * D;

      float max = -INFINITY;
      for (int64_t j = 0; j < n_keys; j++)
        {
          const float *kj = kc + j * kv_dim + (int64_t) hk * D;
          float dot = 0.0f;
          for (int d = 0; d < D; d++)
            dot += qh[d] * kj[d];
          att[j] = dot * scale;
          max = att[j] > max ? att[j] : max;
        }
      float sum = 0.0f;
      for (int64_t j = 0; j < n_keys; j++)
        {
          att[j] = expf (att[j] - max);
          sum += att[j];
        }
      float *out = s->attn + t * q_dim + (int64_t) h * D;
      memset (out, 0, D * sizeof (float));
      for (int64_t j = 0; j < n_keys; j++)
        {
          const float *vj = vc + j * kv_dim + (int64_t) hk * D;
          float w = att[j] / sum;
          for (int d = 0; d < D; d++)
            out[d] += w * vj[d];
        }
    }
}

static void
attention_block (RsSession *s, int il, int64_t B, int64_t pos0)
{
  const RsHparams *hp = s->hp;
  LayerState *L = &s->layers[il];
  const int64_t E = hp->n_embd, D = hp->head_dim;
  const int64_t q_dim = hp->n_head * D, kv_dim = hp->n_head_kv * D;

  rmsnorm_rows (s->x, L->attn_norm, s->h, B, E, hp->rms_eps);
  if (B == 1)
    {
      RsMatvecJob jobs[3] = { { &L->wq, s->h, s->q }, { &L->wk, s->h, s->k }, { &L->wv, s->h, s->v } };
      rs_matvec_multi (s->pool, s->mm, jobs, 3);
    }
  else
    {
      rs_matmul (s->pool, s->mm, &L->wq, s->h, E, B, s->q, q_dim);
      rs_matmul (s->pool, s->mm, &L->wk, s->h, E, B, s->k, kv_dim);
      rs_matmul (s->pool, s->mm, &L->wv, s->h, E, B, s->v, kv_dim);
    }
  add_bias (s->q, L->bq, B, q_dim);
  add_bias (s->k, L->bk, B, kv_dim);
  add_bias (s->v, L->bv, B, kv_dim);

  switch (hp->arch->qk_norm)
    {
    case RS_QK_NORM_FULL:
      rmsnorm_rows (s->q, L->q_norm, s->q, B, q_dim, hp->rms_eps);
      rmsnorm_rows (s->k, L->k_norm, s->k, B, kv_dim, hp->rms_eps);
      break;
    case RS_QK_NORM_HEAD:
      rmsnorm_rows (s->q, L->q_norm, s->q, B * hp->n_head, D, hp->rms_eps);
      rmsnorm_rows (s->k, L->k_norm, s->k, B * hp->n_head_kv, D, hp->rms_eps);
      break;
    case RS_QK_NORM_NONE:
      break;
    }

  const int neox = hp->arch->rope == RS_ROPE_NEOX;
  for (int64_t t = 0; t < B; t++)
    {
      float pos = (float) (pos0 + t);
      for (uint32_t h = 0; h < hp->n_head; h++)
        rs_rope_head (s->q + t * q_dim + h * D, hp->n_rot, neox, pos, hp->rope_freq_base,
                      hp->rope_freq_scale);
      for (uint32_t h = 0; h < hp->n_head_kv; h++)
        rs_rope_head (s->k + t * kv_dim + h * D, hp->n_rot, neox, pos, hp->rope_freq_base,
                      hp->rope_freq_scale);
    }

  float *kc = s->k_cache + ((size_t) il * s->n_ctx + pos0) * kv_dim;
  float *vc = s->v_cache + ((size_t) il * s->n_ctx + pos0) * kv_dim;
  memcpy (kc, s->k, B * kv_dim * sizeof (float));
  memcpy (vc, s->v, B * kv_dim * sizeof (float));

  AttnJob job = { s, il, B, pos0 };
  rs_thread_pool_run (s->pool, attention_worker, &job);

  /* x += attn Wo */
  rs_matmul (s->pool, s->mm, &L->wo, s->attn, q_dim, B, s->ffn_out, E);
  const float rs = hp->residual_scale;
  for (int64_t i = 0; i < B * E; i++)
    s->x[i] += rs * s->ffn_out[i];
}

/* ---- feed-forward ------------------------------------------------------- */

static void
dense_ffn (RsSession *s, LayerState *L, int64_t B)
{
  const int64_t E = s->hp->n_embd, F = L->ffn_gate.n_rows;
  rs_matmul (s->pool, s->mm, &L->ffn_gate, s->h, E, B, s->ge, F);
  rs_matmul (s->pool, s->mm, &L->ffn_up, s->h, E, B, s->ue, F);
  for (int64_t t = 0; t < B; t++)
    rs_swiglu_row (s->ge + t * F, s->ue + t * F, (int) F);
  rs_matmul (s->pool, s->mm, &L->ffn_down, s->ge, F, B, s->ffn_out, E);
}

/* The router stage: logits, interventions, routing rule. */
static void
router_stage (RsSession *s, LayerState *L, int64_t B)
{
  const RsHparams *hp = s->hp;
  const int X = hp->n_expert, k = hp->n_expert_used;
  const int64_t E = hp->n_embd;

  rs_matmul (s->pool, s->mm, &L->router, s->h, E, B, s->router_raw, X);
  add_bias (s->router_raw, L->router_bias, B, X);
  memcpy (s->router_logits, s->router_raw, B * X * sizeof (float));

  for (int64_t t = 0; t < B; t++)
    {
      float *z = s->router_logits + t * X;
      float *sc = s->router_scores + t * X;
      if (L->has_control)
        {
          /* What the untouched router would do, for the record. */
          rs_route_token (&hp->routing, NULL, X, k, z, sc, NULL, s->route_work, &s->routes_base[t]);
          memcpy (z, s->router_raw + t * X, X * sizeof (float));
        }
      rs_route_token (&hp->routing, L->has_control ? &L->control : NULL, X, k, z, sc, NULL,
                      s->route_work, &s->routes[t]);
    }
}

/* out[t] += sigmoid(w_s . h[t]) * FFN_s(h[t]) or the ungated FFN_s. */
static void
shared_expert (RsSession *s, LayerState *L, int64_t B, float *out)
{
  const int64_t E = s->hp->n_embd, F = L->gate_shexp.n_rows;
  if (F == 0)
    return;
  rs_matmul (s->pool, s->mm, &L->gate_shexp, s->h, E, B, s->sh_g, F);
  rs_matmul (s->pool, s->mm, &L->up_shexp, s->h, E, B, s->sh_u, F);
  for (int64_t t = 0; t < B; t++)
    rs_swiglu_row (s->sh_g + t * F, s->sh_u + t * F, (int) F);
  rs_matmul (s->pool, s->mm, &L->down_shexp, s->sh_g, F, B, s->sh_d, E);
  if (L->shexp_gate_m.data != NULL)
    rs_matmul (s->pool, s->mm, &L->shexp_gate_m, s->h, E, B, s->shared_gate, 1);
  for (int64_t t = 0; t < B; t++)
    {
      float g = 1.0f;
      if (L->shexp_gate_m.data != NULL)
        g = s->shared_gate[t] = rs_sigmoidf (s->shared_gate[t]);
      for (int64_t i = 0; i < E; i++)
        out[t * E + i] += g * s->sh_d[t * E + i];
    }
}

/* Prefill: tokens grouped by expert, each expert one batched product. */
static void
moe_batched (RsSession *s, LayerState *L, int64_t B)
{
  const RsHparams *hp = s->hp;
  const int X = hp->n_expert;
  const int64_t E = hp->n_embd, F = hp->n_ff_exp;

  memset (s->exp_count, 0, (X + 1) * sizeof (int32_t));
  for (int64_t t = 0; t < B; t++)
    for (int j = 0; j < s->routes[t].n_selected; j++)
      s->exp_count[s->routes[t].selected[j]]++;
  s->exp_offset[0] = 0;
  for (int e = 0; e < X; e++)
    s->exp_offset[e + 1] = s->exp_offset[e] + s->exp_count[e];
  memset (s->exp_count, 0, (X + 1) * sizeof (int32_t));
  for (int64_t t = 0; t < B; t++)
    for (int j = 0; j < s->routes[t].n_selected; j++)
      {
        int e = s->routes[t].selected[j];
        int at = s->exp_offset[e] + s->exp_count[e]++;
        s->exp_token[at] = (int32_t) t;
        s->exp_slot[at] = j;
      }

  memset (s->ffn_out, 0, B * E * sizeof (float));
  for (int e = 0; e < X; e++)
    {
      int m = s->exp_count[e];
      if (m == 0)
        continue;
      const int32_t *tok = s->exp_token + s->exp_offset[e];
      const int32_t *slot = s->exp_slot + s->exp_offset[e];
      for (int i = 0; i < m; i++)
        memcpy (s->xe + (int64_t) i * E, s->h + (int64_t) tok[i] * E, E * sizeof (float));
      rs_matmul (s->pool, s->mm, &L->gate_exps[e], s->xe, E, m, s->ge, F);
      rs_matmul (s->pool, s->mm, &L->up_exps[e], s->xe, E, m, s->ue, F);
      for (int i = 0; i < m; i++)
        rs_swiglu_row (s->ge + (int64_t) i * F, s->ue + (int64_t) i * F, (int) F);
      rs_matmul (s->pool, s->mm, &L->down_exps[e], s->ge, F, m, s->de, E);
      for (int i = 0; i < m; i++)
        {
          const float *d = s->de + (int64_t) i * E;
          int64_t t = tok[i];
          float w = s->routes[t].weights[slot[i]];
          s->exp_maxabs[t * RS_MAX_EXPERTS_USED + slot[i]] =
            max_abs (d, E, &s->exp_argmax[t * RS_MAX_EXPERTS_USED + slot[i]]);
          float *y = s->ffn_out + t * E;
          for (int64_t c = 0; c < E; c++)
            y[c] += w * d[c];
        }
    }
  shared_expert (s, L, B, s->ffn_out);
}

/* Decode: all selected experts (and the shared one) in two parallel steps. */
static void
moe_single (RsSession *s, LayerState *L)
{
  const RsHparams *hp = s->hp;
  const int64_t E = hp->n_embd, F = hp->n_ff_exp;
  const RsRouteResult *r = &s->routes[0];
  RsMatvecJob jobs[2 * RS_MAX_EXPERTS_USED + 3];
  int n = 0;
  const int64_t Fs = L->gate_shexp.n_rows;

  for (int j = 0; j < r->n_selected; j++)
    {
      int e = r->selected[j];
      jobs[n++] = (RsMatvecJob) { &L->gate_exps[e], s->h, s->ge + j * F };
      jobs[n++] = (RsMatvecJob) { &L->up_exps[e], s->h, s->ue + j * F };
    }
  if (Fs > 0)
    {
      jobs[n++] = (RsMatvecJob) { &L->gate_shexp, s->h, s->sh_g };
      jobs[n++] = (RsMatvecJob) { &L->up_shexp, s->h, s->sh_u };
      if (L->shexp_gate_m.data != NULL)
        jobs[n++] = (RsMatvecJob) { &L->shexp_gate_m, s->h, s->shared_gate };
    }
  rs_matvec_multi (s->pool, s->mm, jobs, n);

  for (int j = 0; j < r->n_selected; j++)
    rs_swiglu_row (s->ge + j * F, s->ue + j * F, (int) F);
  if (Fs > 0)
    rs_swiglu_row (s->sh_g, s->sh_u, (int) Fs);

  n = 0;
  for (int j = 0; j < r->n_selected; j++)
    jobs[n++] = (RsMatvecJob) { &L->down_exps[r->selected[j]], s->ge + j * F, s->de + j * E };
  if (Fs > 0)
    jobs[n++] = (RsMatvecJob) { &L->down_shexp, s->sh_g, s->sh_d };
  rs_matvec_multi (s->pool, s->mm, jobs, n);

  memset (s->ffn_out, 0, E * sizeof (float));
  for (int j = 0; j < r->n_selected; j++)
    {
      const float *d = s->de + j * E;
      s->exp_maxabs[j] = max_abs (d, E, &s->exp_argmax[j]);
      for (int64_t c = 0; c < E; c++)
        s->ffn_out[c] += r->weights[j] * d[c];
    }
  if (Fs > 0)
    {
      float g = 1.0f;
      if (L->shexp_gate_m.data != NULL)
        g = s->shared_gate[0] = rs_sigmoidf (s->shared_gate[0]);
      for (int64_t c = 0; c < E; c++)
        s->ffn_out[c] += g * s->sh_d[c];
    }
}

/* ---- the step ----------------------------------------------------------- */

static void
embed (RsSession *s, const int32_t *tokens, int64_t B)
{
  const RsGgufTensor *te = rs_model_token_embd (s->model);
  const int64_t E = s->hp->n_embd;
  size_t row = rs_type_row_size (te->type, E);
  for (int64_t t = 0; t < B; t++)
    rs_dequantize_row (te->type, (const uint8_t *) te->data + (size_t) tokens[t] * row,
                       s->x + t * E, E);
  if (s->hp->embedding_scale != 1.0f)
    for (int64_t i = 0; i < B * E; i++)
      s->x[i] *= s->hp->embedding_scale;
}

/* One forward step over B <= n_batch tokens; logits of the rows asked for. */
static gboolean
forward (RsSession *s, const int32_t *tokens, int64_t B, float *logits, gboolean all_logits)
{
  const RsHparams *hp = s->hp;
  const int64_t E = hp->n_embd;
  const int64_t pos0 = s->pos;

  embed (s, tokens, B);
  for (uint32_t il = 0; il < hp->n_layer; il++)
    {
      if (atomic_load_explicit (&s->cancel, memory_order_relaxed))
        return FALSE;
      LayerState *L = &s->layers[il];
      attention_block (s, il, B, pos0);

      rmsnorm_rows (s->x, L->ffn_norm, s->h, B, E, hp->rms_eps);
      if (L->gate_exps == NULL)
        dense_ffn (s, L, B);
      else
        {
          router_stage (s, L, B);
          if (B == 1)
            moe_single (s, L);
          else
            moe_batched (s, L, B);
        }
      for (int64_t i = 0; i < B * E; i++)
        s->x[i] += hp->residual_scale * s->ffn_out[i];

      if (L->gate_exps != NULL && s->observer != NULL)
        {
          for (int64_t t = 0; t < B; t++)
            s->resid_maxabs[t] = max_abs (s->x + t * E, E, NULL);
          RsRouterRecord rec = {
            .layer = (int) il, .pos0 = pos0, .n_tokens = B, .n_expert = hp->n_expert,
            .k = hp->n_expert_used, .logits = s->router_raw, .scores = s->router_scores,
            .routes = s->routes, .routes_base = L->has_control ? s->routes_base : NULL,
            .expert_out_maxabs = s->exp_maxabs, .expert_out_argmax = s->exp_argmax,
            .shared_gate = L->shexp_gate_m.data != NULL ? s->shared_gate : NULL,
            .resid_maxabs = s->resid_maxabs,
          };
          s->observer (s->observer_data, &rec);
        }
    }

  if (logits != NULL)
    {
      int64_t first = all_logits ? 0 : B - 1, rows = B - first;
      rmsnorm_rows (s->x + first * E, s->output_norm, s->last, rows, E, hp->rms_eps);
      rs_matmul (s->pool, s->mm, &s->output, s->last, E, rows, logits, hp->n_vocab);
      if (hp->logit_scale != 1.0f)
        for (int64_t i = 0; i < rows * hp->n_vocab; i++)
          logits[i] /= hp->logit_scale;
    }
  s->pos += (int) B;
  return TRUE;
}

gboolean
rs_session_eval (RsSession *s, const int32_t *tokens, int n, float *logits,
                 gboolean all_logits, GError **error)
{
  if (n <= 0)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "no tokens to evaluate");
      return FALSE;
    }
  if ((int64_t) s->pos + n > s->n_ctx)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_RESOURCE,
                   "%d tokens at position %d do not fit in the context of %d tokens "
                   "(it needs at least %d; use -c)", n, s->pos, s->n_ctx, s->pos + n);
      return FALSE;
    }
  for (int i = 0; i < n; i++)
    if (tokens[i] < 0 || (uint32_t) tokens[i] >= s->hp->n_vocab)
      {
        g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "token id %d at index %d is outside "
                     "the vocabulary (0 to %u)", tokens[i], i, s->hp->n_vocab - 1);
        return FALSE;
      }

  atomic_store (&s->cancel, 0);
  const int start = s->pos;
  for (int done = 0; done < n;)
    {
      int chunk = MIN (n - done, s->n_batch);
      gboolean last = done + chunk == n;
      float *out = NULL;
      if (logits != NULL && all_logits)
        out = logits + (size_t) done * s->hp->n_vocab;
      else if (logits != NULL && last)
        out = logits;
      if (!forward (s, tokens + done, chunk, out, all_logits))
        {
          s->pos = start;
          g_set_error (error, RS_ERROR, RS_ERROR_CANCELLED, "cancelled");
          return FALSE;
        }
      done += chunk;
    }
  return TRUE;
}
