/* rs-quant-avx2.c: AVX2/FMA/F16C dot kernels (compiled with -mavx2 -mfma
 * -mf16c; only called after rs_cpu_features said so).
 *
 * Technique, shared by all integer kernels:
 *   - weights are expanded to one byte per element in a 32-byte register
 *     whose element order matches the activation bytes;
 *   - vpmaddubsw multiplies unsigned by signed bytes and adds neighbour
 *     pairs into int16 (no overflow for |w| <= 63 or for the sign trick
 *     below), vpmaddwd then multiplies int16 pairs by the block/sub-block
 *     scale (or by 1) into int32;
 *   - signed weights use the sign trick: |w| * (y * sign(w)) == w * y, so
 *     the unsigned operand of vpmaddubsw is |w| <= 128;
 *   - each block's int32 sums are converted once and fused-multiply-added
 *     with the product of the fp16/fp32 scales.
 * The integer parts are exact, so these agree with the scalar kernels up
 * to float summation order.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "rs-quant-block.h"
#include "rs-quant-private.h"

/* ---- helpers ---- */

/* Fixed-trip inner loops are unrolled so shift counts and shuffle
 * controls become constants (-O2 would keep them as loops). */
#define RS_UNROLL _Pragma ("GCC unroll 8")

static inline float
hsum_ps (__m256 v)
{
  __m128 s = _mm_add_ps (_mm256_castps256_ps128 (v), _mm256_extractf128_ps (v, 1));
  s = _mm_add_ps (s, _mm_movehl_ps (s, s));
  s = _mm_add_ss (s, _mm_movehdup_ps (s));
  return _mm_cvtss_f32 (s);
}

static inline float
hsum_ps128 (__m128 s)
{
  s = _mm_add_ps (s, _mm_movehl_ps (s, s));
  s = _mm_add_ss (s, _mm_movehdup_ps (s));
  return _mm_cvtss_f32 (s);
}

static inline int
hsum_epi32 (__m256i v)
{
  __m128i s = _mm_add_epi32 (_mm256_castsi256_si128 (v), _mm256_extracti128_si256 (v, 1));
  s = _mm_add_epi32 (s, _mm_unpackhi_epi64 (s, s));
  s = _mm_add_epi32 (s, _mm_shuffle_epi32 (s, 1));
  return _mm_cvtsi128_si32 (s);
}

static inline float
fp16 (uint16_t h)
{
  return _cvtsh_ss (h);
}

/* 16 packed bytes in nibble layout -> 32 bytes 0..15: low nibbles in the
 * low lane (elements 0..15), high nibbles in the high lane (16..31). */
static inline __m256i
unpack_nibbles_32 (const uint8_t *qs)
{
  const __m128i q = _mm_loadu_si128 ((const __m128i *) qs);
  const __m256i both = _mm256_inserti128_si256 (_mm256_castsi128_si256 (q), _mm_srli_epi16 (q, 4), 1);
  return _mm256_and_si256 (both, _mm256_set1_epi8 (0x0F));
}

/* Bit e of a 32-bit mask -> byte e = 0xFF or 0. */
static inline __m256i
bits_to_bytes_32 (uint32_t bits)
{
  /* byte e takes source byte e/8, then tests its bit e%8 */
  const __m256i pick = _mm256_setr_epi8 (0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                         2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i bit = _mm256_set1_epi64x ((long long) 0x8040201008040201ULL);
  const __m256i v = _mm256_shuffle_epi8 (_mm256_set1_epi32 ((int) bits), pick);
  return _mm256_cmpeq_epi8 (_mm256_and_si256 (v, bit), bit);
}

/* Signed bytes x . signed bytes y -> 8 int32 partial sums. |x| <= 128 and
 * y != -128 keep vpmaddubsw from saturating. */
static inline __m256i
dot_i8_32 (__m256i x, __m256i y)
{
  const __m256i p16 = _mm256_maddubs_epi16 (_mm256_sign_epi8 (x, x), _mm256_sign_epi8 (y, x));
  return _mm256_madd_epi16 (p16, _mm256_set1_epi16 (1));
}

/* Unsigned bytes u (<= 127 per pair sum) . signed bytes y -> 8 int32. */
static inline __m256i
dot_u8_32 (__m256i u, __m256i y)
{
  return _mm256_madd_epi16 (_mm256_maddubs_epi16 (u, y), _mm256_set1_epi16 (1));
}

static inline __m256i
loadu256 (const void *p)
{
  return _mm256_loadu_si256 ((const __m256i *) p);
}

/* ---- float weights ---- */

float
rs_vec_dot_f32_avx2 (int64_t n, const void *w, const void *act)
{
  const float *x = w, *y = act;
  __m256 a0 = _mm256_setzero_ps (), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm256_fmadd_ps (_mm256_loadu_ps (x + i),      _mm256_loadu_ps (y + i),      a0);
    a1 = _mm256_fmadd_ps (_mm256_loadu_ps (x + i + 8),  _mm256_loadu_ps (y + i + 8),  a1);
    a2 = _mm256_fmadd_ps (_mm256_loadu_ps (x + i + 16), _mm256_loadu_ps (y + i + 16), a2);
    a3 = _mm256_fmadd_ps (_mm256_loadu_ps (x + i + 24), _mm256_loadu_ps (y + i + 24), a3);
  }
  for (; i + 8 <= n; i += 8)
    a0 = _mm256_fmadd_ps (_mm256_loadu_ps (x + i), _mm256_loadu_ps (y + i), a0);
  float sum = hsum_ps (_mm256_add_ps (_mm256_add_ps (a0, a1), _mm256_add_ps (a2, a3)));
  for (; i < n; i++)
    sum += x[i] * y[i];
  return sum;
}

static inline __m256
load_f16x8 (const uint16_t *p)
{
  return _mm256_cvtph_ps (_mm_loadu_si128 ((const __m128i *) p));
}

float
rs_vec_dot_f16_avx2 (int64_t n, const void *w, const void *act)
{
  const uint16_t *x = w;
  const float *y = act;
  __m256 a0 = _mm256_setzero_ps (), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm256_fmadd_ps (load_f16x8 (x + i),      _mm256_loadu_ps (y + i),      a0);
    a1 = _mm256_fmadd_ps (load_f16x8 (x + i + 8),  _mm256_loadu_ps (y + i + 8),  a1);
    a2 = _mm256_fmadd_ps (load_f16x8 (x + i + 16), _mm256_loadu_ps (y + i + 16), a2);
    a3 = _mm256_fmadd_ps (load_f16x8 (x + i + 24), _mm256_loadu_ps (y + i + 24), a3);
  }
  for (; i + 8 <= n; i += 8)
    a0 = _mm256_fmadd_ps (load_f16x8 (x + i), _mm256_loadu_ps (y + i), a0);
  float sum = hsum_ps (_mm256_add_ps (_mm256_add_ps (a0, a1), _mm256_add_ps (a2, a3)));
  for (; i < n; i++)
    sum += fp16 (x[i]) * y[i];
  return sum;
}

