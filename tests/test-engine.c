/* test-engine.c: the optimised engine against the plain reference, on
 * generated tiny models of every architecture and several tensor types.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include <json-glib/json-glib.h>

#include "rs-engine.h"
#include "rs-run.h"
#include "rs-sampler.h"
#include "rs-error.h"
#include "rs-test-gguf-writer.h"
#include "rs-test-model.h"
#include "rs-test-reference.h"

#define N_TOKENS 12

static const int32_t prompt[N_TOKENS] = { 1, 259, 260, 72, 101, 108, 108, 111, 262, 270, 33, 290 };

static char *
write_model (const RsTestModelSpec *spec)
{
  g_autofree char *name = g_strdup_printf ("%s-%s-%u-%d%s.gguf", spec->arch,
                                           rs_type_name (spec->type), spec->seed,
                                           spec->n_dense_first, spec->tied_output ? "-tied" : "");
  char *path = g_build_filename (g_get_tmp_dir (), name, NULL);
  g_autoptr (GError) error = NULL;
  g_assert_true (rs_test_model_write (spec, path, &error));
  g_assert_no_error (error);
  return path;
}

typedef struct {
  int  n_layer, k;
  int *routes; /* [N_TOKENS, n_layer, k] */
} RouteCapture;

static void
capture_routes (void *data, const RsRouterRecord *rec)
{
  RouteCapture *c = data;
  for (int64_t t = 0; t < rec->n_tokens; t++)
    for (int j = 0; j < c->k; j++)
      c->routes[((rec->pos0 + t) * c->n_layer + rec->layer) * c->k + j] = rec->routes[t].selected[j];
}

/* Largest |a - b| over the largest |b|. */
static double
rel_err (const float *a, const double *b, int64_t n)
{
  double diff = 0.0, mag = 1e-12;
  for (int64_t i = 0; i < n; i++)
    {
      diff = fmax (diff, fabs (a[i] - b[i]));
      mag = fmax (mag, fabs (b[i]));
    }
  return diff / mag;
}

/* Compares engine logits with the reference. With @exact, every position
 * within @tol and identical routing. Otherwise (8-bit activations) a
 * near-tie in the router may flip an expert: positions whose routing
 * matches must be within @tol, and at most a third may differ. */
static void
compare (const RsTestModelSpec *spec, const char *what, int threads, const float *logits,
         const double *ref, const int *routes, const int *ref_routes, int V, int L, int k,
         double tol, gboolean exact)
{
  double worst = 0.0;
  int flipped = 0;
  for (int t = 0; t < N_TOKENS; t++)
    {
      gboolean same = TRUE;
      for (int i = t * L * k; i < (t + 1) * L * k; i++)
        if ((i / k) % L >= spec->n_dense_first && routes[i] != ref_routes[i])
          same = FALSE;
      if (exact && !same)
        g_error ("%s %s %s: routing of token %d differs from the reference", spec->arch,
                 rs_type_name (spec->type), what, t);
      if (!same)
        {
          flipped++;
          continue;
        }
      worst = fmax (worst, rel_err (logits + (int64_t) t * V, ref + (int64_t) t * V, V));
    }
  g_test_message ("%s %s threads %d %s: rel err %.3g, %d of %d tokens routed differently",
                  spec->arch, rs_type_name (spec->type), threads, what, worst, flipped, N_TOKENS);
  g_assert_cmpfloat (worst, <=, tol);
  g_assert_cmpint (flipped, <=, N_TOKENS / 3);
}

