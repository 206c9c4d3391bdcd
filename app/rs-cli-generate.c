/* rs-cli-generate.c: `routescope-cli generate` and `routescope-cli bench`.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <stdio.h>
#include <stdlib.h>

#include "rs-cli.h"

static void
json_int_array (JsonBuilder *b, const char *name, const int32_t *v, int64_t n)
{
  json_builder_set_member_name (b, name);
  json_builder_begin_array (b);
  for (int64_t i = 0; i < n; i++)
    json_builder_add_int_value (b, v[i]);
  json_builder_end_array (b);
}

int
rs_cli_generate (int argc, char **argv)
{
  RsCliCommon o = { 0 };
  double temp = 0.0, top_p = 1.0;
  gint64 seed = 0;
  GOptionEntry entries[] = {
    { "temp", 0, 0, G_OPTION_ARG_DOUBLE, &temp, "Temperature (0: greedy, the default)", "T" },
    { "seed", 0, 0, G_OPTION_ARG_INT64, &seed, "Random seed (default 0)", "S" },
    { "top-k", 0, 0, G_OPTION_ARG_INT, &o.run.sampler.top_k, "Sample from the K most likely tokens", "K" },
    { "top-p", 0, 0, G_OPTION_ARG_DOUBLE, &top_p, "Sample from the smallest set with probability P", "P" },
    { NULL }
  };
  g_autoptr (GArray) ivs = rs_cli_parse_prompt_command ("- generate text from a prompt", &o,
                                                        entries, argc, argv);
  if (ivs == NULL)
    return 1;
  g_autoptr (GError) error = NULL;
  const char *prompt = o.prompt;
  const int n_predict = o.n_predict;
  o.run.sampler.temperature = temp;
  o.run.sampler.top_p = top_p;
  o.run.sampler.seed = seed;

  g_autoptr (RsCliModel) m = rs_cli_model_open (&o, &error);
  if (m == NULL)
    return rs_cli_fail (error->message);
  g_autoptr (RsRun) run = rs_run_new (m->model, m->tok, &o.run, &error);
  if (run == NULL || !rs_run_set_interventions (run, (RsIntervention *) ivs->data, ivs->len, &error))
    return rs_cli_fail (error->message);
  if (!rs_run_prompt_text (run, prompt, &error))
    {
      g_autofree char *msg = g_strdup_printf ("%s: %s", o.model_path, error->message);
      return rs_cli_fail (msg);
    }
  const RsTrace *tr = rs_run_trace (run);
  const int64_t n_prompt = tr->n_tokens;
  if (n_prompt + n_predict > rs_session_n_ctx (rs_run_session (run)))
    {
      g_autofree char *msg = g_strdup_printf (
        "%s: the prompt (%" G_GINT64_FORMAT " tokens) and %d generated tokens do not fit in "
        "the context of %d tokens; it needs %" G_GINT64_FORMAT " (use -c)", o.model_path,
        n_prompt, n_predict, rs_session_n_ctx (rs_run_session (run)), n_prompt + n_predict);
      return rs_cli_fail (msg);
    }

  const int V = rs_model_hparams (m->model)->n_vocab;
  g_autoptr (RsDetokenizer) detok = rs_detokenizer_new (m->tok, RS_TOKEN_BYTES_NONE);
  g_autoptr (GString) text = g_string_new (NULL);
  g_autoptr (GArray) top = g_array_new (FALSE, FALSE, sizeof (float) * 10);
  for (int i = 0; i < n_predict && !rs_run_at_eog (run); i++)
    {
      int32_t ids[5];
      float vals[5], pairs[10];
      rs_top_logits (rs_run_logits (run), V, 5, ids, vals);
      for (int j = 0; j < 5; j++)
        {
          pairs[2 * j] = ids[j];
          pairs[2 * j + 1] = vals[j];
        }
      g_array_append_val (top, pairs);
      int32_t next;
      if (!rs_run_step (run, -1, &next, &error))
        return rs_cli_fail (error->message);
      gsize before = text->len;
      rs_detokenizer_push (detok, next, text);
      if (!o.json)
        {
          fwrite (text->str + before, 1, text->len - before, stdout);
          fflush (stdout);
        }
    }
  gsize before = text->len;
  rs_detokenizer_finish (detok, text);
  if (!o.json)
    printf ("%s\n", text->str + before);

  double prefill_tps, decode_tps;
  rs_run_speed (run, &prefill_tps, &decode_tps);
  fprintf (stderr, "prefill: %" G_GINT64_FORMAT " tokens, %.2f tokens/s; decode: %" G_GINT64_FORMAT
           " tokens, %.2f tokens/s (%d threads)\n", n_prompt, prefill_tps, tr->n_tokens - n_prompt,
           decode_tps, rs_session_n_threads (rs_run_session (run)));

  if (o.json)
    {
      const int32_t *all = (const int32_t *) tr->token_ids->data;
      g_autoptr (JsonBuilder) b = json_builder_new ();
      json_builder_begin_object (b);
      json_int_array (b, "prompt_ids", all, n_prompt);
      json_int_array (b, "ids", all + n_prompt, tr->n_tokens - n_prompt);
      json_builder_set_member_name (b, "text");
      json_builder_add_string_value (b, text->str);
      json_builder_set_member_name (b, "top_logits");
      json_builder_begin_array (b);
      for (guint i = 0; i < top->len; i++)
        {
          const float *pairs = (const float *) top->data + i * 10;
          json_builder_begin_array (b);
          for (int j = 0; j < 5; j++)
            {
              json_builder_begin_array (b);
              json_builder_add_int_value (b, (int64_t) pairs[2 * j]);
              json_builder_add_double_value (b, pairs[2 * j + 1]);
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
      rs_cli_print_json (b);
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

/* Like llama-bench: pp = a prompt of random tokens from an empty cache,
 * tg = that many single-token steps from an empty cache. The run records
 * its routing trace exactly as `trace` does, unless --probes off. */
