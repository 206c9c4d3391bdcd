/* SPDX-License-Identifier: GPL-3.0-or-later */
/* rs-align.c: cross-lingual routing alignment (Bandarkar et al.;
 * methods.md section 1; the reference code is
 * lucasbandarkar/xl_moe_alignment routing_analysis/analysis_helpers.py). */
#include <math.h>
#include <string.h>
#include <time.h>

#include "rs-analysis-private.h"

static double
now_s (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

const char *
rs_importance_mode_name (RsImportanceMode mode)
{
  return mode == RS_IMPORTANCE_TOPK_WEIGHT ? "topk_weight" : "mean_prob";
}

gboolean
rs_importance_mode_from_name (const char *name, RsImportanceMode *mode)
{
  if (g_strcmp0 (name, "mean_prob") == 0 || g_strcmp0 (name, "mean-prob") == 0)
    *mode = RS_IMPORTANCE_MEAN_PROB;
  else if (g_strcmp0 (name, "topk_weight") == 0 || g_strcmp0 (name, "topk-weight") == 0)
    *mode = RS_IMPORTANCE_TOPK_WEIGHT;
  else
    return FALSE;
  return TRUE;
}

/* ---- divergences -------------------------------------------------------- */

double
rs_entropy_eps (const double *p, int n)
{
  double h = 0.0;
  for (int i = 0; i < n; i++)
    h -= p[i] * log (p[i] + 1e-10);
  return h;
}

double
rs_jsd (const double *p, const double *q, int n)
{
  double kp = 0.0, kq = 0.0;
  for (int i = 0; i < n; i++)
    {
      double m = MAX (0.5 * (p[i] + q[i]), 1e-10);
      double lm = log (m);
      /* torch kl_div(log m, p) = p (ln p - ln m), 0 where p = 0 */
      if (p[i] > 0.0)
        kp += p[i] * (log (p[i]) - lm);
      if (q[i] > 0.0)
        kq += q[i] * (log (q[i]) - lm);
    }
  return 0.5 * (kp + kq);
}

double
rs_jsd_normalized (const double *p, const double *q, int n)
{
  double denom = log ((double) n) - 0.5 * (rs_entropy_eps (p, n) + rs_entropy_eps (q, n));
  return rs_jsd (p, q, n) / MAX (denom, 1e-6);
}

/* ---- importance from a trace -------------------------------------------- */

/* Adds token (t, l)'s contribution to @acc [E] in @mode; FALSE when there
 * is none (dense layer, nothing recorded). */
static gboolean
add_token (RsImportanceMode mode, int E, const float *z, const int32_t *ids, const float *w, int K,
           double *p, double *acc)
{
  if (mode == RS_IMPORTANCE_MEAN_PROB)
    {
      if (!rs_an_softmax (z, E, p))
        return FALSE;
      for (int e = 0; e < E; e++)
        acc[e] += p[e];
      return TRUE;
    }
  /* Top-k-masked weights renormalised to sum 1 (for the rules whose
   * weights do not already sum to 1, e.g. OLMoE's). */
  double sum = 0.0;
  for (int j = 0; j < K; j++)
    if (ids[j] >= 0 && ids[j] < E)
      sum += w[j];
  if (!(sum > 0.0))
    return FALSE;
  for (int j = 0; j < K; j++)
    if (ids[j] >= 0 && ids[j] < E)
      acc[ids[j]] += w[j] / sum;
  return TRUE;
}

gboolean
rs_importance_from_trace (const RsTrace *tr, int64_t t0, int64_t t1, const uint8_t *include,
                          RsImportanceMode mode, double *out, GError **error)
{
  const int L = tr->n_layer, E = tr->n_expert, K = tr->k_slots;
  if (t0 < 0 || t1 > tr->n_tokens || t1 <= t0)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "token range %" G_GINT64_FORMAT "..%"
                   G_GINT64_FORMAT " is empty or outside the trace", t0, t1);
      return FALSE;
    }
  const float *z = rs_an_logits (tr);
  const float *w = rs_an_route_weights (tr, RS_ROUTES_RAN);
  const int32_t *ids = (const int32_t *) (const void *) tr->topk_ids->data;
  if (mode == RS_IMPORTANCE_MEAN_PROB ? z == NULL : w == NULL)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "importance '%s' needs the %s, which this "
                   "trace does not record", rs_importance_mode_name (mode),
                   mode == RS_IMPORTANCE_MEAN_PROB ? "router logits" : "routing weights");
      return FALSE;
    }
  g_autofree double *p = g_new (double, E);
  gboolean any_token = FALSE;
  for (int l = 0; l < L; l++)
    {
      double *row = out + (size_t) l * E;
      memset (row, 0, sizeof (double) * E);
      int64_t n = 0;
      for (int64_t t = t0; t < t1; t++)
        {
          if (include != NULL && !include[t - t0])
            continue;
          any_token = TRUE;
          size_t i = (size_t) t * L + l;
          n += add_token (mode, E, z ? z + i * E : NULL, ids + i * K, w ? w + i * K : NULL, K, p, row);
        }
      for (int e = 0; e < E; e++)
        row[e] = n > 0 ? row[e] / n : NAN;
    }
  if (!any_token)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "no token of %" G_GINT64_FORMAT "..%"
                   G_GINT64_FORMAT " is included", t0, t1);
      return FALSE;
    }
  return TRUE;
}

