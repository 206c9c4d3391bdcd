/* rs-plot.c: Cairo charts (heatmap and line layers, axes, colour bar).
 *
 * Raster targets (image and recording surfaces, which is what GTK's
 * cairo nodes and PNG export draw into) get the heatmap as one small
 * image, one pixel per cell, scaled with the nearest filter: a 48 x 128
 * heatmap is one paint instead of 6144 fills. Vector targets (SVG, PDF)
 * get one rectangle per cell, so exported figures stay crisp.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "rs-plot.h"

#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#define FONT_FAMILY "sans-serif"

typedef struct {
  char *label;
  double *x;
  double *y;
  int n;
} RsPlotLine;

struct _RsPlot {
  char *title;
  char *x_label;
  char *y_label;
  bool dark;

  /* heatmap */
  float *values;
  int rows;
  int cols;
  RsColormap colormap;
  bool log_scale;
  char *colorbar_label;
  unsigned char *outline;
  double vmin, vmax; /* colour range in colour space (log10 when log) */
  bool have_range;
  cairo_surface_t *cells; /* cols x rows ARGB32, one pixel per cell; NULL = stale */

  GPtrArray *lines; /* RsPlotLine */

  /* geometry of the last draw */
  RsPlotLayout layout;
};

/* ---------------------------------------------------------------- colour maps */

/* Eleven stops (0, 0.1, ... 1) of each map, interpolated linearly. The
 * viridis and magma stops are matplotlib's; coolwarm is Moreland's. */
static const guint32 viridis_stops[] = {
  0x440154, 0x482475, 0x414487, 0x355f8d, 0x2a788e, 0x21918c,
  0x22a884, 0x44bf70, 0x7ad151, 0xbddf26, 0xfde725,
};
static const guint32 magma_stops[] = {
  0x000004, 0x140e36, 0x3b0f70, 0x641a80, 0x8c2981, 0xb73779,
  0xde4968, 0xf7705c, 0xfe9f6d, 0xfecf92, 0xfcfdbf,
};
static const guint32 coolwarm_stops[] = {
  0x3b4cc0, 0x5977e3, 0x7b9ff9, 0x9ebeff, 0xc0d4f5, 0xdddcdc,
  0xf2cbb7, 0xf7ac8e, 0xee8468, 0xd65244, 0xb40426,
};

void
rs_colormap_rgb (RsColormap map, double t, double rgb[3])
{
  const guint32 *stops = map == RS_COLORMAP_MAGMA      ? magma_stops
                         : map == RS_COLORMAP_COOLWARM ? coolwarm_stops
                                                       : viridis_stops;
  if (!(t >= 0)) /* NaN too */
    t = 0;
  if (t > 1)
    t = 1;
  double f = t * 10.0;
  int i = (int) f;
  if (i >= 10)
    i = 9;
  f -= i;
  for (int c = 0; c < 3; c++)
    {
      int sh = 16 - 8 * c;
      double a = (stops[i] >> sh) & 0xff, b = (stops[i + 1] >> sh) & 0xff;
      rgb[c] = (a + (b - a) * f) / 255.0;
    }
}

/* 256-entry packed ARGB tables, built once. */
static guint32 colormap_lut[3][256];

static void
init_luts (void)
{
  static gsize done = 0;
  if (g_once_init_enter (&done))
    {
      for (int m = 0; m < 3; m++)
        for (int i = 0; i < 256; i++)
          {
            double rgb[3];
            rs_colormap_rgb ((RsColormap) m, i / 255.0, rgb);
            colormap_lut[m][i] = 0xff000000u | ((guint32) lround (rgb[0] * 255) << 16)
                                 | ((guint32) lround (rgb[1] * 255) << 8) | (guint32) lround (rgb[2] * 255);
          }
      g_once_init_leave (&done, 1);
    }
}

/* ---------------------------------------------------------------- lifetime */

RsPlot *
rs_plot_new (void)
{
  init_luts ();
  RsPlot *plot = g_new0 (RsPlot, 1);
  plot->lines = g_ptr_array_new ();
  return plot;
}

static void
line_free (RsPlotLine *line)
{
  g_free (line->label);
  g_free (line->x);
  g_free (line->y);
  g_free (line);
}

void
rs_plot_free (RsPlot *plot)
{
  if (!plot)
    return;
  g_free (plot->title);
  g_free (plot->x_label);
  g_free (plot->y_label);
  g_free (plot->values);
  g_free (plot->colorbar_label);
  g_free (plot->outline);
  g_clear_pointer (&plot->cells, cairo_surface_destroy);
  rs_plot_clear_lines (plot);
  g_ptr_array_unref (plot->lines);
  g_free (plot);
}

void
rs_plot_set_title (RsPlot *plot, const char *title)
{
  g_free (plot->title);
  plot->title = g_strdup (title);
}

void
rs_plot_set_x_label (RsPlot *plot, const char *label)
{
  g_free (plot->x_label);
  plot->x_label = g_strdup (label);
}

void
rs_plot_set_y_label (RsPlot *plot, const char *label)
{
  g_free (plot->y_label);
  plot->y_label = g_strdup (label);
}

