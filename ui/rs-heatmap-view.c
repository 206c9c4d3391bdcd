/* rs-heatmap-view.c: expert load, layers x experts, live.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "rs-heatmap-view.h"

#include <glib/gi18n.h>
#include <math.h>

#include "rs-routing-stats.h"
#include "rs-settings.h"

struct _RsHeatmapView {
  GtkWidget      parent_instance;
  GtkDropDown   *stat_dropdown;
  GtkDropDown   *tokens_dropdown;
  GtkDropDown   *cmap_dropdown;
  GtkToggleButton *log_toggle;
  GtkLabel      *caption;
  GtkLabel      *hover_label;
  RsPlotWidget  *plot;

  const RsModelInfo *info;
  const RsTrace *trace;
  RsLoadAccum   *acc;
  float         *values;   /* [L*E] of the last prepare */
  gboolean       values_valid;
};

G_DEFINE_FINAL_TYPE (RsHeatmapView, rs_heatmap_view, GTK_TYPE_WIDGET)

enum { SIG_EXPERT_ACTIVATED, N_SIGNALS };
static guint signals[N_SIGNALS];

static const char *const stat_nicks[] = { "count", "mean-probability", "mean-weight", NULL };
static const char *const token_nicks[] = { "all", "prompt", "generated", NULL };
static const char *const cmap_nicks[] = { "viridis", "magma", NULL };

GtkWidget *
rs_heatmap_view_new (void)
{
  return g_object_new (RS_TYPE_HEATMAP_VIEW, NULL);
}

RsPlotWidget *
rs_heatmap_view_get_plot_widget (RsHeatmapView *self)
{
  return self->plot;
}

static RsLoadStat
current_stat (RsHeatmapView *self)
{
  guint i = gtk_drop_down_get_selected (self->stat_dropdown);
  return i == 1 ? RS_LOAD_MEAN_PROB : i == 2 ? RS_LOAD_MEAN_WEIGHT : RS_LOAD_COUNT;
}

static const char *
stat_label (RsLoadStat stat)
{
  switch (stat)
    {
    case RS_LOAD_MEAN_PROB:
      return _("mean router probability");
    case RS_LOAD_MEAN_WEIGHT:
      return _("mean gate weight when routed");
    case RS_LOAD_COUNT:
    default:
      return _("tokens routed");
    }
}

static void
prepare (RsPlot *plot, gpointer user_data)
{
  RsHeatmapView *self = user_data;
  if (self->info == NULL || self->acc == NULL)
    {
      rs_plot_set_heatmap (plot, NULL, 0, 0, RS_COLORMAP_VIRIDIS, FALSE, NULL);
      rs_plot_set_title (plot, NULL);
      self->values_valid = FALSE;
      return;
    }
  const int L = self->info->n_layer, E = self->info->n_expert;
  if (self->trace)
    rs_load_accum_update (self->acc, self->trace);
  RsLoadStat stat = current_stat (self);
  rs_load_accum_values (self->acc, stat, self->values);
  self->values_valid = TRUE;
  RsColormap cmap = gtk_drop_down_get_selected (self->cmap_dropdown) == 1 ? RS_COLORMAP_MAGMA
                                                                          : RS_COLORMAP_VIRIDIS;
  gboolean log_scale = gtk_toggle_button_get_active (self->log_toggle);
  rs_plot_set_heatmap (plot, self->values, L, E, cmap, log_scale, stat_label (stat));
  g_autofree char *title = g_strdup_printf (_("Expert load — %s"), self->info->name);
  rs_plot_set_title (plot, title);
  rs_plot_set_x_label (plot, _("Expert"));
  rs_plot_set_y_label (plot, _("Layer"));

  g_autofree char *caption = g_strdup_printf (
    g_dngettext (GETTEXT_PACKAGE, "%lld token · %d layers × %d experts",
                 "%lld tokens · %d layers × %d experts", (gulong) self->acc->n_counted),
    (long long) self->acc->n_counted, L, E);
  gtk_label_set_text (self->caption, caption);
}

float
rs_heatmap_view_get_value (RsHeatmapView *self, int layer, int expert)
{
  rs_plot_widget_ensure_prepared (self->plot);
  if (!self->values_valid || self->info == NULL || layer < 0 || layer >= self->info->n_layer || expert < 0
      || expert >= self->info->n_expert)
    return NAN;
  return self->values[layer * self->info->n_expert + expert];
}

/* The exact numbers of a cell, for the tooltip and the hover line. */
static char *
describe_cell (RsHeatmapView *self, int layer, int expert, gboolean markup)
{
  if (self->info == NULL || self->acc == NULL || layer < 0 || layer >= self->info->n_layer)
    return NULL;
  if (!self->info->layer_is_moe[layer])
    return g_strdup_printf (_("Layer %d has no experts (dense feed-forward)"), layer);
  const int E = self->info->n_expert;
  int i = layer * E + expert;
  double count = self->acc->count[i];
  double share = self->acc->n_counted > 0 ? 100.0 * count / self->acc->n_counted : 0;
  double prob = self->acc->prob_n[layer] > 0 ? self->acc->prob_sum[i] / self->acc->prob_n[layer] : NAN;
  double weight = count > 0 ? self->acc->weight_sum[i] / count : NAN;
  g_autofree char *head = g_strdup_printf (_("Layer %d, expert %d"), layer, expert);
  g_autofree char *body = g_strdup_printf (
    _("%.0f of %lld tokens (%.1f %%) · mean probability %.4f · mean weight %.4f"),
    count, (long long) self->acc->n_counted, share, prob, weight);
  if (markup)
    return g_markup_printf_escaped ("<b>%s</b>\n%s", head, body);
  return g_strdup_printf ("%s: %s", head, body);
}

