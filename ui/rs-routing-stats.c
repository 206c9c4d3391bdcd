/* rs-routing-stats.c: view numbers from a routing trace.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "rs-routing-stats.h"

#include <math.h>
#include <string.h>

#define IDS(tr) ((const int32_t *) (tr)->topk_ids->data)
#define WEIGHTS(tr) ((const float *) (tr)->topk_weights->data)

static gboolean
has (const GArray *a)
{
  return a != NULL && a->len > 0;
}

RsLoadAccum *
rs_load_accum_new (int n_layer, int n_expert, const gboolean *layer_is_moe)
{
  RsLoadAccum *acc = g_new0 (RsLoadAccum, 1);
  acc->n_layer = n_layer;
  acc->n_expert = n_expert;
  acc->count = g_new0 (double, (gsize) n_layer * n_expert);
  acc->prob_sum = g_new0 (double, (gsize) n_layer * n_expert);
  acc->weight_sum = g_new0 (double, (gsize) n_layer * n_expert);
  acc->prob_n = g_new0 (int64_t, n_layer);
  acc->moe = g_new0 (gboolean, n_layer);
  for (int l = 0; l < n_layer; l++)
    acc->moe[l] = layer_is_moe ? layer_is_moe[l] : TRUE;
  return acc;
}

void
rs_load_accum_free (RsLoadAccum *acc)
{
  if (acc == NULL)
    return;
  g_free (acc->count);
  g_free (acc->prob_sum);
  g_free (acc->weight_sum);
  g_free (acc->prob_n);
  g_free (acc->moe);
  g_free (acc);
}

void
rs_load_accum_reset (RsLoadAccum *acc)
{
  gsize n = (gsize) acc->n_layer * acc->n_expert;
  memset (acc->count, 0, n * sizeof (double));
  memset (acc->prob_sum, 0, n * sizeof (double));
  memset (acc->weight_sum, 0, n * sizeof (double));
  memset (acc->prob_n, 0, acc->n_layer * sizeof (int64_t));
  acc->done = 0;
  acc->n_counted = 0;
}

void
rs_load_accum_set_filter (RsLoadAccum *acc, RsTokenFilter filter)
{
  acc->filter = filter;
  rs_load_accum_reset (acc);
}

/* Adds token @t's routing to the sums. */
static void
accum_token (RsLoadAccum *acc, const RsTrace *tr, int64_t t)
{
  const int L = tr->n_layer, E = tr->n_expert, K = tr->k_slots;
  const gboolean have_w = has (tr->topk_weights), have_z = has (tr->router_logits);
  double p[RS_MAX_EXPERTS];
  for (int l = 0; l < L; l++)
    {
      if (!acc->moe[l])
        continue;
      const int32_t *ids = IDS (tr) + (t * L + l) * K;
      for (int j = 0; j < K; j++)
        if (ids[j] >= 0 && ids[j] < E)
          {
            acc->count[l * E + ids[j]] += 1;
            if (have_w)
              acc->weight_sum[l * E + ids[j]] += WEIGHTS (tr)[(t * L + l) * K + j];
          }
      /* the router probability p = softmax(raw logits), as rs-analysis.h
       * defines it: what the router says, whatever the interventions */
      if (!have_z || E > RS_MAX_EXPERTS)
        continue;
      const float *z = (const float *) tr->router_logits->data + (t * L + l) * E;
      if (isnan (z[0]))
        continue;
      double max = z[0], sum = 0;
      for (int e = 1; e < E; e++)
        max = MAX (max, z[e]);
      for (int e = 0; e < E; e++)
        sum += p[e] = exp (z[e] - max);
      for (int e = 0; e < E; e++)
        acc->prob_sum[l * E + e] += p[e] / sum;
      acc->prob_n[l]++;
    }
}

void
rs_load_accum_update (RsLoadAccum *acc, const RsTrace *tr)
{
  if (tr == NULL || tr->n_layer != acc->n_layer || tr->n_expert != acc->n_expert)
    return;
  if (tr->n_tokens < acc->done)
    rs_load_accum_reset (acc);
  for (int64_t t = acc->done; t < tr->n_tokens; t++)
    {
      if (acc->filter != RS_TOKENS_ALL)
        {
          gboolean prompt = g_array_index (tr->is_prompt, guint8, t) != 0;
          if (prompt != (acc->filter == RS_TOKENS_PROMPT))
            continue;
        }
      acc->n_counted++;
      accum_token (acc, tr, t);
    }
  acc->done = tr->n_tokens;
}

