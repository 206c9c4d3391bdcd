/* rs-window.c: the workbench window.
 *
 * Window actions:
 *   win.step, win.run, win.pause, win.stop, win.reset (new run), win.replay
 *   win.load-model(s), win.cancel-load
 *   win.export-figure (file chooser), win.export-figure-to(s)
 *   win.save-trace (file chooser), win.save-trace-to(s)
 *   win.select-expert((ii)), win.select-token(x), win.show-view(s)
 *   win.disable-expert((ii)), win.force-expert((ii)), win.bias-expert((iid)), win.disable-super-experts
 *   win.set-intervention-value((id)), win.set-intervention-from((ix)), win.remove-intervention(i),
 *   win.clear-interventions
 *   win.dismiss-error, win.focus-prompt
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "rs-window.h"

#include <glib/gi18n.h>
#include <math.h>
#include <unistd.h>

#include "rs-config.h"
#include "rs-cpu.h"
#include "rs-analysis.h"
#include "rs-plot-widget.h"
#include "rs-routing-stats.h"
#include "rs-settings.h"
#include "rs-view-util.h"

struct _RsWindow {
  GtkApplicationWindow parent_instance;

  /* template */
  GtkLabel          *subtitle_label;
  GtkMenuButton     *recent_button;
  GtkLabel          *device_label;
  GtkSpinButton     *threads_spin;
  GtkLabel          *threads_label;
  GtkRevealer       *banner_revealer;
  GtkLabel          *banner_label;
  GtkStack          *main_stack;
  GtkLabel          *loading_title;
  GtkProgressBar    *loading_progress;
  GtkPaned          *paned;
  GtkTextView       *prompt_view;
  GtkDropDown       *chip_stat_dropdown;
  GtkSpinButton     *chip_layer_spin;
  GtkLabel          *chip_range_label;
  RsTokenStrip      *token_strip;
  GtkStack          *views;
  RsHeatmapView     *heatmap_view;
  RsTokenView       *token_view;
  RsAlignView       *align_view;
  RsSuperView       *super_view;
  RsConsistencyView *consistency_view;
  RsCompareView     *compare_view;
  RsExpertInspector *inspector;
  GtkLabel          *model_label;
  GtkLabel          *state_label;
  GtkLabel          *speed_label;
  GtkLabel          *memory_label;

  RsSessionWorker   *worker;
  GSettings         *settings;
  GArray            *ivs;          /* RsIntervention: what we asked for */
  int                ivs_in_flight;
  GArray            *chip_values;  /* double [T] */
  char              *error;
  char              *loading_path;
  gboolean           paused;
  guint              memory_timer;
};

G_DEFINE_FINAL_TYPE (RsWindow, rs_window, GTK_TYPE_APPLICATION_WINDOW)

/* ---- small helpers ------------------------------------------------------ */

RsSessionWorker *rs_window_get_worker (RsWindow *self) { return self->worker; }
RsHeatmapView *rs_window_get_heatmap_view (RsWindow *self) { return self->heatmap_view; }
RsTokenView *rs_window_get_token_view (RsWindow *self) { return self->token_view; }
RsTokenStrip *rs_window_get_token_strip (RsWindow *self) { return self->token_strip; }
RsExpertInspector *rs_window_get_inspector (RsWindow *self) { return self->inspector; }
RsAlignView *rs_window_get_align_view (RsWindow *self) { return self->align_view; }
RsSuperView *rs_window_get_super_view (RsWindow *self) { return self->super_view; }
RsConsistencyView *rs_window_get_consistency_view (RsWindow *self) { return self->consistency_view; }
RsCompareView *rs_window_get_compare_view (RsWindow *self) { return self->compare_view; }
const char *rs_window_get_error (RsWindow *self) { return self->error; }

void
rs_window_set_view (RsWindow *self, const char *name)
{
  gtk_stack_set_visible_child_name (self->views, name);
}

void
rs_window_show_error (RsWindow *self, const char *message)
{
  g_free (self->error);
  self->error = g_strdup (message);
  gtk_label_set_text (self->banner_label, message);
  gtk_revealer_set_reveal_child (self->banner_revealer, TRUE);
  g_message ("%s", message);
}

static void
dismiss_error (RsWindow *self)
{
  g_clear_pointer (&self->error, g_free);
  gtk_revealer_set_reveal_child (self->banner_revealer, FALSE);
}

void
rs_window_set_prompt (RsWindow *self, const char *prompt)
{
  gtk_text_buffer_set_text (gtk_text_view_get_buffer (self->prompt_view), prompt, -1);
}

char *
rs_window_get_prompt (RsWindow *self)
{
  GtkTextBuffer *buffer = gtk_text_view_get_buffer (self->prompt_view);
  GtkTextIter start, end;
  gtk_text_buffer_get_bounds (buffer, &start, &end);
  return gtk_text_buffer_get_text (buffer, &start, &end, FALSE);
}

static int
n_threads (RsWindow *self)
{
  return g_settings_get_int (self->settings, "threads");
}

static GAction *
lookup (RsWindow *self, const char *name)
{
  return g_action_map_lookup_action (G_ACTION_MAP (self), name);
}

static void
enable (RsWindow *self, const char *name, gboolean enabled)
{
  GAction *a = lookup (self, name);
  if (a)
    g_simple_action_set_enabled (G_SIMPLE_ACTION (a), enabled);
}

/* ---- status ------------------------------------------------------------- */

