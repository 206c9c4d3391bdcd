/* rs-tokenizer.h: the tokenizer a GGUF file carries (tokenizer.ggml.*),
 * reproduced exactly as llama.cpp / the model's trainer run it.
 *
 * Two kinds are supported:
 *  - tokenizer.ggml.model = "llama": SentencePiece BPE with scores. Spaces
 *    become U+2581, a space is prefixed to each piece of text that starts
 *    the prompt or follows a special token (tokenizer.ggml.add_space_prefix,
 *    default on), characters without a piece fall back to <0xNN> byte
 *    tokens (or to the unknown token when the vocabulary has no byte tokens,
 *    consecutive unknown characters giving one unknown token).
 *  - tokenizer.ggml.model = "gpt2": byte-level BPE with merge ranks, after
 *    the pre-tokenizer named by tokenizer.ggml.pre (regexes run with PCRE2).
 *
 * Special tokens (control, user-defined, unknown) are matched in the prompt
 * text first, longest first, as llama.cpp does: user-defined tokens always,
 * control and unknown tokens only with RS_TOKENIZE_PARSE_SPECIAL.
 *
 * Vocabulary-only GGUF files (no tensors) work: only metadata is read, and
 * everything needed is copied, so the RsGguf may be freed afterwards.
 *
 * A tokenizer is immutable once made; encoding and decoding may run from
 * several threads at once.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "rs-gguf.h"

G_BEGIN_DECLS

typedef struct _RsTokenizer RsTokenizer;

typedef enum {
  RS_TOKENIZER_SPM, /* "llama" */
  RS_TOKENIZER_BPE, /* "gpt2" */
} RsTokenizerKind;

/* The values of tokenizer.ggml.token_type. */
typedef enum {
  RS_TOKEN_TYPE_UNDEFINED    = 0,
  RS_TOKEN_TYPE_NORMAL       = 1,
  RS_TOKEN_TYPE_UNKNOWN      = 2,
  RS_TOKEN_TYPE_CONTROL      = 3,
  RS_TOKEN_TYPE_USER_DEFINED = 4,
  RS_TOKEN_TYPE_UNUSED       = 5,
  RS_TOKEN_TYPE_BYTE         = 6,
} RsTokenType;

typedef enum {
  RS_TOKENIZE_NONE          = 0,
  /* Add BOS / EOS when the metadata asks for them (add_bos_token, add_eos_token). */
  RS_TOKENIZE_ADD_SPECIAL   = 1 << 0,
  /* Turn the text of control tokens (e.g. "<|im_start|>") into those tokens. */
  RS_TOKENIZE_PARSE_SPECIAL = 1 << 1,
} RsTokenizeFlags;

typedef enum {
  RS_TOKEN_BYTES_NONE    = 0,
  /* Control and unknown tokens give their text ("<|im_end|>") instead of
   * nothing: llama.cpp's token_to_piece with special = true. */
  RS_TOKEN_BYTES_SPECIAL = 1 << 0,
} RsTokenBytesFlags;

/* Reads and checks the tokenizer of @gguf. Fails (RS_ERROR_FORMAT or
 * RS_ERROR_UNSUPPORTED, the message naming the file and the key) when a
 * key is missing or of the wrong type, arrays disagree in length, a merge
 * names an unknown token, a special token id is out of range, or the model
 * or pre-tokenizer name is not supported. */
RsTokenizer *rs_tokenizer_new_from_gguf (const RsGguf *gguf, GError **error);
void         rs_tokenizer_free (RsTokenizer *tok);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RsTokenizer, rs_tokenizer_free)

RsTokenizerKind rs_tokenizer_kind (const RsTokenizer *tok);
/* tokenizer.ggml.model ("llama", "gpt2") and tokenizer.ggml.pre ("qwen2";
 * "default" for a BPE file without the key; NULL for SPM). */
const char *rs_tokenizer_model_name (const RsTokenizer *tok);
const char *rs_tokenizer_pre_name   (const RsTokenizer *tok);
/* The file the tokenizer came from (for messages). */
const char *rs_tokenizer_path       (const RsTokenizer *tok);

int32_t rs_tokenizer_n_vocab (const RsTokenizer *tok);

/* Special token ids, -1 when the model has none. */
int32_t rs_tokenizer_bos (const RsTokenizer *tok);
int32_t rs_tokenizer_eos (const RsTokenizer *tok);
int32_t rs_tokenizer_eot (const RsTokenizer *tok);
int32_t rs_tokenizer_pad (const RsTokenizer *tok);
int32_t rs_tokenizer_unk (const RsTokenizer *tok);
gboolean rs_tokenizer_adds_bos (const RsTokenizer *tok);
gboolean rs_tokenizer_adds_eos (const RsTokenizer *tok);

