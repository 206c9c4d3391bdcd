/* test-gui-widgets.c: the workbench's widgets drawn offscreen.
 *
 * A synthetic trace (known routing) feeds the expert-load heatmap, the
 * token strip, the token view and the inspector; their drawing code runs
 * into Cairo image surfaces at several sizes and the layouts are checked
 * (inside the bounds, no overlaps, hit-testing back to the same item),
 * and the numbers they show against the trace. Also the incremental
 * statistics against a recomputation. Needs a display (GTK): runs under
 * a private Xvfb, skipped without one.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <gtk/gtk.h>
#include <math.h>
#include <string.h>

#include "rs-analysis.h"
#include "rs-application.h"
#include "rs-expert-inspector.h"
#include "rs-heatmap-view.h"
#include "rs-routing-stats.h"
#include "rs-test-xvfb.h"
#include "rs-token-strip.h"
#include "rs-token-view.h"

#define L 8
#define E 16
#define K 4
#define KM 2

static RsTrace *
make_trace (int64_t T)
{
  RsTrace *tr = rs_trace_new (L, E, KM, K, TRUE);
  GRand *rand = g_rand_new_with_seed (42);
  for (int64_t t = 0; t < T; t++)
    {
      int32_t id = (int32_t) (t * 7 % 50);
      rs_trace_append_tokens (tr, &id, 1, t < 6);
      static const char *words[] = { " the", " file", "\n", "could", " not", " be", "opened", "é", "\t", "" };
      g_ptr_array_index (tr->token_text, t) = g_strdup (words[t % G_N_ELEMENTS (words)]);
      g_array_index (tr->token_prob, float, t) = t < 6 ? NAN : 0.5f;
      for (int l = 0; l < L; l++)
        {
          float *z = &g_array_index (tr->router_logits, float, (t * L + l) * E);
          float *s = &g_array_index (tr->router_scores, float, (t * L + l) * E);
          if (l == 0)
            continue; /* a dense layer: NaN logits, no experts */
          double sum = 0;
          for (int e = 0; e < E; e++)
            {
              z[e] = (float) g_rand_double_range (rand, -2, 2);
              sum += exp (z[e]);
            }
          for (int e = 0; e < E; e++)
            s[e] = (float) (exp (z[e]) / sum);
          int32_t *ids = &g_array_index (tr->topk_ids, int32_t, (t * L + l) * K);
          int32_t *base = &g_array_index (tr->base_topk_ids, int32_t, (t * L + l) * K);
          float *w = &g_array_index (tr->topk_weights, float, (t * L + l) * K);
          float *mx = &g_array_index (tr->expert_out_maxabs, float, (t * L + l) * K);
          ids[0] = (int32_t) ((t + l) % E);
          ids[1] = (int32_t) ((t * 3 + l + 1) % E);
          if (ids[1] == ids[0])
            ids[1] = (ids[0] + 1) % E;
          w[0] = 0.6f;
          w[1] = 0.4f;
          mx[0] = (float) (t + l);
          mx[1] = 1;
          base[0] = ids[0];
          base[1] = (l == 3 && t >= 20) ? (ids[1] + 5) % E : ids[1];
          if (base[1] == base[0])
            base[1] = (base[0] + 7) % E;
        }
    }
  g_rand_free (rand);
  return tr;
}

static RsModelInfo *
make_info (void)
{
  RsModelInfo *info = g_new0 (RsModelInfo, 1);
  info->path = g_strdup ("/nowhere/synthetic.gguf");
  info->name = g_strdup ("synthetic");
  info->arch = g_strdup ("qwen3moe");
  info->n_layer = L;
  info->n_expert = E;
  info->n_expert_used = KM;
  info->n_ctx = 256;
  info->layer_is_moe = g_new0 (gboolean, L);
  for (int l = 1; l < L; l++)
    info->layer_is_moe[l] = TRUE;
  info->routing.score = RS_SCORE_SOFTMAX;
  info->routing.norm_weights = true;
  info->routing.weight_scale = 1;
  return info;
}

static void
free_info (RsModelInfo *info)
{
  g_free (info->path);
  g_free (info->name);
  g_free (info->arch);
  g_free (info->layer_is_moe);
  g_free (info);
}

