/* rs-settings.h: the application's GSettings (io.github.routescope.Routescope).
 *
 * Installed, the schema comes from the system; run from the build tree
 * (build/app/routescope, the tests), from the schema compiled there.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

#define RS_APP_ID "io.github.routescope.Routescope"

/* The shared settings object (main thread). */
GSettings *rs_settings_get (void);

/* Binds a string (enum) key to a dropdown's selection: item i is @nicks[i]. */
void rs_settings_bind_dropdown (GSettings *settings, const char *key, GtkDropDown *dropdown,
                                const char *const *nicks);

/* Adds @path at the front of the recent models (at most 10). */
void rs_settings_add_recent_model (GSettings *settings, const char *path);

G_END_DECLS
