/* rs-window.h: the workbench window.
 *
 * Header bar (open, recent models, step/run/pause/stop, device and
 * threads, export), prompt editor and token strip, the views (expert
 * load, token routing), the expert inspector and a status bar. The
 * engine runs in an RsSessionWorker; everything here reads its trace.
 *
 * Window actions (see rs-window.c for the list) drive it; the functions
 * below are for the application and the tests.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gtk/gtk.h>

#include "rs-align-view.h"
#include "rs-compare-view.h"
#include "rs-consistency-view.h"
#include "rs-expert-inspector.h"
#include "rs-heatmap-view.h"
#include "rs-session-worker.h"
#include "rs-super-view.h"
#include "rs-token-strip.h"
#include "rs-token-view.h"

G_BEGIN_DECLS

#define RS_TYPE_WINDOW (rs_window_get_type ())
G_DECLARE_FINAL_TYPE (RsWindow, rs_window, RS, WINDOW, GtkApplicationWindow)

RsWindow          *rs_window_new (GtkApplication *app);

/* Opens @path (a progress page, then the model or an error in the window). */
void               rs_window_load_model (RsWindow *self, const char *path);
void               rs_window_set_prompt (RsWindow *self, const char *prompt);
char              *rs_window_get_prompt (RsWindow *self);
/* Shows @message in the window's error banner. */
void               rs_window_show_error (RsWindow *self, const char *message);
/* The error the banner shows, or NULL. */
const char        *rs_window_get_error (RsWindow *self);

/* Writes the visible view's chart (PNG, SVG or PDF by extension) at
 * @width x @height points times @scale. */
gboolean           rs_window_export_figure (RsWindow *self, const char *path, double width, double height,
                                            double scale, GError **error);

RsSessionWorker   *rs_window_get_worker (RsWindow *self);
RsHeatmapView     *rs_window_get_heatmap_view (RsWindow *self);
RsTokenView       *rs_window_get_token_view (RsWindow *self);
RsTokenStrip      *rs_window_get_token_strip (RsWindow *self);
RsExpertInspector *rs_window_get_inspector (RsWindow *self);
RsAlignView       *rs_window_get_align_view (RsWindow *self);
RsSuperView       *rs_window_get_super_view (RsWindow *self);
RsConsistencyView *rs_window_get_consistency_view (RsWindow *self);
RsCompareView     *rs_window_get_compare_view (RsWindow *self);
/* "load", "token", "align", "super", "consistency" or "compare". */
void               rs_window_set_view (RsWindow *self, const char *name);

G_END_DECLS
