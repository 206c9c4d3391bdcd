/* test-gui.c: the real application under a private Xvfb.
 *
 * Starts RsApplication, opens its window, loads a generated qwen3moe
 * model through win.load-model, steps 8 tokens with win.step, disables
 * an expert the router was choosing (win.disable-expert), steps 8 more
 * and checks in the trace that the expert never ran afterwards (and that
 * the heatmap's numbers are the trace's), exports the heatmap as PNG and
 * SVG (win.export-figure-to), saves screenshots of the window under the
 * build directory, then checks that a bad file is an error shown in the
 * window and that closing the window in the middle of a run returns.
 * Skips when Xvfb is not installed.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <glib/gstdio.h>
#include <gtk/gtk.h>
#include <math.h>
#include <string.h>

#include "rs-application.h"
#include "rs-routing-stats.h"
#include "rs-test-model.h"
#include "rs-test-xvfb.h"
#include "rs-window.h"

static RsApplication *app;
static RsWindow *window;
static char *tmpdir;
static char *model_path;
static const char *outdir;

/* ---- helpers ------------------------------------------------------------ */

static void
pump (void)
{
  while (g_main_context_pending (NULL))
    g_main_context_iteration (NULL, FALSE);
}

typedef gboolean (*Cond) (gpointer data);

static gboolean
wait_until (Cond cond, gpointer data, double seconds)
{
  gint64 end = g_get_monotonic_time () + (gint64) (seconds * G_USEC_PER_SEC);
  for (;;)
    {
      pump ();
      if (cond (data))
        return TRUE;
      if (g_get_monotonic_time () > end)
        return FALSE;
      g_usleep (1000);
    }
}

static gboolean
worker_settled (gpointer data)
{
  RsSessionWorker *w = rs_window_get_worker (window);
  return rs_session_worker_get_pending (w) == 0 && rs_session_worker_get_state (w) != RS_WORKER_LOADING
         && rs_session_worker_get_state (w) != RS_WORKER_BUSY;
}

/* Lets a few frames be drawn. */
static void
settle_frames (void)
{
  gint64 end = g_get_monotonic_time () + 300 * 1000;
  while (g_get_monotonic_time () < end)
    {
      pump ();
      g_usleep (5000);
    }
}

static void
activate (const char *name, GVariant *param)
{
  GAction *action = g_action_map_lookup_action (G_ACTION_MAP (window), name);
  g_assert_nonnull (action);
  g_assert_true (g_action_get_enabled (action));
  g_action_activate (action, param);
}

/* For actions a run may have outgrown (pause once a short run reached
 * its end of text): activates @name if it is still enabled. */
static void
activate_if_enabled (const char *name)
{
  GAction *action = g_action_map_lookup_action (G_ACTION_MAP (window), name);
  g_assert_nonnull (action);
  if (g_action_get_enabled (action))
    g_action_activate (action, NULL);
  else
    g_test_message ("%s: the run had already ended", name);
}

static void
save_screenshot (GtkWidget *widget, const char *name)
{
  int w = gtk_widget_get_width (widget), h = gtk_widget_get_height (widget);
  g_assert_cmpint (w, >, 0);
  g_assert_cmpint (h, >, 0);
  g_autoptr (GdkPaintable) paintable = gtk_widget_paintable_new (widget);
  GtkSnapshot *snapshot = gtk_snapshot_new ();
  gdk_paintable_snapshot (paintable, snapshot, w, h);
  GskRenderNode *node = gtk_snapshot_free_to_node (snapshot);
  g_assert_nonnull (node);
  GskRenderer *renderer = gtk_native_get_renderer (gtk_widget_get_native (widget));
  GdkTexture *texture = gsk_renderer_render_texture (renderer, node, &GRAPHENE_RECT_INIT (0, 0, w, h));
  g_autofree char *path = g_build_filename (outdir, name, NULL);
  g_assert_true (gdk_texture_save_to_png (texture, path));
  g_test_message ("screenshot: %s", path);
  g_object_unref (texture);
  gsk_render_node_unref (node);
}

