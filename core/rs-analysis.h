/* SPDX-License-Identifier: GPL-3.0-or-later */
/* rs-analysis.h: the routing analyses of the research literature, done
 * once, on any trace (live or loaded): expert load, router entropy,
 * cross-lingual routing alignment, super experts, local routing
 * consistency, specialisation, perplexity and intervention effect.
 *
 * The definitions are those of /work/shared/methods.md; docs/analyses.md
 * describes each analysis, its formula, its parameters and every choice
 * the papers leave open. Each analysis is a pure function of a
 * `const RsTrace *` and a small parameter struct (initialise it with its
 * _init function, which sets the documented defaults), returning a plain
 * result struct with its own free function. The functions that run the
 * engine (alignment over a corpus, perplexity, trace of a long text) take
 * a progress callback and a GCancellable so that the GUI can run them on
 * a worker thread.
 *
 * Conventions: arrays are row-major with their shapes in comments;
 * L = trace->n_layer (every layer of the model, dense ones included),
 * E = trace->n_expert, K = trace->k_slots, k = trace->k_model. Values
 * that do not exist (a dense layer, an expert never selected) are NaN.
 * The router probability p of a token at a layer is softmax of the
 * recorded raw router logits (methods.md notation), which does not depend
 * on interventions or on the architecture's score function.
 */
#pragma once

#include <gio/gio.h>
#include <glib.h>
#include <stdint.h>

#include "rs-corpus.h"
#include "rs-engine.h"
#include "rs-intervention.h"
#include "rs-run.h"
#include "rs-tokenizer.h"
#include "rs-trace.h"

G_BEGIN_DECLS

/* Which selection a statistic counts. */
typedef enum {
  RS_ROUTES_RAN  = 0,  /* topk_ids/topk_weights: the experts that ran (after interventions) */
  RS_ROUTES_BASE = 1,  /* base_topk_ids/weights: what the untouched router chose */
} RsRouteSource;

/* Reports progress (@done of @total units); called on the thread running
 * the analysis. */
typedef void (*RsProgressFunc) (void *user_data, int64_t done, int64_t total);

/* Whether layer @l of @trace has experts: some token selected an expert
 * there, or its router logits are recorded (finite). */
gboolean rs_trace_layer_has_experts (const RsTrace *trace, int l);

/* ==== 1. Expert load ====================================================== */

typedef struct {
  RsRouteSource routes;  /* default RS_ROUTES_RAN */
  int64_t t_first;       /* token range [t_first, t_end); default 0 */
  int64_t t_end;         /* <= 0: the end of the trace (default) */
} RsLoadParams;

void rs_load_params_init (RsLoadParams *p);

typedef struct {
  int      n_layer, n_expert;
  int64_t  n_tokens;          /* tokens counted */
  uint8_t *has_experts;       /* [L] */
  int64_t *counts;            /* [L, E] selections (tokens that selected the expert) */
  double  *mean_prob;         /* [L, E] mean router probability p_e over the tokens
                                 (NaN without router logits or for a dense layer) */
  double  *mean_weight;       /* [L, E] mean routing weight over the tokens that selected
                                 the expert (NaN when never selected or weights not recorded) */
  double  *max_over_mean;     /* [L] max_e counts / mean_e counts */
  double  *cv;                /* [L] coefficient of variation of counts: population std / mean */
  double  *norm_entropy;      /* [L] H(counts / sum) / ln E: 1 = perfectly balanced */
  int     *n_never;           /* [L] experts never selected */
} RsLoadResult;

RsLoadResult *rs_load_compute     (const RsTrace *trace, const RsLoadParams *params, GError **error);
void          rs_load_result_free (RsLoadResult *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RsLoadResult, rs_load_result_free)

/* ==== 2. Router entropy and confidence ==================================== */

typedef struct {
  RsRouteSource routes;  /* for selected_mass; default RS_ROUTES_RAN */
} RsEntropyParams;

void rs_entropy_params_init (RsEntropyParams *p);

