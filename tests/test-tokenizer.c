/* test-tokenizer.c: tokenizers read from GGUF metadata.
 *
 * The vocabulary files under tests/data/tokenizer/ are small vocab-only
 * GGUFs (one SentencePiece, byte-level BPE ones saved with different
 * pre-tokenizer names); expected.json holds the ids the reference
 * tokenizers gave for a set of test strings.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <glib.h>
#include <json-glib/json-glib.h>
#include <string.h>

#include "rs-error.h"
#include "rs-gguf.h"
#include "rs-test-gguf-writer.h"
#include "rs-tokenizer.h"

static char *
fixture_path (const char *name)
{
  return g_test_build_filename (G_TEST_DIST, "data", "tokenizer", name, NULL);
}

static RsTokenizer *
open_fixture (const char *name)
{
  g_autofree char *path = fixture_path (name);
  g_autoptr (GError) error = NULL;
  g_autoptr (RsGguf) gguf = rs_gguf_open (path, &error);
  g_assert_no_error (error);
  g_assert_cmpint (rs_gguf_n_tensors (gguf), ==, 0); /* vocabulary only */
  RsTokenizer *tok = rs_tokenizer_new_from_gguf (gguf, &error);
  g_assert_no_error (error);
  g_assert_nonnull (tok);
  return tok;
}

static GArray *
encode (const RsTokenizer *tok, const char *text, gssize len, RsTokenizeFlags flags)
{
  GArray *ids = g_array_new (FALSE, FALSE, sizeof (int32_t));
  g_autoptr (GError) error = NULL;
  g_assert_true (rs_tokenizer_encode (tok, text, len, flags, ids, &error));
  g_assert_no_error (error);
  return ids;
}