/* ---- the accumulator ---------------------------------------------------- */

#define M RS_IMPORTANCE_N_MODES

struct _RsAlignAccum {
  RsAlignResult *r;         /* sums until finish */
  double        *jsd_sq[M]; /* [n_lang, L] sums of squares */
  int64_t       *pair_n;    /* [n_lang, n_lang] */
  double         seconds;
};

RsAlignAccum *
rs_align_accum_new (int n_layer, int n_expert, const uint8_t *has_experts,
                    const char *const *langs, int n_lang, const char *ref_lang)
{
  RsAlignAccum *acc = g_new0 (RsAlignAccum, 1);
  RsAlignResult *r = acc->r = g_new0 (RsAlignResult, 1);
  const int L = n_layer, E = n_expert, N = n_lang;
  r->n_layer = L;
  r->n_expert = E;
  r->n_lang = N;
  r->langs = g_new0 (char *, N + 1);
  r->ref = -1;
  for (int i = 0; i < N; i++)
    {
      r->langs[i] = g_strdup (langs[i]);
      if (ref_lang != NULL && strcmp (langs[i], ref_lang) == 0)
        r->ref = i;
    }
  r->has_experts = g_memdup2 (has_experts, L);
  r->n_seq = g_new0 (int64_t, N);
  r->n_pairs = g_new0 (int64_t, N);
  for (int m = 0; m < M; m++)
    {
      r->jsd[m] = g_new0 (double, (size_t) N * L);
      r->jsd_std[m] = g_new0 (double, (size_t) N * L);
      r->jsd_raw[m] = g_new0 (double, (size_t) N * L);
      r->pair_jsd[m] = g_new0 (double, (size_t) N * N * L);
      r->mean_importance[m] = g_new0 (double, (size_t) N * L * E);
      r->entropy[m] = g_new0 (double, (size_t) N * L);
      acc->jsd_sq[m] = g_new0 (double, (size_t) N * L);
    }
  acc->pair_n = g_new0 (int64_t, (size_t) N * N);
  return acc;
}

