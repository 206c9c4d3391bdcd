/* rs-preferences-window.c: the preferences.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "rs-preferences-window.h"

#include <glib/gi18n.h>

#include "rs-settings.h"

struct _RsPreferencesWindow {
  GtkWindow      parent_instance;
  GtkEntry      *model_entry;
  GtkButton     *browse_button;
  GtkButton     *clear_button;
  GtkSpinButton *threads_spin;
  GtkDropDown   *colormap_dropdown;
  GtkDropDown   *style_dropdown;
  GtkSpinButton *max_tokens_spin;
};

G_DEFINE_FINAL_TYPE (RsPreferencesWindow, rs_preferences_window, GTK_TYPE_WINDOW)

GtkWidget *
rs_preferences_window_new (void)
{
  return g_object_new (RS_TYPE_PREFERENCES_WINDOW, NULL);
}

static void
on_browse_response (GtkNativeDialog *dialog, int response, RsPreferencesWindow *self)
{
  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr (GFile) file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog));
      g_autofree char *path = g_file_get_path (file);
      if (path)
        gtk_editable_set_text (GTK_EDITABLE (self->model_entry), path);
    }
  g_object_unref (dialog);
}

static void
on_browse (RsPreferencesWindow *self)
{
  GtkFileChooserNative *native = gtk_file_chooser_native_new (_("Default Model"), GTK_WINDOW (self),
                                                              GTK_FILE_CHOOSER_ACTION_OPEN, _("_Select"), _("_Cancel"));
  GtkFileFilter *filter = gtk_file_filter_new ();
  gtk_file_filter_set_name (filter, _("GGUF models"));
  gtk_file_filter_add_pattern (filter, "*.gguf");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (native), filter);
  g_object_unref (filter);
  g_signal_connect (native, "response", G_CALLBACK (on_browse_response), self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (native));
}

static void
on_clear (RsPreferencesWindow *self)
{
  gtk_editable_set_text (GTK_EDITABLE (self->model_entry), "");
}

static void
rs_preferences_window_class_init (RsPreferencesWindowClass *klass)
{
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/io/github/routescope/Routescope/rs-preferences-window.ui");
  gtk_widget_class_bind_template_child (widget_class, RsPreferencesWindow, model_entry);
  gtk_widget_class_bind_template_child (widget_class, RsPreferencesWindow, browse_button);
  gtk_widget_class_bind_template_child (widget_class, RsPreferencesWindow, clear_button);
  gtk_widget_class_bind_template_child (widget_class, RsPreferencesWindow, threads_spin);
  gtk_widget_class_bind_template_child (widget_class, RsPreferencesWindow, colormap_dropdown);
  gtk_widget_class_bind_template_child (widget_class, RsPreferencesWindow, style_dropdown);
  gtk_widget_class_bind_template_child (widget_class, RsPreferencesWindow, max_tokens_spin);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Escape, 0, "window.close", NULL);
}

static void
rs_preferences_window_init (RsPreferencesWindow *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  GSettings *settings = rs_settings_get ();
  static const char *const cmap_nicks[] = { "viridis", "magma", NULL };
  static const char *const style_nicks[] = { "default", "light", "dark", NULL };
  g_settings_bind (settings, "default-model", self->model_entry, "text", G_SETTINGS_BIND_DEFAULT);
  g_settings_bind (settings, "threads", self->threads_spin, "value", G_SETTINGS_BIND_DEFAULT);
  g_settings_bind (settings, "max-tokens", self->max_tokens_spin, "value", G_SETTINGS_BIND_DEFAULT);
  rs_settings_bind_dropdown (settings, "colormap", self->colormap_dropdown, cmap_nicks);
  rs_settings_bind_dropdown (settings, "style", self->style_dropdown, style_nicks);
  g_signal_connect_swapped (self->browse_button, "clicked", G_CALLBACK (on_browse), self);
  g_signal_connect_swapped (self->clear_button, "clicked", G_CALLBACK (on_clear), self);
}
