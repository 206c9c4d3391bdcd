/* test-plot.c: the Cairo chart library: layout at several sizes, hit
 * testing, colour maps, PNG/SVG/PDF export and its error paths.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <glib.h>
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "rs-plot.h"

static float *
make_matrix (int rows, int cols)
{
  float *v = g_new (float, (size_t) rows * cols);
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < cols; c++)
      v[r * cols + c] = (float) ((r * 7 + c * 13) % 23) + 0.5f;
  return v;
}

static RsPlot *
make_heatmap_plot (int rows, int cols, RsColormap map, bool log_scale)
{
  RsPlot *plot = rs_plot_new ();
  rs_plot_set_title (plot, "Expert load");
  rs_plot_set_x_label (plot, "expert");
  rs_plot_set_y_label (plot, "layer");
  g_autofree float *v = make_matrix (rows, cols);
  if (rows * cols > 1)
    v[1] = NAN; /* a blank cell */
  rs_plot_set_heatmap (plot, v, rows, cols, map, log_scale, "tokens routed");
  return plot;
}

static gboolean
rect_inside (double x, double y, double w, double h, double W, double H)
{
  return isfinite (x) && isfinite (y) && isfinite (w) && isfinite (h) && x >= 0 && y >= 0
         && w >= 0 && h >= 0 && x + w <= W + 1e-9 && y + h <= H + 1e-9;
}

/* Draws at an offset inside a bigger surface and checks nothing is
 * painted outside (0, 0, w, h). */
static void
check_no_overdraw (RsPlot *plot, int w, int h)
{
  const int m = 20;
  cairo_surface_t *s = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, w + 2 * m, h + 2 * m);
  cairo_t *cr = cairo_create (s);
  cairo_translate (cr, m, m);
  rs_plot_draw (plot, cr, w, h);
  g_assert_cmpint (cairo_status (cr), ==, CAIRO_STATUS_SUCCESS);
  cairo_destroy (cr);
  cairo_surface_flush (s);
  unsigned char *data = cairo_image_surface_get_data (s);
  int stride = cairo_image_surface_get_stride (s);
  for (int y = 0; y < h + 2 * m; y++)
    for (int x = 0; x < w + 2 * m; x++) {
      gboolean inside = x >= m && x < m + w && y >= m && y < m + h;
      guint32 px = ((guint32 *) (data + (size_t) y * stride))[x];
      if (!inside && px != 0)
        g_error ("%dx%d: pixel (%d, %d) outside the chart is painted", w, h, x - m, y - m);
    }
  cairo_surface_destroy (s);
}

static void
test_layout_sizes (void)
{
  static const int sizes[][2] = {
    { 800, 500 }, { 1920, 1080 }, { 320, 200 }, { 120, 80 }, { 40, 30 }, { 3, 3 }, { 2000, 60 },
    { 60, 1500 },
  };
  static const int shapes[][2] = { { 48, 128 }, { 16, 64 }, { 1, 1 }, { 24, 8 } };
  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++)
    for (guint i = 0; i < G_N_ELEMENTS (sizes); i++) {
      int rows = shapes[s][0], cols = shapes[s][1];
      int w = sizes[i][0], h = sizes[i][1];
      g_autoptr (RsPlot) plot = make_heatmap_plot (rows, cols, RS_COLORMAP_VIRIDIS, false);
      check_no_overdraw (plot, w, h);

      RsPlotLayout L;
      rs_plot_get_layout (plot, &L);
      g_assert_true (rect_inside (L.plot_x, L.plot_y, L.plot_width, L.plot_height, w, h));
      g_assert_true (rect_inside (L.colorbar_x, L.colorbar_y, L.colorbar_width, L.colorbar_height, w, h));
      if (w >= 320 && h >= 200) {
        g_assert_cmpfloat (L.plot_width, >, w * 0.5);
        g_assert_cmpfloat (L.plot_height, >, h * 0.4);
        g_assert_cmpfloat (L.colorbar_width, >, 0);
        /* colour bar to the right of the cells, not overlapping them */
        g_assert_cmpfloat (L.colorbar_x, >=, L.plot_x + L.plot_width);
        g_assert_cmpint (L.rows, ==, rows);
        g_assert_cmpint (L.cols, ==, cols);
      }
      if (L.plot_width <= 0)
        continue;

      /* hit testing: the centre of every cell maps back to it */
      double cw = L.plot_width / cols, ch = L.plot_height / rows;
      for (int r = 0; r < rows; r += MAX (1, rows / 7))
        for (int c = 0; c < cols; c += MAX (1, cols / 9)) {
          int rr = -1, cc = -1;
          g_assert_true (rs_plot_heatmap_cell_at (plot, L.plot_x + (c + 0.5) * cw,
                                                  L.plot_y + (r + 0.5) * ch, &rr, &cc));
          g_assert_cmpint (rr, ==, r);
          g_assert_cmpint (cc, ==, c);
        }
      /* corners and outside */
      int rr, cc;
      g_assert_true (rs_plot_heatmap_cell_at (plot, L.plot_x, L.plot_y, &rr, &cc));
      g_assert_cmpint (rr, ==, 0);
      g_assert_cmpint (cc, ==, 0);
      g_assert_true (rs_plot_heatmap_cell_at (plot, L.plot_x + L.plot_width - 0.01,
                                              L.plot_y + L.plot_height - 0.01, &rr, &cc));
      g_assert_cmpint (rr, ==, rows - 1);
      g_assert_cmpint (cc, ==, cols - 1);
      g_assert_false (rs_plot_heatmap_cell_at (plot, L.plot_x - 1, L.plot_y, NULL, NULL));
      g_assert_false (rs_plot_heatmap_cell_at (plot, L.plot_x + L.plot_width + 0.5, L.plot_y, NULL, NULL));
      g_assert_false (rs_plot_heatmap_cell_at (plot, -5, -5, NULL, NULL));
      g_assert_false (rs_plot_heatmap_cell_at (plot, NAN, NAN, NULL, NULL));
    }
}

