/* SPDX-License-Identifier: GPL-3.0-or-later */
/* rs-ppl.c: teacher-forced perplexity with and without interventions,
 * and traces of texts longer than the context. */
#include <math.h>
#include <string.h>

#include "rs-analysis-private.h"
#include "rs-compare.h"
#include "rs-trace-private.h"

/* ---- evaluation under interventions ------------------------------------- */

static int64_t
next_change (const RsIntervention *ivs, int n, int64_t pos)
{
  int64_t next = G_MAXINT64;
  for (int i = 0; i < n; i++)
    if (ivs[i].from_token > pos && ivs[i].from_token < next)
      next = ivs[i].from_token;
  return next;
}

gboolean
rs_an_eval (RsSession *session, RsLayerControls *controls, const RsModel *model,
            const RsIntervention *ivs, int n_ivs, const int32_t *tokens, int n, int64_t pos0,
            float *logits, gboolean all, GError **error)
{
  const RsHparams *hp = rs_model_hparams (model);
  int64_t pos = pos0, end_all = pos0 + n;
  while (pos < end_all)
    {
      int64_t end = MIN (end_all, next_change (ivs, n_ivs, pos));
      rs_layer_controls_build (controls, ivs, n_ivs, pos);
      for (uint32_t l = 0; l < hp->n_layer; l++)
        if (rs_model_layer (model, l)->is_moe &&
            !rs_session_set_router_control (session, l, rs_layer_controls_get (controls, l), error))
          return FALSE;
      float *out = logits == NULL ? NULL : all ? logits + (size_t) (pos - pos0) * hp->n_vocab : logits;
      if (!rs_session_eval (session, tokens + (pos - pos0), (int) (end - pos), out, all, error))
        return FALSE;
      pos = end;
    }
  return TRUE;
}

/* ---- chunks ------------------------------------------------------------- */

/* The text's tokens without special tokens; chunks of @n_ctx tokens, the
 * first being BOS when the model's metadata adds one. */
typedef struct {
  GArray  *ids;      /* int32 text tokens */
  int32_t  bos;      /* -1: none */
  int      per;      /* text tokens per chunk */
  int64_t  n_chunks;
  GArray  *chunk;    /* int32 the current chunk */
} Chunks;

static gboolean
chunks_init (Chunks *c, const RsTokenizer *tok, const char *text, int n_ctx, int max_chunks,
             GError **error)
{
  memset (c, 0, sizeof *c);
  c->ids = g_array_new (FALSE, FALSE, sizeof (int32_t));
  c->chunk = g_array_new (FALSE, FALSE, sizeof (int32_t));
  /* The text is data: special-token text in it stays text. */
  if (!rs_tokenizer_encode (tok, text, -1, RS_TOKENIZE_NONE, c->ids, error))
    return FALSE;
  c->bos = rs_tokenizer_adds_bos (tok) ? rs_tokenizer_bos (tok) : -1;
  c->per = n_ctx - (c->bos >= 0 ? 1 : 0);
  if (c->per < 1)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "a context of %d tokens is too small", n_ctx);
      return FALSE;
    }
  c->n_chunks = ((int64_t) c->ids->len + c->per - 1) / c->per;
  if (max_chunks > 0)
    c->n_chunks = MIN (c->n_chunks, max_chunks);
  if (c->n_chunks == 0)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "the text has no tokens");
      return FALSE;
    }
  return TRUE;
}

/* Fills c->chunk with chunk @i. */
static void
chunks_get (Chunks *c, int64_t i)
{
  g_array_set_size (c->chunk, 0);
  if (c->bos >= 0)
    g_array_append_val (c->chunk, c->bos);
  int64_t a = i * c->per, b = MIN ((int64_t) c->ids->len, a + c->per);
  g_array_append_vals (c->chunk, &g_array_index (c->ids, int32_t, a), (guint) (b - a));
}

static void
chunks_clear (Chunks *c)
{
  if (c->ids)
    g_array_unref (c->ids);
  if (c->chunk)
    g_array_unref (c->chunk);
}

static void
cancel_session (GCancellable *c, gpointer session)
{
  rs_session_cancel (session);
}

static void
cancel_run (GCancellable *c, gpointer run)
{
  rs_run_cancel (run);
}

static gboolean
cancelled (GCancellable *c, GError **error)
{
  if (c != NULL && g_cancellable_is_cancelled (c))
    {
      g_set_error (error, RS_ERROR, RS_ERROR_CANCELLED, "cancelled");
      return TRUE;
    }
  return FALSE;
}

