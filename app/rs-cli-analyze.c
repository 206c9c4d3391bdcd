/* SPDX-License-Identifier: GPL-3.0-or-later */
/* rs-cli-analyze.c: `routescope-cli analyze KIND TRACE_OR_MODEL`,
 * `routescope-cli align` and `routescope-cli ppl`: the analyses of
 * rs-analysis.h as text, JSON (the data the GUI plots) and figures (the
 * GUI's charts, rs-analysis-plot.h). docs/analyses.md describes them. */
#include <json-glib/json-glib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rs-analysis-plot.h"
#include "rs-analysis.h"
#include "rs-cli-analyze.h"
#include "rs-cli.h"
#include "rs-error.h"

static double
now_s (void)
{
  return g_get_monotonic_time () / 1e6;
}

/* ---- JSON helpers ------------------------------------------------------- */

static void
j_double (JsonBuilder *b, double v)
{
  if (isfinite (v))
    json_builder_add_double_value (b, v);
  else
    json_builder_add_null_value (b);
}

static void
j_member_double (JsonBuilder *b, const char *name, double v)
{
  json_builder_set_member_name (b, name);
  j_double (b, v);
}

static void
j_member_int (JsonBuilder *b, const char *name, int64_t v)
{
  json_builder_set_member_name (b, name);
  json_builder_add_int_value (b, v);
}

static void
j_doubles (JsonBuilder *b, const double *v, int n)
{
  json_builder_begin_array (b);
  for (int i = 0; i < n; i++)
    j_double (b, v[i]);
  json_builder_end_array (b);
}

static void
j_member_doubles (JsonBuilder *b, const char *name, const double *v, int n)
{
  json_builder_set_member_name (b, name);
  j_doubles (b, v, n);
}

/* [rows][cols] of doubles */
static void
j_member_matrix (JsonBuilder *b, const char *name, const double *v, int rows, int cols)
{
  json_builder_set_member_name (b, name);
  json_builder_begin_array (b);
  for (int r = 0; r < rows; r++)
    j_doubles (b, v + (gsize) r * cols, cols);
  json_builder_end_array (b);
}

static void
j_member_matrix_f (JsonBuilder *b, const char *name, const float *v, int rows, int cols)
{
  json_builder_set_member_name (b, name);
  json_builder_begin_array (b);
  for (int r = 0; r < rows; r++)
    {
      json_builder_begin_array (b);
      for (int c = 0; c < cols; c++)
        j_double (b, v[(gsize) r * cols + c]);
      json_builder_end_array (b);
    }
  json_builder_end_array (b);
}

static void
j_member_matrix_i64 (JsonBuilder *b, const char *name, const int64_t *v, int rows, int cols)
{
  json_builder_set_member_name (b, name);
  json_builder_begin_array (b);
  for (int r = 0; r < rows; r++)
    {
      json_builder_begin_array (b);
      for (int c = 0; c < cols; c++)
        json_builder_add_int_value (b, v[(gsize) r * cols + c]);
      json_builder_end_array (b);
    }
  json_builder_end_array (b);
}

static void
j_member_ivs (JsonBuilder *b, const char *name, const RsIntervention *ivs, int n)
{
  json_builder_set_member_name (b, name);
  json_builder_begin_array (b);
  for (int i = 0; i < n; i++)
    {
      g_autofree char *d = rs_intervention_describe (&ivs[i]);
      json_builder_add_string_value (b, d);
    }
  json_builder_end_array (b);
}

static const char *
fmt_double (char *buf, gsize size, const char *fmt, double v)
{
  if (isnan (v))
    g_strlcpy (buf, "-", size);
  else
    g_snprintf (buf, size, fmt, v);
  return buf;
}

/* ---- shared option parsing ---------------------------------------------- */

/* "3", "1-4", "*" or a comma list of those, into layer indices < @n. */
static GArray *
parse_layers (const char *text, int n, GError **error)
{
  GArray *out = g_array_new (FALSE, FALSE, sizeof (int));
  g_auto (GStrv) parts = g_strsplit (text, ",", -1);
  for (char **p = parts; *p != NULL; p++)
    {
      const char *s = g_strstrip (*p);
      int a, b;
      char *end;
      if (strcmp (s, "*") == 0)
        a = 0, b = n - 1;
      else
        {
          a = b = (int) g_ascii_strtoll (s, &end, 10);
          if (end == s)
            goto bad;
          if (*end == '-')
            {
              const char *s2 = end + 1;
              b = (int) g_ascii_strtoll (s2, &end, 10);
              if (end == s2)
                goto bad;
            }
          if (*end != '\0' || a < 0 || b < a || b >= n)
            goto bad;
        }
      for (int l = a; l <= b; l++)
        g_array_append_val (out, l);
    }
  if (out->len == 0)
    goto bad;
  return out;
bad:
  g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "'%s' is not a list of layers 0..%d (e.g. 0,3-5 or *)",
               text, n - 1);
  g_array_unref (out);
  return NULL;
}

static gboolean
parse_routes (const char *s, RsRouteSource *out, GError **error)
{
  if (s == NULL || strcmp (s, "ran") == 0)
    *out = RS_ROUTES_RAN;
  else if (strcmp (s, "base") == 0)
    *out = RS_ROUTES_BASE;
  else
    {
      g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "--routes takes ran or base, not '%s'", s);
      return FALSE;
    }
  return TRUE;
}

static gboolean
export_figure (RsPlot *plot, const char *path, GError **error)
{
  rs_plot_set_dark (plot, FALSE);
  if (!rs_plot_export (plot, path, RS_FIGURE_WIDTH, RS_FIGURE_HEIGHT, RS_FIGURE_SCALE, error))
    return FALSE;
  fprintf (stderr, "figure: %s\n", path);
  return TRUE;
}

/* Progress on stderr when it is a terminal. */
typedef struct {
  const char *what;
  double      last;
} Progress;

static void
progress_cb (void *data, int64_t done, int64_t total)
{
  Progress *p = data;
  if (!isatty (2))
    return;
  double t = now_s ();
  if (done < total && t - p->last < 0.25)
    return;
  p->last = t;
  fprintf (stderr, "\r%s %" G_GINT64_FORMAT "/%" G_GINT64_FORMAT "%s", p->what, done, total,
           done == total ? "\n" : "");
}

/* The basename without .gguf, for titles. */
static char *
model_name (const char *path)
{
  g_autofree char *base = g_path_get_basename (path);
  if (g_str_has_suffix (base, ".gguf"))
    base[strlen (base) - 5] = '\0';
  return g_steal_pointer (&base);
}

static gboolean
read_text (const char *path, char **text, GError **error)
{
  gsize len;
  g_autoptr (GError) local = NULL;
  if (!g_file_get_contents (path, text, &len, &local))
    {
      g_set_error (error, RS_ERROR, RS_ERROR_IO, "%s", local->message);
      return FALSE;
    }
  if (!g_utf8_validate (*text, len, NULL) || strlen (*text) != len)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "%s is not UTF-8 text", path);
      g_clear_pointer (text, g_free);
      return FALSE;
    }
  return TRUE;
}

/* "--bias 8:1,5:1.5 --bias 9:2:1.5": the flags that apply @ivs. */
static char *
interventions_as_flags (const RsIntervention *ivs, int n)
{
  GString *s = g_string_new (NULL);
  for (int i = 0; i < n; i++)
    {
      const RsIntervention *iv = &ivs[i];
      g_string_append_printf (s, "%s--%s ", i ? " " : "",
                              iv->kind == RS_INTERVENE_TOP_K ? "topk" : rs_intervention_kind_name (iv->kind));
      if (iv->layer_first < 0)
        g_string_append_c (s, '*');
      else if (iv->layer_first == iv->layer_last)
        g_string_append_printf (s, "%d", iv->layer_first);
      else
        g_string_append_printf (s, "%d-%d", iv->layer_first, iv->layer_last);
      if (iv->kind != RS_INTERVENE_TOP_K && iv->kind != RS_INTERVENE_TOP_P)
        for (int j = 0; j < iv->n_experts; j++)
          g_string_append_printf (s, "%c%d", j ? ',' : ':', iv->experts[j]);
      if (iv->kind == RS_INTERVENE_BIAS || iv->kind == RS_INTERVENE_SOFT_BIAS ||
          iv->kind == RS_INTERVENE_TOP_K || iv->kind == RS_INTERVENE_TOP_P)
        {
          char v[32];
          g_ascii_formatd (v, sizeof v, "%g", iv->value);
          g_string_append_printf (s, ":%s", v);
        }
    }
  return g_string_free (s, FALSE);
}