void
rs_load_accum_values (const RsLoadAccum *acc, RsLoadStat stat, float *out)
{
  const int L = acc->n_layer, E = acc->n_expert;
  for (int l = 0; l < L; l++)
    for (int e = 0; e < E; e++)
      {
        int i = l * E + e;
        float v;
        if (!acc->moe[l])
          v = NAN;
        else if (stat == RS_LOAD_COUNT)
          v = (float) acc->count[i];
        else if (stat == RS_LOAD_MEAN_PROB)
          v = acc->prob_n[l] > 0 ? (float) (acc->prob_sum[i] / acc->prob_n[l]) : NAN;
        else
          v = acc->count[i] > 0 ? (float) (acc->weight_sum[i] / acc->count[i]) : 0.0f;
        out[i] = v;
      }
}

void
rs_token_scores (const RsTrace *tr, int64_t t, const RsRoutingRule *rule, gboolean untouched,
                 float *scores, guint8 *mask)
{
  const int L = tr->n_layer, E = tr->n_expert, K = tr->k_slots;
  gsize n = (gsize) L * E;
  for (gsize i = 0; i < n; i++)
    scores[i] = NAN;
  if (mask)
    memset (mask, 0, n);
  if (t < 0 || t >= tr->n_tokens)
    return;
  g_autofree float *z = g_new (float, E);
  g_autofree float *work = g_new (float, E);
  for (int l = 0; l < L; l++)
    {
      float *row = scores + (gsize) l * E;
      if (untouched && has (tr->router_logits) && rule != NULL)
        {
          const float *raw = (const float *) tr->router_logits->data + (t * L + l) * E;
          if (!isnan (raw[0]))
            {
              memcpy (z, raw, E * sizeof (float));
              RsRouteResult res;
              rs_route_token (rule, NULL, E, MAX (tr->k_model, 1), z, row, NULL, work, &res);
            }
        }
      else if (!untouched && has (tr->router_scores))
        memcpy (row, (const float *) tr->router_scores->data + (t * L + l) * E, E * sizeof (float));
      if (mask)
        {
          const GArray *ids_arr = untouched && has (tr->base_topk_ids) ? tr->base_topk_ids : tr->topk_ids;
          const int32_t *ids = (const int32_t *) ids_arr->data + (t * L + l) * K;
          for (int j = 0; j < K; j++)
            if (ids[j] >= 0 && ids[j] < E)
              mask[l * E + ids[j]] = 1;
        }
    }
}

static gboolean
same_set (const int32_t *a, const int32_t *b, int K)
{
  for (int i = 0; i < K; i++)
    {
      if (a[i] < 0)
        continue;
      gboolean found = FALSE;
      for (int j = 0; j < K && !found; j++)
        found = b[j] == a[i];
      if (!found)
        return FALSE;
    }
  for (int i = 0; i < K; i++)
    {
      if (b[i] < 0)
        continue;
      gboolean found = FALSE;
      for (int j = 0; j < K && !found; j++)
        found = a[j] == b[i];
      if (!found)
        return FALSE;
    }
  return TRUE;
}

static double
jaccard_distance (const int32_t *a, const int32_t *b, int K)
{
  int inter = 0, na = 0, nb = 0;
  for (int i = 0; i < K; i++)
    {
      if (a[i] >= 0)
        na++;
      if (b[i] >= 0)
        nb++;
      if (a[i] < 0)
        continue;
      for (int j = 0; j < K; j++)
        if (b[j] == a[i])
          {
            inter++;
            break;
          }
    }
  int uni = na + nb - inter;
  return uni > 0 ? 1.0 - (double) inter / uni : 0.0;
}

