/* SPDX-License-Identifier: GPL-3.0-or-later */
/* rs-analysis-plot.c: the analyses' charts, shared by the GUI and the CLI.
 * The titles and labels are the GUI views' (ui/rs-*-view.c). */
#include "rs-analysis-plot.h"

#include <glib/gi18n-lib.h>
#include <math.h>

static void
clear_heatmap (RsPlot *plot)
{
  rs_plot_set_heatmap (plot, NULL, 0, 0, RS_COLORMAP_VIRIDIS, FALSE, NULL);
  rs_plot_set_heatmap_outline (plot, NULL);
}

static void
clear (RsPlot *plot)
{
  clear_heatmap (plot);
  rs_plot_clear_lines (plot);
  rs_plot_set_title (plot, NULL);
  rs_plot_set_x_label (plot, NULL);
  rs_plot_set_y_label (plot, NULL);
}

static const char *
load_label (RsLoadChart stat)
{
  switch (stat)
    {
    case RS_LOAD_CHART_MEAN_PROB:
      return _("mean router probability");
    case RS_LOAD_CHART_MEAN_WEIGHT:
      return _("mean gate weight when routed");
    case RS_LOAD_CHART_COUNT:
    default:
      return _("tokens routed");
    }
}

void
rs_analysis_plot_load (RsPlot *plot, const RsLoadResult *r, RsLoadChart stat,
                       const char *model_name, RsColormap colormap, gboolean log_scale)
{
  clear (plot);
  if (r == NULL)
    return;
  const int L = r->n_layer, E = r->n_expert;
  g_autofree float *v = g_new (float, (gsize) L * E);
  for (int l = 0; l < L; l++)
    for (int e = 0; e < E; e++)
      {
        gsize i = (gsize) l * E + e;
        double x = stat == RS_LOAD_CHART_MEAN_PROB ? r->mean_prob[i]
                   : stat == RS_LOAD_CHART_MEAN_WEIGHT ? r->mean_weight[i]
                   : (double) r->counts[i];
        v[i] = r->has_experts[l] ? (float) x : NAN;
      }
  rs_plot_set_heatmap (plot, v, L, E, colormap, log_scale, load_label (stat));
  g_autofree char *title = model_name ? g_strdup_printf (_("Expert load — %s"), model_name)
                                      : g_strdup (_("Expert load"));
  rs_plot_set_title (plot, title);
  rs_plot_set_x_label (plot, _("Expert"));
  rs_plot_set_y_label (plot, _("Layer"));
}

/* One line over the layers, NaN where the layer has no experts. */
static void
layer_line (RsPlot *plot, const char *label, const double *v, const uint8_t *has, int L)
{
  g_autofree double *y = g_new (double, L);
  for (int l = 0; l < L; l++)
    y[l] = has[l] ? v[l] : NAN;
  rs_plot_add_line (plot, label, NULL, y, L);
}

void
rs_analysis_plot_entropy (RsPlot *plot, const RsEntropyResult *r)
{
  clear (plot);
  rs_plot_set_title (plot, _("Router entropy and confidence by layer"));
  rs_plot_set_x_label (plot, _("Layer"));
  if (r == NULL)
    return;
  layer_line (plot, _("entropy / ln E"), r->mean_norm_entropy, r->has_experts, r->n_layer);
  layer_line (plot, _("top-1 probability"), r->mean_top1, r->has_experts, r->n_layer);
  layer_line (plot, _("probability of the selected"), r->mean_selected_mass, r->has_experts, r->n_layer);
}

void
rs_analysis_plot_align (RsPlot *plot, const RsAlignResult *r, RsImportanceMode mode)
{
  clear (plot);
  rs_plot_set_title (plot, _("Routing divergence from the reference language (normalised JSD)"));
  rs_plot_set_x_label (plot, _("Layer"));
  if (r == NULL)
    return;
  for (int g = 0; g < r->n_lang; g++)
    {
      if (g == r->ref)
        continue;
      layer_line (plot, r->langs[g], r->jsd[mode] + (gsize) g * r->n_layer, r->has_experts, r->n_layer);
    }
}

