/* rs-tokenizer-spm.c: SentencePiece BPE with scores ("llama" vocabularies).
 *
 * The text starts as one symbol per UTF-8 character. Repeatedly, of all
 * adjacent pairs whose joined text is a vocabulary entry, the pair with
 * the highest score is joined (ties: the leftmost). What is left are
 * vocabulary entries, except single characters that have no entry: those
 * become their bytes' <0xNN> tokens.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <string.h>

#include "rs-tokenizer-private.h"

typedef struct {
  uint32_t start, len;  /* bytes of the text; len 0 once joined into its left neighbour */
  int32_t  prev, next;  /* neighbours in the chain, -1 at the ends */
} Symbol;

typedef struct {
  float    score;
  int32_t  left, right;
  uint32_t len;         /* joined length when queued: a mismatch later means the pair is stale */
} Candidate;

/* Whether @a is joined before @b. */
static inline gboolean
candidate_first (const Candidate *a, const Candidate *b)
{
  if (a->score != b->score)
    return a->score > b->score;
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

static void
try_pair (const RsTokenizer *tok, const char *text, const Symbol *symbols,
          int32_t left, int32_t right, GArray *heap)
{
  if (left < 0 || right < 0)
    return;
  uint32_t len = symbols[left].len + symbols[right].len;
  int32_t id = rs_token_index_find (tok, text + symbols[left].start, len);
  if (id < 0)
    return;
  Candidate c = { tok->scores[id], left, right, len };
  heap_push (heap, c);
}

typedef struct {
  GArray  *symbols;
  GArray  *heap;
  gboolean previous_was_unknown;
} Scratch;

static void
encode_segment (const RsTokenizer *tok, const char *text, size_t len, Scratch *scratch, GArray *ids)
{
  g_array_set_size (scratch->symbols, 0);
  for (size_t offset = 0; offset < len;) {
    size_t n = MIN (rs_utf8_seq_len ((uint8_t) text[offset]), len - offset);
    Symbol s = { (uint32_t) offset, (uint32_t) n, (int32_t) scratch->symbols->len - 1, -1 };
    offset += n;
    s.next = offset == len ? -1 : (int32_t) scratch->symbols->len + 1;
    g_array_append_val (scratch->symbols, s);
  }
  Symbol *symbols = (Symbol *) scratch->symbols->data;

  GArray *heap = scratch->heap;
  g_array_set_size (heap, 0);
  for (guint i = 1; i < scratch->symbols->len; i++)
    try_pair (tok, text, symbols, (int32_t) i - 1, (int32_t) i, heap);

  while (heap->len > 0) {
    Candidate c = heap_pop (heap);
    Symbol *left = &symbols[c.left], *right = &symbols[c.right];
    if (left->len == 0 || right->len == 0 || left->len + right->len != c.len)
      continue;
    left->len += right->len;
    right->len = 0;
    left->next = right->next;
    if (right->next >= 0)
      symbols[right->next].prev = c.left;
    try_pair (tok, text, symbols, left->prev, c.left, heap);
    try_pair (tok, text, symbols, c.left, left->next, heap);
  }

  /* SentencePiece gives one unknown token for a run of characters it
   * cannot spell; only reached when the vocabulary has no byte tokens. */
  for (int32_t i = 0; i != -1; i = symbols[i].next) {
    const Symbol *s = &symbols[i];
    int32_t id = rs_token_index_find (tok, text + s->start, s->len);
    if (id >= 0) {
      g_array_append_val (ids, id);
      scratch->previous_was_unknown = FALSE;
      continue;
    }
    /* Joined symbols are always vocabulary entries, so this is a single
     * character without an entry: spell it in bytes. */
    gboolean spellable = TRUE;
    for (uint32_t b = 0; b < s->len; b++)
      if (tok->byte_token[(uint8_t) text[s->start + b]] < 0)
        spellable = FALSE;
    if (spellable) {
      for (uint32_t b = 0; b < s->len; b++)
        g_array_append_val (ids, tok->byte_token[(uint8_t) text[s->start + b]]);
      scratch->previous_was_unknown = FALSE;
    } else if (tok->unk >= 0 && !scratch->previous_was_unknown) {
      g_array_append_val (ids, tok->unk);
      scratch->previous_was_unknown = TRUE;
    }
  }
}

void
rs_tokenizer_spm_encode (const RsTokenizer *tok, const char *text, size_t len, GArray *ids)
{
  if (len == 0)
    return;
  Scratch scratch = {
    g_array_new (FALSE, FALSE, sizeof (Symbol)),
    g_array_new (FALSE, FALSE, sizeof (Candidate)),
    FALSE,
  };

  if (!tok->spm_pieces_start_at_space) {
    encode_segment (tok, text, len, &scratch, ids);
  } else {
    /* When no piece has a U+2581 after another character, no pair can
     * ever join across the start of a run of U+2581 that follows other
     * text: each word is merged alone, with the same result as merging
     * the whole text, and in small, cache-friendly pieces. */
    size_t start = 0;
    for (size_t i = 0; i + 3 <= len; i++) {
      if (i > start && memcmp (text + i, SPM_SPACE, 3) == 0
          && !(i >= 3 && memcmp (text + i - 3, SPM_SPACE, 3) == 0)) {
        encode_segment (tok, text + start, i - start, &scratch, ids);
        start = i;
      }
    }
    encode_segment (tok, text + start, len - start, &scratch, ids);
  }
  g_array_unref (scratch.symbols);
  g_array_unref (scratch.heap);
}
