/* test-steer.c: interventions, from the routing rule up to whole runs.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include "rs-compare.h"
#include "rs-error.h"
#include "rs-intervention.h"
#include "rs-router.h"
#include "rs-run.h"
#include "rs-sampler.h"
#include "rs-test-model.h"

/* ---- the routing rule --------------------------------------------------- */

static const RsRoutingRule softmax_norm = { RS_SCORE_SOFTMAX, true, 1.0f, 0, 0 };
static const RsRoutingRule softmax_plain = { RS_SCORE_SOFTMAX, false, 1.0f, 0, 0 };

static void
test_rule_plain (void)
{
  float z[6] = { 0.5f, 2.0f, -1.0f, 1.5f, 0.0f, 3.0f }, s[6], work[6];
  RsRouteResult r;
  rs_route_token (&softmax_plain, NULL, 6, 2, z, s, NULL, work, &r);
  g_assert_cmpint (r.n_selected, ==, 2);
  g_assert_cmpint (r.selected[0], ==, 5);
  g_assert_cmpint (r.selected[1], ==, 1);
  /* w = softmax over all, not renormalised */
  double zsum = 0.0;
  const double zz[6] = { 0.5, 2.0, -1.0, 1.5, 0.0, 3.0 };
  for (int e = 0; e < 6; e++)
    zsum += exp (zz[e]);
  g_assert_cmpfloat_with_epsilon (r.weights[0], exp (3.0) / zsum, 1e-6);
  g_assert_cmpfloat_with_epsilon (r.weights[1], exp (2.0) / zsum, 1e-6);

  /* Mixtral/Qwen3: renormalised = softmax over the two selected logits. */
  float z2[6] = { 0.5f, 2.0f, -1.0f, 1.5f, 0.0f, 3.0f };
  rs_route_token (&softmax_norm, NULL, 6, 2, z2, s, NULL, work, &r);
  g_assert_cmpfloat_with_epsilon (r.weights[0], exp (3.0) / (exp (3.0) + exp (2.0)), 1e-6);
}

static void
test_rule_bias (void)
{
  float z[4] = { 1.0f, 0.0f, -0.5f, 0.25f }, s[4], work[4];
  float bias[4] = { 0.0f, 2.0f, 0.0f, -1.0f };
  RsRouterControl ctl = { .logit_bias = bias };
  RsRouteResult r;
  rs_route_token (&softmax_plain, &ctl, 4, 1, z, s, NULL, work, &r);
  /* Exactly the biased logits change. */
  g_assert_cmpfloat (z[0], ==, 1.0f);
  g_assert_cmpfloat (z[1], ==, 2.0f);
  g_assert_cmpfloat (z[2], ==, -0.5f);
  g_assert_cmpfloat (z[3], ==, -0.75f);
  g_assert_cmpint (r.selected[0], ==, 1);

  /* Soft bias scales with the token's logit spread (max - min = 1.5). */
  float z2[4] = { 1.0f, 0.0f, -0.5f, 0.25f };
  float soft[4] = { 0.0f, 0.0f, 2.0f, 0.0f };
  RsRouterControl ctl2 = { .soft_bias = soft };
  rs_route_token (&softmax_plain, &ctl2, 4, 1, z2, s, NULL, work, &r);
  g_assert_cmpfloat (z2[2], ==, -0.5f + 2.0f * 1.5f);
  g_assert_cmpint (r.selected[0], ==, 2);
}

