/* rs-matmul.c: y = W x on the thread pool.
 *
 * Decode ("qdot") path, for few activation rows: one parallel step in
 * two phases without a full barrier.
 *   1. The activation rows are cut into pieces of whole blocks; threads
 *      claim pieces from an atomic counter and convert them to the
 *      weights' activation format (rs_quantize_act) in the scratch. A
 *      worker that wakes late finds every piece claimed and goes straight
 *      on, so nobody waits for a thread that is still asleep.
 *   2. Once every piece is done, threads claim chunks of weight rows
 *      (a multiple of 16 rows, about CHUNKS_PER_THREAD per thread, over
 *      the rows of all jobs) and take one fused dequantise-and-dot
 *      (rs_vec_dot_fn) per (row, token). Claiming chunks dynamically
 *      instead of a static split lets the caller start at once while the
 *      workers are waking, and balances a thread that another process
 *      preempts. A row's result depends only on the row and its
 *      activations, never on the split, so it is bit-identical whatever
 *      the thread count or the batching into rs_matvec_multi.
 *
 * Prefill ("gemm") path, for many rows: threads claim tiles of W rows,
 * dequantise a tile to f32 in their own scratch and multiply it:
 * y[:, tile] = x @ tile^T. F32 weights are used straight from the mapped
 * data. On AVX-512 CPUs the multiply is our kernel (rs-gemm-avx512.c;
 * the threads first pack x into panels, in the same step, like phase 1
 * above); elsewhere single-threaded OpenBLAS sgemm.
 *
 * The regime switch (qdot_max_tokens) was measured with bench-matmul on
 * the target (2 vCPU EPYC, AVX-512): see the comment there.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "rs-matmul.h"

#include <cblas.h>
#include <glib.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <string.h>

#include "rs-cpu.h"
#include "rs-gemm-private.h"
#include "rs-quant.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause ()
#else
#define cpu_relax() __asm__ volatile ("" ::: "memory")
#endif

#define MAX_JOBS           64
#define ROW_GRAIN          16   /* weight rows per chunk are a multiple of this */
#define CHUNKS_PER_THREAD  8    /* enough to balance, few enough that claiming is free */
#define QUANT_PIECE_COLS   2048 /* activation columns converted per claimed piece (multiple of 256) */
#define TILE_ELEMS         (64 * 4096) /* f32 elements of a dequantised tile (1 MiB) */
#define TILE_MIN_ROWS      16
#define TILE_MAX_ROWS      256
#define TOKEN_BLOCK        64   /* converted activation rows kept in L2 at a time */
#define L1_WEIGHT_BYTES    (16 * 1024) /* weight rows kept in L1 while tokens go by */
/* Below this many weight bytes x tokens a step runs on the caller alone:
 * a few us of work, less than waking and joining the workers costs
 * (router logits, a shared-expert gate of one row). */
#define INLINE_WORK_BYTES  (32 * 1024)

/* One activation row to convert: @src (n_cols floats) -> @dst. */
typedef struct {
  const float *src;
  uint8_t     *dst;
  RsType       act_type;
  int64_t      n_cols;
  int64_t      piece0;       /* first global piece of this row */
} QuantRow;

struct _RsMatmulScratch {
  int      n_threads;
  int64_t  max_cols;
  int64_t  max_tokens;
  size_t   act_row_bytes; /* one converted row of max_cols in any activation format */
  int64_t  act_rows;      /* rows of @act */
  uint8_t *act;           /* [act_rows][act_row_bytes], 64-byte aligned rows */
  QuantRow *qrows;        /* [act_rows + 1] */
  int64_t  tile_elems;
  float   *tiles;         /* [n_threads][tile_elems] */
  bool     gemm_avx512;   /* our AVX-512 kernel instead of cblas_sgemm */
  float   *xpack;         /* [ceil (max_tokens / MR)] panels of max_cols (rs-gemm-private.h) */
  int64_t  qdot_max[RS_TYPE_COUNT]; /* qdot path up to this many tokens, per weight type */
};