/* bf16 is the top half of an fp32: widen to 32 bits and shift up. */
static inline __m256
load_bf16x8 (const uint16_t *p)
{
  const __m256i v = _mm256_cvtepu16_epi32 (_mm_loadu_si128 ((const __m128i *) p));
  return _mm256_castsi256_ps (_mm256_slli_epi32 (v, 16));
}

float
rs_vec_dot_bf16_avx2 (int64_t n, const void *w, const void *act)
{
  const uint16_t *x = w;
  const float *y = act;
  __m256 a0 = _mm256_setzero_ps (), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm256_fmadd_ps (load_bf16x8 (x + i),      _mm256_loadu_ps (y + i),      a0);
    a1 = _mm256_fmadd_ps (load_bf16x8 (x + i + 8),  _mm256_loadu_ps (y + i + 8),  a1);
    a2 = _mm256_fmadd_ps (load_bf16x8 (x + i + 16), _mm256_loadu_ps (y + i + 16), a2);
    a3 = _mm256_fmadd_ps (load_bf16x8 (x + i + 24), _mm256_loadu_ps (y + i + 24), a3);
  }
  for (; i + 8 <= n; i += 8)
    a0 = _mm256_fmadd_ps (load_bf16x8 (x + i), _mm256_loadu_ps (y + i), a0);
  float sum = hsum_ps (_mm256_add_ps (_mm256_add_ps (a0, a1), _mm256_add_ps (a2, a3)));
  for (; i < n; i++)
    sum += rs_bf16_to_fp32 (x[i]) * y[i];
  return sum;
}

/* ---- 32-element blocks against Q8_0 / Q8_1 ----
 * Two blocks per iteration into two accumulators so consecutive FMAs do
 * not wait on each other. */

#define TWO_BLOCK_LOOP(nb, ...)                                            \
  __m256 acc0 = _mm256_setzero_ps (), acc1 = _mm256_setzero_ps ();         \
  int64_t i = 0;                                                           \
  for (; i + 1 < (nb); i += 2) {                                           \
    { const int64_t ib = i;     __m256 *acc = &acc0; __VA_ARGS__ }         \
    { const int64_t ib = i + 1; __m256 *acc = &acc1; __VA_ARGS__ }         \
  }                                                                        \
  for (; i < (nb); i++) {                                                  \
    const int64_t ib = i; __m256 *acc = &acc0; __VA_ARGS__                 \
  }                                                                        \
  return hsum_ps (_mm256_add_ps (acc0, acc1));

float
rs_vec_dot_q8_0_avx2 (int64_t n, const void *w, const void *act)
{
  const RsBlockQ8_0 *x = w;
  const RsBlockQ8_0 *y = act;
  TWO_BLOCK_LOOP (n / 32, {
    const __m256i s = dot_i8_32 (loadu256 (x[ib].qs), loadu256 (y[ib].qs));
    const __m256 d = _mm256_set1_ps (fp16 (x[ib].d) * fp16 (y[ib].d));
    *acc = _mm256_fmadd_ps (d, _mm256_cvtepi32_ps (s), *acc);
  })
}

float
rs_vec_dot_q4_0_avx2 (int64_t n, const void *w, const void *act)
{
  const RsBlockQ4_0 *x = w;
  const RsBlockQ8_0 *y = act;
  const __m256i eight = _mm256_set1_epi8 (8);
  TWO_BLOCK_LOOP (n / 32, {
    const __m256i q = _mm256_sub_epi8 (unpack_nibbles_32 (x[ib].qs), eight);
    const __m256i s = dot_i8_32 (q, loadu256 (y[ib].qs));
    const __m256 d = _mm256_set1_ps (fp16 (x[ib].d) * fp16 (y[ib].d));
    *acc = _mm256_fmadd_ps (d, _mm256_cvtepi32_ps (s), *acc);
  })
}

float
rs_vec_dot_q4_1_avx2 (int64_t n, const void *w, const void *act)
{
  const RsBlockQ4_1 *x = w;
  const RsBlockQ8_1 *y = act;
  float msum = 0.0f;   /* sum of m * (dy * sum(qy)) over blocks */
  const int64_t nb = n / 32;
  __m256 acc = _mm256_setzero_ps ();
  for (int64_t ib = 0; ib < nb; ib++) {
    const __m256i s = dot_u8_32 (unpack_nibbles_32 (x[ib].qs), loadu256 (y[ib].qs));
    const __m256 d = _mm256_set1_ps (fp16 (x[ib].d) * fp16 (y[ib].d));
    acc = _mm256_fmadd_ps (d, _mm256_cvtepi32_ps (s), acc);
    msum += fp16 (x[ib].m) * fp16 (y[ib].s);
  }
  return hsum_ps (acc) + msum;
}

float
rs_vec_dot_q5_0_avx2 (int64_t n, const void *w, const void *act)
{
  const RsBlockQ5_0 *x = w;
  const RsBlockQ8_0 *y = act;
  const __m256i b4 = _mm256_set1_epi8 (0x10), sixteen = _mm256_set1_epi8 (16);
  TWO_BLOCK_LOOP (n / 32, {
    uint32_t qh;
    memcpy (&qh, x[ib].qh, 4);
    const __m256i hi = _mm256_and_si256 (bits_to_bytes_32 (qh), b4);
    const __m256i q = _mm256_sub_epi8 (_mm256_or_si256 (unpack_nibbles_32 (x[ib].qs), hi), sixteen);
    const __m256i s = dot_i8_32 (q, loadu256 (y[ib].qs));
    const __m256 d = _mm256_set1_ps (fp16 (x[ib].d) * fp16 (y[ib].d));
    *acc = _mm256_fmadd_ps (d, _mm256_cvtepi32_ps (s), *acc);
  })
}

float
rs_vec_dot_q5_1_avx2 (int64_t n, const void *w, const void *act)
{
  const RsBlockQ5_1 *x = w;
  const RsBlockQ8_1 *y = act;
  const __m256i b4 = _mm256_set1_epi8 (0x10);
  float msum = 0.0f;
  const int64_t nb = n / 32;
  __m256 acc = _mm256_setzero_ps ();
  for (int64_t ib = 0; ib < nb; ib++) {
    uint32_t qh;
    memcpy (&qh, x[ib].qh, 4);
    const __m256i hi = _mm256_and_si256 (bits_to_bytes_32 (qh), b4);
    const __m256i q = _mm256_or_si256 (unpack_nibbles_32 (x[ib].qs), hi);
    const __m256i s = dot_u8_32 (q, loadu256 (y[ib].qs));
    const __m256 d = _mm256_set1_ps (fp16 (x[ib].d) * fp16 (y[ib].d));
    acc = _mm256_fmadd_ps (d, _mm256_cvtepi32_ps (s), acc);
    msum += fp16 (x[ib].m) * fp16 (y[ib].s);
  }
  return hsum_ps (acc) + msum;
}

static inline __m256i
table16 (const int8_t *t)
{
  return _mm256_broadcastsi128_si256 (_mm_loadu_si128 ((const __m128i *) t));
}