static void
test_rule_modes (void)
{
  float z[8] = { 5, 4, 3, 2, 1, 0, -1, -2 }, s[8], work[8];
  uint8_t mode[8] = { RS_EXPERT_DISABLED, 0, 0, 0, 0, 0, 0, RS_EXPERT_FORCED };
  RsRouterControl ctl = { .mode = mode };
  RsRouteResult r;
  rs_route_token (&softmax_norm, &ctl, 8, 2, z, s, NULL, work, &r);
  g_assert_cmpint (r.n_selected, ==, 2);
  gboolean has7 = FALSE;
  for (int j = 0; j < 2; j++)
    {
      g_assert_cmpint (r.selected[j], !=, 0);
      has7 |= r.selected[j] == 7;
    }
  g_assert_true (has7);
  g_assert_cmpfloat_with_epsilon (r.weights[0] + r.weights[1], 1.0, 1e-6);

  /* More forced experts than k: all of them run. */
  float z2[8] = { 5, 4, 3, 2, 1, 0, -1, -2 };
  uint8_t mode2[8] = { 0, 0, 0, 0, 0, RS_EXPERT_FORCED, RS_EXPERT_FORCED, RS_EXPERT_FORCED };
  ctl.mode = mode2;
  rs_route_token (&softmax_norm, &ctl, 8, 2, z2, s, NULL, work, &r);
  g_assert_cmpint (r.n_selected, ==, 3);
}

static void
test_rule_topk_topp (void)
{
  /* p = softmax(log q) = q for these logits. */
  const float q[5] = { 0.5f, 0.2f, 0.15f, 0.1f, 0.05f };
  float z[5], s[5], work[5];
  RsRouteResult r;
  for (int e = 0; e < 5; e++)
    z[e] = logf (q[e]);
  RsRouterControl k3 = { .top_k = 3 };
  rs_route_token (&softmax_plain, &k3, 5, 2, z, s, NULL, work, &r);
  g_assert_cmpint (r.n_selected, ==, 3);

  /* top-p 0.4: cumulative 0.5 crosses at once -> 1 expert.
   * top-p 0.6: 0.5 <= 0.6, 0.7 crosses -> 2. top-p 0.85: 0.5, 0.7, 0.85 <= 0.85
   * (equal stays), 0.95 crosses -> 4. */
  const float ps[3] = { 0.4f, 0.6f, 0.86f };
  const int want[3] = { 1, 2, 4 };
  for (int i = 0; i < 3; i++)
    {
      for (int e = 0; e < 5; e++)
        z[e] = logf (q[e]);
      RsRouterControl tp = { .top_p = ps[i] };
      rs_route_token (&softmax_plain, &tp, 5, 2, z, s, NULL, work, &r);
      g_assert_cmpint (r.n_selected, ==, want[i]);
      /* weights are the raw probabilities under a non-renormalising rule */
      g_assert_cmpfloat_with_epsilon (r.weights[0], 0.5, 1e-6);
    }
}

static void
test_rule_groups (void)
{
  /* 8 experts in 4 groups of 2; keep 2 groups; group score = sum of top 2. */
  RsRoutingRule rule = { RS_SCORE_SIGMOID, true, 2.5f, 4, 2 };
  float z[8] = { 3.0f, -3.0f, 1.0f, 1.0f, 2.5f, -2.0f, 0.9f, 0.8f }, s[8], work[8];
  float sel_bias[8] = { 0 };
  RsRouteResult r;
  rs_route_token (&rule, NULL, 8, 2, z, s, sel_bias, work, &r);
  /* Group sums: g0 = σ(3)+σ(-3) = 1.0, g1 = 2σ(1) = 1.46, g2 = σ(2.5)+σ(-2) = 1.04,
   * g3 = σ(.9)+σ(.8) = 1.40: keep g1 and g3, so expert 0 (the best alone) is out. */
  for (int j = 0; j < r.n_selected; j++)
    g_assert_true (r.selected[j] == 2 || r.selected[j] == 3 || r.selected[j] == 6);
  g_assert_cmpfloat_with_epsilon (r.weights[0] + r.weights[1], 2.5, 1e-5);
}

/* ---- parsing and validation --------------------------------------------- */