/* ---- analyze: the input ------------------------------------------------- */

typedef struct {
  RsTrace    *trace;
  GArray     *seq_starts;  /* int64; NULL: one sequence */
  RsCliModel *model;       /* when run from a model */
  char       *name;        /* for titles */
} Input;

static void
input_clear (Input *in)
{
  if (in->trace)
    rs_trace_free (in->trace);
  if (in->seq_starts)
    g_array_unref (in->seq_starts);
  rs_cli_model_free (in->model);
  g_free (in->name);
}

typedef struct {
  RsCliCommon  o;
  char        *text_file, *prompt, *figure, *routes, *seg_lens, *cold, *ablate, *stat, *layers, *chart;
  int          max_chunks, layer, seq_len, seq_stride, top_n;
  gint64       t_from, t_to, min_count, min_tok_occ, min_pos_occ;
  double       cache_ratio, fraction, percentile, divisor;
  gboolean     log_scale, no_tokens;
} AnalyzeOpts;

/* A .npz is loaded; anything else is a model run on -f TEXT or -p PROMPT. */
static gboolean
input_open (Input *in, const char *path, AnalyzeOpts *a, const RsIntervention *ivs, int n_ivs,
            GError **error)
{
  memset (in, 0, sizeof *in);
  if (g_str_has_suffix (path, ".npz") || g_str_has_suffix (path, ".NPZ"))
    {
      in->trace = rs_trace_load_npz (path, error);
      if (in->trace == NULL)
        return FALSE;
      in->name = g_path_get_basename (path);
      if (a->o.model_path != NULL && (in->model = rs_cli_model_open (&a->o, error)) == NULL)
        return FALSE;
    }
  else
    {
      g_autofree char *text = NULL;
      if (a->text_file != NULL)
        {
          if (!read_text (a->text_file, &text, error))
            return FALSE;
        }
      else if (a->prompt != NULL)
        text = g_strdup (a->prompt);
      else
        {
          g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "running the model %s needs a text "
                       "(-f TEXT or -p PROMPT)", path);
          return FALSE;
        }
      g_free (a->o.model_path);
      a->o.model_path = g_strdup (path);
      in->model = rs_cli_model_open (&a->o, error);
      if (in->model == NULL)
        return FALSE;
      in->name = model_name (path);
      in->seq_starts = g_array_new (FALSE, FALSE, sizeof (int64_t));
      Progress pr = { "chunks", 0 };
      double t0 = now_s ();
      in->trace = rs_trace_from_text (in->model->model, in->model->tok, text, &a->o.run, ivs, n_ivs,
                                      a->max_chunks, in->seq_starts, progress_cb, &pr, NULL, error);
      if (in->trace == NULL)
        return FALSE;
      fprintf (stderr, "%s: %" G_GINT64_FORMAT " tokens in %u chunks, %.2f s\n", path,
               in->trace->n_tokens, in->seq_starts->len, now_s () - t0);
    }
  /* --seq-len cuts the trace into sequences of that many tokens instead. */
  if (a->seq_len > 0)
    {
      if (in->seq_starts == NULL)
        in->seq_starts = g_array_new (FALSE, FALSE, sizeof (int64_t));
      g_array_set_size (in->seq_starts, 0);
      for (int64_t t = 0; t < in->trace->n_tokens; t += a->seq_len)
        g_array_append_val (in->seq_starts, t);
    }
  if (in->seq_starts != NULL && in->seq_starts->len <= 1)
    g_clear_pointer (&in->seq_starts, g_array_unref);
  return TRUE;
}

static const int64_t *
starts_of (const Input *in, int *n)
{
  *n = in->seq_starts ? (int) in->seq_starts->len : 0;
  return in->seq_starts ? (const int64_t *) (const void *) in->seq_starts->data : NULL;
}

/* ---- analyze: each kind ------------------------------------------------- */

static int
do_load (Input *in, AnalyzeOpts *a, RsRouteSource routes, GError **error)
{
  RsLoadParams p;
  rs_load_params_init (&p);
  p.routes = routes;
  p.t_first = a->t_from;
  p.t_end = a->t_to;
  g_autoptr (RsLoadResult) r = rs_load_compute (in->trace, &p, error);
  if (r == NULL)
    return rs_cli_fail ((*error)->message);
  const int L = r->n_layer, E = r->n_expert;
  if (a->o.json)
    {
      g_autoptr (JsonBuilder) b = json_builder_new ();
      json_builder_begin_object (b);
      j_member_int (b, "n_tokens", r->n_tokens);
      json_builder_set_member_name (b, "layers");
      json_builder_begin_array (b);
      for (int l = 0; l < L; l++)
        if (r->has_experts[l])
          json_builder_add_int_value (b, l);
      json_builder_end_array (b);
      j_member_matrix_i64 (b, "counts", r->counts, L, E);
      j_member_matrix (b, "mean_prob", r->mean_prob, L, E);
      j_member_matrix (b, "mean_weight", r->mean_weight, L, E);
      j_member_doubles (b, "max_over_mean", r->max_over_mean, L);
      j_member_doubles (b, "cv", r->cv, L);
      j_member_doubles (b, "norm_entropy", r->norm_entropy, L);
      json_builder_set_member_name (b, "never_selected");
      json_builder_begin_array (b);
      for (int l = 0; l < L; l++)
        {
          json_builder_begin_array (b);
          for (int e = 0; e < E && r->has_experts[l]; e++)
            if (r->counts[l * E + e] == 0)
              json_builder_add_int_value (b, e);
          json_builder_end_array (b);
        }
      json_builder_end_array (b);
      json_builder_end_object (b);
      rs_cli_print_json (b);
    }
  else
    {
      printf ("%" G_GINT64_FORMAT " tokens\n%5s %10s %8s %9s %6s  %s\n", r->n_tokens, "layer",
              "max/mean", "CV", "H/ln E", "never", "most selected (count)");
      for (int l = 0; l < L; l++)
        {
          if (!r->has_experts[l])
            {
              printf ("%5d  (no experts)\n", l);
              continue;
            }
          int best = 0;
          for (int e = 1; e < E; e++)
            best = r->counts[l * E + e] > r->counts[l * E + best] ? e : best;
          printf ("%5d %10.3f %8.3f %9.3f %6d  %d (%" G_GINT64_FORMAT ")\n", l, r->max_over_mean[l],
                  r->cv[l], r->norm_entropy[l], r->n_never[l], best, r->counts[l * E + best]);
        }
    }
  if (a->figure)
    {
      RsLoadChart stat = RS_LOAD_CHART_COUNT;
      if (g_strcmp0 (a->stat, "mean_prob") == 0)
        stat = RS_LOAD_CHART_MEAN_PROB;
      else if (g_strcmp0 (a->stat, "mean_weight") == 0)
        stat = RS_LOAD_CHART_MEAN_WEIGHT;
      else if (a->stat != NULL && g_strcmp0 (a->stat, "count") != 0)
        return rs_cli_fail ("--stat takes count, mean_prob or mean_weight");
      g_autoptr (RsPlot) plot = rs_plot_new ();
      rs_analysis_plot_load (plot, r, stat, in->name, RS_COLORMAP_VIRIDIS, a->log_scale);
      if (!export_figure (plot, a->figure, error))
        return rs_cli_fail ((*error)->message);
    }
  return 0;
}

