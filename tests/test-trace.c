/* test-trace.c: routing traces in memory, their three export formats,
 * loading Routescope's NPZ back, importing vLLM's and SGLang's routed
 * experts, and malformed input.
 *
 * The import fixtures in tests/data/trace/ were written with Debian's
 * python3-numpy from the formats in vLLM's docs/training/
 * routed_experts_replay.md (RequestOutput.prompt_routed_experts and
 * CompletionOutput.routed_experts, int16 [tokens, MoE layers, top_k],
 * -1 for prefix-cached positions) and SGLang's /generate response
 * (meta_info.routed_experts: base64 of int32 [prompt + completion - 1,
 * num_hidden_layers, top_k], layers without experts left at 0):
 *
 *   import base64, json
 *   import numpy as np
 *   L, K, P, C = 3, 2, 4, 3
 *   def route(t, l, j): return (3 * t + 2 * l + 5 * j) % 8
 *   prompt = np.array([[[route(t, l, j) for j in range(K)] for l in range(L)]
 *                      for t in range(P)], np.int16)
 *   prompt[0] = -1
 *   gen = np.array([[[route(P + t, l, j) for j in range(K)] for l in range(L)]
 *                   for t in range(C)], np.int16)
 *   prompt_ids = [1, 450, 4996, 17354]; gen_ids = [2318, 1701, 29889]
 *   np.save("vllm-routed-experts.npy", np.concatenate([prompt, gen]))
 *   np.savez("vllm-request.npz", prompt_routed_experts=prompt, routed_experts=gen,
 *            prompt_token_ids=np.array(prompt_ids), token_ids=np.array(gen_ids))
 *   json.dump({... "choices": [{... "token_ids": gen_ids, "routed_experts": gen.tolist()}],
 *              "prompt_token_ids": prompt_ids, "prompt_routed_experts": prompt.tolist()},
 *             open("vllm-completions.json", "w"), indent=1)
 *   rows = np.zeros((P + C - 1, L + 1, K), np.int32)   # layer 0 is dense
 *   for t in range(P + C - 1):
 *       for l in range(L):
 *           for j in range(K): rows[t, l + 1, j] = route(t, l, j)
 *   b64 = base64.b64encode(rows.astype("<i4").tobytes()).decode("ascii")
 *   json.dump({"text": ..., "output_ids": gen_ids, "meta_info": {"prompt_tokens": P,
 *              "completion_tokens": C, "input_token_logprobs": [[lp, id, text], ...],
 *              "output_token_logprobs": [...], "routed_experts": b64, ...}},
 *             open("sglang-generate.json", "w"), indent=1)
 *   json.dump({... "choices": [{... "sgl_ext": {"routed_experts": b64}}],
 *              "usage": {"prompt_tokens": P, "completion_tokens": C, ...}},
 *             open("sglang-chat.json", "w"), indent=1)
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <locale.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <zip.h>

#include "rs-error.h"
#include "rs-trace.h"

/* The hand-built trace: T = 5 tokens (3 prompt), L = 3 layers of which
 * layer 0 is dense, E = 8 experts, K = 3 slots for a k = 2 model, MoE
 * slots filled 1..3 deep, an intervention at (t 3, layer 1). */
enum { T = 5, L = 3, E = 8, K = 3, KM = 2, N_PROMPT = 3 };

static const int32_t test_ids[T] = { 1, 450, 4996, 17354, 2318 };
static const char *const test_text[T] = {
  "<s>", " The", " \"quoted\"\\ back\nline\t", " grüße 世界", "\x01" "ctl\x7f",
};
static const char *const test_meta =
  "{\"model\":\"test.gguf\",\"nested\":{\"a\":[1,2.5,\"x\"]},\"prompt\":\"The \\\"q\\\"\"}";

static int
fill_of (int t, int l)
{
  return 1 + (t + l) % 3;
}

static int
id_of (int t, int l, int j)
{
  return (t + 2 * l + 3 * j) % E;
}

static float
weight_of (int t, int j)
{
  return 0.5f / (float) (j + 1) + 0.01f * (float) t;
}

static RsTrace *
make_trace (gboolean full)
{
  RsTrace *tr = rs_trace_new (L, E, KM, K, full);
  g_assert_cmpint (rs_trace_append_tokens (tr, test_ids, N_PROMPT, TRUE), ==, 0);
  g_assert_cmpint (rs_trace_append_tokens (tr, test_ids + N_PROMPT, T - N_PROMPT, FALSE), ==,
                   N_PROMPT);
  for (int t = 0; t < T; t++)
    g_ptr_array_index (tr->token_text, t) = g_strdup (test_text[t]);
  rs_trace_set_metadata (tr, test_meta);

  for (int t = 0; t < T; t++)
    {
      if (full)
        {
          g_array_index (tr->token_prob, float, t) = t < N_PROMPT ? NAN : 0.5f / (float) (t + 1);
          g_array_index (tr->next_entropy, float, t) = 1.0f + (float) t / 3.0f;
        }
      for (int l = 1; l < L; l++)  /* layer 0 keeps its absent values */
        {
          int64_t tl = (int64_t) t * L + l;
          for (int j = 0; j < fill_of (t, l); j++)
            g_array_index (tr->topk_ids, int32_t, tl * K + j) = id_of (t, l, j);
          if (!full)
            continue;
          for (int j = 0; j < fill_of (t, l); j++)
            {
              int32_t *base = &g_array_index (tr->base_topk_ids, int32_t, tl * K + j);
              float *bw = &g_array_index (tr->base_topk_weights, float, tl * K + j);
              g_array_index (tr->topk_weights, float, tl * K + j) = weight_of (t, j);
              *base = id_of (t, l, j);
              *bw = weight_of (t, j);
              if (t == 3 && l == 1)
                {
                  *base = (id_of (t, l, j) + 1) % E;
                  *bw = weight_of (t, j) / 3.0f;
                }
              g_array_index (tr->expert_out_maxabs, float, tl * K + j) =
                10.0f * (float) (t + 1) + (float) l + 0.3f * (float) j;
              g_array_index (tr->expert_out_channel, int32_t, tl * K + j) = t * 100 + l * 10 + j;
            }
          for (int e = 0; e < E; e++)
            {
              g_array_index (tr->router_logits, float, tl * E + e) = sinf ((float) (t * E + e + l));
              g_array_index (tr->router_scores, float, tl * E + e) = 0.1f * (float) e + 0.01f;
            }
          if (l == 2)
            g_array_index (tr->shared_gate, float, tl) = 0.25f * (float) t + 0.1f;
        }
      for (int l = 0; full && l < L; l++)
        g_array_index (tr->resid_maxabs, float, (int64_t) t * L + l) = 5.0f + (float) t / 7.0f + l;
    }
  return tr;
}

static char *
temp_dir (void)
{
  g_autoptr (GError) error = NULL;
  char *dir = g_dir_make_tmp ("rs-trace-XXXXXX", &error);
  g_assert_no_error (error);
  return dir;
}

static void
remove_tree (const char *path)
{
  if (g_file_test (path, G_FILE_TEST_IS_DIR) && !g_file_test (path, G_FILE_TEST_IS_SYMLINK))
    {
      GDir *d = g_dir_open (path, 0, NULL);
      const char *name;
      while (d != NULL && (name = g_dir_read_name (d)) != NULL)
        {
          g_autofree char *child = g_build_filename (path, name, NULL);
          remove_tree (child);
        }
      if (d != NULL)
        g_dir_close (d);
      g_rmdir (path);
    }
  else
    g_unlink (path);
}