static char *
ids_to_string (const int32_t *ids, guint n)
{
  GString *s = g_string_new ("[");
  for (guint i = 0; i < n; i++)
    g_string_append_printf (s, i ? ", %d" : "%d", ids[i]);
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

/* ---- reference vectors ---- */

static JsonNode *expected_root;

static void
load_expected (void)
{
  g_autofree char *path = fixture_path ("expected.json");
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;
  g_assert_true (json_parser_load_from_file (parser, path, &error));
  g_assert_no_error (error);
  expected_root = json_node_copy (json_parser_get_root (parser));
}

/* Compares every string of expected.json for one vocabulary in one mode. */
static void
check_vectors (const char *vocab, const char *mode, RsTokenizeFlags flags)
{
  g_autoptr (RsTokenizer) tok = open_fixture (vocab);
  JsonObject *root = json_node_get_object (expected_root);
  JsonArray *strings = json_object_get_array_member (root, "strings");
  JsonObject *vocabs = json_object_get_object_member (root, "vocabs");
  JsonObject *entry = json_object_get_object_member (vocabs, vocab);
  g_assert_nonnull (entry);
  JsonArray *all_expected = json_object_get_array_member (entry, mode);
  g_assert_cmpuint (json_array_get_length (all_expected), ==, json_array_get_length (strings));

  guint failures = 0;
  for (guint i = 0; i < json_array_get_length (strings); i++) {
    /* A string with a NUL is stored as its list of bytes. */
    g_autoptr (GByteArray) bytes = g_byte_array_new ();
    JsonNode *node = json_array_get_element (strings, i);
    if (JSON_NODE_HOLDS_ARRAY (node)) {
      JsonArray *list = json_node_get_array (node);
      for (guint b = 0; b < json_array_get_length (list); b++) {
        guint8 byte = (guint8) json_array_get_int_element (list, b);
        g_byte_array_append (bytes, &byte, 1);
      }
    } else {
      const char *text = json_node_get_string (node);
      g_byte_array_append (bytes, (const guint8 *) text, strlen (text));
    }

    g_autoptr (GArray) got = encode (tok, (const char *) bytes->data, bytes->len, flags);
    JsonArray *want_json = json_array_get_array_element (all_expected, i);
    g_autoptr (GArray) want = g_array_new (FALSE, FALSE, sizeof (int32_t));
    for (guint k = 0; k < json_array_get_length (want_json); k++) {
      int32_t id = (int32_t) json_array_get_int_element (want_json, k);
      g_array_append_val (want, id);
    }
    if (got->len != want->len || (got->len > 0 && memcmp (got->data, want->data, got->len * sizeof (int32_t)) != 0)) {
      g_autofree char *g = ids_to_string ((int32_t *) got->data, got->len);
      g_autofree char *w = ids_to_string ((int32_t *) want->data, want->len);
      g_autofree char *escaped = g_strescape ((const char *) bytes->data, NULL);
      g_test_message ("%s %s string %u \"%s\":\n  got  %s\n  want %s", vocab, mode, i, escaped, g, w);
      failures++;
    }

    /* Decoding gives the text back exactly (byte-level BPE keeps every
     * byte; SentencePiece adds its space in front of the text). */
    if (flags & RS_TOKENIZE_PARSE_SPECIAL) {
      g_autoptr (GString) decoded = g_string_new (NULL);
      const int32_t *ids = (const int32_t *) got->data;
      guint n = got->len;
      if (n > 0 && rs_tokenizer_adds_bos (tok) && ids[0] == rs_tokenizer_bos (tok))
        ids++, n--;
      rs_tokenizer_decode (tok, ids, n, RS_TOKEN_BYTES_SPECIAL, decoded);
      const char *start = decoded->str;
      gsize len = decoded->len;
      if (rs_tokenizer_kind (tok) == RS_TOKENIZER_SPM && len > 0 && start[0] == ' ' && bytes->len > 0) {
        start++;
        len--;
      }
      if (rs_tokenizer_kind (tok) == RS_TOKENIZER_BPE) {
        if (len != bytes->len || (len > 0 && memcmp (start, bytes->data, len) != 0)) {
          g_test_message ("%s: string %u does not decode to itself", vocab, i);
          failures++;
        }
      }
    }
  }
  g_assert_cmpuint (failures, ==, 0);
}

typedef struct {
  const char *vocab;
  const char *mode;
  RsTokenizeFlags flags;
} VectorCase;

static void
test_vectors (gconstpointer data)
{
  const VectorCase *c = data;
  check_vectors (c->vocab, c->mode, c->flags);
}

/* ---- properties of the fixtures ---- */

static void
test_spm_basics (void)
{
  g_autoptr (RsTokenizer) tok = open_fixture ("spm.gguf");
  g_assert_cmpint (rs_tokenizer_kind (tok), ==, RS_TOKENIZER_SPM);
  g_assert_cmpstr (rs_tokenizer_model_name (tok), ==, "llama");
  g_assert_null (rs_tokenizer_pre_name (tok));
  g_assert_cmpint (rs_tokenizer_n_vocab (tok), ==, 4000);
  g_assert_cmpint (rs_tokenizer_unk (tok), ==, 0);
  g_assert_cmpint (rs_tokenizer_bos (tok), ==, 1);
  g_assert_cmpint (rs_tokenizer_eos (tok), ==, 2);
  g_assert_true (rs_tokenizer_adds_bos (tok));
  g_assert_false (rs_tokenizer_adds_eos (tok));
  g_assert_true (rs_tokenizer_is_eog (tok, 2));
  g_assert_cmpint (rs_tokenizer_token_type (tok, 0), ==, RS_TOKEN_TYPE_UNKNOWN);
  g_assert_cmpint (rs_tokenizer_token_type (tok, 1), ==, RS_TOKEN_TYPE_CONTROL);
  g_assert_cmpint (rs_tokenizer_token_type (tok, -1), ==, RS_TOKEN_TYPE_UNDEFINED);
  g_assert_cmpint (rs_tokenizer_token_type (tok, 4000), ==, RS_TOKEN_TYPE_UNDEFINED);

  /* <|im_end|> is control by type and ends a turn. */
  int32_t im_end = rs_tokenizer_find_token (tok, "<|im_end|>", -1);
  g_assert_cmpint (im_end, >=, 0);
  g_assert_true (rs_tokenizer_is_control (tok, im_end));
  g_assert_cmpint (rs_tokenizer_eot (tok), ==, im_end);

  /* Byte tokens give their byte; pieces give U+2581 as a space. */
  int32_t byte_e6 = rs_tokenizer_find_token (tok, "<0xE6>", -1);
  g_assert_cmpint (rs_tokenizer_token_type (tok, byte_e6), ==, RS_TOKEN_TYPE_BYTE);
  g_autoptr (GString) out = g_string_new (NULL);
  rs_tokenizer_token_bytes (tok, byte_e6, RS_TOKEN_BYTES_NONE, out);
  g_assert_cmpuint (out->len, ==, 1);
  g_assert_cmpuint ((guint8) out->str[0], ==, 0xe6);

  g_autoptr (GArray) ids = encode (tok, "Hello world", -1, RS_TOKENIZE_NONE);
  g_string_truncate (out, 0);
  rs_tokenizer_decode (tok, (int32_t *) ids->data, ids->len, RS_TOKEN_BYTES_NONE, out);
  g_assert_cmpstr (out->str, ==, " Hello world");

  /* Control tokens: their text only on request. */
  g_string_truncate (out, 0);
  rs_tokenizer_token_bytes (tok, 1, RS_TOKEN_BYTES_NONE, out);
  g_assert_cmpstr (out->str, ==, "");
  rs_tokenizer_token_bytes (tok, 1, RS_TOKEN_BYTES_SPECIAL, out);
  g_assert_cmpstr (out->str, ==, "<s>");

  /* A user-defined token is always parsed and always shown. */
  int32_t tool = rs_tokenizer_find_token (tok, "<tool>", -1);
  g_assert_cmpint (rs_tokenizer_token_type (tok, tool), ==, RS_TOKEN_TYPE_USER_DEFINED);
  g_autoptr (GArray) with_tool = encode (tok, "a<tool>b", -1, RS_TOKENIZE_NONE);
  gboolean found = FALSE;
  for (guint i = 0; i < with_tool->len; i++)
    found |= g_array_index (with_tool, int32_t, i) == tool;
  g_assert_true (found);
  g_string_truncate (out, 0);
  rs_tokenizer_token_bytes (tok, tool, RS_TOKEN_BYTES_NONE, out);
  g_assert_cmpstr (out->str, ==, "<tool>");
}

static void
test_bpe_basics (void)
{
  g_autoptr (RsTokenizer) tok = open_fixture ("bpe-qwen2.gguf");
  g_assert_cmpint (rs_tokenizer_kind (tok), ==, RS_TOKENIZER_BPE);
  g_assert_cmpstr (rs_tokenizer_model_name (tok), ==, "gpt2");
  g_assert_cmpstr (rs_tokenizer_pre_name (tok), ==, "qwen2");
  g_assert_false (rs_tokenizer_adds_bos (tok));
  int32_t endoftext = rs_tokenizer_find_token (tok, "<|endoftext|>", -1);
  g_assert_cmpint (rs_tokenizer_eos (tok), ==, endoftext);
  g_assert_true (rs_tokenizer_is_eog (tok, endoftext));
  /* No unknown token in byte-level BPE; PAD absent. */
  g_assert_cmpint (rs_tokenizer_unk (tok), ==, -1);
  g_assert_cmpint (rs_tokenizer_pad (tok), ==, -1);

  /* Special-token text: a token with PARSE_SPECIAL, plain text without. */
  int32_t im_start = rs_tokenizer_find_token (tok, "<|im_start|>", -1);
  g_autoptr (GArray) parsed = encode (tok, "<|im_start|>user", -1, RS_TOKENIZE_PARSE_SPECIAL);
  g_assert_cmpint (g_array_index (parsed, int32_t, 0), ==, im_start);
  g_autoptr (GArray) plain = encode (tok, "<|im_start|>user", -1, RS_TOKENIZE_NONE);
  for (guint i = 0; i < plain->len; i++)
    g_assert_cmpint (g_array_index (plain, int32_t, i), !=, im_start);
  g_autoptr (GString) out = g_string_new (NULL);
  rs_tokenizer_decode (tok, (int32_t *) plain->data, plain->len, RS_TOKEN_BYTES_NONE, out);
  g_assert_cmpstr (out->str, ==, "<|im_start|>user");

  /* Byte-level pieces decode to bytes, including a space. */
  g_autoptr (GArray) ids = encode (tok, " caf\xc3\xa9", -1, RS_TOKENIZE_NONE);
  g_string_truncate (out, 0);
  rs_tokenizer_decode (tok, (int32_t *) ids->data, ids->len, RS_TOKEN_BYTES_NONE, out);
  g_assert_cmpstr (out->str, ==, " caf\xc3\xa9");

  /* llama3: BOS by metadata; ADD_SPECIAL adds it, without it nothing. */
  g_autoptr (RsTokenizer) llama = open_fixture ("bpe-llama-bpe.gguf");
  g_assert_true (rs_tokenizer_adds_bos (llama));
  g_autoptr (GArray) with_bos = encode (llama, "Hi", -1, RS_TOKENIZE_ADD_SPECIAL);
  g_assert_cmpint (g_array_index (with_bos, int32_t, 0), ==, rs_tokenizer_find_token (llama, "<|begin_of_text|>", -1));
  g_autoptr (GArray) empty = encode (llama, "", 0, RS_TOKENIZE_ADD_SPECIAL);
  g_assert_cmpuint (empty->len, ==, 1);
  g_autoptr (GArray) nothing = encode (llama, "", 0, RS_TOKENIZE_NONE);
  g_assert_cmpuint (nothing->len, ==, 0);

  /* gpt-oss's channel tokens render even without special tokens. */
  g_autoptr (RsTokenizer) o200k = open_fixture ("bpe-gpt-4o.gguf");
  int32_t channel = rs_tokenizer_find_token (o200k, "<|channel|>", -1);
  g_string_truncate (out, 0);
  rs_tokenizer_token_bytes (o200k, channel, RS_TOKEN_BYTES_NONE, out);
  g_assert_cmpstr (out->str, ==, "<|channel|>");
}

/* ---- bad input ---- */

static void
test_invalid_utf8 (void)
{
  g_autoptr (RsTokenizer) spm = open_fixture ("spm.gguf");
  g_autoptr (RsTokenizer) bpe = open_fixture ("bpe-llama-bpe.gguf");
  static const struct { const char *text; gsize len; gsize offset; } cases[] = {
    { "abc\x80", 4, 3 },                    /* stray continuation byte */
    { "ab\xc3", 3, 2 },                     /* truncated at the end */
    { "\xe6\x97x", 3, 0 },                  /* truncated by another byte */
    { "ok \xc0\x80", 5, 3 },                /* overlong NUL */
    { "\xed\xa0\x80", 3, 0 },               /* surrogate */
    { "x\xf4\x90\x80\x80", 5, 1 },          /* past U+10FFFF */
    { "\xf5\x80\x80\x80", 4, 0 },
    { "\xe6\x97\xa5\xff", 4, 3 },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    const RsTokenizer *toks[] = { spm, bpe };
    for (gsize t = 0; t < 2; t++) {
      g_autoptr (GArray) ids = g_array_new (FALSE, FALSE, sizeof (int32_t));
      g_autoptr (GError) error = NULL;
      g_assert_false (rs_tokenizer_encode (toks[t], cases[i].text, (gssize) cases[i].len,
                                           RS_TOKENIZE_ADD_SPECIAL | RS_TOKENIZE_PARSE_SPECIAL, ids, &error));
      g_assert_error (error, RS_ERROR, RS_ERROR_INVALID);
      g_autofree char *where = g_strdup_printf ("byte offset %zu", (size_t) cases[i].offset);
      g_assert_nonnull (strstr (error->message, where));
      g_assert_cmpuint (ids->len, ==, 0);
    }
  }
  /* NUL is valid UTF-8 when the length is given. */
  g_autoptr (GArray) ids = encode (bpe, "a\0b", 3, RS_TOKENIZE_NONE);
  g_assert_cmpuint (ids->len, >=, 2);
}

/* A byte-level vocabulary of the 256 byte characters, "ab" from merge
 * "a b", and what @edit changes. */
typedef void (*VocabEdit) (RsTestGguf *w, GPtrArray *tokens, GArray *types, GPtrArray *merges, gpointer data);

static char *
byte_char (int b)
{
  int n = 0;
  gboolean printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  if (printable)
    return g_ucs4_to_utf8 ((gunichar[]) { (gunichar) b }, 1, NULL, NULL, NULL);
  for (int c = 0; c < b; c++)
    if (!((c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c <= 0xac) || (c >= 0xae && c <= 0xff)))
      n++;
  return g_ucs4_to_utf8 ((gunichar[]) { (gunichar) (256 + n) }, 1, NULL, NULL, NULL);
}

static char *
write_bpe_vocab (const char *name, const char *pre, gboolean with_scores_mismatch,
                 const char *extra_merge, const char *extra_key)
{
  g_autoptr (RsTestGguf) w = rs_test_gguf_new ();
  rs_test_gguf_add_str (w, "general.architecture", "llama");
  rs_test_gguf_add_str (w, "tokenizer.ggml.model", "gpt2");
  if (pre)
    rs_test_gguf_add_str (w, "tokenizer.ggml.pre", pre);
  g_autoptr (GPtrArray) tokens = g_ptr_array_new_with_free_func (g_free);
  for (int b = 0; b < 256; b++)
    g_ptr_array_add (tokens, byte_char (b));
  g_ptr_array_add (tokens, g_strdup ("ab"));
  g_ptr_array_add (tokens, g_strdup ("<|endoftext|>"));
  rs_test_gguf_add_arr_str (w, "tokenizer.ggml.tokens", (const char *const *) tokens->pdata, tokens->len);
  g_autofree int32_t *types = g_new (int32_t, tokens->len);
  for (guint i = 0; i < tokens->len; i++)
    types[i] = i + 1 == tokens->len ? RS_TOKEN_TYPE_CONTROL : RS_TOKEN_TYPE_NORMAL;
  rs_test_gguf_add_arr (w, "tokenizer.ggml.token_type", RS_GGUF_INT32, types, tokens->len - (with_scores_mismatch ? 1 : 0));
  const char *merges[] = { "a b", extra_merge };
  rs_test_gguf_add_arr_str (w, "tokenizer.ggml.merges", merges, extra_merge ? 2 : 1);
  if (extra_key)
    rs_test_gguf_add_u32 (w, extra_key, 100000);
  g_autoptr (GBytes) bytes = rs_test_gguf_to_bytes (w);
  gsize len;
  const void *data = g_bytes_get_data (bytes, &len);
  return rs_test_write_temp (name, data, len);
}

static void
expect_open_failure (const char *path, const char *key)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (RsGguf) gguf = rs_gguf_open (path, &error);
  g_assert_no_error (error);
  g_autoptr (RsTokenizer) tok = rs_tokenizer_new_from_gguf (gguf, &error);
  g_assert_null (tok);
  g_assert_nonnull (error);
  g_assert_true (error->domain == RS_ERROR);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, path));
  g_assert_nonnull (strstr (error->message, key));
}

