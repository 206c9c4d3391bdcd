/* rs-tokenizer-bpe.c: byte-level BPE with merge ranks ("gpt2" vocabularies).
 *
 * The pre-tokenizer cuts the text into pieces; each piece starts as one
 * symbol per byte (the vocabulary spells byte b with the printable
 * character GPT-2 assigned to it), and the adjacent pair with the lowest
 * merge rank is joined until no pair has a rank (ties: the leftmost).
 * Symbols are token ids throughout: every merge names known tokens and
 * gives a known token, which loading checked.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <string.h>

#include "rs-tokenizer-private.h"

typedef struct {
  int32_t  id;          /* -1 for a byte the vocabulary cannot spell */
  uint32_t len;         /* bytes covered; 0 once joined into its left neighbour */
  int32_t  prev, next;
} Symbol;

static inline uint32_t
merge_hash (uint64_t key)
{
  key ^= key >> 33;
  key *= 0xff51afd7ed558ccdULL;
  key ^= key >> 33;
  return (uint32_t) key;
}

static gboolean
merge_find (const RsMergeIndex *merges, int32_t left, int32_t right, int32_t *rank, int32_t *result)
{
  uint64_t key = (uint64_t) (uint32_t) left << 32 | (uint32_t) right;
  for (uint32_t slot = merge_hash (key) & merges->mask;; slot = (slot + 1) & merges->mask) {
    if (merges->keys[slot] == UINT64_MAX)
      return FALSE;
    if (merges->keys[slot] == key) {
      *rank = merges->ranks[slot];
      *result = merges->results[slot];
      return TRUE;
    }
  }
}

void
rs_merge_index_insert (RsMergeIndex *merges, int32_t left, int32_t right, int32_t rank, int32_t result)
{
  uint64_t key = (uint64_t) (uint32_t) left << 32 | (uint32_t) right;
  for (uint32_t slot = merge_hash (key) & merges->mask;; slot = (slot + 1) & merges->mask) {
    if (merges->keys[slot] == key)
      return;
    if (merges->keys[slot] == UINT64_MAX) {
      merges->keys[slot] = key;
      merges->ranks[slot] = rank;
      merges->results[slot] = result;
      return;
    }
  }
}

static inline uint64_t
pair_key (const RsTokenizer *tok, const Symbol *symbols, int32_t left, int32_t *results)
{
  if (left < 0)
    return UINT64_MAX;
  int32_t right = symbols[left].next;
  if (right < 0 || symbols[left].id < 0 || symbols[right].id < 0)
    return UINT64_MAX;
  int32_t rank, result;
  if (!merge_find (&tok->merges, symbols[left].id, symbols[right].id, &rank, &result))
    return UINT64_MAX;
  results[left] = result;
  return (uint64_t) (uint32_t) rank << 32 | (uint32_t) left;
}

typedef struct {
  GArray  *symbols;
  GArray  *nodes;
  GArray  *results;
  GString *spelled;
} Scratch;

static void
encode_piece (const RsTokenizer *tok, const uint8_t *piece, uint32_t len, Scratch *scratch, GArray *ids)
{
  if (tok->ignore_merges) {
    /* A piece that is a token as a whole is kept whole, whatever the merges say. */
    g_string_truncate (scratch->spelled, 0);
    for (uint32_t i = 0; i < len; i++)
      g_string_append_len (scratch->spelled, tok->byte_char[piece[i]], tok->byte_char_len[piece[i]]);
    int32_t id = rs_token_index_find (tok, scratch->spelled->str, scratch->spelled->len);
    if (id >= 0) {
      g_array_append_val (ids, id);
      return;
    }
  }

  g_array_set_size (scratch->symbols, len);
  Symbol *symbols = (Symbol *) scratch->symbols->data;
  for (uint32_t i = 0; i < len; i++) {
    symbols[i].id = tok->byte_token[piece[i]];
    symbols[i].len = 1;
    symbols[i].prev = (int32_t) i - 1;
    symbols[i].next = i + 1 == len ? -1 : (int32_t) i + 1;
  }

  /* The pair tree (see rs-tokenizer-private.h) keyed by merge rank; the
   * token each pair makes is kept beside it. */
  RsPairTree tree;
  rs_pair_tree_init (&tree, scratch->nodes, len);
  g_array_set_size (scratch->results, len);
  int32_t *results = (int32_t *) scratch->results->data;
  for (uint32_t i = 0; i < len; i++)
    tree.nodes[tree.size + i] = pair_key (tok, symbols, (int32_t) i, results);
  rs_pair_tree_build (&tree);

  while (tree.nodes[1] != UINT64_MAX) {
    int32_t left_index = (int32_t) (uint32_t) tree.nodes[1];
    Symbol *left = &symbols[left_index];
    int32_t right_index = left->next;
    Symbol *right = &symbols[right_index];
    left->id = results[left_index];
    left->len += right->len;
    right->len = 0;
    left->next = right->next;
    if (right->next >= 0)
      symbols[right->next].prev = left_index;
    rs_pair_tree_set (&tree, (uint32_t) right_index, UINT64_MAX);
    rs_pair_tree_set (&tree, (uint32_t) left_index, pair_key (tok, symbols, left_index, results));
    if (left->prev >= 0)
      rs_pair_tree_set (&tree, (uint32_t) left->prev, pair_key (tok, symbols, left->prev, results));
  }

  /* A byte whose character is missing from the vocabulary is dropped, as
   * llama.cpp does (real byte-level vocabularies have all 256). */
  for (int32_t i = 0; i != -1; i = symbols[i].next)
    if (symbols[i].id >= 0)
      g_array_append_val (ids, symbols[i].id);
}

gboolean
rs_tokenizer_bpe_encode (const RsTokenizer *tok, const char *text, size_t len,
                         GArray *ids, GError **error)
{
  g_autoptr (GArray) pieces = g_array_new (FALSE, FALSE, sizeof (RsSpan));
  if (!rs_pretokenizer_split (tok->pre, text, len, pieces, error))
    return FALSE;

  Scratch scratch = {
    g_array_new (FALSE, FALSE, sizeof (Symbol)),
    g_array_new (FALSE, FALSE, sizeof (uint64_t)),
    g_array_new (FALSE, FALSE, sizeof (int32_t)),
    g_string_new (NULL),
  };
  for (guint i = 0; i < pieces->len; i++) {
    RsSpan piece = g_array_index (pieces, RsSpan, i);
    encode_piece (tok, (const uint8_t *) text + piece.start, piece.end - piece.start, &scratch, ids);
  }
  g_array_unref (scratch.symbols);
  g_array_unref (scratch.nodes);
  g_array_unref (scratch.results);
  g_string_free (scratch.spelled, TRUE);
  return TRUE;
}
