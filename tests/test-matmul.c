/* test-matmul.c: the thread pool, and rs_matmul / rs_matvec_multi against
 * the plain reference for every supported weight type.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include <glib.h>

#include "rs-matmul.h"
#include "rs-quant.h"
#include "rs-threadpool.h"

/* ---- thread pool ---- */

#define POOL_MAX 8

typedef struct {
  atomic_int count[POOL_MAX]; /* runs per ith, over all steps */
  atomic_int in_step;         /* runs in the current step */
  int        nth_seen[POOL_MAX];
  int        work;            /* busy-loop length, to vary timing */
} PoolCtx;

static void
pool_fn (void *data, int ith, int nth)
{
  PoolCtx *c = data;
  g_assert_cmpint (ith, >=, 0);
  g_assert_cmpint (ith, <, nth);
  atomic_fetch_add (&c->count[ith], 1);
  atomic_fetch_add (&c->in_step, 1);
  c->nth_seen[ith] = nth;
  volatile int sink = 0;
  for (int i = 0; i < c->work * (ith + 1); i++)
    sink += i;
}

/* Every ith runs exactly once per step, and the step is complete when
 * rs_thread_pool_run returns. */
static void
check_pool (int n_threads, int n_steps)
{
  RsThreadPool *pool = rs_thread_pool_new (n_threads);
  const int nth = rs_thread_pool_n_threads (pool);
  g_assert_cmpint (nth, ==, n_threads);
  PoolCtx c;
  memset (&c, 0, sizeof c);
  GRand *rand = g_rand_new_with_seed (n_threads);

  for (int step = 0; step < n_steps; step++) {
    c.work = g_rand_int_range (rand, 0, 3) == 0 ? g_rand_int_range (rand, 0, 2000) : 0;
    atomic_store (&c.in_step, 0);
    rs_thread_pool_run (pool, pool_fn, &c);
    g_assert_cmpint (atomic_load (&c.in_step), ==, nth);
    for (int i = 0; i < nth; i++) {
      g_assert_cmpint (atomic_load (&c.count[i]), ==, step + 1);
      g_assert_cmpint (c.nth_seen[i], ==, nth);
    }
    /* Now and then let the workers fall asleep, to exercise the futex
     * path (ROUTESCOPE_SPIN_US is small in this test). */
    if (step % 500 == 499)
      g_usleep (3000);
  }
  g_rand_free (rand);
  rs_thread_pool_free (pool);
}

static void
test_pool_steps (void)
{
  /* More threads than CPUs (3, 4 on a 2-CPU machine) is slow by nature
   * (every step waits for a thread to be scheduled): fewer steps there. */
  const int n_cpus = (int) g_get_num_processors ();
  for (int n = 1; n <= 4; n++)
    check_pool (n, n <= n_cpus ? 20000 : 500);
}

/* With no polling at all, every step wakes sleeping workers. */
static void
test_pool_sleepy (void)
{
  g_setenv ("ROUTESCOPE_SPIN_US", "0", TRUE);
  check_pool (2, 2000);
  check_pool (3, 300);
  g_setenv ("ROUTESCOPE_SPIN_US", "300", TRUE);
}

static void
test_pool_default_threads (void)
{
  RsThreadPool *pool = rs_thread_pool_new (0);
  g_assert_cmpint (rs_thread_pool_n_threads (pool), ==, (int) g_get_num_processors ());
  PoolCtx c;
  memset (&c, 0, sizeof c);
  rs_thread_pool_run (pool, pool_fn, &c);
  g_assert_cmpint (atomic_load (&c.in_step), ==, rs_thread_pool_n_threads (pool));
  rs_thread_pool_free (pool);
  rs_thread_pool_free (NULL);
  /* Create and free right away: shutdown must not wait for a step. */
  for (int i = 0; i < 50; i++)
    rs_thread_pool_free (rs_thread_pool_new (3));
}

static void
test_split_range (void)
{
  const int64_t ns[] = { 0, 1, 7, 15, 16, 17, 100, 1000, 4096, 4097, 123457 };
  const int64_t grains[] = { 1, 2, 16, 64, 256 };
  for (size_t a = 0; a < G_N_ELEMENTS (ns); a++)
    for (size_t b = 0; b < G_N_ELEMENTS (grains); b++)
      for (int nth = 1; nth <= 9; nth++) {
        const int64_t n = ns[a], grain = grains[b];
        int64_t prev_end = 0, max_len = 0, min_len = INT64_MAX;
        for (int ith = 0; ith < nth; ith++) {
          int64_t b0, e0;
          rs_split_range (n, grain, ith, nth, &b0, &e0);
          g_assert_cmpint (b0, ==, prev_end);  /* contiguous, in order */
          g_assert_cmpint (e0, >=, b0);
          g_assert_cmpint (e0, <=, n);
          if (e0 != n)
            g_assert_cmpint (e0 % grain, ==, 0);
          prev_end = e0;
          max_len = MAX (max_len, e0 - b0);
          min_len = MIN (min_len, e0 - b0);
        }
        g_assert_cmpint (prev_end, ==, n);     /* covers [0, n) */
        /* Balanced to within a grain (plus the short tail). */
        g_assert_cmpint (max_len - min_len, <=, 2 * grain);
      }
}