static void
update_state (RsWindow *self)
{
  RsWorkerState state = rs_session_worker_get_state (self->worker);
  gboolean running = rs_session_worker_get_running (self->worker);
  gboolean have_model = rs_session_worker_get_model_info (self->worker) != NULL;
  const RsTrace *tr = rs_session_worker_get_trace (self->worker);
  gboolean have_tokens = tr != NULL && tr->n_tokens > 0;
  gboolean usable = have_model && state != RS_WORKER_LOADING;

  enable (self, "step", usable && !running);
  enable (self, "run", usable && !running);
  enable (self, "pause", running);
  enable (self, "stop", state == RS_WORKER_BUSY);
  enable (self, "reset", usable);
  enable (self, "replay", usable && have_tokens && !running);
  enable (self, "export-figure", have_model);
  enable (self, "export-figure-to", have_model);
  enable (self, "save-trace", have_tokens);
  enable (self, "save-trace-to", have_tokens);
  enable (self, "cancel-load", state == RS_WORKER_LOADING);

  const char *text;
  switch (state)
    {
    case RS_WORKER_EMPTY: text = _("No model"); break;
    case RS_WORKER_LOADING: text = _("Loading…"); break;
    case RS_WORKER_BUSY: text = running ? _("Generating…") : _("Running…"); break;
    case RS_WORKER_IDLE:
    default:
      if (rs_session_worker_get_at_eog (self->worker))
        text = _("End of text");
      else if (self->paused)
        text = _("Paused");
      else
        text = _("Ready");
      break;
    }
  gtk_label_set_text (self->state_label, text);

  double tok_s = rs_session_worker_get_tokens_per_second (self->worker);
  g_autofree char *speed = tok_s > 0 ? g_strdup_printf (_("%.1f tokens/s"), tok_s) : g_strdup ("");
  gtk_label_set_text (self->speed_label, speed);
}

static gboolean
update_memory (gpointer data)
{
  RsWindow *self = data;
  g_autofree char *statm = NULL;
  if (g_file_get_contents ("/proc/self/statm", &statm, NULL, NULL))
    {
      unsigned long size = 0, resident = 0;
      if (sscanf (statm, "%lu %lu", &size, &resident) == 2)
        {
          g_autofree char *bytes = g_format_size ((guint64) resident * sysconf (_SC_PAGESIZE));
          g_autofree char *text = g_strdup_printf (_("%s in use"), bytes);
          gtk_label_set_text (self->memory_label, text);
        }
    }
  return G_SOURCE_CONTINUE;
}

static void
update_model_labels (RsWindow *self)
{
  const RsModelInfo *info = rs_session_worker_get_model_info (self->worker);
  if (info == NULL)
    {
      gtk_label_set_text (self->subtitle_label, "");
      gtk_label_set_text (self->model_label, _("No model open"));
      return;
    }
  gtk_label_set_text (self->subtitle_label, info->name);
  g_autofree char *size = g_format_size (info->file_size);
  g_autofree char *text = g_strdup_printf (_("%s · %s · %d layers × %d experts, top-%d · %s · %d threads"),
                                           info->name, info->arch, info->n_layer, info->n_expert,
                                           info->n_expert_used, size, info->n_threads);
  gtk_label_set_text (self->model_label, text);
  gtk_widget_set_tooltip_text (GTK_WIDGET (self->model_label), info->path);
  g_autofree char *threads = g_strdup_printf (
    _("Changes apply to the next model you open or the next new run. The current session uses %d threads."),
    info->n_threads);
  gtk_label_set_text (self->threads_label, threads);
}

/* ---- token strip colours ------------------------------------------------ */

static void
update_chip_values (RsWindow *self, gint64 t0)
{
  const RsTrace *tr = rs_session_worker_get_trace (self->worker);
  guint sel = gtk_drop_down_get_selected (self->chip_stat_dropdown);
  gtk_widget_set_visible (GTK_WIDGET (self->chip_layer_spin), sel == 2);
  if (tr == NULL || sel == 0 || sel == GTK_INVALID_LIST_POSITION)
    {
      rs_token_strip_set_values (self->token_strip, NULL, 0, FALSE, RS_COLORMAP_VIRIDIS, NAN, NAN);
      rs_token_strip_set_value_format (self->token_strip, NULL);
      gtk_label_set_text (self->chip_range_label, "");
      return;
    }
  RsTokenStat stat = sel == 1 ? RS_TOKEN_STAT_ENTROPY
                   : sel == 2 ? RS_TOKEN_STAT_TOP_EXPERT
                   : sel == 3 ? RS_TOKEN_STAT_DIVERGENCE : RS_TOKEN_STAT_PROB;
  t0 = CLAMP (t0, 0, (gint64) self->chip_values->len);
  g_array_set_size (self->chip_values, tr->n_tokens);
  rs_token_stat_values (tr, stat, gtk_spin_button_get_value_as_int (self->chip_layer_spin), t0, tr->n_tokens,
                        (double *) self->chip_values->data);
  g_autofree char *cmap_name = g_settings_get_string (self->settings, "colormap");
  RsColormap cmap = g_strcmp0 (cmap_name, "magma") == 0 ? RS_COLORMAP_MAGMA : RS_COLORMAP_VIRIDIS;
  double lo = NAN, hi = NAN;
  const char *format = "%.3f";
  switch (stat)
    {
    case RS_TOKEN_STAT_ENTROPY: format = _("router entropy %.3f nats"); break;
    case RS_TOKEN_STAT_TOP_EXPERT: format = _("top expert %.0f"); break;
    case RS_TOKEN_STAT_DIVERGENCE: format = _("divergence %.3f"); lo = 0; hi = 1; break;
    case RS_TOKEN_STAT_PROB: format = _("probability %.3f"); lo = 0; hi = 1; break;
    }
  rs_token_strip_set_values (self->token_strip, (double *) self->chip_values->data, self->chip_values->len,
                             stat == RS_TOKEN_STAT_TOP_EXPERT, cmap, lo, hi);
  rs_token_strip_set_value_format (self->token_strip, format);
  double rlo, rhi;
  if (stat == RS_TOKEN_STAT_TOP_EXPERT)
    gtk_label_set_text (self->chip_range_label, _("one colour per expert"));
  else if (rs_token_strip_get_range (self->token_strip, &rlo, &rhi))
    {
      g_autofree char *range = g_strdup_printf (_("dark %.3g … light %.3g"), rlo, rhi);
      gtk_label_set_text (self->chip_range_label, range);
    }
  else
    gtk_label_set_text (self->chip_range_label, "");
}

