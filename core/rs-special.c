/* SPDX-License-Identifier: GPL-3.0-or-later */
/* rs-special.c: expert specialisation: favourite tokens by lift, the
 * context-independence statistic of OpenMoE (App. E) and co-activation. */
#include <math.h>
#include <string.h>

#include "rs-analysis-private.h"

void
rs_special_params_init (RsSpecialParams *p)
{
  memset (p, 0, sizeof *p);
  p->routes = RS_ROUTES_RAN;
  p->top_n = 10;
  p->min_count = 5;
  p->min_token_occurrences = 128;
  p->min_position_occurrences = 128;
}

/* Whether favourite @a ranks before @b: higher lift, then more routed,
 * then the lower token id (so that the order is total). */
static gboolean
fav_before (const RsFavouriteToken *a, const RsFavouriteToken *b)
{
  if (b->token_id < 0)
    return a->token_id >= 0;
  if (a->lift != b->lift)
    return a->lift > b->lift;
  if (a->count != b->count)
    return a->count > b->count;
  return a->token_id < b->token_id;
}

/* Population std over @E experts of the distribution counts / sum
 * (@counts read with @stride). NaN when sum is 0. */
static double
dist_std (const int32_t *counts, int64_t stride, int E)
{
  double sum = 0.0;
  for (int e = 0; e < E; e++)
    sum += counts[e * stride];
  if (sum <= 0.0)
    return NAN;
  double mean = 1.0 / E, var = 0.0;
  for (int e = 0; e < E; e++)
    {
      double d = counts[e * stride] / sum - mean;
      var += d * d;
    }
  return sqrt (var / E);
}