/* ---- scratch ---- */

/* Largest token count for which the quantised dot path beats
 * dequantise + gemm, from bench-matmul --sweep --all-types (1 thread,
 * 4096x4096 and 1024x2048 weights from DRAM, on the target: Zen 5 with
 * AVX-512 VNNI dots).
 * @fast_gemm: the gemm runs at AVX-512 speed (our kernel, or OpenBLAS
 * with AVX-512 kernels: ~140 GFLOP/s per thread); otherwise it is
 * OpenBLAS's AVX2 kernel (~85 GFLOP/s), and the dots stay ahead longer.
 *  - The K-quants' VNNI dots (int8 multiply-adds are 4x denser than f32
 *    FMAs, and the weights need no dequantised copy) keep up with the
 *    AVX-512 gemm to 12-24 tokens; against the AVX2 sgemm Q2_K and Q6_K
 *    win at every size.
 *  - Q8_0 and the VNNI nibble formats cross over at 8-12 tokens.
 *  - Formats with AVX2-only dots (Q4_1, Q5_0, Q5_1) and the float types
 *    (f32 FMA dots against register-blocked gemm) cross over at 4-6.
 * Plain C dots (ROUTESCOPE_SIMD=scalar) lose to sgemm almost at once. */
static int64_t
qdot_max_tokens (RsType type, bool fast_gemm)
{
  if (strcmp (rs_vec_dot_impl_name (type), "scalar") == 0)
    return 2;
  switch (type) {
  case RS_TYPE_F32:
  case RS_TYPE_Q5_0:
  case RS_TYPE_Q5_1:
    return fast_gemm ? 4 : 6;
  case RS_TYPE_F16:
  case RS_TYPE_BF16:
  case RS_TYPE_Q4_1:
    return fast_gemm ? 6 : 8;
  case RS_TYPE_Q4_0:
  case RS_TYPE_IQ4_NL:
  case RS_TYPE_IQ4_XS:
  case RS_TYPE_MXFP4:
    return fast_gemm ? 8 : 12;
  case RS_TYPE_Q8_0:
  case RS_TYPE_Q3_K:
  case RS_TYPE_Q4_K:
  case RS_TYPE_Q5_K:
    return fast_gemm ? 12 : 32;
  case RS_TYPE_Q6_K:
  case RS_TYPE_Q2_K:
    return fast_gemm ? 24 : INT64_MAX;
  default:
    return 8;
  }
}

/* Whether OpenBLAS picked (or was told, OPENBLAS_CORETYPE) AVX-512
 * kernels. */
static bool
blas_is_avx512 (void)
{
  static const char *const cores[] = { "skylakex", "cooperlake", "sapphirerapids" };
  const char *core = openblas_get_corename ();
  for (size_t i = 0; core != NULL && i < G_N_ELEMENTS (cores); i++)
    if (g_ascii_strcasecmp (core, cores[i]) == 0)
      return true;
  return false;
}

static size_t
round_up (size_t n, size_t to)
{
  return (n + to - 1) / to * to;
}

