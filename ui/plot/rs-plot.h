/* rs-plot.h: charts drawn with Cairo alone, shared by the GTK views and
 * the CLI's figure export, so a figure exported from either is identical.
 *
 * A chart (RsPlot) holds layers drawn over one x and one y axis, as
 * Sysprof's charts do: heatmap layers (a matrix of cells coloured through
 * a perceptual colour map, with a colour bar) and line layers (one
 * polyline per series, with a legend). The chart owns copies of the data.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <cairo.h>
#include <glib.h>
#include <stdbool.h>

G_BEGIN_DECLS

typedef enum {
  RS_COLORMAP_VIRIDIS,
  RS_COLORMAP_MAGMA,
  RS_COLORMAP_COOLWARM,  /* diverging, for signed values */
} RsColormap;

typedef struct _RsPlot RsPlot;

RsPlot *rs_plot_new  (void);
void    rs_plot_free (RsPlot *plot);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RsPlot, rs_plot_free)

void rs_plot_set_title   (RsPlot *plot, const char *title);
void rs_plot_set_x_label (RsPlot *plot, const char *label);
void rs_plot_set_y_label (RsPlot *plot, const char *label);
/* Dark background and light text (for the GUI's dark style). */
void rs_plot_set_dark    (RsPlot *plot, bool dark);

/* A heatmap of @rows x @cols values (row-major; row 0 drawn at the top;
 * NaN cells are left blank). @log_scale colours by log10 of positive
 * values. @colorbar_label names the quantity. Replaces any earlier heatmap. */
void rs_plot_set_heatmap (RsPlot *plot, const float *values, int rows, int cols,
                          RsColormap colormap, bool log_scale, const char *colorbar_label);
/* Cells drawn with an outline (e.g. the selected experts): @mask has
 * rows x cols entries, non-zero = outlined. NULL removes outlines. */
void rs_plot_set_heatmap_outline (RsPlot *plot, const unsigned char *mask);

/* A line series; x may be NULL for 0, 1, 2, ... Colours cycle through a
 * fixed qualitative palette. */
void rs_plot_add_line (RsPlot *plot, const char *label, const double *x, const double *y, int n);
void rs_plot_clear_lines (RsPlot *plot);

/* Draws the whole chart into @cr filling (0, 0, @width, @height). */
void rs_plot_draw (RsPlot *plot, cairo_t *cr, double width, double height);

/* The heatmap cell under (x, y) of the last drawn geometry, FALSE if none. */
bool rs_plot_heatmap_cell_at (const RsPlot *plot, double x, double y, int *row, int *col);

/* Geometry of the last rs_plot_draw (all zero before the first, or when
 * there was no room): the plot area, and the colour bar (zero width when
 * not drawn). */
typedef struct {
  double plot_x, plot_y, plot_width, plot_height;
  double colorbar_x, colorbar_y, colorbar_width, colorbar_height;
  int    rows, cols;  /* heatmap shape (0 without a heatmap) */
} RsPlotLayout;
void rs_plot_get_layout (const RsPlot *plot, RsPlotLayout *layout);

/* The heatmap's colour range in data units (positive values only with a
 * log scale); FALSE when no heatmap or no finite value. */
bool rs_plot_heatmap_range (const RsPlot *plot, double *vmin, double *vmax);

/* The colour of @t in [0, 1] (clamped) on @map, as RGB in [0, 1]. */
void rs_colormap_rgb (RsColormap map, double t, double rgb[3]);

/* Writes the chart as PNG, SVG or PDF (from the extension) at @width x
 * @height points times @scale (PNG pixels = points x scale), atomically:
 * a temporary file beside @path, then a rename; errors name the path. */
gboolean rs_plot_export (RsPlot *plot, const char *path, double width, double height,
                         double scale, GError **error);

G_END_DECLS