/* ---- perplexity --------------------------------------------------------- */

void
rs_ppl_params_init (RsPplParams *p)
{
  memset (p, 0, sizeof *p);
}

/* -log softmax(@row)[@target] */
static double
nll_of (const float *row, int V, int32_t target)
{
  double max = row[0];
  for (int i = 1; i < V; i++)
    max = MAX (max, (double) row[i]);
  double z = 0.0;
  for (int i = 0; i < V; i++)
    z += exp ((double) row[i] - max);
  return max + log (z) - row[target];
}

static int32_t
argmax (const float *row, int V)
{
  int32_t best = 0;
  for (int i = 1; i < V; i++)
    if (row[i] > row[best])
      best = i;
  return best;
}

gboolean
rs_ppl_compute (const RsModel *model, const RsTokenizer *tok, const char *text,
                const RsPplParams *params, const RsIntervention *ivs, int n_ivs,
                RsProgressFunc progress, void *user_data, GCancellable *cancellable,
                RsPplResult *out, GError **error)
{
  RsPplParams def;
  if (params == NULL)
    {
      rs_ppl_params_init (&def);
      params = &def;
    }
  memset (out, 0, sizeof *out);
  const RsHparams *hp = rs_model_hparams (model);
  const int V = hp->n_vocab;
  for (int i = 0; i < n_ivs; i++)
    if (!rs_intervention_validate (&ivs[i], hp, error))
      return FALSE;
  gint64 t_start = g_get_monotonic_time ();

  g_autoptr (RsSession) base = rs_session_new (model, &params->session, error);
  if (base == NULL)
    return FALSE;
  g_autoptr (RsSession) steer = NULL;
  if (n_ivs > 0 && (steer = rs_session_new (model, &params->session, error)) == NULL)
    return FALSE;
  g_autoptr (RsLayerControls) controls = rs_layer_controls_new (hp);

  Chunks ch;
  if (!chunks_init (&ch, tok, text, rs_session_n_ctx (base), params->max_chunks, error))
    {
      chunks_clear (&ch);
      return FALSE;
    }
  /* All-logits buffers of at most ~256 MiB each: sub-batches of sb tokens. */
  int sb = (int) CLAMP ((256 << 20) / ((int64_t) V * 4), 16, rs_session_n_ctx (base));
  g_autofree float *la = g_new (float, (size_t) sb * V);
  g_autofree float *lb = steer ? g_new (float, (size_t) sb * V) : NULL;
  gulong h1 = cancellable ? g_cancellable_connect (cancellable, G_CALLBACK (cancel_session), base, NULL) : 0;
  gulong h2 = cancellable && steer ? g_cancellable_connect (cancellable, G_CALLBACK (cancel_session), steer, NULL) : 0;

  double nll = 0.0, nll_s = 0.0, kl = 0.0;
  int64_t n_scored = 0, agree = 0;
  gboolean ok = TRUE;
  for (int64_t c = 0; c < ch.n_chunks && ok; c++)
    {
      chunks_get (&ch, c);
      const int32_t *ids = (const int32_t *) (const void *) ch.chunk->data;
      const int n = ch.chunk->len;
      rs_session_truncate (base, 0);
      if (steer)
        rs_session_truncate (steer, 0);
      for (int a = 0; a < n && ok; a += sb)
        {
          int b = MIN (n, a + sb);
          ok = !cancelled (cancellable, error) &&
               rs_an_eval (base, controls, model, NULL, 0, ids + a, b - a, a, la, TRUE, error) &&
               (steer == NULL ||
                rs_an_eval (steer, controls, model, ivs, n_ivs, ids + a, b - a, a, lb, TRUE, error));
          if (!ok)
            break;
          /* Row i predicts token i + 1 of the chunk. */
          for (int i = a; i < b && i + 1 < n; i++)
            {
              const float *ra = la + (size_t) (i - a) * V;
              nll += nll_of (ra, V, ids[i + 1]);
              if (steer)
                {
                  const float *rb = lb + (size_t) (i - a) * V;
                  nll_s += nll_of (rb, V, ids[i + 1]);
                  kl += rs_kl_logits (ra, rb, V);
                  agree += argmax (ra, V) == argmax (rb, V);
                }
              n_scored++;
            }
        }
      out->n_chunks++;
      if (ok && progress != NULL)
        progress (user_data, c + 1, ch.n_chunks);
    }
  if (h1)
    g_cancellable_disconnect (cancellable, h1);
  if (h2)
    g_cancellable_disconnect (cancellable, h2);
  chunks_clear (&ch);
  if (!ok)
    return FALSE;
  if (n_scored == 0)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "the text is too short: no token to score");
      return FALSE;
    }
  out->n_scored = n_scored;
  out->nll = nll / n_scored;
  out->ppl = exp (out->nll);
  out->steered = steer != NULL;
  if (steer)
    {
      out->nll_steered = nll_s / n_scored;
      out->ppl_steered = exp (out->nll_steered);
      out->kl = kl / n_scored;
      out->top1_agree = (double) agree / n_scored;
    }
  else
    {
      out->nll_steered = out->ppl_steered = out->kl = out->top1_agree = NAN;
    }
  out->seconds = (g_get_monotonic_time () - t_start) / 1e6;
  return TRUE;
}

