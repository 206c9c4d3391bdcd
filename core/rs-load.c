/* SPDX-License-Identifier: GPL-3.0-or-later */
/* rs-load.c: expert load and router entropy, and the helpers the other
 * analyses share. */
#include <math.h>
#include <string.h>

#include "rs-analysis-private.h"

gboolean
rs_trace_layer_has_experts (const RsTrace *tr, int l)
{
  g_return_val_if_fail (tr != NULL && l >= 0 && l < tr->n_layer, FALSE);
  const int L = tr->n_layer, K = tr->k_slots, E = tr->n_expert;
  const int32_t *ids = (const int32_t *) (const void *) tr->topk_ids->data;
  const float *z = rs_an_logits (tr);
  for (int64_t t = 0; t < tr->n_tokens; t++)
    {
      if ((guint) ((t * L + l + 1) * K) <= tr->topk_ids->len && ids[(t * L + l) * K] >= 0)
        return TRUE;
      if (z != NULL && isfinite (z[(t * L + l) * E]))
        return TRUE;
    }
  return FALSE;
}

GArray *
rs_an_sequences (const RsTrace *tr, const int64_t *starts, int n, GError **error)
{
  GArray *a = g_array_new (FALSE, FALSE, sizeof (int64_t));
  if (starts == NULL || n <= 0)
    {
      int64_t zero = 0;
      g_array_append_val (a, zero);
    }
  else
    for (int i = 0; i < n; i++)
      {
        if (starts[i] < 0 || starts[i] >= MAX (tr->n_tokens, 1) || (i > 0 && starts[i] <= starts[i - 1]))
          {
            g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "sequence start %d (%" G_GINT64_FORMAT
                         ") is out of order or outside the trace of %" G_GINT64_FORMAT " tokens",
                         i, starts[i], tr->n_tokens);
            g_array_unref (a);
            return NULL;
          }
        g_array_append_val (a, starts[i]);
      }
  int64_t end = tr->n_tokens;
  g_array_append_val (a, end);
  return a;
}

/* ---- expert load ---------------------------------------------------------- */

void
rs_load_params_init (RsLoadParams *p)
{
  memset (p, 0, sizeof *p);
  p->routes = RS_ROUTES_RAN;
}

RsLoadResult *
rs_load_compute (const RsTrace *tr, const RsLoadParams *params, GError **error)
{
  RsLoadParams def;
  if (params == NULL)
    {
      rs_load_params_init (&def);
      params = &def;
    }
  const int L = tr->n_layer, E = tr->n_expert, K = tr->k_slots;
  int64_t t0 = CLAMP (params->t_first, 0, tr->n_tokens);
  int64_t t1 = params->t_end > 0 ? MIN (params->t_end, tr->n_tokens) : tr->n_tokens;
  if (t1 < t0)
    t1 = t0;
  const int32_t *ids = rs_an_route_ids (tr, params->routes, error);
  if (ids == NULL && tr->n_tokens > 0)
    return NULL;
  const float *w = rs_an_route_weights (tr, params->routes);
  const float *z = rs_an_logits (tr);

  RsLoadResult *r = g_new0 (RsLoadResult, 1);
  r->n_layer = L;
  r->n_expert = E;
  r->n_tokens = t1 - t0;
  r->has_experts = rs_an_has_experts (tr);
  r->counts = g_new0 (int64_t, (size_t) L * E);
  r->mean_prob = g_new0 (double, (size_t) L * E);
  r->mean_weight = g_new0 (double, (size_t) L * E);
  r->max_over_mean = g_new (double, L);
  r->cv = g_new (double, L);
  r->norm_entropy = g_new (double, L);
  r->n_never = g_new0 (int, L);

  g_autofree double *p = g_new (double, E);
  g_autofree int64_t *n_prob = g_new0 (int64_t, L);
  for (int64_t t = t0; t < t1; t++)
    for (int l = 0; l < L; l++)
      {
        const int32_t *row = ids + (t * L + l) * K;
        for (int j = 0; j < K; j++)
          if (row[j] >= 0 && row[j] < E)
            {
              r->counts[l * E + row[j]]++;
              if (w != NULL)
                r->mean_weight[l * E + row[j]] += w[(t * L + l) * K + j];
            }
        if (z != NULL && rs_an_softmax (z + (t * L + l) * E, E, p))
          {
            for (int e = 0; e < E; e++)
              r->mean_prob[l * E + e] += p[e];
            n_prob[l]++;
          }
      }

  for (int l = 0; l < L; l++)
    {
      const int64_t *c = r->counts + (size_t) l * E;
      double sum = 0.0, max = 0.0;
      for (int e = 0; e < E; e++)
        {
          sum += c[e];
          max = MAX (max, (double) c[e]);
          r->n_never[l] += c[e] == 0;
          double *mw = &r->mean_weight[l * E + e];
          *mw = (w != NULL && c[e] > 0) ? *mw / c[e] : NAN;
          double *mp = &r->mean_prob[l * E + e];
          *mp = n_prob[l] > 0 ? *mp / n_prob[l] : NAN;
        }
      if (!r->has_experts[l] || sum == 0.0)
        {
          r->max_over_mean[l] = r->cv[l] = r->norm_entropy[l] = NAN;
          if (!r->has_experts[l])
            r->n_never[l] = 0;
          continue;
        }
      double mean = sum / E, var = 0.0, h = 0.0;
      for (int e = 0; e < E; e++)
        {
          var += (c[e] - mean) * (c[e] - mean);
          if (c[e] > 0)
            h -= (c[e] / sum) * log (c[e] / sum);
        }
      r->max_over_mean[l] = max / mean;
      r->cv[l] = sqrt (var / E) / mean;
      r->norm_entropy[l] = E > 1 ? h / log (E) : 1.0;
    }
  return r;
}