void
rs_align_accum_add (RsAlignAccum *acc, const double *const *imp)
{
  double t0 = now_s ();
  RsAlignResult *r = acc->r;
  const int L = r->n_layer, E = r->n_expert, N = r->n_lang;
  r->n_ids++;
  for (int a = 0; a < N; a++)
    {
      if (imp[a] == NULL)
        continue;
      r->n_seq[a]++;
      for (int m = 0; m < M; m++)
        for (int l = 0; l < L; l++)
          {
            if (!r->has_experts[l])
              continue;
            const double *q = imp[a] + ((size_t) m * L + l) * E;
            double *dst = r->mean_importance[m] + ((size_t) a * L + l) * E;
            for (int e = 0; e < E; e++)
              dst[e] += q[e];
            r->entropy[m][a * L + l] += rs_entropy_eps (q, E);
          }
      for (int b = a + 1; b < N; b++)
        {
          if (imp[b] == NULL)
            continue;
          acc->pair_n[a * N + b]++;
          acc->pair_n[b * N + a]++;
          gboolean with_ref = a == r->ref || b == r->ref;
          int other = a == r->ref ? b : a;
          if (with_ref)
            r->n_pairs[other]++;
          for (int m = 0; m < M; m++)
            for (int l = 0; l < L; l++)
              {
                if (!r->has_experts[l])
                  continue;
                const double *p = imp[a] + ((size_t) m * L + l) * E;
                const double *q = imp[b] + ((size_t) m * L + l) * E;
                double raw = rs_jsd (p, q, E);
                double denom = log ((double) E) - 0.5 * (rs_entropy_eps (p, E) + rs_entropy_eps (q, E));
                double jn = raw / MAX (denom, 1e-6);
                r->pair_jsd[m][((size_t) a * N + b) * L + l] += jn;
                r->pair_jsd[m][((size_t) b * N + a) * L + l] += jn;
                if (with_ref)
                  {
                    r->jsd[m][other * L + l] += jn;
                    acc->jsd_sq[m][other * L + l] += jn * jn;
                    r->jsd_raw[m][other * L + l] += raw;
                  }
              }
        }
    }
  acc->seconds += now_s () - t0;
}

RsAlignResult *
rs_align_accum_finish (RsAlignAccum *acc)
{
  double t0 = now_s ();
  RsAlignResult *r = acc->r;
  const int L = r->n_layer, E = r->n_expert, N = r->n_lang;
  for (int m = 0; m < M; m++)
    for (int a = 0; a < N; a++)
      for (int l = 0; l < L; l++)
        {
          size_t i = (size_t) a * L + l;
          gboolean moe = r->has_experts[l];
          int64_t np = r->n_pairs[a];
          if (!moe || a == r->ref || np == 0)
            r->jsd[m][i] = r->jsd_std[m][i] = r->jsd_raw[m][i] = NAN;
          else
            {
              double mean = r->jsd[m][i] / np;
              double var = acc->jsd_sq[m][i] / np - mean * mean;
              r->jsd[m][i] = mean;
              r->jsd_std[m][i] = sqrt (MAX (var, 0.0));
              r->jsd_raw[m][i] /= np;
            }
          int64_t ns = r->n_seq[a];
          r->entropy[m][i] = moe && ns > 0 ? r->entropy[m][i] / ns : NAN;
          for (int e = 0; e < E; e++)
            {
              double *v = &r->mean_importance[m][i * E + e];
              *v = moe && ns > 0 ? *v / ns : NAN;
            }
          for (int b = 0; b < N; b++)
            {
              double *v = &r->pair_jsd[m][((size_t) a * N + b) * L + l];
              int64_t n = acc->pair_n[a * N + b];
              *v = !moe ? NAN : a == b ? 0.0 : n > 0 ? *v / n : NAN;
            }
        }
  r->analysis_seconds += acc->seconds + (now_s () - t0);
  for (int m = 0; m < M; m++)
    g_free (acc->jsd_sq[m]);
  g_free (acc->pair_n);
  g_free (acc);
  return r;
}

void
rs_align_accum_free (RsAlignAccum *acc)
{
  if (acc == NULL)
    return;
  rs_align_result_free (rs_align_accum_finish (acc));
}

void
rs_align_result_free (RsAlignResult *r)
{
  if (r == NULL)
    return;
  g_strfreev (r->langs);
  g_free (r->has_experts);
  g_free (r->n_seq);
  g_free (r->n_pairs);
  for (int m = 0; m < M; m++)
    {
      g_free (r->jsd[m]);
      g_free (r->jsd_std[m]);
      g_free (r->jsd_raw[m]);
      g_free (r->pair_jsd[m]);
      g_free (r->mean_importance[m]);
      g_free (r->entropy[m]);
    }
  g_free (r);
}