static int
cmp_names (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

/* The names in @dir, sorted and joined by spaces. */
static char *
dir_listing (const char *dir)
{
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  GDir *d = g_dir_open (dir, 0, NULL);
  g_assert_nonnull (d);
  const char *name;
  while ((name = g_dir_read_name (d)) != NULL)
    g_ptr_array_add (names, g_strdup (name));
  g_dir_close (d);
  g_ptr_array_sort (names, cmp_names);
  g_ptr_array_add (names, NULL);
  return g_strjoinv (" ", (char **) names->pdata);
}

static void
assert_error_mentions (const GError *error, int code, const char *fragment)
{
  g_assert_nonnull (error);
  g_test_message ("error: %s", error->message);
  g_assert_error (error, RS_ERROR, code);
  if (fragment != NULL && strstr (error->message, fragment) == NULL)
    g_error ("message '%s' lacks '%s'", error->message, fragment);
}

static void
assert_same_array (const GArray *a, const GArray *b, const char *what)
{
  g_assert_cmpuint (a->len, ==, b->len);
  g_assert_cmpuint (g_array_get_element_size ((GArray *) a), ==,
                    g_array_get_element_size ((GArray *) b));
  /* Bytewise: NaN equals NaN, and no value may change at all. */
  if (a->len > 0 && memcmp (a->data, b->data, (size_t) a->len * g_array_get_element_size ((GArray *) a)) != 0)
    g_error ("array %s differs", what);
}

static void
assert_same_json (const char *a, const char *b)
{
  g_autoptr (JsonParser) pa = json_parser_new ();
  g_autoptr (JsonParser) pb = json_parser_new ();
  g_assert_true (json_parser_load_from_data (pa, a, -1, NULL));
  g_assert_true (json_parser_load_from_data (pb, b, -1, NULL));
  if (!json_node_equal (json_parser_get_root (pa), json_parser_get_root (pb)))
    g_error ("JSON differs: %s vs %s", a, b);
}

static void
assert_same_trace (const RsTrace *a, const RsTrace *b)
{
  g_assert_cmpint (a->n_layer, ==, b->n_layer);
  g_assert_cmpint (a->n_expert, ==, b->n_expert);
  g_assert_cmpint (a->k_slots, ==, b->k_slots);
  g_assert_cmpint (a->k_model, ==, b->k_model);
  g_assert_cmpint (a->n_tokens, ==, b->n_tokens);
  assert_same_array (a->token_ids, b->token_ids, "token_ids");
  assert_same_array (a->is_prompt, b->is_prompt, "is_prompt");
  assert_same_array (a->token_prob, b->token_prob, "token_prob");
  assert_same_array (a->next_entropy, b->next_entropy, "next_entropy");
  assert_same_array (a->router_logits, b->router_logits, "router_logits");
  assert_same_array (a->router_scores, b->router_scores, "router_scores");
  assert_same_array (a->topk_ids, b->topk_ids, "topk_ids");
  assert_same_array (a->topk_weights, b->topk_weights, "topk_weights");
  assert_same_array (a->base_topk_ids, b->base_topk_ids, "base_topk_ids");
  assert_same_array (a->base_topk_weights, b->base_topk_weights, "base_topk_weights");
  assert_same_array (a->expert_out_maxabs, b->expert_out_maxabs, "expert_out_maxabs");
  assert_same_array (a->expert_out_channel, b->expert_out_channel, "expert_out_channel");
  assert_same_array (a->shared_gate, b->shared_gate, "shared_gate");
  assert_same_array (a->resid_maxabs, b->resid_maxabs, "resid_maxabs");
  g_assert_cmpuint (a->token_text->len, ==, b->token_text->len);
  for (guint t = 0; t < a->token_text->len; t++)
    {
      const char *sa = g_ptr_array_index (a->token_text, t);
      const char *sb = g_ptr_array_index (b->token_text, t);
      g_assert_cmpstr (sa != NULL ? sa : "", ==, sb != NULL ? sb : "");
    }
  assert_same_json (a->metadata_json, b->metadata_json);
}

/* ---- the trace in memory ------------------------------------------------ */

static void
test_new_append_truncate (void)
{
  g_autoptr (RsTrace) full = rs_trace_new (L, E, KM, K, TRUE);
  g_assert_cmpstr (full->metadata_json, ==, "{}");
  g_assert_cmpint (rs_trace_append_tokens (full, NULL, 2, TRUE), ==, 0);
  g_assert_cmpint (rs_trace_append_tokens (full, test_ids, 3, FALSE), ==, 2);
  g_assert_cmpint (full->n_tokens, ==, 5);
  g_assert_cmpuint (full->token_ids->len, ==, 5);
  g_assert_cmpuint (full->token_text->len, ==, 5);
  g_assert_cmpuint (full->router_logits->len, ==, 5 * L * E);
  g_assert_cmpuint (full->router_scores->len, ==, 5 * L * E);
  g_assert_cmpuint (full->topk_ids->len, ==, 5 * L * K);
  g_assert_cmpuint (full->expert_out_channel->len, ==, 5 * L * K);
  g_assert_cmpuint (full->shared_gate->len, ==, 5 * L);
  g_assert_cmpuint (full->resid_maxabs->len, ==, 5 * L);
  g_assert_cmpuint (full->token_prob->len, ==, 5);

  /* Absent values. */
  g_assert_cmpint (g_array_index (full->token_ids, int32_t, 0), ==, -1);
  g_assert_cmpint (g_array_index (full->token_ids, int32_t, 2), ==, test_ids[0]);
  g_assert_cmpint (g_array_index (full->is_prompt, uint8_t, 1), ==, 1);
  g_assert_cmpint (g_array_index (full->is_prompt, uint8_t, 2), ==, 0);
  g_assert_true (isnan (g_array_index (full->token_prob, float, 4)));
  g_assert_true (isnan (g_array_index (full->next_entropy, float, 0)));
  g_assert_true (isnan (g_array_index (full->router_logits, float, 5 * L * E - 1)));
  g_assert_true (isnan (g_array_index (full->router_scores, float, 0)));
  g_assert_cmpint (g_array_index (full->topk_ids, int32_t, 7), ==, -1);
  g_assert_cmpfloat (g_array_index (full->topk_weights, float, 7), ==, 0.0f);
  g_assert_cmpint (g_array_index (full->base_topk_ids, int32_t, 0), ==, -1);
  g_assert_cmpfloat (g_array_index (full->base_topk_weights, float, 0), ==, 0.0f);
  g_assert_true (isnan (g_array_index (full->expert_out_maxabs, float, 3)));
  g_assert_cmpint (g_array_index (full->expert_out_channel, int32_t, 3), ==, -1);
  g_assert_true (isnan (g_array_index (full->shared_gate, float, 1)));
  g_assert_true (isnan (g_array_index (full->resid_maxabs, float, 1)));

  rs_trace_truncate (full, 3);
  g_assert_cmpint (full->n_tokens, ==, 3);
  g_assert_cmpuint (full->token_text->len, ==, 3);
  g_assert_cmpuint (full->router_logits->len, ==, 3 * L * E);
  g_assert_cmpuint (full->topk_weights->len, ==, 3 * L * K);
  g_assert_cmpuint (full->resid_maxabs->len, ==, 3 * L);
  rs_trace_truncate (full, 10);  /* past the end: nothing */
  g_assert_cmpint (full->n_tokens, ==, 3);
  rs_trace_truncate (full, 0);
  g_assert_cmpint (full->n_tokens, ==, 0);
  g_assert_cmpuint (full->topk_ids->len, ==, 0);

  /* Without full: ids, text, prompt flags and topk only. */
  g_autoptr (RsTrace) part = rs_trace_new (L, E, KM, K, FALSE);
  rs_trace_append_tokens (part, test_ids, 4, FALSE);
  g_assert_cmpuint (part->token_ids->len, ==, 4);
  g_assert_cmpuint (part->is_prompt->len, ==, 4);
  g_assert_cmpuint (part->token_text->len, ==, 4);
  g_assert_cmpuint (part->topk_ids->len, ==, 4 * L * K);
  g_assert_cmpuint (part->token_prob->len, ==, 0);
  g_assert_cmpuint (part->next_entropy->len, ==, 0);
  g_assert_cmpuint (part->router_logits->len, ==, 0);
  g_assert_cmpuint (part->router_scores->len, ==, 0);
  g_assert_cmpuint (part->topk_weights->len, ==, 0);
  g_assert_cmpuint (part->base_topk_ids->len, ==, 0);
  g_assert_cmpuint (part->base_topk_weights->len, ==, 0);
  g_assert_cmpuint (part->expert_out_maxabs->len, ==, 0);
  g_assert_cmpuint (part->expert_out_channel->len, ==, 0);
  g_assert_cmpuint (part->shared_gate->len, ==, 0);
  g_assert_cmpuint (part->resid_maxabs->len, ==, 0);

  rs_trace_set_metadata (part, "{\"a\": 1}");
  g_assert_cmpstr (part->metadata_json, ==, "{\"a\": 1}");
  rs_trace_set_metadata (part, NULL);
  g_assert_cmpstr (part->metadata_json, ==, "{}");

  RsTraceFormat f;
  g_assert_true (rs_trace_format_from_path ("a/run.npz", &f) && f == RS_TRACE_FORMAT_NPZ);
  g_assert_true (rs_trace_format_from_path ("RUN.JSONL", &f) && f == RS_TRACE_FORMAT_JSONL);
  g_assert_true (rs_trace_format_from_path ("x.tar.csv", &f) && f == RS_TRACE_FORMAT_CSV);
  g_assert_false (rs_trace_format_from_path ("run.json", &f));
  g_assert_false (rs_trace_format_from_path ("npz", &f));
  g_assert_false (rs_trace_format_from_path ("run.npz.bak", &f));
}

/* ---- NPZ ----------------------------------------------------------------- */

static RsTrace *
save_and_load (const RsTrace *tr, const char *dir, const char *name)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_autoptr (GError) error = NULL;
  g_assert_true (rs_trace_save (tr, path, RS_TRACE_FORMAT_NPZ, &error));
  g_assert_no_error (error);
  RsTrace *back = rs_trace_load_npz (path, &error);
  g_assert_no_error (error);
  g_assert_nonnull (back);
  return back;
}

