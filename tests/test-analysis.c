/* SPDX-License-Identifier: GPL-3.0-or-later */
/* test-analysis.c: the routing analyses on hand-built traces whose
 * answers are worked out by hand here, then on real runs of a generated
 * model; and the parallel-corpus reader. */
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include "rs-analysis.h"
#include "rs-error.h"
#include "rs-test-model.h"

#define EPS 1e-9

/* A full trace of T tokens with every value absent. */
static RsTrace *
empty_trace (int L, int E, int k, int K, int64_t T)
{
  RsTrace *tr = rs_trace_new (L, E, k, K, TRUE);
  rs_trace_append_tokens (tr, NULL, T, TRUE);
  return tr;
}

static int32_t *
ids_at (RsTrace *tr, int64_t t, int l)
{
  return &g_array_index (tr->topk_ids, int32_t, (t * tr->n_layer + l) * tr->k_slots);
}

static float *
w_at (RsTrace *tr, int64_t t, int l)
{
  return &g_array_index (tr->topk_weights, float, (t * tr->n_layer + l) * tr->k_slots);
}

static float *
z_at (RsTrace *tr, int64_t t, int l)
{
  return &g_array_index (tr->router_logits, float, (t * tr->n_layer + l) * tr->n_expert);
}

/* Router logits ln q, so that softmax gives q exactly. */
static void
set_probs (RsTrace *tr, int64_t t, int l, const double *q)
{
  for (int e = 0; e < tr->n_expert; e++)
    z_at (tr, t, l)[e] = (float) log (q[e]);
}

/* ---- divergences -------------------------------------------------------- */

static void
test_jsd (void)
{
  const double p1[2] = { 1, 0 }, q1[2] = { 0, 1 };
  /* Disjoint supports: JSD = ln 2; H = 0 (up to the 1e-10), so the
   * normaliser is ln 2 - 0 and the normalised JSD is 1. */
  g_assert_cmpfloat_with_epsilon (rs_jsd (p1, q1, 2), log (2.0), EPS);
  g_assert_cmpfloat_with_epsilon (rs_jsd_normalized (p1, q1, 2), 1.0, 1e-8);

  /* Halves on disjoint pairs of 4: JSD = ln 2, H = ln 2 each, normaliser
   * ln 4 - ln 2 = ln 2: again 1. */
  const double p2[4] = { .5, .5, 0, 0 }, q2[4] = { 0, 0, .5, .5 };
  g_assert_cmpfloat_with_epsilon (rs_jsd (p2, q2, 4), log (2.0), EPS);
  g_assert_cmpfloat_with_epsilon (rs_jsd_normalized (p2, q2, 4), 1.0, 1e-8);

  /* P = (.5, .5), Q = (.9, .1): M = (.7, .3),
   * KL(P||M) = .5 ln(.5/.7) + .5 ln(.5/.3) = 0.0871767
   * KL(Q||M) = .9 ln(.9/.7) + .1 ln(.1/.3) = 0.1163218
   * JSD = 0.1017492; H(P) = ln 2, H(Q) = 0.3250830;
   * normaliser = ln 2 - (ln 2 + 0.3250830)/2 = 0.1840756. */
  const double p3[2] = { .5, .5 }, q3[2] = { .9, .1 };
  double jsd = 0.5 * (0.5 * log (.5 / .7) + 0.5 * log (.5 / .3)) +
               0.5 * (0.9 * log (.9 / .7) + 0.1 * log (.1 / .3));
  g_assert_cmpfloat_with_epsilon (jsd, 0.1017492, 1e-7);
  g_assert_cmpfloat_with_epsilon (rs_jsd (p3, q3, 2), jsd, EPS);
  double h = -(0.9 * log (0.9) + 0.1 * log (0.1));
  double norm = log (2.0) - 0.5 * (log (2.0) + h);
  g_assert_cmpfloat_with_epsilon (rs_jsd_normalized (p3, q3, 2), jsd / norm, 1e-8);
  g_assert_cmpfloat_with_epsilon (rs_jsd (p3, p3, 2), 0.0, EPS);
  /* Two uniform distributions: JSD 0, normaliser clamped at 1e-6. */
  g_assert_cmpfloat_with_epsilon (rs_jsd_normalized (p3, p3, 2), 0.0, EPS);
}

/* ---- importance and the alignment accumulator ---------------------------- */

static void
test_importance (void)
{
  g_autoptr (RsTrace) tr = empty_trace (2, 4, 2, 2, 3);
  const double a[4] = { .4, .3, .2, .1 }, b[4] = { .1, .2, .3, .4 };
  /* Layer 0 dense (NaN logits, no experts); layer 1: tokens 0 and 1 as
   * above, token 2 excluded (a special token). */
  set_probs (tr, 0, 1, a);
  set_probs (tr, 1, 1, b);
  set_probs (tr, 2, 1, a);
  ids_at (tr, 0, 1)[0] = 0, ids_at (tr, 0, 1)[1] = 1;
  w_at (tr, 0, 1)[0] = .4f, w_at (tr, 0, 1)[1] = .3f;
  ids_at (tr, 1, 1)[0] = 3, ids_at (tr, 1, 1)[1] = 2;
  w_at (tr, 1, 1)[0] = .4f, w_at (tr, 1, 1)[1] = .3f;
  ids_at (tr, 2, 1)[0] = 0, ids_at (tr, 2, 1)[1] = 1;
  w_at (tr, 2, 1)[0] = .9f, w_at (tr, 2, 1)[1] = .1f;
  const uint8_t include[3] = { 1, 1, 0 };
  double q[8];
  g_autoptr (GError) error = NULL;
  g_assert_true (rs_importance_from_trace (tr, 0, 3, include, RS_IMPORTANCE_MEAN_PROB, q, &error));
  g_assert_no_error (error);
  g_assert_true (isnan (q[0]));
  /* mean of a and b = uniform */
  for (int e = 0; e < 4; e++)
    g_assert_cmpfloat_with_epsilon (q[4 + e], 0.25, 1e-6);
  /* weights renormalised per token: (4/7, 3/7) on 0, 1 then on 3, 2;
   * averaged: (2/7, 1.5/7, 1.5/7, 2/7) */
  g_assert_true (rs_importance_from_trace (tr, 0, 3, include, RS_IMPORTANCE_TOPK_WEIGHT, q, &error));
  const double want[4] = { 2.0 / 7, 1.5 / 7, 1.5 / 7, 2.0 / 7 };
  for (int e = 0; e < 4; e++)
    g_assert_cmpfloat_with_epsilon (q[4 + e], want[e], 1e-6);
  /* Nothing included: an error. */
  const uint8_t none[3] = { 0 };
  g_assert_false (rs_importance_from_trace (tr, 0, 3, none, RS_IMPORTANCE_MEAN_PROB, q, &error));
  g_assert_error (error, RS_ERROR, RS_ERROR_INVALID);
}

