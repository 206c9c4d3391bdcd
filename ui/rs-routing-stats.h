/* rs-routing-stats.h: what the views show, computed from a routing trace.
 *
 * Everything here reads the trace the engine recorded (RsTrace) and the
 * engine's own routing function; nothing is estimated. Arrays are
 * layers x experts, row-major; layers without experts are NaN.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <glib.h>

#include "rs-router.h"
#include "rs-trace.h"

G_BEGIN_DECLS

typedef enum {
  RS_LOAD_COUNT,        /* tokens routed to the expert */
  RS_LOAD_MEAN_PROB,    /* mean router probability (softmax of the raw logits) over all tokens */
  RS_LOAD_MEAN_WEIGHT,  /* mean gate weight over the tokens routed to it */
} RsLoadStat;

/* Expert load accumulated token by token, so that a live run costs one
 * token's worth of work per new token. The numbers are rs_load_compute's
 * (rs-analysis.h; the tests check that they agree). */
typedef struct {
  int       n_layer, n_expert;
  int64_t   done;        /* tokens accumulated */
  double   *count;       /* [L*E] */
  double   *prob_sum;    /* [L*E] */
  double   *weight_sum;  /* [L*E] over the selections */
  int64_t  *prob_n;      /* [L] tokens with finite scores */
  gboolean *moe;         /* [L] */
  int       filter;      /* RsTokenFilter */
  int64_t   n_counted;   /* tokens that passed the filter */
} RsLoadAccum;

typedef enum {
  RS_TOKENS_ALL,
  RS_TOKENS_PROMPT,
  RS_TOKENS_GENERATED,
} RsTokenFilter;

/* Which tokens count (starts over). */
void rs_load_accum_set_filter (RsLoadAccum *acc, RsTokenFilter filter);

RsLoadAccum *rs_load_accum_new    (int n_layer, int n_expert, const gboolean *layer_is_moe);
void         rs_load_accum_free   (RsLoadAccum *acc);
void         rs_load_accum_reset  (RsLoadAccum *acc);
/* Adds the tokens of @trace not yet counted (starts over when the trace
 * is shorter than what was counted). */
void         rs_load_accum_update (RsLoadAccum *acc, const RsTrace *trace);
/* Fills @out [L*E]. */
void         rs_load_accum_values (const RsLoadAccum *acc, RsLoadStat stat, float *out);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RsLoadAccum, rs_load_accum_free)

/* Router scores of token @t [L*E] and the experts that ran (@mask [L*E],
 * may be NULL). With @untouched: the scores the router gives without
 * interventions (the engine's rs_route_token on the raw logits with no
 * control) and the experts the untouched router chose. */
void rs_token_scores (const RsTrace *trace, int64_t t, const RsRoutingRule *rule, gboolean untouched,
                      float *scores, guint8 *mask);

/* Whether interventions changed the experts of token @t in any layer. */
gboolean rs_token_routing_changed (const RsTrace *trace, int64_t t);
/* Number of layers whose selection differs, and a text "layer 3: 5, 7 → 2, 7; ..." */
int rs_token_routing_changes (const RsTrace *trace, int64_t t, GString *text);

/* Per layer [L]: the fraction of tokens whose experts are the ones the
 * untouched router chose, and the mean Jaccard overlap of the two sets
 * (NaN for layers without experts or without tokens). */
void rs_layer_agreement (const RsTrace *trace, double *same, double *overlap);

typedef enum {
  RS_TOKEN_STAT_ENTROPY,     /* mean over MoE layers of the entropy of softmax(router logits), nats */
  RS_TOKEN_STAT_TOP_EXPERT,  /* the top expert at a layer (categorical) */
  RS_TOKEN_STAT_DIVERGENCE,  /* mean Jaccard distance between the experts that ran and the untouched choice */
  RS_TOKEN_STAT_PROB,        /* probability the model gave the token */
} RsTokenStat;

/* Values of tokens [@from, @to) into @out[from..to) (NaN where not
 * defined). @layer for TOP_EXPERT. */
void rs_token_stat_values (const RsTrace *trace, RsTokenStat stat, int layer, int64_t from, int64_t to,
                           double *out);

typedef struct {
  int64_t n_tokens;      /* tokens in the trace */
  int64_t count;         /* tokens routed to the expert */
  double  mean_prob;     /* mean router score */
  double  mean_weight;   /* mean gate weight when selected */
  float   max_act;       /* largest |expert output| */
  int64_t max_act_token; /* -1 when none */
  int     max_act_channel;
} RsExpertSummary;

typedef struct {
  int32_t id;
  int64_t first;   /* first position where it was routed */
  int     count;
  double  weight;  /* mean gate weight */
} RsExpertToken;

/* The expert's numbers, and in @top (RsExpertToken, may be NULL) the
 * distinct tokens routed to it, most frequent first (at most @max_top). */
void rs_expert_summary (const RsTrace *trace, int layer, int expert, RsExpertSummary *out,
                        GArray *top, int max_top);

/* Gate weight of @expert at @layer per token [T] (0 when not selected,
 * NaN for tokens without routing). */
void rs_expert_weights (const RsTrace *trace, int layer, int expert, double *out);

G_END_DECLS
