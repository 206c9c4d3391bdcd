/* rs-pretokenize.c: the pre-tokenizers of byte-level BPE vocabularies.
 *
 * A pre-tokenizer is a sequence of regexes. Each one splits every piece
 * left by the one before into its matches and the text between matches
 * (the "Isolated" split of HF tokenizers), so no text is ever dropped.
 * Each piece is then merged by BPE on its own.
 *
 * The regexes are those of the models' tokenizer.json files, run by PCRE2
 * in UTF mode with Unicode properties. Two adjustments make PCRE2 agree
 * with the regex engines the models were trained with: \s and \S mean the
 * Unicode White_Space property (PCRE2's own \s also takes U+180E), and $
 * matches only at the very end of a piece.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <string.h>

#include "rs-error.h"
#include "rs-tokenizer-private.h"

/* The contractions of English, as GPT-2 split them off. */
#define CONTRACTIONS_CI "(?i:'s|'t|'re|'ve|'m|'ll|'d)"

static const char *const gpt2_regexes[] = {
  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
  NULL
};

/* llama.cpp's fallback for BPE files that name no pre-tokenizer. */
static const char *const default_regexes[] = {
  "[\\p{P}\\$\\+<=>\\^~\\|]+",
  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
  "\\p{N}+",
  "[0-9][0-9][0-9]",
  NULL
};

static const char *const llama3_regexes[] = {
  CONTRACTIONS_CI "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  NULL
};

static const char *const qwen2_regexes[] = {
  CONTRACTIONS_CI "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  NULL
};

static const char *const qwen35_regexes[] = {
  CONTRACTIONS_CI "|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  NULL
};

static const char *const deepseek_llm_regexes[] = {
  "[\\r\\n]",
  "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
  "\\s?[!-/:-~！-／：-～‘-‟　-。]+",
  "\\s+$",
  "[一-龥ࠀ-一가-퟿]+",
  "\\p{N}+",
  NULL
};

static const char *const deepseek_coder_regexes[] = {
  "[\\r\\n]",
  "\\s?\\p{L}+",
  "\\s?\\p{P}+",
  "[一-龥ࠀ-一가-퟿]+",
  "\\p{N}",
  NULL
};

static const char *const deepseek_v3_regexes[] = {
  "\\p{N}{1,3}",
  "[一-龥぀-ゟ゠-ヿ]+",
  "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  NULL
};

static const char *const falcon_regexes[] = {
  "[\\p{P}\\$\\+<=>\\^~\\|`]+",
  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
  "[0-9][0-9][0-9]",
  NULL
};

static const char *const starcoder_regexes[] = {
  "\\p{N}",
  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
  NULL
};

static const char *const bloom_regexes[] = {
  " ?[^(\\s|.,!?…。，、।۔،)]+",
  NULL
};

static const char *const viking_regexes[] = {
  " ?[^(\\s|.,!?…。，、।۔،)]+",
  "\\p{N}",
  NULL
};

/* Upper-case runs followed by lower-case runs, so "HTTPServer" splits as
 * "HTTP" "Server" (o200k, Tekken). */
#define CASED_WORDS \
  "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
#define CASED_WORDS_2 \
  "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*"

static const char *const gpt4o_regexes[] = {
  CASED_WORDS CONTRACTIONS_CI "?|" CASED_WORDS_2 CONTRACTIONS_CI "?"
  "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  NULL
};

static const char *const tekken_regexes[] = {
  CASED_WORDS "|" CASED_WORDS_2
  "|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  NULL
};

static const char *const seed_coder_regexes[] = {
  CONTRACTIONS_CI "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  NULL
};

/* Possessive quantifiers as in the model's tokenizer.json. */
static const char *const bailingmoe_regexes[] = {
  "'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+",
  NULL
};

static const char *const minicpm5_regexes[] = {
  "\\p{N}{1,3}",
  CONTRACTIONS_CI "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}+| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  NULL
};

typedef struct {
  const char        *names;         /* tokenizer.ggml.pre values, '|'-separated */
  const char *const *regexes;
  bool               ignore_merges; /* defaults of the family, as llama.cpp sets them */
  bool               add_bos;
  bool               no_bos;        /* the family has no BOS token */
} PreFamily;