static const int sizes[][2] = { { 1600, 1000 }, { 800, 500 }, { 320, 200 }, { 120, 80 }, { 30, 20 } };

static gboolean
inside (double x, double y, double w, double h, double W, double H)
{
  return isfinite (x) && isfinite (y) && isfinite (w) && isfinite (h) && x >= 0 && y >= 0 && x + w <= W + 1e-6
         && y + h <= H + 1e-6;
}

static guint32
pixel (cairo_surface_t *s, double x, double y)
{
  cairo_surface_flush (s);
  unsigned char *data = cairo_image_surface_get_data (s);
  return ((guint32 *) (data + (int) y * cairo_image_surface_get_stride (s)))[(int) x] & 0xffffff;
}

/* ---- heatmap view ------------------------------------------------------- */

static void
test_heatmap_view (void)
{
  g_autoptr (RsTrace) tr = make_trace (40);
  RsModelInfo *info = make_info ();
  GtkWidget *view = g_object_ref_sink (rs_heatmap_view_new ());
  rs_heatmap_view_set_model (RS_HEATMAP_VIEW (view), info);
  rs_heatmap_view_trace_changed (RS_HEATMAP_VIEW (view), tr, 0);
  RsPlotWidget *pw = rs_heatmap_view_get_plot_widget (RS_HEATMAP_VIEW (view));

  /* the numbers: counts of the trace, NaN for the dense layer */
  for (int l = 0; l < L; l++)
    for (int e = 0; e < E; e++)
      {
        int count = 0;
        for (int64_t t = 0; t < tr->n_tokens; t++)
          for (int j = 0; j < K; j++)
            count += g_array_index (tr->topk_ids, int32_t, (t * L + l) * K + j) == e;
        float v = rs_heatmap_view_get_value (RS_HEATMAP_VIEW (view), l, e);
        if (l == 0)
          g_assert_true (isnan (v));
        else
          g_assert_cmpfloat (v, ==, count);
      }

  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      int w = sizes[i][0], h = sizes[i][1];
      cairo_surface_t *s = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, w, h);
      cairo_t *cr = cairo_create (s);
      rs_plot_widget_draw (pw, cr, w, h);
      g_assert_cmpint (cairo_status (cr), ==, CAIRO_STATUS_SUCCESS);
      cairo_destroy (cr);
      RsPlotLayout lay;
      rs_plot_get_layout (rs_plot_widget_get_plot (pw), &lay);
      g_assert_true (inside (lay.plot_x, lay.plot_y, lay.plot_width, lay.plot_height, w, h));
      g_assert_true (inside (lay.colorbar_x, lay.colorbar_y, lay.colorbar_width, lay.colorbar_height, w, h));
      if (w >= 320)
        {
          g_assert_cmpint (lay.rows, ==, L);
          g_assert_cmpint (lay.cols, ==, E);
          g_assert_cmpfloat (lay.colorbar_width, >, 0);
          /* the cell with the largest count wears the colour map's top */
          int best_l = 1, best_e = 0;
          float best = -1;
          for (int l = 1; l < L; l++)
            for (int e = 0; e < E; e++)
              if (rs_heatmap_view_get_value (RS_HEATMAP_VIEW (view), l, e) > best)
                {
                  best = rs_heatmap_view_get_value (RS_HEATMAP_VIEW (view), l, e);
                  best_l = l;
                  best_e = e;
                }
          double cw = lay.plot_width / E, ch = lay.plot_height / L;
          g_assert_cmphex (pixel (s, lay.plot_x + (best_e + 0.5) * cw, lay.plot_y + (best_l + 0.5) * ch), ==, 0xfde725);
          int row, col;
          g_assert_true (rs_plot_heatmap_cell_at (rs_plot_widget_get_plot (pw), lay.plot_x + (best_e + 0.5) * cw,
                                                  lay.plot_y + (best_l + 0.5) * ch, &row, &col));
          g_assert_cmpint (row, ==, best_l);
          g_assert_cmpint (col, ==, best_e);
        }
      cairo_surface_destroy (s);
    }

  /* live: more tokens, then a shorter trace (a new run) */
  g_autoptr (RsTrace) longer = make_trace (60);
  rs_heatmap_view_trace_changed (RS_HEATMAP_VIEW (view), longer, 40);
  float v = rs_heatmap_view_get_value (RS_HEATMAP_VIEW (view), 2, 3);
  int count = 0;
  for (int64_t t = 0; t < longer->n_tokens; t++)
    for (int j = 0; j < K; j++)
      count += g_array_index (longer->topk_ids, int32_t, (t * L + 2) * K + j) == 3;
  g_assert_cmpfloat (v, ==, count);

  rs_heatmap_view_set_model (RS_HEATMAP_VIEW (view), NULL);
  g_assert_true (isnan (rs_heatmap_view_get_value (RS_HEATMAP_VIEW (view), 2, 3)));
  g_object_unref (view);
  free_info (info);
}