void
rs_plot_set_dark (RsPlot *plot, bool dark)
{
  plot->dark = dark;
}

/* ---------------------------------------------------------------- data */

static double
color_value (const RsPlot *plot, float v)
{
  if (isnan (v))
    return NAN;
  if (plot->log_scale)
    return v > 0 ? log10 (v) : NAN;
  return v;
}

static void
compute_range (RsPlot *plot)
{
  double lo = INFINITY, hi = -INFINITY;
  size_t n = (size_t) plot->rows * plot->cols;
  for (size_t i = 0; i < n; i++)
    {
      double v = color_value (plot, plot->values[i]);
      if (isnan (v) || isinf (v))
        continue;
      if (v < lo)
        lo = v;
      if (v > hi)
        hi = v;
    }
  plot->have_range = lo <= hi;
  if (!plot->have_range)
    {
      lo = 0;
      hi = 1;
    }
  if (plot->colormap == RS_COLORMAP_COOLWARM && !plot->log_scale)
    {
      /* diverging: symmetric about zero */
      double m = MAX (fabs (lo), fabs (hi));
      lo = -m;
      hi = m;
    }
  if (hi - lo < 1e-12)
    {
      /* a constant matrix: give it some range so that it maps mid-scale */
      double d = fabs (hi) > 1e-12 ? fabs (hi) * 0.5 : 0.5;
      lo -= d;
      hi += d;
    }
  plot->vmin = lo;
  plot->vmax = hi;
}

void
rs_plot_set_heatmap (RsPlot *plot, const float *values, int rows, int cols, RsColormap colormap,
                     bool log_scale, const char *colorbar_label)
{
  g_clear_pointer (&plot->cells, cairo_surface_destroy);
  if (rows != plot->rows || cols != plot->cols)
    g_clear_pointer (&plot->outline, g_free);
  g_clear_pointer (&plot->values, g_free);
  if (!values || rows <= 0 || cols <= 0)
    {
      plot->rows = plot->cols = 0;
      g_clear_pointer (&plot->outline, g_free);
      return;
    }
  plot->rows = rows;
  plot->cols = cols;
  plot->values = g_memdup2 (values, sizeof (float) * (size_t) rows * cols);
  plot->colormap = (unsigned) colormap <= RS_COLORMAP_COOLWARM ? colormap : RS_COLORMAP_VIRIDIS;
  plot->log_scale = log_scale;
  if (g_strcmp0 (plot->colorbar_label, colorbar_label) != 0)
    {
      g_free (plot->colorbar_label);
      plot->colorbar_label = g_strdup (colorbar_label);
    }
  compute_range (plot);
}

void
rs_plot_set_heatmap_outline (RsPlot *plot, const unsigned char *mask)
{
  g_clear_pointer (&plot->outline, g_free);
  if (mask && plot->rows > 0)
    plot->outline = g_memdup2 (mask, (size_t) plot->rows * plot->cols);
}

void
rs_plot_add_line (RsPlot *plot, const char *label, const double *x, const double *y, int n)
{
  if (!y || n <= 0)
    return;
  RsPlotLine *line = g_new0 (RsPlotLine, 1);
  line->label = g_strdup (label);
  line->n = n;
  line->y = g_memdup2 (y, sizeof (double) * n);
  line->x = g_new (double, n);
  for (int i = 0; i < n; i++)
    line->x[i] = x ? x[i] : i;
  g_ptr_array_add (plot->lines, line);
}

void
rs_plot_clear_lines (RsPlot *plot)
{
  for (guint i = 0; i < plot->lines->len; i++)
    line_free (plot->lines->pdata[i]);
  g_ptr_array_set_size (plot->lines, 0);
}

/* ---------------------------------------------------------------- ticks */

static double
nice_step (double range, int target)
{
  if (!(range > 0) || target < 1)
    return 1;
  double raw = range / target;
  double mag = pow (10, floor (log10 (raw)));
  double f = raw / mag;
  double nice = f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10;
  return nice * mag;
}

static void
format_value (char *buf, size_t size, double v, double step)
{
  if (fabs (v) < step * 1e-6)
    v = 0;
  double a = fabs (v);
  if (a != 0 && (a >= 1e5 || a < 1e-3))
    {
      g_snprintf (buf, size, "%.2g", v);
      return;
    }
  /* as many decimals as the step needs (2.5 -> 1, 0.25 -> 2) */
  int dec = 0;
  while (dec < 6)
    {
      double scaled = step * pow (10, dec);
      if (fabs (scaled - round (scaled)) < 1e-6 * MAX (1.0, scaled))
        break;
      dec++;
    }
  g_snprintf (buf, size, "%.*f", dec, v);
}

/* The colour bar's ticks: positions in colour space (log10 units on a log
 * scale) and their labels. Returns how many (at most @max). */
typedef struct {
  double pos;
  char label[32];
} Tick;