static void
test_cells_coloured (void)
{
  /* a 2x2 heatmap 0,1 / 2,3 at a comfortable size: the cells' pixels carry
   * the colour map's ends, the blank cell stays background */
  g_autoptr (RsPlot) plot = rs_plot_new ();
  float v[4] = { 0, 1, NAN, 3 };
  rs_plot_set_heatmap (plot, v, 2, 2, RS_COLORMAP_VIRIDIS, false, NULL);
  cairo_surface_t *s = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, 400, 300);
  cairo_t *cr = cairo_create (s);
  rs_plot_draw (plot, cr, 400, 300);
  cairo_destroy (cr);
  cairo_surface_flush (s);
  RsPlotLayout L;
  rs_plot_get_layout (plot, &L);
  unsigned char *data = cairo_image_surface_get_data (s);
  int stride = cairo_image_surface_get_stride (s);
#define PX(x, y) (((guint32 *) (data + (size_t) (int) (y) * stride))[(int) (x)] & 0xffffff)
  double cx0 = L.plot_x + L.plot_width * 0.25, cx1 = L.plot_x + L.plot_width * 0.75;
  double cy0 = L.plot_y + L.plot_height * 0.25, cy1 = L.plot_y + L.plot_height * 0.75;
  g_assert_cmphex (PX (cx0, cy0), ==, 0x440154); /* minimum: viridis' dark end */
  g_assert_cmphex (PX (cx1, cy1), ==, 0xfde725); /* maximum: its yellow end */
  g_assert_cmphex (PX (cx0, cy1), ==, 0xffffff); /* NaN: background */
  g_assert_cmphex (PX (cx1, cy0), !=, 0xffffff);
#undef PX
  cairo_surface_destroy (s);

  double lo, hi;
  g_assert_true (rs_plot_heatmap_range (plot, &lo, &hi));
  g_assert_cmpfloat (lo, ==, 0);
  g_assert_cmpfloat (hi, ==, 3);

  /* log scale ignores non-positive values; coolwarm is symmetric */
  float w[4] = { -2, 0.01f, 1, 100 };
  rs_plot_set_heatmap (plot, w, 2, 2, RS_COLORMAP_VIRIDIS, true, NULL);
  g_assert_true (rs_plot_heatmap_range (plot, &lo, &hi));
  g_assert_cmpfloat_with_epsilon (lo, 0.01, 1e-9);
  g_assert_cmpfloat_with_epsilon (hi, 100, 1e-6);
  rs_plot_set_heatmap (plot, w, 2, 2, RS_COLORMAP_COOLWARM, false, NULL);
  g_assert_true (rs_plot_heatmap_range (plot, &lo, &hi));
  g_assert_cmpfloat (lo, ==, -100);
  g_assert_cmpfloat (hi, ==, 100);

  /* all NaN, constant matrices: drawn without NaN geometry */
  float nanv[3] = { NAN, NAN, NAN }, same[3] = { 5, 5, 5 };
  rs_plot_set_heatmap (plot, nanv, 1, 3, RS_COLORMAP_MAGMA, false, "x");
  g_assert_false (rs_plot_heatmap_range (plot, NULL, NULL));
  check_no_overdraw (plot, 200, 100);
  rs_plot_set_heatmap (plot, same, 3, 1, RS_COLORMAP_MAGMA, true, "x");
  check_no_overdraw (plot, 200, 100);
  rs_plot_get_layout (plot, &L);
  g_assert_true (rect_inside (L.plot_x, L.plot_y, L.plot_width, L.plot_height, 200, 100));

  /* removing the heatmap */
  rs_plot_set_heatmap (plot, NULL, 0, 0, RS_COLORMAP_VIRIDIS, false, NULL);
  check_no_overdraw (plot, 200, 100);
  g_assert_false (rs_plot_heatmap_cell_at (plot, 100, 50, NULL, NULL));
}

