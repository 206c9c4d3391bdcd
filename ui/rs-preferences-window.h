/* rs-preferences-window.h: the preferences (GSettings): default model,
 * threads, colour map, style, tokens per run.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

#define RS_TYPE_PREFERENCES_WINDOW (rs_preferences_window_get_type ())
G_DECLARE_FINAL_TYPE (RsPreferencesWindow, rs_preferences_window, RS, PREFERENCES_WINDOW, GtkWindow)

GtkWidget *rs_preferences_window_new (void);

G_END_DECLS
