/* rs-application.c: the GtkApplication of the workbench.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "rs-application.h"

#include <glib/gi18n.h>

#include "rs-config.h"
#include "rs-preferences-window.h"
#include "rs-resources.h"
#include "rs-settings.h"
#include "rs-window.h"

struct _RsApplication {
  GtkApplication parent_instance;
  gboolean       open_default;
  GSettings     *desktop;  /* org.gnome.desktop.interface, when installed */
};

G_DEFINE_FINAL_TYPE (RsApplication, rs_application, GTK_TYPE_APPLICATION)

void
rs_ui_init (void)
{
  static gsize done;
  if (g_once_init_enter (&done))
    {
      bindtextdomain (GETTEXT_PACKAGE, RS_LOCALEDIR);
      bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
      textdomain (GETTEXT_PACKAGE);
      rs_register_resource ();
      g_once_init_leave (&done, 1);
    }
}

RsApplication *
rs_application_new (void)
{
  rs_ui_init ();
  return g_object_new (RS_TYPE_APPLICATION, "application-id", RS_APP_ID, "flags", G_APPLICATION_HANDLES_OPEN,
                       "resource-base-path", "/io/github/routescope/Routescope", NULL);
}

void
rs_application_set_open_default (RsApplication *self, gboolean open_default)
{
  self->open_default = open_default;
}

char *
rs_application_default_model_path (void)
{
  g_autofree char *configured = g_settings_get_string (rs_settings_get (), "default-model");
  if (configured != NULL && *configured)
    return g_steal_pointer (&configured);
  const char *env = g_getenv ("ROUTESCOPE_DEMO_MODEL");
  if (env != NULL && *env)
    return g_strdup (env);
  g_autofree char *installed = g_build_filename (RS_DATADIR, "models", "routescope-demo.gguf", NULL);
  g_autofree char *source = g_build_filename (RS_SOURCE_DATADIR, "models", "routescope-demo.gguf", NULL);
  if (g_file_test (installed, G_FILE_TEST_EXISTS) || !g_file_test (source, G_FILE_TEST_EXISTS))
    return g_steal_pointer (&installed);
  return g_steal_pointer (&source);
}

static RsWindow *
get_window (RsApplication *self)
{
  GtkWindow *window = gtk_application_get_active_window (GTK_APPLICATION (self));
  if (RS_IS_WINDOW (window))
    return RS_WINDOW (window);
  return rs_window_new (GTK_APPLICATION (self));
}

/* ---- style -------------------------------------------------------------- */

static void
apply_style (RsApplication *self)
{
  g_autofree char *style = g_settings_get_string (rs_settings_get (), "style");
  gboolean dark = FALSE;
  if (g_strcmp0 (style, "dark") == 0)
    dark = TRUE;
  else if (g_strcmp0 (style, "default") == 0 && self->desktop != NULL)
    {
      g_autofree char *scheme = g_settings_get_string (self->desktop, "color-scheme");
      dark = g_strcmp0 (scheme, "prefer-dark") == 0;
    }
  GtkSettings *settings = gtk_settings_get_default ();
  if (settings != NULL)
    g_object_set (settings, "gtk-application-prefer-dark-theme", dark, NULL);
}

static GSettings *
desktop_interface_settings (void)
{
  GSettingsSchemaSource *source = g_settings_schema_source_get_default ();
  if (source == NULL)
    return NULL;
  g_autoptr (GSettingsSchema) schema = g_settings_schema_source_lookup (source, "org.gnome.desktop.interface", TRUE);
  if (schema == NULL || !g_settings_schema_has_key (schema, "color-scheme"))
    return NULL;
  return g_settings_new_full (schema, NULL, NULL);
}

/* ---- actions ------------------------------------------------------------ */

static void
on_open_response (GtkNativeDialog *dialog, int response, RsApplication *self)
{
  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr (GFile) file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog));
      g_autofree char *path = g_file_get_path (file);
      if (path)
        {
          RsWindow *window = get_window (self);
          gtk_window_present (GTK_WINDOW (window));
          rs_window_load_model (window, path);
        }
    }
  g_object_unref (dialog);
}