/* ---- running a corpus --------------------------------------------------- */

void
rs_align_run_params_init (RsAlignRunParams *p)
{
  memset (p, 0, sizeof *p);
  p->ref_lang = "en";
}

/* Importance sums of the sequence being run, fed by the router observer:
 * nothing of the sequence is stored but these [M, L, E] sums. */
typedef struct {
  int            L, E;
  const uint8_t *include;  /* [n] tokens of the sequence averaged over */
  int64_t        n;
  double        *sum;      /* [M, L, E] */
  int64_t       *n_tok;    /* [M, L] */
  double        *p;        /* [E] */
  double         seconds;  /* spent here */
} SeqSums;

static void
observe (void *data, const RsRouterRecord *rec)
{
  double t0 = now_s ();
  SeqSums *s = data;
  const int E = s->E, l = rec->layer;
  for (int64_t i = 0; i < rec->n_tokens; i++)
    {
      int64_t pos = rec->pos0 + i;
      if (pos >= s->n || !s->include[pos])
        continue;
      double *sp = s->sum + ((size_t) RS_IMPORTANCE_MEAN_PROB * s->L + l) * E;
      if (rs_an_softmax (rec->logits + i * E, E, s->p))
        {
          for (int e = 0; e < E; e++)
            sp[e] += s->p[e];
          s->n_tok[RS_IMPORTANCE_MEAN_PROB * s->L + l]++;
        }
      const RsRouteResult *rt = &rec->routes[i];
      double sum = 0.0;
      for (int j = 0; j < rt->n_selected; j++)
        sum += rt->weights[j];
      if (sum > 0.0)
        {
          double *sw = s->sum + ((size_t) RS_IMPORTANCE_TOPK_WEIGHT * s->L + l) * E;
          for (int j = 0; j < rt->n_selected; j++)
            if (rt->selected[j] >= 0 && rt->selected[j] < E)
              sw[rt->selected[j]] += rt->weights[j] / sum;
          s->n_tok[RS_IMPORTANCE_TOPK_WEIGHT * s->L + l]++;
        }
    }
  s->seconds += now_s () - t0;
}

/* Shared state of the runs over texts. */
typedef struct {
  const RsModel     *model;
  const RsTokenizer *tok;
  RsSession         *session;
  RsLayerControls   *controls;
  const RsIntervention *ivs;
  int                n_ivs;
  gboolean           include_special;
  SeqSums            sums;
  GArray            *ids;      /* int32 */
  GArray            *include;  /* uint8 */
  double             engine_seconds, tokenize_seconds;
  int64_t            n_tokens, n_truncated;
} TextRunner;

static gboolean
runner_init (TextRunner *tr, const RsModel *model, const RsTokenizer *tok,
             const RsAlignRunParams *p, GError **error)
{
  memset (tr, 0, sizeof *tr);
  const RsHparams *hp = rs_model_hparams (model);
  for (int i = 0; i < p->n_ivs; i++)
    if (!rs_intervention_validate (&p->ivs[i], hp, error))
      return FALSE;
  tr->session = rs_session_new (model, &p->session, error);
  if (tr->session == NULL)
    return FALSE;
  tr->model = model;
  tr->tok = tok;
  tr->controls = rs_layer_controls_new (hp);
  tr->ivs = p->ivs;
  tr->n_ivs = p->n_ivs;
  tr->include_special = p->include_special;
  tr->sums.L = hp->n_layer;
  tr->sums.E = hp->n_expert;
  tr->sums.sum = g_new (double, (size_t) M * hp->n_layer * hp->n_expert);
  tr->sums.n_tok = g_new (int64_t, (size_t) M * hp->n_layer);
  tr->sums.p = g_new (double, hp->n_expert);
  tr->ids = g_array_new (FALSE, FALSE, sizeof (int32_t));
  tr->include = g_array_new (FALSE, FALSE, sizeof (uint8_t));
  rs_session_set_router_observer (tr->session, observe, &tr->sums);
  return TRUE;
}