static void
check_model (const RsTestModelSpec *spec, double tol, gboolean exact)
{
  g_autofree char *path = write_model (spec);
  g_autoptr (GError) error = NULL;
  g_autoptr (RsModel) model = rs_model_open (path, &error);
  g_assert_no_error (error);
  const RsHparams *hp = rs_model_hparams (model);
  const int V = hp->n_vocab, L = hp->n_layer, k = hp->n_expert_used;

  g_autofree int *ref_routes = g_new0 (int, N_TOKENS * L * k);
  g_autofree double *ref = rs_reference_forward (model, prompt, N_TOKENS, ref_routes);

  for (int threads = 1; threads <= 2; threads++)
    {
      RsSessionParams sp = { .n_ctx = 64, .n_threads = threads };
      g_autoptr (RsSession) s = rs_session_new (model, &sp, &error);
      g_assert_no_error (error);
      g_autofree int *routes = g_new0 (int, N_TOKENS * L * k);
      RouteCapture cap = { L, k, routes };
      rs_session_set_router_observer (s, capture_routes, &cap);

      /* Prefill of all tokens at once. */
      g_autofree float *logits = g_new (float, N_TOKENS * V);
      g_assert_true (rs_session_eval (s, prompt, N_TOKENS, logits, TRUE, &error));
      g_assert_no_error (error);
      compare (spec, "prefill", threads, logits, ref, routes, ref_routes, V, L, k, tol, exact);

      /* Prefill of 5, then decode one by one. */
      rs_session_truncate (s, 0);
      g_assert_cmpint (rs_session_pos (s), ==, 0);
      g_assert_true (rs_session_eval (s, prompt, 5, logits, TRUE, &error));
      for (int t = 5; t < N_TOKENS; t++)
        g_assert_true (rs_session_eval (s, prompt + t, 1, logits + (int64_t) t * V, FALSE, &error));
      g_assert_no_error (error);
      compare (spec, "decode", threads, logits, ref, routes, ref_routes, V, L, k, tol, exact);
    }
  g_unlink (path);
}

static void
test_arch (gconstpointer data)
{
  const char *arch = data;
  RsType types[] = { RS_TYPE_F32, RS_TYPE_F16, RS_TYPE_BF16, RS_TYPE_Q8_0, RS_TYPE_Q4_0,
                     RS_TYPE_Q4_K, RS_TYPE_Q6_K };
  for (gsize i = 0; i < G_N_ELEMENTS (types); i++)
    {
      RsTestModelSpec spec = rs_test_model_spec (arch, types[i], 7 + i);
      /* F32/F16/BF16 weights: the engine must match the double-precision
       * reference to float rounding. Quantised weights are dotted with
       * activations quantised to 8 bits, as llama.cpp does. */
      gboolean f32 = types[i] == RS_TYPE_F32;
      gboolean float_act = types[i] == RS_TYPE_F16 || types[i] == RS_TYPE_BF16;
      check_model (&spec, f32 || float_act ? 1e-4 : 5e-2, f32 || float_act);
    }
}

static void
test_dense_first_and_tied (void)
{
  RsTestModelSpec spec = rs_test_model_spec ("qwen3moe", RS_TYPE_F32, 99);
  spec.n_layer = 3;
  spec.n_dense_first = 1;
  spec.n_ff_dense = 96;
  spec.tied_output = TRUE;
  check_model (&spec, 1e-4, TRUE);
}

