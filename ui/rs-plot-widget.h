/* rs-plot-widget.h: a GtkWidget that draws an RsPlot.
 *
 * The owner fills the chart lazily: rs_plot_widget_invalidate marks it
 * stale and queues a redraw; the prepare function runs once in the next
 * frame's snapshot, however many times it was invalidated, so views
 * update at most once per frame. Heatmap cells can be hovered (tooltip
 * from the owner), clicked, and walked with the arrow keys (Enter
 * activates), which emits "cell-activated".
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gtk/gtk.h>

#include "rs-plot.h"

G_BEGIN_DECLS

#define RS_TYPE_PLOT_WIDGET (rs_plot_widget_get_type ())
G_DECLARE_FINAL_TYPE (RsPlotWidget, rs_plot_widget, RS, PLOT_WIDGET, GtkWidget)

typedef void (*RsPlotPrepareFunc) (RsPlot *plot, gpointer user_data);
/* A tooltip (markup) for a cell, or NULL for none. */
typedef char *(*RsPlotTooltipFunc) (int row, int col, gpointer user_data);

GtkWidget *rs_plot_widget_new (void);
RsPlot    *rs_plot_widget_get_plot (RsPlotWidget *self);
void       rs_plot_widget_set_prepare_func (RsPlotWidget *self, RsPlotPrepareFunc func, gpointer user_data);
void       rs_plot_widget_set_tooltip_func (RsPlotWidget *self, RsPlotTooltipFunc func, gpointer user_data);
void       rs_plot_widget_invalidate (RsPlotWidget *self);
/* Runs the prepare function now if the chart is stale (before exports). */
void       rs_plot_widget_ensure_prepared (RsPlotWidget *self);
/* The keyboard cursor / selected cell (-1, -1 for none). */
void       rs_plot_widget_set_cursor (RsPlotWidget *self, int row, int col);
gboolean   rs_plot_widget_get_cursor (RsPlotWidget *self, int *row, int *col);
/* Whether the chart follows the dark style (from GtkSettings). */
gboolean   rs_plot_widget_get_dark (RsPlotWidget *self);

/* Draws the widget's chart (and cursor) into @cr at @width x @height, as
 * its snapshot does: for offscreen tests. */
void       rs_plot_widget_draw (RsPlotWidget *self, cairo_t *cr, double width, double height);

G_END_DECLS
