/* rs-align-view.c: cross-lingual routing alignment.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "rs-align-view.h"

#include "rs-analysis-plot.h"

#include <glib/gi18n.h>
#include <math.h>

#include "rs-config.h"
#include "rs-corpus.h"

struct _RsAlignView {
  GtkWidget        parent_instance;
  GtkButton       *corpus_button;
  GtkLabel        *corpus_label;
  GtkSpinButton   *ids_spin;
  GtkButton       *run_button;
  GtkButton       *cancel_button;
  GtkProgressBar  *progress;
  GtkLabel        *summary_label;
  RsPlotWidget    *plot;

  const RsModelInfo *info;
  RsSessionWorker *worker;
  char            *corpus;
  RsAlignResult   *result;
  char            *error;
  GCancellable    *cancel;
  gulong           progress_handler;
};

G_DEFINE_FINAL_TYPE (RsAlignView, rs_align_view, GTK_TYPE_WIDGET)

char *
rs_align_default_corpus (void)
{
  g_autofree char *installed = g_build_filename (RS_DATADIR, "corpus", "parallel.tsv", NULL);
  if (g_file_test (installed, G_FILE_TEST_EXISTS))
    return g_steal_pointer (&installed);
  return g_build_filename (RS_SOURCE_DATADIR, "corpus", "parallel.tsv", NULL);
}

RsPlotWidget *rs_align_view_get_plot_widget (RsAlignView *self) { return self->plot; }
const RsAlignResult *rs_align_view_get_result (RsAlignView *self) { return self->result; }
const char *rs_align_view_get_error (RsAlignView *self) { return self->error; }
gboolean rs_align_view_is_running (RsAlignView *self) { return self->cancel != NULL; }

void
rs_align_view_set_corpus (RsAlignView *self, const char *path)
{
  g_free (self->corpus);
  self->corpus = g_strdup (path);
  g_autofree char *name = g_filename_display_basename (path);
  gtk_label_set_text (self->corpus_label, name);
  gtk_widget_set_tooltip_text (GTK_WIDGET (self->corpus_label), path);
}

/* The same chart the CLI's `align --figure` draws. */
static void
prepare (RsPlot *plot, gpointer data)
{
  RsAlignView *self = data;
  rs_analysis_plot_align (plot, self->result, RS_IMPORTANCE_MEAN_PROB);
}

static void
set_running (RsAlignView *self, gboolean running)
{
  gtk_widget_set_visible (GTK_WIDGET (self->cancel_button), running);
  gtk_widget_set_visible (GTK_WIDGET (self->progress), running);
  gtk_widget_set_sensitive (GTK_WIDGET (self->run_button), !running && self->worker != NULL);
  gtk_widget_set_sensitive (GTK_WIDGET (self->corpus_button), !running);
  if (running)
    gtk_progress_bar_set_fraction (self->progress, 0);
}

typedef struct {
  char *corpus;
  int   max_ids;
} Job;

static void
job_free (gpointer data)
{
  Job *j = data;
  g_free (j->corpus);
  g_free (j);
}

static gpointer
align_job (const RsWorkerJobContext *ctx, RsProgressFunc progress, void *progress_data, GCancellable *cancellable,
           gpointer job_data, GError **error)
{
  Job *job = job_data;
  g_autoptr (RsCorpus) corpus = rs_corpus_load (job->corpus, error);
  if (corpus == NULL)
    return NULL;
  RsAlignRunParams params;
  rs_align_run_params_init (&params);
  params.session.n_threads = ctx->n_threads;
  params.max_ids = job->max_ids;
  params.ivs = ctx->ivs;
  params.n_ivs = ctx->n_ivs;
  return rs_align_run (ctx->model, ctx->tok, corpus, &params, progress, progress_data, cancellable, error);
}

static void
update_summary (RsAlignView *self)
{
  const RsAlignResult *r = self->result;
  if (self->error)
    {
      gtk_label_set_text (self->summary_label, self->error);
      return;
    }
  if (r == NULL)
    {
      gtk_label_set_text (self->summary_label,
                          _("How differently does the model route the same sentence in other languages? Run the "
                            "parallel corpus to see, layer by layer (lower: more alike)."));
      return;
    }
  g_autofree char *text = g_strdup_printf (
    _("%lld sentence ids in %d languages, reference “%s”: %lld tokens in %.1f s "
      "(engine %.1f s). Lines: mean normalised Jensen-Shannon divergence of each language's expert importance "
      "to the reference's, by layer."),
    (long long) r->n_ids, r->n_lang, r->ref >= 0 ? r->langs[r->ref] : "?", (long long) r->n_tokens,
    r->engine_seconds + r->analysis_seconds + r->tokenize_seconds, r->engine_seconds);
  gtk_label_set_text (self->summary_label, text);
}

static void
on_done (GObject *source, GAsyncResult *result, gpointer data)
{
  RsAlignView *self = data;
  g_autoptr (GError) error = NULL;
  RsAlignResult *r = rs_session_worker_run_job_finish (RS_SESSION_WORKER (source), result, &error);
  g_clear_object (&self->cancel);
  g_clear_pointer (&self->error, g_free);
  if (self->summary_label == NULL) /* disposed meanwhile */
    {
      rs_align_result_free (r);
      g_object_unref (self);
      return;
    }
  if (r != NULL)
    {
      rs_align_result_free (self->result);
      self->result = r;
    }
  else if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    self->error = g_strdup_printf (_("Alignment failed: %s"), error->message);
  else
    self->error = g_strdup (_("Alignment cancelled."));
  set_running (self, FALSE);
  update_summary (self);
  rs_plot_widget_invalidate (self->plot);
  g_object_unref (self);
}

