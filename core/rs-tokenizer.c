/* rs-tokenizer.c: loading a tokenizer from GGUF metadata, special-token
 * splitting, encoding, and turning tokens back into bytes.
 *
 * Where the GGUF format leaves behaviour open, llama.cpp's choices are
 * followed, since GGUF models are converted and checked against it: the
 * default special ids, which end-of-turn texts count as control tokens,
 * and the order special tokens are searched for in a prompt.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rs-error.h"
#include "rs-tokenizer-private.h"

/* ---- UTF-8 ---- */

size_t
rs_utf8_invalid_offset (const char *text, size_t len)
{
  const uint8_t *s = (const uint8_t *) text;
  size_t i = 0;
  while (i < len) {
    uint8_t c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t n;
    uint8_t second_lo = 0x80, second_hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
      n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
      n = 3;
      if (c == 0xe0) second_lo = 0xa0;      /* overlong */
      if (c == 0xed) second_hi = 0x9f;      /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 4;
      if (c == 0xf0) second_lo = 0x90;      /* overlong */
      if (c == 0xf4) second_hi = 0x8f;      /* past U+10FFFF */
    } else
      return i;
    if (i + n > len)
      return i;
    if (s[i + 1] < second_lo || s[i + 1] > second_hi)
      return i;
    for (size_t k = 2; k < n; k++)
      if ((s[i + k] & 0xc0) != 0x80)
        return i;
    i += n;
  }
  return len;
}

static size_t
utf8_encode (uint32_t cp, char *out)
{
  if (cp < 0x80) {
    out[0] = (char) cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char) (0xc0 | (cp >> 6));
    out[1] = (char) (0x80 | (cp & 0x3f));
    return 2;
  }
  out[0] = (char) (0xe0 | (cp >> 12));
  out[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
  out[2] = (char) (0x80 | (cp & 0x3f));
  return 3;
}

/* GPT-2's byte-to-character table: printable Latin-1 bytes stand for
 * themselves, the others for U+0100 onwards in byte order. */
static uint32_t
byte_level_codepoint (int byte)
{
  if ((byte >= 0x21 && byte <= 0x7e) || (byte >= 0xa1 && byte <= 0xac) || (byte >= 0xae && byte <= 0xff))
    return (uint32_t) byte;
  uint32_t n = 0;
  for (int b = 0; b < byte; b++)
    if (!((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff)))
      n++;
  return 256 + n;
}

/* ---- vocabulary index ---- */

static inline uint32_t
text_hash (const char *text, size_t len)
{
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < len; i++) {
    h ^= (uint8_t) text[i];
    h *= 16777619u;
  }
  return h;
}

int32_t
rs_token_index_find (const RsTokenizer *tok, const char *text, size_t len)
{
  const RsTokenIndex *index = &tok->index;
  for (uint32_t slot = text_hash (text, len) & index->mask;; slot = (slot + 1) & index->mask) {
    int32_t id = index->slots[slot];
    if (id < 0)
      return -1;
    if (rs_token_len (tok, id) == len && memcmp (rs_token_str (tok, id), text, len) == 0)
      return id;
  }
}

static uint32_t
table_size_for (uint64_t n)
{
  uint32_t size = 16;
  while (size < 2 * n)
    size *= 2;
  return size;
}

/* ---- loading ---- */

static gboolean
fail (GError **error, int code, const RsGguf *gguf, const char *key, const char *format, ...) G_GNUC_PRINTF (5, 6);

static gboolean
fail (GError **error, int code, const RsGguf *gguf, const char *key, const char *format, ...)
{
  va_list args;
  va_start (args, format);
  g_autofree char *message = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, RS_ERROR, code, "%s: %s: %s", rs_gguf_path (gguf), key, message);
  return FALSE;
}

/* An array of @elem_type under @key, or NULL (with *present FALSE when
 * absent and an error when of another type). */
static const RsGgufKv *
find_array (const RsGguf *gguf, const char *key, RsGgufValueType elem_type, gboolean required,
            GError **error)
{
  const RsGgufKv *kv = rs_gguf_find_kv (gguf, key);
  if (!kv) {
    if (required)
      fail (error, RS_ERROR_FORMAT, gguf, key, "missing");
    return NULL;
  }
  if (kv->type != RS_GGUF_ARRAY || kv->arr_type != elem_type) {
    fail (error, RS_ERROR_FORMAT, gguf, key, "is %s%s%s, expected array of %s",
          rs_gguf_value_type_name (kv->type), kv->type == RS_GGUF_ARRAY ? " of " : "",
          kv->type == RS_GGUF_ARRAY ? rs_gguf_value_type_name (kv->arr_type) : "",
          rs_gguf_value_type_name (elem_type));
    return NULL;
  }
  return kv;
}

/* Reads a special token id: absent keeps *id; a negative value means
 * none; a value past the vocabulary is an error. */
static gboolean
read_special_id (const RsGguf *gguf, const char *key, int32_t n_vocab, int32_t *id, GError **error)
{
  if (!rs_gguf_find_kv (gguf, key))
    return TRUE;
  int64_t value;
  if (!rs_gguf_get_i64 (gguf, key, &value, error))
    return FALSE;
  if (value < 0) {
    *id = -1;
    return TRUE;
  }
  if (value >= n_vocab)
    return fail (error, RS_ERROR_FORMAT, gguf, key, "token id %" G_GINT64_FORMAT " is past the vocabulary (%d tokens)",
                 value, n_vocab);
  *id = (int32_t) value;
  return TRUE;
}

