/* rs-application.h: the GtkApplication of the workbench.
 *
 * Application actions: app.open (file chooser), app.open-file(s),
 * app.preferences, app.about, app.quit. On activation without a model it
 * opens the default model (Preferences), else the built-in demo model.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

#define RS_TYPE_APPLICATION (rs_application_get_type ())
G_DECLARE_FINAL_TYPE (RsApplication, rs_application, RS, APPLICATION, GtkApplication)

RsApplication *rs_application_new (void);
/* Whether activation opens the default or demo model (on by default). */
void           rs_application_set_open_default (RsApplication *self, gboolean open_default);
/* The model the first start opens: the default-model setting when set,
 * else the demo model (installed, or in the source tree). Never NULL. */
char          *rs_application_default_model_path (void);
/* Registers the resources, sets up translations (idempotent). */
void           rs_ui_init (void);

G_END_DECLS