typedef struct {
  int      n_layer, n_expert;
  int64_t  n_tokens;
  uint8_t *has_experts;        /* [L] */
  float   *entropy;            /* [T, L] H(p) in nats */
  float   *top1;               /* [T, L] max_e p_e (confidence) */
  float   *margin;             /* [T, L] p of the best minus p of the second best */
  float   *selected_mass;      /* [T, L] sum of p over the selected experts */
  double  *mean_entropy;       /* [L] means over the tokens */
  double  *mean_norm_entropy;  /* [L] mean of H(p) / ln E */
  double  *mean_top1;          /* [L] */
  double  *mean_selected_mass; /* [L] */
} RsEntropyResult;

/* Needs router logits (RS_ERROR_INVALID otherwise). */
RsEntropyResult *rs_entropy_compute     (const RsTrace *trace, const RsEntropyParams *params,
                                         GError **error);
void             rs_entropy_result_free (RsEntropyResult *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RsEntropyResult, rs_entropy_result_free)

/* ==== 3. Cross-lingual routing alignment (methods.md section 1) =========== */

typedef enum {
  RS_IMPORTANCE_MEAN_PROB  = 0, /* q = mean over tokens of softmax(z) (the paper; default) */
  RS_IMPORTANCE_TOPK_WEIGHT = 1, /* q = mean over tokens of the top-k-masked weights
                                    renormalised to sum 1 ("total_actual_weight") */
} RsImportanceMode;
#define RS_IMPORTANCE_N_MODES 2

const char *rs_importance_mode_name (RsImportanceMode mode); /* "mean_prob", "topk_weight" */
gboolean    rs_importance_mode_from_name (const char *name, RsImportanceMode *mode);

/* Expert importance of tokens [t0, t1) of @trace: @out [L, E], each MoE
 * layer's row a distribution (rows of dense layers NaN). @include
 * [t1 - t0] (NULL: all) selects the tokens averaged over. Fails when
 * the mode's arrays are not recorded or no token is included. */
gboolean rs_importance_from_trace (const RsTrace *trace, int64_t t0, int64_t t1,
                                   const uint8_t *include, RsImportanceMode mode, double *out,
                                   GError **error);

/* H(p) = -sum p ln(p + 1e-10) (the reference code's entropy). */
double rs_entropy_eps (const double *p, int n);
/* JSD(P, Q) = KL(P||M)/2 + KL(Q||M)/2, M = (P + Q)/2 clamped >= 1e-10,
 * terms with P = 0 contributing 0 (torch kl_div). */
double rs_jsd (const double *p, const double *q, int n);
/* JSD / max(ln n - (H(P) + H(Q))/2, 1e-6) */
double rs_jsd_normalized (const double *p, const double *q, int n);

typedef struct {
  int      n_layer, n_expert, n_lang;
  char   **langs;             /* [n_lang] */
  int      ref;               /* index of the reference language (-1 if absent) */
  uint8_t *has_experts;       /* [L] */
  int64_t  n_ids;             /* ids seen */
  int64_t *n_seq;             /* [n_lang] sequences run */
  int64_t *n_pairs;           /* [n_lang] ids with both this language and the reference */
  /* Indexed by RsImportanceMode: */
  double  *jsd[RS_IMPORTANCE_N_MODES];      /* [n_lang, L] mean normalised JSD to the reference
                                               sentence of the same id (NaN for the reference) */
  double  *jsd_std[RS_IMPORTANCE_N_MODES];  /* [n_lang, L] its standard deviation over ids */
  double  *jsd_raw[RS_IMPORTANCE_N_MODES];  /* [n_lang, L] mean JSD, not normalised */
  double  *pair_jsd[RS_IMPORTANCE_N_MODES]; /* [n_lang, n_lang, L] mean normalised JSD over ids
                                               having both languages (0 on the diagonal) */
  double  *mean_importance[RS_IMPORTANCE_N_MODES]; /* [n_lang, L, E] mean over sequences */
  double  *entropy[RS_IMPORTANCE_N_MODES];  /* [n_lang, L] mean H(q) over sequences */
  /* Filled by rs_align_run: */
  int64_t  n_tokens;          /* tokens run */
  int64_t  n_truncated;       /* sentences cut to the context */
  double   engine_seconds;    /* in the engine's forward passes */
  double   analysis_seconds;  /* importance accumulation and JSD */
  double   tokenize_seconds;
} RsAlignResult;