static gboolean
load_vocabulary (RsTokenizer *tok, const RsGguf *gguf, GError **error)
{
  const RsGgufKv *tokens = find_array (gguf, "tokenizer.ggml.tokens", RS_GGUF_STRING, TRUE, error);
  if (!tokens)
    return FALSE;
  if (tokens->n == 0 || tokens->n > INT32_MAX / 2)
    return fail (error, RS_ERROR_FORMAT, gguf, "tokenizer.ggml.tokens", "%" G_GUINT64_FORMAT " entries", tokens->n);
  tok->n_vocab = (int32_t) tokens->n;
  const char *const *strs = tokens->arr;

  /* Entries are copied so the tokenizer does not depend on the mapping. */
  GString *blob = g_string_new (NULL);
  tok->text_offset = g_new (uint32_t, tok->n_vocab + 1);
  for (int32_t i = 0; i < tok->n_vocab; i++) {
    if (blob->len > UINT32_MAX / 2) {
      g_string_free (blob, TRUE);
      return fail (error, RS_ERROR_FORMAT, gguf, "tokenizer.ggml.tokens", "entries too large");
    }
    tok->text_offset[i] = (uint32_t) blob->len;
    if (tokens->arr_str_len[i] == 0)
      /* llama.cpp's name for an empty entry, so that look-ups by text agree. */
      g_string_append_printf (blob, "[EMPTY_%d]", i);
    else
      g_string_append_len (blob, strs[i], (gssize) tokens->arr_str_len[i]);
    g_string_append_c (blob, '\0');
  }
  tok->text_offset[tok->n_vocab] = (uint32_t) blob->len;
  tok->text_blob = g_string_free (blob, FALSE);

  tok->index.mask = table_size_for ((uint64_t) tok->n_vocab) - 1;
  tok->index.slots = g_new (int32_t, tok->index.mask + 1);
  memset (tok->index.slots, 0xff, sizeof (int32_t) * (tok->index.mask + 1));
  for (int32_t id = 0; id < tok->n_vocab; id++) {
    const char *text = rs_token_str (tok, id);
    uint32_t len = rs_token_len (tok, id);
    uint32_t slot = text_hash (text, len) & tok->index.mask;
    for (;; slot = (slot + 1) & tok->index.mask) {
      int32_t other = tok->index.slots[slot];
      if (other < 0)
        break;
      if (rs_token_len (tok, other) == len && memcmp (rs_token_str (tok, other), text, len) == 0)
        return fail (error, RS_ERROR_FORMAT, gguf, "tokenizer.ggml.tokens",
                     "entry %d ('%s') repeats entry %d", id, text, other);
    }
    tok->index.slots[slot] = id;
  }

  tok->scores = g_new0 (float, tok->n_vocab);
  if (rs_gguf_find_kv (gguf, "tokenizer.ggml.scores")) {
    const RsGgufKv *scores = find_array (gguf, "tokenizer.ggml.scores", RS_GGUF_FLOAT32, FALSE, error);
    if (!scores)
      return FALSE;
    if (scores->n != (uint64_t) tok->n_vocab)
      return fail (error, RS_ERROR_FORMAT, gguf, "tokenizer.ggml.scores",
                   "%" G_GUINT64_FORMAT " entries, but tokenizer.ggml.tokens has %d", scores->n, tok->n_vocab);
    memcpy (tok->scores, scores->arr, sizeof (float) * tok->n_vocab);
  }

  tok->types = g_new (uint8_t, tok->n_vocab);
  tok->attrs = g_new (uint8_t, tok->n_vocab);
  memset (tok->types, RS_TOKEN_TYPE_NORMAL, tok->n_vocab);
  if (rs_gguf_find_kv (gguf, "tokenizer.ggml.token_type")) {
    const RsGgufKv *types = find_array (gguf, "tokenizer.ggml.token_type", RS_GGUF_INT32, FALSE, error);
    if (!types)
      return FALSE;
    if (types->n != (uint64_t) tok->n_vocab)
      return fail (error, RS_ERROR_FORMAT, gguf, "tokenizer.ggml.token_type",
                   "%" G_GUINT64_FORMAT " entries, but tokenizer.ggml.tokens has %d", types->n, tok->n_vocab);
    const int32_t *values = types->arr;
    for (int32_t i = 0; i < tok->n_vocab; i++)
      tok->types[i] = values[i] >= RS_TOKEN_TYPE_NORMAL && values[i] <= RS_TOKEN_TYPE_BYTE
                      ? (uint8_t) values[i] : RS_TOKEN_TYPE_UNDEFINED;
  }

  static const uint8_t attr_of_type[] = {
    [RS_TOKEN_TYPE_UNDEFINED] = RS_ATTR_UNDEFINED,
    [RS_TOKEN_TYPE_NORMAL] = RS_ATTR_NORMAL,
    [RS_TOKEN_TYPE_UNKNOWN] = RS_ATTR_UNKNOWN,
    [RS_TOKEN_TYPE_CONTROL] = RS_ATTR_CONTROL,
    [RS_TOKEN_TYPE_USER_DEFINED] = RS_ATTR_USER_DEFINED,
    [RS_TOKEN_TYPE_UNUSED] = RS_ATTR_UNUSED,
    [RS_TOKEN_TYPE_BYTE] = RS_ATTR_BYTE,
  };
  for (int32_t i = 0; i < tok->n_vocab; i++) {
    tok->attrs[i] = attr_of_type[tok->types[i]];
    if (tok->types[i] == RS_TOKEN_TYPE_BYTE) {
      /* Decoding reads the byte from the text, so it must be there. */
      const char *text = rs_token_str (tok, i);
      if (rs_token_len (tok, i) != 6 || strncmp (text, "<0x", 3) != 0 || !g_ascii_isxdigit (text[3])
          || !g_ascii_isxdigit (text[4]) || text[5] != '>')
        return fail (error, RS_ERROR_FORMAT, gguf, "tokenizer.ggml.token_type",
                     "token %d ('%s') is a byte token but not spelled <0xNN>", i, text);
    }
  }
  return TRUE;
}