static int
do_entropy (Input *in, AnalyzeOpts *a, RsRouteSource routes, GError **error)
{
  RsEntropyParams p;
  rs_entropy_params_init (&p);
  p.routes = routes;
  g_autoptr (RsEntropyResult) r = rs_entropy_compute (in->trace, &p, error);
  if (r == NULL)
    return rs_cli_fail ((*error)->message);
  const int L = r->n_layer;
  if (a->o.json)
    {
      g_autoptr (JsonBuilder) b = json_builder_new ();
      json_builder_begin_object (b);
      j_member_int (b, "n_tokens", r->n_tokens);
      j_member_doubles (b, "mean_entropy", r->mean_entropy, L);
      j_member_doubles (b, "mean_norm_entropy", r->mean_norm_entropy, L);
      j_member_doubles (b, "mean_top1", r->mean_top1, L);
      j_member_doubles (b, "mean_selected_mass", r->mean_selected_mass, L);
      if (!a->no_tokens)
        {
          /* per token: [[per layer] per token] */
          j_member_matrix_f (b, "entropy", r->entropy, r->n_tokens, L);
          j_member_matrix_f (b, "top1", r->top1, r->n_tokens, L);
          j_member_matrix_f (b, "margin", r->margin, r->n_tokens, L);
          j_member_matrix_f (b, "selected_mass", r->selected_mass, r->n_tokens, L);
        }
      json_builder_end_object (b);
      rs_cli_print_json (b);
    }
  else
    {
      char b1[32], b2[32], b3[32], b4[32];
      printf ("%" G_GINT64_FORMAT " tokens, means over them\n%5s %10s %8s %8s %10s\n", r->n_tokens,
              "layer", "H (nats)", "H/ln E", "top-1 p", "selected p");
      for (int l = 0; l < L; l++)
        printf ("%5d %10s %8s %8s %10s\n", l, fmt_double (b1, 32, "%.4f", r->mean_entropy[l]),
                fmt_double (b2, 32, "%.4f", r->mean_norm_entropy[l]),
                fmt_double (b3, 32, "%.4f", r->mean_top1[l]),
                fmt_double (b4, 32, "%.4f", r->mean_selected_mass[l]));
    }
  if (a->figure)
    {
      g_autoptr (RsPlot) plot = rs_plot_new ();
      rs_analysis_plot_entropy (plot, r);
      if (!export_figure (plot, a->figure, error))
        return rs_cli_fail ((*error)->message);
    }
  return 0;
}

static int
do_super (Input *in, AnalyzeOpts *a, GError **error)
{
  RsSuperParams p;
  rs_super_params_init (&p);
  if (a->fraction > 0)
    p.layer_fraction = a->fraction;
  if (a->percentile > 0)
    p.percentile = a->percentile;
  if (a->divisor > 0)
    p.max_divisor = a->divisor;
  g_autoptr (RsSuperResult) r = rs_super_compute (in->trace, &p, error);
  if (r == NULL)
    return rs_cli_fail ((*error)->message);
  const int L = r->n_layer, E = r->n_expert;

  /* Ablation: the perplexity of a text with the super experts disabled. */
  RsPplResult ppl = { 0 };
  gboolean ablated = FALSE;
  g_autoptr (GArray) sivs = rs_super_interventions (r);
  if (a->ablate != NULL)
    {
      if (in->model == NULL)
        return rs_cli_fail ("--ablate needs the model (give it as TRACE_OR_MODEL or with -m)");
      g_autofree char *text = NULL;
      if (!read_text (a->ablate, &text, error))
        return rs_cli_fail ((*error)->message);
      RsPplParams pp;
      rs_ppl_params_init (&pp);
      pp.session = a->o.run.session;
      pp.max_chunks = a->max_chunks;
      Progress pr = { "ablation chunks", 0 };
      if (!rs_ppl_compute (in->model->model, in->model->tok, text, &pp, (RsIntervention *) sivs->data,
                           sivs->len, progress_cb, &pr, NULL, &ppl, error))
        return rs_cli_fail ((*error)->message);
      ablated = TRUE;
    }

  if (a->o.json)
    {
      g_autoptr (JsonBuilder) b = json_builder_new ();
      json_builder_begin_object (b);
      j_member_matrix_f (b, "output_max", r->output_max, L, E);
      json_builder_set_member_name (b, "channel");
      json_builder_begin_array (b);
      for (int l = 0; l < L; l++)
        {
          json_builder_begin_array (b);
          for (int e = 0; e < E; e++)
            json_builder_add_int_value (b, r->channel[l * E + e]);
          json_builder_end_array (b);
        }
      json_builder_end_array (b);
      j_member_double (b, "threshold", r->threshold);
      j_member_double (b, "percentile", p.percentile);
      j_member_double (b, "percentile_value", r->percentile_value);
      j_member_double (b, "max_threshold", r->max_threshold);
      j_member_double (b, "pool_max", r->pool_max);
      j_member_int (b, "pool_layers", r->n_pool_layers);
      j_member_int (b, "pool_size", r->pool_size);
      json_builder_set_member_name (b, "super_experts");
      json_builder_begin_array (b);
      for (guint i = 0; i < r->super_experts->len; i++)
        {
          const RsSuperExpert *se = &g_array_index (r->super_experts, RsSuperExpert, i);
          json_builder_begin_object (b);
          j_member_int (b, "layer", se->layer);
          j_member_int (b, "expert", se->expert);
          j_member_double (b, "value", se->value);
          j_member_int (b, "channel", se->channel);
          j_member_int (b, "token", se->token);
          json_builder_end_object (b);
        }
      json_builder_end_array (b);
      if (ablated)
        {
          json_builder_set_member_name (b, "ablation");
          json_builder_begin_object (b);
          j_member_ivs (b, "interventions", (RsIntervention *) sivs->data, sivs->len);
          j_member_int (b, "n_scored", ppl.n_scored);
          j_member_double (b, "ppl", ppl.ppl);
          j_member_double (b, "ppl_ablated", ppl.steered ? ppl.ppl_steered : ppl.ppl);
          j_member_double (b, "kl", ppl.steered ? ppl.kl : 0.0);
          json_builder_end_object (b);
        }
      json_builder_end_object (b);
      rs_cli_print_json (b);
    }
  else
    {
      printf ("pool: %" G_GINT64_FORMAT " experts of layers 0..%d; P%g = %.4g, max = %.4g, "
              "floor(max/%g) = %.4g; threshold %.4g\n", r->pool_size, r->n_pool_layers - 1,
              p.percentile, r->percentile_value, r->pool_max, p.max_divisor, r->max_threshold,
              r->threshold);
      printf ("%u super experts\n", r->super_experts->len);
      for (guint i = 0; i < r->super_experts->len; i++)
        {
          const RsSuperExpert *se = &g_array_index (r->super_experts, RsSuperExpert, i);
          const char *tok = se->token >= 0 && (guint) se->token < in->trace->token_text->len
                              ? g_ptr_array_index (in->trace->token_text, se->token) : "";
          g_autofree char *q = g_strescape (tok, NULL);
          printf ("  layer %3d expert %4d: %10.4g at channel %d (token %" G_GINT64_FORMAT " \"%s\")\n",
                  se->layer, se->expert, se->value, se->channel, se->token, q);
        }
      if (ablated)
        {
          g_autofree char *flags = interventions_as_flags ((RsIntervention *) sivs->data, sivs->len);
          printf ("ablation (%s): perplexity %.4f -> %.4f over %" G_GINT64_FORMAT " tokens",
                  sivs->len ? flags : "nothing to disable", ppl.ppl,
                  ppl.steered ? ppl.ppl_steered : ppl.ppl, ppl.n_scored);
          if (ppl.steered)
            printf (", mean KL %.4g nats", ppl.kl);
          printf ("\n");
        }
    }
  if (a->figure)
    {
      g_autoptr (RsPlot) plot = rs_plot_new ();
      rs_analysis_plot_super (plot, r, in->name);
      if (!export_figure (plot, a->figure, error))
        return rs_cli_fail ((*error)->message);
    }
  return 0;
}

static void
j_seg_map (JsonBuilder *b, const char *name, const RsLrcResult *r, const double *v)
{
  json_builder_set_member_name (b, name);
  json_builder_begin_object (b);
  for (int i = 0; i < r->n_seg; i++)
    {
      char key[16];
      g_snprintf (key, sizeof key, "%d", r->seg_lens[i]);
      j_member_double (b, key, v[i]);
    }
  json_builder_end_object (b);
}