float
rs_vec_dot_iq4_nl_avx2 (int64_t n, const void *w, const void *act)
{
  const RsBlockIQ4NL *x = w;
  const RsBlockQ8_0 *y = act;
  const __m256i tab = table16 (rs_kvalues_iq4nl);
  TWO_BLOCK_LOOP (n / 32, {
    const __m256i q = _mm256_shuffle_epi8 (tab, unpack_nibbles_32 (x[ib].qs));
    const __m256i s = dot_i8_32 (q, loadu256 (y[ib].qs));
    const __m256 d = _mm256_set1_ps (fp16 (x[ib].d) * fp16 (y[ib].d));
    *acc = _mm256_fmadd_ps (d, _mm256_cvtepi32_ps (s), *acc);
  })
}

float
rs_vec_dot_mxfp4_avx2 (int64_t n, const void *w, const void *act)
{
  const RsBlockMXFP4 *x = w;
  const RsBlockQ8_0 *y = act;
  const __m256i tab = table16 (rs_kvalues_mxfp4);
  TWO_BLOCK_LOOP (n / 32, {
    const __m256i q = _mm256_shuffle_epi8 (tab, unpack_nibbles_32 (x[ib].qs));
    const __m256i s = dot_i8_32 (q, loadu256 (y[ib].qs));
    const __m256 d = _mm256_set1_ps (rs_e8m0_to_fp32_half (x[ib].e) * fp16 (y[ib].d));
    *acc = _mm256_fmadd_ps (d, _mm256_cvtepi32_ps (s), *acc);
  })
}

/* ---- K-quants against Q8_K ---- */

/* Scales of 16-element sub-blocks as int16 (16 of them in a register, as
 * sc16). For the 32 elements 128*c + 32*s .. + 31 (sub-blocks 8c+2s and
 * 8c+2s+1) returns [sc[8c+2s] x8 | sc[8c+2s+1] x8], matching the int16
 * pair sums vpmaddubsw leaves in the low and high lane. */
static inline __m256i
scales16_pair (__m256i sc16_half, int s)
{
  /* sc16_half: the 8 scales of half c, duplicated in both lanes */
  const __m256i base = _mm256_setr_epi8 (0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,
                                         2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3);
  return _mm256_shuffle_epi8 (sc16_half, _mm256_add_epi8 (base, _mm256_set1_epi8 ((char) (4 * s))));
}

/* 8 int16 scales (one per 32 elements) duplicated in both lanes ->
 * broadcast of scale k. */
static inline __m256i
scale32_bcast (__m256i sc8, int k)
{
  const __m256i base = _mm256_setr_epi8 (0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,
                                         0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1);
  return _mm256_shuffle_epi8 (sc8, _mm256_add_epi8 (base, _mm256_set1_epi8 ((char) (2 * k))));
}

float
rs_vec_dot_q2_k_avx2 (int64_t n, const void *w, const void *act)
{
  const RsBlockQ2K *x = w;
  const RsBlockQ8K *y = act;
  const __m256i m3 = _mm256_set1_epi8 (3);
  const __m128i m4 = _mm_set1_epi8 (0xF);
  __m256 acc = _mm256_setzero_ps ();
  float macc = 0.0f;
  for (int64_t i = 0; i < n / 256; i++) {
    const __m128i sc = _mm_loadu_si128 ((const __m128i *) x[i].scales);
    const __m256i sc16 = _mm256_cvtepu8_epi16 (_mm_and_si128 (sc, m4));
    const __m256i mn16 = _mm256_cvtepu8_epi16 (_mm_and_si128 (_mm_srli_epi16 (sc, 4), m4));
    const __m256i bsums = loadu256 (y[i].bsums);
    /* sum_j min_j * bsum_j, the offset term of every sub-block */
    const int msum = hsum_epi32 (_mm256_madd_epi16 (mn16, bsums));

    __m256i sumi = _mm256_setzero_si256 ();
    RS_UNROLL
    for (int c = 0; c < 2; c++) {
      const __m256i q2 = loadu256 (x[i].qs + 32 * c);
      const __m256i sch = c == 0 ? _mm256_permute2x128_si256 (sc16, sc16, 0x00)
                                 : _mm256_permute2x128_si256 (sc16, sc16, 0x11);
      const int8_t *q8 = y[i].qs + 128 * c;
      RS_UNROLL
      for (int s = 0; s < 4; s++) {
        const __m256i v = _mm256_and_si256 (_mm256_srli_epi16 (q2, 2 * s), m3);
        const __m256i p = _mm256_maddubs_epi16 (v, loadu256 (q8 + 32 * s));
        sumi = _mm256_add_epi32 (sumi, _mm256_madd_epi16 (p, scales16_pair (sch, s)));
      }
    }
    const float dy = y[i].d;
    const float d = dy * fp16 (x[i].d), dmin = dy * fp16 (x[i].dmin);
    acc = _mm256_fmadd_ps (_mm256_set1_ps (d), _mm256_cvtepi32_ps (sumi), acc);
    macc += dmin * (float) msum;
  }
  return hsum_ps (acc) - macc;
}

/* Q3_K 12-byte scale field -> 16 signed scales (already minus 32). */
static inline __m128i
q3k_scales (const uint8_t *p)
{
  uint32_t a[3];
  memcpy (a, p, 12);
  const uint32_t lo = 0x0f0f0f0fu, hi = 0x03030303u;
  const uint32_t s0 = (a[0] & lo)        | ((a[2] & hi) << 4);
  const uint32_t s1 = (a[1] & lo)        | (((a[2] >> 2) & hi) << 4);
  const uint32_t s2 = ((a[0] >> 4) & lo) | (((a[2] >> 4) & hi) << 4);
  const uint32_t s3 = ((a[1] >> 4) & lo) | (((a[2] >> 6) & hi) << 4);
  return _mm_sub_epi8 (_mm_setr_epi32 ((int) s0, (int) s1, (int) s2, (int) s3), _mm_set1_epi8 (32));
}