static void
test_inconsistent_vocab (void)
{
  /* The well-formed base opens and merges "a" "b". */
  g_autofree char *good = write_bpe_vocab ("good.gguf", "qwen2", FALSE, NULL, NULL);
  {
    g_autoptr (GError) error = NULL;
    g_autoptr (RsGguf) gguf = rs_gguf_open (good, &error);
    g_assert_no_error (error);
    g_autoptr (RsTokenizer) tok = rs_tokenizer_new_from_gguf (gguf, &error);
    g_assert_no_error (error);
    g_autoptr (GArray) ids = encode (tok, "ab<|endoftext|>", -1, RS_TOKENIZE_PARSE_SPECIAL);
    g_assert_cmpuint (ids->len, ==, 2);
    g_assert_cmpint (g_array_index (ids, int32_t, 0), ==, 256);
    g_assert_cmpint (g_array_index (ids, int32_t, 1), ==, 257);
  }

  g_autofree char *lengths = write_bpe_vocab ("lengths.gguf", "qwen2", TRUE, NULL, NULL);
  expect_open_failure (lengths, "tokenizer.ggml.token_type");
  g_autofree char *unknown_merge = write_bpe_vocab ("merge.gguf", "qwen2", FALSE, "a zz", NULL);
  expect_open_failure (unknown_merge, "tokenizer.ggml.merges");
  g_autofree char *missing_result = write_bpe_vocab ("result.gguf", "qwen2", FALSE, "b a", NULL);
  expect_open_failure (missing_result, "tokenizer.ggml.merges");
  g_autofree char *no_space = write_bpe_vocab ("nospace.gguf", "qwen2", FALSE, "ab", NULL);
  expect_open_failure (no_space, "tokenizer.ggml.merges");
  g_autofree char *unknown_pre = write_bpe_vocab ("pre.gguf", "no-such-pre", FALSE, NULL, NULL);
  expect_open_failure (unknown_pre, "tokenizer.ggml.pre");
  g_autofree char *bad_id = write_bpe_vocab ("id.gguf", "qwen2", FALSE, NULL, "tokenizer.ggml.eos_token_id");
  expect_open_failure (bad_id, "tokenizer.ggml.eos_token_id");

  /* A missing pre-tokenizer name means llama.cpp's "default". */
  g_autofree char *no_pre = write_bpe_vocab ("nopre.gguf", NULL, FALSE, NULL, NULL);
  {
    g_autoptr (GError) error = NULL;
    g_autoptr (RsGguf) gguf = rs_gguf_open (no_pre, &error);
    g_autoptr (RsTokenizer) tok = rs_tokenizer_new_from_gguf (gguf, &error);
    g_assert_no_error (error);
    g_assert_cmpstr (rs_tokenizer_pre_name (tok), ==, "default");
  }

  /* SPM: scores shorter than tokens; duplicate entries; bad model. */
  const char *spm_tokens[] = { "<unk>", "<s>", "</s>", "a", "a" };
  float scores[] = { 0, 0, 0, -1, -2 };
  int32_t types[] = { 2, 3, 3, 1, 1 };
  struct { const char *name; const char *model; guint n_tokens; guint n_scores; const char *key; } spm_cases[] = {
    { "scores.gguf", "llama", 4, 3, "tokenizer.ggml.scores" },
    { "dup.gguf", "llama", 5, 5, "tokenizer.ggml.tokens" },
    { "model.gguf", "bert-like", 4, 4, "tokenizer.ggml.model" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (spm_cases); i++) {
    g_autoptr (RsTestGguf) w = rs_test_gguf_new ();
    rs_test_gguf_add_str (w, "tokenizer.ggml.model", spm_cases[i].model);
    rs_test_gguf_add_arr_str (w, "tokenizer.ggml.tokens", spm_tokens, spm_cases[i].n_tokens);
    rs_test_gguf_add_arr (w, "tokenizer.ggml.scores", RS_GGUF_FLOAT32, scores, spm_cases[i].n_scores);
    rs_test_gguf_add_arr (w, "tokenizer.ggml.token_type", RS_GGUF_INT32, types, spm_cases[i].n_tokens);
    g_autoptr (GBytes) bytes = rs_test_gguf_to_bytes (w);
    g_autofree char *path = rs_test_write_temp (spm_cases[i].name, g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes));
    expect_open_failure (path, spm_cases[i].key);
  }

  /* No tokenizer at all. */
  {
    g_autoptr (RsTestGguf) w = rs_test_gguf_new ();
    rs_test_gguf_add_str (w, "general.architecture", "llama");
    g_autoptr (GBytes) bytes = rs_test_gguf_to_bytes (w);
    g_autofree char *path = rs_test_write_temp ("none.gguf", g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes));
    expect_open_failure (path, "tokenizer.ggml.model");
  }
}