static void
runner_clear (TextRunner *tr)
{
  rs_session_free (tr->session);
  rs_layer_controls_free (tr->controls);
  g_free (tr->sums.sum);
  g_free (tr->sums.n_tok);
  g_free (tr->sums.p);
  if (tr->ids)
    g_array_unref (tr->ids);
  if (tr->include)
    g_array_unref (tr->include);
}

static uint8_t *
model_moe_layers (const RsModel *model)
{
  const RsHparams *hp = rs_model_hparams (model);
  uint8_t *h = g_new0 (uint8_t, hp->n_layer);
  for (uint32_t l = 0; l < hp->n_layer; l++)
    h[l] = rs_model_layer (model, l)->is_moe;
  return h;
}

/* Runs @text as a fresh sequence and writes its importance [M, L, E]
 * (NaN rows for dense layers) to @out. */
static gboolean
runner_run (TextRunner *tr, const char *text, const uint8_t *moe, double *out, GError **error)
{
  const int L = tr->sums.L, E = tr->sums.E;
  double t0 = now_s ();
  g_array_set_size (tr->ids, 0);
  /* Corpus text is data: special-token text in it is not parsed. */
  if (!rs_tokenizer_encode (tr->tok, text, -1, RS_TOKENIZE_ADD_SPECIAL, tr->ids, error))
    return FALSE;
  int n_ctx = rs_session_n_ctx (tr->session);
  if ((int) tr->ids->len > n_ctx)
    {
      g_array_set_size (tr->ids, n_ctx);
      tr->n_truncated++;
    }
  const int32_t *ids = (const int32_t *) (const void *) tr->ids->data;
  int n = tr->ids->len;
  g_array_set_size (tr->include, n);
  uint8_t *inc = (uint8_t *) tr->include->data;
  int32_t bos = rs_tokenizer_bos (tr->tok), eos = rs_tokenizer_eos (tr->tok);
  for (int i = 0; i < n; i++)
    inc[i] = tr->include_special ||
             !(ids[i] == bos || ids[i] == eos || rs_tokenizer_is_control (tr->tok, ids[i]));
  tr->tokenize_seconds += now_s () - t0;

  tr->sums.include = inc;
  tr->sums.n = n;
  memset (tr->sums.sum, 0, sizeof (double) * M * L * E);
  memset (tr->sums.n_tok, 0, sizeof (int64_t) * M * L);
  double obs0 = tr->sums.seconds;
  t0 = now_s ();
  rs_session_truncate (tr->session, 0);
  gboolean ok = rs_an_eval (tr->session, tr->controls, tr->model, tr->ivs, tr->n_ivs, ids, n, 0,
                            NULL, FALSE, error);
  tr->engine_seconds += (now_s () - t0) - (tr->sums.seconds - obs0);
  if (!ok)
    return FALSE;
  tr->n_tokens += n;
  for (int m = 0; m < M; m++)
    for (int l = 0; l < L; l++)
      {
        int64_t c = tr->sums.n_tok[m * L + l];
        const double *s = tr->sums.sum + ((size_t) m * L + l) * E;
        double *o = out + ((size_t) m * L + l) * E;
        for (int e = 0; e < E; e++)
          o[e] = moe[l] && c > 0 ? s[e] / c : (moe[l] ? 1.0 / E : NAN);
      }
  return TRUE;
}

static void
cancel_session (GCancellable *c, gpointer session)
{
  rs_session_cancel (session);
}

static gboolean
check_cancel (GCancellable *c, GError **error)
{
  if (c != NULL && g_cancellable_is_cancelled (c))
    {
      g_set_error (error, RS_ERROR, RS_ERROR_CANCELLED, "cancelled");
      return FALSE;
    }
  return TRUE;
}