static void
on_chip_stat_changed (RsWindow *self)
{
  g_array_set_size (self->chip_values, 0);
  update_chip_values (self, 0);
}

/* ---- worker signals ----------------------------------------------------- */

static void
on_trace_changed (RsSessionWorker *worker, gint64 t0, RsWindow *self)
{
  const RsTrace *tr = rs_session_worker_get_trace (worker);
  /* The views first: the old trace may be gone (a new run), and the
   * strip's selection change below makes the token view read the trace. */
  rs_heatmap_view_trace_changed (self->heatmap_view, tr, t0);
  rs_token_view_trace_changed (self->token_view, tr, t0);
  rs_super_view_trace_changed (self->super_view, tr, t0);
  rs_consistency_view_trace_changed (self->consistency_view, tr, t0);
  rs_compare_view_trace_changed (self->compare_view, tr, t0);
  rs_expert_inspector_trace_changed (self->inspector, tr, t0);
  rs_token_strip_set_trace (self->token_strip, tr, t0);
  if (t0 < (gint64) self->chip_values->len)
    g_array_set_size (self->chip_values, t0);
  update_chip_values (self, t0);
  rs_token_view_set_token (self->token_view, rs_token_strip_get_selected (self->token_strip));
  update_state (self);
}

static void
on_model_loaded (RsSessionWorker *worker, RsWindow *self)
{
  const RsModelInfo *info = rs_session_worker_get_model_info (worker);
  g_clear_pointer (&self->loading_path, g_free);
  rs_heatmap_view_set_model (self->heatmap_view, info);
  rs_token_view_set_model (self->token_view, info);
  rs_align_view_set_model (self->align_view, info, worker);
  rs_super_view_set_model (self->super_view, info);
  rs_consistency_view_set_model (self->consistency_view, info);
  rs_compare_view_set_model (self->compare_view, info, worker);
  rs_expert_inspector_set_model (self->inspector, info);
  g_array_set_size (self->chip_values, 0);
  gtk_adjustment_set_upper (gtk_spin_button_get_adjustment (self->chip_layer_spin), info->n_layer - 1);
  for (int l = 0; l < info->n_layer; l++)
    if (info->layer_is_moe[l])
      {
        gtk_spin_button_set_value (self->chip_layer_spin, l);
        break;
      }
  update_model_labels (self);
  rs_settings_add_recent_model (self->settings, info->path);
  gtk_stack_set_visible_child_name (self->main_stack, "session");
  dismiss_error (self);
  self->paused = FALSE;
  update_state (self);
}

static void
on_load_failed (RsSessionWorker *worker, const GError *error, RsWindow *self)
{
  gboolean have_model = rs_session_worker_get_model_info (worker) != NULL;
  gtk_stack_set_visible_child_name (self->main_stack, have_model ? "session" : "empty");
  if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      g_autofree char *name = self->loading_path ? g_filename_display_basename (self->loading_path) : g_strdup ("");
      g_autofree char *msg = g_strdup_printf (_("Could not open “%s”: %s"), name, error->message);
      rs_window_show_error (self, msg);
    }
  g_clear_pointer (&self->loading_path, g_free);
  update_state (self);
}

static void
on_load_progress (RsSessionWorker *worker, double fraction, const char *stage, RsWindow *self)
{
  gtk_progress_bar_set_fraction (self->loading_progress, fraction);
  g_autofree char *text = g_strdup_printf ("%s — %.0f %%", stage, fraction * 100);
  gtk_progress_bar_set_text (self->loading_progress, text);
}

static void
on_worker_error (RsSessionWorker *worker, const GError *error, RsWindow *self)
{
  rs_window_show_error (self, error->message);
}

static void
on_interventions_changed (RsSessionWorker *worker, RsWindow *self)
{
  int n;
  const RsIntervention *ivs = rs_session_worker_get_interventions (worker, &n);
  if (self->ivs_in_flight > 0)
    self->ivs_in_flight--;
  if (self->ivs_in_flight == 0)
    {
      g_array_set_size (self->ivs, 0);
      g_array_append_vals (self->ivs, ivs, n);
    }
  rs_expert_inspector_set_interventions (self->inspector, ivs, n);
  rs_token_view_set_interventions (self->token_view, ivs, n);
}

static void
on_worker_state (RsWindow *self)
{
  update_state (self);
}

/* ---- loading ------------------------------------------------------------ */

void
rs_window_load_model (RsWindow *self, const char *path)
{
  g_free (self->loading_path);
  self->loading_path = g_strdup (path);
  g_autofree char *name = g_filename_display_basename (path);
  g_autofree char *title = g_strdup_printf (_("Opening %s"), name);
  gtk_label_set_text (self->loading_title, title);
  gtk_progress_bar_set_fraction (self->loading_progress, 0);
  gtk_progress_bar_set_text (self->loading_progress, _("Checking the file"));
  gtk_stack_set_visible_child_name (self->main_stack, "loading");
  dismiss_error (self);
  rs_session_worker_load (self->worker, path, n_threads (self));
  update_state (self);
}

/* ---- actions: running --------------------------------------------------- */

