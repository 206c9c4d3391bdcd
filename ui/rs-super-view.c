/* rs-super-view.c: super experts.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "rs-super-view.h"

#include "rs-analysis-plot.h"

#include <glib/gi18n.h>
#include <math.h>

#include "rs-analysis.h"
#include "rs-view-util.h"

struct _RsSuperView {
  GtkWidget     parent_instance;
  GtkLabel     *summary_label;
  GtkButton    *disable_button;
  RsPlotWidget *plot;
  GtkLabel     *list_label;

  const RsModelInfo *info;
  const RsTrace *trace;
  RsSuperResult *result;
  RsRecompute   recompute;
};

G_DEFINE_FINAL_TYPE (RsSuperView, rs_super_view, GTK_TYPE_WIDGET)

enum { SIG_EXPERT_ACTIVATED, N_SIGNALS };
static guint signals[N_SIGNALS];

RsPlotWidget *
rs_super_view_get_plot_widget (RsSuperView *self)
{
  return self->plot;
}

static void
compute (gpointer data)
{
  RsSuperView *self = data;
  rs_plot_widget_invalidate (self->plot);
  g_clear_pointer (&self->result, rs_super_result_free);
  if (self->trace == NULL || self->trace->n_tokens == 0)
    {
      gtk_label_set_text (self->summary_label, _("Run some tokens to find the super experts."));
      gtk_label_set_text (self->list_label, "");
      gtk_widget_set_sensitive (GTK_WIDGET (self->disable_button), FALSE);
      return;
    }
  RsSuperParams params;
  rs_super_params_init (&params);
  g_autoptr (GError) error = NULL;
  self->result = rs_super_compute (self->trace, &params, &error);
  if (self->result == NULL)
    {
      gtk_label_set_text (self->summary_label, error->message);
      gtk_label_set_text (self->list_label, "");
      gtk_widget_set_sensitive (GTK_WIDGET (self->disable_button), FALSE);
      return;
    }
  const RsSuperResult *r = self->result;
  guint n = r->super_experts->len;
  g_autofree char *summary = g_strdup_printf (
    g_dngettext (GETTEXT_PACKAGE,
                 "%u super expert over %lld tokens: an expert whose largest output exceeds %.3g "
                 "(the %.1fth percentile of the first %d layers, %.3g, and a tenth of their maximum, %.3g).",
                 "%u super experts over %lld tokens: experts whose largest output exceeds %.3g "
                 "(the %.1fth percentile of the first %d layers, %.3g, and a tenth of their maximum, %.3g).", n),
    n, (long long) self->trace->n_tokens, r->threshold, params.percentile, r->n_pool_layers, r->percentile_value,
    r->max_threshold);
  gtk_label_set_text (self->summary_label, summary);
  gtk_widget_set_sensitive (GTK_WIDGET (self->disable_button), n > 0);
  g_autoptr (GString) list = g_string_new (NULL);
  for (guint i = 0; i < MIN (n, 12u); i++)
    {
      const RsSuperExpert *se = &g_array_index (r->super_experts, RsSuperExpert, i);
      g_autofree char *tok = rs_token_display_text (self->trace, se->token);
      if (i > 0)
        g_string_append (list, "; ");
      g_string_append_printf (list, _("layer %d expert %d: %.4g at token %lld “%s”, channel %d"), se->layer, se->expert, se->value, (long long) se->token, tok, se->channel);
    }
  gtk_label_set_text (self->list_label, list->str);
}

/* The same chart the CLI's `analyze super --figure` draws. */
static void
prepare (RsPlot *plot, gpointer data)
{
  RsSuperView *self = data;
  if (self->result == NULL || self->info == NULL)
    {
      rs_analysis_plot_super (plot, NULL, NULL);
      rs_plot_set_title (plot, NULL);
      return;
    }
  rs_analysis_plot_super (plot, self->result, self->info->name);
}

static char *
tooltip (int row, int col, gpointer data)
{
  RsSuperView *self = data;
  const RsSuperResult *r = self->result;
  if (r == NULL || row >= r->n_layer || col >= r->n_expert)
    return NULL;
  int i = row * r->n_expert + col;
  g_autofree char *head = g_strdup_printf (_("Layer %d, expert %d"), row, col);
  if (isnan (r->output_max[i]))
    return g_markup_printf_escaped ("<b>%s</b>\n%s", head, _("never routed"));
  g_autofree char *tok = rs_token_display_text (self->trace, r->token[i]);
  g_autofree char *body = g_strdup_printf (_("largest output %.4g at token %lld “%s”, channel %d"),
                                           r->output_max[i], (long long) r->token[i], tok, r->channel[i]);
  return g_markup_printf_escaped ("<b>%s</b>\n%s%s%s", head, body, r->output_max[i] > r->threshold ? "\n" : "",
                                  r->output_max[i] > r->threshold ? _("super expert") : "");
}

static void
on_activated (RsPlotWidget *plot, int row, int col, RsSuperView *self)
{
  if (self->info && row < self->info->n_layer && self->info->layer_is_moe[row])
    g_signal_emit (self, signals[SIG_EXPERT_ACTIVATED], 0, row, col);
}

void
rs_super_view_set_model (RsSuperView *self, const RsModelInfo *info)
{
  self->info = info;
  self->trace = NULL;
  rs_recompute_queue (&self->recompute);
}

void
rs_super_view_trace_changed (RsSuperView *self, const RsTrace *trace, gint64 t0)
{
  self->trace = trace;
  rs_recompute_queue (&self->recompute);
}

static void
rs_super_view_dispose (GObject *object)
{
  RsSuperView *self = RS_SUPER_VIEW (object);
  rs_recompute_clear (&self->recompute);
  gtk_widget_dispose_template (GTK_WIDGET (self), RS_TYPE_SUPER_VIEW);
  GtkWidget *child;
  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self))) != NULL)
    gtk_widget_unparent (child);
  G_OBJECT_CLASS (rs_super_view_parent_class)->dispose (object);
}

static void
rs_super_view_finalize (GObject *object)
{
  rs_super_result_free (RS_SUPER_VIEW (object)->result);
  G_OBJECT_CLASS (rs_super_view_parent_class)->finalize (object);
}

static void
rs_super_view_class_init (RsSuperViewClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  object_class->dispose = rs_super_view_dispose;
  object_class->finalize = rs_super_view_finalize;
  g_type_ensure (RS_TYPE_PLOT_WIDGET);
  gtk_widget_class_set_template_from_resource (widget_class, "/io/github/routescope/Routescope/rs-super-view.ui");
  gtk_widget_class_bind_template_child (widget_class, RsSuperView, summary_label);
  gtk_widget_class_bind_template_child (widget_class, RsSuperView, disable_button);
  gtk_widget_class_bind_template_child (widget_class, RsSuperView, plot);
  gtk_widget_class_bind_template_child (widget_class, RsSuperView, list_label);
  signals[SIG_EXPERT_ACTIVATED] = g_signal_new ("expert-activated", G_TYPE_FROM_CLASS (klass),
                                                G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 2,
                                                G_TYPE_INT, G_TYPE_INT);
}

static void
rs_super_view_init (RsSuperView *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  rs_recompute_init (&self->recompute, GTK_WIDGET (self), compute, 250);
  rs_recompute_attach (&self->recompute, self->plot);
  rs_plot_widget_set_prepare_func (self->plot, prepare, self);
  rs_plot_widget_set_tooltip_func (self->plot, tooltip, self);
  g_signal_connect (self->plot, "cell-activated", G_CALLBACK (on_activated), self);
}
