/* rs-run.c
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "rs-run.h"

#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

#include "rs-config.h"
#include "rs-error.h"

struct _RsRun {
  const RsModel     *model;
  const RsHparams   *hp;
  const RsTokenizer *tok;
  RsRunParams        params;
  RsSession         *session;
  RsSampler         *sampler;
  RsTrace           *trace;
  RsLayerControls   *controls;
  GArray            *ivs;        /* RsIntervention */
  int                n_applied;  /* interventions in force in the session; -1: rebuild */
  float             *logits;     /* [n_vocab] after the last token */
  float              logits_max, logits_log_z; /* their softmax, for the probes */
  gboolean           have_logits;
  double             prefill_s, decode_s;
  int64_t            prefill_n, decode_n;
};

/* ---- recording ---------------------------------------------------------- */

static void
record_router (void *data, const RsRouterRecord *rec)
{
  RsRun *run = data;
  RsTrace *tr = run->trace;
  const int L = tr->n_layer, E = tr->n_expert, K = tr->k_slots, l = rec->layer;
  const gboolean full = tr->router_logits->len > 0;

  for (int64_t i = 0; i < rec->n_tokens; i++)
    {
      int64_t t = rec->pos0 + i;
      if (t >= tr->n_tokens)
        return;
      const RsRouteResult *r = &rec->routes[i];
      const RsRouteResult *b = rec->routes_base ? &rec->routes_base[i] : r;
      int32_t *ids = &g_array_index (tr->topk_ids, int32_t, (t * L + l) * K);
      int n = MIN (r->n_selected, K);
      for (int j = 0; j < K; j++)
        ids[j] = j < n ? r->selected[j] : -1;
      if (!full)
        continue;
      float *w = &g_array_index (tr->topk_weights, float, (t * L + l) * K);
      int32_t *bids = &g_array_index (tr->base_topk_ids, int32_t, (t * L + l) * K);
      float *bw = &g_array_index (tr->base_topk_weights, float, (t * L + l) * K);
      float *mx = &g_array_index (tr->expert_out_maxabs, float, (t * L + l) * K);
      int32_t *ch = &g_array_index (tr->expert_out_channel, int32_t, (t * L + l) * K);
      int nb = MIN (b->n_selected, K);
      for (int j = 0; j < K; j++)
        {
          w[j] = j < n ? r->weights[j] : 0.0f;
          bids[j] = j < nb ? b->selected[j] : -1;
          bw[j] = j < nb ? b->weights[j] : 0.0f;
          mx[j] = j < n ? rec->expert_out_maxabs[i * RS_MAX_EXPERTS_USED + j] : NAN;
          ch[j] = j < n ? rec->expert_out_argmax[i * RS_MAX_EXPERTS_USED + j] : -1;
        }
      memcpy (&g_array_index (tr->router_logits, float, (t * L + l) * E),
              rec->logits + i * E, E * sizeof (float));
      memcpy (&g_array_index (tr->router_scores, float, (t * L + l) * E),
              rec->scores + i * E, E * sizeof (float));
      g_array_index (tr->resid_maxabs, float, t * L + l) = rec->resid_maxabs[i];
      g_array_index (tr->shared_gate, float, t * L + l) =
        rec->shared_gate ? rec->shared_gate[i] : NAN;
    }
}

/* The text a token shows in the strip: its bytes, with bytes that do not
 * form complete UTF-8 characters written as <0xNN>. */
static char *
token_display_text (const RsTokenizer *tok, int32_t id)
{
  g_autoptr (GString) bytes = g_string_new (NULL);
  rs_tokenizer_token_bytes (tok, id, RS_TOKEN_BYTES_SPECIAL, bytes);
  GString *out = g_string_new (NULL);
  const char *p = bytes->str, *end = bytes->str + bytes->len;
  while (p < end)
    {
      const char *valid_end;
      g_utf8_validate (p, end - p, &valid_end);
      g_string_append_len (out, p, valid_end - p);
      p = valid_end;
      if (p < end)
        {
          g_string_append_printf (out, "<0x%02X>", (guint8) *p);
          p++;
        }
    }
  return g_string_free (out, FALSE);
}