RsAlignResult *
rs_align_run (const RsModel *model, const RsTokenizer *tok, const RsCorpus *corpus,
              const RsAlignRunParams *params, RsProgressFunc progress, void *user_data,
              GCancellable *cancellable, GError **error)
{
  RsAlignRunParams def;
  if (params == NULL)
    {
      rs_align_run_params_init (&def);
      params = &def;
    }
  const char *ref = params->ref_lang ? params->ref_lang : "en";
  if (rs_corpus_lang_index (corpus, ref) < 0)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "%s has no sentences in the reference "
                   "language '%s'", corpus->path, ref);
      return NULL;
    }
  const RsHparams *hp = rs_model_hparams (model);
  const int L = hp->n_layer, E = hp->n_expert, N = corpus->langs->len;
  TextRunner run;
  if (!runner_init (&run, model, tok, params, error))
    {
      runner_clear (&run);
      return NULL;
    }
  g_autofree uint8_t *moe = model_moe_layers (model);
  RsAlignAccum *acc = rs_align_accum_new (L, E, moe, (const char *const *) corpus->langs->pdata, N, ref);
  g_autofree double *imp = g_new (double, (size_t) N * M * L * E);
  g_autofree const double **imp_ptr = g_new0 (const double *, N);

  int64_t n_ids = rs_corpus_n_ids (corpus);
  if (params->max_ids > 0)
    n_ids = MIN (n_ids, params->max_ids);
  const int64_t *gs = (const int64_t *) (const void *) corpus->group_start->data;
  int64_t total = gs[n_ids], done = 0;
  gulong handler = cancellable ? g_cancellable_connect (cancellable, G_CALLBACK (cancel_session),
                                                        run.session, NULL) : 0;
  gboolean ok = TRUE;
  for (int64_t g = 0; g < n_ids && ok; g++)
    {
      for (int a = 0; a < N; a++)
        imp_ptr[a] = NULL;
      for (int64_t i = gs[g]; i < gs[g + 1] && ok; i++)
        {
          const RsCorpusEntry *en = &g_array_index (corpus->entries, RsCorpusEntry, i);
          double *dst = imp + (size_t) en->lang * M * L * E;
          ok = check_cancel (cancellable, error) && runner_run (&run, en->text, moe, dst, error);
          if (!ok && error != NULL && *error != NULL && (*error)->code != RS_ERROR_CANCELLED)
            g_prefix_error (error, "%s:%d: ", corpus->path, en->line);
          imp_ptr[en->lang] = dst;
          done++;
          if (ok && progress != NULL)
            progress (user_data, done, total);
        }
      if (ok)
        rs_align_accum_add (acc, imp_ptr);
    }
  if (handler)
    g_cancellable_disconnect (cancellable, handler);
  RsAlignResult *r = rs_align_accum_finish (acc);
  r->n_tokens = run.n_tokens;
  r->n_truncated = run.n_truncated;
  r->engine_seconds = run.engine_seconds;
  r->analysis_seconds += run.sums.seconds;
  r->tokenize_seconds = run.tokenize_seconds;
  runner_clear (&run);
  if (!ok)
    {
      rs_align_result_free (r);
      return NULL;
    }
  return r;
}

gboolean
rs_importance_run_texts (const RsModel *model, const RsTokenizer *tok, const char *const *texts,
                         int64_t n_texts, const RsAlignRunParams *params, double *out,
                         RsProgressFunc progress, void *user_data, GCancellable *cancellable,
                         GError **error)
{
  RsAlignRunParams def;
  if (params == NULL)
    {
      rs_align_run_params_init (&def);
      params = &def;
    }
  const RsHparams *hp = rs_model_hparams (model);
  const int L = hp->n_layer, E = hp->n_expert;
  if (n_texts <= 0)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "no texts");
      return FALSE;
    }
  TextRunner run;
  if (!runner_init (&run, model, tok, params, error))
    {
      runner_clear (&run);
      return FALSE;
    }
  g_autofree uint8_t *moe = model_moe_layers (model);
  g_autofree double *one = g_new (double, (size_t) M * L * E);
  memset (out, 0, sizeof (double) * M * L * E);
  gulong handler = cancellable ? g_cancellable_connect (cancellable, G_CALLBACK (cancel_session),
                                                        run.session, NULL) : 0;
  gboolean ok = TRUE;
  for (int64_t i = 0; i < n_texts && ok; i++)
    {
      ok = check_cancel (cancellable, error) && runner_run (&run, texts[i], moe, one, error);
      if (!ok)
        break;
      for (size_t j = 0; j < (size_t) M * L * E; j++)
        out[j] += one[j];
      if (progress != NULL)
        progress (user_data, i + 1, n_texts);
    }
  if (handler)
    g_cancellable_disconnect (cancellable, handler);
  for (size_t j = 0; j < (size_t) M * L * E; j++)
    out[j] /= n_texts;
  runner_clear (&run);
  return ok;
}