void rs_align_result_free (RsAlignResult *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RsAlignResult, rs_align_result_free)

/* Accumulates the alignment statistics one id at a time, so that a
 * corpus of any size needs memory for one id's importances only. */
typedef struct _RsAlignAccum RsAlignAccum;

RsAlignAccum *rs_align_accum_new  (int n_layer, int n_expert, const uint8_t *has_experts,
                                   const char *const *langs, int n_lang, const char *ref_lang);
void          rs_align_accum_free (RsAlignAccum *acc);
/* Adds one id: @importance[lang] is that language's sentence's importance
 * [RS_IMPORTANCE_N_MODES, L, E], or NULL when the id has no sentence in
 * that language. */
void          rs_align_accum_add  (RsAlignAccum *acc, const double *const *importance);
/* The result; the accumulator is freed. */
RsAlignResult *rs_align_accum_finish (RsAlignAccum *acc);

typedef struct {
  RsSessionParams       session;
  const char           *ref_lang;        /* default "en" */
  gboolean              include_special; /* average over BOS/control tokens too; default FALSE */
  int64_t               max_ids;         /* run the first N ids only; 0 = all (default) */
  const RsIntervention *ivs;             /* interventions in force (e.g. task-expert steering) */
  int                   n_ivs;
} RsAlignRunParams;

void rs_align_run_params_init (RsAlignRunParams *p);

/* Runs every sentence of @corpus through one session (a fresh sequence
 * each: the KV cache is cleared, not reallocated) and accumulates the
 * importances. Progress is in sentences. Cancelled: RS_ERROR_CANCELLED. */
RsAlignResult *rs_align_run (const RsModel *model, const RsTokenizer *tok, const RsCorpus *corpus,
                             const RsAlignRunParams *params, RsProgressFunc progress,
                             void *user_data, GCancellable *cancellable, GError **error);

/* Mean importance [RS_IMPORTANCE_N_MODES, L, E] over plain texts (e.g. an
 * English task set, one text per element), each a fresh sequence. */
gboolean rs_importance_run_texts (const RsModel *model, const RsTokenizer *tok,
                                  const char *const *texts, int64_t n_texts,
                                  const RsAlignRunParams *params, double *out,
                                  RsProgressFunc progress, void *user_data,
                                  GCancellable *cancellable, GError **error);

/* The middle layers of a model of @n_layer layers when none are given:
 * [floor(7 L / 48), ceil(34 L / 48) - 1], which is Qwen3-30B-A3B's
 * 1-indexed 8..34 of 48 in the paper, scaled. */
void rs_align_middle_layers (int n_layer, int *first, int *last);

/* Multilingual-specialised experts (the paper's negative control). */
typedef struct {
  RsImportanceMode mode;       /* default RS_IMPORTANCE_MEAN_PROB */
  int              layer_first, layer_last; /* default -1: rs_align_middle_layers */
  double           n_sigma;    /* default 3 */
  /* Weights of the multilingual average, by language code; languages not
   * listed weigh 1. Default (NULL): 0.5 for the codes the paper down-weights
   * (bam, fra/fr, ary, zho/zh, ory, asm), 1 for the rest. */
  const char *const *weight_langs;
  const double     *weights;
  int               n_weights;
} RsSpecialisedParams;

void rs_specialised_params_init (RsSpecialisedParams *p);

typedef struct {
  int    layer, expert;
  int    lang;       /* language index, -1 for the weighted multilingual average */
  double diff;       /* mean q_lang - mean q_ref */
  double threshold;  /* n_sigma * std over the layer's experts of diff */
} RsSpecialisedExpert;

