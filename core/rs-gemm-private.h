/* rs-gemm-private.h: the f32 GEMM of rs_matmul's prefill path on CPUs
 * with AVX-512 (rs-gemm-avx512.c, compiled with its own -m flags and
 * called only when rs_cpu_features says so). Not part of the library API.
 *
 * It computes C[m, n] = A[m, k] B[n, k]^T, A being activations and B
 * weight rows, both k-contiguous (the "NT" layout of y = x W^T). Rather
 * than packing the weights (which would cost a pass over every weight
 * tile), it packs the activations, once per product, into panels of
 * RS_GEMM_MR tokens stored k-major:
 *   ap[p][kk][i] = A[p * MR + i][kk], zero for tokens past m,
 * so the micro-kernel loads the MR tokens of one column with two vector
 * loads and multiplies them by broadcast weights of RS_GEMM_NR rows,
 * keeping a NR x MR block of C in 24 registers. Any k works (no k tail).
 * A panel with at most 16 tokens (the whole of a small batch, or the
 * tail of a larger one) is packed 16 wide instead, ap[p][kk][i < 16],
 * and multiplied with a half-width kernel rather than padded.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <stdint.h>

#define RS_GEMM_MR 32 /* tokens per panel: two zmm of f32 */
#define RS_GEMM_NR 12 /* weight rows per micro-tile */

/* Floats reserved for one packed panel of @k columns (panel p starts
 * at p * RS_GEMM_PANEL_FLOATS (k)). */
#define RS_GEMM_PANEL_FLOATS(k) ((int64_t) (k) * RS_GEMM_MR)

/* Width of a panel holding @rows tokens: 16 or RS_GEMM_MR. */
#define RS_GEMM_PANEL_WIDTH(rows) ((rows) <= 16 ? 16 : RS_GEMM_MR)

/* Packs @rows <= RS_GEMM_MR rows of A (@lda floats apart, @k long) into
 * one panel at @ap (64-byte aligned, RS_GEMM_PANEL_FLOATS (k) floats). */
void rs_gemm_pack_panel_avx512 (const float *a, int64_t lda, int64_t rows, int64_t k, float *ap);

/* C[m, n] = A[m, k] B[n, k]^T with A packed in ceil (m / MR) panels at
 * @ap; B rows @ldb floats apart; C rows @ldc floats apart, overwritten. */
void rs_gemm_nt_avx512 (const float *ap, int64_t m, int64_t k,
                        const float *b, int64_t ldb, int64_t n,
                        float *c, int64_t ldc);