/* ---- token strip -------------------------------------------------------- */

static void
test_token_strip (void)
{
  g_autoptr (RsTrace) tr = make_trace (120);
  GtkWidget *strip = g_object_ref_sink (rs_token_strip_new ());
  RsTokenStrip *s = RS_TOKEN_STRIP (strip);
  rs_token_strip_set_trace (s, tr, 0);
  g_assert_cmpint (rs_token_strip_get_n_tokens (s), ==, 120);
  g_assert_cmpint (rs_token_strip_get_selected (s), ==, 119); /* follows the end */

  static const int widths[] = { 60, 200, 600, 1400 };
  for (guint i = 0; i < G_N_ELEMENTS (widths); i++)
    {
      int w = widths[i];
      int content_h = rs_token_strip_layout (s, w);
      g_assert_cmpint (content_h, >, 0);
      graphene_rect_t prev = { 0 };
      for (int64_t t = 0; t < tr->n_tokens; t++)
        {
          graphene_rect_t r;
          g_assert_true (rs_token_strip_get_chip_rect (s, t, &r));
          g_assert_true (isfinite (r.origin.x) && isfinite (r.origin.y) && r.size.width > 0 && r.size.height > 0);
          g_assert_cmpfloat (r.origin.y + r.size.height, <=, content_h);
          /* inside the width, unless a single chip is wider than the strip */
          if (r.origin.x > 4.5)
            g_assert_cmpfloat (r.origin.x + r.size.width, <=, w);
          if (t > 0)
            {
              /* reading order, no overlaps */
              if (r.origin.y == prev.origin.y)
                g_assert_cmpfloat (r.origin.x, >=, prev.origin.x + prev.size.width);
              else
                g_assert_cmpfloat (r.origin.y, >=, prev.origin.y + prev.size.height);
            }
          /* hit-testing the chip's centre (no scrolling) */
          g_assert_cmpint (rs_token_strip_chip_at (s, r.origin.x + r.size.width / 2, r.origin.y + r.size.height / 2),
                           ==, t);
          prev = r;
        }
      g_assert_cmpint (rs_token_strip_chip_at (s, -10, -10), ==, -1);

      cairo_surface_t *surf = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, w, 120);
      cairo_t *cr = cairo_create (surf);
      rs_token_strip_draw (s, cr, w, 120);
      g_assert_cmpint (cairo_status (cr), ==, CAIRO_STATUS_SUCCESS);
      cairo_destroy (cr);
      graphene_rect_t r0;
      rs_token_strip_get_chip_rect (s, 0, &r0);
      g_assert_cmphex (pixel (surf, r0.origin.x + 2, r0.origin.y + r0.size.height / 2), !=, 0);
      cairo_surface_destroy (surf);
    }

  /* colours by a statistic: categories and a continuous range */
  double values[120];
  rs_token_stat_values (tr, RS_TOKEN_STAT_TOP_EXPERT, 2, 0, 120, values);
  for (int t = 0; t < 120; t++)
    g_assert_cmpfloat (values[t], ==, (t + 2) % E);
  rs_token_strip_set_values (s, values, 120, TRUE, RS_COLORMAP_VIRIDIS, NAN, NAN);
  double lo, hi;
  g_assert_false (rs_token_strip_get_range (s, &lo, &hi));
  rs_token_stat_values (tr, RS_TOKEN_STAT_DIVERGENCE, 0, 0, 120, values);
  for (int t = 0; t < 20; t++)
    g_assert_cmpfloat (values[t], ==, 0); /* the same experts as the untouched router */
  g_assert_cmpfloat (values[30], >, 0); /* layer 3 differs from token 20 on */
  rs_token_strip_set_values (s, values, 120, FALSE, RS_COLORMAP_MAGMA, 0, 1);
  g_assert_true (rs_token_strip_get_range (s, &lo, &hi));
  g_assert_cmpfloat (lo, ==, 0);
  g_assert_cmpfloat (hi, ==, 1);

  /* selection: keys move it, a shorter trace clamps it */
  rs_token_strip_set_selected (s, 10);
  g_assert_cmpint (rs_token_strip_get_selected (s), ==, 10);
  g_autoptr (RsTrace) short_tr = make_trace (5);
  rs_token_strip_set_trace (s, short_tr, 0);
  g_assert_cmpint (rs_token_strip_get_selected (s), ==, 4);
  rs_token_strip_set_trace (s, NULL, 0);
  g_assert_cmpint (rs_token_strip_get_selected (s), ==, -1);
  cairo_surface_t *surf = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, 300, 40);
  cairo_t *cr = cairo_create (surf);
  rs_token_strip_draw (s, cr, 300, 40); /* the empty strip's hint */
  cairo_destroy (cr);
  cairo_surface_destroy (surf);
  g_object_unref (strip);
}