/* An array of RsSpecialisedExpert, by layer, expert, then language. */
GArray *rs_align_specialised_experts (const RsAlignResult *r, const RsSpecialisedParams *p);

/* Task experts: the experts the reference language uses most in the
 * middle layers, and the steering that promotes them. */
typedef struct {
  RsImportanceMode   mode;        /* default RS_IMPORTANCE_MEAN_PROB */
  int                layer_first, layer_last; /* default -1: rs_align_middle_layers */
  int                top_n;       /* experts per layer; default 0 = the model's k */
  double             min_ratio;   /* only experts with importance > min_ratio / E; default 1
                                     (more than a uniform router gives) */
  RsInterventionKind steer_kind;  /* RS_INTERVENE_BIAS (default) or RS_INTERVENE_SOFT_BIAS */
  double             steer_value; /* logit delta (bias) or strength (soft-bias); default 1.0 */
} RsTaskExpertParams;

void rs_task_expert_params_init (RsTaskExpertParams *p);

typedef struct {
  int    layer, expert;
  double importance;  /* on the task texts */
  double score;       /* what was ranked: importance, or importance - baseline */
} RsTaskExpert;

/* From the reference language's importance on task texts @task [L, E]
 * (e.g. RsAlignResult.mean_importance[mode] of the reference, or
 * rs_importance_run_texts), ranked by task - @baseline when a baseline
 * [L, E] (general text) is given. @k is the model's experts per token.
 * Returns an array of RsTaskExpert by layer, then descending score. */
GArray *rs_task_experts (const double *task, const double *baseline, int n_layer, int n_expert,
                         int k, const uint8_t *has_experts, const RsTaskExpertParams *p);
/* One intervention per layer promoting the layer's task experts from
 * token 0 on. An array of RsIntervention. */
GArray *rs_task_expert_interventions (const GArray *experts, const RsTaskExpertParams *p);

/* ==== 4. Super experts (methods.md section 2) ============================= */

typedef struct {
  double layer_fraction;  /* pool layers with index < round(fraction * L) (half to even, as
                             Python); default 0.75 */
  double percentile;      /* default 99.5 (linear interpolation, as numpy) */
  double max_divisor;     /* an SE also exceeds floor(max(pool) / divisor); default 10 */
} RsSuperParams;

void rs_super_params_init (RsSuperParams *p);

typedef struct {
  int     layer, expert;
  float   value;    /* output_max */
  int32_t channel;  /* hidden channel of that maximum */
  int64_t token;    /* trace index of the token where it occurred */
} RsSuperExpert;

typedef struct {
  int      n_layer, n_expert;
  float   *output_max;    /* [L, E] max over the tokens routed to the expert of max |down-projection
                             output| (NaN when never routed) */
  int32_t *channel;       /* [L, E] channel of that maximum (-1) */
  int64_t *token;         /* [L, E] token index (-1) */
  int      n_pool_layers; /* round(fraction * L) */
  int64_t  pool_size;     /* (layer, expert) pairs in the pool */
  double   percentile_value; /* P(pool) */
  double   pool_max;
  double   max_threshold; /* floor(pool_max / divisor) */
  double   threshold;     /* max(percentile_value, max_threshold): SE iff output_max > threshold */
  GArray  *super_experts; /* RsSuperExpert, by descending value */
} RsSuperResult;

/* Needs expert_out_maxabs (RS_ERROR_INVALID otherwise). */
RsSuperResult *rs_super_compute     (const RsTrace *trace, const RsSuperParams *params, GError **error);
void           rs_super_result_free (RsSuperResult *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RsSuperResult, rs_super_result_free)
/* Interventions that disable every super expert (one per layer), from
 * token 0. An array of RsIntervention. */
GArray *rs_super_interventions (const RsSuperResult *r);

/* ==== 5. Local routing consistency (methods.md section 3) ================= */