static void
test_npz_roundtrip (void)
{
  g_autofree char *dir = temp_dir ();

  g_autoptr (RsTrace) tr = make_trace (TRUE);
  g_autoptr (RsTrace) back = save_and_load (tr, dir, "full.npz");
  assert_same_trace (tr, back);
  g_assert_cmpuint (back->router_logits->len, ==, T * L * E);

  g_autoptr (RsTrace) part = make_trace (FALSE);
  g_autoptr (RsTrace) part_back = save_and_load (part, dir, "part.npz");
  assert_same_trace (part, part_back);
  g_assert_cmpuint (part_back->topk_weights->len, ==, 0);

  /* An empty trace keeps which arrays it records. */
  g_autoptr (RsTrace) empty = rs_trace_new (L, E, KM, K, TRUE);
  g_autoptr (RsTrace) empty_back = save_and_load (empty, dir, "empty.npz");
  assert_same_trace (empty, empty_back);
  rs_trace_append_tokens (empty_back, NULL, 1, FALSE);
  g_assert_cmpuint (empty_back->router_logits->len, ==, L * E);

  /* The members: one .npy per recorded array, 64-byte aligned data. */
  g_autofree char *path = g_build_filename (dir, "part.npz", NULL);
  int zerr = 0;
  zip_t *za = zip_open (path, ZIP_RDONLY, &zerr);
  g_assert_nonnull (za);
  g_assert_cmpint (zip_get_num_entries (za, 0), ==, 5);
  zip_file_t *zf = zip_fopen (za, "topk_ids.npy", 0);
  g_assert_nonnull (zf);
  char head[256] = { 0 };
  g_assert_cmpint (zip_fread (zf, head, 128), ==, 128);
  zip_fclose (zf);
  g_assert_cmpmem (head, 8, "\x93NUMPY\x01\x00", 8);
  int hlen = (guint8) head[8] | (guint8) head[9] << 8;
  g_assert_cmpint ((10 + hlen) % 64, ==, 0);
  g_assert_cmpint (head[10 + hlen - 1], ==, '\n');
  const char *dict = "{'descr': '<i4', 'fortran_order': False, 'shape': (5, 3, 3), }";
  g_assert_cmpmem (head + 10, strlen (dict), dict, strlen (dict));
  g_assert_true (zip_name_locate (za, "token_text.json", 0) >= 0);
  g_assert_true (zip_name_locate (za, "metadata.json", 0) >= 0);
  g_assert_true (zip_name_locate (za, "router_logits.npy", 0) < 0);
  zip_discard (za);

  remove_tree (dir);
}

static gboolean
have_numpy (void)
{
  if (!g_file_test ("/usr/bin/python3", G_FILE_TEST_IS_EXECUTABLE))
    return FALSE;
  const char *argv[] = { "/usr/bin/python3", "-c", "import numpy", NULL };
  int status = 1;
  if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL,
                     NULL, NULL, NULL, NULL, &status, NULL))
    return FALSE;
  return g_spawn_check_wait_status (status, NULL);
}

static void
run_python (const char *script, const char *const *args)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_ptr_array_add (argv, (char *) "/usr/bin/python3");
  g_ptr_array_add (argv, (char *) "-c");
  g_ptr_array_add (argv, (char *) script);
  for (int i = 0; args[i] != NULL; i++)
    g_ptr_array_add (argv, (char *) args[i]);
  g_ptr_array_add (argv, NULL);
  g_autofree char *out = NULL, *err = NULL;
  int status = 0;
  g_autoptr (GError) error = NULL;
  g_assert_true (g_spawn_sync (NULL, (char **) argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                               &out, &err, &status, &error));
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("python check failed:\n%s\n%s", out, err);
  g_test_message ("python: %s", out);
}

static void
test_numpy_reads_npz (void)
{
  if (!have_numpy ())
    {
      g_test_skip ("needs /usr/bin/python3 with numpy (tools/install-deps.sh --test)");
      return;
    }
  g_autofree char *dir = temp_dir ();
  g_autofree char *npz = g_build_filename (dir, "run.npz", NULL);
  g_autofree char *csv = g_build_filename (dir, "run.csv", NULL);
  g_autoptr (RsTrace) tr = make_trace (TRUE);
  g_autoptr (GError) error = NULL;
  g_assert_true (rs_trace_save (tr, npz, RS_TRACE_FORMAT_NPZ, &error));
  g_assert_true (rs_trace_save (tr, csv, RS_TRACE_FORMAT_CSV, &error));
  g_assert_no_error (error);

  /* Expected values computed here, printed exactly. */
  char w[G_ASCII_DTOSTR_BUF_SIZE], lg[G_ASCII_DTOSTR_BUF_SIZE];
  g_ascii_dtostr (w, sizeof w, weight_of (1, 1));
  g_ascii_dtostr (lg, sizeof lg, g_array_index (tr->router_logits, float, (4 * L + 2) * E + 5));
  int n_rows = 0;
  for (int t = 0; t < T; t++)
    for (int l = 1; l < L; l++)
      n_rows += fill_of (t, l);
  g_autofree char *rows = g_strdup_printf ("%d", n_rows);

  const char *script =
    "import sys, json, csv\n"
    "import numpy as np\n"
    "d = np.load(sys.argv[1])\n"
    "T, L, E, K = 5, 3, 8, 3\n"
    "want = {'token_ids': ('int32', (T,)), 'is_prompt': ('uint8', (T,)),\n"
    "        'token_prob': ('float32', (T,)), 'next_entropy': ('float32', (T,)),\n"
    "        'router_logits': ('float32', (T, L, E)), 'router_scores': ('float32', (T, L, E)),\n"
    "        'topk_ids': ('int32', (T, L, K)), 'topk_weights': ('float32', (T, L, K)),\n"
    "        'base_topk_ids': ('int32', (T, L, K)), 'base_topk_weights': ('float32', (T, L, K)),\n"
    "        'expert_out_maxabs': ('float32', (T, L, K)), 'expert_out_channel': ('int32', (T, L, K)),\n"
    "        'shared_gate': ('float32', (T, L)), 'resid_maxabs': ('float32', (T, L))}\n"
    "for name, (dtype, shape) in want.items():\n"
    "    a = d[name]\n"
    "    assert a.dtype == np.dtype(dtype) and a.shape == shape, (name, a.dtype, a.shape)\n"
    "assert d['token_ids'].tolist() == [1, 450, 4996, 17354, 2318]\n"
    "assert d['is_prompt'].tolist() == [1, 1, 1, 0, 0]\n"
    "assert d['topk_ids'][0, 0].tolist() == [-1, -1, -1]\n"
    "assert d['topk_ids'][1, 1].tolist() == [3, 6, 1]\n"
    "assert d['topk_ids'][0, 1].tolist() == [2, 5, -1]\n"
    "assert np.isnan(d['router_logits'][:, 0]).all()\n"
    "assert d['topk_weights'][1, 1, 1] == np.float32(float(sys.argv[2]))\n"
    "assert d['router_logits'][4, 2, 5] == np.float32(float(sys.argv[3]))\n"
    "assert np.isnan(d['token_prob'][0]) and d['token_prob'][3] == np.float32(0.125)\n"
    "assert d['base_topk_ids'][3, 1, 0] != d['topk_ids'][3, 1, 0]\n"
    "meta = json.loads(d['metadata.json'])\n"
    "assert meta['format'] == 'routescope-trace' and meta['version'] == 1\n"
    "assert (meta['n_layer'], meta['n_expert'], meta['k_slots'], meta['k_model'], meta['n_tokens']) == (3, 8, 3, 2, 5)\n"
    "assert meta['model'] == 'test.gguf' and meta['nested']['a'][1] == 2.5\n"
    "text = json.loads(d['token_text.json'])\n"
    "assert text[3] == ' gr\\u00fc\\u00dfe \\u4e16\\u754c' and text[2] == ' \"quoted\"\\\\ back\\nline\\t', text\n"
    "rows = list(csv.DictReader(open(sys.argv[4])))\n"
    "assert len(rows) == int(sys.argv[5]), len(rows)\n"
    "r = [x for x in rows if (x['token'], x['layer'], x['rank']) == ('1', '1', '1')][0]\n"
    "assert r['expert'] == '6' and np.float32(float(r['weight'])) == np.float32(float(sys.argv[2]))\n"
    "assert r['out_channel'] == '111'\n"
    "print('numpy', np.__version__, 'read', len(d.files), 'members')\n";
  const char *args[] = { npz, w, lg, csv, rows, NULL };
  run_python (script, args);
  remove_tree (dir);
}

