/* rs-compare-view.c: the run against the untouched router.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "rs-compare-view.h"

#include <glib/gi18n.h>
#include <math.h>

#include "rs-analysis.h"
#include "rs-routing-stats.h"
#include "rs-view-util.h"

struct _RsCompareView {
  GtkWidget        parent_instance;
  GtkLabel        *summary_label;
  GtkButton       *measure_button;
  GtkLabel        *effect_label;
  RsPlotWidget    *diff_plot;
  RsPlotWidget    *agree_plot;

  const RsModelInfo *info;
  RsSessionWorker *worker;
  const RsTrace   *trace;
  float           *diff;      /* [L, E] */
  double          *same;      /* [L] */
  double          *overlap;   /* [L] */
  RsRecompute      recompute;
  char            *effect;
};

G_DEFINE_FINAL_TYPE (RsCompareView, rs_compare_view, GTK_TYPE_WIDGET)

RsPlotWidget *
rs_compare_view_get_plot_widget (RsCompareView *self)
{
  return self->diff_plot;
}

const char *
rs_compare_view_get_effect_text (RsCompareView *self)
{
  return self->effect;
}

static void
compute (gpointer data)
{
  RsCompareView *self = data;
  g_clear_pointer (&self->diff, g_free);
  g_clear_pointer (&self->same, g_free);
  g_clear_pointer (&self->overlap, g_free);
  rs_plot_widget_invalidate (self->diff_plot);
  rs_plot_widget_invalidate (self->agree_plot);
  if (self->trace == NULL || self->trace->n_tokens == 0)
    {
      gtk_label_set_text (self->summary_label, _("Run some tokens, add interventions, and compare with the untouched router here."));
      return;
    }
  RsLoadParams ran, base;
  rs_load_params_init (&ran);
  rs_load_params_init (&base);
  base.routes = RS_ROUTES_BASE;
  g_autoptr (GError) error = NULL;
  g_autoptr (RsLoadResult) a = rs_load_compute (self->trace, &ran, &error);
  g_autoptr (RsLoadResult) b = a ? rs_load_compute (self->trace, &base, &error) : NULL;
  if (b == NULL)
    {
      gtk_label_set_text (self->summary_label, error->message);
      return;
    }
  int L = a->n_layer, E = a->n_expert;
  self->diff = g_new (float, (gsize) L * E);
  int64_t moved = 0;
  for (int l = 0; l < L; l++)
    for (int e = 0; e < E; e++)
      {
        int i = l * E + e;
        self->diff[i] = a->has_experts[l] ? (float) (a->counts[i] - b->counts[i]) : NAN;
        if (a->counts[i] > b->counts[i])
          moved += a->counts[i] - b->counts[i];
      }
  self->same = g_new (double, L);
  self->overlap = g_new (double, L);
  rs_layer_agreement (self->trace, self->same, self->overlap);
  double mean = 0;
  int n = 0;
  for (int l = 0; l < L; l++)
    if (!isnan (self->same[l]))
      {
        mean += self->same[l];
        n++;
      }
  g_autofree char *text = g_strdup_printf (
    _("%lld tokens: the experts that ran are the untouched router's choice for %.1f %% of the "
      "(token, layer) pairs; %lld selections moved to other experts."),
    (long long) self->trace->n_tokens, n ? 100.0 * mean / n : 100.0, (long long) moved);
  gtk_label_set_text (self->summary_label, text);
}

static void
prepare_diff (RsPlot *plot, gpointer data)
{
  RsCompareView *self = data;
  if (self->diff == NULL || self->info == NULL)
    {
      rs_plot_set_heatmap (plot, NULL, 0, 0, RS_COLORMAP_COOLWARM, FALSE, NULL);
      rs_plot_set_title (plot, NULL);
      return;
    }
  rs_plot_set_heatmap (plot, self->diff, self->info->n_layer, self->info->n_expert, RS_COLORMAP_COOLWARM, FALSE,
                       _("tokens routed: with − without interventions"));
  rs_plot_set_title (plot, _("Load change from the interventions"));
  rs_plot_set_x_label (plot, _("Expert"));
  rs_plot_set_y_label (plot, _("Layer"));
}

static void
prepare_agree (RsPlot *plot, gpointer data)
{
  RsCompareView *self = data;
  rs_plot_clear_lines (plot);
  rs_plot_set_title (plot, _("Agreement by layer"));
  rs_plot_set_x_label (plot, _("Layer"));
  if (self->same == NULL || self->info == NULL)
    return;
  rs_plot_add_line (plot, _("same experts"), NULL, self->same, self->info->n_layer);
  rs_plot_add_line (plot, _("overlap"), NULL, self->overlap, self->info->n_layer);
}

static char *
diff_tooltip (int row, int col, gpointer data)
{
  RsCompareView *self = data;
  if (self->diff == NULL || self->info == NULL || row >= self->info->n_layer)
    return NULL;
  float d = self->diff[row * self->info->n_expert + col];
  if (isnan (d))
    return NULL;
  return g_markup_printf_escaped (_("<b>Layer %d, expert %d</b>\n%+.0f tokens with the interventions"), row, col, d);
}

/* ---- the perplexity job ------------------------------------------------- */

static gpointer
ppl_job (const RsWorkerJobContext *ctx, RsProgressFunc progress, void *progress_data, GCancellable *cancellable,
         gpointer job_data, GError **error)
{
  RsPplParams params;
  rs_ppl_params_init (&params);
  params.session.n_threads = ctx->n_threads;
  RsPplResult *out = g_new0 (RsPplResult, 1);
  if (!rs_ppl_compute (ctx->model, ctx->tok, job_data, &params, ctx->ivs, ctx->n_ivs, progress, progress_data,
                       cancellable, out, error))
    {
      g_free (out);
      return NULL;
    }
  return out;
}