static int
do_lrc (Input *in, AnalyzeOpts *a, RsRouteSource routes, GError **error)
{
  RsLrcParams p;
  rs_lrc_params_init (&p);
  p.routes = routes;
  if (a->seg_lens != NULL)
    {
      g_auto (GStrv) parts = g_strsplit (a->seg_lens, ",", -1);
      p.n_seg_lens = 0;
      for (char **s = parts; *s != NULL; s++)
        {
          char *end;
          long v = strtol (*s, &end, 10);
          if (end == *s || *end != '\0' || v < 1 || p.n_seg_lens >= RS_LRC_MAX_SEGS)
            return rs_cli_fail ("--seg-lens takes up to 8 positive lengths, e.g. 4,16,64,256");
          p.seg_lens[p.n_seg_lens++] = (int) v;
        }
    }
  if (a->cache_ratio > 0)
    p.cache_ratio = a->cache_ratio;
  if (a->seq_stride > 0)
    p.seq_stride = a->seq_stride;
  if (a->cold != NULL)
    {
      if (strcmp (a->cold, "miss") == 0)
        p.cold = RS_SCH_COLD_MISS;
      else if (strcmp (a->cold, "reference") == 0)
        p.cold = RS_SCH_COLD_REFERENCE;
      else
        return rs_cli_fail ("--cold takes miss or reference");
    }
  p.seq_starts = starts_of (in, &p.n_seq);
  double t0 = now_s ();
  g_autoptr (RsLrcResult) r = rs_lrc_compute (in->trace, &p, error);
  if (r == NULL)
    return rs_cli_fail ((*error)->message);
  double secs = now_s () - t0;
  const int L = r->n_layer, S = r->n_seg;
  if (a->o.json)
    {
      g_autoptr (JsonBuilder) b = json_builder_new ();
      json_builder_begin_object (b);
      j_seg_map (b, "srp", r, r->srp_model);
      j_seg_map (b, "sch", r, r->sch_model);
      g_autofree double *theta = g_new (double, S);
      for (int i = 0; i < S; i++)
        theta[i] = isnan (r->srp_model[i]) ? NAN : r->theta_model[i];
      j_seg_map (b, "theta", r, theta);
      j_seg_map (b, "best_m", r, r->best_m_model);
      j_seg_map (b, "sch_layer_mean", r, r->sch_layer_mean);
      j_member_double (b, "cache_ratio", p.cache_ratio);
      j_member_int (b, "cache_size", r->cache_layer);
      j_member_int (b, "cache_size_model", r->cache_model);
      j_member_int (b, "n_sequences", MAX (p.n_seq, 1));
      json_builder_set_member_name (b, "windows");
      json_builder_begin_object (b);
      for (int i = 0; i < S; i++)
        {
          char key[16];
          g_snprintf (key, sizeof key, "%d", r->seg_lens[i]);
          j_member_int (b, key, r->n_windows[i]);
        }
      json_builder_end_object (b);
      json_builder_set_member_name (b, "layers");
      json_builder_begin_object (b);
      const char *names[2] = { "srp", "sch" };
      const double *arrs[2] = { r->srp_layer, r->sch_layer };
      for (int k = 0; k < 2; k++)
        {
          json_builder_set_member_name (b, names[k]);
          json_builder_begin_object (b);
          for (int i = 0; i < S; i++)
            {
              char key[16];
              g_snprintf (key, sizeof key, "%d", r->seg_lens[i]);
              j_member_doubles (b, key, arrs[k] + (gsize) i * L, L);
            }
          json_builder_end_object (b);
        }
      json_builder_end_object (b);
      json_builder_end_object (b);
      rs_cli_print_json (b);
    }
  else
    {
      char b1[32], b2[32], b3[32];
      printf ("%" G_GINT64_FORMAT " tokens in %d sequence(s); SCH cache %d experts per layer, %d "
              "model-wide (%.3g x k); %.2f s\n", in->trace->n_tokens, MAX (p.n_seq, 1), r->cache_layer,
              r->cache_model, p.cache_ratio, secs);
      printf ("%6s %8s %6s %8s %8s %14s\n", "m", "SRP", "theta", "best_m", "SCH", "SCH layer mean");
      for (int i = 0; i < S; i++)
        printf ("%6d %8s %6d %8s %8.4f %14.4f\n", r->seg_lens[i],
                fmt_double (b1, 32, "%.4f", r->srp_model[i]), r->theta_model[i],
                fmt_double (b2, 32, "%.3f", r->best_m_model[i]), r->sch_model[i],
                r->sch_layer_mean[i]);
      printf ("per layer (SRP / SCH):\n%5s", "layer");
      for (int i = 0; i < S; i++)
        printf (" %15d", r->seg_lens[i]);
      printf ("\n");
      for (int l = 0; l < L; l++)
        {
          if (!r->has_experts[l])
            continue;
          printf ("%5d", l);
          for (int i = 0; i < S; i++)
            printf (" %7s/%7s", fmt_double (b1, 32, "%.4f", r->srp_layer[i * L + l]),
                    fmt_double (b3, 32, "%.4f", r->sch_layer[i * L + l]));
          printf ("\n");
        }
    }
  if (a->figure)
    {
      if (a->chart != NULL && strcmp (a->chart, "srp") != 0 && strcmp (a->chart, "sch") != 0)
        return rs_cli_fail ("--chart takes srp or sch");
      g_autoptr (RsPlot) plot = rs_plot_new ();
      rs_analysis_plot_lrc (plot, r, g_strcmp0 (a->chart, "sch") != 0);
      if (!export_figure (plot, a->figure, error))
        return rs_cli_fail ((*error)->message);
    }
  return 0;
}

static int
do_special (Input *in, AnalyzeOpts *a, RsRouteSource routes, GError **error)
{
  RsSpecialParams p;
  rs_special_params_init (&p);
  p.routes = routes;
  if (a->top_n > 0)
    p.top_n = a->top_n;
  if (a->min_count > 0)
    p.min_count = a->min_count;
  if (a->min_tok_occ >= 0)
    p.min_token_occurrences = a->min_tok_occ;
  if (a->min_pos_occ >= 0)
    p.min_position_occurrences = a->min_pos_occ;
  p.seq_starts = starts_of (in, &p.n_seq);
  g_autoptr (RsSpecialResult) r = rs_special_compute (in->trace, &p, error);
  if (r == NULL)
    return rs_cli_fail ((*error)->message);
  const int L = r->n_layer, E = r->n_expert, N = r->top_n;
  g_autoptr (GArray) layers = NULL;
  if (a->layers != NULL && (layers = parse_layers (a->layers, L, error)) == NULL)
    return rs_cli_fail ((*error)->message);
  if (layers == NULL)
    {
      layers = g_array_new (FALSE, FALSE, sizeof (int));
      for (int l = 0; l < L; l++)
        if (r->has_experts[l])
          g_array_append_val (layers, l);
    }
  if (a->o.json)
    {
      g_autoptr (JsonBuilder) b = json_builder_new ();
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "layers");
      json_builder_begin_array (b);
      for (guint i = 0; i < layers->len; i++)
        json_builder_add_int_value (b, g_array_index (layers, int, i));
      json_builder_end_array (b);
      /* favourites [layer of "layers"][expert][rank] */
      json_builder_set_member_name (b, "favourites");
      json_builder_begin_array (b);
      for (guint i = 0; i < layers->len; i++)
        {
          int l = g_array_index (layers, int, i);
          json_builder_begin_array (b);
          for (int e = 0; e < E; e++)
            {
              json_builder_begin_array (b);
              for (int k = 0; k < N; k++)
                {
                  const RsFavouriteToken *f = &r->favourites[((gsize) l * E + e) * N + k];
                  if (f->token_id < 0)
                    break;
                  json_builder_begin_object (b);
                  j_member_int (b, "token_id", f->token_id);
                  json_builder_set_member_name (b, "text");
                  json_builder_add_string_value (b, f->text ? f->text : "");
                  j_member_int (b, "count", f->count);
                  j_member_int (b, "token_count", f->token_count);
                  j_member_double (b, "lift", f->lift);
                  json_builder_end_object (b);
                }
              json_builder_end_array (b);
            }
          json_builder_end_array (b);
        }
      json_builder_end_array (b);
      json_builder_set_member_name (b, "context_independence");
      json_builder_begin_object (b);
      j_member_doubles (b, "token_std", r->mean_token_std, L);
      j_member_doubles (b, "position_std", r->mean_position_std, L);
      j_member_int (b, "n_token_ids", r->n_token_ids);
      j_member_int (b, "n_positions", r->n_positions);
      json_builder_end_object (b);
      json_builder_set_member_name (b, "coactivation");
      json_builder_begin_array (b);
      for (guint i = 0; i < layers->len; i++)
        {
          int l = g_array_index (layers, int, i);
          json_builder_begin_array (b);
          for (int e = 0; e < E; e++)
            {
              json_builder_begin_array (b);
              for (int f = 0; f < E; f++)
                json_builder_add_int_value (b, r->coact[((gsize) l * E + e) * E + f]);
              json_builder_end_array (b);
            }
          json_builder_end_array (b);
        }
      json_builder_end_array (b);
      json_builder_end_object (b);
      rs_cli_print_json (b);
    }
  else
    {
      char b1[32], b2[32];
      printf ("context independence (std over experts of the routing distribution; %d token ids "
              "with > %" G_GINT64_FORMAT " occurrences, %d positions with > %" G_GINT64_FORMAT "):\n",
              r->n_token_ids, p.min_token_occurrences, r->n_positions, p.min_position_occurrences);
      for (guint i = 0; i < layers->len; i++)
        {
          int l = g_array_index (layers, int, i);
          printf ("  layer %3d: per token id %s, per position %s\n", l,
                  fmt_double (b1, 32, "%.4f", r->mean_token_std[l]),
                  fmt_double (b2, 32, "%.4f", r->mean_position_std[l]));
        }
      printf ("favourite tokens (lift; routed at least %" G_GINT64_FORMAT " times):\n", p.min_count);
      for (guint i = 0; i < layers->len; i++)
        {
          int l = g_array_index (layers, int, i);
          for (int e = 0; e < E; e++)
            {
              printf ("  layer %3d expert %4d:", l, e);
              for (int k = 0; k < N; k++)
                {
                  const RsFavouriteToken *f = &r->favourites[((gsize) l * E + e) * N + k];
                  if (f->token_id < 0)
                    break;
                  g_autofree char *q = g_strescape (f->text ? f->text : "", NULL);
                  printf (" \"%s\" %.2f", q, f->lift);
                }
              printf ("\n");
            }
        }
    }
  if (a->figure)
    {
      int l = a->layer >= 0 ? a->layer : (layers->len ? g_array_index (layers, int, 0) : 0);
      if (l >= L)
        return rs_cli_fail ("--layer is out of range");
      g_autoptr (RsPlot) plot = rs_plot_new ();
      rs_analysis_plot_coact (plot, r, l);
      if (!export_figure (plot, a->figure, error))
        return rs_cli_fail ((*error)->message);
    }
  return 0;
}

