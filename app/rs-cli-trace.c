/* rs-cli-trace.c: `routescope-cli trace` and `routescope-cli compare`, and
 * the intervention flags they share.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <json-glib/json-glib.h>
#include <math.h>
#include <stdio.h>

#include "rs-cli.h"
#include "rs-compare.h"
#include "rs-run.h"

/* ---- intervention flags ------------------------------------------------- */

struct _RsCliInterventionFlags {
  char **disable, **force, **bias, **soft_bias, **topk, **top_p;
  gint64 from_token;
};
typedef struct _RsCliInterventionFlags InterventionFlags;

static void
intervention_flags_free (gpointer data)
{
  InterventionFlags *f = data;
  g_strfreev (f->disable);
  g_strfreev (f->force);
  g_strfreev (f->bias);
  g_strfreev (f->soft_bias);
  g_strfreev (f->topk);
  g_strfreev (f->top_p);
  g_free (f);
}

void
rs_cli_add_intervention_options (GOptionContext *ctx, RsCliInterventionFlags **out)
{
  InterventionFlags *f = g_new0 (InterventionFlags, 1);
  GOptionEntry entries[] = {
    { "disable", 0, 0, G_OPTION_ARG_STRING_ARRAY, &f->disable, "Never select experts E in layers L (repeatable)", "L:E" },
    { "force", 0, 0, G_OPTION_ARG_STRING_ARRAY, &f->force, "Always select experts E in layers L", "L:E" },
    { "bias", 0, 0, G_OPTION_ARG_STRING_ARRAY, &f->bias, "Add DELTA to the router logits of E", "L:E:DELTA" },
    { "soft-bias", 0, 0, G_OPTION_ARG_STRING_ARRAY, &f->soft_bias, "Add STRENGTH x the logit spread to E", "L:E:STRENGTH" },
    { "topk", 0, 0, G_OPTION_ARG_STRING_ARRAY, &f->topk, "Select K experts per token in layers L", "L:K" },
    { "top-p", 0, 0, G_OPTION_ARG_STRING_ARRAY, &f->top_p, "Top-p routing with threshold P in layers L", "L:P" },
    { "from-token", 0, 0, G_OPTION_ARG_INT64, &f->from_token, "Interventions apply from this position on (default 0: the whole sequence, prompt included)", "T" },
    { NULL }
  };
  GOptionGroup *group = g_option_group_new ("steer", "Interventions (L: a layer, A-B or *; E: an expert or a comma list)",
                                            "Show intervention options", f, intervention_flags_free);
  g_option_group_add_entries (group, entries);
  g_option_context_add_group (ctx, group);
  *out = f;
}

GArray *
rs_cli_parse_interventions (RsCliInterventionFlags *flags, GError **error)
{
  InterventionFlags *f = flags;
  g_autoptr (GArray) ivs = g_array_new (FALSE, FALSE, sizeof (RsIntervention));
  struct { char **list; RsInterventionKind kind; } kinds[] = {
    { f->disable, RS_INTERVENE_DISABLE }, { f->force, RS_INTERVENE_FORCE },
    { f->bias, RS_INTERVENE_BIAS }, { f->soft_bias, RS_INTERVENE_SOFT_BIAS },
    { f->topk, RS_INTERVENE_TOP_K }, { f->top_p, RS_INTERVENE_TOP_P },
  };
  for (gsize k = 0; k < G_N_ELEMENTS (kinds); k++)
    for (char **s = kinds[k].list; s != NULL && *s != NULL; s++)
      {
        RsIntervention iv;
        if (!rs_intervention_parse (kinds[k].kind, *s, f->from_token, &iv, error))
          return NULL;
        g_array_append_val (ivs, iv);
      }
  return g_steal_pointer (&ivs);
}