float
rs_vec_dot_q3_k_avx2 (int64_t n, const void *w, const void *act)
{
  const RsBlockQ3K *x = w;
  const RsBlockQ8K *y = act;
  const __m256i m3 = _mm256_set1_epi8 (3), four = _mm256_set1_epi8 (4);
  __m256 acc = _mm256_setzero_ps ();
  for (int64_t i = 0; i < n / 256; i++) {
    const __m256i sc16 = _mm256_cvtepi8_epi16 (q3k_scales (x[i].scales));
    /* q = v - 4 with v = low2 | (hbit << 2) in 0..7, so
     * sum sc*q*y = sum sc*v*y - 4 * sum_j sc_j * bsum_j */
    const __m256i corr = _mm256_slli_epi32 (_mm256_madd_epi16 (sc16, loadu256 (y[i].bsums)), 2);
    const __m256i hm = loadu256 (x[i].hmask);

    __m256i sumi = _mm256_setzero_si256 ();
    RS_UNROLL
    for (int c = 0; c < 2; c++) {
      const __m256i q3 = loadu256 (x[i].qs + 32 * c);
      const __m256i sch = c == 0 ? _mm256_permute2x128_si256 (sc16, sc16, 0x00)
                                 : _mm256_permute2x128_si256 (sc16, sc16, 0x11);
      const int8_t *q8 = y[i].qs + 128 * c;
      RS_UNROLL
      for (int s = 0; s < 4; s++) {
        const __m256i bit = _mm256_set1_epi8 ((char) (1 << (4 * c + s)));
        const __m256i h = _mm256_and_si256 (_mm256_cmpeq_epi8 (_mm256_and_si256 (hm, bit), bit), four);
        const __m256i v = _mm256_or_si256 (_mm256_and_si256 (_mm256_srli_epi16 (q3, 2 * s), m3), h);
        const __m256i p = _mm256_maddubs_epi16 (v, loadu256 (q8 + 32 * s));
        sumi = _mm256_add_epi32 (sumi, _mm256_madd_epi16 (p, scales16_pair (sch, s)));
      }
    }
    sumi = _mm256_sub_epi32 (sumi, corr);
    const float d = y[i].d * fp16 (x[i].d);
    acc = _mm256_fmadd_ps (_mm256_set1_ps (d), _mm256_cvtepi32_ps (sumi), acc);
  }
  return hsum_ps (acc);
}

/* Q4_K/Q5_K 12-byte field -> 8 scales (low 8 bytes) and 8 mins (high 8
 * bytes) as unsigned bytes. */
static inline __m128i
k4_scales_mins (const uint8_t *p)
{
  uint32_t a[3];
  memcpy (a, p, 12);
  const uint32_t m6 = 0x3f3f3f3fu, lo = 0x0f0f0f0fu, hi = 0x03030303u;
  const uint32_t sc0 = a[0] & m6;
  const uint32_t sc1 = (a[2] & lo) | (((a[0] >> 6) & hi) << 4);
  const uint32_t mn0 = a[1] & m6;
  const uint32_t mn1 = ((a[2] >> 4) & lo) | (((a[1] >> 6) & hi) << 4);
  return _mm_setr_epi32 ((int) sc0, (int) sc1, (int) mn0, (int) mn1);
}

/* mins_j * (bsums[2j] + bsums[2j+1]) for the 8 32-element sub-blocks,
 * as 4 int32 partial sums (the caller scales and accumulates them without
 * a horizontal sum per super-block). */
static inline __m128i
k4_min_term (__m128i scmn, const int16_t *bsums)
{
  const __m128i mn16 = _mm_cvtepu8_epi16 (_mm_unpackhi_epi64 (scmn, scmn));
  const __m128i b0 = _mm_loadu_si128 ((const __m128i *) bsums);
  const __m128i b1 = _mm_loadu_si128 ((const __m128i *) (bsums + 8));
  const __m128i pair = _mm_hadd_epi16 (b0, b1);   /* 32-element sums, |.| <= 4064 */
  return _mm_madd_epi16 (mn16, pair);
}

/* d and dmin of a Q4_K/Q5_K block (adjacent fp16s) times the activation
 * scale: lane 0 = dy * d, lane 1 = dy * dmin. */
static inline __m128
k4_d_dmin (const uint16_t *d_dmin, float dy)
{
  uint32_t both;
  memcpy (&both, d_dmin, 4);
  return _mm_mul_ps (_mm_cvtph_ps (_mm_cvtsi32_si128 ((int) both)), _mm_set1_ps (dy));
}

float
rs_vec_dot_q4_k_avx2 (int64_t n, const void *w, const void *act)
{
  const RsBlockQ4K *x = w;
  const RsBlockQ8K *y = act;
  const __m256i m4 = _mm256_set1_epi8 (0xF);
  __m256 acc = _mm256_setzero_ps ();
  __m128 macc = _mm_setzero_ps ();
  for (int64_t i = 0; i < n / 256; i++) {
    const __m128i scmn = k4_scales_mins (x[i].scales);
    const __m256i sc8 = _mm256_broadcastsi128_si256 (_mm_cvtepu8_epi16 (scmn));
    const int8_t *q8 = y[i].qs;
    const uint8_t *q4 = x[i].qs;

    __m256i s0 = _mm256_setzero_si256 (), s1 = _mm256_setzero_si256 ();
    RS_UNROLL
    for (int j = 0; j < 4; j++) {
      const __m256i q = loadu256 (q4 + 32 * j);
      const __m256i lo = _mm256_and_si256 (q, m4);
      const __m256i hi = _mm256_and_si256 (_mm256_srli_epi16 (q, 4), m4);
      const __m256i plo = _mm256_maddubs_epi16 (lo, loadu256 (q8 + 64 * j));
      const __m256i phi = _mm256_maddubs_epi16 (hi, loadu256 (q8 + 64 * j + 32));
      s0 = _mm256_add_epi32 (s0, _mm256_madd_epi16 (plo, scale32_bcast (sc8, 2 * j)));
      s1 = _mm256_add_epi32 (s1, _mm256_madd_epi16 (phi, scale32_bcast (sc8, 2 * j + 1)));
    }
    const __m128 dd = k4_d_dmin (&x[i].d, y[i].d);
    acc = _mm256_fmadd_ps (_mm256_broadcastss_ps (dd), _mm256_cvtepi32_ps (_mm256_add_epi32 (s0, s1)), acc);
    macc = _mm_fmadd_ps (_mm_shuffle_ps (dd, dd, 0x55), _mm_cvtepi32_ps (k4_min_term (scmn, y[i].bsums)), macc);
  }
  return hsum_ps (acc) - hsum_ps128 (macc);
}

float
rs_vec_dot_q5_k_avx2 (int64_t n, const void *w, const void *act)
{
  const RsBlockQ5K *x = w;
  const RsBlockQ8K *y = act;
  const __m256i m4 = _mm256_set1_epi8 (0xF), b4 = _mm256_set1_epi8 (0x10);
  __m256 acc = _mm256_setzero_ps ();
  __m128 macc = _mm_setzero_ps ();
  for (int64_t i = 0; i < n / 256; i++) {
    const __m128i scmn = k4_scales_mins (x[i].scales);
    const __m256i sc8 = _mm256_broadcastsi128_si256 (_mm_cvtepu8_epi16 (scmn));
    const int8_t *q8 = y[i].qs;
    const uint8_t *q4 = x[i].qs;
    /* fifth bits: bit 2j of qh[l] for the low nibbles of chunk j, bit 2j+1
     * for the high ones; shifting the whole register right by 2 per chunk
     * keeps them at bits 0 and 1 of each byte. */
    __m256i qh = loadu256 (x[i].qh);

    __m256i s0 = _mm256_setzero_si256 (), s1 = _mm256_setzero_si256 ();
    RS_UNROLL
    for (int j = 0; j < 4; j++) {
      const __m256i q = loadu256 (q4 + 32 * j);
      const __m256i lo = _mm256_or_si256 (_mm256_and_si256 (q, m4),
                                          _mm256_and_si256 (_mm256_slli_epi16 (qh, 4), b4));
      const __m256i hi = _mm256_or_si256 (_mm256_and_si256 (_mm256_srli_epi16 (q, 4), m4),
                                          _mm256_and_si256 (_mm256_slli_epi16 (qh, 3), b4));
      qh = _mm256_srli_epi16 (qh, 2);
      const __m256i plo = _mm256_maddubs_epi16 (lo, loadu256 (q8 + 64 * j));
      const __m256i phi = _mm256_maddubs_epi16 (hi, loadu256 (q8 + 64 * j + 32));
      s0 = _mm256_add_epi32 (s0, _mm256_madd_epi16 (plo, scale32_bcast (sc8, 2 * j)));
      s1 = _mm256_add_epi32 (s1, _mm256_madd_epi16 (phi, scale32_bcast (sc8, 2 * j + 1)));
    }
    const __m128 dd = k4_d_dmin (&x[i].d, y[i].d);
    acc = _mm256_fmadd_ps (_mm256_broadcastss_ps (dd), _mm256_cvtepi32_ps (_mm256_add_epi32 (s0, s1)), acc);
    macc = _mm_fmadd_ps (_mm_shuffle_ps (dd, dd, 0x55), _mm_cvtepi32_ps (k4_min_term (scmn, y[i].bsums)), macc);
  }
  return hsum_ps (acc) - hsum_ps128 (macc);
}