static void
app_open (GSimpleAction *action, GVariant *param, gpointer data)
{
  RsApplication *self = data;
  GtkWindow *parent = gtk_application_get_active_window (GTK_APPLICATION (self));
  GtkFileChooserNative *native = gtk_file_chooser_native_new (_("Open Model"), parent, GTK_FILE_CHOOSER_ACTION_OPEN,
                                                              _("_Open"), _("_Cancel"));
  GtkFileFilter *filter = gtk_file_filter_new ();
  gtk_file_filter_set_name (filter, _("GGUF models"));
  gtk_file_filter_add_pattern (filter, "*.gguf");
  gtk_file_filter_add_pattern (filter, "*.GGUF");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (native), filter);
  g_object_unref (filter);
  GtkFileFilter *all = gtk_file_filter_new ();
  gtk_file_filter_set_name (all, _("All files"));
  gtk_file_filter_add_pattern (all, "*");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (native), all);
  g_object_unref (all);
  g_signal_connect (native, "response", G_CALLBACK (on_open_response), self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (native));
}

static void
app_open_file (GSimpleAction *action, GVariant *param, gpointer data)
{
  RsWindow *window = get_window (data);
  gtk_window_present (GTK_WINDOW (window));
  rs_window_load_model (window, g_variant_get_string (param, NULL));
}

static void
app_preferences (GSimpleAction *action, GVariant *param, gpointer data)
{
  RsApplication *self = data;
  GtkWindow *parent = gtk_application_get_active_window (GTK_APPLICATION (self));
  GtkWindow *prefs = GTK_WINDOW (rs_preferences_window_new ());
  gtk_window_set_transient_for (prefs, parent);
  gtk_window_set_application (prefs, GTK_APPLICATION (self));
  gtk_window_present (prefs);
}

static void
app_about (GSimpleAction *action, GVariant *param, gpointer data)
{
  RsApplication *self = data;
  const char *authors[] = { _("The Routescope developers"), NULL };
  gtk_show_about_dialog (gtk_application_get_active_window (GTK_APPLICATION (self)),
                         "program-name", _("Routescope"),
                         "logo-icon-name", RS_APP_ID,
                         "version", RS_VERSION,
                         "comments", _("See and steer the experts of mixture-of-experts language models"),
                         "license-type", GTK_LICENSE_GPL_3_0,
                         "authors", authors,
                         "translator-credits", _("translator-credits"),
                         NULL);
}

static void
app_quit (GSimpleAction *action, GVariant *param, gpointer data)
{
  GApplication *app = data;
  GList *windows = gtk_application_get_windows (GTK_APPLICATION (app));
  for (GList *l = windows; l != NULL;)
    {
      GList *next = l->next;
      gtk_window_destroy (l->data);
      l = next;
    }
  g_application_quit (app);
}

static const GActionEntry app_actions[] = {
  { "open", app_open },
  { "open-file", app_open_file, "s" },
  { "preferences", app_preferences },
  { "about", app_about },
  { "quit", app_quit },
};

/* ---- GApplication ------------------------------------------------------- */