static void
test_colormaps (void)
{
  for (int m = RS_COLORMAP_VIRIDIS; m <= RS_COLORMAP_COOLWARM; m++)
    for (int i = -2; i <= 22; i++) {
      double rgb[3];
      rs_colormap_rgb ((RsColormap) m, i / 20.0, rgb);
      for (int c = 0; c < 3; c++)
        g_assert_true (rgb[c] >= 0 && rgb[c] <= 1);
    }
  /* perceptual maps are monotonic in lightness (approximated by luma) */
  for (int m = RS_COLORMAP_VIRIDIS; m <= RS_COLORMAP_MAGMA; m++) {
    double prev = -1;
    for (int i = 0; i <= 100; i++) {
      double rgb[3];
      rs_colormap_rgb ((RsColormap) m, i / 100.0, rgb);
      double luma = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2];
      g_assert_cmpfloat (luma, >=, prev - 1e-3);
      prev = luma;
    }
  }
  double nanrgb[3];
  rs_colormap_rgb (RS_COLORMAP_MAGMA, NAN, nanrgb);
  g_assert_true (isfinite (nanrgb[0]));
}

static void
test_outline_and_lines (void)
{
  g_autoptr (RsPlot) plot = make_heatmap_plot (16, 64, RS_COLORMAP_MAGMA, true);
  unsigned char mask[16 * 64] = { 0 };
  for (int r = 0; r < 16; r++)
    mask[r * 64 + (r * 5) % 64] = 1;
  rs_plot_set_heatmap_outline (plot, mask);
  rs_plot_set_dark (plot, true);
  check_no_overdraw (plot, 640, 400);
  check_no_overdraw (plot, 64, 40);
  rs_plot_set_heatmap_outline (plot, NULL);
  check_no_overdraw (plot, 640, 400);

  g_autoptr (RsPlot) lines = rs_plot_new ();
  rs_plot_set_title (lines, "Entropy");
  rs_plot_set_x_label (lines, "token");
  rs_plot_set_y_label (lines, "nats");
  double y[50], y2[50], x[50];
  for (int i = 0; i < 50; i++) {
    x[i] = i * 0.5;
    y[i] = sin (i * 0.3);
    y2[i] = i == 10 ? NAN : cos (i * 0.3) * 1e-4;
  }
  rs_plot_add_line (lines, "sin", x, y, 50);
  rs_plot_add_line (lines, "cos", NULL, y2, 50);
  rs_plot_add_line (lines, NULL, NULL, y, 1);
  static const int sizes[][2] = { { 640, 400 }, { 100, 60 }, { 10, 10 } };
  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++) {
    check_no_overdraw (lines, sizes[i][0], sizes[i][1]);
    RsPlotLayout L;
    rs_plot_get_layout (lines, &L);
    g_assert_true (rect_inside (L.plot_x, L.plot_y, L.plot_width, L.plot_height, sizes[i][0], sizes[i][1]));
    g_assert_cmpfloat (L.colorbar_width, ==, 0);
    g_assert_false (rs_plot_heatmap_cell_at (lines, L.plot_x + 1, L.plot_y + 1, NULL, NULL));
  }
  rs_plot_clear_lines (lines);
  check_no_overdraw (lines, 300, 200); /* empty chart */
}

static char *
read_all (const char *path, gsize *len)
{
  char *data = NULL;
  g_assert_true (g_file_get_contents (path, &data, len, NULL));
  return data;
}

static int
count_entries (const char *dir)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  int n = 0;
  while (g_dir_read_name (d))
    n++;
  g_dir_close (d);
  return n;
}