/* ---- matrices ---- */

typedef struct {
  RsMatrix m;
  uint8_t *data;
  float   *wf; /* [n_rows, n_cols] dequantised, what the kernels must agree with */
} TestMatrix;

static float
randn (GRand *r)
{
  /* Box-Muller; weights and activations look roughly normal. */
  double u = g_rand_double_range (r, 1e-12, 1.0), v = g_rand_double (r);
  return (float) (sqrt (-2.0 * log (u)) * cos (2.0 * G_PI * v));
}

/* Random n_rows x n_cols matrix of @type with @pad bytes after each row;
 * rows get different scales so the blocks' scales vary. Returns false
 * when the quant module cannot produce the type. */
static bool
test_matrix_init (TestMatrix *t, RsType type, int64_t n_rows, int64_t n_cols, size_t pad, GRand *r)
{
  const size_t row_size = rs_type_row_size (type, n_cols);
  g_assert_cmpuint (row_size, >, 0);
  t->m.type = type;
  t->m.n_rows = n_rows;
  t->m.n_cols = n_cols;
  t->m.row_stride = row_size + pad;
  t->data = g_malloc0 (t->m.row_stride * (size_t) n_rows + 1);
  t->m.data = t->data;
  t->wf = g_new (float, n_rows * n_cols);

  float *src = g_new (float, n_cols);
  for (int64_t i = 0; i < n_rows; i++) {
    const float scale = (float) g_rand_double_range (r, 0.01, 2.0);
    for (int64_t c = 0; c < n_cols; c++)
      src[c] = randn (r) * scale;
    if (!rs_quantize_row (type, src, t->data + (size_t) i * t->m.row_stride, n_cols)) {
      g_free (src);
      return false;
    }
    rs_dequantize_row (type, t->data + (size_t) i * t->m.row_stride, t->wf + i * n_cols, n_cols);
  }
  g_free (src);
  return true;
}

static void
test_matrix_clear (TestMatrix *t)
{
  g_free (t->data);
  g_free (t->wf);
}

static void
random_x (float *x, int64_t n_tokens, int64_t n_cols, int64_t x_stride, GRand *r)
{
  for (int64_t t = 0; t < n_tokens; t++) {
    /* Tokens of different magnitude, plus a few outlier features as real
     * activations have: they stress the per-block activation scales. */
    const float scale = (float) g_rand_double_range (r, 0.1, 10.0);
    for (int64_t c = 0; c < n_cols; c++)
      x[t * x_stride + c] = randn (r) * scale * (g_rand_int_range (r, 0, 64) == 0 ? 8.0f : 1.0f);
  }
}

/* The error allowed for y[t, r], from the magnitudes involved:
 *  - converting x to an 8-bit block format with scale d = amax/127 errs
 *    by at most d/2 = amax/254 per element, so sum over each block of
 *    |w| * amax_block(x)/254;
 *  - fp16 scales (d, and d * sum q of Q8_1) add a relative 2^-11 on each
 *    term: bounded by 2^-10 * max|w|_block * sum|x|_block;
 *  - f32 accumulation: each of the n roundings errs by at most eps/2 of
 *    a partial sum, itself at most sum |w x|; they add up like a random
 *    walk, so 4 sqrt(n) eps sum |w x| is many standard deviations (the
 *    worst-case gamma_n = n eps bound would be far looser for large n).
 * @quantised_act: whether the path converts x to the 8-bit format. */
