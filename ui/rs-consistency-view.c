/* rs-consistency-view.c: local routing consistency and specialisation.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "rs-consistency-view.h"

#include "rs-analysis-plot.h"

#include <glib/gi18n.h>
#include <math.h>

#include "rs-analysis.h"
#include "rs-view-util.h"

struct _RsConsistencyView {
  GtkWidget        parent_instance;
  GtkLabel        *summary_label;
  GtkSpinButton   *layer_spin;
  RsPlotWidget    *srp_plot;
  RsPlotWidget    *sch_plot;
  RsPlotWidget    *coact_plot;

  const RsModelInfo *info;
  const RsTrace   *trace;
  RsLrcResult     *lrc;
  RsSpecialResult *special;
  RsRecompute      recompute;
};

G_DEFINE_FINAL_TYPE (RsConsistencyView, rs_consistency_view, GTK_TYPE_WIDGET)

RsPlotWidget *
rs_consistency_view_get_plot_widget (RsConsistencyView *self)
{
  return self->srp_plot;
}

static void
compute (gpointer data)
{
  RsConsistencyView *self = data;
  g_clear_pointer (&self->lrc, rs_lrc_result_free);
  g_clear_pointer (&self->special, rs_special_result_free);
  rs_plot_widget_invalidate (self->srp_plot);
  rs_plot_widget_invalidate (self->sch_plot);
  rs_plot_widget_invalidate (self->coact_plot);
  if (self->trace == NULL || self->trace->n_tokens < 2)
    {
      gtk_label_set_text (self->summary_label, _("Run some tokens to measure how consistently the routers choose experts."));
      return;
    }
  g_autoptr (GError) error = NULL;
  RsLrcParams lp;
  rs_lrc_params_init (&lp);
  self->lrc = rs_lrc_compute (self->trace, &lp, &error);
  if (self->lrc == NULL)
    {
      gtk_label_set_text (self->summary_label, error->message);
      return;
    }
  RsSpecialParams sp;
  rs_special_params_init (&sp);
  self->special = rs_special_compute (self->trace, &sp, NULL);
  g_autoptr (GString) s = g_string_new (NULL);
  g_string_append_printf (s, _("%lld tokens. Whole model:"), (long long) self->trace->n_tokens);
  for (int i = 0; i < self->lrc->n_seg; i++)
    if (self->lrc->n_windows[i] > 0)
      g_string_append_printf (s, _(" m = %d: SRP %.3f, SCH %.3f;"), self->lrc->seg_lens[i], self->lrc->srp_model[i],
                              self->lrc->sch_model[i]);
  g_string_append_printf (s, _(" cache %d experts per layer."), self->lrc->cache_layer);
  gtk_label_set_text (self->summary_label, s->str);
}

/* The same charts the CLI's `analyze lrc|special --figure` draw. */
static void
prepare_srp (RsPlot *plot, gpointer data)
{
  rs_analysis_plot_lrc (plot, ((RsConsistencyView *) data)->lrc, TRUE);
}

static void
prepare_sch (RsPlot *plot, gpointer data)
{
  rs_analysis_plot_lrc (plot, ((RsConsistencyView *) data)->lrc, FALSE);
}

static void
prepare_coact (RsPlot *plot, gpointer data)
{
  RsConsistencyView *self = data;
  rs_analysis_plot_coact (plot, self->special, gtk_spin_button_get_value_as_int (self->layer_spin));
}

static char *
coact_tooltip (int row, int col, gpointer data)
{
  RsConsistencyView *self = data;
  const RsSpecialResult *r = self->special;
  int l = gtk_spin_button_get_value_as_int (self->layer_spin);
  if (r == NULL || l < 0 || l >= r->n_layer || !r->has_experts[l])
    return NULL;
  int E = r->n_expert;
  int64_t both = r->coact[((gsize) l * E + row) * E + col];
  int64_t a = r->coact[((gsize) l * E + row) * E + row];
  return g_markup_printf_escaped (_("<b>Layer %d, experts %d and %d</b>\n%lld"
                                    " tokens selected both (expert %d: %lld)"),
                                  l, row, col, (long long) both, row, (long long) a);
}

static void
on_layer_changed (RsConsistencyView *self)
{
  rs_plot_widget_invalidate (self->coact_plot);
}

void
rs_consistency_view_set_model (RsConsistencyView *self, const RsModelInfo *info)
{
  self->info = info;
  self->trace = NULL;
  if (info)
    {
      gtk_adjustment_set_upper (gtk_spin_button_get_adjustment (self->layer_spin), info->n_layer - 1);
      for (int l = 0; l < info->n_layer; l++)
        if (info->layer_is_moe[l])
          {
            gtk_spin_button_set_value (self->layer_spin, l);
            break;
          }
    }
  rs_recompute_queue (&self->recompute);
}

void
rs_consistency_view_trace_changed (RsConsistencyView *self, const RsTrace *trace, gint64 t0)
{
  self->trace = trace;
  rs_recompute_queue (&self->recompute);
}

static void
rs_consistency_view_dispose (GObject *object)
{
  RsConsistencyView *self = RS_CONSISTENCY_VIEW (object);
  rs_recompute_clear (&self->recompute);
  gtk_widget_dispose_template (GTK_WIDGET (self), RS_TYPE_CONSISTENCY_VIEW);
  GtkWidget *child;
  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self))) != NULL)
    gtk_widget_unparent (child);
  G_OBJECT_CLASS (rs_consistency_view_parent_class)->dispose (object);
}

static void
rs_consistency_view_finalize (GObject *object)
{
  RsConsistencyView *self = RS_CONSISTENCY_VIEW (object);
  rs_lrc_result_free (self->lrc);
  rs_special_result_free (self->special);
  G_OBJECT_CLASS (rs_consistency_view_parent_class)->finalize (object);
}

static void
rs_consistency_view_class_init (RsConsistencyViewClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  object_class->dispose = rs_consistency_view_dispose;
  object_class->finalize = rs_consistency_view_finalize;
  g_type_ensure (RS_TYPE_PLOT_WIDGET);
  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/io/github/routescope/Routescope/rs-consistency-view.ui");
  gtk_widget_class_bind_template_child (widget_class, RsConsistencyView, summary_label);
  gtk_widget_class_bind_template_child (widget_class, RsConsistencyView, layer_spin);
  gtk_widget_class_bind_template_child (widget_class, RsConsistencyView, srp_plot);
  gtk_widget_class_bind_template_child (widget_class, RsConsistencyView, sch_plot);
  gtk_widget_class_bind_template_child (widget_class, RsConsistencyView, coact_plot);
}

static void
rs_consistency_view_init (RsConsistencyView *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  rs_recompute_init (&self->recompute, GTK_WIDGET (self), compute, 400);
  rs_recompute_attach (&self->recompute, self->srp_plot);
  rs_recompute_attach (&self->recompute, self->sch_plot);
  rs_recompute_attach (&self->recompute, self->coact_plot);
  rs_plot_widget_set_prepare_func (self->srp_plot, prepare_srp, self);
  rs_plot_widget_set_prepare_func (self->sch_plot, prepare_sch, self);
  rs_plot_widget_set_prepare_func (self->coact_plot, prepare_coact, self);
  rs_plot_widget_set_tooltip_func (self->coact_plot, coact_tooltip, self);
  g_signal_connect_swapped (self->layer_spin, "value-changed", G_CALLBACK (on_layer_changed), self);
}
