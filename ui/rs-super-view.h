/* rs-super-view.h: super experts (rs_super_compute).
 *
 * The largest output of every expert over the run as a heatmap (log
 * scale), the super experts outlined and listed, and a button that
 * disables them (win.disable-super-experts).
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gtk/gtk.h>

#include "rs-plot-widget.h"
#include "rs-session-worker.h"

G_BEGIN_DECLS

#define RS_TYPE_SUPER_VIEW (rs_super_view_get_type ())
G_DECLARE_FINAL_TYPE (RsSuperView, rs_super_view, RS, SUPER_VIEW, GtkWidget)

void          rs_super_view_set_model (RsSuperView *self, const RsModelInfo *info);
void          rs_super_view_trace_changed (RsSuperView *self, const RsTrace *trace, gint64 t0);
RsPlotWidget *rs_super_view_get_plot_widget (RsSuperView *self);

G_END_DECLS
