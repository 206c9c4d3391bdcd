/* rs-test-reference.c: a naive forward pass, written for clarity, that
 * the optimised engine is checked against.
 *
 * Everything is recomputed in double precision from dequantised weights,
 * one token at a time; each architecture's routing rule is its own small
 * function here, written from the reference implementations and not
 * shared with the engine's rs_route_token.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "rs-test-reference.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rs-quant.h"

/* W (rows x cols, ggml layout) as doubles. */
static double *
dequant_matrix (const RsGgufTensor *t, int64_t offset_rows, int64_t rows, int64_t cols)
{
  double *out = g_new (double, rows * cols);
  g_autofree float *row = g_new (float, cols);
  size_t stride = rs_type_row_size (t->type, cols);
  for (int64_t r = 0; r < rows; r++)
    {
      rs_dequantize_row (t->type, (const uint8_t *) t->data + (offset_rows + r) * stride, row, cols);
      for (int64_t c = 0; c < cols; c++)
        out[r * cols + c] = row[c];
    }
  return out;
}

static double *
vec (const RsGgufTensor *t)
{
  return t ? dequant_matrix (t, 0, 1, t->n_elements) : NULL;
}

/* y = W x, W [rows, cols] */
static void
matvec (const RsGgufTensor *t, int64_t row0, int64_t rows, int64_t cols, const double *x, double *y)
{
  g_autofree double *w = dequant_matrix (t, row0, rows, cols);
  for (int64_t r = 0; r < rows; r++)
    {
      double acc = 0.0;
      for (int64_t c = 0; c < cols; c++)
        acc += w[r * cols + c] * x[c];
      y[r] = acc;
    }
}

static void
rmsnorm (double *x, const double *w, int64_t n, double eps)
{
  double ss = 0.0;
  for (int64_t i = 0; i < n; i++)
    ss += x[i] * x[i];
  double s = 1.0 / sqrt (ss / n + eps);
  for (int64_t i = 0; i < n; i++)
    x[i] = x[i] * s * (w ? w[i] : 1.0);
}

static void
rope (double *v, int n_rot, gboolean neox, int pos, double base)
{
  for (int i = 0; i < n_rot / 2; i++)
    {
      double theta = pos * pow (base, -2.0 * i / n_rot);
      int a = neox ? i : 2 * i, b = neox ? i + n_rot / 2 : 2 * i + 1;
      double x0 = v[a], x1 = v[b];
      v[a] = x0 * cos (theta) - x1 * sin (theta);
      v[b] = x0 * sin (theta) + x1 * cos (theta);
    }
}

static double
silu (double x)
{
  return x / (1.0 + exp (-x));
}

/* ---- routing rules, one per family ---- */

typedef struct {
  int    n;
  int    ids[64];
  double w[64];
} Route;

static void
softmax (double *p, int n)
{
  double m = -INFINITY, s = 0.0;
  for (int i = 0; i < n; i++)
    m = fmax (m, p[i]);
  for (int i = 0; i < n; i++)
    s += (p[i] = exp (p[i] - m));
  for (int i = 0; i < n; i++)
    p[i] /= s;
}

/* Indices of the k largest values, largest first (stable for ties). */
static void
top_k (const double *v, int n, int k, int *out)
{
  gboolean used[512] = { 0 };
  for (int j = 0; j < k; j++)
    {
      int best = -1;
      for (int i = 0; i < n; i++)
        if (!used[i] && (best < 0 || v[i] > v[best]))
          best = i;
      used[best] = TRUE;
      out[j] = best;
    }
}

/* OLMoE, Qwen2-MoE: p = softmax(z); top-k; w = p_sel. */
static Route
route_softmax_topk (const double *z, int n, int k)
{
  Route r = { .n = k };
  g_autofree double *p = g_memdup2 (z, n * sizeof (double));
  softmax (p, n);
  top_k (p, n, k, r.ids);
  for (int j = 0; j < k; j++)
    r.w[j] = p[r.ids[j]];
  return r;
}

/* Qwen3-MoE: as above, then w /= sum(w). Mixtral: top-k of the logits then
 * softmax over them, which is the same thing. */
