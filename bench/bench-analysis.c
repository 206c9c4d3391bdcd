/* SPDX-License-Identifier: GPL-3.0-or-later */
/* bench-analysis: the routing analyses over a synthetic trace.
 *
 *   bench-analysis [TOKENS] [LAYERS] [EXPERTS] [K]
 *
 * Defaults: 100000 tokens of the bench model's shape (16 layers, 64
 * experts, top-8; 16 slots per token as RsRun records). The routing is
 * top-k of synthetic logits = expert popularity + a per-token-id
 * preference + a slowly drifting topic + noise, so that load is uneven
 * and routing has local consistency, as in real models. Token ids are
 * Zipf-distributed over 6000 ids. Prints the wall time of each analysis
 * (one thread; the analyses are single-threaded).
 */
#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rs-analysis.h"
#include "rs-router.h"

static double
gauss (GRand *r)
{
  double u = g_rand_double (r), v = g_rand_double (r);
  return sqrt (-2.0 * log (u + 1e-300)) * cos (2.0 * G_PI * v);
}

static RsTrace *
make_trace (int64_t T, int L, int E, int k)
{
  const int K = MIN (E, MAX (2 * k, 16));
  const int V = 6000, D = 8;
  GRand *r = g_rand_new_with_seed (2024);
  RsTrace *tr = rs_trace_new (L, E, k, K, TRUE);

  /* Zipf token ids by inverse transform on the harmonic sums. */
  double *cdf = g_new (double, V);
  double acc = 0.0;
  for (int v = 0; v < V; v++)
    cdf[v] = acc += 1.0 / (v + 1);
  int32_t *ids = g_new (int32_t, T);
  for (int64_t t = 0; t < T; t++)
    {
      double u = g_rand_double (r) * acc;
      int lo = 0, hi = V - 1;
      while (lo < hi)
        {
          int mid = (lo + hi) / 2;
          if (cdf[mid] < u)
            lo = mid + 1;
          else
            hi = mid;
        }
      ids[t] = lo;
    }
  rs_trace_append_tokens (tr, ids, T, TRUE);

  /* Low-rank structure: token embeddings [V, D], expert keys [L, E, D],
   * a topic vector drifting over positions. */
  float *emb = g_new (float, (size_t) V * D), *key = g_new (float, (size_t) L * E * D);
  float *pop = g_new (float, (size_t) L * E);
  for (size_t i = 0; i < (size_t) V * D; i++)
    emb[i] = gauss (r);
  for (size_t i = 0; i < (size_t) L * E * D; i++)
    key[i] = gauss (r) * 0.6;
  for (size_t i = 0; i < (size_t) L * E; i++)
    pop[i] = gauss (r) * 0.8;
  double topic[8] = { 0 };
  float z[RS_MAX_EXPERTS], s[RS_MAX_EXPERTS], work[RS_MAX_EXPERTS];
  const RsRoutingRule rule = { RS_SCORE_SOFTMAX, true, 1.0f, 0, 0 };
  for (int64_t t = 0; t < T; t++)
    {
      for (int d = 0; d < D; d++)
        topic[d] = 0.98 * topic[d] + 0.2 * gauss (r);
      for (int l = 0; l < L; l++)
        {
          for (int e = 0; e < E; e++)
            {
              const float *kv = key + ((size_t) l * E + e) * D;
              double dot = 0.0;
              for (int d = 0; d < D; d++)
                dot += kv[d] * (emb[(size_t) ids[t] * D + d] + topic[d]);
              z[e] = (float) (pop[l * E + e] + dot + 0.5 * gauss (r));
            }
          size_t i = (size_t) t * L + l;
          memcpy (&g_array_index (tr->router_logits, float, i * E), z, E * sizeof (float));
          RsRouteResult rr;
          rs_route_token (&rule, NULL, E, k, z, s, NULL, work, &rr);
          memcpy (&g_array_index (tr->router_scores, float, i * E), s, E * sizeof (float));
          for (int j = 0; j < rr.n_selected && j < K; j++)
            {
              g_array_index (tr->topk_ids, int32_t, i * K + j) = rr.selected[j];
              g_array_index (tr->topk_weights, float, i * K + j) = rr.weights[j];
              g_array_index (tr->base_topk_ids, int32_t, i * K + j) = rr.selected[j];
              g_array_index (tr->base_topk_weights, float, i * K + j) = rr.weights[j];
              /* lognormal magnitudes, with a rare huge one for expert 3 of layer 1 */
              float mx = (float) exp (gauss (r) * 0.5 + 1.0);
              if (l == 1 && rr.selected[j] == 3 && g_rand_int_range (r, 0, 50) == 0)
                mx = 800.0f;
              g_array_index (tr->expert_out_maxabs, float, i * K + j) = mx;
              g_array_index (tr->expert_out_channel, int32_t, i * K + j) = g_rand_int_range (r, 0, 1024);
            }
        }
    }
  g_free (cdf);
  g_free (ids);
  g_free (emb);
  g_free (key);
  g_free (pop);
  g_rand_free (r);
  return tr;
}