static void
remember_prompt (RsWindow *self, const char *prompt)
{
  g_autofree char *old = g_settings_get_string (self->settings, "prompt");
  if (g_strcmp0 (old, prompt) != 0)
    g_settings_set_string (self->settings, "prompt", prompt);
}

static void
win_step (GSimpleAction *action, GVariant *param, gpointer data)
{
  RsWindow *self = data;
  g_autofree char *prompt = rs_window_get_prompt (self);
  remember_prompt (self, prompt);
  self->paused = FALSE;
  rs_session_worker_step (self->worker, prompt, 1);
}

static void
win_run (GSimpleAction *action, GVariant *param, gpointer data)
{
  RsWindow *self = data;
  g_autofree char *prompt = rs_window_get_prompt (self);
  remember_prompt (self, prompt);
  self->paused = FALSE;
  rs_session_worker_run (self->worker, prompt, g_settings_get_int (self->settings, "max-tokens"));
  update_state (self);
}

static void
win_pause (GSimpleAction *action, GVariant *param, gpointer data)
{
  RsWindow *self = data;
  self->paused = TRUE;
  rs_session_worker_pause (self->worker);
}

static void
win_stop (GSimpleAction *action, GVariant *param, gpointer data)
{
  RsWindow *self = data;
  self->paused = FALSE;
  rs_session_worker_stop (self->worker);
}

static void
win_reset (GSimpleAction *action, GVariant *param, gpointer data)
{
  RsWindow *self = data;
  self->paused = FALSE;
  rs_session_worker_reset (self->worker, n_threads (self));
}

static void
win_replay (GSimpleAction *action, GVariant *param, gpointer data)
{
  RsWindow *self = data;
  rs_session_worker_replay (RS_WINDOW (data)->worker);
  (void) self;
}

static void
win_load_model (GSimpleAction *action, GVariant *param, gpointer data)
{
  rs_window_load_model (data, g_variant_get_string (param, NULL));
}

static void
win_cancel_load (GSimpleAction *action, GVariant *param, gpointer data)
{
  rs_session_worker_cancel_load (RS_WINDOW (data)->worker);
}

static void
win_dismiss_error (GSimpleAction *action, GVariant *param, gpointer data)
{
  dismiss_error (data);
}

static void
win_focus_prompt (GSimpleAction *action, GVariant *param, gpointer data)
{
  gtk_widget_grab_focus (GTK_WIDGET (RS_WINDOW (data)->prompt_view));
}

static void
win_show_view (GSimpleAction *action, GVariant *param, gpointer data)
{
  rs_window_set_view (data, g_variant_get_string (param, NULL));
}

static void
win_select_token (GSimpleAction *action, GVariant *param, gpointer data)
{
  rs_token_strip_set_selected (RS_WINDOW (data)->token_strip, g_variant_get_int64 (param));
}

static void
win_select_expert (GSimpleAction *action, GVariant *param, gpointer data)
{
  int layer, expert;
  g_variant_get (param, "(ii)", &layer, &expert);
  rs_expert_inspector_set_expert (RS_WINDOW (data)->inspector, layer, expert);
}

/* ---- actions: interventions --------------------------------------------- */

static void
send_interventions (RsWindow *self)
{
  self->ivs_in_flight++;
  rs_session_worker_set_interventions (self->worker, (RsIntervention *) self->ivs->data, self->ivs->len);
}

/* The index of a single-expert intervention of @kind on exactly @layer, or -1. */
static int
find_iv (RsWindow *self, RsInterventionKind kind, int layer, int expert)
{
  for (guint i = 0; i < self->ivs->len; i++)
    {
      RsIntervention *iv = &g_array_index (self->ivs, RsIntervention, i);
      if (iv->kind == kind && iv->layer_first == layer && iv->layer_last == layer && iv->n_experts == 1
          && iv->experts[0] == expert)
        return i;
    }
  return -1;
}

static void
add_expert_iv (RsWindow *self, RsInterventionKind kind, int layer, int expert, float value)
{
  int i = find_iv (self, kind, layer, expert);
  if (i >= 0)
    {
      RsIntervention *iv = &g_array_index (self->ivs, RsIntervention, i);
      if (iv->value == value)
        return;
      iv->value = value;
    }
  else
    {
      RsIntervention iv = { 0 };
      iv.kind = kind;
      iv.layer_first = iv.layer_last = layer;
      iv.n_experts = 1;
      iv.experts[0] = expert;
      iv.value = value;
      iv.from_token = -1; /* from the next token */
      /* disable and force of the same expert exclude each other */
      RsInterventionKind other = kind == RS_INTERVENE_DISABLE ? RS_INTERVENE_FORCE
                               : kind == RS_INTERVENE_FORCE ? RS_INTERVENE_DISABLE : kind;
      int j = other != kind ? find_iv (self, other, layer, expert) : -1;
      if (j >= 0)
        g_array_remove_index (self->ivs, j);
      g_array_append_val (self->ivs, iv);
    }
  send_interventions (self);
  rs_expert_inspector_set_expert (self->inspector, layer, expert);
}

static void
win_disable_expert (GSimpleAction *action, GVariant *param, gpointer data)
{
  int layer, expert;
  g_variant_get (param, "(ii)", &layer, &expert);
  add_expert_iv (data, RS_INTERVENE_DISABLE, layer, expert, 0);
}

static void
win_force_expert (GSimpleAction *action, GVariant *param, gpointer data)
{
  int layer, expert;
  g_variant_get (param, "(ii)", &layer, &expert);
  add_expert_iv (data, RS_INTERVENE_FORCE, layer, expert, 0);
}

