/* rs-settings.c: the application's GSettings.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "rs-settings.h"

#include "rs-config.h"

GSettings *
rs_settings_get (void)
{
  static GSettings *settings;
  if (settings != NULL)
    return settings;
  GSettingsSchemaSource *source = g_settings_schema_source_get_default ();
  g_autoptr (GSettingsSchema) schema = source ? g_settings_schema_source_lookup (source, RS_APP_ID, TRUE) : NULL;
  if (schema == NULL)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (GSettingsSchemaSource) build = g_settings_schema_source_new_from_directory (
        RS_BUILD_SCHEMA_DIR, source, FALSE, &error);
      if (build != NULL)
        schema = g_settings_schema_source_lookup (build, RS_APP_ID, TRUE);
      if (schema == NULL)
        g_error ("the GSettings schema %s is not installed (nor built in %s)", RS_APP_ID, RS_BUILD_SCHEMA_DIR);
    }
  settings = g_settings_new_full (schema, NULL, NULL);
  return settings;
}

typedef struct {
  char **nicks;
} DropdownMap;

static gboolean
nick_to_index (GValue *value, GVariant *variant, gpointer user_data)
{
  DropdownMap *map = user_data;
  const char *nick = g_variant_get_string (variant, NULL);
  for (guint i = 0; map->nicks[i] != NULL; i++)
    if (g_strcmp0 (map->nicks[i], nick) == 0)
      {
        g_value_set_uint (value, i);
        return TRUE;
      }
  g_value_set_uint (value, 0);
  return TRUE;
}

static GVariant *
index_to_nick (const GValue *value, const GVariantType *type, gpointer user_data)
{
  DropdownMap *map = user_data;
  guint i = g_value_get_uint (value);
  if (i >= g_strv_length (map->nicks))
    return NULL;
  return g_variant_new_string (map->nicks[i]);
}

static void
map_free (gpointer data)
{
  DropdownMap *map = data;
  g_strfreev (map->nicks);
  g_free (map);
}

void
rs_settings_bind_dropdown (GSettings *settings, const char *key, GtkDropDown *dropdown,
                           const char *const *nicks)
{
  DropdownMap *map = g_new0 (DropdownMap, 1);
  map->nicks = g_strdupv ((char **) nicks);
  g_settings_bind_with_mapping (settings, key, dropdown, "selected", G_SETTINGS_BIND_DEFAULT,
                                nick_to_index, index_to_nick, map, map_free);
}

void
rs_settings_add_recent_model (GSettings *settings, const char *path)
{
  g_auto (GStrv) old = g_settings_get_strv (settings, "recent-models");
  g_autoptr (GStrvBuilder) b = g_strv_builder_new ();
  g_strv_builder_add (b, path);
  int n = 1;
  for (int i = 0; old[i] != NULL && n < 10; i++)
    if (g_strcmp0 (old[i], path) != 0)
      {
        g_strv_builder_add (b, old[i]);
        n++;
      }
  g_auto (GStrv) list = g_strv_builder_end (b);
  g_settings_set_strv (settings, "recent-models", (const char *const *) list);
}
