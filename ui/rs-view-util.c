/* rs-view-util.c: small helpers the views share.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "rs-view-util.h"

char *
rs_token_display_text (const RsTrace *trace, gint64 t)
{
  const char *text = t >= 0 && t < trace->n_tokens ? g_ptr_array_index (trace->token_text, t) : NULL;
  GString *s = g_string_new (NULL);
  for (const char *p = text ? text : ""; *p; p++)
    {
      if (*p == '\n')
        g_string_append (s, "↵");
      else if (*p == '\t')
        g_string_append (s, "→");
      else if (*p == ' ')
        g_string_append (s, "·");
      else
        g_string_append_c (s, *p);
    }
  return g_string_free (s, FALSE);
}

static void
run (RsRecompute *r)
{
  r->dirty = FALSE;
  r->last = g_get_monotonic_time ();
  r->func (r->widget);
  r->cost = g_get_monotonic_time () - r->last;
}

static gboolean
timeout_cb (gpointer data)
{
  RsRecompute *r = data;
  r->source = 0;
  if (r->dirty)
    run (r);
  return G_SOURCE_REMOVE;
}

static void
schedule (RsRecompute *r)
{
  if (!r->dirty || r->source != 0 || !gtk_widget_get_mapped (r->widget))
    return;
  gint64 since = (g_get_monotonic_time () - r->last) / 1000;
  gint64 interval = MAX ((gint64) r->interval_ms, 10 * r->cost / 1000);
  int wait = since >= interval ? 0 : (int) (interval - since);
  r->source = g_timeout_add (wait, timeout_cb, r);
}

static void
on_map (GtkWidget *widget, RsRecompute *r)
{
  schedule (r);
}

void
rs_recompute_init (RsRecompute *r, GtkWidget *widget, void (*func) (gpointer data), int interval_ms)
{
  r->widget = widget;
  r->func = func;
  r->interval_ms = interval_ms;
  r->last = 0;
  r->cost = 0;
  r->source = 0;
  r->dirty = TRUE;
  r->map_handler = g_signal_connect (widget, "map", G_CALLBACK (on_map), r);
}

void
rs_recompute_queue (RsRecompute *r)
{
  r->dirty = TRUE;
  schedule (r);
}

void
rs_recompute_flush (RsRecompute *r)
{
  g_clear_handle_id (&r->source, g_source_remove);
  if (r->dirty)
    run (r);
}

void
rs_recompute_clear (RsRecompute *r)
{
  g_clear_handle_id (&r->source, g_source_remove);
  if (r->widget && r->map_handler)
    g_clear_signal_handler (&r->map_handler, r->widget);
}

void
rs_recompute_attach (RsRecompute *r, RsPlotWidget *plot)
{
  g_object_set_data (G_OBJECT (plot), "rs-recompute", r);
}

void
rs_recompute_flush_plot (RsPlotWidget *plot)
{
  RsRecompute *r = g_object_get_data (G_OBJECT (plot), "rs-recompute");
  if (r != NULL)
    rs_recompute_flush (r);
}
