/* rs-cli-tokenize.c: routescope-cli tokenize, the model's token ids of a text.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdio.h>

#include "rs-cli.h"
#include "rs-gguf.h"
#include "rs-tokenizer.h"

/* A token's bytes for showing: complete UTF-8 characters as they are,
 * other bytes (a token may end inside a character) as <0xNN>. */
static char *
piece_for_display (const RsTokenizer *tok, int32_t id)
{
  g_autoptr (GString) bytes = g_string_new (NULL);
  rs_tokenizer_token_bytes (tok, id, RS_TOKEN_BYTES_SPECIAL, bytes);
  GString *shown = g_string_new (NULL);
  const char *p = bytes->str, *end = bytes->str + bytes->len;
  while (p < end) {
    const char *valid_end;
    g_utf8_validate_len (p, (gsize) (end - p), &valid_end);
    g_string_append_len (shown, p, valid_end - p);
    p = valid_end;
    if (p < end) {
      /* Also NUL, which g_utf8_validate stops at and a C string cannot hold. */
      g_string_append_printf (shown, "<0x%02X>", (guint8) *p);
      p++;
    }
  }
  return g_string_free (shown, FALSE);
}

static void
print_json (const RsTokenizer *tok, GArray *ids)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "ids");
  json_builder_begin_array (builder);
  for (guint i = 0; i < ids->len; i++)
    json_builder_add_int_value (builder, g_array_index (ids, int32_t, i));
  json_builder_end_array (builder);
  json_builder_set_member_name (builder, "pieces");
  json_builder_begin_array (builder);
  for (guint i = 0; i < ids->len; i++) {
    g_autofree char *piece = piece_for_display (tok, g_array_index (ids, int32_t, i));
    json_builder_add_string_value (builder, piece);
  }
  json_builder_end_array (builder);
  json_builder_end_object (builder);

  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (JsonNode) root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  g_autofree char *text = json_generator_to_data (generator, NULL);
  printf ("%s\n", text);
}

int
rs_cli_tokenize (int argc, char **argv)
{
  g_autofree char *model_path = NULL, *text = NULL, *file = NULL;
  gboolean json = FALSE, no_bos = FALSE, no_parse_special = FALSE;
  const GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model_path, "GGUF model or vocabulary-only file", "MODEL.gguf" },
    /* FILENAME: the bytes as given, not converted from the locale's charset. */
    { "text", 't', 0, G_OPTION_ARG_FILENAME, &text, "Text to tokenize (taken as it is: no escapes)", "TEXT" },
    { "file", 'f', 0, G_OPTION_ARG_FILENAME, &file, "Tokenize the bytes of this file", "PATH" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json,
      "Print {\"ids\": [...], \"pieces\": [...]}; a piece shows bytes that are not whole UTF-8 characters as <0xNN>", NULL },
    { "no-bos", 0, 0, G_OPTION_ARG_NONE, &no_bos, "Add no BOS/EOS even when the model's metadata asks for them", NULL },
    { "no-parse-special", 0, 0, G_OPTION_ARG_NONE, &no_parse_special,
      "Tokenize the text of control tokens (e.g. <|im_start|>) as plain text", NULL },
    { NULL }
  };
  g_autoptr (GOptionContext) context = g_option_context_new ("- print the token ids of a text");
  g_option_context_set_summary (context,
    "Prints the ids on one line, separated by spaces. BOS (and EOS) are added when the\n"
    "model's metadata says so, and special-token text is parsed, as llama.cpp does.");
  g_option_context_add_main_entries (context, entries, NULL);
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (context, &argc, &argv, &error))
    return rs_cli_fail (error->message);
  if (!model_path)
    return rs_cli_fail ("tokenize: -m MODEL.gguf is required");
  if ((text == NULL) == (file == NULL))
    return rs_cli_fail ("tokenize: give exactly one of --text TEXT and --file PATH");

  gsize text_len;
  if (file) {
    if (!g_file_get_contents (file, &text, &text_len, &error))
      return rs_cli_fail (error->message);
  } else {
    text_len = strlen (text);
  }

  g_autoptr (RsGguf) gguf = rs_gguf_open (model_path, &error);
  if (!gguf)
    return rs_cli_fail (error->message);
  g_autoptr (RsTokenizer) tok = rs_tokenizer_new_from_gguf (gguf, &error);
  if (!tok)
    return rs_cli_fail (error->message);

  RsTokenizeFlags flags = RS_TOKENIZE_NONE;
  if (!no_bos)
    flags |= RS_TOKENIZE_ADD_SPECIAL;
  if (!no_parse_special)
    flags |= RS_TOKENIZE_PARSE_SPECIAL;
  g_autoptr (GArray) ids = g_array_new (FALSE, FALSE, sizeof (int32_t));
  if (!rs_tokenizer_encode (tok, text, (gssize) text_len, flags, ids, &error)) {
    g_autofree char *message = g_strdup_printf ("%s: %s", file ? file : "--text", error->message);
    return rs_cli_fail (message);
  }

  if (json) {
    print_json (tok, ids);
  } else {
    g_autoptr (GString) line = g_string_new (NULL);
    for (guint i = 0; i < ids->len; i++)
      g_string_append_printf (line, i ? " %d" : "%d", g_array_index (ids, int32_t, i));
    printf ("%s\n", line->str);
  }
  return 0;
}
