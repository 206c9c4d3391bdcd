/* rs-align-view.h: cross-lingual routing alignment (rs_align_run).
 *
 * Runs every sentence of a parallel corpus through the model on the
 * session worker (progress, Cancel) and draws, for each language, the
 * normalised Jensen-Shannon divergence of its expert importance to the
 * reference language's by layer.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gtk/gtk.h>

#include "rs-analysis.h"
#include "rs-plot-widget.h"
#include "rs-session-worker.h"

G_BEGIN_DECLS

#define RS_TYPE_ALIGN_VIEW (rs_align_view_get_type ())
G_DECLARE_FINAL_TYPE (RsAlignView, rs_align_view, RS, ALIGN_VIEW, GtkWidget)

void                 rs_align_view_set_model (RsAlignView *self, const RsModelInfo *info, RsSessionWorker *worker);
RsPlotWidget        *rs_align_view_get_plot_widget (RsAlignView *self);
/* The parallel corpus (default: the one Routescope ships). */
void                 rs_align_view_set_corpus (RsAlignView *self, const char *path);
/* Runs the analysis over the first @max_ids ids (0: all), as Run does. */
void                 rs_align_view_run (RsAlignView *self, int max_ids);
gboolean             rs_align_view_is_running (RsAlignView *self);
/* The last result (NULL: none), and the last error message (NULL: none). */
const RsAlignResult *rs_align_view_get_result (RsAlignView *self);
const char          *rs_align_view_get_error (RsAlignView *self);
/* The corpus Routescope ships (installed, or in the source tree). */
char                *rs_align_default_corpus (void);

G_END_DECLS