/* ---- JSONL and CSV ------------------------------------------------------- */

static char **
read_lines (const char *path, int *n)
{
  g_autofree char *text = NULL;
  g_autoptr (GError) error = NULL;
  g_assert_true (g_file_get_contents (path, &text, NULL, &error));
  g_assert_true (g_str_has_suffix (text, "\n"));
  text[strlen (text) - 1] = 0;
  char **lines = g_strsplit (text, "\n", -1);
  *n = (int) g_strv_length (lines);
  return lines;
}

static JsonNode *
parse_line (const char *line)
{
  g_autoptr (JsonParser) p = json_parser_new ();
  g_autoptr (GError) error = NULL;
  if (!json_parser_load_from_data (p, line, -1, &error))
    g_error ("bad JSONL line '%s': %s", line, error->message);
  return json_node_copy (json_parser_get_root (p));
}

/* A JSON number or null as float (null: NaN). */
static float
json_float (JsonNode *n)
{
  if (JSON_NODE_HOLDS_NULL (n))
    return NAN;
  return (float) json_node_get_double (n);
}

static void
assert_float_eq (float got, float want)
{
  if (isnan (want))
    g_assert_true (isnan (got));
  else
    g_assert_cmpfloat (got, ==, want);
}

static void
test_jsonl (void)
{
  g_autofree char *dir = temp_dir ();
  g_autofree char *path = g_build_filename (dir, "run.jsonl", NULL);
  g_autoptr (RsTrace) tr = make_trace (TRUE);
  g_autoptr (GError) error = NULL;
  g_assert_true (rs_trace_save (tr, path, RS_TRACE_FORMAT_JSONL, &error));
  g_assert_no_error (error);

  int n = 0;
  g_auto (GStrv) lines = read_lines (path, &n);
  g_assert_cmpint (n, ==, T + 1);

  g_autoptr (JsonNode) head = parse_line (lines[0]);
  JsonObject *ho = json_node_get_object (head);
  g_assert_cmpstr (json_object_get_string_member (ho, "format"), ==, "routescope-trace");
  g_assert_cmpint (json_object_get_int_member (ho, "version"), ==, 1);
  g_assert_cmpint (json_object_get_int_member (ho, "n_layer"), ==, L);
  g_assert_cmpint (json_object_get_int_member (ho, "n_expert"), ==, E);
  g_assert_cmpint (json_object_get_int_member (ho, "k_slots"), ==, K);
  g_autoptr (JsonParser) mp = json_parser_new ();
  g_assert_true (json_parser_load_from_data (mp, test_meta, -1, NULL));
  g_assert_true (json_node_equal (json_object_get_member (ho, "metadata"), json_parser_get_root (mp)));

  for (int t = 0; t < T; t++)
    {
      g_autoptr (JsonNode) node = parse_line (lines[t + 1]);
      JsonObject *o = json_node_get_object (node);
      g_assert_cmpint (json_object_get_int_member (o, "t"), ==, t);
      g_assert_cmpint (json_object_get_int_member (o, "id"), ==, test_ids[t]);
      g_assert_cmpstr (json_object_get_string_member (o, "text"), ==, test_text[t]);
      g_assert_cmpint (json_object_get_boolean_member (o, "prompt"), ==, t < N_PROMPT);
      assert_float_eq (json_float (json_object_get_member (o, "prob")),
                       g_array_index (tr->token_prob, float, t));
      assert_float_eq (json_float (json_object_get_member (o, "entropy")),
                       g_array_index (tr->next_entropy, float, t));

      JsonArray *layers = json_object_get_array_member (o, "layers");
      g_assert_cmpuint (json_array_get_length (layers), ==, L - 1);  /* the dense layer is omitted */
      for (int l = 1; l < L; l++)
        {
          JsonObject *lo = json_array_get_object_element (layers, l - 1);
          int64_t tl = (int64_t) t * L + l;
          g_assert_cmpint (json_object_get_int_member (lo, "layer"), ==, l);
          JsonArray *ex = json_object_get_array_member (lo, "experts");
          JsonArray *wt = json_object_get_array_member (lo, "weights");
          JsonArray *mx = json_object_get_array_member (lo, "maxabs");
          JsonArray *ch = json_object_get_array_member (lo, "channel");
          g_assert_cmpuint (json_array_get_length (ex), ==, fill_of (t, l));
          g_assert_cmpuint (json_array_get_length (wt), ==, fill_of (t, l));
          g_assert_cmpuint (json_array_get_length (mx), ==, fill_of (t, l));
          g_assert_cmpuint (json_array_get_length (ch), ==, fill_of (t, l));
          for (int j = 0; j < fill_of (t, l); j++)
            {
              g_assert_cmpint (json_array_get_int_element (ex, j), ==, id_of (t, l, j));
              assert_float_eq ((float) json_array_get_double_element (wt, j), weight_of (t, j));
              assert_float_eq ((float) json_array_get_double_element (mx, j),
                               g_array_index (tr->expert_out_maxabs, float, tl * K + j));
              g_assert_cmpint (json_array_get_int_element (ch, j), ==, t * 100 + l * 10 + j);
            }
          gboolean intervened = t == 3 && l == 1;
          g_assert_cmpint (json_object_has_member (lo, "base_experts"), ==, intervened);
          if (intervened)
            {
              JsonArray *be = json_object_get_array_member (lo, "base_experts");
              JsonArray *bw = json_object_get_array_member (lo, "base_weights");
              g_assert_cmpint (json_array_get_int_element (be, 0), ==, (id_of (t, l, 0) + 1) % E);
              assert_float_eq ((float) json_array_get_double_element (bw, 0), weight_of (t, 0) / 3.0f);
            }
          assert_float_eq (json_float (json_object_get_member (lo, "resid_maxabs")),
                           g_array_index (tr->resid_maxabs, float, tl));
          assert_float_eq (json_float (json_object_get_member (lo, "shared_gate")),
                           g_array_index (tr->shared_gate, float, tl));
          JsonArray *lg = json_object_get_array_member (lo, "logits");
          JsonArray *sc = json_object_get_array_member (lo, "scores");
          g_assert_cmpuint (json_array_get_length (lg), ==, E);
          g_assert_cmpuint (json_array_get_length (sc), ==, E);
          for (int e = 0; e < E; e++)
            {
              assert_float_eq ((float) json_array_get_double_element (lg, e),
                               g_array_index (tr->router_logits, float, tl * E + e));
              assert_float_eq ((float) json_array_get_double_element (sc, e),
                               g_array_index (tr->router_scores, float, tl * E + e));
            }
        }
    }

  /* Without full: ids, text and experts; prob and entropy null. */
  g_autoptr (RsTrace) part = make_trace (FALSE);
  g_assert_true (rs_trace_save (part, path, RS_TRACE_FORMAT_JSONL, &error));
  g_auto (GStrv) plines = read_lines (path, &n);
  g_assert_cmpint (n, ==, T + 1);
  g_autoptr (JsonNode) p1 = parse_line (plines[2]);
  JsonObject *o = json_node_get_object (p1);
  g_assert_true (JSON_NODE_HOLDS_NULL (json_object_get_member (o, "prob")));
  JsonObject *lo = json_array_get_object_element (json_object_get_array_member (o, "layers"), 0);
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (lo, "experts")), ==,
                    fill_of (1, 1));
  g_assert_false (json_object_has_member (lo, "weights"));
  g_assert_false (json_object_has_member (lo, "logits"));

  remove_tree (dir);
}