float
rs_vec_dot_q6_k_avx2 (int64_t n, const void *w, const void *act)
{
  const RsBlockQ6K *x = w;
  const RsBlockQ8K *y = act;
  const __m256i m4 = _mm256_set1_epi8 (0xF), m30 = _mm256_set1_epi8 (0x30);
  __m256 acc = _mm256_setzero_ps ();
  for (int64_t i = 0; i < n / 256; i++) {
    const __m256i sc16 = _mm256_cvtepi8_epi16 (_mm_loadu_si128 ((const __m128i *) x[i].scales));
    /* weights are stored +32 (0..63): subtract 32 * sum_j sc_j * bsum_j */
    const __m256i corr = _mm256_slli_epi32 (_mm256_madd_epi16 (sc16, loadu256 (y[i].bsums)), 5);

    __m256i sa = _mm256_setzero_si256 (), sb = _mm256_setzero_si256 ();
    RS_UNROLL
    for (int c = 0; c < 2; c++) {
      const __m256i ql0 = loadu256 (x[i].ql + 64 * c);
      const __m256i ql1 = loadu256 (x[i].ql + 64 * c + 32);
      const __m256i qh = loadu256 (x[i].qh + 32 * c);
      const __m256i sch = c == 0 ? _mm256_permute2x128_si256 (sc16, sc16, 0x00)
                                 : _mm256_permute2x128_si256 (sc16, sc16, 0x11);
      const int8_t *q8 = y[i].qs + 128 * c;

      /* s = 0..3: low nibble source, and the 2 high bits moved to bits 4-5 */
      const __m256i v0 = _mm256_or_si256 (_mm256_and_si256 (ql0, m4),
                                          _mm256_and_si256 (_mm256_slli_epi16 (qh, 4), m30));
      const __m256i v1 = _mm256_or_si256 (_mm256_and_si256 (ql1, m4),
                                          _mm256_and_si256 (_mm256_slli_epi16 (qh, 2), m30));
      const __m256i v2 = _mm256_or_si256 (_mm256_and_si256 (_mm256_srli_epi16 (ql0, 4), m4),
                                          _mm256_and_si256 (qh, m30));
      const __m256i v3 = _mm256_or_si256 (_mm256_and_si256 (_mm256_srli_epi16 (ql1, 4), m4),
                                          _mm256_and_si256 (_mm256_srli_epi16 (qh, 2), m30));

      const __m256i p0 = _mm256_maddubs_epi16 (v0, loadu256 (q8));
      const __m256i p1 = _mm256_maddubs_epi16 (v1, loadu256 (q8 + 32));
      const __m256i p2 = _mm256_maddubs_epi16 (v2, loadu256 (q8 + 64));
      const __m256i p3 = _mm256_maddubs_epi16 (v3, loadu256 (q8 + 96));
      sa = _mm256_add_epi32 (sa, _mm256_madd_epi16 (p0, scales16_pair (sch, 0)));
      sb = _mm256_add_epi32 (sb, _mm256_madd_epi16 (p1, scales16_pair (sch, 1)));
      sa = _mm256_add_epi32 (sa, _mm256_madd_epi16 (p2, scales16_pair (sch, 2)));
      sb = _mm256_add_epi32 (sb, _mm256_madd_epi16 (p3, scales16_pair (sch, 3)));
    }
    const __m256i sumi = _mm256_sub_epi32 (_mm256_add_epi32 (sa, sb), corr);
    const float d = y[i].d * fp16 (x[i].d);
    acc = _mm256_fmadd_ps (_mm256_set1_ps (d), _mm256_cvtepi32_ps (sumi), acc);
  }
  return hsum_ps (acc);
}

float
rs_vec_dot_iq4_xs_avx2 (int64_t n, const void *w, const void *act)
{
  const RsBlockIQ4XS *x = w;
  const RsBlockQ8K *y = act;
  const __m256i tab = table16 (rs_kvalues_iq4nl);
  __m256 acc = _mm256_setzero_ps ();
  for (int64_t i = 0; i < n / 256; i++) {
    __m256i s0 = _mm256_setzero_si256 (), s1 = _mm256_setzero_si256 ();
    RS_UNROLL
    for (int ib = 0; ib < 8; ib += 2) {
      const __m256i qa = _mm256_shuffle_epi8 (tab, unpack_nibbles_32 (x[i].qs + 16 * ib));
      const __m256i qb = _mm256_shuffle_epi8 (tab, unpack_nibbles_32 (x[i].qs + 16 * ib + 16));
      const __m256i ya = loadu256 (y[i].qs + 32 * ib);
      const __m256i yb = loadu256 (y[i].qs + 32 * ib + 32);
      const __m256i pa = _mm256_maddubs_epi16 (_mm256_sign_epi8 (qa, qa), _mm256_sign_epi8 (ya, qa));
      const __m256i pb = _mm256_maddubs_epi16 (_mm256_sign_epi8 (qb, qb), _mm256_sign_epi8 (yb, qb));
      const int la = rs_iq4xs_scale (&x[i], ib), lb = rs_iq4xs_scale (&x[i], ib + 1);
      s0 = _mm256_add_epi32 (s0, _mm256_madd_epi16 (pa, _mm256_set1_epi16 ((short) la)));
      s1 = _mm256_add_epi32 (s1, _mm256_madd_epi16 (pb, _mm256_set1_epi16 ((short) lb)));
    }
    const float d = y[i].d * fp16 (x[i].d);
    acc = _mm256_fmadd_ps (_mm256_set1_ps (d), _mm256_cvtepi32_ps (_mm256_add_epi32 (s0, s1)), acc);
  }
  return hsum_ps (acc);
}