/* SentencePiece without byte tokens: characters it cannot spell become
 * the unknown token, one for each run. */
static void
test_spm_unknown (void)
{
  const char *tokens[] = { "<unk>", "<s>", "</s>", "\xe2\x96\x81", "a", "b", "\xe2\x96\x81" "a", "ab", "\xe2\x96\x81" "ab" };
  float scores[] = { 0, 0, 0, -1, -2, -3, -4, -5, -6 };
  int32_t types[] = { 2, 3, 3, 1, 1, 1, 1, 1, 1 };
  g_autoptr (RsTestGguf) w = rs_test_gguf_new ();
  rs_test_gguf_add_str (w, "tokenizer.ggml.model", "llama");
  rs_test_gguf_add_arr_str (w, "tokenizer.ggml.tokens", tokens, G_N_ELEMENTS (tokens));
  rs_test_gguf_add_arr (w, "tokenizer.ggml.scores", RS_GGUF_FLOAT32, scores, G_N_ELEMENTS (scores));
  rs_test_gguf_add_arr (w, "tokenizer.ggml.token_type", RS_GGUF_INT32, types, G_N_ELEMENTS (types));
  g_autoptr (GBytes) bytes = rs_test_gguf_to_bytes (w);
  g_autofree char *path = rs_test_write_temp ("spm-unk.gguf", g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes));
  g_autoptr (GError) error = NULL;
  g_autoptr (RsGguf) gguf = rs_gguf_open (path, &error);
  g_assert_no_error (error);
  g_autoptr (RsTokenizer) tok = rs_tokenizer_new_from_gguf (gguf, &error);
  g_assert_no_error (error);

  /* "▁ab▁xy☃b": "▁a" (score -4) is joined before "ab" (-5), then "▁ab";
   * "x", "y" and "☃" have no piece and give one <unk>. */
  g_autoptr (GArray) ids = encode (tok, "ab xy\xe2\x98\x83" "b", -1, RS_TOKENIZE_ADD_SPECIAL);
  g_autofree char *got = ids_to_string ((int32_t *) ids->data, ids->len);
  g_assert_cmpstr (got, ==, "[1, 8, 3, 0, 5]");
}