static gint64
n_tokens (void)
{
  const RsTrace *tr = rs_session_worker_get_trace (rs_window_get_worker (window));
  return tr ? tr->n_tokens : 0;
}

/* ---- tests -------------------------------------------------------------- */

static gboolean
model_loaded (gpointer data)
{
  return rs_session_worker_get_model_info (rs_window_get_worker (window)) != NULL && worker_settled (NULL);
}

static void
test_load (void)
{
  activate ("load-model", g_variant_new_string (model_path));
  g_assert_true (wait_until (model_loaded, NULL, 60));
  const RsModelInfo *info = rs_session_worker_get_model_info (rs_window_get_worker (window));
  g_assert_cmpint (info->n_layer, ==, 6);
  g_assert_cmpint (info->n_expert, ==, 32);
  g_assert_cmpint (info->n_expert_used, ==, 4);
  g_assert_null (rs_window_get_error (window));
}

static gint64 prompt_len;

static void
test_step (void)
{
  rs_window_set_prompt (window, "hello world the file could not be opened");
  for (int i = 0; i < 8; i++)
    {
      activate ("step", NULL);
      g_assert_true (wait_until (worker_settled, NULL, 30));
    }
  const RsTrace *tr = rs_session_worker_get_trace (rs_window_get_worker (window));
  g_assert_nonnull (tr);
  prompt_len = 0;
  for (gint64 t = 0; t < tr->n_tokens; t++)
    prompt_len += g_array_index (tr->is_prompt, guint8, t);
  g_assert_cmpint (prompt_len, >, 1);
  g_assert_cmpint (tr->n_tokens - prompt_len, ==, 8);
  g_assert_null (rs_window_get_error (window));

  /* the token strip shows every token and follows the last one */
  RsTokenStrip *strip = rs_window_get_token_strip (window);
  g_assert_cmpint (rs_token_strip_get_n_tokens (strip), ==, tr->n_tokens);
  g_assert_cmpint (rs_token_strip_get_selected (strip), ==, tr->n_tokens - 1);

  /* the heatmap shows the trace's counts: each MoE layer's row sums to
   * tokens x k, and every cell is the number of slots naming the expert */
  RsHeatmapView *heat = rs_window_get_heatmap_view (window);
  const int L = tr->n_layer, E = tr->n_expert, K = tr->k_slots;
  for (int l = 0; l < L; l++)
    {
      double sum = 0;
      for (int e = 0; e < E; e++)
        {
          int count = 0;
          for (gint64 t = 0; t < tr->n_tokens; t++)
            for (int j = 0; j < K; j++)
              count += g_array_index (tr->topk_ids, int32_t, (t * L + l) * K + j) == e;
          float v = rs_heatmap_view_get_value (heat, l, e);
          g_assert_cmpfloat (v, ==, count);
          sum += v;
        }
      g_assert_cmpfloat (sum, ==, tr->n_tokens * 4);
    }
}

static int disabled_layer = 3, disabled_expert = -1;
static gint64 disabled_from;

static gboolean
interventions_confirmed (gpointer data)
{
  int n;
  rs_session_worker_get_interventions (rs_window_get_worker (window), &n);
  return n == GPOINTER_TO_INT (data) && worker_settled (NULL);
}

