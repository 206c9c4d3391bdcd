/* bench-quant.c: dequantisation and dot-product throughput per tensor type.
 *
 * For each supported type: a rows x cols weight matrix (default 4096 x 4096,
 * single thread) is dequantised row by row (scalar reference and the
 * dispatched SIMD path), and multiplied with one
 * activation vector (a decode-style matvec) with the scalar reference
 * kernel and with the dispatched one. Throughput is in GB/s of quantised
 * weight bytes, the number that matters when decode is memory bound.
 *
 *   bench-quant [--rows N] [--cols N] [--time SECONDS] [--type NAME]...
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "rs-cpu.h"
#include "rs-quant.h"
#include "rs-types.h"

static const RsType bench_types[] = {
  RS_TYPE_F32, RS_TYPE_F16, RS_TYPE_BF16, RS_TYPE_Q8_0, RS_TYPE_Q6_K, RS_TYPE_Q5_K,
  RS_TYPE_Q4_K, RS_TYPE_Q3_K, RS_TYPE_Q2_K, RS_TYPE_Q4_0, RS_TYPE_Q4_1, RS_TYPE_Q5_0,
  RS_TYPE_Q5_1, RS_TYPE_IQ4_NL, RS_TYPE_IQ4_XS, RS_TYPE_MXFP4,
};

static volatile float sink;

static double
now_s (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
  RsType type;
  int64_t rows, cols;
  size_t row_bytes;
  guint8 *w;       /* rows x row_bytes */
  void *act;       /* one activation row in rs_act_type */
  float *tmp;      /* one dequantised row */
} Bench;

/* One full pass: dequantise every row (into the same small buffer, so the
 * traffic measured is the weights'). */
static void
pass_dequant (Bench *b, void (*fn) (RsType, const void *, float *, int64_t))
{
  for (int64_t r = 0; r < b->rows; r++)
    fn (b->type, b->w + r * b->row_bytes, b->tmp, b->cols);
  sink = b->tmp[b->cols - 1];
}

static void
pass_dot (Bench *b, RsVecDotFn fn)
{
  float acc = 0.0f;
  for (int64_t r = 0; r < b->rows; r++)
    acc += fn (b->cols, b->w + r * b->row_bytes, b->act);
  sink = acc;
}

/* Best seconds per pass over repeated passes for about @budget seconds. */
#define TIME_PASSES(budget, best, CALL)                         \
  do {                                                          \
    CALL; /* warm up */                                         \
    double t_end = now_s () + (budget);                         \
    best = INFINITY;                                            \
    int reps_ = 0;                                              \
    do {                                                        \
      double t0 = now_s ();                                     \
      CALL;                                                     \
      double dt = now_s () - t0;                                \
      if (dt < best)                                            \
        best = dt;                                              \
      reps_++;                                                  \
    } while (now_s () < t_end || reps_ < 3);                    \
  } while (0)

int
main (int argc, char **argv)
{
  gint64 rows = 4096, cols = 4096;
  double budget = 0.5;
  g_auto (GStrv) only = NULL;
  GOptionEntry entries[] = {
    { "rows", 0, 0, G_OPTION_ARG_INT64, &rows, "Matrix rows", "N" },
    { "cols", 0, 0, G_OPTION_ARG_INT64, &cols, "Matrix columns (multiple of 256)", "N" },
    { "time", 0, 0, G_OPTION_ARG_DOUBLE, &budget, "Seconds per measurement", "S" },
    { "type", 0, 0, G_OPTION_ARG_STRING_ARRAY, &only, "Only this type (repeatable)", "NAME" },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- tensor type throughput");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
    fprintf (stderr, "%s\n", error->message);
    return 2;
  }
  if (cols % 256 != 0 || rows < 1) {
    fprintf (stderr, "--cols must be a multiple of 256\n");
    return 2;
  }

  const RsCpuFeatures *f = rs_cpu_features ();
  printf ("matvec %" G_GINT64_FORMAT " x %" G_GINT64_FORMAT ", single thread; CPU: avx2=%d fma=%d f16c=%d avx512f=%d vnni=%d\n",
          rows, cols, f->avx2, f->fma, f->f16c, f->avx512f, f->avx512vnni);
  printf ("GB/s are of quantised weight bytes; act = quantising the activation row (us)\n\n");
  printf ("%-7s %6s %7s | %8s %8s %6s | %8s %8s %6s %-10s | %6s\n", "type", "bits/w", "MB",
          "deq scal", "deq best", "ratio", "dot scal", "dot best", "ratio", "impl", "act us");

  GRand *rng = g_rand_new_with_seed (1);
  /* Quantising is slow for some types; 64 distinct rows are repeated. */
  const int64_t distinct = MIN (rows, 64);
  float *src = g_new (float, distinct * cols);
  for (int64_t i = 0; i < distinct * cols; i++) {
    double u1 = g_rand_double (rng) + 1e-300, u2 = g_rand_double (rng);
    src[i] = (float) (0.02 * sqrt (-2.0 * log (u1)) * cos (2.0 * G_PI * u2));
  }
  float *x = g_new (float, cols);
  for (int64_t i = 0; i < cols; i++)
    x[i] = (float) g_rand_double_range (rng, -1.0, 1.0);

  for (guint k = 0; k < G_N_ELEMENTS (bench_types); k++) {
    const RsType t = bench_types[k];
    if (only && !g_strv_contains ((const char *const *) only, rs_type_name (t)))
      continue;
    Bench b = { .type = t, .rows = rows, .cols = cols };
    b.row_bytes = rs_type_row_size (t, cols);
    const RsType at = rs_act_type (t);
    b.w = g_malloc (b.row_bytes * rows);
    b.act = g_malloc (rs_type_row_size (at, cols));
    b.tmp = g_new (float, cols);
    for (int64_t r = 0; r < distinct; r++)
      rs_quantize_row (t, src + r * cols, b.w + r * b.row_bytes, cols);
    for (int64_t r = distinct; r < rows; r++)
      memcpy (b.w + r * b.row_bytes, b.w + (r % distinct) * b.row_bytes, b.row_bytes);

    const double mb = (double) b.row_bytes * rows / 1e6;
    rs_quantize_act (at, x, b.act, cols);
    double t_dsc, t_deq, t_sc, t_best, t_act;
    TIME_PASSES (budget / 5, t_act, rs_quantize_act (at, x, b.act, cols));
    TIME_PASSES (budget, t_dsc, pass_dequant (&b, rs_dequantize_row_scalar));
    TIME_PASSES (budget, t_deq, pass_dequant (&b, rs_dequantize_row));
    TIME_PASSES (budget, t_sc, pass_dot (&b, rs_vec_dot_fn_scalar (t)));
    TIME_PASSES (budget, t_best, pass_dot (&b, rs_vec_dot_fn (t)));

    printf ("%-7s %6.3f %7.2f | %8.2f %8.2f %5.1fx | %8.2f %8.2f %5.1fx %-10s | %6.2f\n", rs_type_name (t),
            8.0 * b.row_bytes / cols, mb, mb / 1e3 / t_dsc, mb / 1e3 / t_deq, t_dsc / t_deq,
            mb / 1e3 / t_sc, mb / 1e3 / t_best, t_sc / t_best, rs_vec_dot_impl_name (t), t_act * 1e6);
    fflush (stdout);
    g_free (b.w);
    g_free (b.act);
    g_free (b.tmp);
  }
  g_free (src);
  g_free (x);
  g_rand_free (rng);
  return 0;
}