/* tokenizer.ggml.token_type of @id as stored (NORMAL when the file has no
 * types); RS_TOKEN_TYPE_UNDEFINED for an id out of range. */
RsTokenType rs_tokenizer_token_type (const RsTokenizer *tok, int32_t id);
/* Whether @id is treated as a control token: its stored type, or one of
 * the end-of-turn texts ("<|im_end|>", "<|eot_id|>"...) that llama.cpp
 * promotes to control. */
gboolean rs_tokenizer_is_control (const RsTokenizer *tok, int32_t id);
/* Whether generating @id ends generation (EOS, EOT and the other
 * end-of-generation tokens llama.cpp recognises by text). */
gboolean rs_tokenizer_is_eog (const RsTokenizer *tok, int32_t id);

/* The vocabulary entry of @id as stored (byte-level or U+2581-escaped
 * form), not NUL-terminated; NULL for an id out of range. */
const char *rs_tokenizer_token_text (const RsTokenizer *tok, int32_t id, gsize *len);
/* The id whose vocabulary entry is exactly @text, or -1. */
int32_t rs_tokenizer_find_token (const RsTokenizer *tok, const char *text, gssize len);

/* Appends the token ids of @text (@len bytes, or NUL-terminated when -1)
 * to @ids (an int32_t array). @text must be valid UTF-8 (NUL bytes are
 * allowed when @len is given): otherwise fails with RS_ERROR_INVALID
 * naming the byte offset of the first bad byte, and @ids is unchanged. */
gboolean rs_tokenizer_encode (const RsTokenizer *tok, const char *text, gssize len,
                              RsTokenizeFlags flags, GArray *ids, GError **error);

/* Appends the exact bytes @id stands for: the byte of a <0xNN> token, the
 * text of an SPM piece with U+2581 as a space, the bytes behind a
 * byte-level BPE piece, the text of a user-defined token. Control and
 * unknown tokens give their text with RS_TOKEN_BYTES_SPECIAL, else
 * nothing; unused and undefined tokens give nothing (as llama.cpp). A piece
 * may end inside a UTF-8 character. Out-of-range ids append nothing. */
void rs_tokenizer_token_bytes (const RsTokenizer *tok, int32_t id, RsTokenBytesFlags flags,
                               GString *out);
/* The bytes of @n_ids tokens one after the other (no space stripping). */
void rs_tokenizer_decode (const RsTokenizer *tok, const int32_t *ids, gsize n_ids,
                          RsTokenBytesFlags flags, GString *out);

/* Streaming detokeniser for showing tokens one by one.
 *
 * Each pushed token's bytes join the bytes still pending from earlier
 * tokens; every complete UTF-8 character is appended to the output, and
 * an incomplete character at the end stays pending until later tokens
 * complete it. So the output is always valid UTF-8. Bytes that can never
 * be part of a valid character (a stray continuation byte, an overlong or
 * surrogate form) are each shown as U+FFFD, as is an unfinished character
 * cut short by a byte that cannot continue it. The pending bytes can be shown meanwhile, e.g. as
 * "<0xE6><0x97>" with rs_detokenizer_pending_hex(). */
typedef struct _RsDetokenizer RsDetokenizer;

RsDetokenizer *rs_detokenizer_new   (const RsTokenizer *tok, RsTokenBytesFlags flags);
void           rs_detokenizer_free  (RsDetokenizer *detok);
void           rs_detokenizer_reset (RsDetokenizer *detok);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RsDetokenizer, rs_detokenizer_free)
/* Appends the text completed by @id to @out; returns the number of bytes
 * appended (0 when the token only added pending bytes). */
gsize rs_detokenizer_push (RsDetokenizer *detok, int32_t id, GString *out);
/* Same for raw bytes (for callers that already have a token's bytes). */
gsize rs_detokenizer_push_bytes (RsDetokenizer *detok, const void *bytes, gsize len, GString *out);
/* The bytes of the incomplete character at the end (0 to 3 bytes). */
const guint8 *rs_detokenizer_pending (const RsDetokenizer *detok, gsize *len);
/* Appends the pending bytes as "<0xE6><0x97>" (nothing when none). */
void  rs_detokenizer_pending_hex (const RsDetokenizer *detok, GString *out);
/* Ends the stream: pending bytes (an unfinished character) are appended
 * as one U+FFFD, then cleared. */
void  rs_detokenizer_finish (RsDetokenizer *detok, GString *out);

G_END_DECLS