void
rs_analysis_plot_align_matrix (RsPlot *plot, const RsAlignResult *r, RsImportanceMode mode, int layer)
{
  clear (plot);
  if (r == NULL || layer < 0 || layer >= r->n_layer)
    return;
  const int N = r->n_lang;
  g_autofree float *v = g_new (float, (gsize) N * N);
  for (int a = 0; a < N; a++)
    for (int b = 0; b < N; b++)
      v[a * N + b] = (float) r->pair_jsd[mode][((gsize) a * N + b) * r->n_layer + layer];
  rs_plot_set_heatmap (plot, v, N, N, RS_COLORMAP_VIRIDIS, FALSE, _("normalised JSD"));
  g_autofree char *title = g_strdup_printf (_("Routing divergence between languages at layer %d"), layer);
  rs_plot_set_title (plot, title);
  /* rs-plot numbers its axes; the language order is the corpus'. */
  g_autoptr (GString) order = g_string_new (NULL);
  for (int a = 0; a < N; a++)
    g_string_append_printf (order, "%s%d %s", a ? ", " : "", a, r->langs[a]);
  g_autofree char *xl = g_strdup_printf (_("Language (%s)"), order->str);
  rs_plot_set_x_label (plot, xl);
  rs_plot_set_y_label (plot, _("Language"));
}

void
rs_analysis_plot_super (RsPlot *plot, const RsSuperResult *r, const char *model_name)
{
  clear (plot);
  if (r == NULL)
    {
      rs_plot_set_heatmap (plot, NULL, 0, 0, RS_COLORMAP_MAGMA, TRUE, NULL);
      return;
    }
  const int L = r->n_layer, E = r->n_expert;
  rs_plot_set_heatmap (plot, r->output_max, L, E, RS_COLORMAP_MAGMA, TRUE, _("largest |expert output|"));
  g_autofree guint8 *mask = g_new0 (guint8, (gsize) L * E);
  for (guint i = 0; i < r->super_experts->len; i++)
    {
      const RsSuperExpert *se = &g_array_index (r->super_experts, RsSuperExpert, i);
      mask[se->layer * E + se->expert] = 1;
    }
  rs_plot_set_heatmap_outline (plot, mask);
  g_autofree char *title = model_name ? g_strdup_printf (_("Super experts — %s"), model_name)
                                      : g_strdup (_("Super experts"));
  rs_plot_set_title (plot, title);
  rs_plot_set_x_label (plot, _("Expert (outlined: super experts)"));
  rs_plot_set_y_label (plot, _("Layer"));
}

void
rs_analysis_plot_lrc (RsPlot *plot, const RsLrcResult *r, gboolean srp)
{
  clear (plot);
  rs_plot_set_x_label (plot, _("Layer"));
  rs_plot_set_title (plot, srp ? _("Segment routing best performance (SRP)")
                               : _("Segment cache best hit rate (SCH)"));
  if (r == NULL)
    return;
  for (int i = 0; i < r->n_seg; i++)
    {
      if (r->n_windows[i] == 0)
        continue;
      g_autofree char *label = g_strdup_printf (_("m = %d"), r->seg_lens[i]);
      layer_line (plot, label, (srp ? r->srp_layer : r->sch_layer) + (gsize) i * r->n_layer,
                  r->has_experts, r->n_layer);
    }
}

void
rs_analysis_plot_coact (RsPlot *plot, const RsSpecialResult *r, int layer)
{
  clear (plot);
  if (r == NULL || layer < 0 || layer >= r->n_layer)
    return;
  const int E = r->n_expert;
  g_autofree float *v = g_new (float, (gsize) E * E);
  for (int i = 0; i < E * E; i++)
    v[i] = r->has_experts[layer] ? (float) r->coact[(gsize) layer * E * E + i] : NAN;
  rs_plot_set_heatmap (plot, v, E, E, RS_COLORMAP_VIRIDIS, FALSE, _("tokens selecting both"));
  g_autofree char *title = g_strdup_printf (_("Co-activation of the experts of layer %d"), layer);
  rs_plot_set_title (plot, title);
  rs_plot_set_x_label (plot, _("Expert"));
  rs_plot_set_y_label (plot, _("Expert"));
}