/* ---- setup -------------------------------------------------------------- */

RsRun *
rs_run_new (const RsModel *model, const RsTokenizer *tok, const RsRunParams *params,
            GError **error)
{
  const RsHparams *hp = rs_model_hparams (model);
  if (rs_tokenizer_n_vocab (tok) > (int32_t) hp->n_vocab)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_FORMAT, "%s: the tokenizer has %d tokens but the "
                   "embedding only %u rows", rs_gguf_path (rs_model_gguf (model)),
                   rs_tokenizer_n_vocab (tok), hp->n_vocab);
      return NULL;
    }
  RsSession *session = rs_session_new (model, params ? &params->session : NULL, error);
  if (session == NULL)
    return NULL;
  RsRun *run = g_new0 (RsRun, 1);
  run->model = model;
  run->hp = hp;
  run->tok = tok;
  if (params != NULL)
    run->params = *params;
  run->session = session;
  run->sampler = rs_sampler_new (&run->params.sampler, hp->n_vocab);
  /* Room for interventions that select more experts than the model. */
  int k_slots = MIN ((int) hp->n_expert, MIN (RS_MAX_EXPERTS_USED, MAX (2 * (int) hp->n_expert_used, 16)));
  run->trace = rs_trace_new (hp->n_layer, hp->n_expert, hp->n_expert_used, k_slots,
                             !run->params.no_probes);
  run->controls = rs_layer_controls_new (hp);
  run->ivs = g_array_new (FALSE, FALSE, sizeof (RsIntervention));
  run->logits = g_new0 (float, hp->n_vocab);
  run->n_applied = -1;
  if (!run->params.no_probes)
    rs_session_set_router_observer (session, record_router, run);
  return run;
}

void
rs_run_free (RsRun *run)
{
  if (run == NULL)
    return;
  rs_session_free (run->session);
  rs_sampler_free (run->sampler);
  rs_trace_free (run->trace);
  rs_layer_controls_free (run->controls);
  g_array_unref (run->ivs);
  g_free (run->logits);
  g_free (run);
}

gboolean
rs_run_set_interventions (RsRun *run, const RsIntervention *ivs, int n, GError **error)
{
  for (int i = 0; i < n; i++)
    if (!rs_intervention_validate (&ivs[i], run->hp, error))
      return FALSE;
  g_array_set_size (run->ivs, 0);
  g_array_append_vals (run->ivs, ivs, n);
  run->n_applied = -1;
  return TRUE;
}

const RsIntervention *
rs_run_interventions (const RsRun *run, int *n)
{
  *n = run->ivs->len;
  return (const RsIntervention *) run->ivs->data;
}

/* Sets the session's router controls for position @pos. The set in force
 * only grows with the position (each intervention starts at its
 * from_token), so the controls are rebuilt only when that count changes. */
static void
apply_controls (RsRun *run, int64_t pos)
{
  int n_active = 0;
  for (guint i = 0; i < run->ivs->len; i++)
    n_active += g_array_index (run->ivs, RsIntervention, i).from_token <= pos;
  if (n_active == run->n_applied)
    return;
  run->n_applied = n_active;
  rs_layer_controls_build (run->controls, (const RsIntervention *) run->ivs->data,
                           run->ivs->len, pos);
  for (uint32_t l = 0; l < run->hp->n_layer; l++)
    if (rs_model_layer (run->model, l)->is_moe)
      rs_session_set_router_control (run->session, l, rs_layer_controls_get (run->controls, l), NULL);
}

/* The next position after @pos where the controls change, or G_MAXINT64. */
static int64_t
next_change (RsRun *run, int64_t pos)
{
  int64_t next = G_MAXINT64;
  for (guint i = 0; i < run->ivs->len; i++)
    {
      int64_t f = g_array_index (run->ivs, RsIntervention, i).from_token;
      if (f > pos && f < next)
        next = f;
    }
  return next;
}

/* Evaluates trace tokens [from, to) in batches that do not straddle a
 * change of interventions; leaves the last token's logits. */