void
rs_layer_agreement (const RsTrace *tr, double *same, double *overlap)
{
  const int L = tr->n_layer, K = tr->k_slots;
  for (int l = 0; l < L; l++)
    {
      int64_t n = 0, n_same = 0;
      double sum = 0;
      for (int64_t t = 0; t < tr->n_tokens && has (tr->base_topk_ids); t++)
        {
          const int32_t *a = IDS (tr) + (t * L + l) * K;
          const int32_t *b = (const int32_t *) tr->base_topk_ids->data + (t * L + l) * K;
          if (a[0] < 0 && b[0] < 0)
            continue;
          n++;
          n_same += same_set (a, b, K);
          sum += 1.0 - jaccard_distance (a, b, K);
        }
      same[l] = n > 0 ? (double) n_same / n : NAN;
      overlap[l] = n > 0 ? sum / n : NAN;
    }
}

gboolean
rs_token_routing_changed (const RsTrace *tr, int64_t t)
{
  return rs_token_routing_changes (tr, t, NULL) > 0;
}

static void
append_ids (GString *s, const int32_t *ids, int K)
{
  gboolean first = TRUE;
  for (int j = 0; j < K; j++)
    if (ids[j] >= 0)
      {
        g_string_append_printf (s, first ? "%d" : ", %d", ids[j]);
        first = FALSE;
      }
  if (first)
    g_string_append (s, "–");
}

int
rs_token_routing_changes (const RsTrace *tr, int64_t t, GString *text)
{
  if (t < 0 || t >= tr->n_tokens || !has (tr->base_topk_ids))
    return 0;
  const int L = tr->n_layer, K = tr->k_slots;
  int n = 0;
  for (int l = 0; l < L; l++)
    {
      const int32_t *a = IDS (tr) + (t * L + l) * K;
      const int32_t *b = (const int32_t *) tr->base_topk_ids->data + (t * L + l) * K;
      if (same_set (a, b, K))
        continue;
      if (text)
        {
          if (n > 0)
            g_string_append (text, "\n");
          g_string_append_printf (text, "%d: ", l);
          append_ids (text, b, K);
          g_string_append (text, " → ");
          append_ids (text, a, K);
        }
      n++;
    }
  return n;
}

void
rs_token_stat_values (const RsTrace *tr, RsTokenStat stat, int layer, int64_t from, int64_t to,
                      double *out)
{
  const int L = tr->n_layer, E = tr->n_expert, K = tr->k_slots;
  g_autofree double *p = g_new (double, E);
  for (int64_t t = MAX (from, 0); t < MIN (to, tr->n_tokens); t++)
    {
      double v = NAN;
      switch (stat)
        {
        case RS_TOKEN_STAT_ENTROPY:
          if (has (tr->router_logits))
            {
              double sum_h = 0;
              int n = 0;
              for (int l = 0; l < L; l++)
                {
                  const float *z = (const float *) tr->router_logits->data + (t * L + l) * E;
                  if (isnan (z[0]))
                    continue;
                  double max = z[0], zsum = 0, h = 0;
                  for (int e = 1; e < E; e++)
                    max = MAX (max, z[e]);
                  for (int e = 0; e < E; e++)
                    zsum += p[e] = exp (z[e] - max);
                  for (int e = 0; e < E; e++)
                    {
                      double q = p[e] / zsum;
                      if (q > 0)
                        h -= q * log (q);
                    }
                  sum_h += h;
                  n++;
                }
              if (n > 0)
                v = sum_h / n;
            }
          break;
        case RS_TOKEN_STAT_TOP_EXPERT:
          if (layer >= 0 && layer < L)
            {
              int32_t id = IDS (tr)[(t * L + layer) * K];
              if (id >= 0)
                v = id;
            }
          break;
        case RS_TOKEN_STAT_DIVERGENCE:
          if (has (tr->base_topk_ids))
            {
              double sum = 0;
              int n = 0;
              for (int l = 0; l < L; l++)
                {
                  const int32_t *a = IDS (tr) + (t * L + l) * K;
                  if (a[0] < 0)
                    continue;
                  sum += jaccard_distance (a, (const int32_t *) tr->base_topk_ids->data + (t * L + l) * K, K);
                  n++;
                }
              if (n > 0)
                v = sum / n;
            }
          break;
        case RS_TOKEN_STAT_PROB:
          if (has (tr->token_prob))
            v = g_array_index (tr->token_prob, float, t);
          break;
        }
      out[t] = v;
    }
}

