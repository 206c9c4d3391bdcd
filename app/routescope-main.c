/* routescope-main.c: the GTK workbench.
 *
 *   routescope [MODEL.gguf]
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <glib/gi18n.h>
#include <locale.h>

#include "rs-application.h"

int
main (int argc, char **argv)
{
  setlocale (LC_ALL, "");
  rs_ui_init ();
  g_autoptr (RsApplication) app = rs_application_new ();
  return g_application_run (G_APPLICATION (app), argc, argv);
}