RsMatmulScratch *
rs_matmul_scratch_new (int n_threads, int64_t max_cols, int64_t max_tokens)
{
  static gsize blas_once = 0;
  if (g_once_init_enter (&blas_once)) {
    /* Our pool does the threading; OpenBLAS threads would fight it. */
    openblas_set_num_threads (1);
    g_once_init_leave (&blas_once, 1);
  }

  g_return_val_if_fail (max_cols > 0, NULL);
  if (n_threads < 1)
    n_threads = 1;
  if (max_tokens < 1)
    max_tokens = 1;

  RsMatmulScratch *s = g_new0 (RsMatmulScratch, 1);
  s->n_threads = n_threads;
  s->max_cols = max_cols;
  s->max_tokens = max_tokens;

  /* Room for max_cols rounded up to the largest block, in the widest
   * quantised activation format (F32 activations are never copied). */
  const int64_t cols = (int64_t) round_up ((size_t) max_cols, 256);
  size_t row = 0;
  const RsType act_types[] = { RS_TYPE_Q8_0, RS_TYPE_Q8_1, RS_TYPE_Q8_K };
  for (size_t i = 0; i < G_N_ELEMENTS (act_types); i++)
    row = MAX (row, rs_type_row_size (act_types[i], cols));
  s->act_row_bytes = round_up (row, 64);
  /* rs_matvec_multi needs one row per distinct x (at most MAX_JOBS),
   * rs_matmul one per token on the qdot path. */
  s->act_rows = MAX (MAX_JOBS, max_tokens);
  s->act = g_aligned_alloc0 ((gsize) s->act_rows, s->act_row_bytes, 64);
  s->qrows = g_new0 (QuantRow, s->act_rows + 1);

  /* A tile has at least TILE_MIN_ROWS rows, whatever the width. */
  s->tile_elems = (int64_t) round_up ((size_t) MAX (TILE_ELEMS, TILE_MIN_ROWS * max_cols), 16);
  s->tiles = g_aligned_alloc ((gsize) n_threads * (gsize) s->tile_elems, sizeof (float), 64);

  /* ROUTESCOPE_GEMM=blas keeps the OpenBLAS path on AVX-512 CPUs (to
   * compare the two). */
  s->gemm_avx512 = rs_cpu_features ()->avx512f && g_strcmp0 (g_getenv ("ROUTESCOPE_GEMM"), "blas") != 0;
  if (s->gemm_avx512) {
    const int64_t n_panels = (max_tokens + RS_GEMM_MR - 1) / RS_GEMM_MR;
    s->xpack = g_aligned_alloc ((gsize) n_panels, (gsize) RS_GEMM_PANEL_FLOATS (max_cols) * sizeof (float), 64);
  }

  /* ROUTESCOPE_QDOT_MAX_TOKENS: for benchmarks and tests that measure
   * one path against the other. */
  const char *env = g_getenv ("ROUTESCOPE_QDOT_MAX_TOKENS");
  const bool fast_gemm = s->gemm_avx512 || blas_is_avx512 ();
  for (int t = 0; t < RS_TYPE_COUNT; t++)
    s->qdot_max[t] = env && *env ? MAX (g_ascii_strtoll (env, NULL, 10), 0)
                   : rs_type_traits (t)->supported ? qdot_max_tokens ((RsType) t, fast_gemm) : 0;

  return s;
}

void
rs_matmul_scratch_free (RsMatmulScratch *s)
{
  if (s == NULL)
    return;
  g_aligned_free (s->act);
  g_free (s->qrows);
  g_aligned_free (s->tiles);
  g_aligned_free (s->xpack);
  g_free (s);
}

/* ---- qdot path ---- */

typedef struct {
  const uint8_t *w;          /* first row */
  size_t         w_stride;   /* bytes */
  int64_t        n_rows, n_cols;
  RsVecDotFn     dot;
  const uint8_t *act;        /* token t's activations at act + t * act_stride */
  size_t         act_stride;
  float         *y;          /* token t's outputs at y + t * y_stride */
  int64_t        y_stride;
  int64_t        n_tokens;
  int64_t        row_group;  /* rows that share L1 while the tokens go by */
  int64_t        chunk0;     /* first global chunk of this job */
} QdotJob;

typedef struct {
  alignas (64) atomic_int_fast64_t next_piece;
  alignas (64) atomic_int_fast64_t pieces_done;
  alignas (64) atomic_int_fast64_t next_chunk;

  alignas (64) const QuantRow *qrows;
  int            n_qrows;
  int64_t        n_pieces;
  int64_t        piece_cols;
  const QdotJob *jobs;       /* [n_jobs + 1]: the last is a sentinel with chunk0 = n_chunks */
  int            n_jobs;
  int64_t        chunk_rows;
  int64_t        n_chunks;
} QdotStep;