static double
now (void)
{
  return g_get_monotonic_time () / 1e6;
}

/* CPU time of the process (all threads): what the analysis costs,
 * whatever else the machine is running. */
static double
cpu (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int
main (int argc, char **argv)
{
  int64_t T = argc > 1 ? g_ascii_strtoll (argv[1], NULL, 10) : 100000;
  int L = argc > 2 ? atoi (argv[2]) : 16;
  int E = argc > 3 ? atoi (argv[3]) : 64;
  int k = argc > 4 ? atoi (argv[4]) : 8;
  if (T < 1 || L < 1 || E < 2 || E > RS_MAX_EXPERTS || k < 1 || k > E)
    {
      fprintf (stderr, "usage: bench-analysis [TOKENS] [LAYERS] [EXPERTS<=512] [K]\n");
      return 1;
    }
  double t0 = now (), c0 = 0.0;
  g_autoptr (RsTrace) tr = make_trace (T, L, E, k);
  printf ("trace: %" G_GINT64_FORMAT " tokens x %d layers x %d experts, top-%d (%d slots); "
          "made in %.1f s\n", T, L, E, k, tr->k_slots, now () - t0);
  g_autoptr (GError) error = NULL;
  /* Sequences of 512 tokens, as moe-lrc's data. */
  g_autoptr (GArray) starts = g_array_new (FALSE, FALSE, sizeof (int64_t));
  for (int64_t s = 0; s < T; s += 512)
    g_array_append_val (starts, s);

  t0 = now ();
  c0 = cpu ();
  g_autoptr (RsLoadResult) load = rs_load_compute (tr, NULL, &error);
  printf ("%-28s %7.3f s wall %7.3f s CPU   cv[0] %.3f\n", "load", now () - t0, cpu () - c0, load->cv[0]);

  t0 = now ();
  c0 = cpu ();
  g_autoptr (RsEntropyResult) ent = rs_entropy_compute (tr, NULL, &error);
  printf ("%-28s %7.3f s wall %7.3f s CPU   mean H[0] %.3f nats\n", "entropy", now () - t0, cpu () - c0, ent->mean_entropy[0]);

  t0 = now ();
  c0 = cpu ();
  g_autoptr (RsSuperResult) sup = rs_super_compute (tr, NULL, &error);
  printf ("%-28s %7.3f s wall %7.3f s CPU   %u super experts, threshold %.1f\n", "super", now () - t0, cpu () - c0,
          sup->super_experts->len, sup->threshold);

  RsLrcParams lp;
  rs_lrc_params_init (&lp);
  lp.seq_starts = (const int64_t *) (const void *) starts->data;
  lp.n_seq = starts->len;
  t0 = now ();
  c0 = cpu ();
  g_autoptr (RsLrcResult) lrc = rs_lrc_compute (tr, &lp, &error);
  printf ("%-28s %7.3f s wall %7.3f s CPU   SRP %.3f %.3f %.3f %.3f  SCH %.3f %.3f %.3f %.3f\n",
          "lrc (512-token sequences)", now () - t0, cpu () - c0, lrc->srp_model[0], lrc->srp_model[1],
          lrc->srp_model[2], lrc->srp_model[3], lrc->sch_model[0], lrc->sch_model[1],
          lrc->sch_model[2], lrc->sch_model[3]);
  rs_lrc_params_init (&lp);
  t0 = now ();
  c0 = cpu ();
  g_autoptr (RsLrcResult) lrc1 = rs_lrc_compute (tr, &lp, &error);
  printf ("%-28s %7.3f s wall %7.3f s CPU   SRP %.3f  SCH %.3f (m=4)\n", "lrc (one sequence)", now () - t0, cpu () - c0,
          lrc1->srp_model[0], lrc1->sch_model[0]);

  RsSpecialParams sp;
  rs_special_params_init (&sp);
  sp.seq_starts = lp.seq_starts = (const int64_t *) (const void *) starts->data;
  sp.n_seq = starts->len;
  t0 = now ();
  c0 = cpu ();
  g_autoptr (RsSpecialResult) spec = rs_special_compute (tr, &sp, &error);
  printf ("%-28s %7.3f s wall %7.3f s CPU   token std %.4f vs position std %.4f (layer 0)\n", "special", now () - t0, cpu () - c0,
          spec->mean_token_std[0], spec->mean_position_std[0]);

  g_autofree double *q = g_new (double, (size_t) L * E);
  t0 = now ();
  c0 = cpu ();
  for (int m = 0; m < RS_IMPORTANCE_N_MODES; m++)
    rs_importance_from_trace (tr, 0, T, NULL, m, q, &error);
  printf ("%-28s %7.3f s wall %7.3f s CPU\n", "importance (both modes)", now () - t0, cpu () - c0);
  return 0;
}