static gboolean
eval_range (RsRun *run, int64_t from, int64_t to, GError **error)
{
  const int32_t *ids = (const int32_t *) run->trace->token_ids->data;
  int64_t pos = from;
  while (pos < to)
    {
      int64_t end = MIN (to, next_change (run, pos));
      apply_controls (run, pos);
      if (!rs_session_eval (run->session, ids + pos, (int) (end - pos), run->logits, FALSE, error))
        return FALSE;
      pos = end;
    }
  run->have_logits = TRUE;
  return TRUE;
}

/* After each evaluation: the next-token distribution's entropy, and its
 * normaliser, kept for the probability of the token chosen next. One
 * pass over the vocabulary; nothing without probes. */
static void
record_entropy (RsRun *run, int64_t t)
{
  if (run->trace->next_entropy->len == 0)
    return;
  float entropy;
  rs_logits_stats (run->logits, run->hp->n_vocab, &run->logits_max, &run->logits_log_z, &entropy);
  g_array_index (run->trace->next_entropy, float, t) = entropy;
}

gboolean
rs_run_prompt_ids (RsRun *run, const int32_t *ids, int n, GError **error)
{
  if (run->trace->n_tokens != 0)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "the run already has a prompt");
      return FALSE;
    }
  if (n <= 0)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "the prompt has no tokens");
      return FALSE;
    }
  int64_t first = rs_trace_append_tokens (run->trace, ids, n, TRUE);
  for (int i = 0; i < n; i++)
    g_ptr_array_index (run->trace->token_text, first + i) = token_display_text (run->tok, ids[i]);
  gint64 t0 = g_get_monotonic_time ();
  if (!eval_range (run, 0, n, error))
    {
      rs_trace_truncate (run->trace, 0);
      run->have_logits = FALSE;
      return FALSE;
    }
  run->prefill_s += (g_get_monotonic_time () - t0) / 1e6;
  run->prefill_n += n;
  record_entropy (run, n - 1);
  return TRUE;
}

gboolean
rs_run_prompt_text (RsRun *run, const char *text, GError **error)
{
  g_autoptr (GArray) ids = g_array_new (FALSE, FALSE, sizeof (int32_t));
  if (!rs_tokenizer_encode (run->tok, text, -1, RS_TOKENIZE_ADD_SPECIAL | RS_TOKENIZE_PARSE_SPECIAL,
                            ids, error))
    return FALSE;
  if ((int64_t) ids->len > rs_session_n_ctx (run->session))
    {
      g_set_error (error, RS_ERROR, RS_ERROR_RESOURCE, "the prompt has %u tokens, more than the "
                   "context of %d (it needs -c %u or more)", ids->len,
                   rs_session_n_ctx (run->session), ids->len);
      return FALSE;
    }
  return rs_run_prompt_ids (run, (const int32_t *) ids->data, ids->len, error);
}

gboolean
rs_run_step (RsRun *run, int32_t forced, int32_t *out, GError **error)
{
  if (!run->have_logits)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "no prompt has been run");
      return FALSE;
    }
  if (run->trace->n_tokens >= rs_session_n_ctx (run->session))
    {
      g_set_error (error, RS_ERROR, RS_ERROR_RESOURCE, "the context of %d tokens is full",
                   rs_session_n_ctx (run->session));
      return FALSE;
    }
  if (forced >= 0 && (uint32_t) forced >= run->hp->n_vocab)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "token id %d is outside the "
                   "vocabulary", forced);
      return FALSE;
    }
  int32_t next = forced >= 0 ? forced : rs_sampler_sample (run->sampler, run->logits, NULL, NULL);
  int64_t t = rs_trace_append_tokens (run->trace, &next, 1, FALSE);
  g_ptr_array_index (run->trace->token_text, t) = token_display_text (run->tok, next);
  if (run->trace->token_prob->len > 0)
    g_array_index (run->trace->token_prob, float, t) =
      expf (run->logits[next] - run->logits_max - run->logits_log_z);

  gint64 t0 = g_get_monotonic_time ();
  if (!eval_range (run, t, t + 1, error))
    {
      rs_trace_truncate (run->trace, t);
      return FALSE;
    }
  run->decode_s += (g_get_monotonic_time () - t0) / 1e6;
  run->decode_n++;
  record_entropy (run, t);
  if (out != NULL)
    *out = next;
  return TRUE;
}