RsSpecialResult *
rs_special_compute (const RsTrace *tr, const RsSpecialParams *params, GError **error)
{
  RsSpecialParams def;
  if (params == NULL)
    {
      rs_special_params_init (&def);
      params = &def;
    }
  const int L = tr->n_layer, E = tr->n_expert, K = tr->k_slots;
  const int64_t T = tr->n_tokens;
  const int top_n = MAX (params->top_n, 0);
  const int32_t *ids = rs_an_route_ids (tr, params->routes, error);
  if (ids == NULL && T > 0)
    return NULL;
  g_autoptr (GArray) seqs = rs_an_sequences (tr, params->seq_starts, params->n_seq, error);
  if (seqs == NULL)
    return NULL;
  const int32_t *tok = (const int32_t *) (const void *) tr->token_ids->data;

  /* Token ids -> dense indices 0..V-1 in order of first appearance. */
  int32_t max_id = -1;
  for (int64_t t = 0; t < T; t++)
    max_id = MAX (max_id, tok[t]);
  g_autofree int32_t *dense = g_new (int32_t, (size_t) max_id + 1);
  for (int32_t i = 0; i <= max_id; i++)
    dense[i] = -1;
  g_autoptr (GArray) dense_id = g_array_new (FALSE, FALSE, sizeof (int32_t));   /* V */
  g_autoptr (GArray) dense_first = g_array_new (FALSE, FALSE, sizeof (int64_t)); /* V */
  g_autoptr (GArray) tok_count = g_array_new (FALSE, TRUE, sizeof (int64_t));   /* V */
  g_autofree int32_t *tv = g_new (int32_t, MAX (T, 1)); /* [T] dense index or -1 */
  int64_t n_valid = 0;
  for (int64_t t = 0; t < T; t++)
    {
      tv[t] = -1;
      if (tok[t] < 0)
        continue;
      if (dense[tok[t]] < 0)
        {
          dense[tok[t]] = dense_id->len;
          g_array_append_val (dense_id, tok[t]);
          g_array_append_val (dense_first, t);
          g_array_set_size (tok_count, dense_id->len);
        }
      tv[t] = dense[tok[t]];
      g_array_index (tok_count, int64_t, tv[t])++;
      n_valid++;
    }
  const int64_t V = dense_id->len;

  /* Positions within sequences. */
  int64_t max_len = 0;
  for (guint i = 0; i + 1 < seqs->len; i++)
    max_len = MAX (max_len, g_array_index (seqs, int64_t, i + 1) - g_array_index (seqs, int64_t, i));
  g_autofree int32_t *tpos = g_new (int32_t, MAX (T, 1));
  g_autofree int64_t *pos_occ = g_new0 (int64_t, MAX (max_len, 1));
  for (guint i = 0; i + 1 < seqs->len; i++)
    for (int64_t t = g_array_index (seqs, int64_t, i); t < g_array_index (seqs, int64_t, i + 1); t++)
      {
        tpos[t] = (int32_t) (t - g_array_index (seqs, int64_t, i));
        pos_occ[tpos[t]]++;
      }

  RsSpecialResult *r = g_new0 (RsSpecialResult, 1);
  r->n_layer = L;
  r->n_expert = E;
  r->top_n = top_n;
  r->n_tokens = T;
  r->has_experts = rs_an_has_experts (tr);
  r->favourites = g_new0 (RsFavouriteToken, (size_t) L * E * MAX (top_n, 1));
  for (size_t i = 0; i < (size_t) L * E * top_n; i++)
    r->favourites[i].token_id = -1;
  g_autoptr (GArray) qt = g_array_new (FALSE, FALSE, sizeof (int32_t)); /* dense indices */
  for (int64_t v = 0; v < V; v++)
    if (g_array_index (tok_count, int64_t, v) > params->min_token_occurrences)
      {
        int32_t vv = (int32_t) v;
        g_array_append_val (qt, vv);
      }
  r->n_token_ids = qt->len;
  r->token_ids = g_new (int32_t, MAX (qt->len, 1));
  for (guint i = 0; i < qt->len; i++)
    r->token_ids[i] = g_array_index (dense_id, int32_t, g_array_index (qt, int32_t, i));
  g_autoptr (GArray) qp = g_array_new (FALSE, FALSE, sizeof (int32_t));
  for (int64_t p = 0; p < max_len; p++)
    if (pos_occ[p] > params->min_position_occurrences)
      {
        int32_t pp = (int32_t) p;
        g_array_append_val (qp, pp);
      }
  r->n_positions = qp->len;
  r->positions = g_memdup2 (qp->data, sizeof (int32_t) * MAX (qp->len, 1));
  r->token_std = g_new (double, (size_t) L * MAX (qt->len, 1));
  r->position_std = g_new (double, (size_t) L * MAX (qp->len, 1));
  r->mean_token_std = g_new (double, L);
  r->mean_position_std = g_new (double, L);
  r->coact = g_new0 (int64_t, (size_t) L * E * E);

  /* Per layer: counts [E, V] of (expert, token) and [max_len, E] of
   * (position, expert), reused. */
  g_autofree int32_t *counts = g_new (int32_t, (size_t) E * MAX (V, 1));
  g_autofree int32_t *pcounts = g_new (int32_t, (size_t) MAX (max_len, 1) * E);
  g_autofree int64_t *n_ev = g_new (int64_t, E); /* selections of tokens with an id */
  for (int l = 0; l < L; l++)
    {
      double *ts = r->token_std + (size_t) l * qt->len;
      double *ps = r->position_std + (size_t) l * qp->len;
      if (!r->has_experts[l])
        {
          for (guint i = 0; i < qt->len; i++)
            ts[i] = NAN;
          for (guint i = 0; i < qp->len; i++)
            ps[i] = NAN;
          r->mean_token_std[l] = r->mean_position_std[l] = NAN;
          continue;
        }
      memset (counts, 0, sizeof (int32_t) * E * V);
      memset (pcounts, 0, sizeof (int32_t) * max_len * E);
      memset (n_ev, 0, sizeof (int64_t) * E);
      int64_t *co = r->coact + (size_t) l * E * E;
      for (int64_t t = 0; t < T; t++)
        {
          const int32_t *row = ids + (t * L + l) * K;
          for (int j = 0; j < K; j++)
            {
              int32_t e = row[j];
              if (e < 0 || e >= E)
                continue;
              gboolean dup = FALSE;
              for (int i = 0; i < j; i++)
                dup |= row[i] == e;
              if (dup)
                continue;
              pcounts[(size_t) tpos[t] * E + e]++;
              if (tv[t] >= 0)
                {
                  counts[(size_t) e * V + tv[t]]++;
                  n_ev[e]++;
                }
              for (int i = 0; i <= j; i++)
                if (row[i] >= 0 && row[i] < E)
                  {
                    co[(size_t) e * E + row[i]]++;
                    if (row[i] != e)
                      co[(size_t) row[i] * E + e]++;
                  }
            }
        }

      /* Favourites: the top_n tokens by lift among those routed to the
       * expert at least min_count times. */
      for (int e = 0; e < E && top_n > 0; e++)
        {
          RsFavouriteToken *fav = r->favourites + ((size_t) l * E + e) * top_n;
          const int32_t *ce = counts + (size_t) e * V;
          for (int64_t v = 0; v < V; v++)
            {
              if (ce[v] < MAX (params->min_count, 1))
                continue;
              int64_t tc = g_array_index (tok_count, int64_t, v);
              RsFavouriteToken cand = {
                .token_id = g_array_index (dense_id, int32_t, v),
                .count = ce[v],
                .token_count = tc,
                .lift = ((double) ce[v] / n_ev[e]) / ((double) tc / n_valid),
              };
              if (!fav_before (&cand, &fav[top_n - 1]))
                continue;
              int at = top_n - 1;
              while (at > 0 && fav_before (&cand, &fav[at - 1]))
                {
                  fav[at] = fav[at - 1];
                  at--;
                }
              fav[at] = cand;
            }
          for (int i = 0; i < top_n && fav[i].token_id >= 0; i++)
            {
              int64_t first = g_array_index (dense_first, int64_t, dense[fav[i].token_id]);
              const char *text = (guint) first < tr->token_text->len
                                   ? g_ptr_array_index (tr->token_text, first) : NULL;
              fav[i].text = g_strdup (text ? text : "");
            }
        }

      /* Context independence. */
      double sum = 0.0;
      int n = 0;
      for (guint i = 0; i < qt->len; i++)
        {
          ts[i] = dist_std (counts + g_array_index (qt, int32_t, i), V, E);
          if (!isnan (ts[i]))
            {
              sum += ts[i];
              n++;
            }
        }
      r->mean_token_std[l] = n > 0 ? sum / n : NAN;
      sum = 0.0;
      n = 0;
      for (guint i = 0; i < qp->len; i++)
        {
          ps[i] = dist_std (pcounts + (size_t) g_array_index (qp, int32_t, i) * E, 1, E);
          if (!isnan (ps[i]))
            {
              sum += ps[i];
              n++;
            }
        }
      r->mean_position_std[l] = n > 0 ? sum / n : NAN;
    }
  return r;
}

void
rs_special_result_free (RsSpecialResult *r)
{
  if (r == NULL)
    return;
  for (size_t i = 0; i < (size_t) r->n_layer * r->n_expert * r->top_n; i++)
    g_free (r->favourites[i].text);
  g_free (r->favourites);
  g_free (r->has_experts);
  g_free (r->token_ids);
  g_free (r->token_std);
  g_free (r->positions);
  g_free (r->position_std);
  g_free (r->mean_token_std);
  g_free (r->mean_position_std);
  g_free (r->coact);
  g_free (r);
}
