/* bench-tokenize: tokenizer throughput on 1 MB of mixed-script text.
 *
 *   bench-tokenize [VOCAB.gguf ...]
 *
 * Without arguments it times the test vocabularies in
 * tests/data/tokenizer/ (SentencePiece and each BPE pre-tokenizer). The
 * text is built from fixed snippets (Latin with accents, CJK, Cyrillic,
 * Greek, Arabic, Devanagari, emoji, digits, code, whitespace runs) in a
 * fixed pseudo-random order, so runs are comparable. One thread.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <glib.h>
#include <stdio.h>

#include "rs-config.h"
#include "rs-gguf.h"
#include "rs-tokenizer.h"

static const char *const snippets[] = {
  "The quick brown fox jumps over the lazy dog. ",
  "Ünïcödé façade naïve café résumé, Ångström Øresund Łódź Straße. ",
  "東京は日本の首都です。北京是中国的首都。",
  "서울은 한국의 수도입니다. こんにちは、世界！カタカナ ひらがな ",
  "Привет, мир! Здравствуйте, как дела? ",
  "Γειά σου Κόσμε. مرحبا بالعالم שלום עולם नमस्ते दुनिया สวัสดีชาวโลก ",
  "😀 😃 🤖 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️ ✨ ",
  "1 12 123 1234 12345 3.14159 2,718 1e10 0x1F ",
  "def main(argv):\n    for i in range(10):\n        print(f\"{i:03d}\\t{argv[i]!r}\")\n",
  "int main(void) { return printf(\"%d\\n\", x[3] << 2); }\n",
  "    indented    spaces   and\ttabs\t\there\n\n",
  "I'm sure they've said it's fine; we'll see what you'd think. ",
  "HTTPServer getHTTPResponse camelCaseWord XMLHttpRequest ",
};

static GString *
make_text (gsize target)
{
  GString *text = g_string_sized_new (target + 256);
  guint32 state = 12345;
  while (text->len < target) {
    state = state * 1103515245u + 12345u;
    g_string_append (text, snippets[(state >> 16) % G_N_ELEMENTS (snippets)]);
  }
  return text;
}

static void
bench_one (const char *path, const GString *text)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (RsGguf) gguf = rs_gguf_open (path, &error);
  if (!gguf) {
    fprintf (stderr, "bench-tokenize: %s\n", error->message);
    return;
  }
  gint64 t0 = g_get_monotonic_time ();
  g_autoptr (RsTokenizer) tok = rs_tokenizer_new_from_gguf (gguf, &error);
  gint64 t1 = g_get_monotonic_time ();
  if (!tok) {
    fprintf (stderr, "bench-tokenize: %s\n", error->message);
    return;
  }

  g_autoptr (GArray) ids = g_array_new (FALSE, FALSE, sizeof (int32_t));
  double best = G_MAXDOUBLE;
  for (int rep = 0; rep < 3; rep++) {
    g_array_set_size (ids, 0);
    gint64 start = g_get_monotonic_time ();
    if (!rs_tokenizer_encode (tok, text->str, (gssize) text->len, RS_TOKENIZE_ADD_SPECIAL | RS_TOKENIZE_PARSE_SPECIAL,
                              ids, &error)) {
      fprintf (stderr, "bench-tokenize: %s\n", error->message);
      return;
    }
    best = MIN (best, (g_get_monotonic_time () - start) / 1e6);
  }
  g_autofree char *name = g_path_get_basename (path);
  const char *pre = rs_tokenizer_pre_name (tok);
  printf ("%-24s %-8s %-13s %7.3f s  %6.2f MB/s  %8u tokens  (load %.1f ms, %d vocab)\n", name,
          rs_tokenizer_model_name (tok), pre ? pre : "-", best, text->len / 1e6 / best, ids->len,
          (t1 - t0) / 1e3, rs_tokenizer_n_vocab (tok));
}

int
main (int argc, char **argv)
{
  g_autoptr (GString) text = make_text (1000 * 1000);
  printf ("text: %zu bytes, %ld characters\n", text->len, g_utf8_strlen (text->str, (gssize) text->len));
  if (argc > 1) {
    for (int i = 1; i < argc; i++)
      bench_one (argv[i], text);
    return 0;
  }
  static const char *const vocabs[] = {
    "spm.gguf", "bpe-default.gguf", "bpe-gpt-2.gguf", "bpe-olmo.gguf", "bpe-llama-bpe.gguf",
    "bpe-qwen2.gguf", "bpe-deepseek-llm.gguf", "bpe-deepseek-v3.gguf", "bpe-gpt-4o.gguf",
  };
  for (gsize i = 0; i < G_N_ELEMENTS (vocabs); i++) {
    g_autofree char *path = g_build_filename (RS_SOURCE_DATADIR, "..", "tests", "data", "tokenizer", vocabs[i], NULL);
    bench_one (path, text);
  }
  return 0;
}