static void
test_csv (void)
{
  g_autofree char *dir = temp_dir ();
  g_autofree char *path = g_build_filename (dir, "run.csv", NULL);
  g_autoptr (RsTrace) tr = make_trace (TRUE);
  g_autoptr (GError) error = NULL;
  g_assert_true (rs_trace_save (tr, path, RS_TRACE_FORMAT_CSV, &error));
  g_assert_no_error (error);

  int n = 0;
  g_auto (GStrv) lines = read_lines (path, &n);
  g_assert_cmpstr (lines[0], ==,
                   "token,layer,rank,expert,weight,base_expert,base_weight,out_maxabs,out_channel");
  int row = 1;
  for (int t = 0; t < T; t++)
    for (int l = 1; l < L; l++)
      for (int j = 0; j < fill_of (t, l); j++, row++)
        {
          g_assert_cmpint (row, <, n);
          g_auto (GStrv) f = g_strsplit (lines[row], ",", -1);
          g_assert_cmpuint (g_strv_length (f), ==, 9);
          int64_t i = ((int64_t) t * L + l) * K + j;
          g_assert_cmpint (atoi (f[0]), ==, t);
          g_assert_cmpint (atoi (f[1]), ==, l);
          g_assert_cmpint (atoi (f[2]), ==, j);
          g_assert_cmpint (atoi (f[3]), ==, id_of (t, l, j));
          assert_float_eq ((float) g_ascii_strtod (f[4], NULL), weight_of (t, j));
          g_assert_cmpint (atoi (f[5]), ==, g_array_index (tr->base_topk_ids, int32_t, i));
          assert_float_eq ((float) g_ascii_strtod (f[6], NULL),
                           g_array_index (tr->base_topk_weights, float, i));
          assert_float_eq ((float) g_ascii_strtod (f[7], NULL),
                           g_array_index (tr->expert_out_maxabs, float, i));
          g_assert_cmpint (atoi (f[8]), ==, t * 100 + l * 10 + j);
        }
  g_assert_cmpint (row, ==, n);

  /* A comma-decimal locale does not leak into the file. */
  g_autofree char *saved = g_strdup (setlocale (LC_NUMERIC, NULL));
  if (setlocale (LC_NUMERIC, "de_DE.UTF-8") != NULL || setlocale (LC_NUMERIC, "fr_FR.UTF-8") != NULL)
    {
      g_assert_true (rs_trace_save (tr, path, RS_TRACE_FORMAT_CSV, &error));
      setlocale (LC_NUMERIC, saved);
      g_auto (GStrv) llines = read_lines (path, &n);
      g_assert_cmpstr (llines[1], ==, lines[1]);
    }
  else
    g_test_message ("no comma-decimal locale installed: locale check skipped");

  /* Without full: weight and the rest are empty cells. */
  g_autoptr (RsTrace) part = make_trace (FALSE);
  g_assert_true (rs_trace_save (part, path, RS_TRACE_FORMAT_CSV, &error));
  g_auto (GStrv) plines = read_lines (path, &n);
  g_assert_cmpint (n, ==, row);
  g_assert_cmpstr (plines[1], ==, "0,1,0,2,,,,,");
  remove_tree (dir);
}

/* ---- atomic saving ------------------------------------------------------- */

static const RsTraceFormat all_formats[] = {
  RS_TRACE_FORMAT_NPZ, RS_TRACE_FORMAT_JSONL, RS_TRACE_FORMAT_CSV,
};

static void
test_save_unwritable (void)
{
  g_autoptr (RsTrace) tr = make_trace (TRUE);
  for (size_t f = 0; f < G_N_ELEMENTS (all_formats); f++)
    {
      g_autoptr (GError) error = NULL;
      const char *path = "/proc/nonexistent/x.npz";
      g_assert_false (rs_trace_save (tr, path, all_formats[f], &error));
      assert_error_mentions (error, RS_ERROR_IO, path);
    }

  /* A folder that is a file; a folder without write permission (root
   * may write anyway, so only checked when it refuses). */
  g_autofree char *dir = temp_dir ();
  g_autofree char *file = g_build_filename (dir, "plain", NULL);
  g_assert_true (g_file_set_contents (file, "x", 1, NULL));
  g_autofree char *under = g_build_filename (file, "run.csv", NULL);
  g_autoptr (GError) error = NULL;
  g_assert_false (rs_trace_save (tr, under, RS_TRACE_FORMAT_CSV, &error));
  assert_error_mentions (error, RS_ERROR_IO, under);
  g_clear_error (&error);

  /* A trace resized by hand is refused, and nothing is written. */
  g_autofree char *odd = g_build_filename (dir, "odd.jsonl", NULL);
  g_autoptr (RsTrace) broken = make_trace (TRUE);
  g_array_set_size (broken->router_scores, 7);
  g_assert_false (rs_trace_save (broken, odd, RS_TRACE_FORMAT_JSONL, &error));
  assert_error_mentions (error, RS_ERROR_INVALID, "router_scores");
  g_clear_error (&error);
  g_assert_false (g_file_test (odd, G_FILE_TEST_EXISTS));

  g_autofree char *ro = g_build_filename (dir, "ro", NULL);
  g_assert_cmpint (g_mkdir (ro, 0555), ==, 0);
  g_autofree char *in_ro = g_build_filename (ro, "run.npz", NULL);
  if (!rs_trace_save (tr, in_ro, RS_TRACE_FORMAT_NPZ, &error))
    {
      assert_error_mentions (error, RS_ERROR_IO, in_ro);
      g_autofree char *list = dir_listing (ro);
      g_assert_cmpstr (list, ==, "");
    }
  else
    g_test_message ("read-only folder writable (running as root)");
  g_clear_error (&error);
  g_chmod (ro, 0755);
  remove_tree (dir);
}

/* A save that fails after its temporary file exists: the destination
 * keeps its old contents and no temporary file is left behind. */
static void
test_save_failure_keeps_destination (void)
{
  /* Enough random-looking floats that no format fits in 4 KiB. */
  g_autoptr (RsTrace) big = rs_trace_new (4, 64, 2, 4, TRUE);
  rs_trace_append_tokens (big, NULL, 64, FALSE);
  for (guint i = 0; i < big->router_logits->len; i++)
    g_array_index (big->router_logits, float, i) = sinf ((float) i * 1.7f) * 1e3f;
  for (guint i = 0; i < big->topk_ids->len; i++)
    {
      g_array_index (big->topk_ids, int32_t, i) = (int32_t) (i * 7 % 64);
      g_array_index (big->topk_weights, float, i) = cosf ((float) i);
    }

  g_autofree char *dir = temp_dir ();
  static const char *const names[] = { "run.npz", "run.jsonl", "run.csv" };
  struct rlimit saved;
  g_assert_cmpint (getrlimit (RLIMIT_FSIZE, &saved), ==, 0);
  void (*old_handler) (int) = signal (SIGXFSZ, SIG_IGN);

  for (size_t f = 0; f < G_N_ELEMENTS (all_formats); f++)
    {
      g_autofree char *path = g_build_filename (dir, names[f], NULL);
      g_assert_true (g_file_set_contents (path, "old contents", -1, NULL));

      /* Writes past 4 KiB fail with EFBIG, even for root. */
      struct rlimit small = saved;
      small.rlim_cur = 4096;
      g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &small), ==, 0);
      g_autoptr (GError) error = NULL;
      gboolean ok = rs_trace_save (big, path, all_formats[f], &error);
      g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &saved), ==, 0);

      g_assert_false (ok);
      assert_error_mentions (error, RS_ERROR_IO, path);
      g_autofree char *contents = NULL;
      g_assert_true (g_file_get_contents (path, &contents, NULL, NULL));
      g_assert_cmpstr (contents, ==, "old contents");
      g_clear_error (&error);

      /* And the same save without the limit replaces it. */
      g_assert_true (rs_trace_save (big, path, all_formats[f], &error));
      g_assert_no_error (error);
    }
  signal (SIGXFSZ, old_handler);
  g_autofree char *list = dir_listing (dir);
  g_assert_cmpstr (list, ==, "run.csv run.jsonl run.npz");

  /* The destination is a folder: the rename fails, the temporary goes. */
  g_autofree char *sub = g_build_filename (dir, "taken.npz", NULL);
  g_autofree char *inside = g_build_filename (sub, "keep", NULL);
  g_assert_cmpint (g_mkdir (sub, 0755), ==, 0);
  g_assert_true (g_file_set_contents (inside, "k", 1, NULL));
  g_autoptr (RsTrace) tr = make_trace (FALSE);
  for (size_t f = 0; f < G_N_ELEMENTS (all_formats); f++)
    {
      g_autoptr (GError) error = NULL;
      g_assert_false (rs_trace_save (tr, sub, all_formats[f], &error));
      assert_error_mentions (error, RS_ERROR_IO, sub);
    }
  g_autofree char *list2 = dir_listing (dir);
  g_assert_cmpstr (list2, ==, "run.csv run.jsonl run.npz taken.npz");
  g_assert_true (g_file_test (inside, G_FILE_TEST_IS_REGULAR));
  remove_tree (dir);
}