gboolean
rs_run_replay (RsRun *run, GError **error)
{
  int64_t n = run->trace->n_tokens;
  if (n == 0)
    return TRUE;
  rs_session_truncate (run->session, 0);
  run->n_applied = -1;
  if (!eval_range (run, 0, n, error))
    return FALSE;
  record_entropy (run, n - 1);
  return TRUE;
}

const float *rs_run_logits (const RsRun *run) { return run->logits; }
RsTrace *rs_run_trace (const RsRun *run) { return run->trace; }
RsSession *rs_run_session (const RsRun *run) { return run->session; }
const RsModel *rs_run_model (const RsRun *run) { return run->model; }
const RsTokenizer *rs_run_tokenizer (const RsRun *run) { return run->tok; }
void rs_run_cancel (RsRun *run) { rs_session_cancel (run->session); }

gboolean
rs_run_at_eog (const RsRun *run)
{
  const RsTrace *tr = run->trace;
  return tr->n_tokens > 0 &&
         !g_array_index (tr->is_prompt, uint8_t, tr->n_tokens - 1) &&
         rs_tokenizer_is_eog (run->tok, g_array_index (tr->token_ids, int32_t, tr->n_tokens - 1));
}

void
rs_run_speed (const RsRun *run, double *prefill, double *decode)
{
  *prefill = run->prefill_s > 0 ? run->prefill_n / run->prefill_s : 0.0;
  *decode = run->decode_s > 0 ? run->decode_n / run->decode_s : 0.0;
}

/* A fingerprint of the model file without reading all its weights:
 * SHA-256 over the file size and its first 16 MiB (header, metadata,
 * tensor table and the first weights). */
static char *
model_fingerprint (const RsModel *model)
{
  const RsGguf *g = rs_model_gguf (model);
  g_autoptr (GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
  uint64_t size = rs_gguf_file_size (g);
  g_checksum_update (sum, (const guchar *) &size, sizeof size);
  g_autoptr (GMappedFile) mf = g_mapped_file_new (rs_gguf_path (g), FALSE, NULL);
  if (mf != NULL)
    g_checksum_update (sum, (const guchar *) g_mapped_file_get_contents (mf),
                       MIN (g_mapped_file_get_length (mf), 16u << 20));
  return g_strdup (g_checksum_get_string (sum));
}

void
rs_run_update_metadata (RsRun *run, const char *prompt)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "model");
  json_builder_add_string_value (b, rs_gguf_path (rs_model_gguf (run->model)));
  json_builder_set_member_name (b, "architecture");
  json_builder_add_string_value (b, run->hp->arch->name);
  g_autofree char *fp = model_fingerprint (run->model);
  json_builder_set_member_name (b, "model_sha256_head");
  json_builder_add_string_value (b, fp);
  json_builder_set_member_name (b, "prompt");
  if (prompt != NULL)
    json_builder_add_string_value (b, prompt);
  else
    json_builder_add_null_value (b);
  json_builder_set_member_name (b, "sampling");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "temperature");
  json_builder_add_double_value (b, run->params.sampler.temperature);
  json_builder_set_member_name (b, "top_k");
  json_builder_add_int_value (b, run->params.sampler.top_k);
  json_builder_set_member_name (b, "top_p");
  json_builder_add_double_value (b, run->params.sampler.top_p);
  json_builder_set_member_name (b, "seed");
  json_builder_add_int_value (b, (int64_t) run->params.sampler.seed);
  json_builder_end_object (b);
  json_builder_set_member_name (b, "interventions");
  json_builder_begin_array (b);
  for (guint i = 0; i < run->ivs->len; i++)
    {
      g_autofree char *d = rs_intervention_describe (&g_array_index (run->ivs, RsIntervention, i));
      json_builder_add_string_value (b, d);
    }
  json_builder_end_array (b);
  json_builder_set_member_name (b, "engine");
  json_builder_add_string_value (b, "routescope " RS_VERSION);
  json_builder_end_object (b);
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  g_autoptr (JsonNode) root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  g_autofree char *text = json_generator_to_data (gen, NULL);
  rs_trace_set_metadata (run->trace, text);
}