static void
test_parse (void)
{
  g_autoptr (GError) error = NULL;
  RsIntervention iv;
  g_assert_true (rs_intervention_parse (RS_INTERVENE_DISABLE, "3:5,7", 0, &iv, &error));
  g_assert_cmpint (iv.layer_first, ==, 3);
  g_assert_cmpint (iv.n_experts, ==, 2);
  g_assert_cmpint (iv.experts[1], ==, 7);
  g_assert_true (rs_intervention_parse (RS_INTERVENE_BIAS, "1-4:2:-1.5", 6, &iv, &error));
  g_assert_cmpint (iv.layer_last, ==, 4);
  g_assert_cmpfloat (iv.value, ==, -1.5f);
  g_assert_cmpint (iv.from_token, ==, 6);
  g_assert_true (rs_intervention_parse (RS_INTERVENE_TOP_P, "*:0.4", 0, &iv, &error));
  g_assert_cmpint (iv.layer_first, ==, -1);
  g_autofree char *d = rs_intervention_describe (&iv);
  g_assert_cmpstr (d, ==, "top-p *:0.4 from token 0");

  const struct { RsInterventionKind k; const char *t; } bad[] = {
    { RS_INTERVENE_DISABLE, "3" }, { RS_INTERVENE_DISABLE, "x:1" }, { RS_INTERVENE_BIAS, "1:2" },
    { RS_INTERVENE_TOP_K, "1:0" }, { RS_INTERVENE_TOP_P, "1:1.5" }, { RS_INTERVENE_FORCE, "4-2:1" },
    { RS_INTERVENE_DISABLE, "1:" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_assert_false (rs_intervention_parse (bad[i].k, bad[i].t, 0, &iv, &error));
      g_assert_error (error, RS_ERROR, RS_ERROR_INVALID);
      g_assert_nonnull (strstr (error->message, bad[i].t));
      g_clear_error (&error);
    }
}

/* ---- runs --------------------------------------------------------------- */

typedef RsTestModelFile Fixture;

static void
fixture_set_up (Fixture *f, gconstpointer data)
{
  RsTestModelSpec spec = rs_test_model_spec ("qwen3moe", RS_TYPE_F32, 21);
  spec.n_layer = 3;
  rs_test_model_file_open (f, &spec, "steer-qwen3moe.gguf");
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  rs_test_model_file_close (f);
}

static RsRun *
run_with (Fixture *f, const char *const *flags, RsInterventionKind *kinds, int n, int64_t from)
{
  g_autoptr (GError) error = NULL;
  RsRunParams p = { .session = { .n_ctx = 64, .n_threads = 2 } };
  RsRun *run = rs_run_new (f->model, f->tok, &p, &error);
  g_assert_no_error (error);
  RsIntervention ivs[8];
  for (int i = 0; i < n; i++)
    g_assert_true (rs_intervention_parse (kinds[i], flags[i], from, &ivs[i], &error));
  g_assert_true (rs_run_set_interventions (run, ivs, n, &error));
  g_assert_no_error (error);
  g_assert_true (rs_run_prompt_text (run, "the of and to in is it", &error));
  for (int i = 0; i < 10; i++)
    g_assert_true (rs_run_step (run, -1, NULL, &error));
  g_assert_no_error (error);
  return run;
}

static int
count_expert (const RsTrace *tr, int layer, int expert, int64_t from)
{
  int n = 0;
  for (int64_t t = from; t < tr->n_tokens; t++)
    for (int j = 0; j < tr->k_slots; j++)
      n += g_array_index (tr->topk_ids, int32_t, (t * tr->n_layer + layer) * tr->k_slots + j) == expert;
  return n;
}

static void
test_run_disable_force (Fixture *f, gconstpointer data)
{
  g_autoptr (RsRun) base = run_with (f, NULL, NULL, 0, 0);
  const RsTrace *tb = rs_run_trace (base);
  /* The most used expert of layer 1 in the untouched run. */
  int best = 0, best_n = -1;
  for (int e = 0; e < 8; e++)
    if (count_expert (tb, 1, e, 0) > best_n)
      {
        best_n = count_expert (tb, 1, e, 0);
        best = e;
      }
  g_assert_cmpint (best_n, >, 0);
  int rare = (best + 3) % 8;

  g_autofree char *dis = g_strdup_printf ("1:%d", best);
  g_autofree char *frc = g_strdup_printf ("1:%d", rare);
  const char *flags[2] = { dis, frc };
  RsInterventionKind kinds[2] = { RS_INTERVENE_DISABLE, RS_INTERVENE_FORCE };
  g_autoptr (RsRun) steered = run_with (f, flags, kinds, 2, 0);
  const RsTrace *ts = rs_run_trace (steered);
  g_assert_cmpint (count_expert (ts, 1, best, 0), ==, 0);
  g_assert_cmpint (count_expert (ts, 1, rare, 0), ==, ts->n_tokens);
  /* The untouched choice is recorded alongside. */
  int base_best = 0;
  for (int64_t t = 0; t < ts->n_tokens; t++)
    for (int j = 0; j < ts->k_slots; j++)
      base_best += g_array_index (ts->base_topk_ids, int32_t, (t * ts->n_layer + 1) * ts->k_slots + j) == best;
  g_assert_cmpint (base_best, >, 0);
  /* Other layers before the intervention are untouched (layer 0 of the
   * prompt sees no difference). */
  for (int j = 0; j < ts->k_slots; j++)
    g_assert_cmpint (g_array_index (ts->topk_ids, int32_t, j), ==, g_array_index (tb->topk_ids, int32_t, j));
}

static void
test_run_from_token (Fixture *f, gconstpointer data)
{
  g_autoptr (RsRun) base = run_with (f, NULL, NULL, 0, 0);
  const RsTrace *tb = rs_run_trace (base);
  int e = g_array_index (tb->topk_ids, int32_t, (10 * tb->n_layer + 2) * tb->k_slots);
  g_autofree char *dis = g_strdup_printf ("2:%d", e);
  const char *flags[1] = { dis };
  RsInterventionKind kinds[1] = { RS_INTERVENE_DISABLE };
  g_autoptr (RsRun) steered = run_with (f, flags, kinds, 1, 10);
  const RsTrace *ts = rs_run_trace (steered);
  /* Before token 10 everything equals the baseline; from 10 on, e never runs in layer 2. */
  g_assert_cmpmem (ts->topk_ids->data, 10 * ts->n_layer * ts->k_slots * 4,
                   tb->topk_ids->data, 10 * tb->n_layer * tb->k_slots * 4);
  g_assert_cmpint (count_expert (ts, 2, e, 10), ==, 0);
}

static void
test_run_topk_replay (Fixture *f, gconstpointer data)
{
  const char *flags[1] = { "*:4" };
  RsInterventionKind kinds[1] = { RS_INTERVENE_TOP_K };
  g_autoptr (RsRun) run = run_with (f, flags, kinds, 1, 0);
  const RsTrace *tr = rs_run_trace (run);
  for (int64_t i = 0; i < tr->n_tokens * tr->n_layer; i++)
    {
      int filled = 0;
      for (int j = 0; j < tr->k_slots; j++)
        filled += g_array_index (tr->topk_ids, int32_t, i * tr->k_slots + j) >= 0;
      g_assert_cmpint (filled, ==, 4);
    }

  /* Removing the intervention and replaying gives the model's k again,
   * and the same routing as a fresh untouched run of the same tokens. */
  g_autoptr (GError) error = NULL;
  g_assert_true (rs_run_set_interventions (run, NULL, 0, &error));
  g_assert_true (rs_run_replay (run, &error));
  g_assert_no_error (error);
  for (int64_t i = 0; i < tr->n_tokens * tr->n_layer; i++)
    g_assert_cmpint (g_array_index (tr->topk_ids, int32_t, i * tr->k_slots + 2), ==, -1);

  RsRunParams p = { .session = { .n_ctx = 64, .n_threads = 1 } };
  g_autoptr (RsRun) fresh = rs_run_new (f->model, f->tok, &p, &error);
  g_assert_true (rs_run_prompt_ids (fresh, (const int32_t *) tr->token_ids->data, tr->n_tokens, &error));
  g_assert_cmpmem (rs_run_trace (fresh)->topk_ids->data, tr->topk_ids->len * 4,
                   tr->topk_ids->data, tr->topk_ids->len * 4);
}

static void
test_run_validate (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  RsRunParams p = { .session = { .n_ctx = 64, .n_threads = 1 } };
  g_autoptr (RsRun) run = rs_run_new (f->model, f->tok, &p, &error);
  RsIntervention iv;
  g_assert_true (rs_intervention_parse (RS_INTERVENE_DISABLE, "3:1", 0, &iv, &error));
  g_assert_false (rs_run_set_interventions (run, &iv, 1, &error));
  g_assert_error (error, RS_ERROR, RS_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, "layer 3 does not exist"));
  g_clear_error (&error);
  g_assert_true (rs_intervention_parse (RS_INTERVENE_FORCE, "0:8", 0, &iv, &error));
  g_assert_false (rs_run_set_interventions (run, &iv, 1, &error));
  g_assert_nonnull (strstr (error->message, "expert 8 does not exist"));
}