typedef enum {
  RS_SCH_COLD_MISS      = 0, /* a first access is a miss at every cache size (default) */
  RS_SCH_COLD_REFERENCE = 1, /* moe-lrc's 41_sch_calc.py: a first access is a hit when fewer
                                distinct experts than the cache holds have been seen */
} RsSchColdPolicy;

#define RS_LRC_MAX_SEGS 8

typedef struct {
  int             seg_lens[RS_LRC_MAX_SEGS]; /* default 4, 16, 64, 256 */
  int             n_seg_lens;                /* default 4 */
  double          cache_ratio;  /* cache size / k; default 2: 2k per layer, 2 L k model-wide */
  int             k;            /* 0: the trace's k_model (default) */
  RsRouteSource   routes;       /* default RS_ROUTES_RAN (= BASE without interventions) */
  const int64_t  *seq_starts;   /* [n_seq] ascending first token of each sequence; NULL: the
                                   whole trace is one sequence (default) */
  int             n_seq;
  int             seq_stride;   /* SCH over every n-th sequence; default 1 (the paper: 16) */
  RsSchColdPolicy cold;         /* default RS_SCH_COLD_MISS */
} RsLrcParams;

void rs_lrc_params_init (RsLrcParams *p);

typedef struct {
  int      n_layer, n_expert, n_seg;
  int      seg_lens[RS_LRC_MAX_SEGS];
  uint8_t *has_experts;      /* [L] */
  /* SRP: F1 of predicting an expert for a whole segment iff it is active on
   * >= theta of its tokens, theta shared at the aggregation level. */
  double  *srp_model;        /* [n_seg] one theta over all layers and experts */
  int     *theta_model;      /* [n_seg] */
  double  *best_m_model;     /* [n_seg] preds(theta*) / acts */
  double  *srp_layer;        /* [n_seg, L] one theta per layer */
  int     *theta_layer;      /* [n_seg, L] */
  double  *srp_expert;       /* [n_seg, L, E] one theta per expert (NaN: never active) */
  int64_t *n_windows;        /* [n_seg] windows (all sequences) */
  /* SCH: hit rate of the oracle cache (priority = the expert's activations
   * in the next m tokens, ties: most recently used kept). */
  int      cache_layer;      /* capacity per layer: round(ratio * k) */
  int      cache_model;      /* capacity of the global cache: round(ratio * L_moe * k) */
  double  *sch_model;        /* [n_seg] */
  double  *sch_layer;        /* [n_seg, L] */
  double  *sch_layer_mean;   /* [n_seg] mean over MoE layers */
} RsLrcResult;

RsLrcResult *rs_lrc_compute     (const RsTrace *trace, const RsLrcParams *params, GError **error);
void         rs_lrc_result_free (RsLrcResult *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RsLrcResult, rs_lrc_result_free)

/* The primitives, on one stream of activation sets, for tests and other
 * callers. @sets [T, B] (ids < 0 are empty) of items < @n_items.
 * SRP histogram: adds to @hist [m + 1] the number of (window, item) pairs
 * whose item is active on c tokens of the window (windows of length @m,
 * stride 1; none when T < m). */
void   rs_srp_histogram (const int32_t *sets, int64_t T, int B, int n_items, int m, int64_t *hist);
/* The best F1 over theta = 0..m of a histogram; @theta and @best_m may be NULL. */
double rs_srp_from_histogram (const int64_t *hist, int m, int *theta, double *best_m);
/* Oracle-cache hits of one sequence with capacity @capacity and future
 * window @m; @accesses gets the number of activations. */
int64_t rs_sch_hits (const int32_t *sets, int64_t T, int B, int n_items, int m, int capacity,
                     RsSchColdPolicy cold, int64_t *accesses);

/* ==== 6. Specialisation =================================================== */

typedef struct {
  RsRouteSource  routes;            /* default RS_ROUTES_RAN */
  int            top_n;             /* favourite tokens per expert; default 10 */
  int64_t        min_count;         /* a favourite occurs >= this often in the expert's
                                       routing; default 5 */
  int64_t        min_token_occurrences;    /* context independence: token ids occurring more
                                              often than this; default 128 (OpenMoE) */
  int64_t        min_position_occurrences; /* positions occurring more often; default 128 */
  const int64_t *seq_starts;        /* sequences, for position ids; NULL: one sequence */
  int            n_seq;
} RsSpecialParams;