static char *
tooltip (int row, int col, gpointer user_data)
{
  return describe_cell (user_data, row, col, TRUE);
}

static void
on_hovered (RsPlotWidget *plot, int row, int col, RsHeatmapView *self)
{
  g_autofree char *text = row >= 0 ? describe_cell (self, row, col, FALSE) : NULL;
  gtk_label_set_text (self->hover_label, text ? text : "");
}

static void
on_activated (RsPlotWidget *plot, int row, int col, RsHeatmapView *self)
{
  if (self->info && row >= 0 && row < self->info->n_layer && self->info->layer_is_moe[row])
    g_signal_emit (self, signals[SIG_EXPERT_ACTIVATED], 0, row, col);
}

static void
on_option_changed (RsHeatmapView *self)
{
  rs_plot_widget_invalidate (self->plot);
}

static void
on_filter_changed (RsHeatmapView *self)
{
  if (self->acc)
    rs_load_accum_set_filter (self->acc, gtk_drop_down_get_selected (self->tokens_dropdown));
  rs_plot_widget_invalidate (self->plot);
}

void
rs_heatmap_view_set_model (RsHeatmapView *self, const RsModelInfo *info)
{
  self->info = info;
  self->trace = NULL;
  g_clear_pointer (&self->acc, rs_load_accum_free);
  g_clear_pointer (&self->values, g_free);
  self->values_valid = FALSE;
  if (info != NULL)
    {
      self->acc = rs_load_accum_new (info->n_layer, info->n_expert, info->layer_is_moe);
      rs_load_accum_set_filter (self->acc, gtk_drop_down_get_selected (self->tokens_dropdown));
      self->values = g_new0 (float, (gsize) info->n_layer * info->n_expert);
    }
  rs_plot_widget_set_cursor (self->plot, -1, -1);
  rs_plot_widget_invalidate (self->plot);
}

void
rs_heatmap_view_trace_changed (RsHeatmapView *self, const RsTrace *trace, gint64 t0)
{
  if (self->acc == NULL)
    return;
  if (trace != self->trace || t0 < self->acc->done)
    rs_load_accum_reset (self->acc);
  self->trace = trace;
  rs_plot_widget_invalidate (self->plot);
}

static void
rs_heatmap_view_dispose (GObject *object)
{
  RsHeatmapView *self = RS_HEATMAP_VIEW (object);
  gtk_widget_dispose_template (GTK_WIDGET (self), RS_TYPE_HEATMAP_VIEW);
  GtkWidget *child;
  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self))) != NULL)
    gtk_widget_unparent (child);
  G_OBJECT_CLASS (rs_heatmap_view_parent_class)->dispose (object);
}

static void
rs_heatmap_view_finalize (GObject *object)
{
  RsHeatmapView *self = RS_HEATMAP_VIEW (object);
  rs_load_accum_free (self->acc);
  g_free (self->values);
  G_OBJECT_CLASS (rs_heatmap_view_parent_class)->finalize (object);
}

static void
rs_heatmap_view_class_init (RsHeatmapViewClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  object_class->dispose = rs_heatmap_view_dispose;
  object_class->finalize = rs_heatmap_view_finalize;

  g_type_ensure (RS_TYPE_PLOT_WIDGET);
  gtk_widget_class_set_template_from_resource (widget_class, "/io/github/routescope/Routescope/rs-heatmap-view.ui");
  gtk_widget_class_bind_template_child (widget_class, RsHeatmapView, stat_dropdown);
  gtk_widget_class_bind_template_child (widget_class, RsHeatmapView, tokens_dropdown);
  gtk_widget_class_bind_template_child (widget_class, RsHeatmapView, cmap_dropdown);
  gtk_widget_class_bind_template_child (widget_class, RsHeatmapView, log_toggle);
  gtk_widget_class_bind_template_child (widget_class, RsHeatmapView, caption);
  gtk_widget_class_bind_template_child (widget_class, RsHeatmapView, hover_label);
  gtk_widget_class_bind_template_child (widget_class, RsHeatmapView, plot);
  gtk_widget_class_set_css_name (widget_class, "rsheatmapview");

  signals[SIG_EXPERT_ACTIVATED] = g_signal_new ("expert-activated", G_TYPE_FROM_CLASS (klass),
                                                G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 2,
                                                G_TYPE_INT, G_TYPE_INT);
}

static void
rs_heatmap_view_init (RsHeatmapView *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  GSettings *settings = rs_settings_get ();
  rs_settings_bind_dropdown (settings, "heatmap-statistic", self->stat_dropdown, stat_nicks);
  rs_settings_bind_dropdown (settings, "heatmap-tokens", self->tokens_dropdown, token_nicks);
  rs_settings_bind_dropdown (settings, "colormap", self->cmap_dropdown, cmap_nicks);
  g_settings_bind (settings, "log-scale", self->log_toggle, "active", G_SETTINGS_BIND_DEFAULT);

  rs_plot_widget_set_prepare_func (self->plot, prepare, self);
  rs_plot_widget_set_tooltip_func (self->plot, tooltip, self);
  g_signal_connect (self->plot, "cell-hovered", G_CALLBACK (on_hovered), self);
  g_signal_connect (self->plot, "cell-activated", G_CALLBACK (on_activated), self);
  g_signal_connect_swapped (self->stat_dropdown, "notify::selected", G_CALLBACK (on_option_changed), self);
  g_signal_connect_swapped (self->cmap_dropdown, "notify::selected", G_CALLBACK (on_option_changed), self);
  g_signal_connect_swapped (self->log_toggle, "notify::active", G_CALLBACK (on_option_changed), self);
  g_signal_connect_swapped (self->tokens_dropdown, "notify::selected", G_CALLBACK (on_filter_changed), self);
}