int
rs_cli_analyze (int argc, char **argv)
{
  /* `analyze align MODEL ...` is `align -m MODEL ...` */
  if (argc >= 2 && strcmp (argv[1], "align") == 0)
    {
      g_autoptr (GPtrArray) av = g_ptr_array_new ();
      g_ptr_array_add (av, (char *) "align");
      int i = 2;
      if (argc >= 3 && argv[2][0] != '-')
        {
          g_ptr_array_add (av, (char *) "-m");
          g_ptr_array_add (av, argv[2]);
          i = 3;
        }
      for (; i < argc; i++)
        g_ptr_array_add (av, argv[i]);
      g_ptr_array_add (av, NULL);
      return rs_cli_align (av->len - 1, (char **) av->pdata);
    }

  AnalyzeOpts a = { .layer = -1, .min_tok_occ = -1, .min_pos_occ = -1 };
  GOptionEntry entries[] = {
    { "file", 'f', 0, G_OPTION_ARG_FILENAME, &a.text_file, "Text to run the model on (a .gguf input)", "TEXT" },
    { "prompt", 'p', 0, G_OPTION_ARG_STRING, &a.prompt, "Prompt to run the model on (a .gguf input)", "PROMPT" },
    { "max-chunks", 0, 0, G_OPTION_ARG_INT, &a.max_chunks, "Run at most N context-sized chunks of the text", "N" },
    { "figure", 0, 0, G_OPTION_ARG_FILENAME, &a.figure, "Write the chart the GUI shows (.png, .svg or .pdf)", "OUT" },
    { "routes", 0, 0, G_OPTION_ARG_STRING, &a.routes, "Count the experts that ran (ran, default) or the untouched router's choice (base)", "ran|base" },
    { "seq-len", 0, 0, G_OPTION_ARG_INT, &a.seq_len, "Cut the trace into sequences of N tokens (lrc, special; default: the chunks, or one sequence)", "N" },
    { "layer", 0, 0, G_OPTION_ARG_INT, &a.layer, "Layer of a one-layer figure (special: co-activation)", "L" },
    { "layers", 0, 0, G_OPTION_ARG_STRING, &a.layers, "Layers to report (special; default: all with experts)", "LIST" },
    { "from", 0, 0, G_OPTION_ARG_INT64, &a.t_from, "load: first token counted", "T" },
    { "to", 0, 0, G_OPTION_ARG_INT64, &a.t_to, "load: end of the tokens counted (exclusive)", "T" },
    { "stat", 0, 0, G_OPTION_ARG_STRING, &a.stat, "load figure: count (default), mean_prob or mean_weight", "STAT" },
    { "log", 0, 0, G_OPTION_ARG_NONE, &a.log_scale, "load figure: logarithmic colours", NULL },
    { "no-tokens", 0, 0, G_OPTION_ARG_NONE, &a.no_tokens, "entropy: layer means only in the JSON", NULL },
    { "seg-lens", 0, 0, G_OPTION_ARG_STRING, &a.seg_lens, "lrc: segment lengths (default 4,16,64,256)", "LIST" },
    { "cache-ratio", 0, 0, G_OPTION_ARG_DOUBLE, &a.cache_ratio, "lrc: cache size / k (default 2)", "R" },
    { "seq-stride", 0, 0, G_OPTION_ARG_INT, &a.seq_stride, "lrc: SCH over every N-th sequence (default 1)", "N" },
    { "chart", 0, 0, G_OPTION_ARG_STRING, &a.chart, "lrc figure: srp (default) or sch", "srp|sch" },
    { "cold", 0, 0, G_OPTION_ARG_STRING, &a.cold, "lrc: first accesses: miss (default) or reference (as moe-lrc's code)", "POLICY" },
    { "fraction", 0, 0, G_OPTION_ARG_DOUBLE, &a.fraction, "super: pool the first round(F x L) layers (default 0.75)", "F" },
    { "percentile", 0, 0, G_OPTION_ARG_DOUBLE, &a.percentile, "super: percentile of the pool (default 99.5)", "P" },
    { "divisor", 0, 0, G_OPTION_ARG_DOUBLE, &a.divisor, "super: also above floor(max / D) (default 10)", "D" },
    { "ablate", 0, 0, G_OPTION_ARG_FILENAME, &a.ablate, "super: perplexity of TEXT with the super experts disabled", "TEXT" },
    { "top-n", 0, 0, G_OPTION_ARG_INT, &a.top_n, "special: favourite tokens per expert (default 10)", "N" },
    { "min-count", 0, 0, G_OPTION_ARG_INT64, &a.min_count, "special: a favourite is routed to the expert at least N times (default 5)", "N" },
    { "min-token-occurrences", 0, 0, G_OPTION_ARG_INT64, &a.min_tok_occ, "special: token ids occurring more than N times (default 128)", "N" },
    { "min-position-occurrences", 0, 0, G_OPTION_ARG_INT64, &a.min_pos_occ, "special: positions occurring more than N times (default 128)", "N" },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("(load|entropy|align|super|lrc|special) TRACE.npz|MODEL.gguf - routing analyses");
  g_option_context_set_description (ctx,
    "A .npz is a saved trace; a model is run on -f TEXT or -p PROMPT (in chunks of the context,\n"
    "-c) with the intervention flags, and analysed. --json prints the data the GUI plots.\n"
    "`analyze align MODEL` is `align -m MODEL`. See docs/analyses.md.");
  rs_cli_add_common_options (ctx, &a.o, entries);
  RsCliInterventionFlags *flags;
  rs_cli_add_intervention_options (ctx, &flags);
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return rs_cli_fail (error->message);
  if (argc < 2)
    return rs_cli_fail ("analyze needs a kind: load, entropy, align, super, lrc or special");
  const char *kind = argv[1];
  static const char *const kinds[] = { "load", "entropy", "super", "lrc", "special" };
  gboolean known = FALSE;
  for (gsize i = 0; i < G_N_ELEMENTS (kinds); i++)
    known |= strcmp (kind, kinds[i]) == 0;
  if (!known)
    {
      g_autofree char *msg = g_strdup_printf ("unknown analysis '%s' (load, entropy, align, super, lrc, special)", kind);
      return rs_cli_fail (msg);
    }
  const char *path = argc >= 3 ? argv[2] : a.o.model_path;
  if (path == NULL || argc > 3)
    return rs_cli_fail ("analyze needs exactly one TRACE.npz or MODEL.gguf");
  RsRouteSource routes;
  if (!parse_routes (a.routes, &routes, &error))
    return rs_cli_fail (error->message);
  g_autoptr (GArray) ivs = rs_cli_parse_interventions (flags, &error);
  if (ivs == NULL)
    return rs_cli_fail (error->message);

  Input in;
  if (!input_open (&in, path, &a, (RsIntervention *) ivs->data, ivs->len, &error))
    {
      input_clear (&in);
      return rs_cli_fail (error->message);
    }
  double t0 = now_s ();
  int rc;
  if (strcmp (kind, "load") == 0)
    rc = do_load (&in, &a, routes, &error);
  else if (strcmp (kind, "entropy") == 0)
    rc = do_entropy (&in, &a, routes, &error);
  else if (strcmp (kind, "super") == 0)
    rc = do_super (&in, &a, &error);
  else if (strcmp (kind, "lrc") == 0)
    rc = do_lrc (&in, &a, routes, &error);
  else
    rc = do_special (&in, &a, routes, &error);
  if (rc == 0 && !a.o.json)
    fprintf (stderr, "%s: %.3f s\n", kind, now_s () - t0);
  input_clear (&in);
  return rc;
}

/* ---- align -------------------------------------------------------------- */

/* Reads one text per non-empty line. */
static GPtrArray *
read_lines (const char *path, GError **error)
{
  g_autofree char *text = NULL;
  if (!read_text (path, &text, error))
    return NULL;
  GPtrArray *lines = g_ptr_array_new_with_free_func (g_free);
  g_auto (GStrv) parts = g_strsplit (text, "\n", -1);
  for (char **p = parts; *p != NULL; p++)
    {
      g_strchomp (*p);
      if (**p != '\0')
        g_ptr_array_add (lines, g_strdup (*p));
    }
  if (lines->len == 0)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "%s has no text", path);
      g_ptr_array_unref (lines);
      return NULL;
    }
  return lines;
}