/* ---- imports ------------------------------------------------------------- */

static int
route (int t, int l, int j)  /* the fixtures' routing */
{
  return (3 * t + 2 * l + 5 * j) % 8;
}

static const int32_t fixture_ids[7] = { 1, 450, 4996, 17354, 2318, 1701, 29889 };

static char *
fixture (const char *name)
{
  return g_test_build_filename (G_TEST_DIST, "data", "trace", name, NULL);
}

/* T = 7 tokens (4 prompt), 3 MoE layers, k = 2; token 0 prefix-cached. */
static void
check_vllm (const RsTrace *tr, gboolean ids_known, int n_expert)
{
  g_assert_nonnull (tr);
  g_assert_cmpint (tr->n_tokens, ==, 7);
  g_assert_cmpint (tr->n_layer, ==, 3);
  g_assert_cmpint (tr->k_slots, ==, 2);
  g_assert_cmpint (tr->k_model, ==, 2);
  g_assert_cmpint (tr->n_expert, ==, n_expert);
  g_assert_cmpuint (tr->topk_ids->len, ==, 7 * 3 * 2);
  g_assert_cmpuint (tr->topk_weights->len, ==, 0);
  for (int t = 0; t < 7; t++)
    {
      g_assert_cmpint (g_array_index (tr->token_ids, int32_t, t), ==, ids_known ? fixture_ids[t] : -1);
      if (ids_known)
        g_assert_cmpint (g_array_index (tr->is_prompt, uint8_t, t), ==, t < 4);
      for (int l = 0; l < 3; l++)
        for (int j = 0; j < 2; j++)
          g_assert_cmpint (g_array_index (tr->topk_ids, int32_t, (t * 3 + l) * 2 + j), ==,
                           t == 0 ? -1 : route (t, l, j));
    }
  g_assert_true (strstr (tr->metadata_json, "\"source\":\"vllm\"") != NULL);
}

static void
test_import_vllm (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *npy = fixture ("vllm-routed-experts.npy");
  g_autofree char *npz = fixture ("vllm-request.npz");
  g_autofree char *json = fixture ("vllm-completions.json");

  g_autoptr (RsTrace) a = rs_trace_import_vllm (npy, 0, &error);
  g_assert_no_error (error);
  check_vllm (a, FALSE, 8);  /* 8 = max id 7 + 1 */

  g_autoptr (RsTrace) b = rs_trace_import_vllm (npz, 16, &error);
  g_assert_no_error (error);
  check_vllm (b, TRUE, 16);
  g_assert_true (strstr (b->metadata_json, "\"prompt_tokens\":4") != NULL);

  g_autoptr (RsTrace) c = rs_trace_import_vllm (json, 0, &error);
  g_assert_no_error (error);
  check_vllm (c, TRUE, 8);

  /* The imported trace saves and loads like any other. */
  g_autofree char *dir = temp_dir ();
  g_autoptr (RsTrace) back = save_and_load (c, dir, "vllm.npz");
  assert_same_trace (c, back);
  remove_tree (dir);

  /* Ids beyond the given number of experts. */
  g_autoptr (RsTrace) d = rs_trace_import_vllm (npz, 4, &error);
  g_assert_null (d);
  assert_error_mentions (error, RS_ERROR_FORMAT, "out of range for 4 experts");
  g_clear_error (&error);

  g_autoptr (RsTrace) e = rs_trace_import_vllm ("/nonexistent/r.npy", 0, &error);
  g_assert_null (e);
  assert_error_mentions (error, RS_ERROR_IO, "/nonexistent/r.npy");
}

static void
check_sglang (const RsTrace *tr, gboolean ids_known)
{
  g_assert_nonnull (tr);
  /* All 7 tokens; SGLang routes P + C - 1 = 6 of them over 4 layers. */
  g_assert_cmpint (tr->n_tokens, ==, 7);
  g_assert_cmpint (tr->n_layer, ==, 4);
  g_assert_cmpint (tr->k_slots, ==, 2);
  g_assert_cmpint (tr->n_expert, ==, 8);
  for (int t = 0; t < 7; t++)
    {
      g_assert_cmpint (g_array_index (tr->is_prompt, uint8_t, t), ==, t < 4);
      g_assert_cmpint (g_array_index (tr->token_ids, int32_t, t), ==, ids_known ? fixture_ids[t] : -1);
      for (int l = 0; l < 4; l++)
        for (int j = 0; j < 2; j++)
          {
            /* Layer 0 is dense (zeros in the file), the last token never ran. */
            int want = l == 0 || t == 6 ? -1 : route (t, l - 1, j);
            g_assert_cmpint (g_array_index (tr->topk_ids, int32_t, (t * 4 + l) * 2 + j), ==, want);
          }
    }
  g_assert_true (strstr (tr->metadata_json, "\"source\":\"sglang\"") != NULL);
}

static void
test_import_sglang (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *gen = fixture ("sglang-generate.json");
  g_autofree char *chat = fixture ("sglang-chat.json");

  g_autoptr (RsTrace) a = rs_trace_import_sglang (gen, 4, 8, &error);
  g_assert_no_error (error);
  check_sglang (a, TRUE);
  g_assert_cmpstr (g_ptr_array_index (a->token_text, 2), ==, " quick");
  g_assert_cmpstr (g_ptr_array_index (a->token_text, 4), ==, " fox");

  g_autoptr (RsTrace) b = rs_trace_import_sglang (chat, 4, 0, &error);
  g_assert_no_error (error);
  check_sglang (b, FALSE);

  /* The flat array does not split into 5 layers. */
  g_autoptr (RsTrace) c = rs_trace_import_sglang (gen, 5, 8, &error);
  g_assert_null (c);
  assert_error_mentions (error, RS_ERROR_FORMAT, gen);
  g_clear_error (&error);

  g_autoptr (RsTrace) d = rs_trace_import_sglang (gen, 0, 8, &error);
  g_assert_null (d);
  assert_error_mentions (error, RS_ERROR_INVALID, "layers");
  g_clear_error (&error);

  /* A vLLM response is not an SGLang one. */
  g_autofree char *vllm = fixture ("vllm-completions.json");
  g_autoptr (RsTrace) e = rs_trace_import_sglang (vllm, 3, 8, &error);
  g_assert_null (e);
  assert_error_mentions (error, RS_ERROR_FORMAT, "routed_experts");
}

/* ---- malformed input ----------------------------------------------------- */

/* @dst: a copy of the NPZ @src with member @name replaced by @data
 * (or removed when @data is NULL). */
