/* SPDX-License-Identifier: GPL-3.0-or-later */
/* rs-super.c: super experts (Su et al.; methods.md section 2). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rs-analysis-private.h"

void
rs_super_params_init (RsSuperParams *p)
{
  memset (p, 0, sizeof *p);
  p->layer_fraction = 0.75;
  p->percentile = 99.5;
  p->max_divisor = 10.0;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static int
cmp_super_desc (const void *a, const void *b)
{
  const RsSuperExpert *x = a, *y = b;
  if (x->value != y->value)
    return x->value > y->value ? -1 : 1;
  if (x->layer != y->layer)
    return x->layer - y->layer;
  return x->expert - y->expert;
}

/* numpy.percentile with its default linear interpolation, on sorted @v. */
static double
percentile_linear (const double *v, int64_t n, double q)
{
  if (n == 0)
    return NAN;
  double pos = q / 100.0 * (double) (n - 1);
  int64_t lo = (int64_t) floor (pos);
  int64_t hi = MIN (lo + 1, n - 1);
  double frac = pos - (double) lo;
  return v[lo] + (v[hi] - v[lo]) * frac;
}

RsSuperResult *
rs_super_compute (const RsTrace *tr, const RsSuperParams *params, GError **error)
{
  RsSuperParams def;
  if (params == NULL)
    {
      rs_super_params_init (&def);
      params = &def;
    }
  const int L = tr->n_layer, E = tr->n_expert, K = tr->k_slots;
  const int64_t T = tr->n_tokens;
  const size_t n_tlk = (size_t) T * L * K;
  if (T > 0 && (tr->expert_out_maxabs->len < n_tlk || tr->topk_ids->len < n_tlk))
    {
      g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "super experts need the experts' output "
                   "maxima (expert_out_maxabs), which this trace does not record");
      return NULL;
    }
  const int32_t *ids = (const int32_t *) (const void *) tr->topk_ids->data;
  const float *mx = (const float *) (const void *) tr->expert_out_maxabs->data;
  const int32_t *ch = tr->expert_out_channel->len >= n_tlk
                        ? (const int32_t *) (const void *) tr->expert_out_channel->data : NULL;

  RsSuperResult *r = g_new0 (RsSuperResult, 1);
  r->n_layer = L;
  r->n_expert = E;
  r->output_max = g_new (float, (size_t) L * E);
  r->channel = g_new (int32_t, (size_t) L * E);
  r->token = g_new (int64_t, (size_t) L * E);
  for (size_t i = 0; i < (size_t) L * E; i++)
    {
      r->output_max[i] = NAN;
      r->channel[i] = -1;
      r->token[i] = -1;
    }
  r->super_experts = g_array_new (FALSE, FALSE, sizeof (RsSuperExpert));

  /* The statistic is the maximum over every token routed to the expert
   * (the reference hook sees only the first routed token's row). */
  for (int64_t t = 0; t < T; t++)
    for (int l = 0; l < L; l++)
      for (int j = 0; j < K; j++)
        {
          size_t i = ((size_t) t * L + l) * K + j;
          int32_t e = ids[i];
          if (e < 0 || e >= E || !isfinite (mx[i]))
            continue;
          float *cur = &r->output_max[l * E + e];
          if (isnan (*cur) || mx[i] > *cur)
            {
              *cur = mx[i];
              r->channel[l * E + e] = ch ? ch[i] : -1;
              r->token[l * E + e] = t;
            }
        }

  r->n_pool_layers = (int) rs_an_round_half_even (params->layer_fraction * L);
  r->n_pool_layers = CLAMP (r->n_pool_layers, 0, L);
  g_autofree double *pool = g_new (double, (size_t) L * E);
  int64_t n = 0;
  for (int l = 0; l < r->n_pool_layers; l++)
    for (int e = 0; e < E; e++)
      if (!isnan (r->output_max[l * E + e]))
        pool[n++] = r->output_max[l * E + e];
  r->pool_size = n;
  qsort (pool, n, sizeof (double), cmp_double);
  r->percentile_value = percentile_linear (pool, n, params->percentile);
  r->pool_max = n > 0 ? pool[n - 1] : NAN;
  r->max_threshold = n > 0 ? floor (r->pool_max / params->max_divisor) : NAN;
  r->threshold = n > 0 ? MAX (r->percentile_value, r->max_threshold) : NAN;

  for (int l = 0; l < r->n_pool_layers && n > 0; l++)
    for (int e = 0; e < E; e++)
      {
        double v = r->output_max[l * E + e];
        if (!isnan (v) && v > r->percentile_value && v > r->max_threshold)
          {
            RsSuperExpert se = { l, e, (float) v, r->channel[l * E + e], r->token[l * E + e] };
            g_array_append_val (r->super_experts, se);
          }
      }
  g_array_sort (r->super_experts, cmp_super_desc);
  return r;
}

void
rs_super_result_free (RsSuperResult *r)
{
  if (r == NULL)
    return;
  g_free (r->output_max);
  g_free (r->channel);
  g_free (r->token);
  g_array_unref (r->super_experts);
  g_free (r);
}

GArray *
rs_super_interventions (const RsSuperResult *r)
{
  GArray *ivs = g_array_new (FALSE, TRUE, sizeof (RsIntervention));
  for (int l = 0; l < r->n_layer; l++)
    {
      RsIntervention iv = { .kind = RS_INTERVENE_DISABLE, .layer_first = l, .layer_last = l };
      for (guint i = 0; i < r->super_experts->len; i++)
        {
          const RsSuperExpert *se = &g_array_index (r->super_experts, RsSuperExpert, i);
          if (se->layer == l && iv.n_experts < RS_MAX_EXPERTS_USED)
            iv.experts[iv.n_experts++] = se->expert;
        }
      if (iv.n_experts > 0)
        g_array_append_val (ivs, iv);
    }
  return ivs;
}