static void
j_align_jsd (JsonBuilder *b, const char *name, const RsAlignResult *r, const double *v, GArray *layers)
{
  json_builder_set_member_name (b, name);
  json_builder_begin_object (b);
  for (int g = 0; g < r->n_lang; g++)
    {
      if (g == r->ref)
        continue;
      json_builder_set_member_name (b, r->langs[g]);
      json_builder_begin_array (b);
      for (guint i = 0; i < layers->len; i++)
        j_double (b, v[g * r->n_layer + g_array_index (layers, int, i)]);
      json_builder_end_array (b);
    }
  json_builder_end_object (b);
}

int
rs_cli_align (int argc, char **argv)
{
  RsCliCommon o = { 0 };
  char *corpus_path = NULL, *ref = NULL, *layers_text = NULL, *mode_text = NULL, *figure = NULL;
  char *matrix_figure = NULL, *task_file = NULL, *steer_layers = NULL;
  int matrix_layer = -1, steer_top_n = 0;
  gint64 max_ids = 0;
  double sigma = 0.0, steer_bias = NAN, steer_soft = NAN;
  gboolean include_special = FALSE, with_steering = FALSE;
  GOptionEntry entries[] = {
    { "corpus", 0, 0, G_OPTION_ARG_FILENAME, &corpus_path, "Parallel corpus: id<TAB>lang<TAB>text lines", "PARALLEL.tsv" },
    { "ref", 0, 0, G_OPTION_ARG_STRING, &ref, "Reference language (default en)", "LANG" },
    { "layers", 0, 0, G_OPTION_ARG_STRING, &layers_text, "Layers to report (default: all with experts)", "LIST" },
    { "mode", 0, 0, G_OPTION_ARG_STRING, &mode_text, "Expert importance: mean_prob (the paper, default) or topk_weight", "MODE" },
    { "matrix-layer", 0, 0, G_OPTION_ARG_INT, &matrix_layer, "Layer of the language x language matrix (default: the middle layer)", "L" },
    { "max-ids", 0, 0, G_OPTION_ARG_INT64, &max_ids, "Use the first N ids of the corpus", "N" },
    { "include-special", 0, 0, G_OPTION_ARG_NONE, &include_special, "Average importance over BOS and control tokens too", NULL },
    { "sigma", 0, 0, G_OPTION_ARG_DOUBLE, &sigma, "Multilingual-specialised experts: diff > N std (default 3)", "N" },
    { "task-file", 0, 0, G_OPTION_ARG_FILENAME, &task_file, "English task texts, one per line: task experts are the experts they use more than the corpus' reference sentences", "FILE" },
    { "steer-layers", 0, 0, G_OPTION_ARG_STRING, &steer_layers, "Task experts and steering in layers A-B (default: the middle layers)", "A-B" },
    { "steer-top-n", 0, 0, G_OPTION_ARG_INT, &steer_top_n, "Task experts per layer (default: the model's k)", "N" },
    { "steer-bias", 0, 0, G_OPTION_ARG_DOUBLE, &steer_bias, "Steering: add D to the task experts' logits (default 1.0)", "D" },
    { "steer-soft", 0, 0, G_OPTION_ARG_DOUBLE, &steer_soft, "Steering: a soft bias of strength S instead", "S" },
    { "with-steering", 0, 0, G_OPTION_ARG_NONE, &with_steering, "Run the corpus again with the task-expert steering and report both", NULL },
    { "figure", 0, 0, G_OPTION_ARG_FILENAME, &figure, "JSD against the layer per language (.png, .svg, .pdf)", "OUT" },
    { "matrix-figure", 0, 0, G_OPTION_ARG_FILENAME, &matrix_figure, "The language x language matrix", "OUT" },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- cross-lingual routing alignment over a parallel corpus");
  g_option_context_set_description (ctx, "Bandarkar et al.'s analysis; see docs/analyses.md.");
  rs_cli_add_common_options (ctx, &o, entries);
  RsCliInterventionFlags *flags;
  rs_cli_add_intervention_options (ctx, &flags);
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return rs_cli_fail (error->message);
  if (corpus_path == NULL || o.model_path == NULL)
    return rs_cli_fail ("align needs -m MODEL and --corpus PARALLEL.tsv");
  if (argc > 1)
    return rs_cli_fail ("align takes no positional arguments");
  RsImportanceMode mode = RS_IMPORTANCE_MEAN_PROB;
  if (mode_text != NULL && !rs_importance_mode_from_name (mode_text, &mode))
    return rs_cli_fail ("--mode takes mean_prob or topk_weight");
  g_autoptr (GArray) ivs = rs_cli_parse_interventions (flags, &error);
  if (ivs == NULL)
    return rs_cli_fail (error->message);
  g_autoptr (RsCorpus) corpus = rs_corpus_load (corpus_path, &error);
  if (corpus == NULL)
    return rs_cli_fail (error->message);
  g_autoptr (RsCliModel) m = rs_cli_model_open (&o, &error);
  if (m == NULL)
    return rs_cli_fail (error->message);
  const RsHparams *hp = rs_model_hparams (m->model);
  const int L = hp->n_layer, E = hp->n_expert;

  g_autoptr (GArray) layers = NULL;
  if (layers_text != NULL && (layers = parse_layers (layers_text, L, &error)) == NULL)
    return rs_cli_fail (error->message);
  if (layers == NULL)
    {
      layers = g_array_new (FALSE, FALSE, sizeof (int));
      for (int l = 0; l < L; l++)
        if (rs_model_layer (m->model, l)->is_moe)
          g_array_append_val (layers, l);
    }
  int sf = -1, sl = -1;
  if (steer_layers != NULL)
    {
      g_autoptr (GArray) sls = parse_layers (steer_layers, L, &error);
      if (sls == NULL)
        return rs_cli_fail (error->message);
      sf = g_array_index (sls, int, 0);
      sl = g_array_index (sls, int, sls->len - 1);
    }

  RsAlignRunParams rp;
  rs_align_run_params_init (&rp);
  rp.session = o.run.session;
  if (ref != NULL)
    rp.ref_lang = ref;
  rp.include_special = include_special;
  rp.max_ids = max_ids;
  rp.ivs = (const RsIntervention *) ivs->data;
  rp.n_ivs = ivs->len;
  Progress pr = { "sentences", 0 };
  double t0 = now_s ();
  g_autoptr (RsAlignResult) r = rs_align_run (m->model, m->tok, corpus, &rp, progress_cb, &pr, NULL, &error);
  if (r == NULL)
    return rs_cli_fail (error->message);
  double total_s = now_s () - t0;

  /* Multilingual-specialised experts; task experts and their steering. */
  RsSpecialisedParams spp;
  rs_specialised_params_init (&spp);
  spp.mode = mode;
  if (sigma > 0)
    spp.n_sigma = sigma;
  g_autoptr (GArray) spec = rs_align_specialised_experts (r, &spp);
  RsTaskExpertParams tp;
  rs_task_expert_params_init (&tp);
  tp.mode = mode;
  tp.layer_first = sf;
  tp.layer_last = sl;
  tp.top_n = steer_top_n;
  if (!isnan (steer_soft))
    {
      tp.steer_kind = RS_INTERVENE_SOFT_BIAS;
      tp.steer_value = steer_soft;
    }
  else if (!isnan (steer_bias))
    tp.steer_value = steer_bias;
  const double *ref_imp = r->mean_importance[mode] + (gsize) r->ref * L * E;
  g_autofree double *task_imp = NULL;
  if (task_file != NULL)
    {
      g_autoptr (GPtrArray) texts = read_lines (task_file, &error);
      if (texts == NULL)
        return rs_cli_fail (error->message);
      task_imp = g_new (double, (gsize) RS_IMPORTANCE_N_MODES * L * E);
      Progress tpr = { "task texts", 0 };
      if (!rs_importance_run_texts (m->model, m->tok, (const char *const *) texts->pdata, texts->len, &rp,
                                    task_imp, progress_cb, &tpr, NULL, &error))
        return rs_cli_fail (error->message);
    }
  g_autoptr (GArray) task = task_imp
    ? rs_task_experts (task_imp + (gsize) mode * L * E, ref_imp, L, E, hp->n_expert_used, r->has_experts, &tp)
    : rs_task_experts (ref_imp, NULL, L, E, hp->n_expert_used, r->has_experts, &tp);
  g_autoptr (GArray) steer = rs_task_expert_interventions (task, &tp);
  g_autofree char *steer_flags = interventions_as_flags ((RsIntervention *) steer->data, steer->len);

  g_autoptr (RsAlignResult) rs = NULL;
  if (with_steering && steer->len > 0)
    {
      g_autoptr (GArray) all = g_array_new (FALSE, FALSE, sizeof (RsIntervention));
      g_array_append_vals (all, ivs->data, ivs->len);
      g_array_append_vals (all, steer->data, steer->len);
      rp.ivs = (const RsIntervention *) all->data;
      rp.n_ivs = all->len;
      Progress spr = { "steered sentences", 0 };
      rs = rs_align_run (m->model, m->tok, corpus, &rp, progress_cb, &spr, NULL, &error);
      if (rs == NULL)
        return rs_cli_fail (error->message);
    }

  if (matrix_layer < 0)
    matrix_layer = g_array_index (layers, int, layers->len / 2);
  if (matrix_layer >= L)
    return rs_cli_fail ("--matrix-layer is out of range");
  const int N = r->n_lang;
  int mf, ml;
  if (sf >= 0)
    mf = sf, ml = sl;
  else
    rs_align_middle_layers (L, &mf, &ml);

  if (o.json)
    {
      g_autoptr (JsonBuilder) b = json_builder_new ();
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "layers");
      json_builder_begin_array (b);
      for (guint i = 0; i < layers->len; i++)
        json_builder_add_int_value (b, g_array_index (layers, int, i));
      json_builder_end_array (b);
      json_builder_set_member_name (b, "mode");
      json_builder_add_string_value (b, rs_importance_mode_name (mode));
      json_builder_set_member_name (b, "ref");
      json_builder_add_string_value (b, r->ref >= 0 ? r->langs[r->ref] : "");
      json_builder_set_member_name (b, "langs");
      json_builder_begin_array (b);
      for (int g = 0; g < N; g++)
        json_builder_add_string_value (b, r->langs[g]);
      json_builder_end_array (b);
      j_align_jsd (b, "jsd", r, r->jsd[mode], layers);
      j_align_jsd (b, "jsd_std", r, r->jsd_std[mode], layers);
      j_align_jsd (b, "jsd_raw", r, r->jsd_raw[mode], layers);
      RsImportanceMode other = mode == RS_IMPORTANCE_MEAN_PROB ? RS_IMPORTANCE_TOPK_WEIGHT : RS_IMPORTANCE_MEAN_PROB;
      g_autofree char *other_name = g_strdup_printf ("jsd_%s", rs_importance_mode_name (other));
      j_align_jsd (b, other_name, r, r->jsd[other], layers);
      /* mean H(q) per language, the reference included */
      json_builder_set_member_name (b, "entropy");
      json_builder_begin_object (b);
      for (int g = 0; g < N; g++)
        {
          json_builder_set_member_name (b, r->langs[g]);
          json_builder_begin_array (b);
          for (guint i = 0; i < layers->len; i++)
            j_double (b, r->entropy[mode][g * L + g_array_index (layers, int, i)]);
          json_builder_end_array (b);
        }
      json_builder_end_object (b);
      json_builder_set_member_name (b, "n_pairs");
      json_builder_begin_object (b);
      for (int g = 0; g < N; g++)
        j_member_int (b, r->langs[g], r->n_pairs[g]);
      json_builder_end_object (b);
      json_builder_set_member_name (b, "matrix");
      json_builder_begin_object (b);
      j_member_int (b, "layer", matrix_layer);
      json_builder_set_member_name (b, "values");
      json_builder_begin_array (b);
      for (int a = 0; a < N; a++)
        {
          json_builder_begin_array (b);
          for (int c = 0; c < N; c++)
            j_double (b, r->pair_jsd[mode][((gsize) a * N + c) * L + matrix_layer]);
          json_builder_end_array (b);
        }
      json_builder_end_array (b);
      json_builder_end_object (b);
      json_builder_set_member_name (b, "specialised");
      json_builder_begin_array (b);
      for (guint i = 0; i < spec->len; i++)
        {
          const RsSpecialisedExpert *se = &g_array_index (spec, RsSpecialisedExpert, i);
          json_builder_begin_object (b);
          j_member_int (b, "layer", se->layer);
          j_member_int (b, "expert", se->expert);
          json_builder_set_member_name (b, "lang");
          json_builder_add_string_value (b, se->lang >= 0 ? r->langs[se->lang] : "multilingual");
          j_member_double (b, "diff", se->diff);
          j_member_double (b, "threshold", se->threshold);
          json_builder_end_object (b);
        }
      json_builder_end_array (b);
      json_builder_set_member_name (b, "task_experts");
      json_builder_begin_array (b);
      for (guint i = 0; i < task->len; i++)
        {
          const RsTaskExpert *te = &g_array_index (task, RsTaskExpert, i);
          json_builder_begin_object (b);
          j_member_int (b, "layer", te->layer);
          j_member_int (b, "expert", te->expert);
          j_member_double (b, "importance", te->importance);
          j_member_double (b, "score", te->score);
          json_builder_end_object (b);
        }
      json_builder_end_array (b);
      j_member_ivs (b, "steering", (RsIntervention *) steer->data, steer->len);
      json_builder_set_member_name (b, "steering_flags");
      json_builder_add_string_value (b, steer_flags);
      if (rs != NULL)
        j_align_jsd (b, "jsd_steered", rs, rs->jsd[mode], layers);
      j_member_int (b, "n_ids", r->n_ids);
      j_member_int (b, "n_tokens", r->n_tokens);
      j_member_int (b, "n_truncated", r->n_truncated);
      json_builder_set_member_name (b, "timing");
      json_builder_begin_object (b);
      j_member_double (b, "engine_s", r->engine_seconds);
      j_member_double (b, "analysis_s", r->analysis_seconds);
      j_member_double (b, "tokenize_s", r->tokenize_seconds);
      j_member_double (b, "total_s", total_s);
      json_builder_end_object (b);
      json_builder_end_object (b);
      rs_cli_print_json (b);
    }
  else
    {
      char buf[32];
      int64_t n_sent = 0;
      for (int g = 0; g < N; g++)
        n_sent += r->n_seq[g];
      printf ("%s: %" G_GINT64_FORMAT " ids, %" G_GINT64_FORMAT " sentences in %d languages, "
              "%" G_GINT64_FORMAT " tokens; reference %s; importance %s\n", corpus->path, r->n_ids, n_sent, N,
              r->n_tokens, r->ref >= 0 ? r->langs[r->ref] : "?", rs_importance_mode_name (mode));
      printf ("mean normalised JSD to the reference sentence of the same id:\n%5s", "layer");
      for (int g = 0; g < N; g++)
        if (g != r->ref)
          printf (" %8s", r->langs[g]);
      printf ("\n");
      for (guint i = 0; i < layers->len; i++)
        {
          int l = g_array_index (layers, int, i);
          printf ("%5d", l);
          for (int g = 0; g < N; g++)
            if (g != r->ref)
              printf (" %8s", fmt_double (buf, 32, "%.4f", r->jsd[mode][g * L + l]));
          printf ("\n");
        }
      if (rs != NULL)
        {
          printf ("with the task-expert steering:\n");
          for (guint i = 0; i < layers->len; i++)
            {
              int l = g_array_index (layers, int, i);
              printf ("%5d", l);
              for (int g = 0; g < N; g++)
                if (g != r->ref)
                  printf (" %8s", fmt_double (buf, 32, "%.4f", rs->jsd[mode][g * L + l]));
              printf ("\n");
            }
        }
      printf ("language x language at layer %d:\n%6s", matrix_layer, "");
      for (int c = 0; c < N; c++)
        printf (" %7s", r->langs[c]);
      printf ("\n");
      for (int a = 0; a < N; a++)
        {
          printf ("%6s", r->langs[a]);
          for (int c = 0; c < N; c++)
            printf (" %7s", fmt_double (buf, 32, "%.4f", r->pair_jsd[mode][((gsize) a * N + c) * L + matrix_layer]));
          printf ("\n");
        }
      printf ("multilingual-specialised experts (layers %d-%d, diff > %g std): %u\n", mf, ml,
              spp.n_sigma, spec->len);
      for (guint i = 0; i < spec->len; i++)
        {
          const RsSpecialisedExpert *se = &g_array_index (spec, RsSpecialisedExpert, i);
          printf ("  layer %3d expert %4d  %-12s diff %.4f > %.4f\n", se->layer, se->expert,
                  se->lang >= 0 ? r->langs[se->lang] : "multilingual", se->diff, se->threshold);
        }
      printf ("task experts of %s (%s; layers %d-%d):", task_file ? task_file : "the reference sentences",
              task_file ? "more used than by the reference sentences" : "most used", mf, ml);
      int last_l = -1;
      for (guint i = 0; i < task->len; i++)
        {
          const RsTaskExpert *te = &g_array_index (task, RsTaskExpert, i);
          if (te->layer != last_l)
            printf ("\n  layer %3d:", te->layer);
          last_l = te->layer;
          printf (" %d (%.3f)", te->expert, te->importance);
        }
      printf ("\nsteering that promotes them: %s\n", steer->len ? steer_flags : "(none)");
      double tok_s = r->engine_seconds > 0 ? r->n_tokens / r->engine_seconds : 0;
      printf ("time: engine %.2f s (%.0f tokens/s), analysis %.3f s, tokenizer %.3f s, total %.2f s\n",
              r->engine_seconds, tok_s, r->analysis_seconds, r->tokenize_seconds, total_s);
    }
  if (figure != NULL)
    {
      g_autoptr (RsPlot) plot = rs_plot_new ();
      rs_analysis_plot_align (plot, r, mode);
      if (!export_figure (plot, figure, &error))
        return rs_cli_fail (error->message);
    }
  if (matrix_figure != NULL)
    {
      g_autoptr (RsPlot) plot = rs_plot_new ();
      rs_analysis_plot_align_matrix (plot, r, mode, matrix_layer);
      if (!export_figure (plot, matrix_figure, &error))
        return rs_cli_fail (error->message);
    }
  return 0;
}