static void
qdot_convert (QdotStep *st)
{
  int r = 0;
  for (;;) {
    const int64_t p = atomic_fetch_add_explicit (&st->next_piece, 1, memory_order_relaxed);
    if (p >= st->n_pieces)
      break;
    while (p >= st->qrows[r + 1].piece0)
      r++;
    const QuantRow *q = &st->qrows[r];
    const int64_t c0 = (p - q->piece0) * st->piece_cols;
    const int64_t nc = MIN (st->piece_cols, q->n_cols - c0);
    rs_quantize_act (q->act_type, q->src + c0, q->dst + rs_type_row_size (q->act_type, c0), nc);
    atomic_fetch_add_explicit (&st->pieces_done, 1, memory_order_release);
  }
  /* Every piece is claimed; wait for the ones other threads still hold. */
  for (int64_t spins = 0;
       atomic_load_explicit (&st->pieces_done, memory_order_acquire) < st->n_pieces; spins++) {
    cpu_relax ();
    if (spins > 4096)
      sched_yield (); /* some 100 us: the holder was likely preempted */
  }
}

static void
qdot_worker (void *data, int ith, int nth)
{
  QdotStep *st = data;

  if (st->n_pieces > 0)
    qdot_convert (st);

  int j = 0;
  for (;;) {
    const int64_t c = atomic_fetch_add_explicit (&st->next_chunk, 1, memory_order_relaxed);
    if (c >= st->n_chunks)
      break;
    while (c >= st->jobs[j + 1].chunk0)
      j++;
    const QdotJob *jb = &st->jobs[j];
    const int64_t r0 = (c - jb->chunk0) * st->chunk_rows;
    const int64_t r1 = MIN (r0 + st->chunk_rows, jb->n_rows);
    const RsVecDotFn dot = jb->dot;
    const int64_t n = jb->n_cols;

    if (jb->n_tokens == 1) {
      const uint8_t *w = jb->w + (size_t) r0 * jb->w_stride;
      for (int64_t r = r0; r < r1; r++, w += jb->w_stride)
        jb->y[r] = dot (n, w, jb->act);
    } else {
      /* A block of tokens' activations (a few KiB each) stays in L2; a
       * group of weight rows stays in L1 while each token's activations
       * pass through L1 once for the whole group. */
      for (int64_t t0 = 0; t0 < jb->n_tokens; t0 += TOKEN_BLOCK) {
        const int64_t t1 = MIN (t0 + TOKEN_BLOCK, jb->n_tokens);
        for (int64_t g0 = r0; g0 < r1; g0 += jb->row_group) {
          const int64_t g1 = MIN (g0 + jb->row_group, r1);
          for (int64_t t = t0; t < t1; t++) {
            const uint8_t *a = jb->act + (size_t) t * jb->act_stride;
            const uint8_t *w = jb->w + (size_t) g0 * jb->w_stride;
            float *y = jb->y + t * jb->y_stride;
            for (int64_t r = g0; r < g1; r++, w += jb->w_stride)
              y[r] = dot (n, w, a);
          }
        }
      }
    }
  }
}

/* Chunks the rows of jobs[0..n_jobs) and the pieces of qrows[0..n_qrows)
 * (both arrays have room for a sentinel after the last) and runs the step. */