/* ---- specialised and task experts --------------------------------------- */

void
rs_align_middle_layers (int n_layer, int *first, int *last)
{
  *first = (int) floor (7.0 * n_layer / 48.0);
  *last = (int) ceil (34.0 * n_layer / 48.0) - 1;
  *last = CLAMP (*last, *first, MAX (n_layer - 1, 0));
}

static void
layer_range (int n_layer, int first, int last, int *f, int *l)
{
  if (first < 0 || last < 0)
    rs_align_middle_layers (n_layer, f, l);
  else
    {
      *f = CLAMP (first, 0, n_layer - 1);
      *l = CLAMP (last, *f, n_layer - 1);
    }
}

void
rs_specialised_params_init (RsSpecialisedParams *p)
{
  memset (p, 0, sizeof *p);
  p->mode = RS_IMPORTANCE_MEAN_PROB;
  p->layer_first = p->layer_last = -1;
  p->n_sigma = 3.0;
}

/* The paper's down-weighted languages (FLORES codes and their ISO 639-1
 * forms where one exists). */
static double
default_weight (const char *lang)
{
  static const char *const half[] = { "bam", "bam_Latn", "fra", "fra_Latn", "fr", "ary",
                                      "ary_Arab", "zho", "zho_Hans", "zh", "ory", "ory_Orya",
                                      "asm", "asm_Beng" };
  for (gsize i = 0; i < G_N_ELEMENTS (half); i++)
    if (strcmp (lang, half[i]) == 0)
      return 0.5;
  return 1.0;
}

static double
lang_weight (const RsSpecialisedParams *p, const char *lang)
{
  if (p->weight_langs == NULL)
    return default_weight (lang);
  for (int i = 0; i < p->n_weights; i++)
    if (strcmp (p->weight_langs[i], lang) == 0)
      return p->weights[i];
  return 1.0;
}

/* Population std of @v [n]. */
static double
std_pop (const double *v, int n)
{
  double mean = 0.0, var = 0.0;
  for (int i = 0; i < n; i++)
    mean += v[i];
  mean /= n;
  for (int i = 0; i < n; i++)
    var += (v[i] - mean) * (v[i] - mean);
  return sqrt (var / n);
}

GArray *
rs_align_specialised_experts (const RsAlignResult *r, const RsSpecialisedParams *params)
{
  RsSpecialisedParams def;
  if (params == NULL)
    {
      rs_specialised_params_init (&def);
      params = &def;
    }
  GArray *out = g_array_new (FALSE, FALSE, sizeof (RsSpecialisedExpert));
  const int L = r->n_layer, E = r->n_expert, N = r->n_lang;
  if (r->ref < 0 || L == 0)
    return out;
  int f, last;
  layer_range (L, params->layer_first, params->layer_last, &f, &last);
  const double *mi = r->mean_importance[params->mode];
  g_autofree double *diff = g_new (double, E);
  g_autofree double *avg = g_new (double, E);
  for (int l = f; l <= last; l++)
    {
      if (!r->has_experts[l])
        continue;
      const double *ref = mi + ((size_t) r->ref * L + l) * E;
      double wsum = 0.0;
      memset (avg, 0, sizeof (double) * E);
      for (int a = 0; a < N; a++)
        {
          if (a == r->ref || r->n_seq[a] == 0)
            continue;
          const double *q = mi + ((size_t) a * L + l) * E;
          double w = lang_weight (params, r->langs[a]);
          for (int e = 0; e < E; e++)
            {
              diff[e] = q[e] - ref[e];
              avg[e] += w * diff[e];
            }
          wsum += w;
          double thr = params->n_sigma * std_pop (diff, E);
          for (int e = 0; e < E; e++)
            if (diff[e] > thr)
              {
                RsSpecialisedExpert se = { l, e, a, diff[e], thr };
                g_array_append_val (out, se);
              }
        }
      if (wsum > 0.0)
        {
          for (int e = 0; e < E; e++)
            avg[e] /= wsum;
          double thr = params->n_sigma * std_pop (avg, E);
          for (int e = 0; e < E; e++)
            if (avg[e] > thr)
              {
                RsSpecialisedExpert se = { l, e, -1, avg[e], thr };
                g_array_append_val (out, se);
              }
        }
    }
  return out;
}