static void
test_bad_inputs (void)
{
  RsTestModelSpec spec = rs_test_model_spec ("olmoe", RS_TYPE_F32, 3);
  g_autofree char *path = write_model (&spec);
  g_autoptr (GError) error = NULL;
  g_autoptr (RsModel) model = rs_model_open (path, &error);
  g_assert_no_error (error);
  RsSessionParams sp = { .n_ctx = 8, .n_threads = 1 };
  g_autoptr (RsSession) s = rs_session_new (model, &sp, &error);

  int32_t too_long[9] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
  g_assert_false (rs_session_eval (s, too_long, 9, NULL, FALSE, &error));
  g_assert_error (error, RS_ERROR, RS_ERROR_RESOURCE);
  g_assert_nonnull (strstr (error->message, "needs at least 9"));
  g_clear_error (&error);
  g_assert_cmpint (rs_session_pos (s), ==, 0);

  int32_t bad = RS_TEST_MODEL_N_VOCAB;
  g_assert_false (rs_session_eval (s, &bad, 1, NULL, FALSE, &error));
  g_assert_error (error, RS_ERROR, RS_ERROR_INVALID);
  g_clear_error (&error);

  g_assert_false (rs_session_set_router_control (s, 2, &(RsRouterControl) { 0 }, &error));
  g_assert_error (error, RS_ERROR, RS_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, "layer 2 does not exist"));
  g_clear_error (&error);

  /* Unsupported architecture and missing tensors are named at open. */
  g_autoptr (RsTestGguf) w = rs_test_gguf_new ();
  rs_test_gguf_add_str (w, "general.architecture", "mamba");
  g_autoptr (GBytes) b = rs_test_gguf_to_bytes (w);
  g_autofree char *p2 = rs_test_write_temp ("mamba.gguf", g_bytes_get_data (b, NULL), g_bytes_get_size (b));
  g_assert_null (rs_model_open (p2, &error));
  g_assert_error (error, RS_ERROR, RS_ERROR_UNSUPPORTED);
  g_assert_nonnull (strstr (error->message, "unsupported architecture 'mamba'"));
  g_assert_nonnull (strstr (error->message, "mamba.gguf"));
  g_clear_error (&error);
}

static void
cancel_observer (void *data, const RsRouterRecord *rec)
{
  rs_session_cancel (data);
}

static void
test_cancel (void)
{
  RsTestModelSpec spec = rs_test_model_spec ("qwen3moe", RS_TYPE_F32, 5);
  g_autofree char *path = write_model (&spec);
  g_autoptr (GError) error = NULL;
  g_autoptr (RsModel) model = rs_model_open (path, &error);
  RsSessionParams sp = { .n_ctx = 32, .n_threads = 1 };
  g_autoptr (RsSession) s = rs_session_new (model, &sp, &error);
  g_assert_true (rs_session_eval (s, prompt, 3, NULL, FALSE, &error));
  rs_session_set_router_observer (s, cancel_observer, s);
  g_assert_false (rs_session_eval (s, prompt, 4, NULL, FALSE, &error));
  g_assert_error (error, RS_ERROR, RS_ERROR_CANCELLED);
  g_assert_cmpint (rs_session_pos (s), ==, 3);
}

typedef struct {
  int disabled, forced, seen_disabled, seen_forced, records, k_max;
} ControlCheck;

static void
control_observer (void *data, const RsRouterRecord *rec)
{
  ControlCheck *c = data;
  c->records++;
  for (int64_t t = 0; t < rec->n_tokens; t++)
    {
      const RsRouteResult *r = &rec->routes[t];
      c->k_max = MAX (c->k_max, r->n_selected);
      for (int j = 0; j < r->n_selected; j++)
        {
          c->seen_disabled += r->selected[j] == c->disabled;
          c->seen_forced += r->selected[j] == c->forced;
        }
      g_assert_nonnull (rec->routes_base);
    }
}

static void
test_router_control (void)
{
  RsTestModelSpec spec = rs_test_model_spec ("qwen3moe", RS_TYPE_F32, 11);
  g_autofree char *path = write_model (&spec);
  g_autoptr (GError) error = NULL;
  g_autoptr (RsModel) model = rs_model_open (path, &error);
  RsSessionParams sp = { .n_ctx = 32, .n_threads = 2 };
  g_autoptr (RsSession) s = rs_session_new (model, &sp, &error);

  /* Find an expert the untouched router picks at layer 0, disable it, and
   * force another one. */
  int routes[N_TOKENS * 2 * 2];
  RouteCapture cap = { 2, 2, routes };
  rs_session_set_router_observer (s, capture_routes, &cap);
  g_assert_true (rs_session_eval (s, prompt, N_TOKENS, NULL, FALSE, &error));
  int popular = routes[0];
  int forced = (popular + 1) % 8;

  uint8_t mode[8] = { 0 };
  mode[popular] = RS_EXPERT_DISABLED;
  mode[forced] = RS_EXPERT_FORCED;
  RsRouterControl ctl = { .mode = mode, .top_k = 3 };
  for (int l = 0; l < 2; l++)
    g_assert_true (rs_session_set_router_control (s, l, &ctl, &error));
  mode[popular] = 0; /* copied: later changes do not leak in */

  ControlCheck check = { .disabled = popular, .forced = forced };
  rs_session_set_router_observer (s, control_observer, &check);
  rs_session_truncate (s, 0);
  g_assert_true (rs_session_eval (s, prompt, N_TOKENS, NULL, FALSE, &error));
  g_assert_cmpint (check.records, ==, 2);
  g_assert_cmpint (check.seen_disabled, ==, 0);
  g_assert_cmpint (check.seen_forced, ==, 2 * N_TOKENS);
  g_assert_cmpint (check.k_max, ==, 3);
}