/* ---- detokenising ---- */

static void
test_detokenizer (void)
{
  g_autoptr (RsTokenizer) tok = open_fixture ("spm.gguf");
  g_autoptr (RsDetokenizer) detok = rs_detokenizer_new (tok, RS_TOKEN_BYTES_NONE);
  g_autoptr (GString) out = g_string_new (NULL);
  g_autoptr (GString) hex = g_string_new (NULL);

  /* 東 = E6 9D B1, given one byte token at a time. */
  int32_t e6 = rs_tokenizer_find_token (tok, "<0xE6>", -1);
  int32_t x9d = rs_tokenizer_find_token (tok, "<0x9D>", -1);
  int32_t xb1 = rs_tokenizer_find_token (tok, "<0xB1>", -1);
  g_assert_cmpuint (rs_detokenizer_push (detok, e6, out), ==, 0);
  rs_detokenizer_pending_hex (detok, hex);
  g_assert_cmpstr (hex->str, ==, "<0xE6>");
  g_assert_cmpuint (rs_detokenizer_push (detok, x9d, out), ==, 0);
  gsize n_pending;
  rs_detokenizer_pending (detok, &n_pending);
  g_assert_cmpuint (n_pending, ==, 2);
  g_assert_cmpuint (rs_detokenizer_push (detok, xb1, out), ==, 3);
  g_assert_cmpstr (out->str, ==, "\xe6\x9d\xb1");
  rs_detokenizer_pending (detok, &n_pending);
  g_assert_cmpuint (n_pending, ==, 0);

  /* A piece with a space. */
  int32_t hello = rs_tokenizer_find_token (tok, "\xe2\x96\x81H", -1);
  g_assert_cmpint (hello, >=, 0);
  g_string_truncate (out, 0);
  rs_detokenizer_push (detok, hello, out);
  g_assert_cmpstr (out->str, ==, " H");

  /* Invalid bytes: U+FFFD, and a cut-short character also one U+FFFD. */
  g_string_truncate (out, 0);
  rs_detokenizer_push_bytes (detok, "\x80" "a" "\xe6\x9d" "b" "\xc0", 6, out);
  g_assert_cmpstr (out->str, ==, "\xef\xbf\xbd" "a" "\xef\xbf\xbd" "b" "\xef\xbf\xbd");
  g_string_truncate (out, 0);
  rs_detokenizer_push_bytes (detok, "\xf0\x9f", 2, out);
  g_assert_cmpstr (out->str, ==, "");
  rs_detokenizer_finish (detok, out);
  g_assert_cmpstr (out->str, ==, "\xef\xbf\xbd");
  rs_detokenizer_pending (detok, &n_pending);
  g_assert_cmpuint (n_pending, ==, 0);

  /* Surrogates and overlongs never start a character. */
  g_string_truncate (out, 0);
  rs_detokenizer_push_bytes (detok, "\xed\xa0\x80" "\xe0\x80\x80", 6, out);
  g_assert_true (g_utf8_validate (out->str, (gssize) out->len, NULL));
  g_assert_null (strstr (out->str, "\xed"));

  /* Whole texts come back exactly through the stream. */
  const char *text = "東京は日本の首都です。😀 Привет 👨‍👩‍👧‍👦";
  g_autoptr (RsTokenizer) bpe = open_fixture ("bpe-gpt-4o.gguf");
  const RsTokenizer *toks[] = { tok, bpe };
  for (gsize t = 0; t < 2; t++) {
    g_autoptr (RsDetokenizer) stream = rs_detokenizer_new (toks[t], RS_TOKEN_BYTES_NONE);
    g_autoptr (GArray) ids = encode (toks[t], text, -1, RS_TOKENIZE_NONE);
    g_string_truncate (out, 0);
    for (guint i = 0; i < ids->len; i++)
      rs_detokenizer_push (stream, g_array_index (ids, int32_t, i), out);
    rs_detokenizer_finish (stream, out);
    g_assert_cmpstr (out->str + (t == 0 ? 1 : 0), ==, text);
  }
}