static void
win_bias_expert (GSimpleAction *action, GVariant *param, gpointer data)
{
  int layer, expert;
  double value;
  g_variant_get (param, "(iid)", &layer, &expert, &value);
  add_expert_iv (data, RS_INTERVENE_BIAS, layer, expert, (float) value);
}

static void
win_set_intervention_value (GSimpleAction *action, GVariant *param, gpointer data)
{
  RsWindow *self = data;
  int index;
  double value;
  g_variant_get (param, "(id)", &index, &value);
  if (index < 0 || index >= (int) self->ivs->len)
    return;
  RsIntervention *iv = &g_array_index (self->ivs, RsIntervention, index);
  if (iv->value == (float) value)
    return;
  iv->value = (float) value;
  send_interventions (self);
}

static void
win_set_intervention_from (GSimpleAction *action, GVariant *param, gpointer data)
{
  RsWindow *self = data;
  int index;
  gint64 from;
  g_variant_get (param, "(ix)", &index, &from);
  if (index < 0 || index >= (int) self->ivs->len || from < 0)
    return;
  RsIntervention *iv = &g_array_index (self->ivs, RsIntervention, index);
  if (iv->from_token == from)
    return;
  iv->from_token = from;
  send_interventions (self);
}

static void
win_remove_intervention (GSimpleAction *action, GVariant *param, gpointer data)
{
  RsWindow *self = data;
  int index = g_variant_get_int32 (param);
  if (index < 0 || index >= (int) self->ivs->len)
    return;
  g_array_remove_index (self->ivs, index);
  send_interventions (self);
}

static void
win_disable_super_experts (GSimpleAction *action, GVariant *param, gpointer data)
{
  RsWindow *self = data;
  const RsTrace *tr = rs_session_worker_get_trace (self->worker);
  if (tr == NULL)
    return;
  RsSuperParams params;
  rs_super_params_init (&params);
  g_autoptr (GError) error = NULL;
  g_autoptr (RsSuperResult) r = rs_super_compute (tr, &params, &error);
  if (r == NULL)
    {
      rs_window_show_error (self, error->message);
      return;
    }
  g_autoptr (GArray) ivs = rs_super_interventions (r);
  for (guint i = 0; i < ivs->len; i++)
    {
      RsIntervention *iv = &g_array_index (ivs, RsIntervention, i);
      iv->from_token = -1; /* from the next token, like every change made here */
      g_array_append_val (self->ivs, *iv);
    }
  if (ivs->len > 0)
    send_interventions (self);
}

static void
win_clear_interventions (GSimpleAction *action, GVariant *param, gpointer data)
{
  RsWindow *self = data;
  g_array_set_size (self->ivs, 0);
  send_interventions (self);
}

/* ---- export ------------------------------------------------------------- */

static RsPlotWidget *
current_plot (RsWindow *self)
{
  const char *name = gtk_stack_get_visible_child_name (self->views);
  if (g_strcmp0 (name, "token") == 0)
    return rs_token_view_get_plot_widget (self->token_view);
  if (g_strcmp0 (name, "align") == 0)
    return rs_align_view_get_plot_widget (self->align_view);
  if (g_strcmp0 (name, "super") == 0)
    return rs_super_view_get_plot_widget (self->super_view);
  if (g_strcmp0 (name, "consistency") == 0)
    return rs_consistency_view_get_plot_widget (self->consistency_view);
  if (g_strcmp0 (name, "compare") == 0)
    return rs_compare_view_get_plot_widget (self->compare_view);
  return rs_heatmap_view_get_plot_widget (self->heatmap_view);
}

gboolean
rs_window_export_figure (RsWindow *self, const char *path, double width, double height, double scale,
                         GError **error)
{
  RsPlotWidget *pw = current_plot (self);
  if (g_strcmp0 (gtk_stack_get_visible_child_name (self->views), "token") == 0
      && rs_token_view_get_token (self->token_view) < 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s", _("Select a token first: the view is empty"));
      return FALSE;
    }
  rs_recompute_flush_plot (pw);
  rs_plot_widget_ensure_prepared (pw);
  RsPlot *plot = rs_plot_widget_get_plot (pw);
  /* figures are for papers and slides: always the light style */
  rs_plot_set_dark (plot, FALSE);
  gboolean ok = rs_plot_export (plot, path, width, height, scale, error);
  gtk_widget_queue_draw (GTK_WIDGET (pw));
  return ok;
}

static void
win_export_figure_to (GSimpleAction *action, GVariant *param, gpointer data)
{
  RsWindow *self = data;
  g_autoptr (GError) error = NULL;
  const char *path = g_variant_get_string (param, NULL);
  if (!rs_window_export_figure (self, path, g_settings_get_int (self->settings, "export-width"),
                                g_settings_get_int (self->settings, "export-height"),
                                g_settings_get_double (self->settings, "export-scale"), &error))
    rs_window_show_error (self, error->message);
}

static const char *
choice (GtkFileChooser *chooser, const char *id, const char *fallback)
{
  const char *v = gtk_file_chooser_get_choice (chooser, id);
  return v ? v : fallback;
}

static char *
with_extension (const char *path, const char *ext)
{
  g_autofree char *lower = g_ascii_strdown (path, -1);
  g_autofree char *dot_ext = g_strconcat (".", ext, NULL);
  if (g_str_has_suffix (lower, dot_ext))
    return g_strdup (path);
  return g_strconcat (path, dot_ext, NULL);
}