static double
error_bound (RsType type, bool quantised_act, const float *w, const float *x, int64_t n)
{
  const RsType at = rs_act_type (type);
  const int64_t ab = at == RS_TYPE_F32 || !quantised_act ? 0 : rs_type_traits (at)->block_size;
  double sum_wx = 0.0, quant = 0.0;
  for (int64_t c = 0; c < n; c++)
    sum_wx += fabs ((double) w[c] * x[c]);
  if (ab > 0)
    for (int64_t b = 0; b < n; b += ab) {
      double amax_x = 0, amax_w = 0, sw = 0, sx = 0;
      for (int64_t c = b; c < b + ab; c++) {
        amax_x = MAX (amax_x, fabs (x[c]));
        amax_w = MAX (amax_w, fabs (w[c]));
        sw += fabs (w[c]);
        sx += fabs (x[c]);
      }
      quant += sw * amax_x / 254.0 + amax_w * sx * 0x1p-10;
    }
  return 1.01 * quant + 4.0 * sqrt ((double) n + 8) * FLT_EPSILON * sum_wx + 1e-30;
}

/* ---- rs_matmul vs rs_matmul_ref ---- */

typedef struct {
  int64_t n_cols, n_rows;
  size_t  pad; /* bytes after each weight row */
} Shape;

#define MAX_TOKENS 300

/* Scratches that take the default path choice, the quantised-dot path
 * for every token count, and the dequantise + gemm path for every token
 * count (with our AVX-512 kernel where the CPU has it, and with
 * cblas_sgemm), so that every path is checked on every shape. */
enum { PATH_DEFAULT, PATH_QDOT, PATH_GEMM, PATH_GEMM_BLAS, N_PATHS };
static const char *const path_names[N_PATHS] = { "default", "qdot", "gemm", "gemm-blas" };

static void
scratches_new (RsMatmulScratch **s, int n_threads, int64_t max_cols, int64_t max_tokens)
{
  const char *qdot_env[N_PATHS] = { NULL, "100000", "0", "0" };
  for (int p = 0; p < N_PATHS; p++) {
    if (qdot_env[p])
      g_setenv ("ROUTESCOPE_QDOT_MAX_TOKENS", qdot_env[p], TRUE);
    if (p == PATH_GEMM_BLAS)
      g_setenv ("ROUTESCOPE_GEMM", "blas", TRUE);
    s[p] = rs_matmul_scratch_new (n_threads, max_cols, max_tokens);
    g_unsetenv ("ROUTESCOPE_QDOT_MAX_TOKENS");
    g_unsetenv ("ROUTESCOPE_GEMM");
  }
}

static void
scratches_free (RsMatmulScratch **s)
{
  for (int p = 0; p < N_PATHS; p++)
    rs_matmul_scratch_free (s[p]);
}

static void
check_matmul (RsType type, const Shape *sh, RsThreadPool **pools, int n_pools, RsMatmulScratch **scratches, GRand *r)
{
  TestMatrix tm;
  if (!test_matrix_init (&tm, type, sh->n_rows, sh->n_cols, sh->pad, r)) {
    test_matrix_clear (&tm);
    g_test_skip ("rs_quantize_row cannot produce this type");
    return;
  }
  const int64_t n_tokens_list[] = { 1, 2, 7, 64, MAX_TOKENS };
  const int64_t x_stride = sh->n_cols + 8, y_stride = sh->n_rows + 3;
  float *x = g_new (float, MAX_TOKENS * x_stride);
  float *ref = g_new (float, MAX_TOKENS * y_stride);
  /* [2][n_tokens, n_rows]: for f32 and for quantised activations */
  double *bound = g_new (double, 2 * MAX_TOKENS * sh->n_rows);
  float *y = g_new (float, MAX_TOKENS * y_stride);
  float *y_first = g_new (float, MAX_TOKENS * y_stride);
  double worst[N_PATHS] = { 0 };

  for (size_t k = 0; k < G_N_ELEMENTS (n_tokens_list); k++) {
    const int64_t nt = n_tokens_list[k];
    random_x (x, nt, sh->n_cols, x_stride, r);
    rs_matmul_ref (&tm.m, x, x_stride, nt, ref, y_stride);
    for (int q = 0; q < 2; q++)
      for (int64_t t = 0; t < nt; t++)
        for (int64_t i = 0; i < sh->n_rows; i++)
          bound[(q * nt + t) * sh->n_rows + i] =
            error_bound (type, q, tm.wf + i * sh->n_cols, x + t * x_stride, sh->n_cols);

    for (int path = 0; path < N_PATHS; path++)
      for (int p = 0; p < n_pools; p++) {
        /* NaN canaries in the padding of y must survive. */
        for (int64_t i = 0; i < nt * y_stride; i++)
          y[i] = NAN;
        rs_matmul (pools[p], scratches[path], &tm.m, x, x_stride, nt, y, y_stride);
        /* Which path the default takes is rs-matmul.c's business: it
         * gets the looser bound. */
        const double *bnd = bound + (path == PATH_GEMM || path == PATH_GEMM_BLAS ? 0 : nt * sh->n_rows);

        for (int64_t t = 0; t < nt; t++) {
          for (int64_t i = sh->n_rows; i < y_stride; i++)
            g_assert_true (isnan (y[t * y_stride + i]));
          for (int64_t i = 0; i < sh->n_rows; i++) {
            const double got = y[t * y_stride + i], want = ref[t * y_stride + i];
            const double b = bnd[t * sh->n_rows + i];
            const double err = fabs (got - want);
            if (!(err <= b))
              g_error ("%s %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT " tokens %" G_GINT64_FORMAT
                       " threads %d path %s: y[%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT "] = %.8g, ref %.8g, err %.3g > bound %.3g",
                       rs_type_name (type), sh->n_rows, sh->n_cols, nt, rs_thread_pool_n_threads (pools[p]),
                       path_names[path], t, i, got, want, err, b);
            worst[path] = MAX (worst[path], err / b);
          }
        }
        /* The quantised-dot path computes each row independently of the
         * split: every thread count gives the same bits. */
        if (path == PATH_QDOT) {
          if (p == 0)
            memcpy (y_first, y, sizeof (float) * nt * y_stride);
          else
            for (int64_t t = 0; t < nt; t++)
              g_assert_cmpmem (y_first + t * y_stride, sizeof (float) * sh->n_rows,
                               y + t * y_stride, sizeof (float) * sh->n_rows);
        }
      }
  }
  g_test_message ("%s %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT ": worst err/bound %.3f (qdot), %.3f (gemm), %.3f (gemm-blas)",
                  rs_type_name (type), sh->n_rows, sh->n_cols, worst[PATH_QDOT], worst[PATH_GEMM], worst[PATH_GEMM_BLAS]);
  g_free (x);
  g_free (ref);
  g_free (bound);
  g_free (y);
  g_free (y_first);
  test_matrix_clear (&tm);
}