static void
test_align_accum (void)
{
  /* L = 1, E = 2, languages en (reference), de, fr. Both modes get the
   * same importances here. */
  const char *langs[3] = { "en", "de", "fr" };
  const uint8_t moe[1] = { 1 };
  RsAlignAccum *acc = rs_align_accum_new (1, 2, moe, langs, 3, "en");
  /* id 1: en (1, 0), de (0, 1), fr (1, 0) -> JSDn de 1, fr 0, de-fr 1 */
  double en1[4] = { 1, 0, 1, 0 }, de1[4] = { 0, 1, 0, 1 }, fr1[4] = { 1, 0, 1, 0 };
  const double *id1[3] = { en1, de1, fr1 };
  rs_align_accum_add (acc, id1);
  /* id 2: en (.5, .5), de (.5, .5), no fr -> de 0 */
  double en2[4] = { .5, .5, .5, .5 }, de2[4] = { .5, .5, .5, .5 };
  const double *id2[3] = { en2, de2, NULL };
  rs_align_accum_add (acc, id2);
  g_autoptr (RsAlignResult) r = rs_align_accum_finish (acc);

  g_assert_cmpint (r->ref, ==, 0);
  g_assert_cmpint (r->n_ids, ==, 2);
  g_assert_cmpint (r->n_pairs[1], ==, 2);
  g_assert_cmpint (r->n_pairs[2], ==, 1);
  for (int m = 0; m < RS_IMPORTANCE_N_MODES; m++)
    {
      g_assert_true (isnan (r->jsd[m][0]));
      g_assert_cmpfloat_with_epsilon (r->jsd[m][1], 0.5, 1e-8);      /* (1 + 0) / 2 */
      g_assert_cmpfloat_with_epsilon (r->jsd_std[m][1], 0.5, 1e-8);  /* values 1 and 0 */
      g_assert_cmpfloat_with_epsilon (r->jsd_raw[m][1], log (2.0) / 2, 1e-8);
      g_assert_cmpfloat_with_epsilon (r->jsd[m][2], 0.0, 1e-8);
      /* pairs [a, b, l]: de-fr only in id 1 */
      g_assert_cmpfloat_with_epsilon (r->pair_jsd[m][(1 * 3 + 2) * 1], 1.0, 1e-8);
      g_assert_cmpfloat_with_epsilon (r->pair_jsd[m][(2 * 3 + 1) * 1], 1.0, 1e-8);
      g_assert_cmpfloat_with_epsilon (r->pair_jsd[m][(1 * 3 + 1) * 1], 0.0, 1e-8);
      g_assert_cmpfloat_with_epsilon (r->pair_jsd[m][(0 * 3 + 1) * 1], 0.5, 1e-8);
      /* mean importance of de: ((0, 1) + (.5, .5)) / 2 */
      g_assert_cmpfloat_with_epsilon (r->mean_importance[m][1 * 2 + 0], 0.25, 1e-12);
      g_assert_cmpfloat_with_epsilon (r->mean_importance[m][1 * 2 + 1], 0.75, 1e-12);
      /* mean H(q) of en: (0 + ln 2) / 2 */
      g_assert_cmpfloat_with_epsilon (r->entropy[m][0], log (2.0) / 2, 1e-8);
    }
}

static void
test_specialised_task (void)
{
  /* Hand-made means: L = 3 (middle layers given explicitly: 1..1),
   * E = 10, en uniform 0.1; de puts 0.1 + 0.45 on expert 3 and takes
   * 0.05 from each of the nine others: diff = (-.05 x 9, +.45 at 3);
   * mean 0, std = sqrt((9 * .0025 + .2025) / 10) = 0.15. (One spike x
   * among 10 always has std x/3: 3 sigma ties with it, so the test uses
   * 3.5 sigma = .525, not exceeded, and 2 sigma = .3, exceeded.) */
  RsAlignResult r = { 0 };
  r.n_layer = 3;
  r.n_expert = 10;
  r.n_lang = 2;
  char *langs[3] = { "en", "de", NULL };
  r.langs = langs;
  r.ref = 0;
  uint8_t moe[3] = { 1, 1, 1 };
  r.has_experts = moe;
  int64_t n_seq[2] = { 1, 1 };
  r.n_seq = n_seq;
  double mi[2 * 3 * 10];
  for (int i = 0; i < 60; i++)
    mi[i] = 0.1;
  for (int e = 0; e < 10; e++)
    mi[30 + 10 + e] = e == 3 ? 0.55 : 0.05;
  r.mean_importance[RS_IMPORTANCE_MEAN_PROB] = mi;

  RsSpecialisedParams sp;
  rs_specialised_params_init (&sp);
  sp.layer_first = sp.layer_last = 1;
  sp.n_sigma = 3.5;
  g_autoptr (GArray) s3 = rs_align_specialised_experts (&r, &sp);
  g_assert_cmpint (s3->len, ==, 0);
  sp.n_sigma = 2.0;
  g_autoptr (GArray) s2 = rs_align_specialised_experts (&r, &sp);
  /* once for de, once for the weighted average (de alone) */
  g_assert_cmpint (s2->len, ==, 2);
  RsSpecialisedExpert *se = &g_array_index (s2, RsSpecialisedExpert, 0);
  g_assert_cmpint (se->layer, ==, 1);
  g_assert_cmpint (se->expert, ==, 3);
  g_assert_cmpint (se->lang, ==, 1);
  g_assert_cmpfloat_with_epsilon (se->diff, 0.45, 1e-12);
  g_assert_cmpfloat_with_epsilon (se->threshold, 0.3, 1e-12);
  g_assert_cmpint (g_array_index (s2, RsSpecialisedExpert, 1).lang, ==, -1);

  /* Default middle layers: 8..34 (1-indexed) of 48 -> 7..33. */
  int f, l;
  rs_align_middle_layers (48, &f, &l);
  g_assert_cmpint (f, ==, 7);
  g_assert_cmpint (l, ==, 33);
  rs_align_middle_layers (16, &f, &l);
  g_assert_cmpint (f, ==, 2);
  g_assert_cmpint (l, ==, 11);

  /* Task experts: de's row as the task importance at layer 1: expert 3
   * (.55) is the only one above 1/E = .1; top_n 2 keeps it alone. */
  RsTaskExpertParams tp;
  rs_task_expert_params_init (&tp);
  tp.layer_first = tp.layer_last = 1;
  tp.top_n = 2;
  tp.steer_value = 2.5;
  g_autoptr (GArray) te = rs_task_experts (mi + 30, NULL, 3, 10, 2, moe, &tp);
  g_assert_cmpint (te->len, ==, 1);
  g_assert_cmpint (g_array_index (te, RsTaskExpert, 0).expert, ==, 3);
  /* Against a baseline equal to the task, nothing is specific. */
  g_autoptr (GArray) te0 = rs_task_experts (mi + 30, mi + 30, 3, 10, 2, moe, &tp);
  g_assert_cmpint (te0->len, ==, 0);
  g_autoptr (GArray) ivs = rs_task_expert_interventions (te, &tp);
  g_assert_cmpint (ivs->len, ==, 1);
  RsIntervention *iv = &g_array_index (ivs, RsIntervention, 0);
  g_assert_cmpint (iv->kind, ==, RS_INTERVENE_BIAS);
  g_assert_cmpint (iv->layer_first, ==, 1);
  g_assert_cmpint (iv->n_experts, ==, 1);
  g_assert_cmpint (iv->experts[0], ==, 3);
  g_assert_cmpfloat (iv->value, ==, 2.5f);
}

/* ---- load and entropy --------------------------------------------------- */

