/* rs-view-util.h: small helpers the views share.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gtk/gtk.h>

#include "rs-plot-widget.h"
#include "rs-trace.h"

G_BEGIN_DECLS

/* A token's text for labels: whitespace made visible (· ↵ →). */
char *rs_token_display_text (const RsTrace *trace, gint64 t);

/* Recomputing an analysis while tokens arrive: rs_recompute_queue marks
 * it stale and, when the view is on screen, runs @func at most once per
 * @interval_ms (outside drawing, so that it may update labels); a view
 * mapped later computes then. The interval grows to ten times what the
 * last run took, so that a slow analysis of a long trace keeps the main
 * thread at least 90 % free. rs_recompute_flush runs a stale @func now
 * (before an export). The plots given get a redraw after each run. */
typedef struct {
  GtkWidget *widget;
  void     (*func) (gpointer data);
  int        interval_ms;
  gint64     last;
  gint64     cost;      /* microseconds the last run took */
  guint      source;
  gboolean   dirty;
  gulong     map_handler;
} RsRecompute;

void rs_recompute_init  (RsRecompute *r, GtkWidget *widget, void (*func) (gpointer data), int interval_ms);
void rs_recompute_queue (RsRecompute *r);
void rs_recompute_flush (RsRecompute *r);
void rs_recompute_clear (RsRecompute *r);
/* Lets exports flush the analysis behind @plot. */
void rs_recompute_attach (RsRecompute *r, RsPlotWidget *plot);
void rs_recompute_flush_plot (RsPlotWidget *plot);

G_END_DECLS