GArray *
rs_cli_parse_prompt_command (const char *summary, RsCliCommon *o, const GOptionEntry *extra,
                             int argc, char **argv)
{
  o->n_predict = 32;
  GOptionEntry entries[] = {
    { "prompt", 'p', 0, G_OPTION_ARG_STRING, &o->prompt, "Prompt text", "TEXT" },
    { "n-predict", 'n', 0, G_OPTION_ARG_INT, &o->n_predict, "Tokens to generate (default 32)", "N" },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new (summary);
  rs_cli_add_common_options (ctx, o, entries);
  if (extra != NULL)
    g_option_context_add_main_entries (ctx, extra, NULL);
  RsCliInterventionFlags *flags;
  rs_cli_add_intervention_options (ctx, &flags);
  g_autoptr (GError) error = NULL;
  GArray *ivs = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    rs_cli_fail (error->message);
  else if (o->prompt == NULL)
    rs_cli_fail ("no prompt given (-p TEXT)");
  else if (o->n_predict < 0)
    rs_cli_fail ("-n must not be negative");
  else if ((ivs = rs_cli_parse_interventions (flags, &error)) == NULL)
    rs_cli_fail (error->message);
  return ivs;
}

/* ---- trace -------------------------------------------------------------- */

int
rs_cli_trace (int argc, char **argv)
{
  RsCliCommon o = { 0 };
  char *out_path = NULL;
  GOptionEntry entries[] = {
    { "output", 'o', 0, G_OPTION_ARG_FILENAME, &out_path, "Trace file: .npz, .jsonl or .csv", "OUT" },
    { NULL }
  };
  g_autoptr (GArray) ivs = rs_cli_parse_prompt_command ("- run a prompt and save its routing trace",
                                                        &o, entries, argc, argv);
  if (ivs == NULL)
    return 1;
  RsTraceFormat format;
  if (out_path == NULL || !rs_trace_format_from_path (out_path, &format))
    return rs_cli_fail ("trace needs -o OUT.npz, OUT.jsonl or OUT.csv");
  g_autoptr (GError) error = NULL;

  g_autoptr (RsCliModel) m = rs_cli_model_open (&o, &error);
  if (m == NULL)
    return rs_cli_fail (error->message);
  g_autoptr (RsRun) run = rs_run_new (m->model, m->tok, &o.run, &error);
  if (run == NULL || !rs_run_set_interventions (run, (RsIntervention *) ivs->data, ivs->len, &error) ||
      !rs_run_prompt_text (run, o.prompt, &error))
    return rs_cli_fail (error->message);
  for (int i = 0; i < o.n_predict && !rs_run_at_eog (run); i++)
    if (!rs_run_step (run, -1, NULL, &error))
      return rs_cli_fail (error->message);
  rs_run_update_metadata (run, o.prompt);
  if (!rs_trace_save (rs_run_trace (run), out_path, format, &error))
    return rs_cli_fail (error->message);
  const RsTrace *tr = rs_run_trace (run);
  fprintf (stderr, "%s: %" G_GINT64_FORMAT " tokens x %d layers x %d slots\n", out_path,
           tr->n_tokens, tr->n_layer, tr->k_slots);
  return 0;
}

/* ---- compare ------------------------------------------------------------ */

/* Jaccard overlap of the experts two traces selected at (t, l). */
static double
layer_overlap (const RsTrace *a, const RsTrace *b, int64_t t, int l)
{
  const int K = a->k_slots, L = a->n_layer;
  const int32_t *ia = &g_array_index (a->topk_ids, int32_t, (t * L + l) * K);
  const int32_t *ib = &g_array_index (b->topk_ids, int32_t, (t * L + l) * K);
  return rs_jaccard (ia, K, ib, K);
}

int
rs_cli_compare (int argc, char **argv)
{
  RsCliCommon o = { 0 };
  gboolean teacher = FALSE;
  GOptionEntry entries[] = {
    { "teacher-forced", 0, 0, G_OPTION_ARG_NONE, &teacher, "Feed the steered run the baseline's tokens", NULL },
    { NULL }
  };
  g_autoptr (GArray) ivs = rs_cli_parse_prompt_command (
    "- run a prompt untouched and steered, side by side", &o, entries, argc, argv);
  if (ivs == NULL)
    return 1;
  g_autoptr (GError) error = NULL;

  g_autoptr (RsCliModel) m = rs_cli_model_open (&o, &error);
  if (m == NULL)
    return rs_cli_fail (error->message);
  /* Two KV caches, one copy of the weights (the mapping is shared). */
  g_autoptr (RsRun) base = rs_run_new (m->model, m->tok, &o.run, &error);
  g_autoptr (RsRun) steer = base ? rs_run_new (m->model, m->tok, &o.run, &error) : NULL;
  if (steer == NULL || !rs_run_set_interventions (steer, (RsIntervention *) ivs->data, ivs->len, &error) ||
      !rs_run_prompt_text (base, o.prompt, &error) || !rs_run_prompt_text (steer, o.prompt, &error))
    return rs_cli_fail (error->message);

  const int V = rs_model_hparams (m->model)->n_vocab;
  const RsTrace *ta = rs_run_trace (base), *tb = rs_run_trace (steer);
  const int L = ta->n_layer;
  g_autoptr (GArray) kl = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr (GArray) agree = g_array_new (FALSE, FALSE, sizeof (gboolean));
  int64_t n_prompt = ta->n_tokens;

  for (int i = 0; i <= o.n_predict; i++)
    {
      /* Distributions for the next token, then one step each. */
      double d = rs_kl_logits (rs_run_logits (base), rs_run_logits (steer), V);
      int32_t ta1 = 0, tb1 = 0;
      rs_top_logits (rs_run_logits (base), V, 1, &ta1, &(float) { 0 });
      rs_top_logits (rs_run_logits (steer), V, 1, &tb1, &(float) { 0 });
      gboolean same = ta1 == tb1;
      g_array_append_val (kl, d);
      g_array_append_val (agree, same);
      if (i == o.n_predict || rs_run_at_eog (base) || (!teacher && rs_run_at_eog (steer)))
        break;
      int32_t next;
      if (!rs_run_step (base, -1, &next, &error) ||
          !rs_run_step (steer, teacher ? next : -1, NULL, &error))
        return rs_cli_fail (error->message);
    }

  int64_t n_tok = MIN (ta->n_tokens, tb->n_tokens);
  if (o.json)
    {
      g_autoptr (JsonBuilder) b = json_builder_new ();
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "teacher_forced");
      json_builder_add_boolean_value (b, teacher);
      json_builder_set_member_name (b, "n_prompt");
      json_builder_add_int_value (b, n_prompt);
      json_builder_set_member_name (b, "interventions");
      json_builder_begin_array (b);
      for (guint i = 0; i < ivs->len; i++)
        {
          g_autofree char *desc = rs_intervention_describe (&g_array_index (ivs, RsIntervention, i));
          json_builder_add_string_value (b, desc);
        }
      json_builder_end_array (b);
      const RsTrace *trs[2] = { ta, tb };
      const char *names[2] = { "baseline", "steered" };
      for (int r = 0; r < 2; r++)
        {
          json_builder_set_member_name (b, names[r]);
          json_builder_begin_object (b);
          json_builder_set_member_name (b, "ids");
          json_builder_begin_array (b);
          for (int64_t t = n_prompt; t < trs[r]->n_tokens; t++)
            json_builder_add_int_value (b, g_array_index (trs[r]->token_ids, int32_t, t));
          json_builder_end_array (b);
          json_builder_end_object (b);
        }
      json_builder_set_member_name (b, "steps");
      json_builder_begin_array (b);
      for (guint i = 0; i < kl->len; i++)
        {
          int64_t t = n_prompt - 1 + i; /* the token whose next-token distribution this is */
          json_builder_begin_object (b);
          json_builder_set_member_name (b, "kl");
          json_builder_add_double_value (b, g_array_index (kl, double, i));
          json_builder_set_member_name (b, "top1_agree");
          json_builder_add_boolean_value (b, g_array_index (agree, gboolean, i));
          json_builder_set_member_name (b, "jaccard");
          json_builder_begin_array (b);
          for (int l = 0; l < L && t < n_tok; l++)
            json_builder_add_double_value (b, layer_overlap (ta, tb, t, l));
          json_builder_end_array (b);
          json_builder_end_object (b);
        }
      json_builder_end_array (b);
      json_builder_end_object (b);
      rs_cli_print_json (b);
      return 0;
    }

  double kl_sum = 0.0;
  int n_agree = 0;
  printf ("%5s %-16s %-16s %10s %5s %8s\n", "step", "baseline", "steered", "KL", "top1", "overlap");
  for (guint i = 0; i < kl->len; i++)
    {
      int64_t t = n_prompt - 1 + i;
      double ov = 0.0;
      int n_moe = 0;
      for (int l = 0; l < L && t < n_tok; l++)
        if (rs_model_layer (m->model, l)->is_moe)
          {
            ov += layer_overlap (ta, tb, t, l);
            n_moe++;
          }
      const char *sa = t + 1 < ta->n_tokens ? g_ptr_array_index (ta->token_text, t + 1) : "";
      const char *sb = t + 1 < tb->n_tokens ? g_ptr_array_index (tb->token_text, t + 1) : "";
      g_autofree char *qa = g_strescape (sa, NULL), *qb = g_strescape (sb, NULL);
      printf ("%5u %-16.16s %-16.16s %10.4g %5s %8.3f\n", i, qa, qb, g_array_index (kl, double, i),
              g_array_index (agree, gboolean, i) ? "yes" : "no", n_moe ? ov / n_moe : 1.0);
      kl_sum += g_array_index (kl, double, i);
      n_agree += g_array_index (agree, gboolean, i);
    }
  printf ("mean KL %.4g nats, top-1 agreement %d/%u\n", kl_sum / MAX (kl->len, 1), n_agree, kl->len);
  return 0;
}