static int
cmp_tokens (gconstpointer a, gconstpointer b)
{
  const RsExpertToken *x = a, *y = b;
  if (x->count != y->count)
    return y->count - x->count;
  if (x->weight != y->weight)
    return y->weight > x->weight ? 1 : -1;
  return x->first < y->first ? -1 : x->first > y->first;
}

void
rs_expert_summary (const RsTrace *tr, int layer, int expert, RsExpertSummary *out, GArray *top,
                   int max_top)
{
  memset (out, 0, sizeof *out);
  out->max_act_token = -1;
  out->max_act_channel = -1;
  out->mean_prob = NAN;
  out->mean_weight = NAN;
  out->max_act = NAN;
  if (top)
    g_array_set_size (top, 0);
  if (tr == NULL || layer < 0 || layer >= tr->n_layer || expert < 0 || expert >= tr->n_expert)
    return;
  const int L = tr->n_layer, E = tr->n_expert, K = tr->k_slots;
  out->n_tokens = tr->n_tokens;
  double prob = 0, weight = 0;
  int64_t n_prob = 0;
  g_autoptr (GHashTable) by_id = g_hash_table_new_full (g_direct_hash, g_direct_equal, NULL, g_free);
  for (int64_t t = 0; t < tr->n_tokens; t++)
    {
      if (has (tr->router_scores))
        {
          float s = g_array_index (tr->router_scores, float, (t * L + layer) * E + expert);
          if (!isnan (s))
            {
              prob += s;
              n_prob++;
            }
        }
      const int32_t *ids = IDS (tr) + (t * L + layer) * K;
      for (int j = 0; j < K; j++)
        {
          if (ids[j] != expert)
            continue;
          out->count++;
          float w = has (tr->topk_weights) ? WEIGHTS (tr)[(t * L + layer) * K + j] : NAN;
          weight += w;
          if (has (tr->expert_out_maxabs))
            {
              float a = g_array_index (tr->expert_out_maxabs, float, (t * L + layer) * K + j);
              if (!isnan (a) && (isnan (out->max_act) || a > out->max_act))
                {
                  out->max_act = a;
                  out->max_act_token = t;
                  out->max_act_channel = has (tr->expert_out_channel)
                                           ? g_array_index (tr->expert_out_channel, int32_t, (t * L + layer) * K + j)
                                           : -1;
                }
            }
          if (top)
            {
              int32_t id = g_array_index (tr->token_ids, int32_t, t);
              RsExpertToken *et = g_hash_table_lookup (by_id, GINT_TO_POINTER (id));
              if (et == NULL)
                {
                  et = g_new0 (RsExpertToken, 1);
                  et->id = id;
                  et->first = t;
                  g_hash_table_insert (by_id, GINT_TO_POINTER (id), et);
                }
              et->count++;
              et->weight += w;
            }
          break;
        }
    }
  if (n_prob > 0)
    out->mean_prob = prob / n_prob;
  if (out->count > 0)
    out->mean_weight = weight / out->count;
  if (top)
    {
      GHashTableIter it;
      gpointer value;
      g_hash_table_iter_init (&it, by_id);
      while (g_hash_table_iter_next (&it, NULL, &value))
        {
          RsExpertToken *et = value;
          RsExpertToken copy = *et;
          copy.weight = et->count > 0 ? et->weight / et->count : NAN;
          g_array_append_val (top, copy);
        }
      g_array_sort (top, cmp_tokens);
      if ((int) top->len > max_top)
        g_array_set_size (top, max_top);
    }
}

void
rs_expert_weights (const RsTrace *tr, int layer, int expert, double *out)
{
  const int L = tr->n_layer, K = tr->k_slots;
  for (int64_t t = 0; t < tr->n_tokens; t++)
    {
      const int32_t *ids = IDS (tr) + (t * L + layer) * K;
      double v = ids[0] < 0 ? NAN : 0.0;
      for (int j = 0; j < K; j++)
        if (ids[j] == expert)
          v = has (tr->topk_weights) ? WEIGHTS (tr)[(t * L + layer) * K + j] : 1.0;
      out[t] = v;
    }
}