static void
test_disable_expert (void)
{
  const RsTrace *tr = rs_session_worker_get_trace (rs_window_get_worker (window));
  const int L = tr->n_layer, K = tr->k_slots;
  /* the expert the router chose first for the last token at this layer */
  disabled_expert = g_array_index (tr->topk_ids, int32_t, ((tr->n_tokens - 1) * L + disabled_layer) * K);
  g_assert_cmpint (disabled_expert, >=, 0);
  disabled_from = tr->n_tokens;

  /* through the inspector, as a click on the heatmap cell would */
  activate ("select-expert", g_variant_new ("(ii)", disabled_layer, disabled_expert));
  int layer, expert;
  g_assert_true (rs_expert_inspector_get_expert (rs_window_get_inspector (window), &layer, &expert));
  g_assert_cmpint (layer, ==, disabled_layer);
  g_assert_cmpint (expert, ==, disabled_expert);
  activate ("disable-expert", g_variant_new ("(ii)", disabled_layer, disabled_expert));
  g_assert_true (wait_until (interventions_confirmed, GINT_TO_POINTER (1), 30));

  int n;
  const RsIntervention *ivs = rs_session_worker_get_interventions (rs_window_get_worker (window), &n);
  g_assert_cmpint (ivs[0].kind, ==, RS_INTERVENE_DISABLE);
  g_assert_cmpint (ivs[0].layer_first, ==, disabled_layer);
  g_assert_cmpint (ivs[0].experts[0], ==, disabled_expert);
  g_assert_cmpint (ivs[0].from_token, ==, disabled_from); /* from the next token */

  for (int i = 0; i < 8; i++)
    {
      activate ("step", NULL);
      g_assert_true (wait_until (worker_settled, NULL, 30));
    }
  tr = rs_session_worker_get_trace (rs_window_get_worker (window));
  g_assert_cmpint (tr->n_tokens, ==, disabled_from + 8);
  int untouched_would = 0;
  for (gint64 t = 0; t < tr->n_tokens; t++)
    for (int j = 0; j < K; j++)
      {
        int32_t id = g_array_index (tr->topk_ids, int32_t, (t * L + disabled_layer) * K + j);
        int32_t base = g_array_index (tr->base_topk_ids, int32_t, (t * L + disabled_layer) * K + j);
        if (t >= disabled_from)
          {
            g_assert_cmpint (id, !=, disabled_expert);
            untouched_would += base == disabled_expert;
          }
      }
  g_test_message ("the untouched router would have chosen expert %d at layer %d for %d of the 8 tokens",
                  disabled_expert, disabled_layer, untouched_would);
  /* the other layers are untouched where the routing was the same */
  g_assert_null (rs_window_get_error (window));

  /* edit it to start at token 0 and replay: no token at all uses it now */
  activate ("set-intervention-from", g_variant_new ("(ix)", 0, (gint64) 0));
  g_assert_true (wait_until (interventions_confirmed, GINT_TO_POINTER (1), 30));
  ivs = rs_session_worker_get_interventions (rs_window_get_worker (window), &n);
  g_assert_cmpint (ivs[0].from_token, ==, 0);
  gint64 before_replay = tr->n_tokens;
  activate ("replay", NULL);
  g_assert_true (wait_until (worker_settled, NULL, 30));
  tr = rs_session_worker_get_trace (rs_window_get_worker (window));
  g_assert_cmpint (tr->n_tokens, ==, before_replay); /* generated tokens kept (teacher-forced) */
  for (gint64 t = 0; t < tr->n_tokens; t++)
    for (int j = 0; j < K; j++)
      g_assert_cmpint (g_array_index (tr->topk_ids, int32_t, (t * L + disabled_layer) * K + j), !=, disabled_expert);

  /* show that token's routing in the token view */
  activate ("select-token", g_variant_new_int64 (tr->n_tokens - 1));
  g_assert_cmpint (rs_token_view_get_token (rs_window_get_token_view (window)), ==, tr->n_tokens - 1);
}

static void
check_file (const char *path, const char *magic, gsize magic_len)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  g_assert_true (g_file_get_contents (path, &data, &len, NULL));
  g_assert_cmpuint (len, >, 1000);
  g_assert_cmpmem (data, magic_len, magic, magic_len);
}