/* ---- traces of long texts ----------------------------------------------- */

/* Appends every token of @src to @dst (same dimensions and arrays). */
static void
trace_append (RsTrace *dst, const RsTrace *src)
{
  int64_t t0 = rs_trace_append_tokens (dst, NULL, src->n_tokens, TRUE);
  for (int i = 0; i < RS_TRACE_N_ARRAYS; i++)
    {
      const RsTraceArrayInfo *info = &rs_trace_arrays[i];
      GArray *d = rs_trace_array (dst, info);
      const GArray *s = rs_trace_array (src, info);
      int64_t stride = rs_trace_array_stride (dst, info);
      size_t bytes = (size_t) (src->n_tokens * stride) * rs_trace_elem_size (info->elem);
      if (!rs_trace_records (dst, i) || s->len * rs_trace_elem_size (info->elem) < bytes)
        continue;
      memcpy (d->data + (size_t) (t0 * stride) * rs_trace_elem_size (info->elem), s->data, bytes);
    }
  for (int64_t t = 0; t < src->n_tokens; t++)
    {
      g_free (g_ptr_array_index (dst->token_text, t0 + t));
      g_ptr_array_index (dst->token_text, t0 + t) = g_strdup (g_ptr_array_index (src->token_text, t));
    }
}

RsTrace *
rs_trace_from_text (const RsModel *model, const RsTokenizer *tok, const char *text,
                    const RsRunParams *params, const RsIntervention *ivs, int n_ivs,
                    int max_chunks, GArray *seq_starts, RsProgressFunc progress, void *user_data,
                    GCancellable *cancellable, GError **error)
{
  g_autoptr (RsRun) run = rs_run_new (model, tok, params, error);
  if (run == NULL || !rs_run_set_interventions (run, ivs, n_ivs, error))
    return NULL;
  RsTrace *rt = rs_run_trace (run);
  const gboolean full = !(params != NULL && params->no_probes);
  g_autoptr (RsTrace) out = rs_trace_new (rt->n_layer, rt->n_expert, rt->k_model, rt->k_slots, full);
  Chunks ch;
  if (!chunks_init (&ch, tok, text, rs_session_n_ctx (rs_run_session (run)), max_chunks, error))
    {
      chunks_clear (&ch);
      return NULL;
    }
  gulong h = cancellable ? g_cancellable_connect (cancellable, G_CALLBACK (cancel_run), run, NULL) : 0;
  gboolean ok = TRUE;
  for (int64_t c = 0; c < ch.n_chunks && ok; c++)
    {
      chunks_get (&ch, c);
      rs_trace_truncate (rt, 0);
      rs_session_truncate (rs_run_session (run), 0);
      ok = !cancelled (cancellable, error) &&
           rs_run_prompt_ids (run, (const int32_t *) (const void *) ch.chunk->data, ch.chunk->len, error);
      if (!ok)
        break;
      if (seq_starts != NULL)
        g_array_append_val (seq_starts, out->n_tokens);
      trace_append (out, rt);
      if (progress != NULL)
        progress (user_data, c + 1, ch.n_chunks);
    }
  if (h)
    g_cancellable_disconnect (cancellable, h);
  chunks_clear (&ch);
  if (!ok)
    return NULL;
  rs_run_update_metadata (run, NULL);
  rs_trace_set_metadata (out, rt->metadata_json);
  return g_steal_pointer (&out);
}