static void
test_matmul_type (gconstpointer data)
{
  const RsType type = (RsType) GPOINTER_TO_INT (data);
  const int64_t bs = rs_type_traits (type)->block_size;
  const Shape shapes[] = {
    { 256, 37, 0 },
    { 2304, 100, 0 },
    { 512, 21, 8 },    /* padded rows, like an expert slice with a gap */
    { 96, 50, 0 },     /* multiples of 32 only */
    { 1056, 23, 4 },
  };
  RsThreadPool *pools[3] = { rs_thread_pool_new (1), rs_thread_pool_new (2), rs_thread_pool_new (3) };
  RsMatmulScratch *s[N_PATHS];
  scratches_new (s, 3, 2304, MAX_TOKENS);
  GRand *r = g_rand_new_with_seed (1000 + type);

  for (size_t i = 0; i < G_N_ELEMENTS (shapes); i++) {
    if (shapes[i].n_cols % bs != 0)
      continue;
    /* F32 rows must stay float-aligned for sgemm. */
    Shape sh = shapes[i];
    if (type == RS_TYPE_F32)
      sh.pad = sh.pad / 4 * 4;
    check_matmul (type, &sh, pools, 2 + (i == 0), s, r);
  }
  g_rand_free (r);
  scratches_free (s);
  for (int i = 0; i < 3; i++)
    rs_thread_pool_free (pools[i]);
}

/* A scratch sized for fewer threads than the pool (the extra threads
 * must sit the gemm path out) and for fewer tokens than some calls use
 * (the packed-panel kernel gives way to cblas_sgemm): results stay
 * within bounds. */
static void
test_matmul_small_scratch (void)
{
  const RsType types[] = { RS_TYPE_Q4_K, RS_TYPE_F32, RS_TYPE_Q8_0 };
  RsThreadPool *pools[1] = { rs_thread_pool_new (2) };
  RsMatmulScratch *s[N_PATHS];
  scratches_new (s, 1, 512, 40);
  GRand *r = g_rand_new_with_seed (7);
  const Shape sh = { 512, 70, 0 };
  for (size_t i = 0; i < G_N_ELEMENTS (types); i++)
    if (rs_type_traits (types[i])->supported)
      check_matmul (types[i], &sh, pools, 1, s, r);
  g_rand_free (r);
  scratches_free (s);
  rs_thread_pool_free (pools[0]);
}

/* ---- rs_matvec_multi vs rs_matmul ---- */