/* ------------------------------------------------------------------ */
/* dequantisation (the prefill path dequantises weight tiles for sgemm)
 *
 * Each element is computed with exactly the operations of the scalar
 * block helpers in rs-quant-block.h - an exact int -> float conversion,
 * one multiply by the same (scalar-computed) scale, one subtraction - and
 * this file is built with -ffp-contract=off, so the results are
 * bit-identical to the helpers. Subtracting +0 where a type has no offset
 * leaves every value unchanged, so one store helper serves all types. */

/* 32 bytes -> 32 floats: out[e] = q[e] * d - m, with (d0, m0) for elements
 * 0..15 and (d1, m1) for 16..31. */
static inline void
emit32 (float *out, __m256i q, int is_signed, __m256 d0, __m256 m0, __m256 d1, __m256 m1)
{
  const __m128i a = _mm256_castsi256_si128 (q), b = _mm256_extracti128_si256 (q, 1);
  __m256i i0, i1, i2, i3;
  if (is_signed) {
    i0 = _mm256_cvtepi8_epi32 (a);
    i1 = _mm256_cvtepi8_epi32 (_mm_srli_si128 (a, 8));
    i2 = _mm256_cvtepi8_epi32 (b);
    i3 = _mm256_cvtepi8_epi32 (_mm_srli_si128 (b, 8));
  } else {
    i0 = _mm256_cvtepu8_epi32 (a);
    i1 = _mm256_cvtepu8_epi32 (_mm_srli_si128 (a, 8));
    i2 = _mm256_cvtepu8_epi32 (b);
    i3 = _mm256_cvtepu8_epi32 (_mm_srli_si128 (b, 8));
  }
  _mm256_storeu_ps (out,      _mm256_sub_ps (_mm256_mul_ps (_mm256_cvtepi32_ps (i0), d0), m0));
  _mm256_storeu_ps (out + 8,  _mm256_sub_ps (_mm256_mul_ps (_mm256_cvtepi32_ps (i1), d0), m0));
  _mm256_storeu_ps (out + 16, _mm256_sub_ps (_mm256_mul_ps (_mm256_cvtepi32_ps (i2), d1), m1));
  _mm256_storeu_ps (out + 24, _mm256_sub_ps (_mm256_mul_ps (_mm256_cvtepi32_ps (i3), d1), m1));
}

static inline void
emit32_same (float *out, __m256i q, int is_signed, float d, float m)
{
  const __m256 dv = _mm256_set1_ps (d), mv = _mm256_set1_ps (m);
  emit32 (out, q, is_signed, dv, mv, dv, mv);
}

void
rs_dequant_f16_avx2 (const void *src, float *dst, int64_t n)
{
  const uint16_t *x = src;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps (dst + i, load_f16x8 (x + i));
  for (; i < n; i++)
    dst[i] = rs_fp16_to_fp32 (x[i]);
}

void
rs_dequant_bf16_avx2 (const void *src, float *dst, int64_t n)
{
  const uint16_t *x = src;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps (dst + i, load_bf16x8 (x + i));
  for (; i < n; i++)
    dst[i] = rs_bf16_to_fp32 (x[i]);
}

void
rs_dequant_q8_0_avx2 (const void *src, float *dst, int64_t n)
{
  const RsBlockQ8_0 *x = src;
  for (int64_t i = 0; i < n / 32; i++)
    emit32_same (dst + 32 * i, loadu256 (x[i].qs), 1, fp16 (x[i].d), 0.0f);
}

void
rs_dequant_q4_0_avx2 (const void *src, float *dst, int64_t n)
{
  const RsBlockQ4_0 *x = src;
  const __m256i eight = _mm256_set1_epi8 (8);
  for (int64_t i = 0; i < n / 32; i++)
    emit32_same (dst + 32 * i, _mm256_sub_epi8 (unpack_nibbles_32 (x[i].qs), eight), 1, fp16 (x[i].d), 0.0f);
}

void
rs_dequant_q4_1_avx2 (const void *src, float *dst, int64_t n)
{
  const RsBlockQ4_1 *x = src;
  for (int64_t i = 0; i < n / 32; i++)
    emit32_same (dst + 32 * i, unpack_nibbles_32 (x[i].qs), 0, fp16 (x[i].d), -fp16 (x[i].m));
}

static inline __m256i
q5_values (const uint8_t *qs, const uint8_t *qh_bytes)
{
  uint32_t qh;
  memcpy (&qh, qh_bytes, 4);
  const __m256i hi = _mm256_and_si256 (bits_to_bytes_32 (qh), _mm256_set1_epi8 (0x10));
  return _mm256_or_si256 (unpack_nibbles_32 (qs), hi);
}

void
rs_dequant_q5_0_avx2 (const void *src, float *dst, int64_t n)
{
  const RsBlockQ5_0 *x = src;
  const __m256i sixteen = _mm256_set1_epi8 (16);
  for (int64_t i = 0; i < n / 32; i++)
    emit32_same (dst + 32 * i, _mm256_sub_epi8 (q5_values (x[i].qs, x[i].qh), sixteen), 1, fp16 (x[i].d), 0.0f);
}

void
rs_dequant_q5_1_avx2 (const void *src, float *dst, int64_t n)
{
  const RsBlockQ5_1 *x = src;
  for (int64_t i = 0; i < n / 32; i++)
    emit32_same (dst + 32 * i, q5_values (x[i].qs, x[i].qh), 0, fp16 (x[i].d), -fp16 (x[i].m));
}

void
rs_dequant_iq4_nl_avx2 (const void *src, float *dst, int64_t n)
{
  const RsBlockIQ4NL *x = src;
  const __m256i tab = table16 (rs_kvalues_iq4nl);
  for (int64_t i = 0; i < n / 32; i++)
    emit32_same (dst + 32 * i, _mm256_shuffle_epi8 (tab, unpack_nibbles_32 (x[i].qs)), 1, fp16 (x[i].d), 0.0f);
}

void
rs_dequant_mxfp4_avx2 (const void *src, float *dst, int64_t n)
{
  const RsBlockMXFP4 *x = src;
  const __m256i tab = table16 (rs_kvalues_mxfp4);
  for (int64_t i = 0; i < n / 32; i++)
    emit32_same (dst + 32 * i, _mm256_shuffle_epi8 (tab, unpack_nibbles_32 (x[i].qs)), 1,
                 rs_e8m0_to_fp32_half (x[i].e), 0.0f);
}

void
rs_dequant_q2_k_avx2 (const void *src, float *dst, int64_t n)
{
  const RsBlockQ2K *x = src;
  const __m256i m3 = _mm256_set1_epi8 (3);
  for (int64_t i = 0; i < n / 256; i++) {
    const float d = fp16 (x[i].d), dmin = fp16 (x[i].dmin);
    RS_UNROLL
    for (int c = 0; c < 2; c++) {
      const __m256i q2 = loadu256 (x[i].qs + 32 * c);
      RS_UNROLL
      for (int s = 0; s < 4; s++) {
        const uint8_t sa = x[i].scales[8 * c + 2 * s], sb = x[i].scales[8 * c + 2 * s + 1];
        emit32 (dst + 256 * i + 128 * c + 32 * s, _mm256_and_si256 (_mm256_srli_epi16 (q2, 2 * s), m3), 0,
                _mm256_set1_ps (d * (float) (sa & 0xF)), _mm256_set1_ps (dmin * (float) (sa >> 4)),
                _mm256_set1_ps (d * (float) (sb & 0xF)), _mm256_set1_ps (dmin * (float) (sb >> 4)));
      }
    }
  }
}

