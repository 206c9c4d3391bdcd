/* rs-heatmap-view.h: expert load, layers x experts, live.
 *
 * Colour by the tokens routed to each expert, its mean router
 * probability or its mean gate weight, over all, prompt or generated
 * tokens; viridis or magma with a colour bar; optional log scale. Hover
 * shows the exact numbers; a click (or Enter on the keyboard cursor)
 * emits "expert-activated".
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gtk/gtk.h>

#include "rs-plot-widget.h"
#include "rs-session-worker.h"

G_BEGIN_DECLS

#define RS_TYPE_HEATMAP_VIEW (rs_heatmap_view_get_type ())
G_DECLARE_FINAL_TYPE (RsHeatmapView, rs_heatmap_view, RS, HEATMAP_VIEW, GtkWidget)

GtkWidget    *rs_heatmap_view_new (void);
/* The model's shape (NULL: none). The info must stay valid until the next call. */
void          rs_heatmap_view_set_model (RsHeatmapView *self, const RsModelInfo *info);
/* Tokens from @t0 on changed (or were added). */
void          rs_heatmap_view_trace_changed (RsHeatmapView *self, const RsTrace *trace, gint64 t0);
RsPlotWidget *rs_heatmap_view_get_plot_widget (RsHeatmapView *self);
/* The value shown in a cell (NaN for none), with the current statistic. */
float         rs_heatmap_view_get_value (RsHeatmapView *self, int layer, int expert);

G_END_DECLS