void rs_special_params_init (RsSpecialParams *p);

typedef struct {
  int32_t token_id;     /* -1: unused entry */
  char   *text;         /* the token's text (from the trace) */
  int64_t count;        /* times routed to the expert */
  int64_t token_count;  /* occurrences of the token in the trace */
  double  lift;         /* (count / expert's count) / (token_count / tokens) */
} RsFavouriteToken;

typedef struct {
  int      n_layer, n_expert, top_n;
  int64_t  n_tokens;
  uint8_t *has_experts;         /* [L] */
  RsFavouriteToken *favourites; /* [L, E, top_n] by descending lift */
  /* Context independence: std over experts of the routing distribution
   * (fraction of the group's selections going to each expert). */
  int      n_token_ids;         /* token ids with > min_token_occurrences */
  int32_t *token_ids;           /* [n_token_ids] */
  double  *token_std;           /* [L, n_token_ids] */
  int      n_positions;         /* positions with > min_position_occurrences */
  int32_t *positions;           /* [n_positions] */
  double  *position_std;        /* [L, n_positions] */
  double  *mean_token_std;      /* [L] mean over token ids (NaN when none qualify) */
  double  *mean_position_std;   /* [L] */
  int64_t *coact;               /* [L, E, E] tokens selecting both a and b (diagonal: a) */
} RsSpecialResult;

RsSpecialResult *rs_special_compute     (const RsTrace *trace, const RsSpecialParams *params,
                                         GError **error);
void             rs_special_result_free (RsSpecialResult *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RsSpecialResult, rs_special_result_free)

/* ==== 7. Perplexity and intervention effect =============================== */

typedef struct {
  RsSessionParams session;   /* n_ctx is the chunk length */
  int             max_chunks;/* 0: the whole text (default) */
} RsPplParams;

void rs_ppl_params_init (RsPplParams *p);

typedef struct {
  int64_t n_chunks;
  int64_t n_scored;          /* tokens whose NLL is counted */
  double  nll;               /* mean NLL (nats) of the baseline */
  double  ppl;               /* exp(nll) */
  gboolean steered;          /* interventions were given */
  double  nll_steered, ppl_steered;
  double  kl;                /* mean KL(baseline || steered) of the next-token distributions */
  double  top1_agree;        /* fraction of positions where both argmaxes agree */
  double  seconds;
} RsPplResult;

/* Teacher-forced perplexity of @text: the text's tokens (no BOS) are cut
 * into chunks of n_ctx - 1 (with BOS, as the model's metadata asks) or
 * n_ctx tokens; each chunk is a fresh sequence and the NLL of its tokens
 * 1..n-1 is counted; ppl = exp(mean NLL). With interventions, the
 * baseline and the steered model run side by side (two sessions) and the
 * KL between them is averaged over the same positions. Progress is in
 * chunks. */
gboolean rs_ppl_compute (const RsModel *model, const RsTokenizer *tok, const char *text,
                         const RsPplParams *params, const RsIntervention *ivs, int n_ivs,
                         RsProgressFunc progress, void *user_data, GCancellable *cancellable,
                         RsPplResult *out, GError **error);

/* A trace of a text of any length: the text is cut like rs_ppl_compute's
 * chunks, each chunk is run as a prompt (one RsRun, cleared between
 * chunks) and the chunks' traces are concatenated. @seq_starts (int64,
 * may be NULL) receives each chunk's first token index. */
RsTrace *rs_trace_from_text (const RsModel *model, const RsTokenizer *tok, const char *text,
                             const RsRunParams *params, const RsIntervention *ivs, int n_ivs,
                             int max_chunks, GArray *seq_starts, RsProgressFunc progress,
                             void *user_data, GCancellable *cancellable, GError **error);

G_END_DECLS