void
rs_dequant_q3_k_avx2 (const void *src, float *dst, int64_t n)
{
  const RsBlockQ3K *x = src;
  const __m256i m3 = _mm256_set1_epi8 (3), four = _mm256_set1_epi8 (4);
  const __m256 zero = _mm256_setzero_ps ();
  for (int64_t i = 0; i < n / 256; i++) {
    const float d = fp16 (x[i].d);
    int8_t sc[16];
    _mm_storeu_si128 ((__m128i *) sc, q3k_scales (x[i].scales));
    const __m256i hm = loadu256 (x[i].hmask);
    RS_UNROLL
    for (int c = 0; c < 2; c++) {
      const __m256i q3 = loadu256 (x[i].qs + 32 * c);
      RS_UNROLL
      for (int s = 0; s < 4; s++) {
        const __m256i bit = _mm256_set1_epi8 ((char) (1 << (4 * c + s)));
        /* q = low2 - (high bit clear ? 4 : 0) */
        const __m256i clear = _mm256_andnot_si256 (_mm256_cmpeq_epi8 (_mm256_and_si256 (hm, bit), bit), four);
        const __m256i q = _mm256_sub_epi8 (_mm256_and_si256 (_mm256_srli_epi16 (q3, 2 * s), m3), clear);
        const int j = 8 * c + 2 * s;
        emit32 (dst + 256 * i + 128 * c + 32 * s, q, 1, _mm256_set1_ps (d * (float) sc[j]), zero,
                _mm256_set1_ps (d * (float) sc[j + 1]), zero);
      }
    }
  }
}

void
rs_dequant_q4_k_avx2 (const void *src, float *dst, int64_t n)
{
  const RsBlockQ4K *x = src;
  const __m256i m4 = _mm256_set1_epi8 (0xF);
  for (int64_t i = 0; i < n / 256; i++) {
    const float d = fp16 (x[i].d), dmin = fp16 (x[i].dmin);
    uint8_t sm[16];
    _mm_storeu_si128 ((__m128i *) sm, k4_scales_mins (x[i].scales));
    RS_UNROLL
    for (int j = 0; j < 4; j++) {
      const __m256i q = loadu256 (x[i].qs + 32 * j);
      float *out = dst + 256 * i + 64 * j;
      emit32_same (out, _mm256_and_si256 (q, m4), 0, d * (float) sm[2 * j], dmin * (float) sm[8 + 2 * j]);
      emit32_same (out + 32, _mm256_and_si256 (_mm256_srli_epi16 (q, 4), m4), 0,
                   d * (float) sm[2 * j + 1], dmin * (float) sm[8 + 2 * j + 1]);
    }
  }
}

void
rs_dequant_q5_k_avx2 (const void *src, float *dst, int64_t n)
{
  const RsBlockQ5K *x = src;
  const __m256i m4 = _mm256_set1_epi8 (0xF), b4 = _mm256_set1_epi8 (0x10);
  for (int64_t i = 0; i < n / 256; i++) {
    const float d = fp16 (x[i].d), dmin = fp16 (x[i].dmin);
    uint8_t sm[16];
    _mm_storeu_si128 ((__m128i *) sm, k4_scales_mins (x[i].scales));
    __m256i qh = loadu256 (x[i].qh);
    RS_UNROLL
    for (int j = 0; j < 4; j++) {
      const __m256i q = loadu256 (x[i].qs + 32 * j);
      const __m256i lo = _mm256_or_si256 (_mm256_and_si256 (q, m4), _mm256_and_si256 (_mm256_slli_epi16 (qh, 4), b4));
      const __m256i hi = _mm256_or_si256 (_mm256_and_si256 (_mm256_srli_epi16 (q, 4), m4),
                                          _mm256_and_si256 (_mm256_slli_epi16 (qh, 3), b4));
      qh = _mm256_srli_epi16 (qh, 2);
      float *out = dst + 256 * i + 64 * j;
      emit32_same (out, lo, 0, d * (float) sm[2 * j], dmin * (float) sm[8 + 2 * j]);
      emit32_same (out + 32, hi, 0, d * (float) sm[2 * j + 1], dmin * (float) sm[8 + 2 * j + 1]);
    }
  }
}

void
rs_dequant_q6_k_avx2 (const void *src, float *dst, int64_t n)
{
  const RsBlockQ6K *x = src;
  const __m256i m4 = _mm256_set1_epi8 (0xF), m30 = _mm256_set1_epi8 (0x30), off = _mm256_set1_epi8 (32);
  const __m256 zero = _mm256_setzero_ps ();
  for (int64_t i = 0; i < n / 256; i++) {
    const float d = fp16 (x[i].d);
    const int8_t *sc = x[i].scales;
    RS_UNROLL
    for (int c = 0; c < 2; c++) {
      const __m256i ql0 = loadu256 (x[i].ql + 64 * c);
      const __m256i ql1 = loadu256 (x[i].ql + 64 * c + 32);
      const __m256i qh = loadu256 (x[i].qh + 32 * c);
      __m256i v[4];
      v[0] = _mm256_or_si256 (_mm256_and_si256 (ql0, m4), _mm256_and_si256 (_mm256_slli_epi16 (qh, 4), m30));
      v[1] = _mm256_or_si256 (_mm256_and_si256 (ql1, m4), _mm256_and_si256 (_mm256_slli_epi16 (qh, 2), m30));
      v[2] = _mm256_or_si256 (_mm256_and_si256 (_mm256_srli_epi16 (ql0, 4), m4), _mm256_and_si256 (qh, m30));
      v[3] = _mm256_or_si256 (_mm256_and_si256 (_mm256_srli_epi16 (ql1, 4), m4),
                              _mm256_and_si256 (_mm256_srli_epi16 (qh, 2), m30));
      RS_UNROLL
      for (int s = 0; s < 4; s++) {
        const int j = 8 * c + 2 * s;
        emit32 (dst + 256 * i + 128 * c + 32 * s, _mm256_sub_epi8 (v[s], off), 1,
                _mm256_set1_ps (d * (float) sc[j]), zero, _mm256_set1_ps (d * (float) sc[j + 1]), zero);
      }
    }
  }
}

void
rs_dequant_iq4_xs_avx2 (const void *src, float *dst, int64_t n)
{
  const RsBlockIQ4XS *x = src;
  const __m256i tab = table16 (rs_kvalues_iq4nl);
  for (int64_t i = 0; i < n / 256; i++) {
    const float d = fp16 (x[i].d);
    RS_UNROLL
    for (int ib = 0; ib < 8; ib++)
      emit32_same (dst + 256 * i + 32 * ib, _mm256_shuffle_epi8 (tab, unpack_nibbles_32 (x[i].qs + 16 * ib)), 1,
                   d * (float) rs_iq4xs_scale (&x[i], ib), 0.0f);
  }
}

