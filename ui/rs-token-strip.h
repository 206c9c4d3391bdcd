/* rs-token-strip.h: the prompt and generated tokens as chips.
 *
 * Chips wrap like text and scroll (the strip is a GtkScrollable: it only
 * draws the visible lines). Each chip can be coloured by a value (a
 * continuous statistic through a colour map, or a category such as an
 * expert id). Clicking or the arrow keys select a token; while the
 * selection is on the last token it follows new tokens.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gtk/gtk.h>

#include "rs-plot.h"
#include "rs-trace.h"

G_BEGIN_DECLS

#define RS_TYPE_TOKEN_STRIP (rs_token_strip_get_type ())
G_DECLARE_FINAL_TYPE (RsTokenStrip, rs_token_strip, RS, TOKEN_STRIP, GtkWidget)

GtkWidget *rs_token_strip_new (void);

/* Re-reads the tokens of @trace from @t0 on (NULL: no tokens). */
void    rs_token_strip_set_trace (RsTokenStrip *self, const RsTrace *trace, gint64 t0);
/* Chip colours: @values [n] (NaN: neutral). @categorical: integer
 * categories (distinct hues); otherwise through @colormap over
 * [@lo, @hi] (NaN bounds: the values' range). @values NULL: no colours. */
void    rs_token_strip_set_values (RsTokenStrip *self, const double *values, gint64 n, gboolean categorical,
                                   RsColormap colormap, double lo, double hi);
/* How values are written in tooltips, e.g. "%.2f nats" or "expert %.0f". */
void    rs_token_strip_set_value_format (RsTokenStrip *self, const char *format);
gint64  rs_token_strip_get_selected (RsTokenStrip *self);
void    rs_token_strip_set_selected (RsTokenStrip *self, gint64 t);
gint64  rs_token_strip_get_n_tokens (RsTokenStrip *self);
/* The range the colours span (FALSE when none). */
gboolean rs_token_strip_get_range (RsTokenStrip *self, double *lo, double *hi);

/* Layout for tests: lays the chips out for @width, returns the content height. */
int      rs_token_strip_layout (RsTokenStrip *self, int width);
/* A chip's rectangle in content coordinates (FALSE for a bad index). */
gboolean rs_token_strip_get_chip_rect (RsTokenStrip *self, gint64 t, graphene_rect_t *rect);
/* The token under a point in widget coordinates, or -1. */
gint64   rs_token_strip_chip_at (RsTokenStrip *self, double x, double y);
/* Draws what the widget shows (visible lines at the current scroll). */
void     rs_token_strip_draw (RsTokenStrip *self, cairo_t *cr, int width, int height);

G_END_DECLS