/* Greedy generation against vectors derived from llama.cpp on the same
 * generated model (tests/data/engine/README.md). */
static void
test_reference_vectors (gconstpointer data)
{
  const char *name = data; /* "qwen3moe-F32" */
  g_autofree char *json_path = g_test_build_filename (G_TEST_DIST, "data", "engine", name, NULL);
  g_autofree char *json_file = g_strconcat (json_path, ".json", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_assert_true (json_parser_load_from_file (parser, json_file, &error));
  JsonObject *root = json_node_get_object (json_parser_get_root (parser));
  JsonArray *prompt_ids = json_object_get_array_member (root, "prompt_ids");
  JsonArray *ref_ids = json_object_get_array_member (root, "ids");
  JsonArray *ref_top = json_object_get_array_member (root, "top_logits");

  g_auto (GStrv) parts = g_strsplit (name, "-", 2);
  int type = -1;
  for (int t = 0; t < RS_TYPE_COUNT; t++)
    if (g_strcmp0 (rs_type_traits (t)->name, parts[1]) == 0)
      type = t;
  g_assert_cmpint (type, >=, 0);
  RsTestModelSpec spec = rs_test_model_spec (parts[0], type, 1);
  g_autofree char *path = write_model (&spec);
  g_autoptr (RsModel) model = rs_model_open (path, &error);
  g_assert_no_error (error);
  const int V = rs_model_hparams (model)->n_vocab;
  RsSessionParams sp = { .n_ctx = 64, .n_threads = 2 };
  g_autoptr (RsSession) s = rs_session_new (model, &sp, &error);

  int n_prompt = json_array_get_length (prompt_ids);
  g_autofree int32_t *ids = g_new (int32_t, n_prompt);
  for (int i = 0; i < n_prompt; i++)
    ids[i] = json_array_get_int_element (prompt_ids, i);
  g_autofree float *logits = g_new (float, V);
  g_assert_true (rs_session_eval (s, ids, n_prompt, logits, FALSE, &error));

  /* Float weights: the same tokens and logits to float rounding.
   * Quantised: both engines quantise activations to 8 bits, but not
   * identically (block grouping, rounding), so allow a little more. */
  gboolean exact = type == RS_TYPE_F32 || type == RS_TYPE_F16;
  double tol = exact ? 2e-3 : 5e-2, worst = 0.0;
  int n_steps = json_array_get_length (ref_ids);
  for (int step = 0; step < n_steps; step++)
    {
      int32_t want = json_array_get_int_element (ref_ids, step);
      JsonArray *top = json_array_get_array_element (ref_top, step);
      for (guint j = 0; j < json_array_get_length (top); j++)
        {
          JsonArray *pair = json_array_get_array_element (top, j);
          int32_t id = json_array_get_int_element (pair, 0);
          double v = json_array_get_double_element (pair, 1);
          worst = fmax (worst, fabs (logits[id] - v) / fmax (1.0, fabs (v)));
        }
      int32_t got = 0;
      rs_top_logits (logits, V, 1, &got, &(float) { 0 });
      if (got != want)
        {
          if (exact)
            g_error ("%s: step %d: greedy token %d, llama.cpp %d", name, step, got, want);
          g_test_message ("%s: sequences part at step %d", name, step);
          break;
        }
      g_assert_true (rs_session_eval (s, &got, 1, logits, FALSE, &error));
    }
  g_test_message ("%s: worst top-5 logit difference %.3g", name, worst);
  g_assert_cmpfloat (worst, <=, tol);
  g_unlink (path);
}

/* The shipped demo model: llama.cpp's tokens for a text prompt, and its
 * greedy continuation (tests/data/engine/demo-model.json). */
static void
test_demo_model (void)
{
  g_autofree char *model_path = g_test_build_filename (G_TEST_DIST, "..", "data", "models",
                                                       "routescope-demo.gguf", NULL);
  g_autofree char *json_path = g_test_build_filename (G_TEST_DIST, "data", "engine",
                                                      "demo-model.json", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_assert_true (json_parser_load_from_file (parser, json_path, &error));
  JsonObject *root = json_node_get_object (json_parser_get_root (parser));
  g_autoptr (RsModel) model = rs_model_open (model_path, &error);
  g_assert_no_error (error);
  g_autoptr (RsTokenizer) tok = rs_tokenizer_new_from_gguf (rs_model_gguf (model), &error);
  g_assert_no_error (error);
  RsRunParams p = { .session = { .n_ctx = 128, .n_threads = 2 } };
  g_autoptr (RsRun) run = rs_run_new (model, tok, &p, &error);
  g_assert_true (rs_run_prompt_text (run, json_object_get_string_member (root, "prompt"), &error));
  g_assert_no_error (error);
  const RsTrace *tr = rs_run_trace (run);
  JsonArray *want_prompt = json_object_get_array_member (root, "prompt_ids");
  g_assert_cmpint (tr->n_tokens, ==, json_array_get_length (want_prompt));
  for (int64_t i = 0; i < tr->n_tokens; i++)
    g_assert_cmpint (g_array_index (tr->token_ids, int32_t, i), ==, json_array_get_int_element (want_prompt, i));
  JsonArray *want = json_object_get_array_member (root, "ids");
  for (guint i = 0; i < json_array_get_length (want); i++)
    {
      int32_t got;
      g_assert_true (rs_run_step (run, -1, &got, &error));
      g_assert_cmpint (got, ==, json_array_get_int_element (want, i));
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_data_func ("/engine/olmoe", "olmoe", test_arch);
  g_test_add_data_func ("/engine/qwen2moe", "qwen2moe", test_arch);
  g_test_add_data_func ("/engine/qwen3moe", "qwen3moe", test_arch);
  g_test_add_data_func ("/engine/mixtral", "llama", test_arch);
  g_test_add_data_func ("/engine/granitemoe", "granitemoe", test_arch);
  g_test_add_func ("/engine/dense-first-and-tied", test_dense_first_and_tied);
  g_test_add_func ("/engine/bad-inputs", test_bad_inputs);
  g_test_add_func ("/engine/cancel", test_cancel);
  g_test_add_func ("/engine/router-control", test_router_control);
  g_test_add_func ("/engine/demo-model", test_demo_model);
  static const char *const vectors[] = {
    "olmoe-F32", "olmoe-F16", "olmoe-Q8_0", "olmoe-Q4_K",
    "qwen2moe-F32", "qwen2moe-F16", "qwen2moe-Q8_0", "qwen2moe-Q4_K",
    "qwen3moe-F32", "qwen3moe-F16", "qwen3moe-Q8_0", "qwen3moe-Q4_K",
    "llama-F32", "llama-F16", "llama-Q8_0", "llama-Q4_K",
    "granitemoe-F32", "granitemoe-F16", "granitemoe-Q8_0", "granitemoe-Q4_K",
  };
  for (gsize i = 0; i < G_N_ELEMENTS (vectors); i++)
    {
      g_autofree char *p = g_strdup_printf ("/engine/llama.cpp-vectors/%s", vectors[i]);
      g_test_add_data_func (p, vectors[i], test_reference_vectors);
    }
  return g_test_run ();
}
