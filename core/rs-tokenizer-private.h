/* rs-tokenizer-private.h: what the tokenizer's source files share.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "rs-tokenizer.h"

G_BEGIN_DECLS

#define SPM_SPACE "\xe2\x96\x81" /* U+2581, SentencePiece's visible space */

/* Token attributes as llama.cpp keeps them: the stored type as a bit, plus
 * the bits its load-time fix-ups add (an end-of-turn text marked control,
 * gpt-oss's channel tokens made user-defined). */
enum {
  RS_ATTR_UNDEFINED    = 1 << 0,
  RS_ATTR_UNKNOWN      = 1 << 1,
  RS_ATTR_UNUSED       = 1 << 2,
  RS_ATTR_NORMAL       = 1 << 3,
  RS_ATTR_CONTROL      = 1 << 4,
  RS_ATTR_USER_DEFINED = 1 << 5,
  RS_ATTR_BYTE         = 1 << 6,
  RS_ATTR_EOG          = 1 << 7, /* ends generation (not a llama.cpp attribute, kept here for speed) */
};

/* Exact-text look-up of vocabulary entries: open addressing over ids. */
typedef struct {
  int32_t  *slots;  /* -1 when empty */
  uint32_t  mask;   /* number of slots - 1 (a power of two) */
} RsTokenIndex;

/* Merge table of byte-level BPE: (left id, right id) -> rank and result. */
typedef struct {
  uint64_t *keys;   /* left << 32 | right; UINT64_MAX when empty */
  int32_t  *ranks;
  int32_t  *results;
  uint32_t  mask;
} RsMergeIndex;

typedef struct _RsPretokenizer RsPretokenizer;

struct _RsTokenizer {
  char            *path;
  RsTokenizerKind  kind;
  char            *model_name;
  char            *pre_name;   /* BPE only */

  int32_t   n_vocab;
  char     *text_blob;   /* all entries, each followed by a NUL */
  uint32_t *text_offset; /* [n_vocab + 1]: entry i is text_blob[offset[i] .. offset[i+1]-1) */
  float    *scores;      /* [n_vocab] (0 when the file has none) */
  uint8_t  *types;       /* [n_vocab] RsTokenType as stored */
  uint8_t  *attrs;       /* [n_vocab] RS_ATTR_* */
  RsTokenIndex index;

  /* Special tokens that the prompt text is searched for, longest first. */
  int32_t *special_ids;
  int      n_special;

  int32_t bos, eos, eot, eom, pad, unk;
  bool    add_bos, add_eos;
  bool    add_space_prefix;   /* SPM */
  bool    spm_pieces_start_at_space; /* SPM: no piece has U+2581 after another character */
  bool    ignore_merges;      /* BPE: a pre-token that is itself a token is kept whole */

  /* SPM: id of <0xNN> (or of the one-byte text), -1 when absent.
   * BPE: id of the byte-level character standing for byte NN. */
  int32_t byte_token[256];
  /* BPE: the UTF-8 of the byte-level character for each byte, and its length. */
  char    byte_char[256][3];
  uint8_t byte_char_len[256];

  RsMergeIndex    merges;     /* BPE */
  RsPretokenizer *pre;        /* BPE */
};

static inline uint32_t
rs_token_len (const RsTokenizer *tok, int32_t id)
{
  return tok->text_offset[id + 1] - tok->text_offset[id] - 1;
}

static inline const char *
rs_token_str (const RsTokenizer *tok, int32_t id)
{
  return tok->text_blob + tok->text_offset[id];
}

int32_t rs_token_index_find (const RsTokenizer *tok, const char *text, size_t len);

/* Adds (left, right) -> (rank, result) to a table with mask + 1 slots
 * (keys UINT64_MAX when empty) unless the pair is there already: the first
 * rank of a repeated merge wins, as in llama.cpp. */
void rs_merge_index_insert (RsMergeIndex *merges, int32_t left, int32_t right, int32_t rank, int32_t result);