/* Encoding from several threads at once gives the same ids. */
static gpointer
encode_thread (gpointer data)
{
  const RsTokenizer *tok = data;
  GArray *ids = encode (tok, "Hello, world! 東京 123456 <|im_end|>", -1, RS_TOKENIZE_PARSE_SPECIAL);
  for (int i = 0; i < 50; i++) {
    g_autoptr (GArray) again = encode (tok, "Hello, world! 東京 123456 <|im_end|>", -1, RS_TOKENIZE_PARSE_SPECIAL);
    g_assert_cmpuint (again->len, ==, ids->len);
    g_assert_cmpint (memcmp (again->data, ids->data, ids->len * sizeof (int32_t)), ==, 0);
  }
  return ids;
}

static void
test_threads (void)
{
  g_autoptr (RsTokenizer) tok = open_fixture ("bpe-llama-bpe.gguf");
  GThread *threads[4];
  for (int i = 0; i < 4; i++)
    threads[i] = g_thread_new ("encode", encode_thread, tok);
  GArray *first = NULL;
  for (int i = 0; i < 4; i++) {
    GArray *ids = g_thread_join (threads[i]);
    if (!first)
      first = ids;
    else {
      g_assert_cmpuint (ids->len, ==, first->len);
      g_array_unref (ids);
    }
  }
  g_array_unref (first);
}