static void
on_export_response (GtkNativeDialog *dialog, int response, RsWindow *self)
{
  if (response == GTK_RESPONSE_ACCEPT)
    {
      GtkFileChooser *chooser = GTK_FILE_CHOOSER (dialog);
      g_autoptr (GFile) file = gtk_file_chooser_get_file (chooser);
      g_autofree char *raw = g_file_get_path (file);
      const char *format = choice (chooser, "format", "png");
      g_autofree char *path = with_extension (raw, format);
      const char *size = choice (chooser, "size", "1200x750");
      double scale = g_ascii_strtod (choice (chooser, "scale", "2"), NULL);
      int w = 1200, h = 750;
      if (g_strcmp0 (size, "view") == 0)
        {
          w = gtk_widget_get_width (GTK_WIDGET (current_plot (self)));
          h = gtk_widget_get_height (GTK_WIDGET (current_plot (self)));
        }
      else
        sscanf (size, "%dx%d", &w, &h);
      g_settings_set_int (self->settings, "export-width", w);
      g_settings_set_int (self->settings, "export-height", h);
      g_settings_set_double (self->settings, "export-scale", scale);
      g_autoptr (GError) error = NULL;
      if (!rs_window_export_figure (self, path, w, h, scale, &error))
        rs_window_show_error (self, error->message);
    }
  g_object_unref (dialog);
}

static void
win_export_figure (GSimpleAction *action, GVariant *param, gpointer data)
{
  RsWindow *self = data;
  GtkFileChooserNative *native = gtk_file_chooser_native_new (_("Export Figure"), GTK_WINDOW (self),
                                                              GTK_FILE_CHOOSER_ACTION_SAVE, _("_Export"), _("_Cancel"));
  GtkFileChooser *chooser = GTK_FILE_CHOOSER (native);
  const char *format_ids[] = { "png", "svg", "pdf", NULL };
  const char *format_labels[] = { _("PNG image"), _("SVG drawing"), _("PDF document"), NULL };
  gtk_file_chooser_add_choice (chooser, "format", _("Format"), format_ids, format_labels);
  gtk_file_chooser_set_choice (chooser, "format", "png");
  /* the defaults first: GTK 4.8's fallback dialog ignores set_choice */
  const char *size_ids[] = { "1200x750", "800x500", "1600x1000", "view", NULL };
  const char *size_labels[] = { _("1200 × 750 pt"), _("800 × 500 pt"), _("1600 × 1000 pt"), _("As on screen"), NULL };
  gtk_file_chooser_add_choice (chooser, "size", _("Size"), size_ids, size_labels);
  gtk_file_chooser_set_choice (chooser, "size", "1200x750");
  const char *scale_ids[] = { "2", "1", "3", NULL };
  const char *scale_labels[] = { _("2× (PNG)"), _("1× (PNG)"), _("3× (PNG)"), NULL };
  gtk_file_chooser_add_choice (chooser, "scale", _("Scale"), scale_ids, scale_labels);
  gtk_file_chooser_set_choice (chooser, "scale", "2");
  const char *view = gtk_stack_get_visible_child_name (self->views);
  g_autofree char *name = g_strdup_printf ("routescope-%s.png", view ? view : "figure");
  gtk_file_chooser_set_current_name (chooser, name);
  g_signal_connect (native, "response", G_CALLBACK (on_export_response), self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (native));
}

static void
on_trace_saved (GObject *source, GAsyncResult *result, gpointer data)
{
  RsWindow *self = data;
  g_autoptr (GError) error = NULL;
  if (!rs_session_worker_save_trace_finish (RS_SESSION_WORKER (source), result, &error))
    rs_window_show_error (self, error->message);
  else
    gtk_label_set_text (self->state_label, _("Trace saved"));
  g_object_unref (self);
}

static void
save_trace (RsWindow *self, const char *path)
{
  RsTraceFormat format;
  if (!rs_trace_format_from_path (path, &format))
    {
      g_autofree char *msg = g_strdup_printf (_("%s: traces are saved as .npz, .jsonl or .csv"), path);
      rs_window_show_error (self, msg);
      return;
    }
  rs_session_worker_save_trace (self->worker, path, format, NULL, on_trace_saved, g_object_ref (self));
}

static void
win_save_trace_to (GSimpleAction *action, GVariant *param, gpointer data)
{
  save_trace (data, g_variant_get_string (param, NULL));
}

static void
on_save_response (GtkNativeDialog *dialog, int response, RsWindow *self)
{
  if (response == GTK_RESPONSE_ACCEPT)
    {
      GtkFileChooser *chooser = GTK_FILE_CHOOSER (dialog);
      g_autoptr (GFile) file = gtk_file_chooser_get_file (chooser);
      g_autofree char *raw = g_file_get_path (file);
      g_autofree char *path = with_extension (raw, choice (chooser, "format", "npz"));
      save_trace (self, path);
    }
  g_object_unref (dialog);
}

static void
win_save_trace (GSimpleAction *action, GVariant *param, gpointer data)
{
  RsWindow *self = data;
  GtkFileChooserNative *native = gtk_file_chooser_native_new (_("Save Trace"), GTK_WINDOW (self),
                                                              GTK_FILE_CHOOSER_ACTION_SAVE, _("_Save"), _("_Cancel"));
  GtkFileChooser *chooser = GTK_FILE_CHOOSER (native);
  const char *ids[] = { "npz", "jsonl", "csv", NULL };
  const char *labels[] = { _("NumPy archive (.npz)"), _("JSON lines (.jsonl)"), _("CSV, long form (.csv)"), NULL };
  gtk_file_chooser_add_choice (chooser, "format", _("Format"), ids, labels);
  gtk_file_chooser_set_choice (chooser, "format", "npz");
  gtk_file_chooser_set_current_name (chooser, "routescope-trace.npz");
  g_signal_connect (native, "response", G_CALLBACK (on_save_response), self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (native));
}