static void
check_multi (int n_jobs, int n_threads, GRand *r)
{
  /* A mix of families (Q8_0, Q8_1, Q8_K and F32 activations) so that one
   * x is converted to several formats; shapes share n_cols per x. */
  const RsType types[] = { RS_TYPE_Q4_K, RS_TYPE_Q8_0, RS_TYPE_F16, RS_TYPE_Q6_K, RS_TYPE_Q4_1,
                           RS_TYPE_IQ4_NL, RS_TYPE_Q5_K, RS_TYPE_BF16, RS_TYPE_Q2_K, RS_TYPE_F32 };
  const int64_t cols_of_x[4] = { 1024, 256, 2048, 512 };
  float *xs[4];
  for (int i = 0; i < 4; i++) {
    xs[i] = g_new (float, cols_of_x[i]);
    random_x (xs[i], 1, cols_of_x[i], cols_of_x[i], r);
  }

  TestMatrix *tm = g_new0 (TestMatrix, n_jobs);
  RsMatvecJob *jobs = g_new0 (RsMatvecJob, n_jobs);
  float **want = g_new0 (float *, n_jobs);
  RsThreadPool *pool = rs_thread_pool_new (n_threads);
  RsMatmulScratch *s = rs_matmul_scratch_new (n_threads, 2048, 1);

  for (int j = 0; j < n_jobs; j++) {
    RsType type;
    do
      type = types[g_rand_int_range (r, 0, G_N_ELEMENTS (types))];
    while (!rs_type_traits (type)->supported);
    /* Skewed toward x 0: most jobs share it, like q/k/v or gate/up. */
    const int xi = g_rand_int_range (r, 0, 3) ? 0 : g_rand_int_range (r, 1, 4);
    const int64_t rows = g_rand_int_range (r, 0, 4) == 0 ? g_rand_int_range (r, 1, 40)
                                                          : g_rand_int_range (r, 100, 400);
    if (!test_matrix_init (&tm[j], type, rows, cols_of_x[xi], 0, r))
      g_error ("rs_quantize_row cannot produce %s", rs_type_name (type));
    jobs[j].w = &tm[j].m;
    jobs[j].x = xs[xi];
    jobs[j].y = g_new (float, rows);
    want[j] = g_new (float, rows);
    rs_matmul (pool, s, &tm[j].m, xs[xi], cols_of_x[xi], 1, want[j], rows);
  }

  for (int rep = 0; rep < 3; rep++) {
    for (int j = 0; j < n_jobs; j++)
      memset (jobs[j].y, 0xff, sizeof (float) * tm[j].m.n_rows);
    rs_matvec_multi (pool, s, jobs, n_jobs);
    for (int j = 0; j < n_jobs; j++)
      g_assert_cmpmem (jobs[j].y, sizeof (float) * tm[j].m.n_rows, want[j], sizeof (float) * tm[j].m.n_rows);
  }

  for (int j = 0; j < n_jobs; j++) {
    g_free (jobs[j].y);
    g_free (want[j]);
    test_matrix_clear (&tm[j]);
  }
  for (int i = 0; i < 4; i++)
    g_free (xs[i]);
  g_free (tm);
  g_free (jobs);
  g_free (want);
  rs_matmul_scratch_free (s);
  rs_thread_pool_free (pool);
}

static void
test_matvec_multi (void)
{
  GRand *r = g_rand_new_with_seed (42);
  const int counts[] = { 0, 1, 2, 3, 8, 17, 64 };
  for (size_t i = 0; i < G_N_ELEMENTS (counts); i++)
    for (int nth = 1; nth <= (counts[i] <= 8 ? 3 : 2); nth++)
      check_multi (counts[i], nth, r);
  g_rand_free (r);
}

int
main (int argc, char **argv)
{
  /* Keep idle workers polling only briefly, so that the pool tests go
   * through the sleep/wake path too. */
  g_setenv ("ROUTESCOPE_SPIN_US", "300", TRUE);
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/matmul/pool/steps", test_pool_steps);
  g_test_add_func ("/matmul/pool/sleepy", test_pool_sleepy);
  g_test_add_func ("/matmul/pool/default-threads", test_pool_default_threads);
  g_test_add_func ("/matmul/pool/split-range", test_split_range);
  for (int t = 0; t < RS_TYPE_COUNT; t++) {
    const RsTypeTraits *tr = rs_type_traits (t);
    if (!tr->supported || t == RS_TYPE_Q8_1 || t == RS_TYPE_Q8_K)
      continue;
    g_autofree char *path = g_strdup_printf ("/matmul/vs-ref/%s", tr->name);
    g_test_add_data_func (path, GINT_TO_POINTER (t), test_matmul_type);
  }
  g_test_add_func ("/matmul/vs-ref/small-scratch", test_matmul_small_scratch);
  g_test_add_func ("/matmul/multi", test_matvec_multi);
  return g_test_run ();
}