static void
qdot_run (RsThreadPool *pool, QdotStep *st, QdotJob *jobs, int n_jobs,
          QuantRow *qrows, int n_qrows, int64_t piece_cols)
{
  const int nth = rs_thread_pool_n_threads (pool);

  int64_t total_rows = 0, work_bytes = 0;
  for (int j = 0; j < n_jobs; j++) {
    total_rows += jobs[j].n_rows;
    work_bytes += jobs[j].n_rows * (int64_t) jobs[j].w_stride * jobs[j].n_tokens;
  }
  int64_t chunk_rows = total_rows / ((int64_t) nth * CHUNKS_PER_THREAD);
  chunk_rows = MAX (ROW_GRAIN, (chunk_rows + ROW_GRAIN - 1) / ROW_GRAIN * ROW_GRAIN);

  int64_t n_chunks = 0;
  for (int j = 0; j < n_jobs; j++) {
    jobs[j].chunk0 = n_chunks;
    n_chunks += (jobs[j].n_rows + chunk_rows - 1) / chunk_rows;
  }
  jobs[n_jobs].chunk0 = n_chunks;

  int64_t n_pieces = 0;
  for (int i = 0; i < n_qrows; i++) {
    qrows[i].piece0 = n_pieces;
    n_pieces += (qrows[i].n_cols + piece_cols - 1) / piece_cols;
  }
  qrows[n_qrows].piece0 = n_pieces; /* sentinel */

  atomic_init (&st->next_piece, 0);
  atomic_init (&st->pieces_done, 0);
  atomic_init (&st->next_chunk, 0);
  st->qrows = qrows;
  st->n_qrows = n_qrows;
  st->n_pieces = n_pieces;
  st->piece_cols = piece_cols;
  st->jobs = jobs;
  st->n_jobs = n_jobs;
  st->chunk_rows = chunk_rows;
  st->n_chunks = n_chunks;

  if (n_chunks == 0 && n_pieces == 0)
    return;
  if (work_bytes < INLINE_WORK_BYTES)
    qdot_worker (st, 0, 1);
  else
    rs_thread_pool_run (pool, qdot_worker, st);
}

/* ---- gemm path ---- */

/* One parallel step: (AVX-512 kernel only) threads claim panels of x
 * and pack them, wait until all are packed (as qdot_convert does), then
 * claim tiles of W rows. */
typedef struct {
  alignas (64) atomic_int_fast64_t next_panel;
  alignas (64) atomic_int_fast64_t panels_done;
  alignas (64) atomic_int_fast64_t next_tile;
  alignas (64) const RsMatrix *w;
  const float     *x;
  int64_t          x_stride, n_tokens;
  float           *y;
  int64_t          y_stride;
  int64_t          tile_rows, n_tiles;
  int64_t          n_panels;  /* 0: cblas_sgemm on unpacked x */
  RsMatmulScratch *s;
} GemmStep;

static void
gemm_pack (GemmStep *st)
{
  const int64_t k = st->w->n_cols;
  for (;;) {
    const int64_t p = atomic_fetch_add_explicit (&st->next_panel, 1, memory_order_relaxed);
    if (p >= st->n_panels)
      break;
    const int64_t t0 = p * RS_GEMM_MR;
    rs_gemm_pack_panel_avx512 (st->x + t0 * st->x_stride, st->x_stride, MIN (RS_GEMM_MR, st->n_tokens - t0), k,
                               st->s->xpack + p * RS_GEMM_PANEL_FLOATS (k));
    atomic_fetch_add_explicit (&st->panels_done, 1, memory_order_release);
  }
}

static void
gemm_wait_packed (GemmStep *st)
{
  for (int64_t spins = 0;
       atomic_load_explicit (&st->panels_done, memory_order_acquire) < st->n_panels; spins++) {
    cpu_relax ();
    if (spins > 4096)
      sched_yield ();
  }
}