static void
test_compare_measures (void)
{
  float p[3] = { 1.0f, 2.0f, 3.0f }, q[3] = { 3.0f, 2.0f, 1.0f };
  g_assert_cmpfloat_with_epsilon (rs_kl_logits (p, p, 3), 0.0, 1e-12);
  /* KL of softmax(p) || softmax(q) computed by hand */
  double zp = exp (1) + exp (2) + exp (3);
  double kl = 0.0;
  for (int i = 0; i < 3; i++)
    kl += exp (p[i]) / zp * ((p[i] - log (zp)) - (q[i] - log (zp)));
  g_assert_cmpfloat_with_epsilon (rs_kl_logits (p, q, 3), kl, 1e-9);
  /* The probes' one-pass softmax statistics against the plain formulas. */
  float max, log_z, h;
  rs_logits_stats (p, 3, &max, &log_z, &h);
  double hh = 0.0;
  for (int i = 0; i < 3; i++)
    hh -= exp (p[i]) / zp * log (exp (p[i]) / zp);
  g_assert_cmpfloat (max, ==, 3.0f);
  g_assert_cmpfloat_with_epsilon (log_z, log (zp) - 3.0, 1e-6);
  g_assert_cmpfloat_with_epsilon (h, hh, 1e-6);
  g_assert_cmpfloat_with_epsilon (expf (p[0] - max - log_z), exp (1) / zp, 1e-6);

  int32_t a[3] = { 1, 2, 3 }, b[3] = { 3, 4, -1 };
  g_assert_cmpfloat_with_epsilon (rs_jaccard (a, 3, b, 3), 1.0 / 4.0, 1e-12);
  int32_t none[2] = { -1, -1 };
  g_assert_cmpfloat (rs_jaccard (none, 2, none, 2), ==, 1.0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/steer/rule/plain", test_rule_plain);
  g_test_add_func ("/steer/rule/bias", test_rule_bias);
  g_test_add_func ("/steer/rule/modes", test_rule_modes);
  g_test_add_func ("/steer/rule/topk-topp", test_rule_topk_topp);
  g_test_add_func ("/steer/rule/groups", test_rule_groups);
  g_test_add_func ("/steer/parse", test_parse);
  g_test_add_func ("/steer/compare-measures", test_compare_measures);
  g_test_add ("/steer/run/disable-force", Fixture, NULL, fixture_set_up, test_run_disable_force, fixture_tear_down);
  g_test_add ("/steer/run/from-token", Fixture, NULL, fixture_set_up, test_run_from_token, fixture_tear_down);
  g_test_add ("/steer/run/topk-replay", Fixture, NULL, fixture_set_up, test_run_topk_replay, fixture_tear_down);
  g_test_add ("/steer/run/validate", Fixture, NULL, fixture_set_up, test_run_validate, fixture_tear_down);
  return g_test_run ();
}