static int
colorbar_ticks (const RsPlot *plot, int target, Tick *ticks, int max)
{
  int n = 0;
  double lo = plot->vmin, hi = plot->vmax;
  if (plot->log_scale && hi - lo >= 1.0)
    {
      /* decades; with few of them, 2x and 5x between */
      static const double mult[] = { 1, 2, 5 };
      int per = hi - lo >= target - 1 ? 1 : 3;
      double dstep = MAX (1.0, ceil ((hi - lo) / MAX (target, 1)));
      for (double k = floor (lo); k <= ceil (hi) && n < max; k += (per == 1 ? dstep : 1))
        for (int m = 0; m < per && n < max; m++)
          {
            double pos = k + log10 (mult[m]);
            if (pos < lo - 1e-9 || pos > hi + 1e-9)
              continue;
            ticks[n].pos = pos;
            g_snprintf (ticks[n].label, sizeof ticks[n].label, "%g", pow (10, pos));
            n++;
          }
      return n;
    }
  if (plot->log_scale)
    {
      /* less than a decade: round values, placed on the log axis */
      double vlo = pow (10, lo), vhi = pow (10, hi);
      double step = nice_step (vhi - vlo, target);
      for (double v = ceil (vlo / step) * step; v <= vhi * (1 + 1e-9) && n < max; v += step)
        {
          if (v <= 0)
            continue;
          ticks[n].pos = log10 (v);
          format_value (ticks[n].label, sizeof ticks[n].label, v, step);
          n++;
        }
      return n;
    }
  double step = nice_step (hi - lo, target);
  for (double v = ceil (lo / step) * step; v <= hi + step * 1e-9 && n < max; v += step)
    {
      ticks[n].pos = v;
      format_value (ticks[n].label, sizeof ticks[n].label, v, step);
      n++;
    }
  return n;
}

/* ---------------------------------------------------------------- drawing helpers */

typedef struct {
  double fg[3];
  double dim[3];
  double bg[3];
  double grid[3];
} Palette;

static Palette
palette_for (const RsPlot *plot)
{
  if (plot->dark)
    return (
        Palette){ { 0.96, 0.96, 0.96 }, { 0.70, 0.70, 0.70 }, { 0.118, 0.118, 0.118 }, { 0.30, 0.30, 0.30 } };
  return (Palette){ { 0.12, 0.12, 0.12 }, { 0.36, 0.36, 0.36 }, { 1, 1, 1 }, { 0.85, 0.85, 0.85 } };
}

static const guint32 line_palette[] = {
  0x4e79a7, 0xf28e2b, 0xe15759, 0x76b7b2, 0x59a14f, 0xedc948, 0xb07aa1, 0xff9da7, 0x9c755f, 0xbab0ac,
};

static void
set_rgb (cairo_t *cr, const double c[3])
{
  cairo_set_source_rgb (cr, c[0], c[1], c[2]);
}

static double
text_width (cairo_t *cr, const char *s)
{
  cairo_text_extents_t e;
  cairo_text_extents (cr, s, &e);
  return e.x_advance;
}

/* Draws @s with its anchor at (x, y): @ax 0 left, 0.5 centre, 1 right;
 * @ay 0 top, 0.5 middle, 1 baseline-ish bottom. */
static void
draw_text (cairo_t *cr, const char *s, double x, double y, double ax, double ay, double font)
{
  double w = text_width (cr, s);
  double asc = font * 0.72; /* cap height, roughly */
  cairo_move_to (cr, x - w * ax, y + asc * (1 - ay));
  cairo_show_text (cr, s);
}

/* Shortens @s with an ellipsis until it fits @max_w (returns a new string). */
static char *
fit_text (cairo_t *cr, const char *s, double max_w)
{
  if (text_width (cr, s) <= max_w)
    return g_strdup (s);
  glong n = g_utf8_strlen (s, -1);
  while (n > 0)
    {
      n--;
      char *head = g_utf8_substring (s, 0, n);
      char *t = g_strconcat (head, "…", NULL);
      g_free (head);
      if (text_width (cr, t) <= max_w || n == 0)
        return t;
      g_free (t);
    }
  return g_strdup ("");
}

static bool
is_raster_target (cairo_t *cr)
{
  cairo_surface_type_t t = cairo_surface_get_type (cairo_get_target (cr));
  return t == CAIRO_SURFACE_TYPE_IMAGE || t == CAIRO_SURFACE_TYPE_RECORDING || t == CAIRO_SURFACE_TYPE_XLIB
         || t == CAIRO_SURFACE_TYPE_XCB;
}

static double
normalised (const RsPlot *plot, float v)
{
  double c = color_value (plot, v);
  if (isnan (c))
    return NAN;
  if (isinf (c))
    return c > 0 ? 1 : 0;
  return (c - plot->vmin) / (plot->vmax - plot->vmin);
}

static void
ensure_cells (RsPlot *plot)
{
  if (plot->cells)
    return;
  plot->cells = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, plot->cols, plot->rows);
  cairo_surface_flush (plot->cells);
  unsigned char *data = cairo_image_surface_get_data (plot->cells);
  int stride = cairo_image_surface_get_stride (plot->cells);
  const guint32 *lut = colormap_lut[plot->colormap];
  for (int r = 0; r < plot->rows; r++)
    {
      guint32 *px = (guint32 *) (data + (size_t) r * stride);
      const float *row = plot->values + (size_t) r * plot->cols;
      for (int c = 0; c < plot->cols; c++)
        {
          double t = normalised (plot, row[c]);
          if (isnan (t))
            px[c] = 0; /* blank */
          else
            {
              int i = (int) lround (CLAMP (t, 0.0, 1.0) * 255);
              px[c] = lut[i];
            }
        }
    }
  cairo_surface_mark_dirty (plot->cells);
}

