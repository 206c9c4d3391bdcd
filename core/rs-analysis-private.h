/* SPDX-License-Identifier: GPL-3.0-or-later */
/* rs-analysis-private.h: helpers shared by the analysis files
 * (rs-load.c, rs-align.c, rs-super.c, rs-lrc.c, rs-special.c, rs-ppl.c). */
#pragma once

#include <math.h>

#include "rs-analysis.h"
#include "rs-error.h"

/* p = softmax(z[0..n)); FALSE when a logit is not finite (a dense layer,
 * or logits not recorded). The exponentials are single precision (as
 * the router's own), the normalisation double. */
static inline gboolean
rs_an_softmax (const float *z, int n, double *p)
{
  float max = -INFINITY;
  for (int e = 0; e < n; e++)
    {
      if (!isfinite (z[e]))
        return FALSE;
      max = z[e] > max ? z[e] : max;
    }
  double sum = 0.0;
  for (int e = 0; e < n; e++)
    {
      p[e] = expf (z[e] - max);
      sum += p[e];
    }
  double inv = 1.0 / sum;
  for (int e = 0; e < n; e++)
    p[e] *= inv;
  return TRUE;
}

/* The ids [T, L, K] of @src (NULL with an error when not recorded). */
static inline const int32_t *
rs_an_route_ids (const RsTrace *tr, RsRouteSource src, GError **error)
{
  const GArray *a = src == RS_ROUTES_BASE ? tr->base_topk_ids : tr->topk_ids;
  if (tr->n_tokens > 0 && a->len < (guint) (tr->n_tokens * tr->n_layer * tr->k_slots))
    {
      g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "the trace does not record %s",
                   src == RS_ROUTES_BASE ? "the untouched router's choices (base_topk_ids)"
                                         : "the selected experts (topk_ids)");
      return NULL;
    }
  return (const int32_t *) (const void *) a->data;
}

/* The weights [T, L, K] of @src, or NULL when not recorded. */
static inline const float *
rs_an_route_weights (const RsTrace *tr, RsRouteSource src)
{
  const GArray *a = src == RS_ROUTES_BASE ? tr->base_topk_weights : tr->topk_weights;
  if (tr->n_tokens == 0 || a->len < (guint) (tr->n_tokens * tr->n_layer * tr->k_slots))
    return NULL;
  return (const float *) (const void *) a->data;
}

/* Router logits [T, L, E], or NULL when not recorded. */
static inline const float *
rs_an_logits (const RsTrace *tr)
{
  if (tr->n_tokens == 0 || tr->router_logits->len < (guint) (tr->n_tokens * tr->n_layer * tr->n_expert))
    return NULL;
  return (const float *) (const void *) tr->router_logits->data;
}

/* [L] has-experts flags of a trace (g_free). */
static inline uint8_t *
rs_an_has_experts (const RsTrace *tr)
{
  uint8_t *h = g_new0 (uint8_t, tr->n_layer);
  for (int l = 0; l < tr->n_layer; l++)
    h[l] = rs_trace_layer_has_experts (tr, l);
  return h;
}

/* Checks that @starts [n] are ascending and within [0, T); builds the
 * default single sequence otherwise. Returns an int64 array [n + 1] with
 * the end T appended (g_array_unref). */
GArray *rs_an_sequences (const RsTrace *tr, const int64_t *starts, int n, GError **error);

/* A Python-style round (half to even). */
static inline double
rs_an_round_half_even (double x)
{
  double r = round (x);
  if (fabs (x - trunc (x)) == 0.5)
    r = 2.0 * round (x / 2.0);
  return r;
}

/* Evaluates @n tokens at position @pos0 (the session's current position)
 * with the interventions @ivs in force, in batches that do not straddle a
 * change of interventions (their from_token), as RsRun does. @logits as
 * rs_session_eval: the last token's [V] or with @all every token's [n, V]. */
gboolean rs_an_eval (RsSession *session, RsLayerControls *controls, const RsModel *model,
                     const RsIntervention *ivs, int n_ivs, const int32_t *tokens, int n,
                     int64_t pos0, float *logits, gboolean all, GError **error);