/* ---- token view --------------------------------------------------------- */

static void
test_token_view (void)
{
  g_autoptr (RsTrace) tr = make_trace (40);
  RsModelInfo *info = make_info ();
  GtkWidget *view = g_object_ref_sink (rs_token_view_new ());
  rs_token_view_set_model (RS_TOKEN_VIEW (view), info);
  rs_token_view_trace_changed (RS_TOKEN_VIEW (view), tr, 0);
  rs_token_view_set_token (RS_TOKEN_VIEW (view), 30);
  RsPlotWidget *pw = rs_token_view_get_plot_widget (RS_TOKEN_VIEW (view));
  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      int w = sizes[i][0], h = sizes[i][1];
      cairo_surface_t *s = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, w, h);
      cairo_t *cr = cairo_create (s);
      rs_plot_widget_draw (pw, cr, w, h);
      g_assert_cmpint (cairo_status (cr), ==, CAIRO_STATUS_SUCCESS);
      cairo_destroy (cr);
      RsPlotLayout lay;
      rs_plot_get_layout (rs_plot_widget_get_plot (pw), &lay);
      g_assert_true (inside (lay.plot_x, lay.plot_y, lay.plot_width, lay.plot_height, w, h));
      g_assert_true (inside (lay.colorbar_x, lay.colorbar_y, lay.colorbar_width, lay.colorbar_height, w, h));
      cairo_surface_destroy (s);
    }

  /* what it outlines is what ran; the untouched router's scores are the
   * engine's softmax of the raw logits */
  float scores[L * E], base_scores[L * E];
  guint8 mask[L * E], base_mask[L * E];
  rs_token_scores (tr, 30, &info->routing, FALSE, scores, mask);
  rs_token_scores (tr, 30, &info->routing, TRUE, base_scores, base_mask);
  for (int l = 1; l < L; l++)
    for (int e = 0; e < E; e++)
      {
        gboolean ran = FALSE, chosen = FALSE;
        for (int j = 0; j < K; j++)
          {
            ran |= g_array_index (tr->topk_ids, int32_t, (30 * L + l) * K + j) == e;
            chosen |= g_array_index (tr->base_topk_ids, int32_t, (30 * L + l) * K + j) == e;
          }
        g_assert_cmpint (mask[l * E + e], ==, ran);
        g_assert_cmpint (base_mask[l * E + e], ==, chosen);
        g_assert_cmpfloat_with_epsilon (base_scores[l * E + e], scores[l * E + e], 1e-5);
      }
  g_assert_true (isnan (scores[0]));
  g_assert_true (rs_token_routing_changed (tr, 30));
  g_assert_false (rs_token_routing_changed (tr, 10));
  g_autoptr (GString) text = g_string_new (NULL);
  g_assert_cmpint (rs_token_routing_changes (tr, 30, text), ==, 1);
  g_assert_true (g_str_has_prefix (text->str, "3: "));

  rs_token_view_set_token (RS_TOKEN_VIEW (view), -1);
  rs_token_view_set_model (RS_TOKEN_VIEW (view), NULL);
  g_object_unref (view);
  free_info (info);
}

/* ---- statistics --------------------------------------------------------- */