static Route
route_softmax_topk_norm (const double *z, int n, int k)
{
  Route r = route_softmax_topk (z, n, k);
  double s = 0.0;
  for (int j = 0; j < k; j++)
    s += r.w[j];
  for (int j = 0; j < k; j++)
    r.w[j] /= s;
  return r;
}

static Route
route (const char *arch, const double *z, int n, int k)
{
  if (g_str_equal (arch, "qwen3moe") || g_str_equal (arch, "llama") || g_str_equal (arch, "granitemoe"))
    return route_softmax_topk_norm (z, n, k);
  return route_softmax_topk (z, n, k);
}

/* ---- the forward pass ---- */

double *
rs_reference_forward (const RsModel *model, const int32_t *tokens, int n_tokens, int *out_routes)
{
  const RsHparams *hp = rs_model_hparams (model);
  const char *arch = hp->arch->name;
  const int64_t E = hp->n_embd, D = hp->head_dim, Hq = hp->n_head, Hkv = hp->n_head_kv;
  const int64_t q_dim = Hq * D, kv_dim = Hkv * D, V = hp->n_vocab;
  const int L = hp->n_layer, X = hp->n_expert, k = hp->n_expert_used;
  const gboolean neox = !g_str_equal (arch, "llama") && !g_str_equal (arch, "granitemoe");
  /* Granite's multipliers (1 and 1/sqrt(D) for the others) */
  const double emb_scale = hp->embedding_scale, res_scale = hp->residual_scale;
  const double att_scale = hp->attention_scale, logit_scale = hp->logit_scale;

  double *logits = g_new0 (double, (int64_t) n_tokens * V);
  double *kc = g_new0 (double, (int64_t) L * n_tokens * kv_dim);
  double *vc = g_new0 (double, (int64_t) L * n_tokens * kv_dim);
  g_autofree double *x = g_new (double, E), *h = g_new (double, E), *q = g_new (double, q_dim);
  g_autofree double *kk = g_new (double, kv_dim), *vv = g_new (double, kv_dim);
  g_autofree double *att = g_new (double, q_dim), *o = g_new (double, E);
  g_autofree double *z = g_new (double, X), *acc = g_new (double, E);

  for (int t = 0; t < n_tokens; t++)
    {
      g_autofree double *emb = dequant_matrix (rs_model_token_embd (model), tokens[t], 1, E);
      for (int64_t i = 0; i < E; i++)
        x[i] = emb[i] * emb_scale;
      for (int il = 0; il < L; il++)
        {
          const RsLayerTensors *T = rs_model_layer (model, il);
          g_autofree double *an = vec (T->attn_norm), *fn = vec (T->ffn_norm);
          g_autofree double *qn = vec (T->q_norm), *kn = vec (T->k_norm);
          g_autofree double *bq = vec (T->bq), *bk = vec (T->bk), *bv = vec (T->bv);

          memcpy (h, x, E * sizeof (double));
          rmsnorm (h, an, E, hp->rms_eps);
          matvec (T->wq, 0, q_dim, E, h, q);
          matvec (T->wk, 0, kv_dim, E, h, kk);
          matvec (T->wv, 0, kv_dim, E, h, vv);
          for (int64_t i = 0; bq && i < q_dim; i++) q[i] += bq[i];
          for (int64_t i = 0; bk && i < kv_dim; i++) kk[i] += bk[i];
          for (int64_t i = 0; bv && i < kv_dim; i++) vv[i] += bv[i];
          if (g_str_equal (arch, "olmoe"))
            {
              rmsnorm (q, qn, q_dim, hp->rms_eps);
              rmsnorm (kk, kn, kv_dim, hp->rms_eps);
            }
          else if (g_str_equal (arch, "qwen3moe"))
            {
              for (int64_t hh = 0; hh < Hq; hh++) rmsnorm (q + hh * D, qn, D, hp->rms_eps);
              for (int64_t hh = 0; hh < Hkv; hh++) rmsnorm (kk + hh * D, kn, D, hp->rms_eps);
            }
          for (int64_t hh = 0; hh < Hq; hh++) rope (q + hh * D, hp->n_rot, neox, t, hp->rope_freq_base);
          for (int64_t hh = 0; hh < Hkv; hh++) rope (kk + hh * D, hp->n_rot, neox, t, hp->rope_freq_base);
          memcpy (kc + ((int64_t) il * n_tokens + t) * kv_dim, kk, kv_dim * sizeof (double));
          memcpy (vc + ((int64_t) il * n_tokens + t) * kv_dim, vv, kv_dim * sizeof (double));

          for (int64_t hh = 0; hh < Hq; hh++)
            {
              int64_t hk = hh / (Hq / Hkv);
              g_autofree double *s = g_new (double, t + 1);
              for (int j = 0; j <= t; j++)
                {
                  const double *kj = kc + ((int64_t) il * n_tokens + j) * kv_dim + hk * D;
                  double d = 0.0;
                  for (int64_t c = 0; c < D; c++)
                    d += q[hh * D + c] * kj[c];
                  s[j] = d * att_scale;
                }
              softmax (s, t + 1);
              for (int64_t c = 0; c < D; c++)
                {
                  double a = 0.0;
                  for (int j = 0; j <= t; j++)
                    a += s[j] * vc[((int64_t) il * n_tokens + j) * kv_dim + hk * D + c];
                  att[hh * D + c] = a;
                }
            }
          matvec (T->wo, 0, E, q_dim, att, o);
          for (int64_t i = 0; i < E; i++)
            x[i] += res_scale * o[i];

          memcpy (h, x, E * sizeof (double));
          rmsnorm (h, fn, E, hp->rms_eps);
          memset (acc, 0, E * sizeof (double));
          if (!T->is_moe)
            {
              int64_t F = T->ffn_gate->ne[1];
              g_autofree double *g = g_new (double, F), *u = g_new (double, F);
              matvec (T->ffn_gate, 0, F, E, h, g);
              matvec (T->ffn_up, 0, F, E, h, u);
              for (int64_t i = 0; i < F; i++)
                g[i] = silu (g[i]) * u[i];
              matvec (T->ffn_down, 0, E, F, g, acc);
            }
          else
            {
              matvec (T->router, 0, X, E, h, z);
              Route r = route (arch, z, X, k);
              if (out_routes != NULL)
                for (int j = 0; j < k; j++)
                  out_routes[((int64_t) t * L + il) * k + j] = r.ids[j];
              int64_t F = hp->n_ff_exp;
              g_autofree double *g = g_new (double, F), *u = g_new (double, F), *d = g_new (double, E);
              for (int j = 0; j < r.n; j++)
                {
                  int e = r.ids[j];
                  matvec (T->gate_exps, (int64_t) e * F, F, E, h, g);
                  matvec (T->up_exps, (int64_t) e * F, F, E, h, u);
                  for (int64_t i = 0; i < F; i++)
                    g[i] = silu (g[i]) * u[i];
                  matvec (T->down_exps, (int64_t) e * E, E, F, g, d);
                  for (int64_t i = 0; i < E; i++)
                    acc[i] += r.w[j] * d[i];
                }
              if (T->gate_shexp != NULL)
                {
                  int64_t Fs = T->gate_shexp->ne[1];
                  g_autofree double *gs = g_new (double, Fs), *us = g_new (double, Fs);
                  matvec (T->gate_shexp, 0, Fs, E, h, gs);
                  matvec (T->up_shexp, 0, Fs, E, h, us);
                  for (int64_t i = 0; i < Fs; i++)
                    gs[i] = silu (gs[i]) * us[i];
                  matvec (T->down_shexp, 0, E, Fs, gs, d);
                  double gate = 1.0;
                  if (T->shexp_gate != NULL)
                    {
                      g_autofree double *wg = vec (T->shexp_gate);
                      double dot = 0.0;
                      for (int64_t i = 0; i < E; i++)
                        dot += wg[i] * h[i];
                      gate = 1.0 / (1.0 + exp (-dot));
                    }
                  for (int64_t i = 0; i < E; i++)
                    acc[i] += gate * d[i];
                }
            }
          for (int64_t i = 0; i < E; i++)
            x[i] += res_scale * acc[i];
        }
      g_autofree double *on = vec (rs_model_output_norm (model));
      memcpy (h, x, E * sizeof (double));
      rmsnorm (h, on, E, hp->rms_eps);
      matvec (rs_model_output (model), 0, V, E, h, logits + (int64_t) t * V);
      for (int64_t i = 0; i < V; i++)
        logits[(int64_t) t * V + i] /= logit_scale;
    }
  g_free (kc);
  g_free (vc);
  return logits;
}
