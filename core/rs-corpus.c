/* SPDX-License-Identifier: GPL-3.0-or-later */
/* rs-corpus.c: the parallel-corpus reader. */
#include "rs-corpus.h"

#include <string.h>

#include "rs-error.h"

typedef struct {
  int64_t first;  /* index of the id's first entry in the file order */
  GArray *idx;    /* int64: its entries' indices in the file order */
} IdGroup;

static void
id_group_free (gpointer data)
{
  IdGroup *g = data;
  g_array_unref (g->idx);
  g_free (g);
}

static gboolean
fail (GError **error, const char *name, int line, const char *what)
{
  g_set_error (error, RS_ERROR, RS_ERROR_FORMAT, "%s:%d: %s", name, line, what);
  return FALSE;
}

/* Parses one line (without its end of line) into @out. */
static gboolean
parse_line (RsCorpus *c, GHashTable *lang_index, const char *name, int line, const char *s,
            size_t n, RsCorpusEntry *out, GError **error)
{
  if (memchr (s, '\0', n) != NULL)
    return fail (error, name, line, "the line contains a NUL byte");
  const char *bad;
  if (!g_utf8_validate (s, n, &bad))
    {
      g_autofree char *msg = g_strdup_printf ("invalid UTF-8 at byte %d of the line",
                                              (int) (bad - s) + 1);
      return fail (error, name, line, msg);
    }
  const char *t1 = memchr (s, '\t', n);
  const char *t2 = t1 ? memchr (t1 + 1, '\t', n - (t1 + 1 - s)) : NULL;
  if (t2 == NULL)
    return fail (error, name, line, "expected id<TAB>lang<TAB>text (fewer than three fields)");
  size_t n_id = t1 - s, n_lang = t2 - t1 - 1, n_text = n - (t2 + 1 - s);
  if (n_id == 0)
    return fail (error, name, line, "empty id");
  if (n_lang == 0)
    return fail (error, name, line, "empty language code");
  for (size_t i = 0; i < n_lang; i++)
    if (g_ascii_isspace (t1[1 + i]))
      return fail (error, name, line, "the language code contains a space");
  /* A text of blanks only is as empty as no text: nothing to route. */
  gboolean blank = TRUE;
  for (size_t i = 0; i < n_text && blank; i++)
    blank = g_ascii_isspace (t2[1 + i]);
  if (blank)
    return fail (error, name, line, "empty text");

  out->id = g_string_chunk_insert_len (c->strings, s, n_id);
  g_autofree char *lang = g_strndup (t1 + 1, n_lang);
  gpointer v;
  if (g_hash_table_lookup_extended (lang_index, lang, NULL, &v))
    out->lang = GPOINTER_TO_INT (v);
  else
    {
      out->lang = c->langs->len;
      g_ptr_array_add (c->langs, g_strdup (lang));
      g_hash_table_insert (lang_index, g_strdup (lang), GINT_TO_POINTER (out->lang));
    }
  out->text = g_string_chunk_insert_len (c->strings, t2 + 1, n_text);
  out->line = line;
  return TRUE;
}

RsCorpus *
rs_corpus_parse (const char *data, gssize len, const char *name, GError **error)
{
  g_return_val_if_fail (data != NULL || len == 0, NULL);
  if (len < 0)
    len = strlen (data);
  if (name == NULL)
    name = "<memory>";

  g_autoptr (RsCorpus) c = g_new0 (RsCorpus, 1);
  c->path = g_strdup (name);
  c->langs = g_ptr_array_new_with_free_func (g_free);
  c->entries = g_array_new (FALSE, FALSE, sizeof (RsCorpusEntry));
  c->group_start = g_array_new (FALSE, FALSE, sizeof (int64_t));
  c->strings = g_string_chunk_new (1 << 16);

  g_autoptr (GHashTable) lang_index = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  /* id -> its group; groups in order of first appearance. */
  g_autoptr (GHashTable) by_id = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GPtrArray) groups = g_ptr_array_new_with_free_func (id_group_free);
  g_autoptr (GArray) flat = g_array_new (FALSE, FALSE, sizeof (RsCorpusEntry));

  const char *p = data, *end = data + len;
  int line = 0;
  /* A UTF-8 byte order mark at the start is not part of the first id. */
  if (len >= 3 && memcmp (p, "\xEF\xBB\xBF", 3) == 0)
    p += 3;
  while (p < end)
    {
      line++;
      const char *nl = memchr (p, '\n', end - p);
      const char *le = nl ? nl : end;
      size_t n = le - p;
      if (n > 0 && p[n - 1] == '\r')
        n--;
      if (n > 0)
        {
          RsCorpusEntry e;
          if (!parse_line (c, lang_index, name, line, p, n, &e, error))
            return NULL;
          IdGroup *g = g_hash_table_lookup (by_id, e.id);
          if (g == NULL)
            {
              g = g_new0 (IdGroup, 1);
              g->first = flat->len;
              g->idx = g_array_new (FALSE, FALSE, sizeof (int64_t));
              g_ptr_array_add (groups, g);
              g_hash_table_insert (by_id, (gpointer) e.id, g);
            }
          for (guint i = 0; i < g->idx->len; i++)
            {
              const RsCorpusEntry *o = &g_array_index (flat, RsCorpusEntry,
                                                       g_array_index (g->idx, int64_t, i));
              if (o->lang == e.lang)
                {
                  g_autofree char *msg =
                    g_strdup_printf ("id '%s' has a second '%s' sentence (the first is on line %d)",
                                     e.id, (const char *) g_ptr_array_index (c->langs, e.lang),
                                     o->line);
                  fail (error, name, line, msg);
                  return NULL;
                }
            }
          int64_t at = flat->len;
          g_array_append_val (flat, e);
          g_array_append_val (g->idx, at);
        }
      p = nl ? nl + 1 : end;
    }
  if (flat->len == 0)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_FORMAT, "%s: no sentences", name);
      return NULL;
    }

  for (guint gi = 0; gi < groups->len; gi++)
    {
      IdGroup *g = g_ptr_array_index (groups, gi);
      int64_t start = c->entries->len;
      g_array_append_val (c->group_start, start);
      for (guint i = 0; i < g->idx->len; i++)
        g_array_append_val (c->entries, g_array_index (flat, RsCorpusEntry,
                                                       g_array_index (g->idx, int64_t, i)));
    }
  int64_t total = c->entries->len;
  g_array_append_val (c->group_start, total);
  return g_steal_pointer (&c);
}

RsCorpus *
rs_corpus_load (const char *path, GError **error)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  g_autoptr (GError) local = NULL;
  if (!g_file_get_contents (path, &data, &len, &local))
    {
      g_set_error (error, RS_ERROR, RS_ERROR_IO, "%s", local->message);
      return NULL;
    }
  return rs_corpus_parse (data, len, path, error);
}

void
rs_corpus_free (RsCorpus *c)
{
  if (c == NULL)
    return;
  g_free (c->path);
  if (c->langs)
    g_ptr_array_unref (c->langs);
  if (c->entries)
    g_array_unref (c->entries);
  if (c->group_start)
    g_array_unref (c->group_start);
  if (c->strings)
    g_string_chunk_free (c->strings);
  g_free (c);
}

int
rs_corpus_lang_index (const RsCorpus *c, const char *lang)
{
  for (guint i = 0; i < c->langs->len; i++)
    if (strcmp (g_ptr_array_index (c->langs, i), lang) == 0)
      return i;
  return -1;
}

int64_t
rs_corpus_n_ids (const RsCorpus *c)
{
  return (int64_t) c->group_start->len - 1;
}