void
rs_load_result_free (RsLoadResult *r)
{
  if (r == NULL)
    return;
  g_free (r->has_experts);
  g_free (r->counts);
  g_free (r->mean_prob);
  g_free (r->mean_weight);
  g_free (r->max_over_mean);
  g_free (r->cv);
  g_free (r->norm_entropy);
  g_free (r->n_never);
  g_free (r);
}

/* ---- router entropy and confidence --------------------------------------- */

void
rs_entropy_params_init (RsEntropyParams *p)
{
  memset (p, 0, sizeof *p);
  p->routes = RS_ROUTES_RAN;
}

RsEntropyResult *
rs_entropy_compute (const RsTrace *tr, const RsEntropyParams *params, GError **error)
{
  RsEntropyParams def;
  if (params == NULL)
    {
      rs_entropy_params_init (&def);
      params = &def;
    }
  const int L = tr->n_layer, E = tr->n_expert, K = tr->k_slots;
  const int64_t T = tr->n_tokens;
  const float *z = rs_an_logits (tr);
  if (z == NULL && T > 0)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_INVALID,
                   "router entropy needs the router logits, which this trace does not record");
      return NULL;
    }
  g_autoptr (GError) ids_error = NULL;
  const int32_t *ids = rs_an_route_ids (tr, params->routes, &ids_error);

  RsEntropyResult *r = g_new0 (RsEntropyResult, 1);
  r->n_layer = L;
  r->n_expert = E;
  r->n_tokens = T;
  r->has_experts = rs_an_has_experts (tr);
  r->entropy = g_new (float, (size_t) T * L);
  r->top1 = g_new (float, (size_t) T * L);
  r->margin = g_new (float, (size_t) T * L);
  r->selected_mass = g_new (float, (size_t) T * L);
  r->mean_entropy = g_new0 (double, L);
  r->mean_norm_entropy = g_new0 (double, L);
  r->mean_top1 = g_new0 (double, L);
  r->mean_selected_mass = g_new0 (double, L);
  g_autofree int64_t *n = g_new0 (int64_t, L);
  g_autofree int64_t *n_sel = g_new0 (int64_t, L);
  g_autofree double *p = g_new (double, E);
  const double ln_e = log (E);

  for (int64_t t = 0; t < T; t++)
    for (int l = 0; l < L; l++)
      {
        size_t i = (size_t) t * L + l;
        /* One pass over u_e = exp(z_e - z_max): S = sum u, p = u / S,
         * H = ln S - sum u (z - z_max) / S (no log per expert), the best
         * p is 1 / S. */
        const float *zi = z + i * E;
        float zmax = zi[0];
        gboolean finite = TRUE;
        for (int e = 0; e < E; e++)
          {
            finite &= isfinite (zi[e]);
            zmax = MAX (zmax, zi[e]);
          }
        if (!finite)
          {
            r->entropy[i] = r->top1[i] = r->margin[i] = r->selected_mass[i] = NAN;
            continue;
          }
        double sum_u = 0.0, uz = 0.0, u2 = 0.0;
        int n_best = 0;
        for (int e = 0; e < E; e++)
          {
            float d = zi[e] - zmax;
            double u = expf (d);
            p[e] = u;
            sum_u += u;
            uz += u * d;
            if (d == 0.0f)
              n_best++;
            else if (u > u2)
              u2 = u;
          }
        /* a tie for the best: margin 0 */
        if (n_best > 1)
          u2 = 1.0;
        double inv = 1.0 / sum_u;
        double h = log (sum_u) - uz * inv;
        double b1 = inv, b2 = u2 * inv;
        r->entropy[i] = h;
        r->top1[i] = b1;
        r->margin[i] = b1 - b2;
        r->mean_entropy[l] += h;
        r->mean_norm_entropy[l] += E > 1 ? h / ln_e : 0.0;
        r->mean_top1[l] += b1;
        n[l]++;
        if (ids != NULL)
          {
            double mass = 0.0;
            for (int j = 0; j < K; j++)
              {
                int32_t e = ids[i * K + j];
                if (e >= 0 && e < E)
                  mass += p[e] * inv;
              }
            r->selected_mass[i] = mass;
            r->mean_selected_mass[l] += mass;
            n_sel[l]++;
          }
        else
          r->selected_mass[i] = NAN;
      }
  for (int l = 0; l < L; l++)
    {
      r->mean_entropy[l] = n[l] ? r->mean_entropy[l] / n[l] : NAN;
      r->mean_norm_entropy[l] = n[l] ? r->mean_norm_entropy[l] / n[l] : NAN;
      r->mean_top1[l] = n[l] ? r->mean_top1[l] / n[l] : NAN;
      r->mean_selected_mass[l] = n_sel[l] ? r->mean_selected_mass[l] / n_sel[l] : NAN;
    }
  return r;
}

void
rs_entropy_result_free (RsEntropyResult *r)
{
  if (r == NULL)
    return;
  g_free (r->has_experts);
  g_free (r->entropy);
  g_free (r->top1);
  g_free (r->margin);
  g_free (r->selected_mass);
  g_free (r->mean_entropy);
  g_free (r->mean_norm_entropy);
  g_free (r->mean_top1);
  g_free (r->mean_selected_mass);
  g_free (r);
}