static gboolean
load_merges (RsTokenizer *tok, const RsGguf *gguf, GError **error)
{
  const char *key = "tokenizer.ggml.merges";
  const RsGgufKv *merges = find_array (gguf, key, RS_GGUF_STRING, TRUE, error);
  if (!merges)
    return FALSE;
  if (merges->n > INT32_MAX / 2)
    return fail (error, RS_ERROR_FORMAT, gguf, key, "%" G_GUINT64_FORMAT " entries", merges->n);

  tok->merges.mask = table_size_for (merges->n) - 1;
  tok->merges.keys = g_new (uint64_t, tok->merges.mask + 1);
  tok->merges.ranks = g_new (int32_t, tok->merges.mask + 1);
  tok->merges.results = g_new (int32_t, tok->merges.mask + 1);
  memset (tok->merges.keys, 0xff, sizeof (uint64_t) * (tok->merges.mask + 1));

  const char *const *strs = merges->arr;
  g_autoptr (GString) joined = g_string_new (NULL);
  for (int32_t rank = 0; rank < (int32_t) merges->n; rank++) {
    const char *merge = strs[rank];
    size_t len = merges->arr_str_len[rank];
    /* "left right"; the search starts after the first byte, as llama.cpp's does. */
    const char *space = len > 1 ? memchr (merge + 1, ' ', len - 1) : NULL;
    if (!space)
      return fail (error, RS_ERROR_FORMAT, gguf, key, "entry %d ('%s') is not two tokens separated by a space",
                   rank, merge);
    size_t left_len = (size_t) (space - merge), right_len = len - left_len - 1;
    int32_t left = rs_token_index_find (tok, merge, left_len);
    int32_t right = rs_token_index_find (tok, space + 1, right_len);
    if (left < 0 || right < 0)
      return fail (error, RS_ERROR_FORMAT, gguf, key, "entry %d ('%s') names a token missing from tokenizer.ggml.tokens ('%.*s')",
                   rank, merge, (int) (left < 0 ? left_len : right_len), left < 0 ? merge : space + 1);
    g_string_truncate (joined, 0);
    g_string_append_len (joined, merge, (gssize) left_len);
    g_string_append_len (joined, space + 1, (gssize) right_len);
    int32_t result = rs_token_index_find (tok, joined->str, joined->len);
    if (result < 0)
      return fail (error, RS_ERROR_FORMAT, gguf, key, "entry %d ('%s') makes '%s', which is missing from tokenizer.ggml.tokens",
                   rank, merge, joined->str);
    rs_merge_index_insert (&tok->merges, left, right, rank, result);
  }
  return TRUE;
}

static int32_t
find_first_text (const RsTokenizer *tok, const char *const *texts)
{
  for (; *texts; texts++) {
    int32_t id = rs_token_index_find (tok, *texts, strlen (*texts));
    if (id >= 0)
      return id;
  }
  return -1;
}

/* The fix-ups llama.cpp makes to special tokens at load time, by text:
 * models' converters often leave end-of-turn tokens typed normal, and
 * llama.cpp makes them control (so they parse in prompts and render only
 * on request) and ends generation on them. */