static void
gemm_worker (void *data, int ith, int nth)
{
  GemmStep *st = data;
  const RsMatrix *w = st->w;
  const int64_t n = w->n_cols;

  if (st->n_panels > 0)
    gemm_pack (st);
  /* Threads beyond what the scratch was sized for have no tile buffer. */
  if (ith >= st->s->n_threads)
    return;
  if (st->n_panels > 0)
    gemm_wait_packed (st);
  float *tile = st->s->tiles + (size_t) ith * (size_t) st->s->tile_elems;

  for (;;) {
    const int64_t t = atomic_fetch_add_explicit (&st->next_tile, 1, memory_order_relaxed);
    if (t >= st->n_tiles)
      break;
    const int64_t r0 = t * st->tile_rows;
    const int64_t nr = MIN (st->tile_rows, w->n_rows - r0);
    const uint8_t *src = (const uint8_t *) w->data + (size_t) r0 * w->row_stride;

    const float *b;
    int64_t ldb;
    if (w->type == RS_TYPE_F32) {
      b = (const float *) src;
      ldb = (int64_t) (w->row_stride / sizeof (float));
    } else {
      for (int64_t r = 0; r < nr; r++)
        rs_dequantize_row (w->type, src + (size_t) r * w->row_stride, tile + r * n, n);
      b = tile;
      ldb = n;
    }
    /* y[:, r0:r0+nr] = x[n_tokens, n] @ b[nr, n]^T */
    if (st->n_panels > 0)
      rs_gemm_nt_avx512 (st->s->xpack, st->n_tokens, n, b, ldb, nr, st->y + r0, st->y_stride);
    else
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans,
                   (blasint) st->n_tokens, (blasint) nr, (blasint) n,
                   1.0f, st->x, (blasint) st->x_stride, b, (blasint) ldb,
                   0.0f, st->y + r0, (blasint) st->y_stride);
  }
}

/* ---- dispatch ---- */

static bool
check_matrix (const RsMatmulScratch *s, const RsMatrix *w)
{
  g_return_val_if_fail (w != NULL && w->data != NULL, false);
  g_return_val_if_fail (rs_type_traits (w->type)->supported, false);
  g_return_val_if_fail (w->n_cols % rs_type_traits (w->type)->block_size == 0, false);
  g_return_val_if_fail (w->row_stride >= rs_type_row_size (w->type, w->n_cols), false);
  g_return_val_if_fail (s == NULL || w->n_cols <= s->max_cols, false);
  return true;
}

void
rs_matmul (RsThreadPool *pool, RsMatmulScratch *s, const RsMatrix *w,
           const float *x, int64_t x_stride, int64_t n_tokens,
           float *y, int64_t y_stride)
{
  g_return_if_fail (s != NULL);
  if (!check_matrix (s, w) || n_tokens <= 0 || w->n_rows <= 0)
    return;

  if (n_tokens <= MIN (s->qdot_max[w->type], s->act_rows)) {
    const RsType at = rs_act_type (w->type);
    QdotJob jobs[2];
    QuantRow *qrows = s->qrows;
    int n_qrows = 0;

    jobs[0] = (QdotJob) {
      .w = w->data, .w_stride = w->row_stride,
      .n_rows = w->n_rows, .n_cols = w->n_cols,
      .dot = rs_vec_dot_fn (w->type),
      .y = y, .y_stride = y_stride, .n_tokens = n_tokens,
      .row_group = CLAMP ((int64_t) (L1_WEIGHT_BYTES / w->row_stride), 1, 8),
    };
    if (at == RS_TYPE_F32) {
      /* F32 activations are used in place. */
      jobs[0].act = (const uint8_t *) x;
      jobs[0].act_stride = (size_t) x_stride * sizeof (float);
    } else {
      jobs[0].act = s->act;
      jobs[0].act_stride = s->act_row_bytes;
      for (int64_t t = 0; t < n_tokens; t++)
        qrows[n_qrows++] = (QuantRow) {
          .src = x + t * x_stride, .dst = s->act + (size_t) t * s->act_row_bytes,
          .act_type = at, .n_cols = w->n_cols,
        };
    }
    QdotStep st;
    qdot_run (pool, &st, jobs, 1, qrows, n_qrows, QUANT_PIECE_COLS);
    return;
  }

  GemmStep st;
  atomic_init (&st.next_panel, 0);
  atomic_init (&st.panels_done, 0);
  atomic_init (&st.next_tile, 0);
  st.w = w;
  st.x = x;
  st.x_stride = x_stride;
  st.n_tokens = n_tokens;
  st.y = y;
  st.y_stride = y_stride;
  st.s = s;
  /* The packed panels are sized for max_tokens; beyond, cblas_sgemm. */
  st.n_panels = s->gemm_avx512 && n_tokens <= s->max_tokens ? (n_tokens + RS_GEMM_MR - 1) / RS_GEMM_MR : 0;
  /* Tiles of whole micro-tiles (RS_GEMM_NR rows) for our kernel. */
  const int64_t grain = st.n_panels > 0 ? RS_GEMM_NR : ROW_GRAIN;
  int64_t tr = s->tile_elems / w->n_cols;
  tr = CLAMP (tr / grain * grain, grain, TILE_MAX_ROWS / grain * grain);
  /* Enough tiles to keep every thread busy on small matrices. */
  const int nth = MIN (rs_thread_pool_n_threads (pool), s->n_threads);
  while (tr > grain && (w->n_rows + tr - 1) / tr < 2 * nth)
    tr = MAX (grain, tr / 2 / grain * grain);
  st.tile_rows = tr;
  st.n_tiles = (w->n_rows + tr - 1) / tr;
  if (nth <= 1)
    gemm_worker (&st, 0, 1);
  else
    rs_thread_pool_run (pool, gemm_worker, &st);
}

