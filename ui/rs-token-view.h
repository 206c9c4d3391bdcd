/* rs-token-view.h: the routing of one token, layers x experts.
 *
 * Router probabilities of the selected token (after interventions) with
 * the experts that ran outlined; when interventions are active, beside
 * it the untouched router's probabilities (the engine's routing function
 * on the raw logits) with the experts it would have chosen, and the
 * layers whose selection changed.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gtk/gtk.h>

#include "rs-plot-widget.h"
#include "rs-session-worker.h"

G_BEGIN_DECLS

#define RS_TYPE_TOKEN_VIEW (rs_token_view_get_type ())
G_DECLARE_FINAL_TYPE (RsTokenView, rs_token_view, RS, TOKEN_VIEW, GtkWidget)

GtkWidget    *rs_token_view_new (void);
void          rs_token_view_set_model (RsTokenView *self, const RsModelInfo *info);
void          rs_token_view_trace_changed (RsTokenView *self, const RsTrace *trace, gint64 t0);
void          rs_token_view_set_interventions (RsTokenView *self, const RsIntervention *ivs, int n);
/* -1: none (the view shows a hint). */
void          rs_token_view_set_token (RsTokenView *self, gint64 t);
gint64        rs_token_view_get_token (RsTokenView *self);
RsPlotWidget *rs_token_view_get_plot_widget (RsTokenView *self);

G_END_DECLS