static void
test_load_accum (void)
{
  g_autoptr (RsTrace) tr = make_trace (50);
  gboolean moe[L] = { FALSE, TRUE, TRUE, TRUE, TRUE, TRUE, TRUE, TRUE };
  g_autoptr (RsLoadAccum) inc = rs_load_accum_new (L, E, moe);
  g_autoptr (RsLoadAccum) full = rs_load_accum_new (L, E, moe);
  /* token by token, as a live run arrives */
  g_autoptr (RsTrace) grow = rs_trace_new (L, E, KM, K, TRUE);
  for (int64_t t = 0; t < 50; t++)
    {
      int32_t id = g_array_index (tr->token_ids, int32_t, t);
      rs_trace_append_tokens (grow, &id, 1, t < 6);
      memcpy (&g_array_index (grow->topk_ids, int32_t, t * L * K), &g_array_index (tr->topk_ids, int32_t, t * L * K),
              L * K * sizeof (int32_t));
      memcpy (&g_array_index (grow->topk_weights, float, t * L * K), &g_array_index (tr->topk_weights, float, t * L * K),
              L * K * sizeof (float));
      memcpy (&g_array_index (grow->router_scores, float, t * L * E),
              &g_array_index (tr->router_scores, float, t * L * E), L * E * sizeof (float));
      memcpy (&g_array_index (grow->router_logits, float, t * L * E),
              &g_array_index (tr->router_logits, float, t * L * E), L * E * sizeof (float));
      rs_load_accum_update (inc, grow);
    }
  rs_load_accum_update (full, tr);
  for (RsLoadStat stat = RS_LOAD_COUNT; stat <= RS_LOAD_MEAN_WEIGHT; stat++)
    {
      float a[L * E], b[L * E];
      rs_load_accum_values (inc, stat, a);
      rs_load_accum_values (full, stat, b);
      for (int i = 0; i < L * E; i++)
        if (isnan (b[i]))
          g_assert_true (isnan (a[i]));
        else
          g_assert_cmpfloat_with_epsilon (a[i], b[i], 1e-5);
    }
  /* the same numbers as core's analysis (rs_load_compute) */
  RsLoadParams lp;
  rs_load_params_init (&lp);
  g_autoptr (RsLoadResult) core = rs_load_compute (tr, &lp, NULL);
  g_assert_nonnull (core);
  {
    float cnt[L * E], mp[L * E], mw[L * E];
    rs_load_accum_values (full, RS_LOAD_COUNT, cnt);
    rs_load_accum_values (full, RS_LOAD_MEAN_PROB, mp);
    rs_load_accum_values (full, RS_LOAD_MEAN_WEIGHT, mw);
    for (int l = 1; l < L; l++)
      for (int e = 0; e < E; e++)
        {
          int i = l * E + e;
          g_assert_cmpfloat (cnt[i], ==, core->counts[i]);
          g_assert_cmpfloat_with_epsilon (mp[i], core->mean_prob[i], 1e-6);
          if (core->counts[i] > 0)
            g_assert_cmpfloat_with_epsilon (mw[i], core->mean_weight[i], 1e-6);
        }
  }
  /* the token strip's router entropy: core's per-(token, layer) entropy,
   * averaged over the MoE layers */
  RsEntropyParams ep;
  rs_entropy_params_init (&ep);
  g_autoptr (RsEntropyResult) ent = rs_entropy_compute (tr, &ep, NULL);
  g_assert_nonnull (ent);
  double h[50];
  rs_token_stat_values (tr, RS_TOKEN_STAT_ENTROPY, 0, 0, 50, h);
  for (int t = 0; t < 50; t++)
    {
      double sum = 0;
      for (int l = 1; l < L; l++)
        sum += ent->entropy[t * L + l];
      g_assert_cmpfloat_with_epsilon (h[t], sum / (L - 1), 1e-4);
    }

  /* mean probability: each MoE row sums to 1 */
  float p[L * E];
  rs_load_accum_values (full, RS_LOAD_MEAN_PROB, p);
  for (int l = 1; l < L; l++)
    {
      double sum = 0;
      for (int e = 0; e < E; e++)
        sum += p[l * E + e];
      g_assert_cmpfloat_with_epsilon (sum, 1.0, 1e-4);
    }
  /* filters: prompt + generated = all */
  g_autoptr (RsLoadAccum) prompt = rs_load_accum_new (L, E, moe);
  g_autoptr (RsLoadAccum) gen = rs_load_accum_new (L, E, moe);
  rs_load_accum_set_filter (prompt, RS_TOKENS_PROMPT);
  rs_load_accum_set_filter (gen, RS_TOKENS_GENERATED);
  rs_load_accum_update (prompt, tr);
  rs_load_accum_update (gen, tr);
  g_assert_cmpint (prompt->n_counted, ==, 6);
  g_assert_cmpint (gen->n_counted, ==, 44);
  for (int i = 0; i < L * E; i++)
    g_assert_cmpfloat (prompt->count[i] + gen->count[i], ==, full->count[i]);
  /* truncation starts over */
  rs_trace_truncate (grow, 10);
  rs_load_accum_update (inc, grow);
  g_assert_cmpint (inc->n_counted, ==, 10);

  /* the expert summary */
  RsExpertSummary sum;
  g_autoptr (GArray) top = g_array_new (FALSE, FALSE, sizeof (RsExpertToken));
  rs_expert_summary (tr, 2, 5, &sum, top, 5);
  g_assert_cmpint (sum.count, ==, (int64_t) full->count[2 * E + 5]);
  g_assert_cmpint (sum.n_tokens, ==, 50);
  g_assert_cmpuint (top->len, <=, 5);
  int total = 0;
  for (guint i = 0; i < top->len; i++)
    total += g_array_index (top, RsExpertToken, i).count;
  g_assert_cmpint (total, <=, sum.count);
}

