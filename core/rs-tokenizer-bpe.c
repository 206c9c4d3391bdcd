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

typedef struct {
  int32_t  rank;
  int32_t  left, right;
  int32_t  result;
  uint32_t len;         /* joined length when queued: a mismatch later means the pair is stale */
} Candidate;

static inline gboolean
candidate_first (const Candidate *a, const Candidate *b)
{
  if (a->rank != b->rank)
    return a->rank < b->rank;
  return a->left < b->left;
}

static void
heap_push (GArray *heap, Candidate c)
{
  g_array_append_val (heap, c);
  Candidate *h = (Candidate *) heap->data;
  guint i = heap->len - 1;
  while (i > 0) {
    guint parent = (i - 1) / 2;
    if (!candidate_first (&h[i], &h[parent]))
      break;
    Candidate t = h[i]; h[i] = h[parent]; h[parent] = t;
    i = parent;
  }
}

static Candidate
heap_pop (GArray *heap)
{
  Candidate *h = (Candidate *) heap->data;
  Candidate top = h[0];
  h[0] = h[heap->len - 1];
  g_array_set_size (heap, heap->len - 1);
  guint n = heap->len, i = 0;
  for (;;) {
    guint l = 2 * i + 1, r = l + 1, best = i;
    if (l < n && candidate_first (&h[l], &h[best]))
      best = l;
    if (r < n && candidate_first (&h[r], &h[best]))
      best = r;
    if (best == i)
      break;
    Candidate t = h[i]; h[i] = h[best]; h[best] = t;
    i = best;
  }
  return top;
}

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

static void
try_pair (const RsTokenizer *tok, const Symbol *symbols, int32_t left, int32_t right, GArray *heap)
{
  if (left < 0 || right < 0 || symbols[left].id < 0 || symbols[right].id < 0)
    return;
  Candidate c = { 0, left, right, -1, symbols[left].len + symbols[right].len };
  if (merge_find (&tok->merges, symbols[left].id, symbols[right].id, &c.rank, &c.result))
    heap_push (heap, c);
}

typedef struct {
  GArray  *symbols;
  GArray  *heap;
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

  GArray *heap = scratch->heap;
  g_array_set_size (heap, 0);
  for (uint32_t i = 1; i < len; i++)
    try_pair (tok, symbols, (int32_t) i - 1, (int32_t) i, heap);

  while (heap->len > 0) {
    Candidate c = heap_pop (heap);
    Symbol *left = &symbols[c.left], *right = &symbols[c.right];
    if (left->len == 0 || right->len == 0 || left->len + right->len != c.len)
      continue;
    left->id = c.result;
    left->len += right->len;
    right->len = 0;
    left->next = right->next;
    if (right->next >= 0)
      symbols[right->next].prev = c.left;
    try_pair (tok, symbols, left->prev, c.left, heap);
    try_pair (tok, symbols, c.left, left->next, heap);
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
    g_array_new (FALSE, FALSE, sizeof (Candidate)),
    g_string_new (NULL),
  };
  for (guint i = 0; i < pieces->len; i++) {
    RsSpan piece = g_array_index (pieces, RsSpan, i);
    encode_piece (tok, (const uint8_t *) text + piece.start, piece.end - piece.start, &scratch, ids);
  }
  g_array_unref (scratch.symbols);
  g_array_unref (scratch.heap);
  g_string_free (scratch.spelled, TRUE);
  return TRUE;
}
