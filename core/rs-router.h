/* rs-router.h: the router stage of an MoE layer, per token.
 *
 * Every architecture's routing is one row of RsRoutingRule, and one
 * function, rs_route_token, turns a token's router logits into selected
 * experts and their weights under that rule and under the interventions
 * of the layer (RsRouterControl). It is RS_HD inline so that the CUDA
 * backend runs the very same code per token.
 *
 *   logits z [E]  --(+ bias, + soft bias * spread(z))-->  z'
 *   scores s = softmax(z') | sigmoid(z') | z'
 *   selection score c = s + selection_bias;  disabled -> -inf, forced -> +inf
 *   [group filter]  top-k on c  (or top-p on s)
 *   weights w = s[sel] | softmax(z'[sel]);  [/ sum];  [* scale]
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "rs-hd.h"

#define RS_MAX_EXPERTS     512
#define RS_MAX_EXPERTS_USED 64

typedef enum {
  RS_SCORE_SOFTMAX = 0,  /* s = softmax(z) over all experts */
  RS_SCORE_SIGMOID = 1,  /* s = sigmoid(z) per expert (DeepSeek-V3) */
  RS_SCORE_LOGITS  = 2,  /* s = z; w = softmax over the selected (gpt-oss, Granite, Mixtral) */
} RsScoreFunc;

typedef struct {
  RsScoreFunc score;
  bool        norm_weights;  /* w /= sum(w) over the selected */
  float       weight_scale;  /* w *= scale (1 for most) */
  int         n_group;       /* group-limited selection: groups (0 = off) */
  int         n_group_used;  /*   groups kept */
} RsRoutingRule;

typedef enum {
  RS_EXPERT_NORMAL   = 0,
  RS_EXPERT_DISABLED = 1,  /* never selected */
  RS_EXPERT_FORCED   = 2,  /* always selected */
} RsExpertMode;

/* The interventions in force at one layer. Arrays may be NULL. */
typedef struct {
  const float   *logit_bias;  /* [E] added to z */
  const float   *soft_bias;   /* [E] times (max z - min z) added to z */
  const uint8_t *mode;        /* [E] RsExpertMode */
  int            top_k;       /* 0: the model's k */
  float          top_p;       /* > 0: top-p routing with this threshold instead of top-k */
} RsRouterControl;

/* Outputs for one token. n_selected <= max(k, forced count) and <= RS_MAX_EXPERTS_USED. */
typedef struct {
  int     n_selected;
  int32_t selected[RS_MAX_EXPERTS_USED];  /* by descending selection score */
  float   weights[RS_MAX_EXPERTS_USED];
} RsRouteResult;

RS_HD float
rs_sigmoidf (float x)
{
  return 1.0f / (1.0f + expf (-x));
}

/* In place: p = softmax(p[0..n)). */
RS_HD void
rs_softmax_inplace (float *p, int n)
{
  float max = -INFINITY, sum = 0.0f;
  for (int i = 0; i < n; i++)
    max = p[i] > max ? p[i] : max;
  for (int i = 0; i < n; i++)
    {
      p[i] = expf (p[i] - max);
      sum += p[i];
    }
  for (int i = 0; i < n; i++)
    p[i] /= sum;
}

/* Indices of the @k largest of @v[0..n) in descending order of value
 * (ties: lower index first); -inf entries are never taken. Returns how
 * many were taken. */
RS_HD int
rs_top_k (const float *v, int n, int k, int32_t *out)
{
  int taken = 0;
  for (int i = 0; i < n; i++)
    {
      if (v[i] == -INFINITY)
        continue;
      int pos = taken < k ? taken : k;
      while (pos > 0 && v[out[pos - 1]] < v[i])
        pos--;
      if (pos >= k)
        continue;
      int last = taken < k ? taken : k - 1;
      for (int j = last; j > pos; j--)
        out[j] = out[j - 1];
      out[pos] = i;
      if (taken < k)
        taken++;
    }
  return taken;
}

/* Routes one token.
 * z:        [E] raw router logits (router bias already added); overwritten with z'
 * scores:   [E] out: s
 * sel_bias: [E] or NULL: added to s for selection only (DeepSeek-V3 e_score_correction_bias)
 * work:     [E] scratch */