int
rs_cli_bench (int argc, char **argv)
{
  RsCliCommon o = { 0 };
  int n_prompt = 128, n_gen = 64, reps = 5;
  char *probes = NULL;
  GOptionEntry entries[] = {
    { "n-prompt", 'p', 0, G_OPTION_ARG_INT, &n_prompt, "Prompt tokens for the prefill test (default 128)", "N" },
    { "n-gen", 'n', 0, G_OPTION_ARG_INT, &n_gen, "Tokens for the decode test (default 64)", "N" },
    { "repetitions", 'r', 0, G_OPTION_ARG_INT, &reps, "Repetitions; the median is reported (default 5)", "N" },
    { "probes", 0, 0, G_OPTION_ARG_STRING, &probes, "Router probes recording a trace: on (default) or off", "on|off" },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- measure prefill and decode tokens/s");
  rs_cli_add_common_options (ctx, &o, entries);
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return rs_cli_fail (error->message);
  if (n_prompt < 1 || n_gen < 1 || reps < 1)
    return rs_cli_fail ("-p, -n and -r must be at least 1");
  if (probes != NULL && g_strcmp0 (probes, "on") != 0 && g_strcmp0 (probes, "off") != 0)
    return rs_cli_fail ("--probes takes on or off");
  o.run.no_probes = g_strcmp0 (probes, "off") == 0;
  o.run.session.n_ctx = MAX (o.run.session.n_ctx, MAX (n_prompt, n_gen + 1));

  g_autoptr (RsCliModel) m = rs_cli_model_open (&o, &error);
  if (m == NULL)
    return rs_cli_fail (error->message);
  const RsHparams *hp = rs_model_hparams (m->model);

  g_autofree int32_t *tokens = g_new (int32_t, n_prompt);
  GRand *rand = g_rand_new_with_seed (42);
  for (int i = 0; i < n_prompt; i++)
    tokens[i] = g_rand_int_range (rand, 0, hp->n_vocab);
  g_rand_free (rand);
  g_autofree double *pp = g_new (double, reps);
  g_autofree double *tg = g_new (double, reps);
  int threads = 0;

  /* One warm-up round, then the measured ones. */
  for (int r = -1; r < reps; r++)
    {
      g_autoptr (RsRun) run = rs_run_new (m->model, m->tok, &o.run, &error);
      if (run == NULL)
        return rs_cli_fail (error->message);
      threads = rs_session_n_threads (rs_run_session (run));
      gint64 t0 = g_get_monotonic_time ();
      if (!rs_run_prompt_ids (run, tokens, n_prompt, &error))
        return rs_cli_fail (error->message);
      gint64 t1 = g_get_monotonic_time ();

      g_autoptr (RsRun) gen = rs_run_new (m->model, m->tok, &o.run, &error);
      if (gen == NULL || !rs_run_prompt_ids (gen, tokens, 1, &error))
        return rs_cli_fail (error->message);
      gint64 t2 = g_get_monotonic_time ();
      for (int i = 1; i < n_gen + 1; i++)
        if (!rs_run_step (gen, tokens[i % n_prompt], NULL, &error))
          return rs_cli_fail (error->message);
      gint64 t3 = g_get_monotonic_time ();
      if (r >= 0)
        {
          pp[r] = n_prompt / ((t1 - t0) / 1e6);
          tg[r] = n_gen / ((t3 - t2) / 1e6);
        }
    }
  double pp_med = median (pp, reps), tg_med = median (tg, reps);
  double gb = rs_model_active_bytes (m->model) / 1e9;
  if (o.json)
    {
      g_autoptr (JsonBuilder) b = json_builder_new ();
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "prefill_tok_s");
      json_builder_add_double_value (b, pp_med);
      json_builder_set_member_name (b, "decode_tok_s");
      json_builder_add_double_value (b, tg_med);
      json_builder_set_member_name (b, "threads");
      json_builder_add_int_value (b, threads);
      json_builder_set_member_name (b, "probes");
      json_builder_add_boolean_value (b, !o.run.no_probes);
      json_builder_set_member_name (b, "n_prompt");
      json_builder_add_int_value (b, n_prompt);
      json_builder_set_member_name (b, "n_gen");
      json_builder_add_int_value (b, n_gen);
      json_builder_set_member_name (b, "active_gb_per_token");
      json_builder_add_double_value (b, gb);
      json_builder_end_object (b);
      rs_cli_print_json (b);
    }
  else
    printf ("pp%d: %.2f tokens/s   tg%d: %.2f tokens/s (%.1f GB/s of active weights)   "
            "threads %d, probes %s, median of %d\n", n_prompt, pp_med, n_gen, tg_med, tg_med * gb,
            threads, o.run.no_probes ? "off" : "on", reps);
  return 0;
}