static const PreFamily pre_families[] = {
  { "default", default_regexes, false, false, false },
  { "gpt-2|phi-2|mpt|olmo|jais|trillion|granite-docling|exaone4|gigachat|a.x-4.0|mellum|modern-bert|roberta-bpe",
    gpt2_regexes, false, false, false },
  { "llama3|llama-v3|llama-bpe|falcon3|falcon-h1|pixtral|midm-2.0|lfm2",
    llama3_regexes, true, true, false },
  { "dbrx|smaug-bpe", llama3_regexes, false, false, false },
  { "glm4|chatglm-bpe", llama3_regexes, false, false, true },
  { "qwen2|deepseek-r1-qwen|kormo|f2llmv2|megrez|stablelm2|hunyuan|solar-open|grok-2",
    qwen2_regexes, false, false, false },
  { "qwen35", qwen35_regexes, false, false, false },
  { "deepseek-llm", deepseek_llm_regexes, false, false, false },
  { "deepseek-coder", deepseek_coder_regexes, false, false, false },
  { "deepseek-v3|hunyuan-dense|joyai-llm", deepseek_v3_regexes, false, false, false },
  { "falcon", falcon_regexes, false, false, false },
  { "starcoder|refact|command-r|smollm|codeshell|exaone|minerva-7b|mellum2",
    starcoder_regexes, false, false, false },
  { "poro-chat|bloom|gpt3-finnish", bloom_regexes, false, false, false },
  { "viking", viking_regexes, false, false, false },
  { "gpt-4o|llama4|kanana2|talkie|minimax-m2", gpt4o_regexes, false, false, false },
  { "tekken", tekken_regexes, true, true, false },
  { "seed-coder", seed_coder_regexes, false, false, false },
  { "bailingmoe|bailingmoe2|llada-moe", bailingmoe_regexes, false, false, false },
  { "minicpm5", minicpm5_regexes, true, false, false },
};

struct _RsPretokenizer {
  int          n_regexes;
  pcre2_code **regexes;
};

static gboolean
name_in_list (const char *name, const char *list)
{
  size_t name_len = strlen (name);
  const char *p = list;
  while (*p) {
    const char *bar = strchr (p, '|');
    size_t len = bar ? (size_t) (bar - p) : strlen (p);
    if (len == name_len && memcmp (p, name, len) == 0)
      return TRUE;
    if (!bar)
      break;
    p = bar + 1;
  }
  return FALSE;
}

/* \s and \S become the White_Space property, inside classes or not;
 * escaped backslashes are copied as they are. */
static char *
rewrite_whitespace_classes (const char *pattern)
{
  GString *out = g_string_sized_new (strlen (pattern) + 64);
  for (const char *p = pattern; *p; p++) {
    if (*p != '\\' || p[1] == '\0') {
      g_string_append_c (out, *p);
      continue;
    }
    if (p[1] == 's')
      g_string_append (out, "\\p{White_Space}");
    else if (p[1] == 'S')
      g_string_append (out, "\\P{White_Space}");
    else
      g_string_append_len (out, p, 2);
    p++;
  }
  return g_string_free (out, FALSE);
}

RsPretokenizer *
rs_pretokenizer_new (const char *name, const char *path, bool *ignore_merges,
                     bool *add_bos_default, bool *no_bos, GError **error)
{
  const PreFamily *family = NULL;
  for (size_t i = 0; i < G_N_ELEMENTS (pre_families); i++) {
    if (name_in_list (name, pre_families[i].names)) {
      family = &pre_families[i];
      break;
    }
  }
  if (!family) {
    g_set_error (error, RS_ERROR, RS_ERROR_UNSUPPORTED,
                 "%s: tokenizer.ggml.pre: unknown pre-tokenizer '%s'", path, name);
    return NULL;
  }

  RsPretokenizer *pre = g_new0 (RsPretokenizer, 1);
  while (family->regexes[pre->n_regexes])
    pre->n_regexes++;
  pre->regexes = g_new0 (pcre2_code *, pre->n_regexes);

  for (int i = 0; i < pre->n_regexes; i++) {
    g_autofree char *pattern = rewrite_whitespace_classes (family->regexes[i]);
    int error_code;
    PCRE2_SIZE error_offset;
    pre->regexes[i] = pcre2_compile ((PCRE2_SPTR) pattern, PCRE2_ZERO_TERMINATED,
                                     PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY,
                                     &error_code, &error_offset, NULL);
    if (!pre->regexes[i]) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message (error_code, message, sizeof message);
      g_set_error (error, RS_ERROR, RS_ERROR_UNSUPPORTED,
                   "%s: tokenizer.ggml.pre '%s': regex %d does not compile at %zu: %s",
                   path, name, i, (size_t) error_offset, (const char *) message);
      rs_pretokenizer_free (pre);
      return NULL;
    }
    /* JIT is only a speed-up: without it (e.g. W^X systems) matching still works. */
    pcre2_jit_compile (pre->regexes[i], PCRE2_JIT_COMPLETE);
  }

  *ignore_merges = family->ignore_merges;
  *add_bos_default = family->add_bos;
  *no_bos = family->no_bos;
  return pre;
}