RS_HD void
rs_route_token (const RsRoutingRule *rule, const RsRouterControl *ctl, int n_expert, int k,
                float *z, float *scores, const float *sel_bias, float *work, RsRouteResult *out)
{
  if (ctl != 0)
    {
      if (ctl->soft_bias != 0)
        {
          float lo = z[0], hi = z[0];
          for (int e = 1; e < n_expert; e++)
            {
              lo = z[e] < lo ? z[e] : lo;
              hi = z[e] > hi ? z[e] : hi;
            }
          for (int e = 0; e < n_expert; e++)
            z[e] += ctl->soft_bias[e] * (hi - lo);
        }
      if (ctl->logit_bias != 0)
        for (int e = 0; e < n_expert; e++)
          z[e] += ctl->logit_bias[e];
      if (ctl->top_k > 0)
        k = ctl->top_k;
    }
  if (k > RS_MAX_EXPERTS_USED)
    k = RS_MAX_EXPERTS_USED;
  if (k > n_expert)
    k = n_expert;

  for (int e = 0; e < n_expert; e++)
    scores[e] = rule->score == RS_SCORE_SIGMOID ? rs_sigmoidf (z[e]) : z[e];
  if (rule->score == RS_SCORE_SOFTMAX)
    rs_softmax_inplace (scores, n_expert);

  /* Selection scores. */
  int n_forced = 0;
  for (int e = 0; e < n_expert; e++)
    {
      work[e] = scores[e] + (sel_bias != 0 ? sel_bias[e] : 0.0f);
      if (ctl != 0 && ctl->mode != 0)
        {
          if (ctl->mode[e] == RS_EXPERT_DISABLED)
            work[e] = -INFINITY;
          else if (ctl->mode[e] == RS_EXPERT_FORCED)
            n_forced++;
        }
    }

  if (rule->n_group > 1 && rule->n_group_used < rule->n_group && n_expert % rule->n_group == 0)
    {
      /* Group score = sum of the group's two best selection scores; the
       * groups outside the best n_group_used are excluded (-inf, as
       * llama.cpp does). Forced experts are exempt. */
      int per = n_expert / rule->n_group;
      float gscore[64];
      int32_t gsel[64];
      int ng = rule->n_group < 64 ? rule->n_group : 64;
      for (int g = 0; g < ng; g++)
        {
          float b1 = -INFINITY, b2 = -INFINITY;
          for (int e = g * per; e < (g + 1) * per; e++)
            {
              if (work[e] > b1) { b2 = b1; b1 = work[e]; }
              else if (work[e] > b2) b2 = work[e];
            }
          gscore[g] = (per > 1 ? b1 + b2 : b1);
          if (gscore[g] != gscore[g]) /* NaN from -inf + inf guards */
            gscore[g] = -INFINITY;
        }
      int kept = rs_top_k (gscore, ng, rule->n_group_used, gsel);
      for (int g = 0; g < ng; g++)
        {
          bool keep = false;
          for (int j = 0; j < kept; j++)
            keep = keep || gsel[j] == g;
          if (!keep)
            for (int e = g * per; e < (g + 1) * per; e++)
              if (!(ctl != 0 && ctl->mode != 0 && ctl->mode[e] == RS_EXPERT_FORCED))
                work[e] = -INFINITY;
        }
    }

  if (n_forced > 0)
    for (int e = 0; e < n_expert; e++)
      if (ctl->mode[e] == RS_EXPERT_FORCED)
        work[e] = INFINITY;
  if (n_forced > k)
    k = n_forced < RS_MAX_EXPERTS_USED ? n_forced : RS_MAX_EXPERTS_USED;

  int n;
  if (ctl != 0 && ctl->top_p > 0.0f)
    {
      /* Top-p (Huang et al.): experts by descending probability while the
       * cumulative sum stays <= p, plus the one that crosses it. */
      n = rs_top_k (work, n_expert, RS_MAX_EXPERTS_USED < n_expert ? RS_MAX_EXPERTS_USED : n_expert,
                    out->selected);
      float cum = 0.0f;
      int keep = 0;
      while (keep < n)
        {
          cum += scores[out->selected[keep]];
          keep++;
          if (cum > ctl->top_p && keep >= n_forced)
            break;
        }
      n = keep;
    }
  else
    n = rs_top_k (work, n_expert, k, out->selected);
  out->n_selected = n;

  if (rule->score == RS_SCORE_LOGITS)
    {
      for (int j = 0; j < n; j++)
        out->weights[j] = z[out->selected[j]];
      rs_softmax_inplace (out->weights, n);
    }
  else
    for (int j = 0; j < n; j++)
      out->weights[j] = scores[out->selected[j]];

  if (rule->norm_weights && n > 0)
    {
      float sum = 0.0f;
      for (int j = 0; j < n; j++)
        sum += out->weights[j];
      sum = sum > 6.1e-5f ? sum : 6.1e-5f;
      for (int j = 0; j < n; j++)
        out->weights[j] /= sum;
    }
  if (rule->weight_scale != 0.0f && rule->weight_scale != 1.0f)
    for (int j = 0; j < n; j++)
      out->weights[j] *= rule->weight_scale;
}