/* ---- ppl ---------------------------------------------------------------- */

int
rs_cli_ppl (int argc, char **argv)
{
  RsCliCommon o = { 0 };
  char *text_file = NULL;
  int max_chunks = 0;
  GOptionEntry entries[] = {
    { "file", 'f', 0, G_OPTION_ARG_FILENAME, &text_file, "Text file", "TEXT" },
    { "max-chunks", 0, 0, G_OPTION_ARG_INT, &max_chunks, "Score at most N context-sized chunks", "N" },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- perplexity of a text, with and without interventions");
  g_option_context_set_description (ctx,
    "The text is cut into chunks of the context (-c), each a fresh sequence starting with BOS;\n"
    "ppl = exp(mean NLL of every chunk's tokens 1..n-1). With intervention flags the untouched\n"
    "and the steered model run side by side and their KL is reported. from-token counts within\n"
    "each chunk.");
  rs_cli_add_common_options (ctx, &o, entries);
  RsCliInterventionFlags *flags;
  rs_cli_add_intervention_options (ctx, &flags);
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return rs_cli_fail (error->message);
  if (text_file == NULL || o.model_path == NULL)
    return rs_cli_fail ("ppl needs -m MODEL and -f TEXT");
  g_autoptr (GArray) ivs = rs_cli_parse_interventions (flags, &error);
  if (ivs == NULL)
    return rs_cli_fail (error->message);
  g_autofree char *text = NULL;
  if (!read_text (text_file, &text, &error))
    return rs_cli_fail (error->message);
  g_autoptr (RsCliModel) m = rs_cli_model_open (&o, &error);
  if (m == NULL)
    return rs_cli_fail (error->message);
  RsPplParams pp;
  rs_ppl_params_init (&pp);
  pp.session = o.run.session;
  pp.max_chunks = max_chunks;
  RsPplResult r;
  Progress pr = { "chunks", 0 };
  if (!rs_ppl_compute (m->model, m->tok, text, &pp, (RsIntervention *) ivs->data, ivs->len, progress_cb,
                       &pr, NULL, &r, &error))
    return rs_cli_fail (error->message);
  if (o.json)
    {
      g_autoptr (JsonBuilder) b = json_builder_new ();
      json_builder_begin_object (b);
      j_member_int (b, "n_chunks", r.n_chunks);
      j_member_int (b, "n_scored", r.n_scored);
      j_member_double (b, "nll", r.nll);
      j_member_double (b, "ppl", r.ppl);
      j_member_ivs (b, "interventions", (RsIntervention *) ivs->data, ivs->len);
      if (r.steered)
        {
          json_builder_set_member_name (b, "steered");
          json_builder_begin_object (b);
          j_member_double (b, "nll", r.nll_steered);
          j_member_double (b, "ppl", r.ppl_steered);
          j_member_double (b, "kl", r.kl);
          j_member_double (b, "top1_agree", r.top1_agree);
          json_builder_end_object (b);
        }
      j_member_double (b, "seconds", r.seconds);
      json_builder_end_object (b);
      rs_cli_print_json (b);
      return 0;
    }
  printf ("%" G_GINT64_FORMAT " tokens scored in %" G_GINT64_FORMAT " chunks\n", r.n_scored, r.n_chunks);
  if (r.steered)
    {
      printf ("baseline:  perplexity %.4f (NLL %.4f nats)\n", r.ppl, r.nll);
      printf ("steered:   perplexity %.4f (NLL %.4f nats), %+.2f%%\n", r.ppl_steered, r.nll_steered,
              100.0 * (r.ppl_steered / r.ppl - 1.0));
      printf ("mean KL(baseline || steered) %.4g nats, top-1 agreement %.1f%%\n", r.kl, 100.0 * r.top1_agree);
    }
  else
    printf ("perplexity %.4f (NLL %.4f nats)\n", r.ppl, r.nll);
  fprintf (stderr, "%.2f s\n", r.seconds);
  return 0;
}