void
rs_task_expert_params_init (RsTaskExpertParams *p)
{
  memset (p, 0, sizeof *p);
  p->mode = RS_IMPORTANCE_MEAN_PROB;
  p->layer_first = p->layer_last = -1;
  p->top_n = 0;
  p->min_ratio = 1.0;
  p->steer_kind = RS_INTERVENE_BIAS;
  p->steer_value = 1.0;
}

static int
cmp_task (const void *a, const void *b)
{
  const RsTaskExpert *x = a, *y = b;
  if (x->layer != y->layer)
    return x->layer - y->layer;
  if (x->score != y->score)
    return x->score > y->score ? -1 : 1;
  return x->expert - y->expert;
}

GArray *
rs_task_experts (const double *task, const double *baseline, int L, int E, int k,
                 const uint8_t *has_experts, const RsTaskExpertParams *params)
{
  RsTaskExpertParams def;
  if (params == NULL)
    {
      rs_task_expert_params_init (&def);
      params = &def;
    }
  GArray *out = g_array_new (FALSE, FALSE, sizeof (RsTaskExpert));
  int f, last;
  layer_range (L, params->layer_first, params->layer_last, &f, &last);
  int n = params->top_n > 0 ? params->top_n : MAX (k, 1);
  n = MIN (n, MIN (E, RS_MAX_EXPERTS_USED));
  g_autoptr (GArray) cand = g_array_new (FALSE, FALSE, sizeof (RsTaskExpert));
  for (int l = f; l <= last && L > 0; l++)
    {
      if (has_experts != NULL && !has_experts[l])
        continue;
      g_array_set_size (cand, 0);
      for (int e = 0; e < E; e++)
        {
          double q = task[(size_t) l * E + e];
          if (!(q > params->min_ratio / E))
            continue;
          RsTaskExpert te = { l, e, q, baseline ? q - baseline[(size_t) l * E + e] : q };
          if (baseline != NULL && !(te.score > 0.0))
            continue;
          g_array_append_val (cand, te);
        }
      g_array_sort (cand, cmp_task);
      g_array_append_vals (out, cand->data, MIN ((int) cand->len, n));
    }
  return out;
}

GArray *
rs_task_expert_interventions (const GArray *experts, const RsTaskExpertParams *params)
{
  RsTaskExpertParams def;
  if (params == NULL)
    {
      rs_task_expert_params_init (&def);
      params = &def;
    }
  GArray *ivs = g_array_new (FALSE, TRUE, sizeof (RsIntervention));
  for (guint i = 0; i < experts->len; i++)
    {
      const RsTaskExpert *te = &g_array_index (experts, RsTaskExpert, i);
      RsIntervention *iv = ivs->len > 0 ? &g_array_index (ivs, RsIntervention, ivs->len - 1) : NULL;
      if (iv == NULL || iv->layer_first != te->layer || iv->n_experts >= RS_MAX_EXPERTS_USED)
        {
          RsIntervention nv = { .kind = params->steer_kind, .layer_first = te->layer,
                                .layer_last = te->layer, .value = (float) params->steer_value,
                                .from_token = 0 };
          g_array_append_val (ivs, nv);
          iv = &g_array_index (ivs, RsIntervention, ivs->len - 1);
        }
      iv->experts[iv->n_experts++] = te->expert;
    }
  return ivs;
}