static void
rs_application_startup (GApplication *app)
{
  RsApplication *self = RS_APPLICATION (app);
  G_APPLICATION_CLASS (rs_application_parent_class)->startup (app);
  g_set_application_name (_("Routescope"));
  gtk_window_set_default_icon_name (RS_APP_ID);

  g_action_map_add_action_entries (G_ACTION_MAP (app), app_actions, G_N_ELEMENTS (app_actions), app);
  static const struct { const char *action; const char *accels[3]; } accels[] = {
    { "app.open", { "<Primary>o", NULL } },
    { "app.quit", { "<Primary>q", NULL } },
    { "app.preferences", { "<Primary>comma", NULL } },
    { "window.close", { "<Primary>w", NULL } },
    { "win.run", { "<Primary>Return", "<Primary>KP_Enter", NULL } },
    { "win.stop", { "<Primary>period", NULL } },
    { "win.reset", { "<Primary>n", NULL } },
    { "win.export-figure", { "<Primary>e", NULL } },
    { "win.save-trace", { "<Primary><Shift>s", NULL } },
    { "win.focus-prompt", { "<Primary>l", NULL } },
    { "win.show-view::load", { "<Alt>1", NULL } },
    { "win.show-view::token", { "<Alt>2", NULL } },
    { "win.show-view::align", { "<Alt>3", NULL } },
    { "win.show-view::super", { "<Alt>4", NULL } },
    { "win.show-view::consistency", { "<Alt>5", NULL } },
    { "win.show-view::compare", { "<Alt>6", NULL } },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (accels); i++)
    gtk_application_set_accels_for_action (GTK_APPLICATION (app), accels[i].action, accels[i].accels);

  GtkCssProvider *css = gtk_css_provider_new ();
  gtk_css_provider_load_from_resource (css, "/io/github/routescope/Routescope/style.css");
  gtk_style_context_add_provider_for_display (gdk_display_get_default (), GTK_STYLE_PROVIDER (css),
                                              GTK_STYLE_PROVIDER_PRIORITY_APPLICATION);
  g_object_unref (css);

  self->desktop = desktop_interface_settings ();
  if (self->desktop)
    g_signal_connect_object (self->desktop, "changed::color-scheme", G_CALLBACK (apply_style), self,
                             G_CONNECT_SWAPPED);
  g_signal_connect_object (rs_settings_get (), "changed::style", G_CALLBACK (apply_style), self,
                           G_CONNECT_SWAPPED);
  apply_style (self);
}

static void
rs_application_activate (GApplication *app)
{
  RsApplication *self = RS_APPLICATION (app);
  gboolean fresh = gtk_application_get_active_window (GTK_APPLICATION (app)) == NULL;
  RsWindow *window = get_window (self);
  if (fresh)
    {
      GSettings *settings = rs_settings_get ();
      g_settings_bind (settings, "window-width", window, "default-width", G_SETTINGS_BIND_DEFAULT);
      g_settings_bind (settings, "window-height", window, "default-height", G_SETTINGS_BIND_DEFAULT);
      g_settings_bind (settings, "window-maximized", window, "maximized", G_SETTINGS_BIND_DEFAULT);
    }
  gtk_window_present (GTK_WINDOW (window));
  if (!fresh || !self->open_default || rs_session_worker_get_model_info (rs_window_get_worker (window)) != NULL)
    return;
  g_autofree char *path = rs_application_default_model_path ();
  if (g_file_test (path, G_FILE_TEST_EXISTS))
    rs_window_load_model (window, path);
  else
    {
      g_autofree char *msg = g_strdup_printf (
        _("The demo model is not installed (%s). Open a model with Ctrl+O, drop a .gguf file here, or give one on "
          "the command line: routescope MODEL.gguf"), path);
      rs_window_show_error (window, msg);
    }
}

static void
rs_application_open (GApplication *app, GFile **files, int n_files, const char *hint)
{
  RsApplication *self = RS_APPLICATION (app);
  gboolean saved = self->open_default;
  self->open_default = FALSE;
  g_application_activate (app);
  self->open_default = saved;
  if (n_files > 0)
    {
      g_autofree char *path = g_file_get_path (files[0]);
      if (path)
        rs_window_load_model (get_window (self), path);
    }
}

static void
rs_application_dispose (GObject *object)
{
  RsApplication *self = RS_APPLICATION (object);
  g_clear_object (&self->desktop);
  G_OBJECT_CLASS (rs_application_parent_class)->dispose (object);
}

static void
rs_application_class_init (RsApplicationClass *klass)
{
  G_OBJECT_CLASS (klass)->dispose = rs_application_dispose;
  GApplicationClass *app_class = G_APPLICATION_CLASS (klass);
  app_class->startup = rs_application_startup;
  app_class->activate = rs_application_activate;
  app_class->open = rs_application_open;
}

static void
rs_application_init (RsApplication *self)
{
  self->open_default = TRUE;
}