static void
on_measured (GObject *source, GAsyncResult *result, gpointer data)
{
  RsCompareView *self = data;
  g_autoptr (GError) error = NULL;
  g_autofree RsPplResult *r = rs_session_worker_run_job_finish (RS_SESSION_WORKER (source), result, &error);
  if (self->effect_label == NULL) /* disposed meanwhile */
    {
      g_object_unref (self);
      return;
    }
  g_free (self->effect);
  if (r == NULL)
    self->effect = g_strdup_printf (_("Could not measure: %s"), error->message);
  else if (!r->steered)
    self->effect = g_strdup_printf (_("Perplexity of the prompt: %.3f over %lld"
                                      " tokens (no interventions to compare with)."), r->ppl, (long long) r->n_scored);
  else
    self->effect = g_strdup_printf (_("Perplexity of the prompt: %.3f without interventions, %.3f with them; "
                                      "mean KL of the next-token distributions %.4f nats; same top token at "
                                      "%.1f %% of %lld positions."),
                                    r->ppl, r->ppl_steered, r->kl, 100 * r->top1_agree, (long long) r->n_scored);
  if (r != NULL && r->steered && r->kl == 0 && r->ppl == r->ppl_steered)
    {
      char *more = g_strconcat (self->effect, " ", _("(These interventions start after the prompt, so they do not change it.)"), NULL);
      g_free (self->effect);
      self->effect = more;
    }
  gtk_label_set_text (self->effect_label, self->effect);
  gtk_widget_set_sensitive (GTK_WIDGET (self->measure_button), TRUE);
  g_object_unref (self);
}

void
rs_compare_view_measure (RsCompareView *self, const char *text)
{
  if (self->worker == NULL || text == NULL || *text == '\0')
    return;
  gtk_widget_set_sensitive (GTK_WIDGET (self->measure_button), FALSE);
  gtk_label_set_text (self->effect_label, _("Measuring…"));
  rs_session_worker_run_job (self->worker, ppl_job, g_strdup (text), g_free, g_free, NULL, on_measured,
                             g_object_ref (self));
}

static void
on_measure_clicked (RsCompareView *self)
{
  const char *prompt = self->worker ? rs_session_worker_get_prompt (self->worker) : NULL;
  if (prompt == NULL)
    {
      gtk_label_set_text (self->effect_label, _("Run the prompt first (Step or Run)."));
      return;
    }
  rs_compare_view_measure (self, prompt);
}

void
rs_compare_view_set_model (RsCompareView *self, const RsModelInfo *info, RsSessionWorker *worker)
{
  self->info = info;
  self->worker = worker;
  self->trace = NULL;
  g_clear_pointer (&self->effect, g_free);
  gtk_label_set_text (self->effect_label, "");
  rs_recompute_queue (&self->recompute);
}

void
rs_compare_view_trace_changed (RsCompareView *self, const RsTrace *trace, gint64 t0)
{
  self->trace = trace;
  rs_recompute_queue (&self->recompute);
}

static void
rs_compare_view_dispose (GObject *object)
{
  RsCompareView *self = RS_COMPARE_VIEW (object);
  rs_recompute_clear (&self->recompute);
  gtk_widget_dispose_template (GTK_WIDGET (self), RS_TYPE_COMPARE_VIEW);
  GtkWidget *child;
  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self))) != NULL)
    gtk_widget_unparent (child);
  G_OBJECT_CLASS (rs_compare_view_parent_class)->dispose (object);
}

static void
rs_compare_view_finalize (GObject *object)
{
  RsCompareView *self = RS_COMPARE_VIEW (object);
  g_free (self->diff);
  g_free (self->same);
  g_free (self->overlap);
  g_free (self->effect);
  G_OBJECT_CLASS (rs_compare_view_parent_class)->finalize (object);
}

static void
rs_compare_view_class_init (RsCompareViewClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  object_class->dispose = rs_compare_view_dispose;
  object_class->finalize = rs_compare_view_finalize;
  g_type_ensure (RS_TYPE_PLOT_WIDGET);
  gtk_widget_class_set_template_from_resource (widget_class, "/io/github/routescope/Routescope/rs-compare-view.ui");
  gtk_widget_class_bind_template_child (widget_class, RsCompareView, summary_label);
  gtk_widget_class_bind_template_child (widget_class, RsCompareView, measure_button);
  gtk_widget_class_bind_template_child (widget_class, RsCompareView, effect_label);
  gtk_widget_class_bind_template_child (widget_class, RsCompareView, diff_plot);
  gtk_widget_class_bind_template_child (widget_class, RsCompareView, agree_plot);
}

static void
rs_compare_view_init (RsCompareView *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  rs_recompute_init (&self->recompute, GTK_WIDGET (self), compute, 300);
  rs_recompute_attach (&self->recompute, self->diff_plot);
  rs_recompute_attach (&self->recompute, self->agree_plot);
  rs_plot_widget_set_prepare_func (self->diff_plot, prepare_diff, self);
  rs_plot_widget_set_prepare_func (self->agree_plot, prepare_agree, self);
  rs_plot_widget_set_tooltip_func (self->diff_plot, diff_tooltip, self);
  g_signal_connect_swapped (self->measure_button, "clicked", G_CALLBACK (on_measure_clicked), self);
}