static void
test_export (void)
{
  rs_window_set_view (window, "load");
  settle_frames ();
  g_autofree char *png = g_build_filename (outdir, "gui-heatmap.png", NULL);
  g_autofree char *svg = g_build_filename (outdir, "gui-heatmap.svg", NULL);
  g_unlink (png);
  g_unlink (svg);
  activate ("export-figure-to", g_variant_new_string (png));
  activate ("export-figure-to", g_variant_new_string (svg));
  g_assert_null (rs_window_get_error (window));
  check_file (png, "\x89PNG\r\n\x1a\n", 8);
  check_file (svg, "<?xml", 5);
  g_autoptr (GdkTexture) texture = gdk_texture_new_from_filename (png, NULL);
  g_assert_nonnull (texture);
  /* export-width x export-height (1200 x 750) at export-scale 2 */
  g_assert_cmpint (gdk_texture_get_width (texture), ==, 2400);
  g_assert_cmpint (gdk_texture_get_height (texture), ==, 1500);
  g_autofree char *svg_text = NULL;
  g_file_get_contents (svg, &svg_text, NULL, NULL);
  g_assert_nonnull (strstr (svg_text, "<svg"));

  /* the interactive export: a file chooser with format, size and scale */
  activate ("export-figure", NULL);
  settle_frames ();
  GtkWidget *chooser = NULL;
  GListModel *toplevels = gtk_window_get_toplevels ();
  for (guint i = 0; i < g_list_model_get_n_items (toplevels); i++)
    {
      g_autoptr (GObject) w = g_list_model_get_item (toplevels, i);
      if (GTK_IS_FILE_CHOOSER (w))
        chooser = GTK_WIDGET (w);
    }
  g_assert_nonnull (chooser);
  g_assert_cmpstr (gtk_file_chooser_get_choice (GTK_FILE_CHOOSER (chooser), "format"), ==, "png");
  g_assert_cmpstr (gtk_file_chooser_get_choice (GTK_FILE_CHOOSER (chooser), "size"), ==, "1200x750");
  g_assert_cmpstr (gtk_file_chooser_get_choice (GTK_FILE_CHOOSER (chooser), "scale"), ==, "2");
  save_screenshot (chooser, "gui-screenshot-export-dialog.png");
  gtk_dialog_response (GTK_DIALOG (chooser), GTK_RESPONSE_CANCEL);
  settle_frames ();

  /* the trace, through rs_trace_save in the worker */
  g_autofree char *npz = g_build_filename (tmpdir, "trace.npz", NULL);
  activate ("save-trace-to", g_variant_new_string (npz));
  g_assert_true (wait_until (worker_settled, NULL, 30));
  settle_frames ();
  g_assert_null (rs_window_get_error (window));
  check_file (npz, "PK", 2);
}

static void
test_screenshot (void)
{
  gtk_window_set_default_size (GTK_WINDOW (window), 1400, 900);
  rs_window_set_view (window, "load");
  int layer = disabled_layer, expert = disabled_expert;
  activate ("select-expert", g_variant_new ("(ii)", layer, expert));
  settle_frames ();
  save_screenshot (GTK_WIDGET (window), "gui-screenshot.png");
  rs_window_set_view (window, "token");
  settle_frames ();
  save_screenshot (GTK_WIDGET (window), "gui-screenshot-token.png");
  /* the dark style */
  g_object_set (gtk_settings_get_default (), "gtk-application-prefer-dark-theme", TRUE, NULL);
  rs_window_set_view (window, "load");
  settle_frames ();
  save_screenshot (GTK_WIDGET (window), "gui-screenshot-dark.png");
  g_object_set (gtk_settings_get_default (), "gtk-application-prefer-dark-theme", FALSE, NULL);
  settle_frames ();
}

static gboolean
align_done (gpointer data)
{
  RsAlignView *view = rs_window_get_align_view (window);
  return !rs_align_view_is_running (view) && worker_settled (NULL);
}

static gboolean
effect_measured (gpointer data)
{
  const char *text = rs_compare_view_get_effect_text (rs_window_get_compare_view (window));
  return text != NULL && worker_settled (NULL);
}