static void
test_load (void)
{
  /* L = 2 (layer 0 dense), E = 4, K = 2, T = 4; layer 1 selects
   * {0,1} {0,2} {0,1} {0,1}: counts (4, 3, 1, 0), sum 8, mean 2. */
  g_autoptr (RsTrace) tr = empty_trace (2, 4, 2, 2, 4);
  const int sel[4][2] = { { 0, 1 }, { 0, 2 }, { 0, 1 }, { 0, 1 } };
  const float w[4][2] = { { .6f, .4f }, { .5f, .5f }, { .7f, .3f }, { .8f, .2f } };
  const double q[4] = { .4, .3, .2, .1 };
  for (int t = 0; t < 4; t++)
    {
      ids_at (tr, t, 1)[0] = sel[t][0];
      ids_at (tr, t, 1)[1] = sel[t][1];
      w_at (tr, t, 1)[0] = w[t][0];
      w_at (tr, t, 1)[1] = w[t][1];
      set_probs (tr, t, 1, q);
    }
  g_autoptr (GError) error = NULL;
  g_autoptr (RsLoadResult) r = rs_load_compute (tr, NULL, &error);
  g_assert_no_error (error);
  g_assert_false (r->has_experts[0]);
  g_assert_true (r->has_experts[1]);
  g_assert_true (isnan (r->cv[0]));
  const int64_t want[4] = { 4, 3, 1, 0 };
  for (int e = 0; e < 4; e++)
    {
      g_assert_cmpint (r->counts[4 + e], ==, want[e]);
      g_assert_cmpfloat_with_epsilon (r->mean_prob[4 + e], q[e], 1e-6);
    }
  /* max/mean = 4/2; population variance ((2^2 + 1 + 1 + 2^2) / 4) = 2.5 */
  g_assert_cmpfloat_with_epsilon (r->max_over_mean[1], 2.0, EPS);
  g_assert_cmpfloat_with_epsilon (r->cv[1], sqrt (2.5) / 2.0, EPS);
  double h = -(0.5 * log (0.5) + 0.375 * log (0.375) + 0.125 * log (0.125));
  g_assert_cmpfloat_with_epsilon (r->norm_entropy[1], h / log (4.0), EPS);
  g_assert_cmpint (r->n_never[1], ==, 1);
  /* mean weight when selected: expert 0 (.6+.5+.7+.8)/4, expert 1 (.4+.3+.2)/3 */
  g_assert_cmpfloat_with_epsilon (r->mean_weight[4 + 0], 0.65, 1e-6);
  g_assert_cmpfloat_with_epsilon (r->mean_weight[4 + 1], 0.3, 1e-6);
  g_assert_cmpfloat_with_epsilon (r->mean_weight[4 + 2], 0.5, 1e-6);
  g_assert_true (isnan (r->mean_weight[4 + 3]));

  /* A token range: tokens 1..2 only -> (2, 1, 1, 0). */
  RsLoadParams p;
  rs_load_params_init (&p);
  p.t_first = 1;
  p.t_end = 3;
  g_autoptr (RsLoadResult) r2 = rs_load_compute (tr, &p, &error);
  g_assert_cmpint (r2->counts[4 + 0], ==, 2);
  g_assert_cmpint (r2->counts[4 + 2], ==, 1);

  g_autoptr (RsEntropyResult) en = rs_entropy_compute (tr, NULL, &error);
  g_assert_no_error (error);
  double hq = 0.0;
  for (int e = 0; e < 4; e++)
    hq -= q[e] * log (q[e]);
  g_assert_true (isnan (en->entropy[0 * 2 + 0]));
  g_assert_cmpfloat_with_epsilon (en->entropy[0 * 2 + 1], hq, 1e-6);
  g_assert_cmpfloat_with_epsilon (en->mean_entropy[1], hq, 1e-6);
  g_assert_cmpfloat_with_epsilon (en->mean_norm_entropy[1], hq / log (4.0), 1e-6);
  g_assert_cmpfloat_with_epsilon (en->top1[0 * 2 + 1], 0.4, 1e-6);
  g_assert_cmpfloat_with_epsilon (en->margin[0 * 2 + 1], 0.1, 1e-6);
  /* token 1 selected {0, 2}: .4 + .2 */
  g_assert_cmpfloat_with_epsilon (en->selected_mass[1 * 2 + 1], 0.6, 1e-6);

  /* Without router logits, entropy is an error. */
  g_autoptr (RsTrace) bare = rs_trace_new (1, 4, 2, 2, FALSE);
  rs_trace_append_tokens (bare, NULL, 2, TRUE);
  g_autoptr (RsEntropyResult) none = rs_entropy_compute (bare, NULL, &error);
  g_assert_null (none);
  g_assert_error (error, RS_ERROR, RS_ERROR_INVALID);
}

/* ---- super experts ------------------------------------------------------ */

