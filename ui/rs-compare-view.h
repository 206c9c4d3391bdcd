/* rs-compare-view.h: the run against the untouched router.
 *
 * Expert load with the interventions minus the load the untouched router
 * would have given (rs_load_compute on both selections, a diverging
 * colour map), the agreement of the two by layer, and the interventions'
 * effect on the prompt's perplexity and next-token distributions
 * (rs_ppl_compute, run on the worker).
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gtk/gtk.h>

#include "rs-plot-widget.h"
#include "rs-session-worker.h"

G_BEGIN_DECLS

#define RS_TYPE_COMPARE_VIEW (rs_compare_view_get_type ())
G_DECLARE_FINAL_TYPE (RsCompareView, rs_compare_view, RS, COMPARE_VIEW, GtkWidget)

void          rs_compare_view_set_model (RsCompareView *self, const RsModelInfo *info, RsSessionWorker *worker);
void          rs_compare_view_trace_changed (RsCompareView *self, const RsTrace *trace, gint64 t0);
RsPlotWidget *rs_compare_view_get_plot_widget (RsCompareView *self);
/* Runs the perplexity comparison on @text (as the button does with the prompt). */
void          rs_compare_view_measure (RsCompareView *self, const char *text);
/* The last measurement's text, or NULL. */
const char   *rs_compare_view_get_effect_text (RsCompareView *self);

G_END_DECLS