static void
draw_heatmap_cells (RsPlot *plot, cairo_t *cr, const RsPlotLayout *L)
{
  double cw = L->plot_width / plot->cols, ch = L->plot_height / plot->rows;
  if (is_raster_target (cr))
    {
      ensure_cells (plot);
      cairo_save (cr);
      cairo_rectangle (cr, L->plot_x, L->plot_y, L->plot_width, L->plot_height);
      cairo_clip (cr);
      cairo_translate (cr, L->plot_x, L->plot_y);
      cairo_scale (cr, cw, ch);
      cairo_set_source_surface (cr, plot->cells, 0, 0);
      cairo_pattern_set_filter (cairo_get_source (cr), CAIRO_FILTER_NEAREST);
      cairo_paint (cr);
      cairo_restore (cr);
    }
  else
    {
      /* One rectangle per cell; neighbouring rectangles overlap by a hair
     * so that viewers do not show seams between them. */
      for (int r = 0; r < plot->rows; r++)
        for (int c = 0; c < plot->cols; c++)
          {
            double t = normalised (plot, plot->values[(size_t) r * plot->cols + c]);
            if (isnan (t))
              continue;
            double rgb[3];
            rs_colormap_rgb (plot->colormap, t, rgb);
            cairo_set_source_rgb (cr, rgb[0], rgb[1], rgb[2]);
            double ex = c + 1 < plot->cols ? 0.35 : 0, ey = r + 1 < plot->rows ? 0.35 : 0;
            cairo_rectangle (cr, L->plot_x + c * cw, L->plot_y + r * ch, cw + ex, ch + ey);
            cairo_fill (cr);
          }
    }

  if (plot->outline)
    {
      double lw = CLAMP (MIN (cw, ch) * 0.18, 0.6, 2.0);
      cairo_save (cr);
      cairo_rectangle (cr, L->plot_x, L->plot_y, L->plot_width, L->plot_height);
      cairo_clip (cr);
      for (int pass = 0; pass < 2; pass++)
        {
          for (int r = 0; r < plot->rows; r++)
            for (int c = 0; c < plot->cols; c++)
              if (plot->outline[(size_t) r * plot->cols + c])
                {
                  double inset = pass == 0 ? lw * 0.5 : lw * 1.25;
                  double w = cw - 2 * inset, h = ch - 2 * inset;
                  if (w <= 0 || h <= 0)
                    {
                      inset = 0;
                      w = cw;
                      h = ch;
                    }
                  cairo_rectangle (cr, L->plot_x + c * cw + inset, L->plot_y + r * ch + inset, w, h);
                }
          if (pass == 0)
            cairo_set_source_rgb (cr, 1, 1, 1);
          else
            cairo_set_source_rgb (cr, 0.85, 0.1, 0.1);
          cairo_set_line_width (cr, lw);
          cairo_stroke (cr);
          if (cw < 5 || ch < 5)
            break; /* too small for two rings */
        }
      cairo_restore (cr);
    }
}

/* ---------------------------------------------------------------- axes ranges */

typedef struct {
  double x0, x1, y0, y1; /* data range; y1 drawn at the top unless inverted */
  bool y_inverted;       /* heatmaps: row 0 at the top */
  bool index_axes;       /* heatmap: ticks at cell centres */
  bool x_integers;       /* lines whose x are all integers: integer ticks */
} Ranges;

static Ranges
compute_ranges (const RsPlot *plot)
{
  Ranges R = { 0, 1, 0, 1, false, false, true };
  if (plot->rows > 0)
    {
      R.x0 = 0;
      R.x1 = plot->cols;
      R.y0 = 0;
      R.y1 = plot->rows;
      R.y_inverted = true;
      R.index_axes = true;
      return R;
    }
  double xl = INFINITY, xh = -INFINITY, yl = INFINITY, yh = -INFINITY;
  for (guint i = 0; i < plot->lines->len; i++)
    {
      const RsPlotLine *line = plot->lines->pdata[i];
      for (int j = 0; j < line->n; j++)
        {
          double x = line->x[j], y = line->y[j];
          if (!isfinite (x) || !isfinite (y))
            continue;
          if (x != floor (x))
            R.x_integers = false;
          xl = MIN (xl, x);
          xh = MAX (xh, x);
          yl = MIN (yl, y);
          yh = MAX (yh, y);
        }
    }
  if (xl > xh)
    {
      xl = 0;
      xh = 1;
      yl = 0;
      yh = 1;
    }
  if (xh - xl < 1e-12)
    {
      xl -= 0.5;
      xh += 0.5;
    }
  if (yh - yl < 1e-12)
    {
      double d = fabs (yh) > 1e-12 ? fabs (yh) * 0.1 : 0.5;
      yl -= d;
      yh += d;
    }
  else
    {
      double pad = (yh - yl) * 0.05;
      yl -= pad;
      yh += pad;
    }
  R.x0 = xl;
  R.x1 = xh;
  R.y0 = yl;
  R.y1 = yh;
  return R;
}