/* The views of core's analyses: each computes, draws and exports. */
static void
test_analysis_views (void)
{
  static const char *const views[] = { "super", "consistency", "compare" };
  for (guint i = 0; i < G_N_ELEMENTS (views); i++)
    {
      rs_window_set_view (window, views[i]);
      settle_frames ();
      g_autofree char *shot = g_strdup_printf ("gui-screenshot-%s.png", views[i]);
      save_screenshot (GTK_WIDGET (window), shot);
      g_autofree char *svg = g_build_filename (tmpdir, "view.svg", NULL);
      activate ("export-figure-to", g_variant_new_string (svg));
      g_assert_null (rs_window_get_error (window));
      check_file (svg, "<?xml", 5);
      g_unlink (svg);
    }

  /* the interventions' effect on the prompt, measured by the engine */
  RsCompareView *compare = rs_window_get_compare_view (window);
  rs_compare_view_measure (compare, "hello world the file could not be opened");
  g_assert_true (wait_until (effect_measured, NULL, 60));
  g_test_message ("%s", rs_compare_view_get_effect_text (compare));
  g_assert_nonnull (strstr (rs_compare_view_get_effect_text (compare), "Perplexity of the prompt"));

  /* cross-lingual alignment over a small parallel corpus, on the worker */
  g_autofree char *corpus = g_build_filename (tmpdir, "corpus.tsv", NULL);
  g_assert_true (g_file_set_contents (corpus,
    "a\ten\tThe file could not be opened.\n"
    "a\tde\tDie Datei konnte nicht geöffnet werden.\n"
    "a\tes\tNo se pudo abrir el archivo.\n"
    "b\ten\tSave your changes before closing.\n"
    "b\tde\tSpeichern Sie Ihre Änderungen vor dem Schließen.\n"
    "b\tes\tGuarde los cambios antes de cerrar.\n"
    "c\ten\tThe network is unreachable.\n"
    "c\tde\tDas Netzwerk ist nicht erreichbar.\n"
    "c\tes\tLa red no está disponible.\n", -1, NULL));
  rs_window_set_view (window, "align");
  RsAlignView *align = rs_window_get_align_view (window);
  rs_align_view_set_corpus (align, corpus);
  rs_align_view_run (align, 0);
  g_assert_true (wait_until (align_done, NULL, 120));
  g_assert_null (rs_align_view_get_error (align));
  const RsAlignResult *r = rs_align_view_get_result (align);
  g_assert_nonnull (r);
  g_assert_cmpint (r->n_lang, ==, 3);
  g_assert_cmpint (r->n_ids, ==, 3);
  g_assert_cmpstr (r->langs[r->ref], ==, "en");
  for (int g = 0; g < r->n_lang; g++)
    for (int l = 0; l < r->n_layer; l++)
      if (g != r->ref && r->has_experts[l])
        g_assert_true (isfinite (r->jsd[RS_IMPORTANCE_MEAN_PROB][g * r->n_layer + l]));
  settle_frames ();
  save_screenshot (GTK_WIDGET (window), "gui-screenshot-align.png");
  g_unlink (corpus);
  rs_window_set_view (window, "load");
}

static gboolean
error_shown (gpointer data)
{
  return rs_window_get_error (window) != NULL && worker_settled (NULL);
}

static void
test_bad_model (void)
{
  /* not a GGUF file */
  g_autofree char *bad = g_build_filename (tmpdir, "bad.gguf", NULL);
  g_assert_true (g_file_set_contents (bad, "this is not a model", -1, NULL));
  activate ("load-model", g_variant_new_string (bad));
  g_assert_true (wait_until (error_shown, NULL, 30));
  g_test_message ("error shown: %s", rs_window_get_error (window));
  g_assert_nonnull (strstr (rs_window_get_error (window), "bad.gguf"));
  /* the model that was open stays */
  const RsModelInfo *info = rs_session_worker_get_model_info (rs_window_get_worker (window));
  g_assert_nonnull (info);
  g_assert_cmpstr (info->path, ==, model_path);
  settle_frames ();
  save_screenshot (GTK_WIDGET (window), "gui-screenshot-error.png");
  activate ("dismiss-error", NULL);
  g_assert_null (rs_window_get_error (window));

  /* a missing file */
  g_autofree char *missing = g_build_filename (tmpdir, "missing.gguf", NULL);
  activate ("load-model", g_variant_new_string (missing));
  g_assert_true (wait_until (error_shown, NULL, 30));
  g_assert_nonnull (strstr (rs_window_get_error (window), "missing.gguf"));
  activate ("dismiss-error", NULL);
}