/* ---- inspector ---------------------------------------------------------- */

static void
test_inspector_renders (void)
{
  g_autoptr (RsTrace) tr = make_trace (40);
  RsModelInfo *info = make_info ();
  GtkWidget *window = gtk_window_new ();
  GtkWidget *inspector = rs_expert_inspector_new ();
  gtk_window_set_child (GTK_WINDOW (window), inspector);
  gtk_window_set_default_size (GTK_WINDOW (window), 360, 700);
  rs_expert_inspector_set_model (RS_EXPERT_INSPECTOR (inspector), info);
  rs_expert_inspector_trace_changed (RS_EXPERT_INSPECTOR (inspector), tr, 0);
  rs_expert_inspector_set_expert (RS_EXPERT_INSPECTOR (inspector), 3, 4);
  RsIntervention iv = { .kind = RS_INTERVENE_BIAS, .layer_first = 3, .layer_last = 3, .n_experts = 1,
                        .experts = { 4 }, .value = 2, .from_token = 12 };
  rs_expert_inspector_set_interventions (RS_EXPERT_INSPECTOR (inspector), &iv, 1);
  int layer, expert;
  g_assert_true (rs_expert_inspector_get_expert (RS_EXPERT_INSPECTOR (inspector), &layer, &expert));
  g_assert_cmpint (layer, ==, 3);
  /* out of range: nothing selected */
  rs_expert_inspector_set_expert (RS_EXPERT_INSPECTOR (inspector), L, 0);
  g_assert_false (rs_expert_inspector_get_expert (RS_EXPERT_INSPECTOR (inspector), &layer, &expert));
  rs_expert_inspector_set_expert (RS_EXPERT_INSPECTOR (inspector), 3, 4);
  gtk_window_present (GTK_WINDOW (window));
  gint64 end = g_get_monotonic_time () + 500 * 1000;
  while (g_get_monotonic_time () < end)
    {
      while (g_main_context_pending (NULL))
        g_main_context_iteration (NULL, FALSE);
      g_usleep (5000);
    }
  g_assert_cmpint (gtk_widget_get_width (inspector), >, 0);
  gtk_window_destroy (GTK_WINDOW (window));
  free_info (info);
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
  rs_ui_init ();
  gtk_init ();
  g_test_add_func ("/widgets/heatmap-view", test_heatmap_view);
  g_test_add_func ("/widgets/token-strip", test_token_strip);
  g_test_add_func ("/widgets/token-view", test_token_view);
  g_test_add_func ("/widgets/load-accum", test_load_accum);
  g_test_add_func ("/widgets/inspector", test_inspector_renders);
  int status = g_test_run ();
  rs_test_xvfb_stop ();
  return status;
}