/* ------------------------------------------------------------------ */
/* activation quantisers, bit-identical to the scalar ones in rs-quant.c:
 * the same amax, the same scalar scale arithmetic, the same per-element
 * product and rounding rule. */

static inline float
absmax_32 (const float *x)
{
  const __m256 sign = _mm256_set1_ps (-0.0f);
  __m256 m = _mm256_andnot_ps (sign, _mm256_loadu_ps (x));
  m = _mm256_max_ps (m, _mm256_andnot_ps (sign, _mm256_loadu_ps (x + 8)));
  m = _mm256_max_ps (m, _mm256_andnot_ps (sign, _mm256_loadu_ps (x + 16)));
  m = _mm256_max_ps (m, _mm256_andnot_ps (sign, _mm256_loadu_ps (x + 24)));
  __m128 h = _mm_max_ps (_mm256_castps256_ps128 (m), _mm256_extractf128_ps (m, 1));
  h = _mm_max_ps (h, _mm_movehl_ps (h, h));
  h = _mm_max_ss (h, _mm_movehdup_ps (h));
  return _mm_cvtss_f32 (h);
}

/* roundf (half away from zero) of 8 floats of magnitude < 2^22, as int32. */
static inline __m256i
round_away_epi32 (__m256 p)
{
  const __m256 t = _mm256_round_ps (p, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 frac = _mm256_andnot_ps (_mm256_set1_ps (-0.0f), _mm256_sub_ps (p, t));   /* exact */
  const __m256 up = _mm256_cmp_ps (frac, _mm256_set1_ps (0.5f), _CMP_GE_OQ);
  const __m256 one = _mm256_or_ps (_mm256_and_ps (p, _mm256_set1_ps (-0.0f)), _mm256_set1_ps (1.0f));
  return _mm256_cvttps_epi32 (_mm256_add_ps (t, _mm256_and_ps (up, one)));
}

/* 4 x 8 int32 (elements 0..31 in order, each in -127..127) -> 32 bytes. */
static inline __m256i
pack_i32x32_to_i8 (__m256i a, __m256i b, __m256i c, __m256i d)
{
  const __m256i ab = _mm256_packs_epi32 (a, b), cd = _mm256_packs_epi32 (c, d);
  const __m256i abcd = _mm256_packs_epi16 (ab, cd);
  /* packs work per 128-bit lane: dwords come out as 0 2 4 6 1 3 5 7 */
  return _mm256_permutevar8x32_epi32 (abcd, _mm256_setr_epi32 (0, 4, 1, 5, 2, 6, 3, 7));
}

/* Quantises 32 floats with id as the Q8_0 reference does; returns the
 * int32 lanes' sum of the quants through *sum. */
static inline void
q8_0_block (const float *x, float id, int8_t *qs, int *sum)
{
  const __m256 vid = _mm256_set1_ps (id);
  const __m256i a = round_away_epi32 (_mm256_mul_ps (_mm256_loadu_ps (x), vid));
  const __m256i b = round_away_epi32 (_mm256_mul_ps (_mm256_loadu_ps (x + 8), vid));
  const __m256i c = round_away_epi32 (_mm256_mul_ps (_mm256_loadu_ps (x + 16), vid));
  const __m256i d = round_away_epi32 (_mm256_mul_ps (_mm256_loadu_ps (x + 24), vid));
  _mm256_storeu_si256 ((__m256i *) qs, pack_i32x32_to_i8 (a, b, c, d));
  if (sum)
    *sum = hsum_epi32 (_mm256_add_epi32 (_mm256_add_epi32 (a, b), _mm256_add_epi32 (c, d)));
}

void
rs_quantize_act_q8_0_avx2 (const float *x, void *dst, int64_t n)
{
  RsBlockQ8_0 *y = dst;
  for (int64_t i = 0; i < n / 32; i++) {
    const float d = absmax_32 (x + 32 * i) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    q8_0_block (x + 32 * i, id, y[i].qs, NULL);
    y[i].d = rs_fp32_to_fp16 (d);
  }
}

void
rs_quantize_act_q8_1_avx2 (const float *x, void *dst, int64_t n)
{
  RsBlockQ8_1 *y = dst;
  for (int64_t i = 0; i < n / 32; i++) {
    const float d = absmax_32 (x + 32 * i) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int sum;
    q8_0_block (x + 32 * i, id, y[i].qs, &sum);
    y[i].d = rs_fp32_to_fp16 (d);
    y[i].s = rs_fp32_to_fp16 ((float) sum * d);
  }
}

void
rs_quantize_act_q8_k_avx2 (const float *x, void *dst, int64_t n)
{
  RsBlockQ8K *y = dst;
  const __m256i lo = _mm256_set1_epi32 (-127), hi = _mm256_set1_epi32 (127);
  for (int64_t i = 0; i < n / 256; i++) {
    const float *xb = x + 256 * i;
    float amax = 0.0f;
    for (int k = 0; k < 8; k++)
      amax = fmaxf (amax, absmax_32 (xb + 32 * k));
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    const __m256 vid = _mm256_set1_ps (id);
    __m128i sums[4];
    RS_UNROLL
    for (int k = 0; k < 8; k++) {
      __m256i q[4];
      for (int u = 0; u < 4; u++) {
        /* cvtps rounds half to even, like the reference's lrintf */
        const __m256i v = _mm256_cvtps_epi32 (_mm256_mul_ps (_mm256_loadu_ps (xb + 32 * k + 8 * u), vid));
        q[u] = _mm256_max_epi32 (lo, _mm256_min_epi32 (hi, v));
      }
      _mm256_storeu_si256 ((__m256i *) (y[i].qs + 32 * k), pack_i32x32_to_i8 (q[0], q[1], q[2], q[3]));
      /* sums of elements 0..15 and 16..31 of this 32 */
      const __m256i g = _mm256_hadd_epi32 (_mm256_add_epi32 (q[0], q[1]), _mm256_add_epi32 (q[2], q[3]));
      /* lane 0: [g0 g0 g1 g1] partials, lane 1: the same for elements 4..7 */
      const __m128i h = _mm_add_epi32 (_mm256_castsi256_si128 (g), _mm256_extracti128_si256 (g, 1));
      const __m128i two = _mm_hadd_epi32 (h, h);                /* [g0 g1 g0 g1] */
      if (k % 2 == 0)
        sums[k / 2] = two;
      else
        sums[k / 2] = _mm_unpacklo_epi64 (sums[k / 2], two);   /* [g0 g1 g2 g3] */
    }
    _mm_storeu_si128 ((__m128i *) y[i].bsums, _mm_packs_epi32 (sums[0], sums[1]));
    _mm_storeu_si128 ((__m128i *) (y[i].bsums + 8), _mm_packs_epi32 (sums[2], sums[3]));
    y[i].d = d;
  }
}