static const char *const vector_vocabs[] = {
  "spm.gguf", "bpe-default.gguf", "bpe-gpt-2.gguf", "bpe-olmo.gguf", "bpe-llama-bpe.gguf",
  "bpe-qwen2.gguf", "bpe-deepseek-llm.gguf", "bpe-deepseek-v3.gguf", "bpe-gpt-4o.gguf",
};

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  load_expected ();

  for (gsize i = 0; i < G_N_ELEMENTS (vector_vocabs); i++) {
    VectorCase *with_special = g_new0 (VectorCase, 1);
    *with_special = (VectorCase) { vector_vocabs[i], "default", RS_TOKENIZE_ADD_SPECIAL | RS_TOKENIZE_PARSE_SPECIAL };
    g_autofree char *name = g_strdup_printf ("/tokenizer/vectors/%s/default", vector_vocabs[i]);
    g_test_add_data_func_full (name, with_special, test_vectors, g_free);
    VectorCase *plain = g_new0 (VectorCase, 1);
    *plain = (VectorCase) { vector_vocabs[i], "plain", RS_TOKENIZE_NONE };
    g_autofree char *plain_name = g_strdup_printf ("/tokenizer/vectors/%s/plain", vector_vocabs[i]);
    g_test_add_data_func_full (plain_name, plain, test_vectors, g_free);
  }
  g_test_add_func ("/tokenizer/spm/basics", test_spm_basics);
  g_test_add_func ("/tokenizer/spm/unknown", test_spm_unknown);
  g_test_add_func ("/tokenizer/bpe/basics", test_bpe_basics);
  g_test_add_func ("/tokenizer/invalid-utf8", test_invalid_utf8);
  g_test_add_func ("/tokenizer/inconsistent-vocab", test_inconsistent_vocab);
  g_test_add_func ("/tokenizer/detokenizer", test_detokenizer);
  g_test_add_func ("/tokenizer/threads", test_threads);

  int status = g_test_run ();
  json_node_unref (expected_root);
  return status;
}