void
rs_pretokenizer_free (RsPretokenizer *pre)
{
  if (!pre)
    return;
  for (int i = 0; i < pre->n_regexes; i++)
    pcre2_code_free (pre->regexes[i]);
  g_free (pre->regexes);
  g_free (pre);
}

static void
push_span (GArray *spans, uint32_t start, uint32_t end)
{
  if (end > start) {
    RsSpan span = { start, end };
    g_array_append_val (spans, span);
  }
}

gboolean
rs_pretokenizer_split (const RsPretokenizer *pre, const char *text, size_t len,
                       GArray *spans, GError **error)
{
  if (len == 0)
    return TRUE;

  g_autoptr (GArray) current = g_array_new (FALSE, FALSE, sizeof (RsSpan));
  g_autoptr (GArray) next = g_array_new (FALSE, FALSE, sizeof (RsSpan));
  push_span (current, 0, (uint32_t) len);

  /* Per call, so that one tokenizer can encode from several threads. The
   * JIT stack is larger than the default so that long runs of spaces
   * (\s+(?!\S) backtracks over them) cannot exhaust it. */
  pcre2_match_context *mcontext = pcre2_match_context_create (NULL);
  pcre2_jit_stack *jit_stack = pcre2_jit_stack_create (32 * 1024, 8 * 1024 * 1024, NULL);
  if (jit_stack)
    pcre2_jit_stack_assign (mcontext, NULL, jit_stack);
  pcre2_match_data *match = pcre2_match_data_create (1, NULL);
  gboolean ok = TRUE;

  for (int r = 0; r < pre->n_regexes && ok; r++) {
    const pcre2_code *regex = pre->regexes[r];
    g_array_set_size (next, 0);

    for (guint f = 0; f < current->len && ok; f++) {
      RsSpan piece = g_array_index (current, RsSpan, f);
      /* The piece is the whole subject: lookaheads and $ see its end as
       * the end of the text, as they do when each piece is split alone. */
      const char *subject = text + piece.start;
      size_t subject_len = piece.end - piece.start;
      size_t pos = 0, gap_start = 0;

      while (pos < subject_len) {
        int rc = pcre2_match (regex, (PCRE2_SPTR) subject, subject_len, pos,
                              PCRE2_NO_UTF_CHECK, match, mcontext);
        if (rc == PCRE2_ERROR_NOMATCH)
          break;
        if (rc < 0) {
          PCRE2_UCHAR message[256];
          pcre2_get_error_message (rc, message, sizeof message);
          g_set_error (error, RS_ERROR, RS_ERROR_RESOURCE,
                       "pre-tokenizer regex %d failed at byte %zu: %s", r,
                       (size_t) piece.start + pos, (const char *) message);
          ok = FALSE;
          break;
        }
        PCRE2_SIZE *ovector = pcre2_get_ovector_pointer (match);
        size_t match_start = ovector[0], match_end = ovector[1];
        if (match_end == match_start) {
          /* Empty matches split nothing; step over one character. */
          pos = match_start + rs_utf8_seq_len ((uint8_t) subject[match_start]);
          continue;
        }
        push_span (next, piece.start + (uint32_t) gap_start, piece.start + (uint32_t) match_start);
        push_span (next, piece.start + (uint32_t) match_start, piece.start + (uint32_t) match_end);
        gap_start = pos = match_end;
      }
      push_span (next, piece.start + (uint32_t) gap_start, piece.end);
    }

    GArray *swap = current;
    current = next;
    next = swap;
  }

  if (ok)
    g_array_append_vals (spans, current->data, current->len);

  pcre2_match_data_free (match);
  if (jit_stack)
    pcre2_jit_stack_free (jit_stack);
  pcre2_match_context_free (mcontext);
  return ok;
}
