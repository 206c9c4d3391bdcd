/* rs-cli-generate.c: `routescope-cli generate` and `routescope-cli bench`.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <stdlib.h>

#include "rs-cli.h"
#include "rs-engine.h"
#include "rs-sampler.h"
#include "rs-tokenizer.h"

/* Options both commands share. */
typedef struct {
  char    *model_path;
  int      n_ctx;
  int      n_threads;
  gboolean mlock;
  gboolean json;
} CommonOptions;

static void
add_common (GOptionContext *ctx, CommonOptions *o, GOptionEntry *extra)
{
  GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &o->model_path, "GGUF model file", "MODEL" },
    { "ctx-size", 'c', 0, G_OPTION_ARG_INT, &o->n_ctx, "Context length (default: min(4096, the model's))", "N" },
    { "threads", 't', 0, G_OPTION_ARG_INT, &o->n_threads, "Threads (default: one per core)", "N" },
    { "mlock", 0, 0, G_OPTION_ARG_NONE, &o->mlock, "Lock the model in RAM", NULL },
    { "json", 0, 0, G_OPTION_ARG_NONE, &o->json, "Print one JSON object", NULL },
    { NULL }
  };
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_main_entries (ctx, extra, NULL);
}

static RsModel *
open_model (const CommonOptions *o, GError **error)
{
  if (o->model_path == NULL)
    {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "no model given (-m MODEL.gguf)");
      return NULL;
    }
  RsModel *model = rs_model_open (o->model_path, error);
  if (model != NULL && o->mlock && !rs_model_lock_memory (model, error))
    g_clear_pointer (&model, rs_model_free);
  return model;
}

static double
now_s (void)
{
  return g_get_monotonic_time () / 1e6;
}

static void
json_print (JsonBuilder *b)
{
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  g_autoptr (JsonNode) root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  g_autofree char *text = json_generator_to_data (gen, NULL);
  printf ("%s\n", text);
}

static void
json_int_array (JsonBuilder *b, const char *name, const int32_t *v, guint n)
{
  json_builder_set_member_name (b, name);
  json_builder_begin_array (b);
  for (guint i = 0; i < n; i++)
    json_builder_add_int_value (b, v[i]);
  json_builder_end_array (b);
}

