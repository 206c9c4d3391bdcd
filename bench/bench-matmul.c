/* bench-matmul.c: throughput of the thread pool and of rs_matmul.
 *
 *   bench-matmul [--all-types | --types=F16,Q4_K,...] [--only=pool,decode,experts,prefill]
 *                [--sweep [--sweep-threads=N]] [--quick] [--batches=N] [--batch-ms=MS]
 *
 * Decode numbers stream weights from DRAM: every measurement cycles
 * through copies of the matrix filling RING_BYTES, far more than the L3,
 * as a MoE model's weights do. GB/s counts weight bytes only. Each figure
 * is the best of several batches, so that a loaded machine shows its
 * capability rather than its noise.
 *
 * --sweep times the two matmul paths against each other over token counts
 * (how qdot_max_tokens in rs-matmul.c was chosen).
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <glib.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "rs-matmul.h"
#include "rs-quant.h"
#include "rs-threadpool.h"

#define RING_BYTES ((size_t) 512 << 20)

static double batch_seconds = 0.08;
static int n_batches = 5;

static double
now_s (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
}

/* ---- weights ---- */

/* @n_copies copies of one random @type matrix, back to back. */
typedef struct {
  RsType   type;
  int64_t  n_rows, n_cols;
  size_t   bytes;    /* of one copy */
  int      n_copies;
  uint8_t *data;
} Ring;

static void
ring_init (Ring *r, RsType type, int64_t n_rows, int64_t n_cols, size_t ring_bytes)
{
  const size_t row = rs_type_row_size (type, n_cols);
  r->type = type;
  r->n_rows = n_rows;
  r->n_cols = n_cols;
  r->bytes = row * (size_t) n_rows;
  r->n_copies = (int) MAX (1, ring_bytes / r->bytes);
  r->data = g_aligned_alloc ((gsize) r->n_copies, r->bytes, 64);

  GRand *g = g_rand_new_with_seed (1);
  float *src = g_new (float, n_cols);
  for (int64_t i = 0; i < n_rows; i++) {
    for (int64_t c = 0; c < n_cols; c++)
      src[c] = (float) g_rand_double_range (g, -1.0, 1.0);
    if (!rs_quantize_row (type, src, r->data + (size_t) i * row, n_cols))
      g_error ("cannot quantise %s", rs_type_name (type));
  }
  for (int k = 1; k < r->n_copies; k++)
    memcpy (r->data + (size_t) k * r->bytes, r->data, r->bytes);
  g_free (src);
  g_rand_free (g);
}

static RsMatrix
ring_matrix (const Ring *r, int k)
{
  return (RsMatrix) {
    .type = r->type, .n_cols = r->n_cols, .n_rows = r->n_rows,
    .row_stride = rs_type_row_size (r->type, r->n_cols),
    .data = r->data + (size_t) (k % r->n_copies) * r->bytes,
  };
}

static float *
random_floats (int64_t n, guint32 seed)
{
  GRand *g = g_rand_new_with_seed (seed);
  float *x = g_aligned_alloc (n, sizeof (float), 64);
  for (int64_t i = 0; i < n; i++)
    x[i] = (float) g_rand_double_range (g, -1.0, 1.0);
  g_rand_free (g);
  return x;
}

/* ---- timing ---- */

typedef void (*BenchFn) (void *ctx, int iter);

/* Seconds per call of @fn: best over batches of calls. */
static double
time_best (BenchFn fn, void *ctx)
{
  int iter = 0;
  fn (ctx, iter++); /* warm up */
  double best = INFINITY;
  for (int b = 0; b < n_batches; b++) {
    int n = 0;
    const double t0 = now_s ();
    double t;
    do {
      fn (ctx, iter++);
      n++;
    } while ((t = now_s () - t0) < batch_seconds);
    best = MIN (best, t / n);
  }
  return best;
}

/* ---- pool ---- */

static void
empty_fn (void *ctx, int ith, int nth)
{
}

static double
pool_run_us (RsThreadPool *pool, int n)
{
  const double t0 = now_s ();
  for (int i = 0; i < n; i++)
    rs_thread_pool_run (pool, empty_fn, NULL);
  return (now_s () - t0) / n * 1e6;
}

static void
bench_pool (void)
{
  printf ("\n== thread pool: empty rs_thread_pool_run ==\n");
  printf ("%-8s %12s %18s\n", "threads", "back-to-back", "after 10 ms idle");
  for (int nth = 1; nth <= 2; nth++) {
    RsThreadPool *pool = rs_thread_pool_new (nth);
    pool_run_us (pool, 1000);
    double best = INFINITY;
    for (int k = 0; k < 5; k++)
      best = MIN (best, pool_run_us (pool, 100000));
    /* Workers asleep on the futex: the cost of waking them. */
    double cold[21];
    for (int k = 0; k < 21; k++) {
      g_usleep (10000);
      cold[k] = pool_run_us (pool, 1);
    }
    for (int a = 0; a < 21; a++)
      for (int b = a + 1; b < 21; b++)
        if (cold[b] < cold[a]) {
          double t = cold[a];
          cold[a] = cold[b];
          cold[b] = t;
        }
    printf ("%-8d %9.3f us %15.1f us\n", nth, best, cold[10]);
    rs_thread_pool_free (pool);
  }
}

