/* SPDX-License-Identifier: GPL-3.0-or-later */
/* rs-corpus.h: a parallel corpus, the input of the cross-lingual routing
 * alignment (docs/analyses.md).
 *
 * File format: UTF-8 text, one sentence per line,
 *     id<TAB>lang<TAB>text
 * An id names one meaning; the lines of an id are its translations, at
 * most one per language. The text is everything after the second tab
 * (it may itself contain tabs). Lines may end in CRLF; empty lines are
 * skipped; there are no comments. Every other deviation is an error
 * naming file:line: a missing field, an empty id, language or text, a
 * language code with spaces, invalid UTF-8, a NUL byte, an (id, lang)
 * given twice.
 */
#pragma once

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

typedef struct {
  const char *id;    /* points into the corpus' own storage */
  int         lang;  /* index into RsCorpus.langs */
  const char *text;
  int         line;  /* 1-based line in the file, for messages */
} RsCorpusEntry;

typedef struct {
  char      *path;       /* what errors name ("<memory>" for parsed text) */
  GPtrArray *langs;      /* char * [n_lang], in order of first appearance */
  GArray    *entries;    /* RsCorpusEntry, grouped by id: ids in order of first
                            appearance, within an id in file order */
  GArray    *group_start;/* int64 [n_ids + 1]: entries of id i are
                            [group_start[i], group_start[i + 1]) */
  /* private */
  GStringChunk *strings;
} RsCorpus;

RsCorpus *rs_corpus_load  (const char *path, GError **error);
/* Parses @len bytes (-1: NUL-terminated) of corpus text; @name is used in
 * messages in place of a path. */
RsCorpus *rs_corpus_parse (const char *data, gssize len, const char *name, GError **error);
void      rs_corpus_free  (RsCorpus *corpus);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RsCorpus, rs_corpus_free)

/* Index of language @lang, or -1. */
int     rs_corpus_lang_index (const RsCorpus *corpus, const char *lang);
int64_t rs_corpus_n_ids      (const RsCorpus *corpus);

G_END_DECLS
