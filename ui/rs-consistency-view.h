/* rs-consistency-view.h: local routing consistency and specialisation.
 *
 * Segment routing best performance (SRP) and segment cache best hit rate
 * (SCH) by layer for each segment length (rs_lrc_compute), and the
 * co-activation of the experts of one layer (rs_special_compute).
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gtk/gtk.h>

#include "rs-plot-widget.h"
#include "rs-session-worker.h"

G_BEGIN_DECLS

#define RS_TYPE_CONSISTENCY_VIEW (rs_consistency_view_get_type ())
G_DECLARE_FINAL_TYPE (RsConsistencyView, rs_consistency_view, RS, CONSISTENCY_VIEW, GtkWidget)

void          rs_consistency_view_set_model (RsConsistencyView *self, const RsModelInfo *info);
void          rs_consistency_view_trace_changed (RsConsistencyView *self, const RsTrace *trace, gint64 t0);
/* The SRP chart (what an export writes). */
RsPlotWidget *rs_consistency_view_get_plot_widget (RsConsistencyView *self);

G_END_DECLS