static void
npz_with_member (const char *src, const char *dst, const char *name, const void *data, size_t len)
{
  int zerr = 0;
  zip_t *in = zip_open (src, ZIP_RDONLY, &zerr);
  g_assert_nonnull (in);
  g_unlink (dst);
  zip_t *out = zip_open (dst, ZIP_CREATE | ZIP_TRUNCATE, &zerr);
  g_assert_nonnull (out);
  for (zip_int64_t i = 0; i < zip_get_num_entries (in, 0); i++)
    {
      const char *n = zip_get_name (in, (zip_uint64_t) i, 0);
      if (strcmp (n, name) == 0)
        continue;
      zip_source_t *s = zip_source_zip (out, in, (zip_uint64_t) i, 0, 0, -1);
      g_assert_cmpint (zip_file_add (out, n, s, 0), >=, 0);
    }
  if (data != NULL)
    {
      zip_source_t *s = zip_source_buffer (out, data, len, 0);
      g_assert_cmpint (zip_file_add (out, name, s, 0), >=, 0);
    }
  g_assert_cmpint (zip_close (out), ==, 0);
  zip_discard (in);
}

/* A .npy with header dict @dict (padded to 64) and @data_len zero bytes. */
static GBytes *
npy_bytes (const char *dict, int major, size_t data_len)
{
  GByteArray *b = g_byte_array_new ();
  size_t pre = major == 1 ? 10 : 12;
  size_t hlen = strlen (dict) + 1;
  hlen += (64 - (pre + hlen) % 64) % 64;
  g_byte_array_append (b, (const guint8 *) "\x93NUMPY", 6);
  guint8 ver[2] = { (guint8) major, 0 };
  g_byte_array_append (b, ver, 2);
  guint8 len[4] = { hlen & 0xff, (hlen >> 8) & 0xff, (hlen >> 16) & 0xff, 0 };
  g_byte_array_append (b, len, major == 1 ? 2 : 4);
  g_byte_array_append (b, (const guint8 *) dict, strlen (dict));
  for (size_t i = strlen (dict); i < hlen - 1; i++)
    g_byte_array_append (b, (const guint8 *) " ", 1);
  g_byte_array_append (b, (const guint8 *) "\n", 1);
  g_byte_array_set_size (b, b->len + data_len);
  memset (b->data + b->len - data_len, 0, data_len);
  return g_byte_array_free_to_bytes (b);
}

/* Without g_file_set_contents's fsync: the loops below write hundreds. */
static void
write_fast (const char *path, const char *data, gsize len)
{
  g_assert_true (g_file_set_contents_full (path, data, (gssize) len, G_FILE_SET_CONTENTS_NONE,
                                           0644, NULL));
}

typedef struct {
  const char *dict;
  int         major;
  size_t      data_len;
  int         code;
  const char *fragment;
} BadNpy;

static void
test_malformed_npz (void)
{
  g_autofree char *dir = temp_dir ();
  g_autofree char *good = g_build_filename (dir, "good.npz", NULL);
  g_autofree char *bad = g_build_filename (dir, "bad.npz", NULL);
  g_autoptr (RsTrace) tr = make_trace (FALSE);  /* topk_ids (5, 3, 3) <i4 = 180 bytes */
  g_autoptr (GError) error = NULL;
  g_assert_true (rs_trace_save (tr, good, RS_TRACE_FORMAT_NPZ, &error));

  /* Not there, not a zip, truncated. */
  g_autofree char *missing = g_build_filename (dir, "missing.npz", NULL);
  g_assert_null (rs_trace_load_npz (missing, &error));
  assert_error_mentions (error, RS_ERROR_IO, missing);
  g_clear_error (&error);
  g_assert_true (g_file_set_contents (bad, "just some text\n", -1, NULL));
  g_assert_null (rs_trace_load_npz (bad, &error));
  assert_error_mentions (error, RS_ERROR_FORMAT, bad);
  g_clear_error (&error);
  g_autofree char *bytes = NULL;
  gsize n = 0;
  g_assert_true (g_file_get_contents (good, &bytes, &n, NULL));
  g_assert_true (g_file_set_contents (bad, bytes, (gssize) n / 2, NULL));
  g_assert_null (rs_trace_load_npz (bad, &error));
  assert_error_mentions (error, RS_ERROR_FORMAT, bad);
  g_clear_error (&error);

  /* Bad .npy members. */
  const char *ok_dict = "{'descr': '<i4', 'fortran_order': False, 'shape': (5, 3, 3), }";
  const BadNpy cases[] = {
    { ok_dict, 1, 179, RS_ERROR_FORMAT, "truncated" },
    { ok_dict, 1, 184, RS_ERROR_FORMAT, "longer" },
    { ok_dict, 2, 180, 0, NULL },  /* version 2.0 is fine */
    { ok_dict, 3, 180, RS_ERROR_UNSUPPORTED, "3.0" },
    { "{'descr': '<f8', 'fortran_order': False, 'shape': (5, 3, 3), }", 1, 360,
      RS_ERROR_UNSUPPORTED, "<f8" },
    { "{'descr': '<f4', 'fortran_order': False, 'shape': (5, 3, 3), }", 1, 180,
      RS_ERROR_FORMAT, "expected <i4" },
    { "{'descr': '<i4', 'fortran_order': True, 'shape': (5, 3, 3), }", 1, 180,
      RS_ERROR_UNSUPPORTED, "Fortran" },
    { "{'descr': '<i4', 'fortran_order': False, 'shape': (5, 3, 4), }", 1, 240,
      RS_ERROR_FORMAT, "(5, 3, 3)" },
    { "{'descr': '<i4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 3), }", 1, 0,
      RS_ERROR_FORMAT, "overflow" },
    { "{'descr': '<i4', 'fortran_order': False, 'shape': (99999999999999999999, 3, 3), }", 1, 0,
      RS_ERROR_FORMAT, "overflow" },
    { "{'descr': '<i4', 'fortran_order': False, 'shape': (5, 3, 3, }", 1, 180,
      RS_ERROR_FORMAT, "header" },
    { "{'descr': '<i4', 'fortran_order': False}", 1, 180, RS_ERROR_FORMAT, "header" },
    { "{'descr': '<i4', 'fortran_order': False, 'shape': (5, 3, 3), 'x': 1}", 1, 180,
      RS_ERROR_FORMAT, "'x'" },
    { "[1, 2, 3]", 1, 180, RS_ERROR_FORMAT, "header" },
    { "{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (5, 3, 3), }", 1, 180,
      RS_ERROR_UNSUPPORTED, "structured" },
  };
  for (size_t i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GBytes) npy = npy_bytes (cases[i].dict, cases[i].major, cases[i].data_len);
      npz_with_member (good, bad, "topk_ids.npy", g_bytes_get_data (npy, NULL), g_bytes_get_size (npy));
      g_autoptr (RsTrace) t = rs_trace_load_npz (bad, &error);
      if (cases[i].code == 0)
        {
          g_assert_no_error (error);
          g_assert_nonnull (t);
          continue;
        }
      g_assert_null (t);
      assert_error_mentions (error, cases[i].code, cases[i].fragment);
      g_assert_nonnull (strstr (error->message, "topk_ids.npy"));
      g_clear_error (&error);
    }

  /* Raw garbage headers. */
  static const struct { const char *bytes; size_t len; const char *fragment; } raw[] = {
    { "\x93NUMPX\x01\x00\x10\x00", 10, "magic" },
    { "\x93NUM", 5, "truncated" },
    { "\x93NUMPY\x01\x00\xff\x00{'descr'", 19, "truncated" },
    { "\x93NUMPY\x07\x00\x10\x00", 10, "version" },
    { "\x93NUMPY\x02\x00\xff\xff\xff\x7f", 12, "header length" },
  };
  for (size_t i = 0; i < G_N_ELEMENTS (raw); i++)
    {
      npz_with_member (good, bad, "topk_ids.npy", raw[i].bytes, raw[i].len);
      g_assert_null (rs_trace_load_npz (bad, &error));
      assert_error_mentions (error, RS_ERROR_FORMAT, raw[i].fragment);
      g_clear_error (&error);
    }

  /* Metadata: missing, not ours, a later version, absurd sizes. */
  npz_with_member (good, bad, "metadata.json", NULL, 0);
  g_assert_null (rs_trace_load_npz (bad, &error));
  assert_error_mentions (error, RS_ERROR_FORMAT, "metadata.json");
  g_clear_error (&error);
  static const struct { const char *json; int code; const char *fragment; } metas[] = {
    { "{\"format\": \"other\", \"version\": 1}", RS_ERROR_FORMAT, "not a Routescope trace" },
    { "{\"format\": \"routescope-trace\", \"version\": 2}", RS_ERROR_UNSUPPORTED, "version 2" },
    { "[]", RS_ERROR_FORMAT, "object" },
    { "{\"format\": \"routescope-trace\"", RS_ERROR_FORMAT, "JSON" },
    { "{\"format\": \"routescope-trace\", \"version\": 1, \"n_layer\": 3, \"n_expert\": 8, "
      "\"k_slots\": 3, \"k_model\": 2, \"n_tokens\": 1000000000000}", RS_ERROR_FORMAT, "n_tokens" },
    { "{\"format\": \"routescope-trace\", \"version\": 1, \"n_layer\": \"3\", \"n_expert\": 8, "
      "\"k_slots\": 3, \"k_model\": 2, \"n_tokens\": 5}", RS_ERROR_FORMAT, "n_layer" },
    { "{\"format\": \"routescope-trace\", \"version\": 1, \"n_layer\": 3, \"n_expert\": 8, "
      "\"k_slots\": 3, \"k_model\": 2, \"n_tokens\": 6}", RS_ERROR_FORMAT, "(6," },
  };
  for (size_t i = 0; i < G_N_ELEMENTS (metas); i++)
    {
      npz_with_member (good, bad, "metadata.json", metas[i].json, strlen (metas[i].json));
      g_assert_null (rs_trace_load_npz (bad, &error));
      assert_error_mentions (error, metas[i].code, metas[i].fragment);
      g_clear_error (&error);
    }
  npz_with_member (good, bad, "token_text.json", "[\"a\"]", 5);
  g_assert_null (rs_trace_load_npz (bad, &error));
  assert_error_mentions (error, RS_ERROR_FORMAT, "token_text.json");
  g_clear_error (&error);
  npz_with_member (good, bad, "topk_ids.npy", NULL, 0);
  g_assert_null (rs_trace_load_npz (bad, &error));
  assert_error_mentions (error, RS_ERROR_FORMAT, "topk_ids.npy");
  g_clear_error (&error);

  /* Never a crash: every truncation and many corruptions of a full trace. */
  g_autoptr (RsTrace) full = make_trace (TRUE);
  g_assert_true (rs_trace_save (full, good, RS_TRACE_FORMAT_NPZ, &error));
  g_clear_pointer (&bytes, g_free);
  g_assert_true (g_file_get_contents (good, &bytes, &n, NULL));
  int failures = 0;
  for (gsize cut = 0; cut < n; cut += 13)
    {
      write_fast (bad, bytes, cut);
      g_autoptr (RsTrace) t = rs_trace_load_npz (bad, &error);
      g_assert_true ((t == NULL) == (error != NULL));
      failures += t == NULL;
      g_clear_error (&error);
    }
  g_assert_cmpint (failures, >, 0);
  GRand *rand = g_rand_new_with_seed (7);
  g_autofree char *copy = g_memdup2 (bytes, n);
  for (int iter = 0; iter < 300; iter++)
    {
      memcpy (copy, bytes, n);
      for (int k = 0; k < 1 + iter % 4; k++)
        copy[g_rand_int_range (rand, 0, (gint32) n)] = (char) g_rand_int_range (rand, 0, 256);
      write_fast (bad, copy, n);
      g_autoptr (RsTrace) t = rs_trace_load_npz (bad, &error);
      g_assert_true ((t == NULL) == (error != NULL));
      g_clear_error (&error);
    }
  g_rand_free (rand);
  remove_tree (dir);
}