static gboolean
load_special_tokens (RsTokenizer *tok, const RsGguf *gguf, bool no_bos, GError **error)
{
  static const char *const eot_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<EOT>", "_<EOT>", "[EOT]", "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
    "<end_of_utterance>", NULL
  };
  static const char *const eom_texts[] = { "<|eom_id|>", NULL };
  static const char *const fim_pre_texts[] = {
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>",
    "<PRE>", SPM_SPACE "<PRE>", "<|code_prefix|>", "<|prefix|>", NULL
  };
  static const char *const fim_suf_texts[] = {
    "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81hole\xef\xbd\x9c>",
    "<SUF>", SPM_SPACE "<SUF>", "<|code_suffix|>", "<|suffix|>", NULL
  };
  static const char *const fim_mid_texts[] = {
    "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>",
    "<MID>", SPM_SPACE "<MID>", "<|code_middle|>", "<|middle|>", NULL
  };
  static const char *const fim_pad_texts[] = { "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL };
  static const char *const fim_rep_texts[] = {
    "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", NULL
  };
  static const char *const fim_sep_texts[] = { "<|file_sep|>", NULL };
  static const char *const eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>", "[e~[", NULL
  };

  /* Defaults of llama.cpp when the keys are absent. */
  if (tok->kind == RS_TOKENIZER_SPM) {
    tok->bos = 1; tok->eos = 2; tok->unk = 0;
  } else {
    tok->bos = 11; tok->eos = 11; tok->unk = -1;
  }
  if (no_bos)
    tok->bos = -1;
  tok->eot = tok->eom = tok->pad = -1;
  if (tok->bos >= tok->n_vocab) tok->bos = -1;
  if (tok->eos >= tok->n_vocab) tok->eos = -1;
  if (tok->unk >= tok->n_vocab) tok->unk = -1;

  int32_t fim_pre = -1, fim_suf = -1, fim_mid = -1, fim_pad = -1, fim_rep = -1, fim_sep = -1;
  const struct { const char *key; int32_t *id; } keys[] = {
    { "tokenizer.ggml.bos_token_id", &tok->bos },
    { "tokenizer.ggml.eos_token_id", &tok->eos },
    { "tokenizer.ggml.eot_token_id", &tok->eot },
    { "tokenizer.ggml.eom_token_id", &tok->eom },
    { "tokenizer.ggml.unknown_token_id", &tok->unk },
    { "tokenizer.ggml.padding_token_id", &tok->pad },
    { "tokenizer.ggml.fim_pre_token_id", &fim_pre },
    { "tokenizer.ggml.fim_suf_token_id", &fim_suf },
    { "tokenizer.ggml.fim_mid_token_id", &fim_mid },
    { "tokenizer.ggml.fim_pad_token_id", &fim_pad },
    { "tokenizer.ggml.fim_rep_token_id", &fim_rep },
    { "tokenizer.ggml.fim_sep_token_id", &fim_sep },
  };
  for (size_t i = 0; i < G_N_ELEMENTS (keys); i++)
    if (!read_special_id (gguf, keys[i].key, tok->n_vocab, keys[i].id, error))
      return FALSE;

  bool flag;
  if (!rs_gguf_get_bool_or (gguf, "tokenizer.ggml.add_bos_token", tok->add_bos, &flag, error))
    return FALSE;
  tok->add_bos = flag;
  if (!rs_gguf_get_bool_or (gguf, "tokenizer.ggml.add_eos_token", tok->add_eos, &flag, error))
    return FALSE;
  tok->add_eos = flag;
  if (tok->add_bos && tok->bos < 0)
    return fail (error, RS_ERROR_FORMAT, gguf, "tokenizer.ggml.add_bos_token", "set, but the model has no BOS token");
  if (tok->add_eos && tok->eos < 0)
    return fail (error, RS_ERROR_FORMAT, gguf, "tokenizer.ggml.add_eos_token", "set, but the model has no EOS token");

  /* Ids found by text become control tokens; ids given by keys stay as typed. */
  struct { int32_t *id; const char *const *texts; } by_text[] = {
    { &tok->eot, eot_texts }, { &tok->eom, eom_texts }, { &fim_pre, fim_pre_texts },
    { &fim_suf, fim_suf_texts }, { &fim_mid, fim_mid_texts }, { &fim_pad, fim_pad_texts },
    { &fim_rep, fim_rep_texts }, { &fim_sep, fim_sep_texts },
  };
  for (size_t i = 0; i < G_N_ELEMENTS (by_text); i++) {
    if (*by_text[i].id >= 0)
      continue;
    *by_text[i].id = find_first_text (tok, by_text[i].texts);
    if (*by_text[i].id >= 0)
      tok->attrs[*by_text[i].id] |= RS_ATTR_CONTROL;
  }

  for (const char *const *text = eog_texts; *text; text++) {
    int32_t id = rs_token_index_find (tok, *text, strlen (*text));
    if (id >= 0)
      tok->attrs[id] |= RS_ATTR_EOG | RS_ATTR_CONTROL;
  }
  const int32_t eog_ids[] = { fim_pad, fim_rep, fim_sep, tok->eos, tok->eot, tok->eom };
  for (size_t i = 0; i < G_N_ELEMENTS (eog_ids); i++)
    if (eog_ids[i] >= 0)
      tok->attrs[eog_ids[i]] |= RS_ATTR_EOG;

  /* gpt-oss's channel tokens are shown even when special tokens are not. */
  static const char *const harmony_texts[] = { "<|channel|>", "<|message|>", "<|start|>", "<|constrain|>", NULL };
  for (const char *const *text = harmony_texts; *text; text++) {
    int32_t id = rs_token_index_find (tok, *text, strlen (*text));
    if (id >= 0)
      tok->attrs[id] = RS_ATTR_USER_DEFINED | (tok->attrs[id] & RS_ATTR_EOG);
  }
  /* With <|return|> and <|call|> (harmony) or <|calls|> and <|flush|>,
   * <|end|> ends a message, not generation. */
  int32_t end_id = rs_token_index_find (tok, "<|end|>", 7);
  if (end_id >= 0 && (tok->attrs[end_id] & RS_ATTR_EOG)) {
    int32_t ret = rs_token_index_find (tok, "<|return|>", 10), call = rs_token_index_find (tok, "<|call|>", 8);
    int32_t calls = rs_token_index_find (tok, "<|calls|>", 9), flush = rs_token_index_find (tok, "<|flush|>", 9);
    gboolean is_eog_ret = ret >= 0 && (tok->attrs[ret] & RS_ATTR_EOG);
    gboolean is_eog_call = (call >= 0 && (tok->attrs[call] & RS_ATTR_EOG)) || (calls >= 0 && (tok->attrs[calls] & RS_ATTR_EOG));
    gboolean is_eog_flush = flush >= 0 && (tok->attrs[flush] & RS_ATTR_EOG);
    if ((is_eog_ret && is_eog_call) || (is_eog_call && is_eog_flush))
      tok->attrs[end_id] = RS_ATTR_USER_DEFINED;
  }
  return TRUE;
}

static const RsTokenizer *sort_tokenizer; /* qsort has no user data; guarded by sort_lock */
G_LOCK_DEFINE_STATIC (sort_lock);

static int
compare_longest_first (const void *a, const void *b)
{
  int32_t x = *(const int32_t *) a, y = *(const int32_t *) b;
  uint32_t lx = rs_token_len (sort_tokenizer, x), ly = rs_token_len (sort_tokenizer, y);
  if (lx != ly)
    return lx > ly ? -1 : 1;
  return x < y ? -1 : x > y;
}

static void
build_special_list (RsTokenizer *tok)
{
  GArray *ids = g_array_new (FALSE, FALSE, sizeof (int32_t));
  for (int32_t id = 0; id < tok->n_vocab; id++)
    if (tok->attrs[id] & (RS_ATTR_CONTROL | RS_ATTR_USER_DEFINED | RS_ATTR_UNKNOWN))
      g_array_append_val (ids, id);
  G_LOCK (sort_lock);
  sort_tokenizer = tok;
  qsort (ids->data, ids->len, sizeof (int32_t), compare_longest_first);
  sort_tokenizer = NULL;
  G_UNLOCK (sort_lock);
  tok->n_special = (int) ids->len;
  tok->special_ids = (int32_t *) g_array_free (ids, FALSE);
}

RsTokenizer *
rs_tokenizer_new_from_gguf (const RsGguf *gguf, GError **error)
{
  g_return_val_if_fail (gguf != NULL, NULL);
  g_autoptr (RsTokenizer) tok = g_new0 (RsTokenizer, 1);
  tok->path = g_strdup (rs_gguf_path (gguf));

  const char *model;
  if (!rs_gguf_get_str (gguf, "tokenizer.ggml.model", &model, error))
    return NULL;
  if (strcmp (model, "llama") == 0)
    tok->kind = RS_TOKENIZER_SPM;
  else if (strcmp (model, "gpt2") == 0)
    tok->kind = RS_TOKENIZER_BPE;
  else {
    fail (error, RS_ERROR_UNSUPPORTED, gguf, "tokenizer.ggml.model", "unsupported tokenizer model '%s'", model);
    return NULL;
  }
  tok->model_name = g_strdup (model);

  if (!load_vocabulary (tok, gguf, error))
    return NULL;

  bool no_bos = false;
  if (tok->kind == RS_TOKENIZER_SPM) {
    tok->add_bos = true;
    tok->add_eos = false;
    bool prefix;
    if (!rs_gguf_get_bool_or (gguf, "tokenizer.ggml.add_space_prefix", true, &prefix, error))
      return NULL;
    tok->add_space_prefix = prefix;
    for (int b = 0; b < 256; b++) {
      char hex[7], one[1] = { (char) b };
      g_snprintf (hex, sizeof hex, "<0x%02X>", b);
      tok->byte_token[b] = rs_token_index_find (tok, hex, 6);
      if (tok->byte_token[b] < 0)
        tok->byte_token[b] = rs_token_index_find (tok, one, 1);
    }
    tok->spm_pieces_start_at_space = true;
    for (int32_t id = 0; id < tok->n_vocab && tok->spm_pieces_start_at_space; id++) {
      const char *text = rs_token_str (tok, id);
      uint32_t len = rs_token_len (tok, id);
      for (uint32_t i = 1; i + 3 <= len; i++)
        if (memcmp (text + i, SPM_SPACE, 3) == 0 && !(i >= 3 && memcmp (text + i - 3, SPM_SPACE, 3) == 0)) {
          tok->spm_pieces_start_at_space = false;
          break;
        }
    }
  } else {
    const char *pre = "default";
    if (rs_gguf_find_kv (gguf, "tokenizer.ggml.pre") && !rs_gguf_get_str (gguf, "tokenizer.ggml.pre", &pre, error))
      return NULL;
    tok->pre_name = g_strdup (pre);
    bool ignore_merges, add_bos_default;
    tok->pre = rs_pretokenizer_new (pre, tok->path, &ignore_merges, &add_bos_default, &no_bos, error);
    if (!tok->pre)
      return NULL;
    tok->ignore_merges = ignore_merges;
    tok->add_bos = add_bos_default;
    tok->add_eos = false;
    for (int b = 0; b < 256; b++) {
      tok->byte_char_len[b] = (uint8_t) utf8_encode (byte_level_codepoint (b), tok->byte_char[b]);
      tok->byte_token[b] = rs_token_index_find (tok, tok->byte_char[b], tok->byte_char_len[b]);
    }
    if (!load_merges (tok, gguf, error))
      return NULL;
  }

  if (!load_special_tokens (tok, gguf, no_bos, error))
    return NULL;
  build_special_list (tok);
  return g_steal_pointer (&tok);
}

void
rs_tokenizer_free (RsTokenizer *tok)
{
  if (!tok)
    return;
  g_free (tok->path);
  g_free (tok->model_name);
  g_free (tok->pre_name);
  g_free (tok->text_blob);
  g_free (tok->text_offset);
  g_free (tok->scores);
  g_free (tok->types);
  g_free (tok->attrs);
  g_free (tok->index.slots);
  g_free (tok->special_ids);
  g_free (tok->merges.keys);
  g_free (tok->merges.ranks);
  g_free (tok->merges.results);
  rs_pretokenizer_free (tok->pre);
  g_free (tok);
}

/* ---- queries ---- */

RsTokenizerKind rs_tokenizer_kind (const RsTokenizer *tok) { return tok->kind; }
const char *rs_tokenizer_model_name (const RsTokenizer *tok) { return tok->model_name; }
const char *rs_tokenizer_pre_name (const RsTokenizer *tok) { return tok->pre_name; }
const char *rs_tokenizer_path (const RsTokenizer *tok) { return tok->path; }
int32_t rs_tokenizer_n_vocab (const RsTokenizer *tok) { return tok->n_vocab; }
int32_t rs_tokenizer_bos (const RsTokenizer *tok) { return tok->bos; }
int32_t rs_tokenizer_eos (const RsTokenizer *tok) { return tok->eos; }
int32_t rs_tokenizer_eot (const RsTokenizer *tok) { return tok->eot; }
int32_t rs_tokenizer_pad (const RsTokenizer *tok) { return tok->pad; }
int32_t rs_tokenizer_unk (const RsTokenizer *tok) { return tok->unk; }
gboolean rs_tokenizer_adds_bos (const RsTokenizer *tok) { return tok->add_bos; }
gboolean rs_tokenizer_adds_eos (const RsTokenizer *tok) { return tok->add_eos; }

static inline gboolean
valid_id (const RsTokenizer *tok, int32_t id)
{
  return id >= 0 && id < tok->n_vocab;
}

RsTokenType
rs_tokenizer_token_type (const RsTokenizer *tok, int32_t id)
{
  return valid_id (tok, id) ? (RsTokenType) tok->types[id] : RS_TOKEN_TYPE_UNDEFINED;
}

gboolean
rs_tokenizer_is_control (const RsTokenizer *tok, int32_t id)
{
  return valid_id (tok, id) && (tok->attrs[id] & RS_ATTR_CONTROL);
}

gboolean
rs_tokenizer_is_eog (const RsTokenizer *tok, int32_t id)
{
  return valid_id (tok, id) && (tok->attrs[id] & RS_ATTR_EOG);
}

const char *
rs_tokenizer_token_text (const RsTokenizer *tok, int32_t id, gsize *len)
{
  if (!valid_id (tok, id))
    return NULL;
  if (len)
    *len = rs_token_len (tok, id);
  return rs_token_str (tok, id);
}

int32_t
rs_tokenizer_find_token (const RsTokenizer *tok, const char *text, gssize len)
{
  return rs_token_index_find (tok, text, len < 0 ? strlen (text) : (size_t) len);
}

/* ---- encoding ---- */

typedef struct {
  int32_t  token;       /* a special token, or -1 for text */
  uint32_t start, end;  /* the text's bytes */
} Fragment;

/* Splits @text at the special tokens it contains, as llama.cpp does: the
 * special tokens are taken longest first, and each one is found left to
 * right in whatever text the longer ones left. */
static GArray *
split_special (const RsTokenizer *tok, const char *text, size_t len, gboolean parse_special)
{
  GArray *fragments = g_array_new (FALSE, FALSE, sizeof (Fragment));
  if (len == 0)
    return fragments;
  Fragment whole = { -1, 0, (uint32_t) len };
  g_array_append_val (fragments, whole);
  if (tok->n_special == 0)
    return fragments;

  /* Which byte pairs occur in the text: most special tokens can be ruled
   * out without searching for them. */
  g_autofree uint64_t *pairs = g_new0 (uint64_t, 65536 / 64);
  for (size_t i = 0; i + 1 < len; i++) {
    unsigned pair = (uint8_t) text[i] << 8 | (uint8_t) text[i + 1];
    pairs[pair / 64] |= (uint64_t) 1 << (pair % 64);
  }

  GArray *next = g_array_new (FALSE, FALSE, sizeof (Fragment));
  for (int s = 0; s < tok->n_special; s++) {
    int32_t id = tok->special_ids[s];
    if (!parse_special && (tok->attrs[id] & (RS_ATTR_CONTROL | RS_ATTR_UNKNOWN)))
      continue;
    const char *needle = rs_token_str (tok, id);
    size_t needle_len = rs_token_len (tok, id);
    gboolean possible = TRUE;
    for (size_t i = 0; i + 1 < needle_len && possible; i++) {
      unsigned pair = (uint8_t) needle[i] << 8 | (uint8_t) needle[i + 1];
      possible = (pairs[pair / 64] >> (pair % 64)) & 1;
    }
    if (!possible)
      continue;

    gboolean found = FALSE;
    g_array_set_size (next, 0);
    for (guint f = 0; f < fragments->len; f++) {
      Fragment frag = g_array_index (fragments, Fragment, f);
      if (frag.token >= 0) {
        g_array_append_val (next, frag);
        continue;
      }
      uint32_t pos = frag.start;
      for (;;) {
        const char *hit = memmem (text + pos, frag.end - pos, needle, needle_len);
        if (!hit)
          break;
        uint32_t at = (uint32_t) (hit - text);
        if (at > pos) {
          Fragment left = { -1, pos, at };
          g_array_append_val (next, left);
        }
        Fragment special = { id, at, at + (uint32_t) needle_len };
        g_array_append_val (next, special);
        pos = at + (uint32_t) needle_len;
        found = TRUE;
      }
      if (pos < frag.end) {
        Fragment rest = { -1, pos, frag.end };
        g_array_append_val (next, rest);
      }
    }
    if (found) {
      GArray *swap = fragments;
      fragments = next;
      next = swap;
    }
  }
  g_array_unref (next);
  return fragments;
}

gboolean
rs_tokenizer_encode (const RsTokenizer *tok, const char *text, gssize len,
                     RsTokenizeFlags flags, GArray *ids, GError **error)
{
  g_return_val_if_fail (tok != NULL && ids != NULL, FALSE);
  g_return_val_if_fail (text != NULL || len == 0, FALSE);
  size_t n = len < 0 ? strlen (text) : (size_t) len;
  if (n > UINT32_MAX / 4) {
    g_set_error (error, RS_ERROR, RS_ERROR_RESOURCE, "text of %zu bytes is too long to tokenize", n);
    return FALSE;
  }
  size_t bad = rs_utf8_invalid_offset (text, n);
  if (bad < n) {
    g_set_error (error, RS_ERROR, RS_ERROR_INVALID,
                 "invalid UTF-8 at byte offset %zu (byte 0x%02X)", bad, (uint8_t) text[bad]);
    return FALSE;
  }

  gboolean add_special = (flags & RS_TOKENIZE_ADD_SPECIAL) != 0;
  g_autoptr (GArray) fragments = split_special (tok, text, n, (flags & RS_TOKENIZE_PARSE_SPECIAL) != 0);
  g_autoptr (GArray) out = g_array_new (FALSE, FALSE, sizeof (int32_t));

  if (add_special && tok->add_bos && tok->bos >= 0)
    g_array_append_val (out, tok->bos);

  if (tok->kind == RS_TOKENIZER_SPM) {
    /* SentencePiece sees each run of text alone, with a space in front when
     * it starts the prompt or follows a special token. */
    g_autoptr (GString) escaped = g_string_new (NULL);
    gboolean after_special = TRUE;
    for (guint f = 0; f < fragments->len; f++) {
      const Fragment *frag = &g_array_index (fragments, Fragment, f);
      if (frag->token >= 0) {
        g_array_append_val (out, frag->token);
        after_special = TRUE;
        continue;
      }
      g_string_truncate (escaped, 0);
      if (tok->add_space_prefix && after_special)
        g_string_append (escaped, SPM_SPACE);
      for (uint32_t i = frag->start; i < frag->end; i++) {
        if (text[i] == ' ')
          g_string_append (escaped, SPM_SPACE);
        else
          g_string_append_c (escaped, text[i]);
      }
      rs_tokenizer_spm_encode (tok, escaped->str, escaped->len, out);
      after_special = FALSE;
    }
  } else {
    for (guint f = 0; f < fragments->len; f++) {
      const Fragment *frag = &g_array_index (fragments, Fragment, f);
      if (frag->token >= 0)
        g_array_append_val (out, frag->token);
      else if (!rs_tokenizer_bpe_encode (tok, text + frag->start, frag->end - frag->start, out, error))
        return FALSE;
    }
  }

  if (add_special && tok->add_eos && tok->eos >= 0)
    g_array_append_val (out, tok->eos);

  g_array_append_vals (ids, out->data, out->len);
  return TRUE;
}

/* ---- decoding ---- */

/* The byte a byte-level character stands for, or -1. */
static int
byte_level_byte (uint32_t cp)
{
  static int16_t table[324];
  static gsize ready;
  if (g_once_init_enter (&ready)) {
    for (int i = 0; i < 324; i++)
      table[i] = -1;
    for (int b = 0; b < 256; b++)
      table[byte_level_codepoint (b)] = (int16_t) b;
    g_once_init_leave (&ready, 1);
  }
  return cp < 324 ? table[cp] : -1;
}

void
rs_tokenizer_token_bytes (const RsTokenizer *tok, int32_t id, RsTokenBytesFlags flags, GString *out)
{
  if (!valid_id (tok, id))
    return;
  uint8_t attr = tok->attrs[id];
  const char *text = rs_token_str (tok, id);
  uint32_t len = rs_token_len (tok, id);

  if (attr & (RS_ATTR_CONTROL | RS_ATTR_UNKNOWN)) {
    if (flags & RS_TOKEN_BYTES_SPECIAL)
      g_string_append_len (out, text, len);
    return;
  }
  if (attr & RS_ATTR_USER_DEFINED) {
    g_string_append_len (out, text, len);
    return;
  }
  if (attr & RS_ATTR_NORMAL) {
    if (tok->kind == RS_TOKENIZER_SPM) {
      for (uint32_t i = 0; i < len;) {
        if (i + 3 <= len && memcmp (text + i, SPM_SPACE, 3) == 0) {
          g_string_append_c (out, ' ');
          i += 3;
        } else
          g_string_append_c (out, text[i++]);
      }
      return;
    }
    /* Byte-level: each character is one byte. A character outside the
     * table (a hand-made vocabulary) is copied as it is. */
    for (uint32_t i = 0; i < len;) {
      size_t n = MIN (rs_utf8_seq_len ((uint8_t) text[i]), len - i);
      gunichar cp = g_utf8_get_char_validated (text + i, (gssize) n);
      int byte = cp < 0x110000 ? byte_level_byte (cp) : -1;
      if (byte >= 0)
        g_string_append_c (out, (char) byte);
      else
        g_string_append_len (out, text + i, (gssize) n);
      i += (uint32_t) n;
    }
    return;
  }
  if (attr & RS_ATTR_BYTE)
    g_string_append_c (out, (char) strtol ((char[3]) { text[3], text[4], 0 }, NULL, 16));
  /* Unused and undefined tokens stand for nothing. */
}

void
rs_tokenizer_decode (const RsTokenizer *tok, const int32_t *ids, gsize n_ids,
                     RsTokenBytesFlags flags, GString *out)
{
  for (gsize i = 0; i < n_ids; i++)
    rs_tokenizer_token_bytes (tok, ids[i], flags, out);
}

/* ---- streaming detokeniser ---- */

struct _RsDetokenizer {
  const RsTokenizer *tok;
  RsTokenBytesFlags  flags;
  guint8             pending[4];
  gsize              n_pending;
  gsize              needed;      /* length of the character being completed */
  GString           *scratch;
};

RsDetokenizer *
rs_detokenizer_new (const RsTokenizer *tok, RsTokenBytesFlags flags)
{
  RsDetokenizer *detok = g_new0 (RsDetokenizer, 1);
  detok->tok = tok;
  detok->flags = flags;
  detok->scratch = g_string_new (NULL);
  return detok;
}

void
rs_detokenizer_free (RsDetokenizer *detok)
{
  if (!detok)
    return;
  g_string_free (detok->scratch, TRUE);
  g_free (detok);
}

void
rs_detokenizer_reset (RsDetokenizer *detok)
{
  detok->n_pending = 0;
  detok->needed = 0;
}

#define REPLACEMENT "\xef\xbf\xbd"

gsize
rs_detokenizer_push_bytes (RsDetokenizer *detok, const void *bytes, gsize len, GString *out)
{
  const guint8 *s = bytes;
  gsize before = out->len;
  for (gsize i = 0; i < len; i++) {
    guint8 c = s[i];
    if (detok->n_pending > 0) {
      guint8 lo = 0x80, hi = 0xbf;
      if (detok->n_pending == 1) {
        switch (detok->pending[0]) {
        case 0xe0: lo = 0xa0; break;
        case 0xed: hi = 0x9f; break;
        case 0xf0: lo = 0x90; break;
        case 0xf4: hi = 0x8f; break;
        default: break;
        }
      }
      if (c >= lo && c <= hi) {
        detok->pending[detok->n_pending++] = c;
        if (detok->n_pending == detok->needed) {
          g_string_append_len (out, (const char *) detok->pending, (gssize) detok->n_pending);
          detok->n_pending = 0;
        }
        continue;
      }
      /* The character can no longer complete: show it as one U+FFFD and
       * look at this byte afresh. */
      g_string_append (out, REPLACEMENT);
      detok->n_pending = 0;
    }
    if (c < 0x80) {
      g_string_append_c (out, (char) c);
    } else if (c >= 0xc2 && c <= 0xf4) {
      detok->pending[0] = c;
      detok->n_pending = 1;
      detok->needed = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    } else {
      g_string_append (out, REPLACEMENT);
    }
  }
  return out->len - before;
}

gsize
rs_detokenizer_push (RsDetokenizer *detok, int32_t id, GString *out)
{
  g_string_truncate (detok->scratch, 0);
  rs_tokenizer_token_bytes (detok->tok, id, detok->flags, detok->scratch);
  return rs_detokenizer_push_bytes (detok, detok->scratch->str, detok->scratch->len, out);
}

const guint8 *
rs_detokenizer_pending (const RsDetokenizer *detok, gsize *len)
{
  *len = detok->n_pending;
  return detok->pending;
}

void
rs_detokenizer_pending_hex (const RsDetokenizer *detok, GString *out)
{
  for (gsize i = 0; i < detok->n_pending; i++)
    g_string_append_printf (out, "<0x%02X>", detok->pending[i]);
}

void
rs_detokenizer_finish (RsDetokenizer *detok, GString *out)
{
  if (detok->n_pending > 0)
    g_string_append (out, REPLACEMENT);
  detok->n_pending = 0;
}
