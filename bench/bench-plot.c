/* bench-plot.c: redraw time of the expert-load heatmap (48 layers x 128
 * experts by default), the GUI's most frequent drawing. Target: < 2 ms.
 *
 * Cases, each timed as the median of many frames:
 *   draw       the same data redrawn (window resize, hover)
 *   update     new values then a redraw (a token arrives while running)
 *   recording  drawn into a recording surface and replayed onto an image,
 *              as GTK's cairo render nodes are
 *   outline    per-token view: the selected experts outlined
 *
 *   bench-plot [--rows N] [--cols N] [--width W] [--height H] [--scale S] [--frames N]
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "rs-plot.h"

static double
now_s (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

typedef enum { CASE_DRAW, CASE_UPDATE, CASE_RECORDING, CASE_OUTLINE } Case;

int
main (int argc, char **argv)
{
  int rows = 48, cols = 128, width = 1200, height = 700, frames = 300;
  double scale = 1;
  GOptionEntry entries[] = {
    { "rows", 0, 0, G_OPTION_ARG_INT, &rows, "Layers (rows)", "N" },
    { "cols", 0, 0, G_OPTION_ARG_INT, &cols, "Experts (columns)", "N" },
    { "width", 0, 0, G_OPTION_ARG_INT, &width, "Widget width (points)", "W" },
    { "height", 0, 0, G_OPTION_ARG_INT, &height, "Widget height (points)", "H" },
    { "scale", 0, 0, G_OPTION_ARG_DOUBLE, &scale, "Device scale (2 = HiDPI)", "S" },
    { "frames", 0, 0, G_OPTION_ARG_INT, &frames, "Frames per case", "N" },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- heatmap redraw time");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
    fprintf (stderr, "bench-plot: %s\n", error->message);
    return 2;
  }
  rows = MAX (rows, 1);
  cols = MAX (cols, 1);
  frames = MAX (frames, 5);

  float *v = g_new (float, (size_t) rows * cols);
  unsigned char *mask = g_new0 (unsigned char, (size_t) rows * cols);
  GRand *rand = g_rand_new_with_seed (1);
  for (int i = 0; i < rows * cols; i++)
    v[i] = (float) g_rand_double_range (rand, 0, 100);
  for (int r = 0; r < rows; r++)
    for (int j = 0; j < 8; j++)
      mask[r * cols + g_rand_int_range (rand, 0, cols)] = 1;

  RsPlot *plot = rs_plot_new ();
  rs_plot_set_title (plot, "Expert load");
  rs_plot_set_x_label (plot, "expert");
  rs_plot_set_y_label (plot, "layer");
  rs_plot_set_heatmap (plot, v, rows, cols, RS_COLORMAP_VIRIDIS, false, "tokens routed");

  int pw = (int) ceil (width * scale), ph = (int) ceil (height * scale);
  cairo_surface_t *target = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, pw, ph);
  double *t = g_new (double, frames);

  printf ("heatmap %d x %d, %d x %d points at scale %g, %d frames per case\n", rows, cols, width,
          height, scale, frames);
  printf ("%-10s %10s %10s %10s\n", "case", "median ms", "p90 ms", "max ms");
  static const char *names[] = { "draw", "update", "recording", "outline" };
  double worst_median = 0;
  for (int c = CASE_DRAW; c <= CASE_OUTLINE; c++) {
    if (c == CASE_OUTLINE)
      rs_plot_set_heatmap_outline (plot, mask);
    for (int f = -5; f < frames; f++) {
      double t0 = now_s ();
      if (c == CASE_UPDATE) {
        v[(f & 1023) % (rows * cols)] += 1;
        rs_plot_set_heatmap (plot, v, rows, cols, RS_COLORMAP_VIRIDIS, false, "tokens routed");
      }
      if (c == CASE_RECORDING) {
        cairo_rectangle_t ext = { 0, 0, width, height };
        cairo_surface_t *rec = cairo_recording_surface_create (CAIRO_CONTENT_COLOR_ALPHA, &ext);
        cairo_t *rcr = cairo_create (rec);
        rs_plot_draw (plot, rcr, width, height);
        cairo_destroy (rcr);
        cairo_t *cr = cairo_create (target);
        cairo_scale (cr, scale, scale);
        cairo_set_source_surface (cr, rec, 0, 0);
        cairo_paint (cr);
        cairo_destroy (cr);
        cairo_surface_destroy (rec);
      } else {
        cairo_t *cr = cairo_create (target);
        cairo_scale (cr, scale, scale);
        rs_plot_draw (plot, cr, width, height);
        cairo_destroy (cr);
      }
      cairo_surface_flush (target);
      if (f >= 0)
        t[f] = (now_s () - t0) * 1e3;
    }
    qsort (t, frames, sizeof *t, cmp_double);
    double med = t[frames / 2];
    printf ("%-10s %10.3f %10.3f %10.3f\n", names[c], med, t[frames * 9 / 10], t[frames - 1]);
    worst_median = MAX (worst_median, med);
  }
  printf ("target < 2 ms per redraw: %s (worst median %.3f ms)\n",
          worst_median < 2.0 ? "met" : "NOT met", worst_median);

  g_free (t);
  cairo_surface_destroy (target);
  rs_plot_free (plot);
  g_rand_free (rand);
  g_free (mask);
  g_free (v);
  return 0;
}