/* The run has made progress past @data tokens. (Not "and is still
 * running": a short run can end between two polls, which made this test
 * flaky; pausing an ended run must then simply change nothing.) */
static gboolean
running (gpointer data)
{
  return n_tokens () > GPOINTER_TO_INT (data);
}

static void
test_pause_and_close_while_running (void)
{
  /* Run, then pause: generation stops after the current token */
  gint64 before = n_tokens ();
  activate ("run", NULL);
  g_assert_true (wait_until (running, GINT_TO_POINTER ((int) before + 2), 30));
  activate_if_enabled ("pause");
  g_assert_true (wait_until (worker_settled, NULL, 30));
  gint64 paused_at = n_tokens ();
  g_assert_cmpint (paused_at, >, before);
  settle_frames ();
  g_assert_cmpint (n_tokens (), ==, paused_at);

  /* Run again and close the window while it runs: it must return at once */
  activate ("run", NULL);
  g_assert_true (wait_until (running, GINT_TO_POINTER ((int) paused_at + 1), 30));
  gint64 t0 = g_get_monotonic_time ();
  gtk_window_destroy (GTK_WINDOW (window));
  window = NULL;
  pump ();
  double seconds = (g_get_monotonic_time () - t0) / 1e6;
  g_test_message ("closing the window mid-run took %.3f s", seconds);
  g_assert_cmpfloat (seconds, <, 5.0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_autofree char *reason = NULL;
  if (!rs_test_xvfb_start (&reason))
    {
      printf ("1..0 # SKIP %s\n", reason);
      return 0;
    }
  outdir = g_getenv ("G_TEST_BUILDDIR") ? g_getenv ("G_TEST_BUILDDIR") : ".";
  tmpdir = g_dir_make_tmp ("rs-gui-XXXXXX", NULL);
  model_path = g_build_filename (tmpdir, "moe.gguf", NULL);
  RsTestModelSpec spec = rs_test_model_spec ("qwen3moe", RS_TYPE_F32, 7);
  spec.n_layer = 6;
  spec.n_expert = 32;
  spec.n_expert_used = 4;
  spec.n_ctx = 512;
  g_autoptr (GError) error = NULL;
  if (!rs_test_model_write (&spec, model_path, &error))
    g_error ("%s", error->message);

  app = rs_application_new ();
  g_application_set_flags (G_APPLICATION (app), G_APPLICATION_NON_UNIQUE | G_APPLICATION_HANDLES_OPEN);
  rs_application_set_open_default (app, FALSE);
  if (!g_application_register (G_APPLICATION (app), NULL, &error))
    g_error ("%s", error->message);
  g_application_activate (G_APPLICATION (app));
  window = RS_WINDOW (gtk_application_get_active_window (GTK_APPLICATION (app)));
  g_assert_nonnull (window);
  gtk_window_set_default_size (GTK_WINDOW (window), 1400, 900);
  settle_frames ();

  g_test_add_func ("/gui/load", test_load);
  g_test_add_func ("/gui/step", test_step);
  g_test_add_func ("/gui/disable-expert", test_disable_expert);
  g_test_add_func ("/gui/export", test_export);
  g_test_add_func ("/gui/screenshot", test_screenshot);
  g_test_add_func ("/gui/analysis-views", test_analysis_views);
  g_test_add_func ("/gui/bad-model", test_bad_model);
  g_test_add_func ("/gui/pause-and-close-while-running", test_pause_and_close_while_running);
  int status = g_test_run ();

  if (window)
    gtk_window_destroy (GTK_WINDOW (window));
  pump ();
  g_object_unref (app);
  g_autofree char *trace = g_build_filename (tmpdir, "trace.npz", NULL);
  g_autofree char *bad = g_build_filename (tmpdir, "bad.gguf", NULL);
  g_unlink (trace);
  g_unlink (bad);
  g_unlink (model_path);
  g_rmdir (tmpdir);
  rs_test_xvfb_stop ();
  return status;
}