static void
test_export (void)
{
  g_autofree char *dir = g_dir_make_tmp ("rs-plot-XXXXXX", NULL);
  g_assert_nonnull (dir);
  g_autoptr (RsPlot) plot = make_heatmap_plot (48, 128, RS_COLORMAP_VIRIDIS, false);
  unsigned char mask[48 * 128] = { 0 };
  mask[5] = mask[300] = 1;
  rs_plot_set_heatmap_outline (plot, mask);

  struct { const char *name; const char *magic; gsize magic_len; } cases[] = {
    { "map.png", "\x89PNG\r\n\x1a\n", 8 },
    { "map.SVG", "<?xml", 5 },
    { "map.pdf", "%PDF-", 5 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree char *path = g_build_filename (dir, cases[i].name, NULL);
    g_autoptr (GError) error = NULL;
    g_assert_true (rs_plot_export (plot, path, 640, 400, 2, &error));
    g_assert_no_error (error);
    gsize len;
    g_autofree char *data = read_all (path, &len);
    g_assert_cmpuint (len, >, 500);
    g_assert_cmpmem (data, cases[i].magic_len, cases[i].magic, cases[i].magic_len);
    if (i == 0) {
      /* PNG size = points x scale */
      cairo_surface_t *s = cairo_image_surface_create_from_png (path);
      g_assert_cmpint (cairo_surface_status (s), ==, CAIRO_STATUS_SUCCESS);
      g_assert_cmpint (cairo_image_surface_get_width (s), ==, 1280);
      g_assert_cmpint (cairo_image_surface_get_height (s), ==, 800);
      cairo_surface_destroy (s);
    }
    if (i == 1)
      g_assert_nonnull (g_strstr_len (data, len, "<svg"));
  }
  g_assert_cmpint (count_entries (dir), ==, 3); /* no temporary files left */

  /* overwriting keeps one file */
  g_autofree char *png = g_build_filename (dir, "map.png", NULL);
  g_assert_true (rs_plot_export (plot, png, 100, 80, 1, NULL));
  g_assert_cmpint (count_entries (dir), ==, 3);

  /* errors: unknown extension, missing folder, unwritable folder */
  g_autoptr (GError) error = NULL;
  g_autofree char *bad_ext = g_build_filename (dir, "map.bmp", NULL);
  g_assert_false (rs_plot_export (plot, bad_ext, 100, 100, 1, &error));
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, bad_ext));
  g_clear_error (&error);

  g_autofree char *missing = g_build_filename (dir, "no", "such", "map.png", NULL);
  g_assert_false (rs_plot_export (plot, missing, 100, 100, 1, &error));
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, missing));
  g_clear_error (&error);

  g_assert_false (rs_plot_export (plot, png, 0, 100, 1, &error));
  g_clear_error (&error);

  g_autofree char *ro = g_build_filename (dir, "ro", NULL);
  g_assert_cmpint (g_mkdir (ro, 0500), ==, 0);
  g_autofree char *ro_file = g_build_filename (ro, "map.svg", NULL);
  if (access (ro, W_OK) == 0) {
    g_test_message ("running as root: the read-only folder is writable, skipping that case");
  } else {
    g_assert_false (rs_plot_export (plot, ro_file, 100, 100, 1, &error));
    g_assert_nonnull (error);
    g_assert_nonnull (strstr (error->message, ro_file));
    g_clear_error (&error);
    g_assert_cmpint (count_entries (ro), ==, 0);
  }
  g_assert_cmpint (count_entries (dir), ==, 4); /* 3 figures + ro: no temp files */

  /* unwritable even for root */
  g_assert_false (rs_plot_export (plot, "/proc/routescope-test.png", 100, 100, 1, &error));
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, "/proc/routescope-test.png"));
  g_clear_error (&error);

  /* a path that exists as a folder: the rename fails, the temp file goes */
  g_autofree char *as_dir = g_build_filename (dir, "folder.png", NULL);
  g_assert_cmpint (g_mkdir (as_dir, 0700), ==, 0);
  g_autofree char *inner = g_build_filename (as_dir, "x", NULL);
  g_file_set_contents (inner, "x", 1, NULL);
  g_assert_false (rs_plot_export (plot, as_dir, 100, 100, 1, &error));
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, as_dir));
  g_clear_error (&error);
  g_assert_cmpint (count_entries (dir), ==, 5);

  g_unlink (inner);
  g_rmdir (as_dir);
  g_chmod (ro, 0700);
  g_rmdir (ro);
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree char *path = g_build_filename (dir, cases[i].name, NULL);
    g_unlink (path);
  }
  g_rmdir (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/plot/layout-sizes", test_layout_sizes);
  g_test_add_func ("/plot/cells-coloured", test_cells_coloured);
  g_test_add_func ("/plot/colormaps", test_colormaps);
  g_test_add_func ("/plot/outline-and-lines", test_outline_and_lines);
  g_test_add_func ("/plot/export", test_export);
  return g_test_run ();
}