static const GActionEntry win_actions[] = {
  { "step", win_step },
  { "run", win_run },
  { "pause", win_pause },
  { "stop", win_stop },
  { "reset", win_reset },
  { "replay", win_replay },
  { "load-model", win_load_model, "s" },
  { "cancel-load", win_cancel_load },
  { "export-figure", win_export_figure },
  { "export-figure-to", win_export_figure_to, "s" },
  { "save-trace", win_save_trace },
  { "save-trace-to", win_save_trace_to, "s" },
  { "select-token", win_select_token, "x" },
  { "select-expert", win_select_expert, "(ii)" },
  { "show-view", win_show_view, "s" },
  { "disable-expert", win_disable_expert, "(ii)" },
  { "force-expert", win_force_expert, "(ii)" },
  { "bias-expert", win_bias_expert, "(iid)" },
  { "set-intervention-value", win_set_intervention_value, "(id)" },
  { "set-intervention-from", win_set_intervention_from, "(ix)" },
  { "remove-intervention", win_remove_intervention, "i" },
  { "clear-interventions", win_clear_interventions },
  { "disable-super-experts", win_disable_super_experts },
  { "dismiss-error", win_dismiss_error },
  { "focus-prompt", win_focus_prompt },
};

/* ---- recent models, drag and drop --------------------------------------- */

static void
rebuild_recent_menu (RsWindow *self)
{
  g_autoptr (GMenu) menu = g_menu_new ();
  g_auto (GStrv) recent = g_settings_get_strv (self->settings, "recent-models");
  for (int i = 0; recent[i] != NULL; i++)
    {
      g_autofree char *label = g_filename_display_basename (recent[i]);
      g_autoptr (GMenuItem) item = g_menu_item_new (label, NULL);
      g_menu_item_set_action_and_target (item, "win.load-model", "s", recent[i]);
      g_menu_append_item (menu, item);
    }
  if (recent[0] == NULL)
    {
      g_autoptr (GMenuItem) item = g_menu_item_new (_("No recent models"), "win.none");
      g_menu_append_item (menu, item);
    }
  gtk_menu_button_set_menu_model (self->recent_button, G_MENU_MODEL (menu));
}

static gboolean
on_drop (GtkDropTarget *target, const GValue *value, double x, double y, RsWindow *self)
{
  GFile *file = g_value_get_object (value);
  g_autofree char *path = file ? g_file_get_path (file) : NULL;
  if (path == NULL)
    return FALSE;
  g_autofree char *lower = g_ascii_strdown (path, -1);
  if (!g_str_has_suffix (lower, ".gguf"))
    {
      g_autofree char *name = g_filename_display_basename (path);
      g_autofree char *msg = g_strdup_printf (_("“%s” is not a GGUF model: drop a .gguf file"), name);
      rs_window_show_error (self, msg);
      return FALSE;
    }
  rs_window_load_model (self, path);
  return TRUE;
}

/* ---- view signals ------------------------------------------------------- */

static void
on_expert_activated (GtkWidget *view, int layer, int expert, RsWindow *self)
{
  rs_expert_inspector_set_expert (self->inspector, layer, expert);
}

static void
on_token_selected (RsWindow *self)
{
  rs_token_view_set_token (self->token_view, rs_token_strip_get_selected (self->token_strip));
}

/* ---- lifetime ----------------------------------------------------------- */

RsWindow *
rs_window_new (GtkApplication *app)
{
  return g_object_new (RS_TYPE_WINDOW, "application", app, NULL);
}

static void
rs_window_dispose (GObject *object)
{
  RsWindow *self = RS_WINDOW (object);
  g_clear_handle_id (&self->memory_timer, g_source_remove);
  if (self->worker)
    {
      /* the views let go of the worker before it goes */
      if (self->align_view)
        rs_align_view_set_model (self->align_view, NULL, NULL);
      if (self->compare_view)
        rs_compare_view_set_model (self->compare_view, NULL, NULL);
      g_signal_handlers_disconnect_by_data (self->worker, self);
      rs_session_worker_shutdown (self->worker);
      g_clear_object (&self->worker);
    }
  gtk_widget_dispose_template (GTK_WIDGET (self), RS_TYPE_WINDOW);
  G_OBJECT_CLASS (rs_window_parent_class)->dispose (object);
}

static void
rs_window_finalize (GObject *object)
{
  RsWindow *self = RS_WINDOW (object);
  g_array_unref (self->ivs);
  g_array_unref (self->chip_values);
  g_free (self->error);
  g_free (self->loading_path);
  G_OBJECT_CLASS (rs_window_parent_class)->finalize (object);
}

static void
rs_window_class_init (RsWindowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  object_class->dispose = rs_window_dispose;
  object_class->finalize = rs_window_finalize;

  g_type_ensure (RS_TYPE_TOKEN_STRIP);
  g_type_ensure (RS_TYPE_HEATMAP_VIEW);
  g_type_ensure (RS_TYPE_TOKEN_VIEW);
  g_type_ensure (RS_TYPE_EXPERT_INSPECTOR);
  g_type_ensure (RS_TYPE_ALIGN_VIEW);
  g_type_ensure (RS_TYPE_SUPER_VIEW);
  g_type_ensure (RS_TYPE_CONSISTENCY_VIEW);
  g_type_ensure (RS_TYPE_COMPARE_VIEW);
  gtk_widget_class_set_template_from_resource (widget_class, "/io/github/routescope/Routescope/rs-window.ui");
#define BIND(name) gtk_widget_class_bind_template_child (widget_class, RsWindow, name)
  BIND (subtitle_label);
  BIND (recent_button);
  BIND (device_label);
  BIND (threads_spin);
  BIND (threads_label);
  BIND (banner_revealer);
  BIND (banner_label);
  BIND (main_stack);
  BIND (loading_title);
  BIND (loading_progress);
  BIND (paned);
  BIND (prompt_view);
  BIND (chip_stat_dropdown);
  BIND (chip_layer_spin);
  BIND (chip_range_label);
  BIND (token_strip);
  BIND (views);
  BIND (heatmap_view);
  BIND (token_view);
  BIND (align_view);
  BIND (super_view);
  BIND (consistency_view);
  BIND (compare_view);
  BIND (inspector);
  BIND (model_label);
  BIND (state_label);
  BIND (speed_label);
  BIND (memory_label);
#undef BIND
}

