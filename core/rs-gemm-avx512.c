/* rs-gemm-avx512.c: f32 GEMM micro-kernel for rs_matmul's prefill path
 * (see rs-gemm-private.h for the layout). Built with -mavx512f.
 *
 * Why not OpenBLAS: its sgemm runs whatever kernel OPENBLAS_CORETYPE or
 * its CPU detection picks (AVX2 ones on many AMD parts, or when the
 * environment pins "Haswell"), which halves the f32 throughput of a CPU
 * with full-width AVX-512. This kernel is a plain register-blocked loop:
 * per column kk it does 2 vector loads of packed activations, 12
 * broadcast loads of weights and 24 FMAs, so it is FMA-bound with two
 * 512-bit FMA pipes as long as its operands come from L1/L2, which the
 * k-blocking below ensures.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "rs-gemm-private.h"

#include <immintrin.h>
#include <stdbool.h>
#include <string.h>

/* Columns per k-block: a panel block (32 x KC floats, 128 KiB) and the
 * weight rows it meets stay in L2 between micro-tiles. */
#define KC 1024

void
rs_gemm_pack_panel_avx512 (const float *a, int64_t lda, int64_t rows, int64_t k, float *ap)
{
  const int64_t width = RS_GEMM_PANEL_WIDTH (rows);
  /* 16 x 16 blocks: read 16 columns of each row as one vector, write
   * them transposed. The tokens past @rows stay zero, so the kernel can
   * always compute whole panels. */
  int64_t kk = 0;
  for (; kk + 16 <= k; kk += 16) {
    float *dst = ap + kk * width;
    for (int64_t i = 0; i < width; i++) {
      float v[16];
      if (i < rows)
        _mm512_storeu_ps (v, _mm512_loadu_ps (a + i * lda + kk));
      else
        memset (v, 0, sizeof v);
      for (int t = 0; t < 16; t++)
        dst[t * width + i] = v[t];
    }
  }
  for (; kk < k; kk++)
    for (int64_t i = 0; i < width; i++)
      ap[kk * width + i] = i < rows ? a[i * lda + kk] : 0.0f;
}

/* acc[j] (two vectors: tokens 0-15, 16-31) += sum over kk < kc of
 * b_j[kk] * ap[kk][0..31], for the 12 weight rows b_j. */
#define ROWS(X) X (0) X (1) X (2) X (3) X (4) X (5) X (6) X (7) X (8) X (9) X (10) X (11)

static void
micro_12x32 (const float *restrict ap, const float *const b[RS_GEMM_NR], int64_t kc,
             float out[RS_GEMM_NR][RS_GEMM_MR])
{
#define DECL(j) __m512 c##j##a = _mm512_setzero_ps (), c##j##b = _mm512_setzero_ps (); \
                const float *restrict b##j = b[j];
  ROWS (DECL)
#undef DECL
  for (int64_t kk = 0; kk < kc; kk++) {
    const __m512 x0 = _mm512_load_ps (ap + kk * RS_GEMM_MR);
    const __m512 x1 = _mm512_load_ps (ap + kk * RS_GEMM_MR + 16);
#define FMA(j) { const __m512 w = _mm512_set1_ps (b##j[kk]); \
                 c##j##a = _mm512_fmadd_ps (w, x0, c##j##a); \
                 c##j##b = _mm512_fmadd_ps (w, x1, c##j##b); }
    ROWS (FMA)
#undef FMA
  }
#define STORE(j) _mm512_storeu_ps (out[j], c##j##a); _mm512_storeu_ps (out[j] + 16, c##j##b);
  ROWS (STORE)
#undef STORE
}

/* The same for a half panel of 16 tokens (a batch of <= 16 tokens, or
 * the tail of a larger one): half the work per column instead of a
 * zero-padded full panel. 12 accumulators still cover the FMA latency. */
static void
micro_12x16 (const float *restrict ap, const float *const b[RS_GEMM_NR], int64_t kc,
             float out[RS_GEMM_NR][RS_GEMM_MR])
{
#define DECL(j) __m512 c##j = _mm512_setzero_ps (); const float *restrict b##j = b[j];
  ROWS (DECL)
#undef DECL
  for (int64_t kk = 0; kk < kc; kk++) {
    const __m512 x0 = _mm512_load_ps (ap + kk * 16);
#define FMA(j) c##j = _mm512_fmadd_ps (_mm512_set1_ps (b##j[kk]), x0, c##j);
    ROWS (FMA)
#undef FMA
  }
#define STORE(j) _mm512_storeu_ps (out[j], c##j);
  ROWS (STORE)
#undef STORE
}

void
rs_gemm_nt_avx512 (const float *ap, int64_t m, int64_t k,
                   const float *b, int64_t ldb, int64_t n,
                   float *c, int64_t ldc)
{
  const int64_t n_panels = (m + RS_GEMM_MR - 1) / RS_GEMM_MR;
  float out[RS_GEMM_NR][RS_GEMM_MR];

  for (int64_t k0 = 0; k0 < k; k0 += KC) {
    const int64_t kc = k - k0 < KC ? k - k0 : KC;
    const bool first = k0 == 0;
    for (int64_t p = 0; p < n_panels; p++) {
      const int64_t i0 = p * RS_GEMM_MR;
      const int64_t mi = m - i0 < RS_GEMM_MR ? m - i0 : RS_GEMM_MR;
      const int64_t width = RS_GEMM_PANEL_WIDTH (mi);
      const float *panel = ap + p * RS_GEMM_PANEL_FLOATS (k) + k0 * width;
      for (int64_t j0 = 0; j0 < n; j0 += RS_GEMM_NR) {
        const int64_t nj = n - j0 < RS_GEMM_NR ? n - j0 : RS_GEMM_NR;
        /* Rows past n repeat the last one: computed, never stored. */
        const float *rows[RS_GEMM_NR];
        for (int j = 0; j < RS_GEMM_NR; j++)
          rows[j] = b + (j0 + (j < nj ? j : nj - 1)) * ldb + k0;
        if (width == 16)
          micro_12x16 (panel, rows, kc, out);
        else
          micro_12x32 (panel, rows, kc, out);

        float *cp = c + i0 * ldc + j0;
        for (int64_t i = 0; i < mi; i++, cp += ldc)
          for (int64_t j = 0; j < nj; j++)
            cp[j] = first ? out[j][i] : cp[j] + out[j][i];
      }
    }
  }
}
