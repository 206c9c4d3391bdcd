/* rs-tokenizer-spm.c: SentencePiece BPE with scores ("llama" vocabularies).
 *
 * The text starts as one symbol per UTF-8 character. Repeatedly, of all
 * adjacent pairs whose joined text is a vocabulary entry, the pair with
 * the highest score is joined (ties: the leftmost), picked from the pair
 * tree of rs-tokenizer-private.h. What is left are
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

/* Pair priority for the pair tree: a higher score sorts first, so the
 * float's order is mapped onto unsigned integers and reversed. */
static inline uint32_t
score_priority (float score)
{
  if (score == 0.0f)
    score = 0.0f; /* -0 and +0 tie, as they compare equal */
  uint32_t bits;
  memcpy (&bits, &score, sizeof bits);
  uint32_t ascending = (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;
  return ~ascending;
}

/* The pair starting at symbol @left, when its joined text is a piece. */
static inline uint64_t
pair_key (const RsTokenizer *tok, const char *text, const Symbol *symbols, int32_t left)
{
  if (left < 0 || symbols[left].next < 0)
    return UINT64_MAX;
  const Symbol *l = &symbols[left], *r = &symbols[l->next];
  int32_t id = rs_token_index_find (tok, text + l->start, l->len + r->len);
  if (id < 0)
    return UINT64_MAX;
  return (uint64_t) score_priority (tok->scores[id]) << 32 | (uint32_t) left;
}

typedef struct {
  GArray  *symbols;
  GArray  *nodes;
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

  RsPairTree tree;
  rs_pair_tree_init (&tree, scratch->nodes, scratch->symbols->len);
  for (guint i = 0; i < scratch->symbols->len; i++)
    tree.nodes[tree.size + i] = pair_key (tok, text, symbols, (int32_t) i);
  rs_pair_tree_build (&tree);

  while (tree.nodes[1] != UINT64_MAX) {
    int32_t left_index = (int32_t) (uint32_t) tree.nodes[1];
    Symbol *left = &symbols[left_index];
    int32_t right_index = left->next;
    Symbol *right = &symbols[right_index];
    left->len += right->len;
    right->len = 0;
    left->next = right->next;
    if (right->next >= 0)
      symbols[right->next].prev = left_index;
    rs_pair_tree_set (&tree, (uint32_t) right_index, UINT64_MAX);
    rs_pair_tree_set (&tree, (uint32_t) left_index, pair_key (tok, text, symbols, left_index));
    if (left->prev >= 0)
      rs_pair_tree_set (&tree, (uint32_t) left->prev, pair_key (tok, text, symbols, left->prev));
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
    g_array_new (FALSE, FALSE, sizeof (uint64_t)),
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
  g_array_unref (scratch.nodes);
}