void
rs_matvec_multi (RsThreadPool *pool, RsMatmulScratch *s, const RsMatvecJob *jobs, int n_jobs)
{
  g_return_if_fail (s != NULL);
  g_return_if_fail (n_jobs >= 0 && n_jobs <= MAX_JOBS);

  QdotJob qjobs[MAX_JOBS + 1];
  QuantRow *qrows = s->qrows;
  int n_q = 0, n_qrows = 0;

  for (int j = 0; j < n_jobs; j++) {
    const RsMatrix *w = jobs[j].w;
    if (!check_matrix (s, w))
      return;
    if (w->n_rows <= 0)
      continue;
    const RsType at = rs_act_type (w->type);
    QdotJob *q = &qjobs[n_q++];
    *q = (QdotJob) {
      .w = w->data, .w_stride = w->row_stride,
      .n_rows = w->n_rows, .n_cols = w->n_cols,
      .dot = rs_vec_dot_fn (w->type),
      .y = jobs[j].y, .y_stride = 0, .n_tokens = 1, .row_group = 1,
    };
    if (at == RS_TYPE_F32) {
      q->act = (const uint8_t *) jobs[j].x;
      continue;
    }
    /* Share the conversion of an x already converted to this format. */
    int i;
    for (i = 0; i < n_qrows; i++)
      if (qrows[i].src == jobs[j].x && qrows[i].act_type == at && qrows[i].n_cols == w->n_cols)
        break;
    if (i == n_qrows)
      qrows[n_qrows++] = (QuantRow) {
        .src = jobs[j].x, .dst = s->act + (size_t) i * s->act_row_bytes,
        .act_type = at, .n_cols = w->n_cols,
      };
    q->act = qrows[i].dst;
  }

  QdotStep st;
  qdot_run (pool, &st, qjobs, n_q, qrows, n_qrows, QUANT_PIECE_COLS);
}

void
rs_matmul_ref (const RsMatrix *w, const float *x, int64_t x_stride, int64_t n_tokens,
               float *y, int64_t y_stride)
{
  if (!check_matrix (NULL, w))
    return;
  float *row = g_new (float, MAX (w->n_cols, 1));
  for (int64_t r = 0; r < w->n_rows; r++) {
    rs_dequantize_row (w->type, (const uint8_t *) w->data + (size_t) r * w->row_stride, row, w->n_cols);
    for (int64_t t = 0; t < n_tokens; t++) {
      const float *xt = x + t * x_stride;
      double acc = 0.0;
      for (int64_t c = 0; c < w->n_cols; c++)
        acc += (double) row[c] * (double) xt[c];
      y[t * y_stride + r] = (float) acc;
    }
  }
  g_free (row);
}