static void
on_progress (RsSessionWorker *worker, double fraction, RsAlignView *self)
{
  if (self->cancel != NULL)
    gtk_progress_bar_set_fraction (self->progress, fraction);
}

void
rs_align_view_run (RsAlignView *self, int max_ids)
{
  if (self->worker == NULL || self->cancel != NULL)
    return;
  Job *job = g_new0 (Job, 1);
  job->corpus = g_strdup (self->corpus);
  job->max_ids = max_ids;
  self->cancel = g_cancellable_new ();
  set_running (self, TRUE);
  gtk_label_set_text (self->summary_label, _("Running the corpus…"));
  rs_session_worker_run_job (self->worker, align_job, job, job_free, (GDestroyNotify) rs_align_result_free,
                             self->cancel, on_done, g_object_ref (self));
}

static void
on_run (RsAlignView *self)
{
  rs_align_view_run (self, gtk_spin_button_get_value_as_int (self->ids_spin));
}

static void
on_cancel (RsAlignView *self)
{
  if (self->cancel)
    g_cancellable_cancel (self->cancel);
}

static void
on_corpus_response (GtkNativeDialog *dialog, int response, RsAlignView *self)
{
  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr (GFile) file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog));
      g_autofree char *path = g_file_get_path (file);
      if (path)
        rs_align_view_set_corpus (self, path);
    }
  g_object_unref (dialog);
}

static void
on_choose_corpus (RsAlignView *self)
{
  GtkRoot *root = gtk_widget_get_root (GTK_WIDGET (self));
  GtkFileChooserNative *native = gtk_file_chooser_native_new (_("Parallel Corpus"), GTK_IS_WINDOW (root) ? GTK_WINDOW (root) : NULL,
                                                              GTK_FILE_CHOOSER_ACTION_OPEN, _("_Select"), _("_Cancel"));
  g_signal_connect (native, "response", G_CALLBACK (on_corpus_response), self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (native));
}

void
rs_align_view_set_model (RsAlignView *self, const RsModelInfo *info, RsSessionWorker *worker)
{
  if (self->worker != worker)
    {
      if (self->worker)
        g_clear_signal_handler (&self->progress_handler, self->worker);
      self->worker = worker;
      if (worker)
        self->progress_handler = g_signal_connect (worker, "job-progress", G_CALLBACK (on_progress), self);
    }
  self->info = info;
  g_clear_pointer (&self->result, rs_align_result_free);
  g_clear_pointer (&self->error, g_free);
  set_running (self, self->cancel != NULL);
  update_summary (self);
  rs_plot_widget_invalidate (self->plot);
}

static void
rs_align_view_dispose (GObject *object)
{
  RsAlignView *self = RS_ALIGN_VIEW (object);
  if (self->cancel)
    g_cancellable_cancel (self->cancel);
  if (self->worker)
    g_clear_signal_handler (&self->progress_handler, self->worker);
  self->worker = NULL;
  gtk_widget_dispose_template (GTK_WIDGET (self), RS_TYPE_ALIGN_VIEW);
  GtkWidget *child;
  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self))) != NULL)
    gtk_widget_unparent (child);
  G_OBJECT_CLASS (rs_align_view_parent_class)->dispose (object);
}

static void
rs_align_view_finalize (GObject *object)
{
  RsAlignView *self = RS_ALIGN_VIEW (object);
  g_free (self->corpus);
  g_free (self->error);
  rs_align_result_free (self->result);
  g_clear_object (&self->cancel);
  G_OBJECT_CLASS (rs_align_view_parent_class)->finalize (object);
}

static void
rs_align_view_class_init (RsAlignViewClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  object_class->dispose = rs_align_view_dispose;
  object_class->finalize = rs_align_view_finalize;
  g_type_ensure (RS_TYPE_PLOT_WIDGET);
  gtk_widget_class_set_template_from_resource (widget_class, "/io/github/routescope/Routescope/rs-align-view.ui");
  gtk_widget_class_bind_template_child (widget_class, RsAlignView, corpus_button);
  gtk_widget_class_bind_template_child (widget_class, RsAlignView, corpus_label);
  gtk_widget_class_bind_template_child (widget_class, RsAlignView, ids_spin);
  gtk_widget_class_bind_template_child (widget_class, RsAlignView, run_button);
  gtk_widget_class_bind_template_child (widget_class, RsAlignView, cancel_button);
  gtk_widget_class_bind_template_child (widget_class, RsAlignView, progress);
  gtk_widget_class_bind_template_child (widget_class, RsAlignView, summary_label);
  gtk_widget_class_bind_template_child (widget_class, RsAlignView, plot);
}

static void
rs_align_view_init (RsAlignView *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  g_autofree char *corpus = rs_align_default_corpus ();
  rs_align_view_set_corpus (self, corpus);
  rs_plot_widget_set_prepare_func (self->plot, prepare, self);
  g_signal_connect_swapped (self->run_button, "clicked", G_CALLBACK (on_run), self);
  g_signal_connect_swapped (self->cancel_button, "clicked", G_CALLBACK (on_cancel), self);
  g_signal_connect_swapped (self->corpus_button, "clicked", G_CALLBACK (on_choose_corpus), self);
  set_running (self, FALSE);
  update_summary (self);
}