static char *
device_text (void)
{
  const RsCpuFeatures *f = rs_cpu_features ();
  const char *simd = f->avx512vnni ? "AVX-512 VNNI" : f->avx512f ? "AVX-512" : f->avx2 ? "AVX2" : _("scalar");
  return g_strdup_printf (_("CPU (%s, %d cores)%s"), simd, g_get_num_processors (),
                          RS_HAVE_CUDA ? _(" · the CUDA backend cannot be chosen here yet") : _(" · CUDA not built"));
}

static void
rs_window_init (RsWindow *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  self->settings = rs_settings_get ();
  self->ivs = g_array_new (FALSE, FALSE, sizeof (RsIntervention));
  self->chip_values = g_array_new (FALSE, FALSE, sizeof (double));

  g_action_map_add_action_entries (G_ACTION_MAP (self), win_actions, G_N_ELEMENTS (win_actions), self);

  /* Space and Escape only when no text field wants them (bubble phase). */
  GtkEventController *shortcuts = gtk_shortcut_controller_new ();
  gtk_event_controller_set_propagation_phase (shortcuts, GTK_PHASE_BUBBLE);
  gtk_shortcut_controller_add_shortcut (GTK_SHORTCUT_CONTROLLER (shortcuts),
                                        gtk_shortcut_new (gtk_keyval_trigger_new (GDK_KEY_space, 0),
                                                          gtk_named_action_new ("win.step")));
  gtk_shortcut_controller_add_shortcut (GTK_SHORTCUT_CONTROLLER (shortcuts),
                                        gtk_shortcut_new (gtk_keyval_trigger_new (GDK_KEY_Escape, 0),
                                                          gtk_named_action_new ("win.pause")));
  gtk_widget_add_controller (GTK_WIDGET (self), shortcuts);

  self->worker = rs_session_worker_new ();
  g_signal_connect (self->worker, "trace-changed", G_CALLBACK (on_trace_changed), self);
  g_signal_connect (self->worker, "model-loaded", G_CALLBACK (on_model_loaded), self);
  g_signal_connect (self->worker, "load-failed", G_CALLBACK (on_load_failed), self);
  g_signal_connect (self->worker, "load-progress", G_CALLBACK (on_load_progress), self);
  g_signal_connect (self->worker, "error", G_CALLBACK (on_worker_error), self);
  g_signal_connect (self->worker, "interventions-changed", G_CALLBACK (on_interventions_changed), self);
  g_signal_connect_swapped (self->worker, "notify::state", G_CALLBACK (on_worker_state), self);
  g_signal_connect_swapped (self->worker, "notify::running", G_CALLBACK (on_worker_state), self);
  g_signal_connect_swapped (self->worker, "notify::tokens-per-second", G_CALLBACK (on_worker_state), self);

  g_signal_connect (self->heatmap_view, "expert-activated", G_CALLBACK (on_expert_activated), self);
  g_signal_connect (self->token_view, "expert-activated", G_CALLBACK (on_expert_activated), self);
  g_signal_connect (self->super_view, "expert-activated", G_CALLBACK (on_expert_activated), self);
  g_signal_connect_swapped (self->token_strip, "notify::selected", G_CALLBACK (on_token_selected), self);

  static const char *const chip_nicks[] = { "none", "entropy", "top-expert", "divergence", "probability", NULL };
  rs_settings_bind_dropdown (self->settings, "token-statistic", self->chip_stat_dropdown, chip_nicks);
  g_signal_connect_swapped (self->chip_stat_dropdown, "notify::selected", G_CALLBACK (on_chip_stat_changed), self);
  g_signal_connect_swapped (self->chip_layer_spin, "value-changed", G_CALLBACK (on_chip_stat_changed), self);
  g_signal_connect_object (self->settings, "changed::colormap", G_CALLBACK (on_chip_stat_changed), self,
                           G_CONNECT_SWAPPED);
  g_settings_bind (self->settings, "threads", self->threads_spin, "value", G_SETTINGS_BIND_DEFAULT);
  g_autofree char *device = device_text ();
  gtk_label_set_text (self->device_label, device);
  gtk_label_set_text (self->threads_label, _("Changes apply to the next model you open or the next new run."));

  g_autofree char *prompt = g_settings_get_string (self->settings, "prompt");
  rs_window_set_prompt (self, prompt);

  rebuild_recent_menu (self);
  g_signal_connect_object (self->settings, "changed::recent-models", G_CALLBACK (rebuild_recent_menu), self,
                           G_CONNECT_SWAPPED);

  GtkDropTarget *drop = gtk_drop_target_new (G_TYPE_FILE, GDK_ACTION_COPY);
  g_signal_connect (drop, "drop", G_CALLBACK (on_drop), self);
  gtk_widget_add_controller (GTK_WIDGET (self), GTK_EVENT_CONTROLLER (drop));

  gtk_paned_set_position (self->paned, 900);
  gtk_stack_set_visible_child_name (self->main_stack, "empty");
  update_model_labels (self);
  update_state (self);
  update_memory (self);
  self->memory_timer = g_timeout_add_seconds (1, update_memory, self);
}