/* ---- import ------------------------------------------------------------- */

/* Routing captured by a serving engine, converted to a Routescope trace
 * file that `analyze` and the workbench read. */
int
rs_cli_import (int argc, char **argv)
{
  char *vllm = NULL, *sglang = NULL, *out_path = NULL;
  int n_layer = 0, n_expert = 0;
  GOptionEntry entries[] = {
    { "vllm", 0, 0, G_OPTION_ARG_FILENAME, &vllm, "vLLM routed experts (.npy, .npz or a saved response)", "FILE" },
    { "sglang", 0, 0, G_OPTION_ARG_FILENAME, &sglang, "SGLang /generate response with return_routed_experts (.json)", "FILE" },
    { "layers", 0, 0, G_OPTION_ARG_INT, &n_layer, "Layers of the model (SGLang's flat array needs it)", "L" },
    { "experts", 0, 0, G_OPTION_ARG_INT, &n_expert, "Experts per layer (default: largest id + 1)", "E" },
    { "output", 'o', 0, G_OPTION_ARG_FILENAME, &out_path, "Trace file: .npz, .jsonl or .csv", "OUT" },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- convert routing captured by vLLM or SGLang");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return rs_cli_fail (error->message);
  RsTraceFormat format;
  if ((vllm == NULL) == (sglang == NULL))
    return rs_cli_fail ("import takes one of --vllm FILE or --sglang FILE");
  if (out_path == NULL || !rs_trace_format_from_path (out_path, &format))
    return rs_cli_fail ("import needs -o OUT.npz, OUT.jsonl or OUT.csv");
  if (sglang != NULL && n_layer <= 0)
    return rs_cli_fail ("--sglang needs --layers L (the flat array does not say)");
  g_autoptr (RsTrace) tr = vllm ? rs_trace_import_vllm (vllm, n_expert, &error)
                                : rs_trace_import_sglang (sglang, n_layer, n_expert, &error);
  if (tr == NULL || !rs_trace_save (tr, out_path, format, &error))
    return rs_cli_fail (error->message);
  fprintf (stderr, "%s: %" G_GINT64_FORMAT " tokens x %d layers x %d slots, %d experts\n",
           out_path, tr->n_tokens, tr->n_layer, tr->k_slots, tr->n_expert);
  return 0;
}