static void
test_super (void)
{
  /* L = 4, E = 50: round(0.75 * 4) = 3 layers pooled -> 150 pairs. Token 0
   * routes every expert of every layer with output max 1. Token 1: (1, 7)
   * reaches 500 (channel 42), (2, 3) 100, (3, 0) 400 (not pooled).
   * Pool sorted: 148 ones, 100, 500; P99.5 at position .995 * 149 =
   * 148.255: 100 + .255 * 400 = 202; floor(500 / 10) = 50. Only (1, 7)
   * exceeds both; (2, 3) exceeds 50 but not 202. */
  g_autoptr (RsTrace) tr = empty_trace (4, 50, 2, 50, 2);
  for (int l = 0; l < 4; l++)
    for (int j = 0; j < 50; j++)
      {
        ids_at (tr, 0, l)[j] = j;
        g_array_index (tr->expert_out_maxabs, float, (0 * 4 + l) * 50 + j) = 1.0f;
        g_array_index (tr->expert_out_channel, int32_t, (0 * 4 + l) * 50 + j) = 5;
      }
  struct { int l, e; float v; int ch; } out[3] = { { 1, 7, 500, 42 }, { 2, 3, 100, 9 }, { 3, 0, 400, 1 } };
  for (int i = 0; i < 3; i++)
    {
      ids_at (tr, 1, out[i].l)[0] = out[i].e;
      g_array_index (tr->expert_out_maxabs, float, (1 * 4 + out[i].l) * 50) = out[i].v;
      g_array_index (tr->expert_out_channel, int32_t, (1 * 4 + out[i].l) * 50) = out[i].ch;
    }
  g_autoptr (GError) error = NULL;
  g_autoptr (RsSuperResult) r = rs_super_compute (tr, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (r->n_pool_layers, ==, 3);
  g_assert_cmpint (r->pool_size, ==, 150);
  g_assert_cmpfloat_with_epsilon (r->percentile_value, 202.0, 1e-6);
  g_assert_cmpfloat (r->max_threshold, ==, 50.0);
  g_assert_cmpfloat_with_epsilon (r->threshold, 202.0, 1e-6);
  /* The maximum over all tokens, not the first token's row. */
  g_assert_cmpfloat (r->output_max[1 * 50 + 7], ==, 500.0f);
  g_assert_cmpint (r->channel[1 * 50 + 7], ==, 42);
  g_assert_cmpint (r->token[1 * 50 + 7], ==, 1);
  g_assert_cmpint (r->super_experts->len, ==, 1);
  RsSuperExpert *se = &g_array_index (r->super_experts, RsSuperExpert, 0);
  g_assert_cmpint (se->layer, ==, 1);
  g_assert_cmpint (se->expert, ==, 7);
  g_assert_cmpfloat (se->value, ==, 500.0f);
  g_assert_cmpint (se->channel, ==, 42);
  g_autoptr (GArray) ivs = rs_super_interventions (r);
  g_assert_cmpint (ivs->len, ==, 1);
  g_autofree char *d = rs_intervention_describe (&g_array_index (ivs, RsIntervention, 0));
  g_assert_cmpstr (d, ==, "disable 1:7 from token 0");

  /* All layers pooled: (3, 0) at 400 joins; P99.5 over 200 values (197
   * ones, 100, 400, 500) at 199 * .995 = 198.005: 400 + .005 * 100 = 400.5;
   * so only 500 is above. */
  RsSuperParams p;
  rs_super_params_init (&p);
  p.layer_fraction = 1.0;
  g_autoptr (RsSuperResult) r2 = rs_super_compute (tr, &p, &error);
  g_assert_cmpfloat_with_epsilon (r2->percentile_value, 400.5, 1e-6);
  g_assert_cmpint (r2->super_experts->len, ==, 1);

  /* Python's round: 0.75 * 6 = 4.5 -> 4; 0.75 * 2 = 1.5 -> 2. */
  g_autoptr (RsTrace) t6 = empty_trace (6, 2, 1, 1, 1);
  g_autoptr (RsSuperResult) r6 = rs_super_compute (t6, NULL, &error);
  g_assert_cmpint (r6->n_pool_layers, ==, 4);
  g_assert_cmpint (r6->super_experts->len, ==, 0);
  g_autoptr (RsTrace) t2 = empty_trace (2, 2, 1, 1, 1);
  g_autoptr (RsSuperResult) r2l = rs_super_compute (t2, NULL, &error);
  g_assert_cmpint (r2l->n_pool_layers, ==, 2);

  g_autoptr (RsTrace) bare = rs_trace_new (1, 4, 2, 2, FALSE);
  rs_trace_append_tokens (bare, NULL, 1, TRUE);
  g_assert_null (rs_super_compute (bare, NULL, &error));
  g_assert_error (error, RS_ERROR, RS_ERROR_INVALID);
}

/* ---- local routing consistency ------------------------------------------ */

static void
test_srp (void)
{
  /* One expert per token, 2 experts: 0 0 1 0 1 1.
   * m = 2: windows [00] [01] [10] [01] [11]; expert 0 counts 2 1 1 1 0,
   * expert 1 counts 0 1 1 1 2: N = (2, 6, 2), acts = 10.
   *   θ=0: matches 10, preds 2*10 = 20, F1 = 20/30
   *   θ=1: matches 10, preds 2*8 = 16,  F1 = 20/26 = 0.76923  <- best
   *   θ=2: matches 4,  preds 2*2 = 4,   F1 = 8/14
   * best_m = preds/acts = 1.6. */
  const int32_t seq[6] = { 0, 0, 1, 0, 1, 1 };
  int64_t h[3] = { 0 };
  rs_srp_histogram (seq, 6, 1, 2, 2, h);
  g_assert_cmpint (h[0], ==, 2);
  g_assert_cmpint (h[1], ==, 6);
  g_assert_cmpint (h[2], ==, 2);
  int theta;
  double best_m;
  g_assert_cmpfloat_with_epsilon (rs_srp_from_histogram (h, 2, &theta, &best_m), 20.0 / 26.0, EPS);
  g_assert_cmpint (theta, ==, 1);
  g_assert_cmpfloat_with_epsilon (best_m, 1.6, EPS);

  /* m = 3: windows [001] [010] [101] [011]: expert 0: 2 2 1 1, expert 1:
   * 1 1 2 2 -> N = (0, 4, 4, 0), acts 12; F1(0) = F1(1) = 24/36,
   * F1(2) = 16/24 = 2/3 too, F1(3) = 0: the first best θ (0) wins. */
  int64_t h3[4] = { 0 };
  rs_srp_histogram (seq, 6, 1, 2, 3, h3);
  g_assert_cmpint (h3[1], ==, 4);
  g_assert_cmpint (h3[2], ==, 4);
  g_assert_cmpfloat_with_epsilon (rs_srp_from_histogram (h3, 3, &theta, NULL), 2.0 / 3.0, EPS);
  g_assert_cmpint (theta, ==, 0);

  /* Shorter than the segment: no windows. */
  int64_t h7[8] = { 0 };
  rs_srp_histogram (seq, 6, 1, 2, 7, h7);
  for (int i = 0; i < 8; i++)
    g_assert_cmpint (h7[i], ==, 0);

  /* Two slots per token with a repeated id counting once:
   * {0,0} {1,-1}: m = 2, one window, expert 0 on 1 token, expert 1 on 1. */
  const int32_t dup[4] = { 0, 0, 1, -1 };
  int64_t hd[3] = { 0 };
  rs_srp_histogram (dup, 2, 2, 2, 2, hd);
  g_assert_cmpint (hd[1], ==, 2);
}

static void
test_sch (void)
{
  /* Capacity 2, m = 4, one expert per token: 0 1 1 2 0 (T = 5).
   * Priority = (activations in [t, t+4), last use).
   *  t0: 0 cold miss, cached {0}; 0 now (0 ahead, t1), +token 4 -> (1, t1)
   *  t1: 1 cold miss, room: {0, 1}; 1 -> (1, t2)
   *  t2: 1 hit; 1 -> (0, t3)
   *  t3: 2 cold miss; full: 0 (1, t1) vs 1 (0, t3): evict 1 (LRU would
   *      evict 0); 2 -> (0, t4)
   *  t4: 0 hit.
   * 2 hits of 5. As moe-lrc counts first accesses (a hit while fewer
   * distinct experts than the capacity were seen): t0, t1 become hits,
   * t3 (2 seen already) stays a miss: 4 of 5. */
  const int32_t a[5] = { 0, 1, 1, 2, 0 };
  int64_t n;
  g_assert_cmpint (rs_sch_hits (a, 5, 1, 3, 4, 2, RS_SCH_COLD_MISS, &n), ==, 2);
  g_assert_cmpint (n, ==, 5);
  g_assert_cmpint (rs_sch_hits (a, 5, 1, 3, 4, 2, RS_SCH_COLD_REFERENCE, &n), ==, 4);

  /* Ties: m = 1 (only the current token counts), 0 1 2 1 0, capacity 2.
   *  t0: 0 miss -> (0, t1); t1: 1 miss, room -> (0, t2)
   *  t2: 2 miss; 0 (0, t1) and 1 (0, t2) tie on count: the most recently
   *      used (1) stays, 0 goes
   *  t3: 1 hit; t4: 0 miss. One hit. */
  const int32_t b[5] = { 0, 1, 2, 1, 0 };
  g_assert_cmpint (rs_sch_hits (b, 5, 1, 3, 1, 2, RS_SCH_COLD_MISS, &n), ==, 1);

  /* A token's experts are looked up before any of them is brought in:
   * {0,1} {2,0} with capacity 2, m = 1:
   *  t0: both miss; t1: 2 miss, 0 hit (then 2 evicts 1): 1 hit of 4. */
  const int32_t c[4] = { 0, 1, 2, 0 };
  g_assert_cmpint (rs_sch_hits (c, 2, 2, 3, 1, 2, RS_SCH_COLD_MISS, &n), ==, 1);
  g_assert_cmpint (n, ==, 4);
}

/* The oracle cache written the slow, obvious way: priorities recomputed
 * from the sequence at every decision. */
static int64_t
sch_naive (const int32_t *sets, int T, int B, int n_items, int m, int cap)
{
  int *cached = g_new0 (int, n_items);
  int *last = g_new0 (int, n_items);
  int size = 0, ts = 0;
  int64_t hits = 0;
  gboolean *hit = g_new0 (gboolean, B);
  for (int t = 0; t < T; t++)
    {
      for (int j = 0; j < B; j++)
        hit[j] = sets[t * B + j] >= 0 && cached[sets[t * B + j]];
      for (int j = 0; j < B; j++)
        {
          int x = sets[t * B + j];
          if (x < 0)
            continue;
          hits += hit[j];
          if (!cached[x])
            {
              if (size == cap)
                {
                  /* count of x' in tokens [t, t+m), minus x' uses already
                   * made at token t (its current activation is consumed) */
                  int victim = -1;
                  long best = 0;
                  for (int y = 0; y < n_items; y++)
                    {
                      if (!cached[y])
                        continue;
                      int cnt = 0;
                      for (int u = t; u < MIN (T, t + m); u++)
                        for (int i = 0; i < B; i++)
                          cnt += sets[u * B + i] == y;
                      for (int i = 0; i < j; i++)
                        cnt -= sets[t * B + i] == y;
                      long key = (long) cnt * 1000000 + last[y];
                      if (victim < 0 || key < best)
                        {
                          victim = y;
                          best = key;
                        }
                    }
                  cached[victim] = 0;
                  size--;
                }
              cached[x] = 1;
              size++;
            }
          last[x] = ++ts;
        }
    }
  g_free (cached);
  g_free (last);
  g_free (hit);
  return hits;
}

/* Mattson's stack for this policy: one pass gives every capacity; its
 * top C must be the cache of capacity C. */
static void
sch_mattson (const int32_t *sets, int T, int B, int n_items, int m, int64_t *hits_by_cap)
{
  int *stack = g_new (int, n_items), depth = 0;
  int *cnt = g_new0 (int, n_items), *last = g_new0 (int, n_items);
  int *d = g_new (int, B);
  int ts = 0;
  for (int u = 0; u < MIN (T, m); u++)
    for (int i = 0; i < B; i++)
      if (sets[u * B + i] >= 0)
        cnt[sets[u * B + i]]++;
#define PRI(y) ((long) cnt[y] * 1000000 + last[y])
  for (int t = 0; t < T; t++)
    {
      for (int j = 0; j < B; j++)
        {
          d[j] = n_items + 1;
          for (int i = 0; i < depth; i++)
            if (stack[i] == sets[t * B + j])
              d[j] = i + 1;
        }
      for (int j = 0; j < B; j++)
        {
          int x = sets[t * B + j];
          if (x < 0)
            continue;
          for (int c = d[j]; c <= n_items; c++)
            hits_by_cap[c]++;
          int pos = -1;
          for (int i = 0; i < depth; i++)
            if (stack[i] == x)
              pos = i;
          if (pos != 0)
            {
              int end = pos < 0 ? depth : pos;
              int carry = depth > 0 ? stack[0] : -1;
              stack[0] = x;
              for (int i = 1; i < end; i++)
                if (PRI (stack[i]) < PRI (carry))
                  {
                    int tmp = stack[i];
                    stack[i] = carry;
                    carry = tmp;
                  }
              if (carry >= 0)
                {
                  if (pos < 0)
                    stack[depth++] = carry;
                  else
                    stack[pos] = carry;
                }
              else if (pos < 0)
                depth++;
            }
          cnt[x]--;
          last[x] = ++ts;
        }
      if (t + m < T)
        for (int i = 0; i < B; i++)
          if (sets[(t + m) * B + i] >= 0)
            cnt[sets[(t + m) * B + i]]++;
    }
#undef PRI
  g_free (stack);
  g_free (cnt);
  g_free (last);
  g_free (d);
}

static void
test_sch_random (void)
{
  /* Random routings (k distinct of 8 per token): the incremental heap
   * simulation, the naive one and Mattson's stack agree at every
   * capacity. */
  GRand *rand = g_rand_new_with_seed (7);
  for (int trial = 0; trial < 40; trial++)
    {
      const int n_items = 8, B = 1 + trial % 3, T = 30 + trial;
      const int m = 1 + g_rand_int_range (rand, 0, 12);
      int32_t *sets = g_new (int32_t, T * B);
      for (int t = 0; t < T; t++)
        for (int j = 0; j < B; j++)
          {
            int x;
            gboolean dup;
            do
              {
                /* skewed, so that priorities matter */
                x = g_rand_int_range (rand, 0, n_items) * g_rand_int_range (rand, 0, 2);
                dup = FALSE;
                for (int i = 0; i < j; i++)
                  dup |= sets[t * B + i] == x;
              }
            while (dup);
            sets[t * B + j] = x;
          }
      int64_t by_cap[10] = { 0 };
      sch_mattson (sets, T, B, n_items, m, by_cap);
      for (int cap = 1; cap <= n_items; cap++)
        {
          int64_t fast = rs_sch_hits (sets, T, B, n_items, m, cap, RS_SCH_COLD_MISS, NULL);
          g_assert_cmpint (fast, ==, sch_naive (sets, T, B, n_items, m, cap));
          g_assert_cmpint (fast, ==, by_cap[cap]);
        }
      g_free (sets);
    }
  /* Capacities past the linear-scan limit use the heap: 80 items. */
  for (int trial = 0; trial < 6; trial++)
    {
      const int n_items = 80, B = 6, T = 120, m = 1 + 7 * trial;
      int32_t *sets = g_new (int32_t, T * B);
      for (int t = 0; t < T; t++)
        for (int j = 0; j < B; j++)
          {
            int x;
            gboolean dup;
            do
              {
                x = g_rand_int_range (rand, 0, n_items) % (10 + 12 * trial);
                dup = FALSE;
                for (int i = 0; i < j; i++)
                  dup |= sets[t * B + i] == x;
              }
            while (dup);
            sets[t * B + j] = x;
          }
      int64_t by_cap[82] = { 0 };
      sch_mattson (sets, T, B, n_items, m, by_cap);
      for (int cap = 40; cap <= 72; cap += 4)
        {
          int64_t fast = rs_sch_hits (sets, T, B, n_items, m, cap, RS_SCH_COLD_MISS, NULL);
          g_assert_cmpint (fast, ==, sch_naive (sets, T, B, n_items, m, cap));
          g_assert_cmpint (fast, ==, by_cap[cap]);
        }
      g_free (sets);
    }
  g_rand_free (rand);
}

static void
test_lrc_trace (void)
{
  /* L = 2, layer 0 dense, layer 1 the sequence of test_srp; k = 1, so
   * the caches hold 2 (layer) and 2 (model: 1 MoE layer). */
  const int32_t seq[6] = { 0, 0, 1, 0, 1, 1 };
  g_autoptr (RsTrace) tr = empty_trace (2, 2, 1, 1, 6);
  for (int t = 0; t < 6; t++)
    ids_at (tr, t, 1)[0] = seq[t];
  RsLrcParams p;
  rs_lrc_params_init (&p);
  p.n_seg_lens = 2;
  p.seg_lens[0] = 2;
  p.seg_lens[1] = 3;
  g_autoptr (GError) error = NULL;
  g_autoptr (RsLrcResult) r = rs_lrc_compute (tr, &p, &error);
  g_assert_no_error (error);
  g_assert_cmpint (r->cache_layer, ==, 2);
  g_assert_cmpint (r->cache_model, ==, 2);
  g_assert_cmpfloat_with_epsilon (r->srp_model[0], 20.0 / 26.0, EPS);
  g_assert_cmpint (r->theta_model[0], ==, 1);
  g_assert_cmpfloat_with_epsilon (r->best_m_model[0], 1.6, EPS);
  g_assert_true (isnan (r->srp_layer[0 * 2 + 0]));
  g_assert_cmpfloat_with_epsilon (r->srp_layer[0 * 2 + 1], 20.0 / 26.0, EPS);
  g_assert_cmpfloat_with_epsilon (r->srp_model[1], 2.0 / 3.0, EPS);
  g_assert_cmpint (r->n_windows[0], ==, 5);
  /* Expert level, m = 2: expert 0 counts (2,1,1,1,0): N = (1,3,1), acts 5;
   * θ=1: matches 5, preds 8, F1 = 10/13 -- same for expert 1. */
  g_assert_cmpfloat_with_epsilon (r->srp_expert[(0 * 2 + 1) * 2 + 0], 10.0 / 13.0, EPS);
  /* Two experts and a cache of 2: only the two cold misses. */
  g_assert_cmpfloat_with_epsilon (r->sch_model[0], 4.0 / 6.0, EPS);
  g_assert_cmpfloat_with_epsilon (r->sch_layer[0 * 2 + 1], 4.0 / 6.0, EPS);
  g_assert_cmpfloat_with_epsilon (r->sch_layer_mean[0], 4.0 / 6.0, EPS);

  /* Two sequences of 3: windows of 2 do not cross the boundary:
   * [00] [01] | [01] [11]: expert 0: 2 1 1 0, expert 1: 0 1 1 2. */
  const int64_t starts[2] = { 0, 3 };
  p.seq_starts = starts;
  p.n_seq = 2;
  g_autoptr (RsLrcResult) r2 = rs_lrc_compute (tr, &p, &error);
  g_assert_no_error (error);
  g_assert_cmpint (r2->n_windows[0], ==, 4);
  /* N = (2, 4, 2), acts 8: θ=1: matches 8, preds 12, F1 = 16/20 */
  g_assert_cmpfloat_with_epsilon (r2->srp_model[0], 0.8, EPS);
  /* SCH per sequence: 0 0 1 -> 1 hit of 3; 0 1 1 -> 1 of 3; mean 1/3 */
  g_assert_cmpfloat_with_epsilon (r2->sch_model[0], 1.0 / 3.0, EPS);

  const int64_t bad[2] = { 3, 1 };
  p.seq_starts = bad;
  g_assert_null (rs_lrc_compute (tr, &p, &error));
  g_assert_error (error, RS_ERROR, RS_ERROR_INVALID);
}

/* ---- specialisation ----------------------------------------------------- */

static void
test_special (void)
{
  /* Tokens 5 5 6 | 7 5 6 (two sequences of 3), one expert each:
   * 0 0 1 | 1 0 1. Expert 0 gets 5 5 5, expert 1 gets 6 7 6.
   * Token counts: 5: 3, 6: 2, 7: 1 of N = 6.
   * lift(0, 5) = (3/3) / (3/6) = 2; lift(1, 6) = (2/3) / (2/6) = 2,
   * lift(1, 7) = (1/3) / (1/6) = 2: 6 first (more routed). */
  const int32_t tok[6] = { 5, 5, 6, 7, 5, 6 };
  const int32_t ex[6] = { 0, 0, 1, 1, 0, 1 };
  g_autoptr (RsTrace) tr = rs_trace_new (1, 2, 1, 1, TRUE);
  rs_trace_append_tokens (tr, tok, 6, TRUE);
  for (int t = 0; t < 6; t++)
    {
      ids_at (tr, t, 0)[0] = ex[t];
      g_free (g_ptr_array_index (tr->token_text, t));
      g_ptr_array_index (tr->token_text, t) = g_strdup_printf ("w%d", tok[t]);
    }
  RsSpecialParams p;
  rs_special_params_init (&p);
  p.top_n = 3;
  p.min_count = 1;
  p.min_token_occurrences = 1;
  p.min_position_occurrences = 1;
  const int64_t starts[2] = { 0, 3 };
  p.seq_starts = starts;
  p.n_seq = 2;
  g_autoptr (GError) error = NULL;
  g_autoptr (RsSpecialResult) r = rs_special_compute (tr, &p, &error);
  g_assert_no_error (error);
  RsFavouriteToken *f0 = r->favourites + 0 * 3, *f1 = r->favourites + 1 * 3;
  g_assert_cmpint (f0[0].token_id, ==, 5);
  g_assert_cmpfloat_with_epsilon (f0[0].lift, 2.0, EPS);
  g_assert_cmpstr (f0[0].text, ==, "w5");
  g_assert_cmpint (f0[1].token_id, ==, -1);
  g_assert_cmpint (f1[0].token_id, ==, 6);
  g_assert_cmpint (f1[0].count, ==, 2);
  g_assert_cmpint (f1[1].token_id, ==, 7);
  g_assert_cmpfloat_with_epsilon (f1[1].lift, 2.0, EPS);
  /* With min_count 2, token 7 (routed once) is out. */
  p.min_count = 2;
  g_autoptr (RsSpecialResult) r2 = rs_special_compute (tr, &p, &error);
  g_assert_cmpint (r2->favourites[1 * 3 + 1].token_id, ==, -1);

  /* Context independence (> 1 occurrence): tokens 5 (-> (1, 0)) and 6
   * (-> (0, 1)): std over 2 experts = .5 each. Positions 0: experts 0, 1
   * -> (.5, .5), std 0; 1: 0, 0 -> .5; 2: 1, 1 -> .5. Mean 1/3. */
  g_assert_cmpint (r->n_token_ids, ==, 2);
  g_assert_cmpfloat_with_epsilon (r->mean_token_std[0], 0.5, EPS);
  g_assert_cmpint (r->n_positions, ==, 3);
  g_assert_cmpfloat_with_epsilon (r->position_std[0], 0.0, EPS);
  g_assert_cmpfloat_with_epsilon (r->mean_position_std[0], 1.0 / 3.0, EPS);

  /* Co-activation, K = 2: {0,1} {0,2} {1,0}. */
  g_autoptr (RsTrace) tc = empty_trace (1, 3, 2, 2, 3);
  const int sel[3][2] = { { 0, 1 }, { 0, 2 }, { 1, 0 } };
  for (int t = 0; t < 3; t++)
    for (int j = 0; j < 2; j++)
      ids_at (tc, t, 0)[j] = sel[t][j];
  g_autoptr (RsSpecialResult) rc = rs_special_compute (tc, NULL, &error);
  const int64_t want[9] = { 3, 2, 1, 2, 2, 0, 1, 0, 1 };
  for (int i = 0; i < 9; i++)
    g_assert_cmpint (rc->coact[i], ==, want[i]);
}

/* ---- the corpus reader -------------------------------------------------- */

static void
test_corpus (void)
{
  g_autoptr (GError) error = NULL;
  const char *good = "\xEF\xBB\xBF" "a\ten\tHello.\r\n\nb\ten\tBye.\na\tde\tHallo.\tmit Tab\nb\tfr\tSalut.\n";
  g_autoptr (RsCorpus) c = rs_corpus_parse (good, -1, "good.tsv", &error);
  g_assert_no_error (error);
  g_assert_cmpint (c->langs->len, ==, 3);
  g_assert_cmpint (rs_corpus_n_ids (c), ==, 2);
  g_assert_cmpint (rs_corpus_lang_index (c, "de"), ==, 1);
  g_assert_cmpint (rs_corpus_lang_index (c, "xx"), ==, -1);
  /* grouped by id: a/en, a/de, b/en, b/fr */
  RsCorpusEntry *e = (RsCorpusEntry *) c->entries->data;
  g_assert_cmpstr (e[0].id, ==, "a");
  g_assert_cmpstr (e[0].text, ==, "Hello.");
  g_assert_cmpstr (e[1].text, ==, "Hallo.\tmit Tab");
  g_assert_cmpint (e[1].line, ==, 4);
  g_assert_cmpstr (e[2].id, ==, "b");
  g_assert_cmpint (g_array_index (c->group_start, int64_t, 1), ==, 2);

  const struct { const char *text; const char *where; } bad[] = {
    { "a\ten\tfine\nb\ten\n", "bad.tsv:2: expected" },
    { "\ten\tx\n", "bad.tsv:1: empty id" },
    { "a\t\tx\n", "bad.tsv:1: empty language" },
    { "a\ten\t \n", "bad.tsv:1: empty text" },
    { "a\te n\tx\n", "bad.tsv:1: the language code contains a space" },
    { "a\ten\tok\na\ten\tagain\n", "bad.tsv:2: id 'a' has a second 'en' sentence (the first is on line 1)" },
    { "a\ten\t\xC3\x28\n", "bad.tsv:1: invalid UTF-8 at byte 6" },
    { "\n\n", "bad.tsv: no sentences" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (RsCorpus) b = rs_corpus_parse (bad[i].text, -1, "bad.tsv", &error);
      g_assert_null (b);
      g_assert_error (error, RS_ERROR, RS_ERROR_FORMAT);
      if (!g_str_has_prefix (error->message, bad[i].where))
        g_error ("case %" G_GSIZE_FORMAT ": '%s' does not start with '%s'", i, error->message, bad[i].where);
      g_clear_error (&error);
    }
  /* A NUL byte (with an explicit length). */
  g_autoptr (RsCorpus) nul = rs_corpus_parse ("a\ten\tx\0y\n", 9, "nul.tsv", &error);
  g_assert_null (nul);
  g_assert_true (g_str_has_prefix (error->message, "nul.tsv:1: the line contains a NUL byte"));
  g_clear_error (&error);
  /* A missing file: an I/O error naming it. */
  g_autoptr (RsCorpus) missing = rs_corpus_load ("/nonexistent/corpus.tsv", &error);
  g_assert_null (missing);
  g_assert_error (error, RS_ERROR, RS_ERROR_IO);
  g_assert_nonnull (strstr (error->message, "/nonexistent/corpus.tsv"));
}

/* ---- real runs ---------------------------------------------------------- */

typedef RsTestModelFile Fixture;

static void
fixture_set_up (Fixture *f, gconstpointer data)
{
  RsTestModelSpec spec = rs_test_model_spec ("qwen3moe", RS_TYPE_F32, 33);
  spec.n_layer = 3;
  rs_test_model_file_open (f, &spec, "analysis-qwen3moe.gguf");
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  rs_test_model_file_close (f);
}

static const char corpus_text[] =
  "s1\ten\tthe cat is on the mat\n"
  "s1\tde\tdie Katze ist auf der Matte\n"
  "s1\tfr\tle chat est sur le tapis\n"
  "s2\ten\tit was not for him\n"
  "s2\tde\tes war nicht für ihn\n"
  "s3\tfr\tpas de anglais ici\n";

/* A trace of @text run as one prompt. */
static RsTrace *
trace_of (Fixture *f, const char *text)
{
  g_autoptr (GError) error = NULL;
  RsRunParams p = { .session = { .n_ctx = 128, .n_threads = 2 } };
  g_autoptr (RsRun) run = rs_run_new (f->model, f->tok, &p, &error);
  g_assert_no_error (error);
  g_assert_true (rs_run_prompt_text (run, text, &error));
  RsTrace *tr = rs_run_trace (run);
  /* steal: copy via save/load is overkill; re-run into a fresh trace */
  RsTrace *copy = rs_trace_new (tr->n_layer, tr->n_expert, tr->k_model, tr->k_slots, TRUE);
  rs_trace_append_tokens (copy, (const int32_t *) (const void *) tr->token_ids->data, tr->n_tokens, TRUE);
  GArray *src[] = { tr->router_logits, tr->topk_ids, tr->topk_weights, tr->expert_out_maxabs };
  GArray *dst[] = { copy->router_logits, copy->topk_ids, copy->topk_weights, copy->expert_out_maxabs };
  for (gsize i = 0; i < G_N_ELEMENTS (src); i++)
    memcpy (dst[i]->data, src[i]->data, (size_t) src[i]->len * g_array_get_element_size (src[i]));
  return copy;
}

static void
test_align_run (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (RsCorpus) c = rs_corpus_parse (corpus_text, -1, "mini.tsv", &error);
  g_assert_no_error (error);
  RsAlignRunParams p;
  rs_align_run_params_init (&p);
  p.session.n_ctx = 128;
  p.session.n_threads = 2;
  g_autoptr (RsAlignResult) r = rs_align_run (f->model, f->tok, c, &p, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  const int L = r->n_layer, E = r->n_expert;
  g_assert_cmpint (r->n_lang, ==, 3);
  g_assert_cmpint (r->n_ids, ==, 3);
  g_assert_cmpint (r->n_pairs[1], ==, 2);
  g_assert_cmpint (r->n_pairs[2], ==, 1);
  g_assert_cmpint (r->n_seq[2], ==, 2);

  /* The streamed importance equals the one computed from a recorded
   * trace of the same sentence without its BOS. */
  const char *texts[3] = { "the cat is on the mat", "die Katze ist auf der Matte",
                           "le chat est sur le tapis" };
  double *q[3];
  for (int i = 0; i < 3; i++)
    {
      g_autoptr (RsTrace) tr = trace_of (f, texts[i]);
      g_autofree uint8_t *inc = g_new (uint8_t, tr->n_tokens);
      for (int64_t t = 0; t < tr->n_tokens; t++)
        inc[t] = g_array_index (tr->token_ids, int32_t, t) != rs_tokenizer_bos (f->tok);
      g_assert_cmpint (inc[0], ==, 0);
      q[i] = g_new (double, (size_t) RS_IMPORTANCE_N_MODES * L * E);
      for (int m = 0; m < RS_IMPORTANCE_N_MODES; m++)
        g_assert_true (rs_importance_from_trace (tr, 0, tr->n_tokens, inc, m, q[i] + (size_t) m * L * E, &error));
    }
  for (int m = 0; m < RS_IMPORTANCE_N_MODES; m++)
    for (int l = 0; l < L; l++)
      {
        const double *en = q[0] + ((size_t) m * L + l) * E, *fr = q[2] + ((size_t) m * L + l) * E;
        /* fr has one pair (s1): its mean JSD is that pair's */
        g_assert_cmpfloat_with_epsilon (r->jsd[m][2 * L + l], rs_jsd_normalized (en, fr, E), 1e-5);
        g_assert_true (r->jsd[m][1 * L + l] >= 0.0 && r->jsd[m][1 * L + l] < 2.0);
        g_assert_true (isnan (r->jsd[m][0 * L + l]));
      }
  for (int i = 0; i < 3; i++)
    g_free (q[i]);
  g_assert_cmpint (r->n_tokens, >, 20);
  g_assert_true (r->engine_seconds > 0.0);

  /* Steering toward the reference's task experts changes the routing. */
  RsTaskExpertParams tp;
  rs_task_expert_params_init (&tp);
  tp.layer_first = 0;
  tp.layer_last = L - 1;
  tp.steer_value = 5.0;
  g_autoptr (GArray) te = rs_task_experts (r->mean_importance[0] + (size_t) r->ref * L * E, NULL,
                                           L, E, 2, r->has_experts, &tp);
  g_assert_cmpint (te->len, >, 0);
  g_autoptr (GArray) ivs = rs_task_expert_interventions (te, &tp);
  p.ivs = (const RsIntervention *) ivs->data;
  p.n_ivs = ivs->len;
  g_autoptr (RsAlignResult) rs = rs_align_run (f->model, f->tok, c, &p, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  gboolean changed = FALSE;
  for (int i = 0; i < r->n_lang * L * E; i++)
    changed |= fabs (rs->mean_importance[1][i] - r->mean_importance[1][i]) > 1e-6;
  g_assert_true (changed);

  /* English task texts: the same machinery over plain texts. */
  const char *task[2] = { "the cat is on the mat", "it was not for him" };
  g_autofree double *ti = g_new (double, (size_t) RS_IMPORTANCE_N_MODES * L * E);
  p.ivs = NULL;
  p.n_ivs = 0;
  g_assert_true (rs_importance_run_texts (f->model, f->tok, task, 2, &p, ti, NULL, NULL, NULL, &error));
  /* = the mean importance of the English sentences of the corpus */
  for (int i = 0; i < L * E; i++)
    g_assert_cmpfloat_with_epsilon (ti[i], r->mean_importance[0][(size_t) r->ref * L * E + i], 1e-9);

  /* Cancelled before it starts. */
  g_autoptr (GCancellable) cancel = g_cancellable_new ();
  g_cancellable_cancel (cancel);
  g_autoptr (RsAlignResult) rc = rs_align_run (f->model, f->tok, c, &p, NULL, NULL, cancel, &error);
  g_assert_null (rc);
  g_assert_error (error, RS_ERROR, RS_ERROR_CANCELLED);
  g_clear_error (&error);

  /* A reference language the corpus lacks. */
  p.ref_lang = "ja";
  g_assert_null (rs_align_run (f->model, f->tok, c, &p, NULL, NULL, NULL, &error));
  g_assert_error (error, RS_ERROR, RS_ERROR_INVALID);
}

static void
progress_count (void *data, int64_t done, int64_t total)
{
  int *n = data;
  (*n)++;
  g_assert_cmpint (done, <=, total);
}

static void
test_ppl_and_traces (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  const char *text = "the of and to in is it that for was on with as he be at by this had not "
                     "are but from or have an they which one you were her all she there would "
                     "their we him the of and to in is it that for was on with as he be at";
  /* Perplexity of one chunk equals the one from teacher-forced decoding
   * (the probabilities RsRun records for forced tokens). */
  RsPplParams pp;
  rs_ppl_params_init (&pp);
  pp.session.n_ctx = 512; /* the test vocabulary spells most words in bytes */
  pp.session.n_threads = 2;
  RsPplResult pr;
  g_assert_true (rs_ppl_compute (f->model, f->tok, text, &pp, NULL, 0, NULL, NULL, NULL, &pr, &error));
  g_assert_no_error (error);
  g_assert_cmpint (pr.n_chunks, ==, 1);
  g_assert_false (pr.steered);

  g_autoptr (GArray) ids = g_array_new (FALSE, FALSE, sizeof (int32_t));
  g_assert_true (rs_tokenizer_encode (f->tok, text, -1, RS_TOKENIZE_NONE, ids, &error));
  g_assert_cmpint (pr.n_scored, ==, ids->len);
  RsRunParams rp = { .session = { .n_ctx = 512, .n_threads = 2 } };
  g_autoptr (RsRun) run = rs_run_new (f->model, f->tok, &rp, &error);
  int32_t bos = rs_tokenizer_bos (f->tok);
  g_assert_true (rs_run_prompt_ids (run, &bos, 1, &error));
  double nll = 0.0;
  for (guint i = 0; i < ids->len; i++)
    {
      g_assert_true (rs_run_step (run, g_array_index (ids, int32_t, i), NULL, &error));
      nll -= log (g_array_index (rs_run_trace (run)->token_prob, float, i + 1));
    }
  g_assert_cmpfloat_with_epsilon (pr.nll, nll / ids->len, 1e-4);

  /* Chunks: a context of 16 -> 15 text tokens + BOS per chunk. */
  pp.session.n_ctx = 16;
  int n_progress = 0;
  RsPplResult pc;
  g_assert_true (rs_ppl_compute (f->model, f->tok, text, &pp, NULL, 0, progress_count, &n_progress,
                                 NULL, &pc, &error));
  int64_t n_chunks = (ids->len + 14) / 15;
  g_assert_cmpint (pc.n_chunks, ==, n_chunks);
  g_assert_cmpint (n_progress, ==, n_chunks);
  g_assert_cmpint (pc.n_scored, ==, ids->len);

  /* Interventions: a zero bias changes nothing; disabling experts does. */
  RsIntervention iv;
  g_assert_true (rs_intervention_parse (RS_INTERVENE_BIAS, "*:0:0", 0, &iv, &error));
  RsPplResult p0;
  g_assert_true (rs_ppl_compute (f->model, f->tok, text, &pp, &iv, 1, NULL, NULL, NULL, &p0, &error));
  g_assert_true (p0.steered);
  g_assert_cmpfloat_with_epsilon (p0.ppl_steered, p0.ppl, 1e-9);
  g_assert_cmpfloat_with_epsilon (p0.kl, 0.0, 1e-9);
  g_assert_cmpfloat (p0.top1_agree, ==, 1.0);
  g_assert_true (rs_intervention_parse (RS_INTERVENE_DISABLE, "*:0,1,2,3", 0, &iv, &error));
  RsPplResult p1;
  g_assert_true (rs_ppl_compute (f->model, f->tok, text, &pp, &iv, 1, NULL, NULL, NULL, &p1, &error));
  g_assert_cmpfloat (p1.ppl, ==, p0.ppl);
  g_assert_cmpfloat (p1.ppl_steered, !=, p1.ppl);
  g_assert_cmpfloat (p1.kl, >, 0.0);

  /* A trace of the text in chunks of 16; then every analysis on it. */
  rp.session.n_ctx = 16;
  g_autoptr (GArray) starts = g_array_new (FALSE, FALSE, sizeof (int64_t));
  g_autoptr (RsTrace) tr = rs_trace_from_text (f->model, f->tok, text, &rp, NULL, 0, 0, starts,
                                               NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (starts->len, ==, n_chunks);
  g_assert_cmpint (tr->n_tokens, ==, ids->len + n_chunks);
  for (guint i = 0; i < starts->len; i++)
    {
      int64_t s = g_array_index (starts, int64_t, i);
      g_assert_cmpint (s, ==, i * 16);
      g_assert_cmpint (g_array_index (tr->token_ids, int32_t, s), ==, bos);
    }
  const int L = tr->n_layer, E = tr->n_expert;

  g_autoptr (RsLoadResult) lr = rs_load_compute (tr, NULL, &error);
  g_assert_no_error (error);
  for (int l = 0; l < L; l++)
    {
      int64_t sum = 0;
      for (int e = 0; e < E; e++)
        sum += lr->counts[l * E + e];
      g_assert_cmpint (sum, ==, tr->n_tokens * tr->k_model);
      g_assert_true (lr->norm_entropy[l] > 0.0 && lr->norm_entropy[l] <= 1.0);
    }
  g_autoptr (RsEntropyResult) er = rs_entropy_compute (tr, NULL, &error);
  g_assert_no_error (error);
  for (int l = 0; l < L; l++)
    g_assert_true (er->mean_entropy[l] > 0.0 && er->mean_entropy[l] <= log (E) + 1e-9);
  g_autoptr (RsSuperResult) sr = rs_super_compute (tr, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (sr->n_pool_layers, ==, 2);
  g_assert_true (sr->pool_size > 0 && sr->threshold > 0.0);
  RsLrcParams lp;
  rs_lrc_params_init (&lp);
  lp.seq_starts = (const int64_t *) (const void *) starts->data;
  lp.n_seq = starts->len;
  g_autoptr (RsLrcResult) cr = rs_lrc_compute (tr, &lp, &error);
  g_assert_no_error (error);
  /* sequences of 16 tokens: windows of 4 and 16 only */
  g_assert_true (cr->srp_model[0] > 0.0 && cr->srp_model[0] <= 1.0);
  g_assert_true (cr->srp_model[1] > 0.0 && cr->srp_model[1] <= 1.0);
  g_assert_true (isnan (cr->srp_model[2]));
  for (int s = 0; s < 4; s++)
    g_assert_true (cr->sch_model[s] > 0.0 && cr->sch_model[s] <= 1.0);
  g_autoptr (RsSpecialResult) spr = rs_special_compute (tr, NULL, &error);
  g_assert_no_error (error);
  for (int l = 0; l < L; l++)
    g_assert_cmpint (spr->coact[((size_t) l * E) * E + 0] >= 0, ==, TRUE);

  /* Super-expert ablation through the perplexity path. */
  g_autoptr (GArray) sivs = rs_super_interventions (sr);
  RsPplResult pa;
  pp.session.n_ctx = 512;
  g_assert_true (rs_ppl_compute (f->model, f->tok, text, &pp, (RsIntervention *) sivs->data,
                                 sivs->len, NULL, NULL, NULL, &pa, &error));
  g_assert_no_error (error);
  g_assert_cmpfloat_with_epsilon (pa.ppl, pr.ppl, 1e-9);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/analysis/jsd", test_jsd);
  g_test_add_func ("/analysis/importance", test_importance);
  g_test_add_func ("/analysis/align-accum", test_align_accum);
  g_test_add_func ("/analysis/specialised-task", test_specialised_task);
  g_test_add_func ("/analysis/load", test_load);
  g_test_add_func ("/analysis/super", test_super);
  g_test_add_func ("/analysis/srp", test_srp);
  g_test_add_func ("/analysis/sch", test_sch);
  g_test_add_func ("/analysis/sch-random", test_sch_random);
  g_test_add_func ("/analysis/lrc-trace", test_lrc_trace);
  g_test_add_func ("/analysis/special", test_special);
  g_test_add_func ("/analysis/corpus", test_corpus);
  g_test_add ("/analysis/align-run", Fixture, NULL, fixture_set_up, test_align_run, fixture_tear_down);
  g_test_add ("/analysis/ppl-traces", Fixture, NULL, fixture_set_up, test_ppl_and_traces,
              fixture_tear_down);
  return g_test_run ();
}
