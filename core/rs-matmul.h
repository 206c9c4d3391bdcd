/* rs-matmul.h: y = W x for quantised weight matrices, the one operation
 * that dominates inference time.
 *
 * Two regimes, chosen by the number of activation rows:
 *  - few rows (decode): activations are converted once to the weight
 *    type's activation format, then the rows of W are split across the
 *    threads and each row is a fused dequantise-and-dot (no copy of W);
 *  - many rows (prefill, experts with many routed tokens): tiles of W are
 *    dequantised to f32 into per-thread scratch and multiplied with
 *    OpenBLAS sgemm.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "rs-threadpool.h"
#include "rs-types.h"

/* A 2-D weight matrix view: @n_rows rows of @n_cols elements of @type,
 * @row_stride bytes apart (an expert's slice of a 3-D tensor is one). */
typedef struct {
  RsType      type;
  int64_t     n_cols;     /* input features (ggml ne[0]) */
  int64_t     n_rows;     /* output features (ggml ne[1]) */
  size_t      row_stride; /* bytes */
  const void *data;
} RsMatrix;

typedef struct _RsMatmulScratch RsMatmulScratch;

/* Scratch for a pool of @n_threads computing with matrices of at most
 * @max_cols columns and @max_tokens activation rows; allocated once, so
 * that no allocation happens per call. */
RsMatmulScratch *rs_matmul_scratch_new  (int n_threads, int64_t max_cols, int64_t max_tokens);
void             rs_matmul_scratch_free (RsMatmulScratch *s);

/* y[t, r] = sum_c W[r, c] * x[t, c] for t < n_tokens.
 * x: [n_tokens, w->n_cols] f32, rows x_stride floats apart;
 * y: [n_tokens, w->n_rows] f32, rows y_stride floats apart. */
void rs_matmul (RsThreadPool *pool, RsMatmulScratch *s, const RsMatrix *w,
                const float *x, int64_t x_stride, int64_t n_tokens,
                float *y, int64_t y_stride);

/* One single-token product y = W x. */
typedef struct {
  const RsMatrix *w;
  const float    *x; /* [w->n_cols] */
  float          *y; /* [w->n_rows] */
} RsMatvecJob;

/* Runs independent single-token products in ONE parallel step (q, k and v
 * of a token; the gate and up projections of all its selected experts),
 * so that decode pays one thread synchronisation per stage, not per
 * matrix. Jobs whose x pointers are equal share one activation
 * conversion. At most 64 jobs. */
void rs_matvec_multi (RsThreadPool *pool, RsMatmulScratch *s, const RsMatvecJob *jobs, int n_jobs);

/* Plain single-threaded reference of the same (dequantise row, dot in f32). */
void rs_matmul_ref (const RsMatrix *w, const float *x, int64_t x_stride, int64_t n_tokens,
                    float *y, int64_t y_stride);