/* ---- decode ---- */

typedef struct {
  RsThreadPool    *pool;
  RsMatmulScratch *s;
  const Ring      *ring;
  const float     *x;
  float           *y;
  int64_t          n_tokens;
} MatmulCtx;

static void
matmul_fn (void *data, int iter)
{
  MatmulCtx *c = data;
  RsMatrix m = ring_matrix (c->ring, iter);
  rs_matmul (c->pool, c->s, &m, c->x, m.n_cols, c->n_tokens, c->y, m.n_rows);
}

static void
bench_decode (const RsType *types, int n_types, RsThreadPool **pools)
{
  const int64_t shapes[][2] = { { 1024, 2048 }, { 4096, 4096 } };
  printf ("\n== decode mat-vec (1 token, weights from DRAM; GB/s of weights) ==\n");
  printf ("%-7s %-10s %8s %10s %10s %10s %12s\n", "type", "rows x cols", "MB", "1T GB/s", "2T GB/s", "2T us", "2T hot GB/s");
  for (int ti = 0; ti < n_types; ti++)
    for (size_t si = 0; si < G_N_ELEMENTS (shapes); si++) {
      Ring ring;
      ring_init (&ring, types[ti], shapes[si][0], shapes[si][1], RING_BYTES);
      float *x = random_floats (ring.n_cols, 2);
      float *y = g_new (float, ring.n_rows);
      double gbs[2], us = 0;
      for (int p = 0; p < 2; p++) {
        RsMatmulScratch *s = rs_matmul_scratch_new (p + 1, ring.n_cols, 1);
        MatmulCtx c = { pools[p], s, &ring, x, y, 1 };
        const double t = time_best (matmul_fn, &c);
        gbs[p] = ring.bytes / t * 1e-9;
        us = t * 1e6;
        rs_matmul_scratch_free (s);
      }
      /* One copy only: weights stay in L2/L3. */
      Ring hot = ring;
      hot.n_copies = 1;
      RsMatmulScratch *s = rs_matmul_scratch_new (2, ring.n_cols, 1);
      MatmulCtx c = { pools[1], s, &hot, x, y, 1 };
      const double hot_gbs = ring.bytes / time_best (matmul_fn, &c) * 1e-9;
      rs_matmul_scratch_free (s);

      char shape[32];
      g_snprintf (shape, sizeof shape, "%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT, ring.n_rows, ring.n_cols);
      printf ("%-7s %-10s %8.2f %10.1f %10.1f %10.1f %12.1f\n", rs_type_name (types[ti]), shape,
              ring.bytes / 1e6, gbs[0], gbs[1], us, hot_gbs);
      fflush (stdout);
      g_free (x);
      g_free (y);
      g_aligned_free (ring.data);
    }
}

/* ---- experts ---- */

#define N_EXPERTS 8

typedef struct {
  RsThreadPool    *pool;
  RsMatmulScratch *s;
  const Ring      *ring;
  const float     *x;
  float           *y[N_EXPERTS];
  bool             separate;
} MultiCtx;

static void
multi_fn (void *data, int iter)
{
  MultiCtx *c = data;
  RsMatrix m[N_EXPERTS];
  RsMatvecJob jobs[N_EXPERTS];
  for (int e = 0; e < N_EXPERTS; e++) {
    /* Different copies each call, like experts chosen per token. */
    m[e] = ring_matrix (c->ring, iter * N_EXPERTS + e);
    jobs[e] = (RsMatvecJob) { &m[e], c->x, c->y[e] };
  }
  if (c->separate)
    for (int e = 0; e < N_EXPERTS; e++)
      rs_matmul (c->pool, c->s, &m[e], c->x, m[e].n_cols, 1, c->y[e], m[e].n_rows);
  else
    rs_matvec_multi (c->pool, c->s, jobs, N_EXPERTS);
}

static void
bench_experts (const RsType *types, int n_types, RsThreadPool **pools)
{
  printf ("\n== rs_matvec_multi: %d experts of 512x1024 sharing x (weights from DRAM) ==\n", N_EXPERTS);
  printf ("%-7s %8s %12s %12s %12s %14s\n", "type", "MB", "1T GB/s", "2T GB/s", "2T us", "2T separate us");
  for (int ti = 0; ti < n_types; ti++) {
    Ring ring;
    ring_init (&ring, types[ti], 512, 1024, RING_BYTES);
    float *x = random_floats (1024, 3);
    MultiCtx c = { .ring = &ring, .x = x };
    for (int e = 0; e < N_EXPERTS; e++)
      c.y[e] = g_new (float, 512);
    double gbs[2], us = 0, sep_us;
    for (int p = 0; p < 2; p++) {
      c.pool = pools[p];
      c.s = rs_matmul_scratch_new (p + 1, 1024, 1);
      c.separate = false;
      const double t = time_best (multi_fn, &c);
      gbs[p] = N_EXPERTS * ring.bytes / t * 1e-9;
      us = t * 1e6;
      if (p == 1) {
        c.separate = true;
        sep_us = time_best (multi_fn, &c) * 1e6;
      }
      rs_matmul_scratch_free (c.s);
    }
    printf ("%-7s %8.2f %12.1f %12.1f %12.1f %14.1f\n", rs_type_name (types[ti]),
            N_EXPERTS * ring.bytes / 1e6, gbs[0], gbs[1], us, sep_us);
    fflush (stdout);
    for (int e = 0; e < N_EXPERTS; e++)
      g_free (c.y[e]);
    g_free (x);
    g_aligned_free (ring.data);
  }
}

/* ---- prefill ---- */

static void
bench_prefill (const RsType *types, int n_types, RsThreadPool **pools)
{
  const int64_t shapes[][2] = { { 1024, 2048 }, { 4096, 4096 } };
  const int64_t nt = 128;
  printf ("\n== prefill: %" G_GINT64_FORMAT " tokens (GFLOP/s) ==\n", nt);
  printf ("%-7s %-10s %10s %10s %10s\n", "type", "rows x cols", "1T", "2T", "2T ms");
  for (int ti = 0; ti < n_types; ti++)
    for (size_t si = 0; si < G_N_ELEMENTS (shapes); si++) {
      Ring ring;
      /* Weights are read once per 128 tokens: cache state hardly matters. */
      ring_init (&ring, types[ti], shapes[si][0], shapes[si][1], 0);
      float *x = random_floats (nt * ring.n_cols, 4);
      float *y = g_new (float, nt * ring.n_rows);
      const double flop = 2.0 * nt * ring.n_rows * ring.n_cols;
      double gf[2], ms = 0;
      for (int p = 0; p < 2; p++) {
        RsMatmulScratch *s = rs_matmul_scratch_new (p + 1, ring.n_cols, nt);
        MatmulCtx c = { pools[p], s, &ring, x, y, nt };
        const double t = time_best (matmul_fn, &c);
        gf[p] = flop / t * 1e-9;
        ms = t * 1e3;
        rs_matmul_scratch_free (s);
      }
      char shape[32];
      g_snprintf (shape, sizeof shape, "%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT, ring.n_rows, ring.n_cols);
      printf ("%-7s %-10s %10.1f %10.1f %10.2f\n", rs_type_name (types[ti]), shape, gf[0], gf[1], ms);
      fflush (stdout);
      g_free (x);
      g_free (y);
      g_aligned_free (ring.data);
    }
}

/* ---- path sweep ---- */

static void
bench_sweep (const RsType *types, int n_types, RsThreadPool *pool)
{
  const int64_t counts[] = { 1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128, 256 };
  const int64_t shapes[][2] = { { 4096, 4096 }, { 1024, 2048 } };
  const int64_t max_nt = 256;
  g_setenv ("ROUTESCOPE_QDOT_MAX_TOKENS", "100000", TRUE);
  RsMatmulScratch *sq = rs_matmul_scratch_new (2, 4096, max_nt);
  g_setenv ("ROUTESCOPE_QDOT_MAX_TOKENS", "0", TRUE);
  RsMatmulScratch *sg = rs_matmul_scratch_new (2, 4096, max_nt);
  g_unsetenv ("ROUTESCOPE_QDOT_MAX_TOKENS");
  float *x = random_floats (max_nt * 4096, 5);
  float *y = g_new (float, max_nt * 4096);

  for (size_t si = 0; si < G_N_ELEMENTS (shapes); si++) {
    printf ("\n== path sweep, %d threads, %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
            " (weights from DRAM): GFLOP/s qdot / gemm ==\n",
            rs_thread_pool_n_threads (pool), shapes[si][0], shapes[si][1]);
    printf ("%-7s", "tokens");
    for (size_t k = 0; k < G_N_ELEMENTS (counts); k++)
      printf (" %11" G_GINT64_FORMAT, counts[k]);
    printf ("\n");
    for (int ti = 0; ti < n_types; ti++) {
      Ring ring;
      ring_init (&ring, types[ti], shapes[si][0], shapes[si][1], RING_BYTES / 4);
      const double flop = 2.0 * ring.n_rows * ring.n_cols;
      printf ("%-7s", rs_type_name (types[ti]));
      for (size_t k = 0; k < G_N_ELEMENTS (counts); k++) {
        MatmulCtx cq = { pool, sq, &ring, x, y, counts[k] };
        MatmulCtx cg = { pool, sg, &ring, x, y, counts[k] };
        const double tq = time_best (matmul_fn, &cq), tg = time_best (matmul_fn, &cg);
        printf (" %5.0f/%-4.0f%c", flop * counts[k] / tq * 1e-9, flop * counts[k] / tg * 1e-9,
                tq <= tg ? 'q' : 'g');
        fflush (stdout);
      }
      printf ("\n");
      g_aligned_free (ring.data);
    }
  }
  g_free (x);
  g_free (y);
  rs_matmul_scratch_free (sq);
  rs_matmul_scratch_free (sg);
}

int
main (int argc, char **argv)
{
  gboolean all_types = FALSE, sweep = FALSE, quick = FALSE;
  int sweep_threads = 2, batch_ms = 0;
  char *type_list = NULL, *only = NULL;
  GOptionEntry entries[] = {
    { "types", 0, 0, G_OPTION_ARG_STRING, &type_list, "Comma-separated weight types", "LIST" },
    { "only", 0, 0, G_OPTION_ARG_STRING, &only, "Sections to run: pool,decode,experts,prefill", "LIST" },
    { "sweep-threads", 0, 0, G_OPTION_ARG_INT, &sweep_threads, "Threads for --sweep (1 or 2)", "N" },
    { "batches", 0, 0, G_OPTION_ARG_INT, &n_batches, "Batches per figure (the best counts)", "N" },
    { "batch-ms", 0, 0, G_OPTION_ARG_INT, &batch_ms, "Length of a batch", "MS" },
    { "all-types", 0, 0, G_OPTION_ARG_NONE, &all_types, "Every supported weight type", NULL },
    { "sweep", 0, 0, G_OPTION_ARG_NONE, &sweep, "Only the qdot/gemm path sweep", NULL },
    { "quick", 0, 0, G_OPTION_ARG_NONE, &quick, "Shorter batches", NULL },
    { NULL },
  };
  GOptionContext *oc = g_option_context_new ("- rs_matmul benchmark");
  g_option_context_add_main_entries (oc, entries, NULL);
  GError *error = NULL;
  if (!g_option_context_parse (oc, &argc, &argv, &error))
    g_error ("%s", error->message);
  g_option_context_free (oc);
  if (quick) {
    batch_seconds = 0.03;
    n_batches = 3;
  }
  if (batch_ms > 0)
    batch_seconds = batch_ms * 1e-3;
  n_batches = MAX (1, n_batches);

  RsType types[RS_TYPE_COUNT];
  int n_types = 0;
  if (type_list) {
    g_auto (GStrv) names = g_strsplit (type_list, ",", -1);
    for (int i = 0; names[i]; i++) {
      int t;
      for (t = 0; t < RS_TYPE_COUNT; t++)
        if (rs_type_traits (t)->supported && g_ascii_strcasecmp (rs_type_name (t), names[i]) == 0)
          break;
      if (t == RS_TYPE_COUNT)
        g_error ("unknown or unsupported type '%s'", names[i]);
      types[n_types++] = (RsType) t;
    }
  } else if (all_types) {
    for (int t = 0; t < RS_TYPE_COUNT; t++)
      if (rs_type_traits (t)->supported)
        types[n_types++] = (RsType) t;
  } else {
    const RsType dflt[] = { RS_TYPE_F16, RS_TYPE_Q8_0, RS_TYPE_Q4_K, RS_TYPE_Q6_K };
    for (size_t i = 0; i < G_N_ELEMENTS (dflt); i++)
      types[n_types++] = dflt[i];
  }

  RsThreadPool *pools[2] = { rs_thread_pool_new (1), rs_thread_pool_new (2) };
  printf ("dot kernels:");
  for (int i = 0; i < n_types; i++)
    printf (" %s=%s", rs_type_name (types[i]), rs_vec_dot_impl_name (types[i]));
  printf ("\n");

  if (sweep) {
    bench_sweep (types, n_types, pools[CLAMP (sweep_threads, 1, 2) - 1]);
  } else {
#define WANT(name) (only == NULL || strstr (only, name) != NULL)
    if (WANT ("pool"))
      bench_pool ();
    if (WANT ("decode"))
      bench_decode (types, n_types, pools);
    if (WANT ("experts"))
      bench_experts (types, n_types, pools);
    if (WANT ("prefill"))
      bench_prefill (types, n_types, pools);
#undef WANT
  }
  rs_thread_pool_free (pools[0]);
  rs_thread_pool_free (pools[1]);
  g_free (type_list);
  g_free (only);
  return 0;
}