int
rs_cli_generate (int argc, char **argv)
{
  CommonOptions o = { 0 };
  char *prompt = NULL;
  int n_predict = 32, top_k = 0;
  double temp = 0.0, top_p = 1.0;
  gint64 seed = 0;
  GOptionEntry entries[] = {
    { "prompt", 'p', 0, G_OPTION_ARG_STRING, &prompt, "Prompt text", "TEXT" },
    { "n-predict", 'n', 0, G_OPTION_ARG_INT, &n_predict, "Tokens to generate (default 32)", "N" },
    { "temp", 0, 0, G_OPTION_ARG_DOUBLE, &temp, "Temperature (0: greedy, the default)", "T" },
    { "seed", 0, 0, G_OPTION_ARG_INT64, &seed, "Random seed (default 0)", "S" },
    { "top-k", 0, 0, G_OPTION_ARG_INT, &top_k, "Sample from the K most likely tokens", "K" },
    { "top-p", 0, 0, G_OPTION_ARG_DOUBLE, &top_p, "Sample from the smallest set with probability P", "P" },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- generate text from a prompt");
  add_common (ctx, &o, entries);
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return rs_cli_fail (error->message);
  if (prompt == NULL)
    return rs_cli_fail ("no prompt given (-p TEXT)");
  if (n_predict < 0)
    return rs_cli_fail ("-n must not be negative");

  g_autoptr (RsModel) model = open_model (&o, &error);
  if (model == NULL)
    return rs_cli_fail (error->message);
  g_autoptr (RsTokenizer) tok = rs_tokenizer_new_from_gguf (rs_model_gguf (model), &error);
  if (tok == NULL)
    return rs_cli_fail (error->message);
  g_autoptr (GArray) ids = g_array_new (FALSE, FALSE, sizeof (int32_t));
  if (!rs_tokenizer_encode (tok, prompt, -1, RS_TOKENIZE_ADD_SPECIAL | RS_TOKENIZE_PARSE_SPECIAL,
                            ids, &error))
    return rs_cli_fail (error->message);
  if (ids->len == 0)
    return rs_cli_fail ("the prompt has no tokens");

  RsSessionParams sp = { .n_ctx = o.n_ctx, .n_threads = o.n_threads };
  g_autoptr (RsSession) session = rs_session_new (model, &sp, &error);
  if (session == NULL)
    return rs_cli_fail (error->message);
  if ((int) ids->len + n_predict > rs_session_n_ctx (session))
    {
      g_autofree char *msg = g_strdup_printf (
        "%s: the prompt (%u tokens) and %d generated tokens do not fit in the context of %d "
        "tokens; it needs %u (use -c)", o.model_path, ids->len, n_predict,
        rs_session_n_ctx (session), ids->len + n_predict);
      return rs_cli_fail (msg);
    }

  const int n_vocab = rs_model_hparams (model)->n_vocab;
  g_autofree float *logits = g_new (float, n_vocab);
  RsSamplerParams samp = { .temperature = temp, .top_k = top_k, .top_p = top_p, .seed = seed };
  g_autoptr (RsSampler) sampler = rs_sampler_new (&samp, n_vocab);
  g_autoptr (RsDetokenizer) detok = rs_detokenizer_new (tok, RS_TOKEN_BYTES_NONE);
  g_autoptr (GString) text = g_string_new (NULL);
  g_autoptr (GArray) out = g_array_new (FALSE, FALSE, sizeof (int32_t));
  g_autoptr (GArray) top = g_array_new (FALSE, FALSE, sizeof (float) * 2 * 5);

  double t0 = now_s ();
  if (!rs_session_eval (session, (const int32_t *) ids->data, ids->len, logits, FALSE, &error))
    return rs_cli_fail (error->message);
  double t1 = now_s (), t_decode = 0.0;

  for (int i = 0; i < n_predict; i++)
    {
      int32_t top_ids[5];
      float top_vals[5], pair[10];
      rs_top_logits (logits, n_vocab, 5, top_ids, top_vals);
      for (int j = 0; j < 5; j++)
        {
          pair[2 * j] = top_ids[j];
          pair[2 * j + 1] = top_vals[j];
        }
      g_array_append_val (top, pair);

      int32_t next = rs_sampler_sample (sampler, logits, NULL, NULL);
      g_array_append_val (out, next);
      gsize before = text->len;
      rs_detokenizer_push (detok, next, text);
      if (!o.json)
        {
          fwrite (text->str + before, 1, text->len - before, stdout);
          fflush (stdout);
        }
      if (rs_tokenizer_is_eog (tok, next) || i == n_predict - 1)
        break;
      double d0 = now_s ();
      if (!rs_session_eval (session, &next, 1, logits, FALSE, &error))
        return rs_cli_fail (error->message);
      t_decode += now_s () - d0;
    }
  gsize before = text->len;
  rs_detokenizer_finish (detok, text);
  if (!o.json)
    printf ("%s\n", text->str + before);

  double prefill_tps = ids->len / MAX (t1 - t0, 1e-9);
  int n_decoded = MAX ((int) out->len - 1, 0);
  double decode_tps = n_decoded > 0 ? n_decoded / MAX (t_decode, 1e-9) : 0.0;
  fprintf (stderr, "prefill: %u tokens, %.2f tokens/s; decode: %d tokens, %.2f tokens/s (%d threads)\n",
           ids->len, prefill_tps, n_decoded, decode_tps, rs_session_n_threads (session));

  if (o.json)
    {
      g_autoptr (JsonBuilder) b = json_builder_new ();
      json_builder_begin_object (b);
      json_int_array (b, "prompt_ids", (const int32_t *) ids->data, ids->len);
      json_int_array (b, "ids", (const int32_t *) out->data, out->len);
      json_builder_set_member_name (b, "text");
      json_builder_add_string_value (b, text->str);
      json_builder_set_member_name (b, "top_logits");
      json_builder_begin_array (b);
      for (guint i = 0; i < top->len; i++)
        {
          const float *pair = (const float *) top->data + i * 10;
          json_builder_begin_array (b);
          for (int j = 0; j < 5; j++)
            {
              json_builder_begin_array (b);
              json_builder_add_int_value (b, (int64_t) pair[2 * j]);
              json_builder_add_double_value (b, pair[2 * j + 1]);
              json_builder_end_array (b);
            }
          json_builder_end_array (b);
        }
      json_builder_end_array (b);
      json_builder_set_member_name (b, "prefill_tok_s");
      json_builder_add_double_value (b, prefill_tps);
      json_builder_set_member_name (b, "decode_tok_s");
      json_builder_add_double_value (b, decode_tps);
      json_builder_end_object (b);
      json_print (b);
    }
  return 0;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static double
median (double *v, int n)
{
  qsort (v, n, sizeof (double), cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int
rs_cli_bench (int argc, char **argv)
{
  CommonOptions o = { 0 };
  int n_prompt = 128, n_gen = 64, reps = 5;
  char *probes = NULL;
  GOptionEntry entries[] = {
    { "n-prompt", 'p', 0, G_OPTION_ARG_INT, &n_prompt, "Prompt tokens for the prefill test (default 128)", "N" },
    { "n-gen", 'n', 0, G_OPTION_ARG_INT, &n_gen, "Tokens for the decode test (default 64)", "N" },
    { "repetitions", 'r', 0, G_OPTION_ARG_INT, &reps, "Repetitions; the median is reported (default 5)", "N" },
    { "probes", 0, 0, G_OPTION_ARG_STRING, &probes, "Router probes on or off (default on)", "on|off" },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- measure prefill and decode tokens/s");
  add_common (ctx, &o, entries);
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return rs_cli_fail (error->message);
  if (n_prompt < 1 || n_gen < 1 || reps < 1)
    return rs_cli_fail ("-p, -n and -r must be at least 1");
  if (probes != NULL && g_strcmp0 (probes, "on") != 0 && g_strcmp0 (probes, "off") != 0)
    return rs_cli_fail ("--probes takes on or off");

  g_autoptr (RsModel) model = open_model (&o, &error);
  if (model == NULL)
    return rs_cli_fail (error->message);
  const RsHparams *hp = rs_model_hparams (model);
  RsSessionParams sp = { .n_ctx = MAX (o.n_ctx, n_prompt + n_gen), .n_threads = o.n_threads };
  g_autoptr (RsSession) session = rs_session_new (model, &sp, &error);
  if (session == NULL)
    return rs_cli_fail (error->message);

  /* Random tokens, as llama-bench uses. */
  g_autofree int32_t *tokens = g_new (int32_t, n_prompt);
  GRand *rand = g_rand_new_with_seed (42);
  for (int i = 0; i < n_prompt; i++)
    tokens[i] = g_rand_int_range (rand, 0, hp->n_vocab);
  g_rand_free (rand);
  g_autofree float *logits = g_new (float, hp->n_vocab);
  g_autofree double *pp = g_new (double, reps);
  g_autofree double *tg = g_new (double, reps);

  /* One warm-up run of each, then the measured ones. */
  for (int r = -1; r < reps; r++)
    {
      rs_session_truncate (session, 0);
      double t0 = now_s ();
      if (!rs_session_eval (session, tokens, n_prompt, logits, FALSE, &error))
        return rs_cli_fail (error->message);
      double t1 = now_s ();
      rs_session_truncate (session, 0);
      int32_t tok = tokens[0];
      double t2 = now_s ();
      for (int i = 0; i < n_gen; i++)
        {
          if (!rs_session_eval (session, &tok, 1, logits, FALSE, &error))
            return rs_cli_fail (error->message);
          tok = (tok + 7919) % hp->n_vocab;
        }
      double t3 = now_s ();
      if (r >= 0)
        {
          pp[r] = n_prompt / (t1 - t0);
          tg[r] = n_gen / (t3 - t2);
        }
    }
  double pp_med = median (pp, reps), tg_med = median (tg, reps);
  double gb = rs_model_active_bytes (model) / 1e9;
  if (o.json)
    {
      g_autoptr (JsonBuilder) b = json_builder_new ();
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "prefill_tok_s");
      json_builder_add_double_value (b, pp_med);
      json_builder_set_member_name (b, "decode_tok_s");
      json_builder_add_double_value (b, tg_med);
      json_builder_set_member_name (b, "threads");
      json_builder_add_int_value (b, rs_session_n_threads (session));
      json_builder_set_member_name (b, "n_prompt");
      json_builder_add_int_value (b, n_prompt);
      json_builder_set_member_name (b, "n_gen");
      json_builder_add_int_value (b, n_gen);
      json_builder_set_member_name (b, "active_gb_per_token");
      json_builder_add_double_value (b, gb);
      json_builder_end_object (b);
      json_print (b);
    }
  else
    printf ("pp%d: %.2f tokens/s   tg%d: %.2f tokens/s (%.1f GB/s of active weights)   "
            "threads %d, median of %d\n", n_prompt, pp_med, n_gen, tg_med, tg_med * gb,
            rs_session_n_threads (session), reps);
  return 0;
}