/* ---------------------------------------------------------------- draw */

void
rs_plot_draw (RsPlot *plot, cairo_t *cr, double width, double height)
{
  RsPlotLayout *L = &plot->layout;
  memset (L, 0, sizeof *L);
  if (!(width > 0) || !(height > 0) || !isfinite (width) || !isfinite (height))
    return;

  Palette P = palette_for (plot);
  Ranges R = compute_ranges (plot);
  bool has_heat = plot->rows > 0;
  bool has_lines = plot->lines->len > 0;

  cairo_save (cr);
  cairo_rectangle (cr, 0, 0, width, height);
  cairo_clip (cr);
  set_rgb (cr, P.bg);
  cairo_paint (cr);

  /* Sizes scale gently with the chart so that small thumbnails stay legible. */
  double font = CLAMP (MIN (width, height) / 28.0, 7.0, 12.0);
  double pad = CLAMP (MIN (width, height) / 40.0, 3.0, 10.0);
  cairo_select_font_face (cr, FONT_FAMILY, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size (cr, font);

  double top = pad, bottom = height - pad, left = pad, right = width - pad;

  if (plot->title && *plot->title)
    {
      cairo_save (cr);
      cairo_select_font_face (cr, FONT_FAMILY, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
      cairo_set_font_size (cr, font * 1.15);
      set_rgb (cr, P.fg);
      g_autofree char *t = fit_text (cr, plot->title, right - left);
      draw_text (cr, t, width / 2, top, 0.5, 0, font * 1.15);
      cairo_restore (cr);
      top += font * 1.15 + pad;
    }

  /* y label (rotated) on the left, x label at the bottom */
  if (plot->y_label && *plot->y_label)
    left += font + pad * 0.6;
  if (plot->x_label && *plot->x_label)
    bottom -= font + pad * 0.6;

  /* tick labels: x below the plot, y to its left */
  double y_steps_px = 22, x_steps_px = 50;
  double ystep, xstep;
  char buf[64];
  double ytick_w = 0;
  /* first guess of the plot height to choose the y ticks */
  double guess_h = bottom - top - font - pad;
  if (R.index_axes)
    {
      ystep = MAX (1.0, nice_step (R.y1, (int) MAX (1, guess_h / y_steps_px)));
      ystep = ceil (ystep);
      for (double v = 0; v < R.y1; v += ystep)
        {
          g_snprintf (buf, sizeof buf, "%d", (int) v);
          ytick_w = MAX (ytick_w, text_width (cr, buf));
        }
    }
  else
    {
      ystep = nice_step (R.y1 - R.y0, (int) MAX (1, guess_h / y_steps_px));
      for (double v = ceil (R.y0 / ystep) * ystep; v <= R.y1 + ystep * 1e-9; v += ystep)
        {
          format_value (buf, sizeof buf, v, ystep);
          ytick_w = MAX (ytick_w, text_width (cr, buf));
        }
    }
  left += ytick_w + pad * 0.5 + 3;
  bottom -= font + pad * 0.5 + 3;

  /* colour bar on the right */
  double cb_w = 0, cb_labels_w = 0;
  if (has_heat)
    {
      cb_w = CLAMP (width / 40.0, 6.0, 14.0);
      Tick ticks[32];
      int nt = colorbar_ticks (plot, 6, ticks, G_N_ELEMENTS (ticks));
      for (int i = 0; i < nt; i++)
        cb_labels_w = MAX (cb_labels_w, text_width (cr, ticks[i].label));
      double label_w = (plot->colorbar_label && *plot->colorbar_label) ? font + pad * 0.5 : 0;
      right -= cb_w + 3 + pad * 0.5 + cb_labels_w + label_w + pad;
    }

  double pw = right - left, ph = bottom - top;
  if (pw < 4 || ph < 4)
    {
      /* No room for decorations: the plot alone fills what is left. */
      left = pad * 0.5;
      top = pad * 0.5;
      pw = width - pad;
      ph = height - pad;
      cb_w = 0;
      if (pw < 1 || ph < 1)
        {
          cairo_restore (cr);
          return;
        }
    }
  /* Heatmap cells on whole pixels when they are big enough: crisper. */
  if (has_heat && pw / plot->cols >= 3 && floor (pw / plot->cols) * plot->cols >= pw * 0.95)
    pw = floor (pw / plot->cols) * plot->cols;
  if (has_heat && ph / plot->rows >= 3 && floor (ph / plot->rows) * plot->rows >= ph * 0.95)
    {
      double nh = floor (ph / plot->rows) * plot->rows;
      top += floor ((ph - nh) / 2);
      ph = nh;
    }
  left = round (left);
  top = round (top);

  L->plot_x = left;
  L->plot_y = top;
  L->plot_width = pw;
  L->plot_height = ph;
  L->rows = plot->rows;
  L->cols = plot->cols;

  /* frame background (for NaN cells and line charts) */
  if (has_lines && !has_heat)
    {
      cairo_set_line_width (cr, 1);
      set_rgb (cr, P.grid);
      for (double v = ceil (R.y0 / ystep) * ystep; v <= R.y1 + ystep * 1e-9; v += ystep)
        {
          double y = top + ph - (v - R.y0) / (R.y1 - R.y0) * ph;
          cairo_move_to (cr, left, round (y) + 0.5);
          cairo_line_to (cr, left + pw, round (y) + 0.5);
        }
      cairo_stroke (cr);
    }

  if (has_heat)
    draw_heatmap_cells (plot, cr, L);

  /* line layers */
  if (has_lines)
    {
      cairo_save (cr);
      cairo_rectangle (cr, left, top, pw, ph);
      cairo_clip (cr);
      cairo_set_line_width (cr, 1.6);
      cairo_set_line_join (cr, CAIRO_LINE_JOIN_ROUND);
      for (guint i = 0; i < plot->lines->len; i++)
        {
          const RsPlotLine *line = plot->lines->pdata[i];
          guint32 c = line_palette[i % G_N_ELEMENTS (line_palette)];
          cairo_set_source_rgb (cr, ((c >> 16) & 0xff) / 255.0, ((c >> 8) & 0xff) / 255.0,
                                (c & 0xff) / 255.0);
          bool pen = false;
          for (int j = 0; j < line->n; j++)
            {
              double x = line->x[j], y = line->y[j];
              if (!isfinite (x) || !isfinite (y))
                {
                  pen = false;
                  continue;
                }
              double px = left + (x - R.x0) / (R.x1 - R.x0) * pw;
              double py = R.y_inverted ? top + (y - R.y0) / (R.y1 - R.y0) * ph
                                       : top + ph - (y - R.y0) / (R.y1 - R.y0) * ph;
              if (pen)
                cairo_line_to (cr, px, py);
              else
                cairo_move_to (cr, px, py);
              pen = true;
            }
          cairo_stroke (cr);
        }
      cairo_restore (cr);
    }

  /* frame */
  cairo_set_line_width (cr, 1);
  set_rgb (cr, P.dim);
  cairo_rectangle (cr, left - 0.5, top - 0.5, pw + 1, ph + 1);
  cairo_stroke (cr);

  /* ticks and tick labels */
  set_rgb (cr, P.fg);
  if (cb_w > 0 || !has_heat)
    {
      if (R.index_axes)
        {
          double cw = pw / plot->cols, ch = ph / plot->rows;
          for (double v = 0; v < R.y1; v += ystep)
            {
              double y = top + (v + 0.5) * ch;
              g_snprintf (buf, sizeof buf, "%d", (int) v);
              draw_text (cr, buf, left - 6, y, 1, 0.5, font);
              cairo_move_to (cr, left - 3, round (y) + 0.5);
              cairo_line_to (cr, left - 0.5, round (y) + 0.5);
            }
          xstep = ceil (MAX (1.0, nice_step (R.x1, (int) MAX (1, pw / x_steps_px))));
          /* make sure the widest label fits its step */
          g_snprintf (buf, sizeof buf, "%d", (int) R.x1);
          while (xstep * cw < text_width (cr, buf) + font && xstep < R.x1)
            xstep = ceil (nice_step (R.x1, (int) MAX (1, R.x1 / xstep - 1)));
          for (double v = 0; v < R.x1; v += xstep)
            {
              double x = left + (v + 0.5) * cw;
              g_snprintf (buf, sizeof buf, "%d", (int) v);
              draw_text (cr, buf, x, top + ph + 4, 0.5, 0, font);
              cairo_move_to (cr, round (x) + 0.5, top + ph + 0.5);
              cairo_line_to (cr, round (x) + 0.5, top + ph + 3);
            }
        }
      else
        {
          for (double v = ceil (R.y0 / ystep) * ystep; v <= R.y1 + ystep * 1e-9; v += ystep)
            {
              double y = top + ph - (v - R.y0) / (R.y1 - R.y0) * ph;
              format_value (buf, sizeof buf, v, ystep);
              draw_text (cr, buf, left - 6, y, 1, 0.5, font);
            }
          xstep = nice_step (R.x1 - R.x0, (int) MAX (1, pw / x_steps_px));
          if (R.x_integers)
            xstep = MAX (1.0, ceil (xstep));
          for (double v = ceil (R.x0 / xstep) * xstep; v <= R.x1 + xstep * 1e-9; v += xstep)
            {
              double x = left + (v - R.x0) / (R.x1 - R.x0) * pw;
              format_value (buf, sizeof buf, v, xstep);
              draw_text (cr, buf, x, top + ph + 4, 0.5, 0, font);
              cairo_move_to (cr, round (x) + 0.5, top + ph + 0.5);
              cairo_line_to (cr, round (x) + 0.5, top + ph + 3);
            }
        }
      cairo_set_line_width (cr, 1);
      set_rgb (cr, P.dim);
      cairo_stroke (cr);
      set_rgb (cr, P.fg);

      /* axis labels */
      if (plot->x_label && *plot->x_label)
        {
          g_autofree char *t = fit_text (cr, plot->x_label, width - 2 * pad);
          draw_text (cr, t, left + pw / 2, height - pad - font, 0.5, 0, font);
        }
      if (plot->y_label && *plot->y_label)
        {
          g_autofree char *t = fit_text (cr, plot->y_label, MAX (ph, 10));
          cairo_save (cr);
          cairo_translate (cr, pad, top + ph / 2);
          cairo_rotate (cr, -G_PI / 2);
          draw_text (cr, t, 0, 0, 0.5, 0, font);
          cairo_restore (cr);
        }
    }

  /* colour bar */
  if (has_heat && cb_w > 0)
    {
      double cx = round (left + pw + pad), cy = top, chh = ph;
      L->colorbar_x = cx;
      L->colorbar_y = cy;
      L->colorbar_width = cb_w;
      L->colorbar_height = chh;
      cairo_pattern_t *grad = cairo_pattern_create_linear (0, cy + chh, 0, cy);
      for (int i = 0; i <= 10; i++)
        {
          double rgb[3];
          rs_colormap_rgb (plot->colormap, i / 10.0, rgb);
          cairo_pattern_add_color_stop_rgb (grad, i / 10.0, rgb[0], rgb[1], rgb[2]);
        }
      cairo_rectangle (cr, cx, cy, cb_w, chh);
      cairo_set_source (cr, grad);
      cairo_fill (cr);
      cairo_pattern_destroy (grad);
      set_rgb (cr, P.dim);
      cairo_rectangle (cr, cx - 0.5, cy - 0.5, cb_w + 1, chh + 1);
      cairo_stroke (cr);

      set_rgb (cr, P.fg);
      Tick ticks[32];
      int nt = colorbar_ticks (plot, (int) CLAMP (chh / 28, 2, 6), ticks, G_N_ELEMENTS (ticks));
      for (int i = 0; i < nt; i++)
        {
          double y = cy + chh - (ticks[i].pos - plot->vmin) / (plot->vmax - plot->vmin) * chh;
          draw_text (cr, ticks[i].label, cx + cb_w + 3 + pad * 0.5, y, 0, 0.5, font);
          cairo_move_to (cr, cx + cb_w, round (y) + 0.5);
          cairo_line_to (cr, cx + cb_w + 3, round (y) + 0.5);
        }
      cairo_stroke (cr);
      if (plot->colorbar_label && *plot->colorbar_label)
        {
          g_autofree char *t = fit_text (cr, plot->colorbar_label, MAX (chh, 10));
          cairo_save (cr);
          cairo_translate (cr, cx + cb_w + 3 + pad + cb_labels_w + font, cy + chh / 2);
          cairo_rotate (cr, G_PI / 2);
          draw_text (cr, t, 0, 0, 0.5, 0, font);
          cairo_restore (cr);
        }
    }

  /* legend for line layers */
  if (has_lines)
    {
      double lh = font * 1.35, lw = 0;
      int n_lab = 0;
      for (guint i = 0; i < plot->lines->len; i++)
        {
          const RsPlotLine *line = plot->lines->pdata[i];
          if (line->label && *line->label)
            {
              lw = MAX (lw, text_width (cr, line->label));
              n_lab++;
            }
        }
      if (n_lab > 0 && lw + 30 < pw && n_lab * lh + 8 < ph)
        {
          double bx = left + pw - lw - 30 - 4, by = top + 4;
          cairo_set_source_rgba (cr, P.bg[0], P.bg[1], P.bg[2], 0.85);
          cairo_rectangle (cr, bx, by, lw + 30, n_lab * lh + 6);
          cairo_fill (cr);
          int row = 0;
          for (guint i = 0; i < plot->lines->len; i++)
            {
              const RsPlotLine *line = plot->lines->pdata[i];
              if (!line->label || !*line->label)
                continue;
              guint32 c = line_palette[i % G_N_ELEMENTS (line_palette)];
              double y = by + 3 + (row + 0.5) * lh;
              cairo_set_source_rgb (cr, ((c >> 16) & 0xff) / 255.0, ((c >> 8) & 0xff) / 255.0,
                                    (c & 0xff) / 255.0);
              cairo_set_line_width (cr, 2);
              cairo_move_to (cr, bx + 5, y);
              cairo_line_to (cr, bx + 21, y);
              cairo_stroke (cr);
              set_rgb (cr, P.fg);
              draw_text (cr, line->label, bx + 25, y, 0, 0.5, font);
              row++;
            }
        }
    }

  cairo_restore (cr);
}

/* ---------------------------------------------------------------- queries */

bool
rs_plot_heatmap_cell_at (const RsPlot *plot, double x, double y, int *row, int *col)
{
  const RsPlotLayout *L = &plot->layout;
  if (L->rows <= 0 || L->cols <= 0 || L->plot_width <= 0 || L->plot_height <= 0)
    return false;
  if (!(x >= L->plot_x && x < L->plot_x + L->plot_width && y >= L->plot_y && y < L->plot_y + L->plot_height))
    return false;
  int c = (int) floor ((x - L->plot_x) / L->plot_width * L->cols);
  int r = (int) floor ((y - L->plot_y) / L->plot_height * L->rows);
  c = CLAMP (c, 0, L->cols - 1);
  r = CLAMP (r, 0, L->rows - 1);
  if (row)
    *row = r;
  if (col)
    *col = c;
  return true;
}

void
rs_plot_get_layout (const RsPlot *plot, RsPlotLayout *layout)
{
  *layout = plot->layout;
}

bool
rs_plot_heatmap_range (const RsPlot *plot, double *vmin, double *vmax)
{
  if (plot->rows <= 0)
    return false;
  double lo = plot->vmin, hi = plot->vmax;
  if (plot->log_scale)
    {
      lo = pow (10, lo);
      hi = pow (10, hi);
    }
  if (vmin)
    *vmin = lo;
  if (vmax)
    *vmax = hi;
  return plot->have_range;
}

/* ---------------------------------------------------------------- export */

typedef struct {
  int fd;
  int err; /* errno of the first failed write */
} Sink;

static cairo_status_t
sink_write (void *closure, const unsigned char *data, unsigned int length)
{
  Sink *s = closure;
  while (length > 0)
    {
      ssize_t w = write (s->fd, data, length);
      if (w < 0)
        {
          if (errno == EINTR)
            continue;
          if (!s->err)
            s->err = errno;
          return CAIRO_STATUS_WRITE_ERROR;
        }
      data += w;
      length -= (unsigned) w;
    }
  return CAIRO_STATUS_SUCCESS;
}

typedef enum { FMT_PNG, FMT_SVG, FMT_PDF } Format;

gboolean
rs_plot_export (RsPlot *plot, const char *path, double width, double height, double scale, GError **error)
{
  g_return_val_if_fail (plot && path, FALSE);
  Format fmt;
  g_autofree char *lower = g_ascii_strdown (path, -1);
  if (g_str_has_suffix (lower, ".png"))
    fmt = FMT_PNG;
  else if (g_str_has_suffix (lower, ".svg"))
    fmt = FMT_SVG;
  else if (g_str_has_suffix (lower, ".pdf"))
    fmt = FMT_PDF;
  else
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                   "%s: unknown figure format (use .png, .svg or .pdf)", path);
      return FALSE;
    }
  if (!(width >= 1 && height >= 1 && width <= 100000 && height <= 100000))
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL, "%s: invalid figure size %g x %g", path, width,
                   height);
      return FALSE;
    }
  if (!(scale > 0 && scale <= 16))
    scale = 1;
  if (fmt == FMT_PNG && (double) width * scale * height * scale > 400e6)
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL, "%s: figure too large (%g x %g pixels)", path,
                   width * scale, height * scale);
      return FALSE;
    }

  g_autofree char *dir = g_path_get_dirname (path);
  g_autofree char *base = g_path_get_basename (path);
  g_autofree char *tmpl = g_strdup_printf ("%s%s.%s.XXXXXX", dir, G_DIR_SEPARATOR_S, base);
  int fd = g_mkstemp_full (tmpl, O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0)
    {
      int e = errno;
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (e), "%s: cannot write: %s", path,
                   g_strerror (e));
      return FALSE;
    }
  /* g_mkstemp makes the file 0600; give it the usual permissions. */
  mode_t mask = umask (0);
  umask (mask);
  (void) fchmod (fd, 0666 & ~mask);

  Sink sink = { fd, 0 };
  cairo_status_t status;
  if (fmt == FMT_PNG)
    {
      int pw = (int) ceil (width * scale), ph = (int) ceil (height * scale);
      cairo_surface_t *surface = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, pw, ph);
      cairo_t *cr = cairo_create (surface);
      cairo_scale (cr, scale, scale);
      rs_plot_draw (plot, cr, width, height);
      status = cairo_status (cr);
      cairo_destroy (cr);
      if (status == CAIRO_STATUS_SUCCESS)
        status = cairo_surface_write_to_png_stream (surface, sink_write, &sink);
      cairo_surface_destroy (surface);
    }
  else
    {
      cairo_surface_t *surface = fmt == FMT_SVG
                                     ? cairo_svg_surface_create_for_stream (sink_write, &sink, width, height)
                                     : cairo_pdf_surface_create_for_stream (sink_write, &sink, width, height);
      if (fmt == FMT_PDF)
        cairo_pdf_surface_set_metadata (surface, CAIRO_PDF_METADATA_CREATOR, "Routescope");
      cairo_t *cr = cairo_create (surface);
      rs_plot_draw (plot, cr, width, height);
      cairo_show_page (cr);
      status = cairo_status (cr);
      cairo_destroy (cr);
      cairo_surface_finish (surface);
      if (status == CAIRO_STATUS_SUCCESS)
        status = cairo_surface_status (surface);
      cairo_surface_destroy (surface);
    }

  gboolean ok = status == CAIRO_STATUS_SUCCESS && sink.err == 0;
  int err = sink.err;
  if (ok && fsync (fd) != 0 && errno != EINVAL)
    {
      err = errno;
      ok = FALSE;
    }
  if (close (fd) != 0 && ok)
    {
      err = errno;
      ok = FALSE;
    }
  if (ok && g_rename (tmpl, path) != 0)
    {
      err = errno;
      ok = FALSE;
    }
  if (!ok)
    {
      g_unlink (tmpl);
      if (err)
        g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (err), "%s: cannot write: %s", path,
                     g_strerror (err));
      else
        g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "%s: cannot draw the figure: %s", path,
                     cairo_status_to_string (status));
      return FALSE;
    }
  return TRUE;
}