static void
test_malformed_imports (void)
{
  g_autofree char *dir = temp_dir ();
  g_autofree char *bad = g_build_filename (dir, "bad.npy", NULL);
  g_autoptr (GError) error = NULL;

  static const struct { const char *dict; size_t data_len; int code; const char *fragment; } cases[] = {
    { "{'descr': '<i2', 'fortran_order': False, 'shape': (7, 3), }", 42, RS_ERROR_FORMAT, "[tokens, layers, k]" },
    { "{'descr': '<f4', 'fortran_order': False, 'shape': (7, 3, 2), }", 168, RS_ERROR_FORMAT, "integers" },
    { "{'descr': '<i2', 'fortran_order': False, 'shape': (7, 3, 2), }", 40, RS_ERROR_FORMAT, "truncated" },
    { "{'descr': '>i2', 'fortran_order': False, 'shape': (7, 3, 2), }", 84, RS_ERROR_UNSUPPORTED, ">i2" },
    { "{'descr': '<i2', 'fortran_order': False, 'shape': (7, 3, 2), }", 84, RS_ERROR_FORMAT, "no expert ids" },
  };
  for (size_t i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GBytes) npy = npy_bytes (cases[i].dict, 1, cases[i].data_len);
      g_assert_true (g_file_set_contents (bad, g_bytes_get_data (npy, NULL),
                                          (gssize) g_bytes_get_size (npy), NULL));
      if (i == G_N_ELEMENTS (cases) - 1)
        {
          /* All ids -1: nothing to infer the number of experts from. */
          gsize len;
          guint8 *d = (guint8 *) g_bytes_unref_to_data (g_steal_pointer (&npy), &len);
          memset (d + len - 84, 0xff, 84);
          g_assert_true (g_file_set_contents (bad, (char *) d, (gssize) len, NULL));
          g_free (d);
        }
      g_autoptr (RsTrace) t = rs_trace_import_vllm (bad, 0, &error);
      g_assert_null (t);
      assert_error_mentions (error, cases[i].code, cases[i].fragment);
      g_assert_nonnull (strstr (error->message, bad));
      g_clear_error (&error);
    }

  /* SGLang: not JSON, no routed experts, not base64, no token counts. */
  g_autofree char *js = g_build_filename (dir, "bad.json", NULL);
  static const struct { const char *json; const char *fragment; } sg[] = {
    { "{\"text\": ", "JSON" },
    { "{\"text\": \"x\", \"meta_info\": {\"prompt_tokens\": 2, \"completion_tokens\": 1}}", "routed_experts" },
    { "{\"meta_info\": {\"prompt_tokens\": 2, \"completion_tokens\": 1, \"routed_experts\": \"*!\"}}", "base64" },
    { "{\"meta_info\": {\"routed_experts\": \"AAAAAA==\"}}", "prompt_tokens" },
    { "{\"meta_info\": {\"prompt_tokens\": 1, \"completion_tokens\": 0, \"routed_experts\": \"AAAAAA==\"}}", "no routed tokens" },
    { "{\"meta_info\": {\"prompt_tokens\": 2, \"completion_tokens\": 1, \"routed_experts\": \"AAAAAA==\"}}", "bytes" },
  };
  for (size_t i = 0; i < G_N_ELEMENTS (sg); i++)
    {
      g_assert_true (g_file_set_contents (js, sg[i].json, -1, NULL));
      g_autoptr (RsTrace) t = rs_trace_import_sglang (js, 2, 0, &error);
      g_assert_null (t);
      g_assert_nonnull (error);
      g_test_message ("error: %s", error->message);
      g_assert_nonnull (strstr (error->message, js));
      if (strstr (error->message, sg[i].fragment) == NULL)
        g_error ("message '%s' lacks '%s'", error->message, sg[i].fragment);
      g_clear_error (&error);
    }
  remove_tree (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/trace/new-append-truncate", test_new_append_truncate);
  g_test_add_func ("/trace/npz-roundtrip", test_npz_roundtrip);
  g_test_add_func ("/trace/numpy-reads-npz", test_numpy_reads_npz);
  g_test_add_func ("/trace/jsonl", test_jsonl);
  g_test_add_func ("/trace/csv", test_csv);
  g_test_add_func ("/trace/save-unwritable", test_save_unwritable);
  g_test_add_func ("/trace/save-failure-keeps-destination", test_save_failure_keeps_destination);
  g_test_add_func ("/trace/import-vllm", test_import_vllm);
  g_test_add_func ("/trace/import-sglang", test_import_sglang);
  g_test_add_func ("/trace/malformed-npz", test_malformed_npz);
  g_test_add_func ("/trace/malformed-imports", test_malformed_imports);
  return g_test_run ();
}