/* The pairs of adjacent symbols that may merge, in a tournament tree over
 * the positions of their left symbols: leaf i holds the pair starting at
 * symbol i as priority << 32 | i (UINT64_MAX when it cannot merge), each
 * node the least of its children, so the root is the pair to merge next:
 * the best priority, then the leftmost, as llama.cpp's queues order them.
 * Unlike a heap it never holds stale pairs, and merges next to each other
 * touch the same nodes, which keeps long pieces (a megabyte of spaces) fast. */
typedef struct {
  uint64_t *nodes;     /* [2 * size]; node 1 is the root, leaves from size */
  uint32_t  size;
} RsPairTree;

/* Sizes the tree for @n_leaves in @storage (a uint64_t array), all empty. */
static inline void
rs_pair_tree_init (RsPairTree *tree, GArray *storage, uint32_t n_leaves)
{
  tree->size = 1;
  while (tree->size < n_leaves)
    tree->size *= 2;
  g_array_set_size (storage, 2 * tree->size);
  tree->nodes = (uint64_t *) storage->data;
  memset (tree->nodes, 0xff, sizeof (uint64_t) * 2 * tree->size);
}

/* Fills the inner nodes once the leaves are set directly. */
static inline void
rs_pair_tree_build (RsPairTree *tree)
{
  for (uint32_t i = tree->size - 1; i >= 1; i--)
    tree->nodes[i] = MIN (tree->nodes[2 * i], tree->nodes[2 * i + 1]);
}

static inline void
rs_pair_tree_set (RsPairTree *tree, uint32_t leaf, uint64_t key)
{
  uint32_t i = tree->size + leaf;
  tree->nodes[i] = key;
  for (i >>= 1; i >= 1; i >>= 1) {
    uint64_t least = MIN (tree->nodes[2 * i], tree->nodes[2 * i + 1]);
    if (tree->nodes[i] == least)
      break;
    tree->nodes[i] = least;
  }
}

/* One piece of prompt text found by the pre-tokenizer: bytes [start, end). */
typedef struct {
  uint32_t start, end;
} RsSpan;

/* Pre-tokenizer of a BPE vocabulary, by its tokenizer.ggml.pre name. Sets
 * *ignore_merges and *add_bos_default from the family's defaults. NULL
 * with RS_ERROR_UNSUPPORTED for a name we do not know. */
RsPretokenizer *rs_pretokenizer_new (const char *name, const char *path, bool *ignore_merges,
                                     bool *add_bos_default, bool *no_bos, GError **error);
void            rs_pretokenizer_free (RsPretokenizer *pre);
/* Splits @text[0..len) into pieces appended to @spans (offsets relative to
 * @text). @text is valid UTF-8. */
gboolean rs_pretokenizer_split (const RsPretokenizer *pre, const char *text, size_t len,
                                GArray *spans, GError **error);

/* SPM encoding of one piece of text (already prefixed and escaped). */
void rs_tokenizer_spm_encode (const RsTokenizer *tok, const char *text, size_t len, GArray *ids);
/* Byte-level BPE encoding of one piece of raw text (pre-tokenized inside). */
gboolean rs_tokenizer_bpe_encode (const RsTokenizer *tok, const char *text, size_t len,
                                  GArray *ids, GError **error);

/* Length of the UTF-8 sequence led by @c: 1 for ASCII and for bytes that
 * cannot lead (as llama.cpp counts them). */
static inline size_t
rs_utf8_seq_len (uint8_t c)
{
  static const uint8_t len_by_high_nibble[16] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4 };
  return len_by_high_nibble[c >> 4];
}

/* Offset of the first byte of @text that is not valid UTF-8, or @len when
 * it all is. Accepts NUL; rejects overlong forms, surrogates and values
 * past U+10FFFF. */
size_t rs_utf8_invalid_offset (const char *text, size_t len);

G_END_DECLS
