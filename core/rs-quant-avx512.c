/* rs-quant-avx512.c: AVX-512 (F/BW/VL + VNNI) dot kernels for the hottest
 * types, compiled with their own -m flags and chosen at run time.
 *
 * Same arithmetic as the AVX2 kernels (exact integer block sums, one float
 * multiply-add per block), but on 64-byte registers, with VNNI fusing the
 * multiply-accumulate steps:
 *   - vpdpbusd: u8 x s8, four products summed into each int32 lane;
 *   - vpdpwssd: int16 x int16 pairs summed into int32 (applies the
 *     per-sub-block scales to vpmaddubsw's int16 pair sums in one step).
 * AVX-512 has no vpsignb; the sign trick uses a mask from the weights'
 * sign bits to negate the activations instead.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <immintrin.h>
#include <string.h>

#include "rs-quant-block.h"
#include "rs-quant-private.h"

#define RS_UNROLL _Pragma ("GCC unroll 8")

static inline float
fp16 (uint16_t h)
{
  return _cvtsh_ss (h);
}

static inline __m256i
loadu256 (const void *p)
{
  return _mm256_loadu_si256 ((const __m256i *) p);
}

static inline __m512i
loadu512 (const void *p)
{
  return _mm512_loadu_si512 (p);
}

/* Two 32-byte pieces -> one register (a low, b high). */
static inline __m512i
join256 (__m256i a, __m256i b)
{
  return _mm512_inserti64x4 (_mm512_castsi256_si512 (a), b, 1);
}

/* Signed bytes x . signed bytes y accumulated into acc (int32 lanes).
 * |x| <= 128 and y != -128, as for the AVX2 sign trick. */
static inline __m512i
dot_i8_acc (__m512i acc, __m512i x, __m512i y)
{
  const __mmask64 neg = _mm512_movepi8_mask (x);
  const __m512i sy = _mm512_mask_sub_epi8 (y, neg, _mm512_setzero_si512 (), y);
  return _mm512_dpbusd_epi32 (acc, _mm512_abs_epi8 (x), sy);
}

/* The fp16 scales of four consecutive blocks (any block type with a
 * leading uint16_t d, @stride bytes apart) as floats, one conversion. */
static inline __m128
fp16_x4 (const void *first, size_t stride)
{
  const uint8_t *p = first;
  uint16_t h[4];
  for (int k = 0; k < 4; k++)
    memcpy (&h[k], p + k * stride, 2);
  __m128i v = _mm_cvtsi32_si128 (h[0]);
  v = _mm_insert_epi16 (v, h[1], 1);
  v = _mm_insert_epi16 (v, h[2], 2);
  v = _mm_insert_epi16 (v, h[3], 3);
  return _mm_cvtph_ps (v);
}

/* [p[0] x8 | p[1] x8] and [p[2] x8 | p[3] x8] for blocks i .. i+3. */
static inline void
spread_scales4 (__m128 p, __m512 *da, __m512 *db)
{
  const __m512 z = _mm512_castps128_ps512 (p);   /* only lanes 0-3 are read */
  *da = _mm512_permutexvar_ps (_mm512_setr_epi32 (0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1), z);
  *db = _mm512_permutexvar_ps (_mm512_setr_epi32 (2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3), z);
}

/* Q8_0 x Q8_0: two blocks per 64-byte register, four blocks per step. */
float
rs_vec_dot_q8_0_avx512 (int64_t n, const void *w, const void *act)
{
  const RsBlockQ8_0 *x = w;
  const RsBlockQ8_0 *y = act;
  const int64_t nb = n / 32;
  __m512 acc0 = _mm512_setzero_ps (), acc1 = _mm512_setzero_ps ();
  int64_t i = 0;
  for (; i + 3 < nb; i += 4) {
    const __m512i xa = join256 (loadu256 (x[i].qs), loadu256 (x[i + 1].qs));
    const __m512i ya = join256 (loadu256 (y[i].qs), loadu256 (y[i + 1].qs));
    const __m512i xb = join256 (loadu256 (x[i + 2].qs), loadu256 (x[i + 3].qs));
    const __m512i yb = join256 (loadu256 (y[i + 2].qs), loadu256 (y[i + 3].qs));
    const __m512i sa = dot_i8_acc (_mm512_setzero_si512 (), xa, ya);
    const __m512i sb = dot_i8_acc (_mm512_setzero_si512 (), xb, yb);
    __m512 da, db;
    spread_scales4 (_mm_mul_ps (fp16_x4 (&x[i], sizeof *x), fp16_x4 (&y[i], sizeof *y)), &da, &db);
    acc0 = _mm512_fmadd_ps (da, _mm512_cvtepi32_ps (sa), acc0);
    acc1 = _mm512_fmadd_ps (db, _mm512_cvtepi32_ps (sb), acc1);
  }
  float sum = _mm512_reduce_add_ps (_mm512_add_ps (acc0, acc1));
  for (; i < nb; i++) {
    const __m256i p16 = _mm256_maddubs_epi16 (_mm256_sign_epi8 (loadu256 (x[i].qs), loadu256 (x[i].qs)),
                                              _mm256_sign_epi8 (loadu256 (y[i].qs), loadu256 (x[i].qs)));
    __m256i s = _mm256_madd_epi16 (p16, _mm256_set1_epi16 (1));
    __m128i h = _mm_add_epi32 (_mm256_castsi256_si128 (s), _mm256_extracti128_si256 (s, 1));
    h = _mm_add_epi32 (h, _mm_unpackhi_epi64 (h, h));
    h = _mm_add_epi32 (h, _mm_shuffle_epi32 (h, 1));
    sum += (float) _mm_cvtsi128_si32 (h) * (fp16 (x[i].d) * fp16 (y[i].d));
  }
  return sum;
}

/* Q4_K/Q5_K 12-byte field -> 8 scales (bytes 0-7) and 8 mins (8-15). */
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

float
rs_vec_dot_q4_k_avx512 (int64_t n, const void *w, const void *act)
{
  const RsBlockQ4K *x = w;
  const RsBlockQ8K *y = act;
  const __m512i m4 = _mm512_set1_epi8 (0xF);
  /* int16 lane k of chunk j's scale vector = scale 2j (lanes 0-15) or
   * 2j+1 (lanes 16-31), picked from the 8 scales by vpermw */
  const __m512i pick0 = _mm512_set_epi64 (0x0001000100010001, 0x0001000100010001, 0x0001000100010001,
                                          0x0001000100010001, 0, 0, 0, 0);
  __m512 acc = _mm512_setzero_ps ();
  __m128 macc = _mm_setzero_ps ();
  for (int64_t i = 0; i < n / 256; i++) {
    const __m128i scmn = k4_scales_mins (x[i].scales);
    const __m512i sc16 = _mm512_castsi128_si512 (_mm_cvtepu8_epi16 (scmn));
    const int8_t *q8 = y[i].qs;
    const uint8_t *q4 = x[i].qs;

    __m512i s0 = _mm512_setzero_si512 (), s1 = _mm512_setzero_si512 ();
    RS_UNROLL
    for (int j = 0; j < 4; j++) {
      /* [low nibbles | high nibbles] of 32 bytes = elements 64j .. 64j+63 */
      const __m256i q = loadu256 (q4 + 32 * j);
      const __m512i v = _mm512_and_si512 (join256 (q, _mm256_srli_epi16 (q, 4)), m4);
      const __m512i p = _mm512_maddubs_epi16 (v, loadu512 (q8 + 64 * j));
      const __m512i sc = _mm512_permutexvar_epi16 (_mm512_add_epi16 (pick0, _mm512_set1_epi16 ((short) (2 * j))), sc16);
      if (j % 2 == 0)
        s0 = _mm512_dpwssd_epi32 (s0, p, sc);
      else
        s1 = _mm512_dpwssd_epi32 (s1, p, sc);
    }
    uint32_t both;
    memcpy (&both, &x[i].d, 4);
    const __m128 dd = _mm_mul_ps (_mm_cvtph_ps (_mm_cvtsi32_si128 ((int) both)), _mm_set1_ps (y[i].d));
    acc = _mm512_fmadd_ps (_mm512_broadcastss_ps (dd), _mm512_cvtepi32_ps (_mm512_add_epi32 (s0, s1)), acc);

    /* mins: sum_j min_j * (bsums[2j] + bsums[2j+1]) */
    const __m128i mn16 = _mm_cvtepu8_epi16 (_mm_unpackhi_epi64 (scmn, scmn));
    const __m128i pair = _mm_hadd_epi16 (_mm_loadu_si128 ((const __m128i *) y[i].bsums),
                                         _mm_loadu_si128 ((const __m128i *) (y[i].bsums + 8)));
    macc = _mm_fmadd_ps (_mm_shuffle_ps (dd, dd, 0x55), _mm_cvtepi32_ps (_mm_madd_epi16 (mn16, pair)), macc);
  }
  macc = _mm_add_ps (macc, _mm_movehl_ps (macc, macc));
  macc = _mm_add_ss (macc, _mm_movehdup_ps (macc));
  return _mm512_reduce_add_ps (acc) - _mm_cvtss_f32 (macc);
}

float
rs_vec_dot_q6_k_avx512 (int64_t n, const void *w, const void *act)
{
  const RsBlockQ6K *x = w;
  const RsBlockQ8K *y = act;
  const __m512i m4 = _mm512_set1_epi8 (0xF), m30 = _mm512_set1_epi8 (0x30);
  /* 16-bit shift counts for the high bits: s = 0 | 1 use qh << 4 | << 2,
   * s = 2 | 3 use qh >> 0 | >> 2 (then masked to bits 4-5) */
  const __m512i shl01 = _mm512_inserti64x4 (_mm512_set1_epi16 (4), _mm256_set1_epi16 (2), 1);
  const __m512i shr23 = _mm512_inserti64x4 (_mm512_setzero_si512 (), _mm256_set1_epi16 (2), 1);
  /* vpermw indices: 128-bit lane k takes scale k (+ 4 per step below) */
  const __m512i pick = _mm512_set_epi64 (0x0003000300030003, 0x0003000300030003, 0x0002000200020002,
                                         0x0002000200020002, 0x0001000100010001, 0x0001000100010001, 0, 0);
  __m512 acc = _mm512_setzero_ps ();
  for (int64_t i = 0; i < n / 256; i++) {
    const __m256i sc16 = _mm256_cvtepi8_epi16 (_mm_loadu_si128 ((const __m128i *) x[i].scales));
    const __m512i sc512 = _mm512_castsi256_si512 (sc16);
    /* weights are stored +32: subtract 32 * sum_j sc_j * bsum_j */
    const __m256i corr = _mm256_slli_epi32 (_mm256_madd_epi16 (sc16, loadu256 (y[i].bsums)), 5);

    __m512i sa = _mm512_setzero_si512 (), sb = _mm512_setzero_si512 ();
    RS_UNROLL
    for (int c = 0; c < 2; c++) {
      const __m512i ql = loadu512 (x[i].ql + 64 * c);                 /* [ql0 | ql1] */
      const __m512i qh = _mm512_broadcast_i64x4 (loadu256 (x[i].qh + 32 * c));
      const __m512i v01 = _mm512_or_si512 (_mm512_and_si512 (ql, m4),
                                           _mm512_and_si512 (_mm512_sllv_epi16 (qh, shl01), m30));
      const __m512i v23 = _mm512_or_si512 (_mm512_and_si512 (_mm512_srli_epi16 (ql, 4), m4),
                                           _mm512_and_si512 (_mm512_srlv_epi16 (qh, shr23), m30));
      const int8_t *q8 = y[i].qs + 128 * c;
      const __m512i p01 = _mm512_maddubs_epi16 (v01, loadu512 (q8));
      const __m512i p23 = _mm512_maddubs_epi16 (v23, loadu512 (q8 + 64));
      const __m512i sc01 = _mm512_permutexvar_epi16 (_mm512_add_epi16 (pick, _mm512_set1_epi16 ((short) (8 * c))), sc512);
      const __m512i sc23 = _mm512_permutexvar_epi16 (_mm512_add_epi16 (pick, _mm512_set1_epi16 ((short) (8 * c + 4))), sc512);
      sa = _mm512_dpwssd_epi32 (sa, p01, sc01);
      sb = _mm512_dpwssd_epi32 (sb, p23, sc23);
    }
    const __m512i sumi = _mm512_sub_epi32 (_mm512_add_epi32 (sa, sb), _mm512_zextsi256_si512 (corr));
    const float d = y[i].d * fp16 (x[i].d);
    acc = _mm512_fmadd_ps (_mm512_set1_ps (d), _mm512_cvtepi32_ps (sumi), acc);
  }
  return _mm512_reduce_add_ps (acc);
}

/* ---- 32-element nibble blocks (Q4_0, IQ4_NL, MXFP4) against Q8_0 ----
 * The three differ only in the 16-entry value table and the scale, so one
 * body serves them: two blocks per register, four per step. */

/* Nibbles of two blocks -> [lo a | hi a | lo b | hi b] (elements 0..31 of
 * block a, then of block b), mapped through the 16-entry table. */
static inline __m512i
nibbles_2blocks (const uint8_t *qa, const uint8_t *qb, __m512i table)
{
  const __m256i v = _mm256_inserti128_si256 (_mm256_castsi128_si256 (_mm_loadu_si128 ((const __m128i *) qa)),
                                             _mm_loadu_si128 ((const __m128i *) qb), 1);
  /* [a, b | a>>4, b>>4] -> lanes 0 2 1 3 */
  __m512i z = _mm512_shuffle_i64x2 (join256 (v, _mm256_srli_epi16 (v, 4)), join256 (v, _mm256_srli_epi16 (v, 4)), 0xD8);
  z = _mm512_and_si512 (z, _mm512_set1_epi8 (0x0F));
  return _mm512_shuffle_epi8 (table, z);
}

#define NIBBLE_DOT_BODY(BT, TABLE, SCALE, SCALE1)                                                   \
  const BT *x = w;                                                                          \
  const RsBlockQ8_0 *y = act;                                                               \
  const int64_t nb = n / 32;                                                                \
  const __m512i tab = _mm512_broadcast_i32x4 (_mm_loadu_si128 ((const __m128i *) (TABLE)));\
  __m512 acc0 = _mm512_setzero_ps (), acc1 = _mm512_setzero_ps ();                          \
  int64_t i = 0;                                                                            \
  for (; i + 3 < nb; i += 4) {                                                              \
    const __m512i xa = nibbles_2blocks (x[i].qs, x[i + 1].qs, tab);                         \
    const __m512i xb = nibbles_2blocks (x[i + 2].qs, x[i + 3].qs, tab);                     \
    const __m512i ya = join256 (loadu256 (y[i].qs), loadu256 (y[i + 1].qs));                \
    const __m512i yb = join256 (loadu256 (y[i + 2].qs), loadu256 (y[i + 3].qs));            \
    const __m512i sa = dot_i8_acc (_mm512_setzero_si512 (), xa, ya);                        \
    const __m512i sb = dot_i8_acc (_mm512_setzero_si512 (), xb, yb);                        \
    __m512 da, db;                                                                          \
    spread_scales4 (_mm_mul_ps (SCALE (x, i), fp16_x4 (&y[i], sizeof *y)), &da, &db);        \
    acc0 = _mm512_fmadd_ps (da, _mm512_cvtepi32_ps (sa), acc0);                             \
    acc1 = _mm512_fmadd_ps (db, _mm512_cvtepi32_ps (sb), acc1);                             \
  }                                                                                         \
  float sum = _mm512_reduce_add_ps (_mm512_add_ps (acc0, acc1));                            \
  for (; i < nb; i++) {                                                                     \
    int isum = 0;                                                                           \
    for (int l = 0; l < 16; l++) {                                                          \
      isum += (TABLE)[x[i].qs[l] & 0xF] * y[i].qs[l];                                       \
      isum += (TABLE)[x[i].qs[l] >> 4] * y[i].qs[l + 16];                                   \
    }                                                                                       \
    sum += (float) isum * (SCALE1 (x[i]) * fp16 (y[i].d));                                  \
  }                                                                                         \
  return sum;

/* rs_e8m0_to_fp32_half of four exponents at once: 2^(e-128) is the float
 * with exponent field e - 1, except e = 0, 1 (subnormals 2^-128, 2^-127). */
static inline __m128
e8m0_half_x4 (uint8_t e0, uint8_t e1, uint8_t e2, uint8_t e3)
{
  const __m128i e = _mm_setr_epi32 (e0, e1, e2, e3);
  const __m128i normal = _mm_slli_epi32 (_mm_sub_epi32 (e, _mm_set1_epi32 (1)), 23);
  const __m128i sub = _mm_sllv_epi32 (_mm_set1_epi32 (0x00200000), e);
  const __m128i is_sub = _mm_cmplt_epi32 (e, _mm_set1_epi32 (2));
  return _mm_castsi128_ps (_mm_blendv_epi8 (normal, sub, is_sub));
}

static const int8_t q4_0_values[16] = { -8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7 };

/* weight scales of blocks i .. i+3, and of one block */
#define FP16_D4(x, i) fp16_x4 (&(x)[i], sizeof *(x))
#define FP16_D(b) fp16 ((b).d)
#define E8M0_HALF4(x, i) e8m0_half_x4 ((x)[i].e, (x)[(i) + 1].e, (x)[(i) + 2].e, (x)[(i) + 3].e)
#define E8M0_HALF(b) rs_e8m0_to_fp32_half ((b).e)

float
rs_vec_dot_q4_0_avx512 (int64_t n, const void *w, const void *act)
{
  NIBBLE_DOT_BODY (RsBlockQ4_0, q4_0_values, FP16_D4, FP16_D)
}

float
rs_vec_dot_iq4_nl_avx512 (int64_t n, const void *w, const void *act)
{
  NIBBLE_DOT_BODY (RsBlockIQ4NL, rs_kvalues_iq4nl, FP16_D4, FP16_D)
}

float
rs_vec_dot_mxfp4_avx512 (int64_t n, const void *w, const void *act)
{
  NIBBLE_DOT_BODY (RsBlockMXFP4, rs_kvalues_mxfp4, E8M0_HALF4, E8M0_HALF)
}

float
rs_vec_dot_q5_k_avx512 (int64_t n, const void *w, const void *act)
{
  const RsBlockQ5K *x = w;
  const RsBlockQ8K *y = act;
  const __m512i m4 = _mm512_set1_epi8 (0xF), b4 = _mm512_set1_epi8 (0x10);
  const __m512i pick0 = _mm512_set_epi64 (0x0001000100010001, 0x0001000100010001, 0x0001000100010001,
                                          0x0001000100010001, 0, 0, 0, 0);
  /* fifth bits of chunk j: bit 2j (low nibbles, lower half) and 2j+1
   * (high nibbles, upper half); shifting the upper copy by one less lines
   * both up at bit 0 */
  const __m512i hshift = _mm512_inserti64x4 (_mm512_setzero_si512 (), _mm256_set1_epi16 (1), 1);
  __m512 acc = _mm512_setzero_ps ();
  __m128 macc = _mm_setzero_ps ();
  for (int64_t i = 0; i < n / 256; i++) {
    const __m128i scmn = k4_scales_mins (x[i].scales);
    const __m512i sc16 = _mm512_castsi128_si512 (_mm_cvtepu8_epi16 (scmn));
    const int8_t *q8 = y[i].qs;
    const uint8_t *q4 = x[i].qs;
    const __m512i qh = _mm512_srlv_epi16 (_mm512_broadcast_i64x4 (loadu256 (x[i].qh)), hshift);

    __m512i s0 = _mm512_setzero_si512 (), s1 = _mm512_setzero_si512 ();
    RS_UNROLL
    for (int j = 0; j < 4; j++) {
      const __m256i q = loadu256 (q4 + 32 * j);
      const __m512i lo4 = _mm512_and_si512 (join256 (q, _mm256_srli_epi16 (q, 4)), m4);
      const __m512i h = _mm512_and_si512 (_mm512_slli_epi16 (_mm512_srli_epi16 (qh, 2 * j), 4), b4);
      const __m512i v = _mm512_or_si512 (lo4, h);
      const __m512i p = _mm512_maddubs_epi16 (v, loadu512 (q8 + 64 * j));
      const __m512i sc = _mm512_permutexvar_epi16 (_mm512_add_epi16 (pick0, _mm512_set1_epi16 ((short) (2 * j))), sc16);
      if (j % 2 == 0)
        s0 = _mm512_dpwssd_epi32 (s0, p, sc);
      else
        s1 = _mm512_dpwssd_epi32 (s1, p, sc);
    }
    uint32_t both;
    memcpy (&both, &x[i].d, 4);
    const __m128 dd = _mm_mul_ps (_mm_cvtph_ps (_mm_cvtsi32_si128 ((int) both)), _mm_set1_ps (y[i].d));
    acc = _mm512_fmadd_ps (_mm512_broadcastss_ps (dd), _mm512_cvtepi32_ps (_mm512_add_epi32 (s0, s1)), acc);
    const __m128i mn16 = _mm_cvtepu8_epi16 (_mm_unpackhi_epi64 (scmn, scmn));
    const __m128i pair = _mm_hadd_epi16 (_mm_loadu_si128 ((const __m128i *) y[i].bsums),
                                         _mm_loadu_si128 ((const __m128i *) (y[i].bsums + 8)));
    macc = _mm_fmadd_ps (_mm_shuffle_ps (dd, dd, 0x55), _mm_cvtepi32_ps (_mm_madd_epi16 (mn16, pair)), macc);
  }
  macc = _mm_add_ps (macc, _mm_movehl_ps (macc, macc));
  macc = _mm_add_ss (macc, _mm_movehdup_ps (macc));
  return _mm512_reduce_add_ps (acc) - _mm_cvtss_f32 (macc);
}

/* ---- Q2_K, Q3_K: 2-bit planes. The 64 activations q8[64t .. 64t+63]
 * belong to half c = t/2, planes s = 2(t%2) and s+1, which both live in
 * the 32 bytes qs[32c ..]: broadcast them and shift each half by its own
 * count. Sub-block scales are applied by vpdpwssd. ---- */

/* vpermw indices giving 128-bit lane k the int16 scale of 16-element
 * sub-block 4t + k (the sub-blocks of elements 64t .. 64t+63). */
static inline __m512i
scale_pick_16 (int t)
{
  const __m512i base = _mm512_set_epi64 (0x0003000300030003, 0x0003000300030003, 0x0002000200020002,
                                         0x0002000200020002, 0x0001000100010001, 0x0001000100010001, 0, 0);
  return _mm512_add_epi16 (base, _mm512_set1_epi16 ((short) (4 * t)));
}

static inline __m512i
shift_counts (int lo, int hi)
{
  return _mm512_inserti64x4 (_mm512_set1_epi16 ((short) lo), _mm256_set1_epi16 ((short) hi), 1);
}

float
rs_vec_dot_q2_k_avx512 (int64_t n, const void *w, const void *act)
{
  const RsBlockQ2K *x = w;
  const RsBlockQ8K *y = act;
  const __m512i m3 = _mm512_set1_epi8 (3);
  const __m128i m4 = _mm_set1_epi8 (0xF);
  __m512 acc = _mm512_setzero_ps ();
  __m256 macc = _mm256_setzero_ps ();
  for (int64_t i = 0; i < n / 256; i++) {
    const __m128i sc = _mm_loadu_si128 ((const __m128i *) x[i].scales);
    const __m512i sc16 = _mm512_castsi256_si512 (_mm256_cvtepu8_epi16 (_mm_and_si128 (sc, m4)));
    const __m256i mn16 = _mm256_cvtepu8_epi16 (_mm_and_si128 (_mm_srli_epi16 (sc, 4), m4));
    const __m256i msum = _mm256_madd_epi16 (mn16, loadu256 (y[i].bsums));

    __m512i s0 = _mm512_setzero_si512 (), s1 = _mm512_setzero_si512 ();
    RS_UNROLL
    for (int t = 0; t < 4; t++) {
      const int c = t / 2, s = 2 * (t % 2);
      const __m512i q = _mm512_broadcast_i64x4 (loadu256 (x[i].qs + 32 * c));
      const __m512i v = _mm512_and_si512 (_mm512_srlv_epi16 (q, shift_counts (2 * s, 2 * s + 2)), m3);
      const __m512i p = _mm512_maddubs_epi16 (v, loadu512 (y[i].qs + 64 * t));
      const __m512i scv = _mm512_permutexvar_epi16 (scale_pick_16 (t), sc16);
      if (t % 2 == 0)
        s0 = _mm512_dpwssd_epi32 (s0, p, scv);
      else
        s1 = _mm512_dpwssd_epi32 (s1, p, scv);
    }
    uint32_t both;
    memcpy (&both, &x[i].d, 4);
    const __m128 dd = _mm_mul_ps (_mm_cvtph_ps (_mm_cvtsi32_si128 ((int) both)), _mm_set1_ps (y[i].d));
    acc = _mm512_fmadd_ps (_mm512_broadcastss_ps (dd), _mm512_cvtepi32_ps (_mm512_add_epi32 (s0, s1)), acc);
    macc = _mm256_fmadd_ps (_mm256_broadcastss_ps (_mm_shuffle_ps (dd, dd, 0x55)), _mm256_cvtepi32_ps (msum), macc);
  }
  __m128 m = _mm_add_ps (_mm256_castps256_ps128 (macc), _mm256_extractf128_ps (macc, 1));
  m = _mm_add_ps (m, _mm_movehl_ps (m, m));
  m = _mm_add_ss (m, _mm_movehdup_ps (m));
  return _mm512_reduce_add_ps (acc) - _mm_cvtss_f32 (m);
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
rs_vec_dot_q3_k_avx512 (int64_t n, const void *w, const void *act)
{
  const RsBlockQ3K *x = w;
  const RsBlockQ8K *y = act;
  const __m512i m3 = _mm512_set1_epi8 (3), b2 = _mm512_set1_epi8 (4);
  __m512 acc = _mm512_setzero_ps ();
  for (int64_t i = 0; i < n / 256; i++) {
    const __m256i sc16 = _mm256_cvtepi8_epi16 (q3k_scales (x[i].scales));
    const __m512i sc512 = _mm512_castsi256_si512 (sc16);
    /* q = v - 4 with v = low2 | (hbit << 2): subtract 4 * sum_j sc_j * bsum_j */
    const __m256i corr = _mm256_slli_epi32 (_mm256_madd_epi16 (sc16, loadu256 (y[i].bsums)), 2);
    const __m512i hm = _mm512_broadcast_i64x4 (loadu256 (x[i].hmask));

    __m512i s0 = _mm512_setzero_si512 (), s1 = _mm512_setzero_si512 ();
    RS_UNROLL
    for (int t = 0; t < 4; t++) {
      const int c = t / 2, s = 2 * (t % 2);
      const __m512i q = _mm512_broadcast_i64x4 (loadu256 (x[i].qs + 32 * c));
      const __m512i lo2 = _mm512_and_si512 (_mm512_srlv_epi16 (q, shift_counts (2 * s, 2 * s + 2)), m3);
      /* high bit k = 4c + s (and k + 1 for the upper half) moved to bit 2 */
      const int k = 4 * c + s;
      const __m512i h = k >= 2 ? _mm512_srlv_epi16 (hm, shift_counts (k - 2, k - 1))
                               : _mm512_sllv_epi16 (hm, shift_counts (2 - k, 1 - k));
      const __m512i v = _mm512_or_si512 (lo2, _mm512_and_si512 (h, b2));
      const __m512i p = _mm512_maddubs_epi16 (v, loadu512 (y[i].qs + 64 * t));
      const __m512i scv = _mm512_permutexvar_epi16 (scale_pick_16 (t), sc512);
      if (t % 2 == 0)
        s0 = _mm512_dpwssd_epi32 (s0, p, scv);
      else
        s1 = _mm512_dpwssd_epi32 (s1, p, scv);
    }
    const __m512i sumi = _mm512_sub_epi32 (_mm512_add_epi32 (s0, s1), _mm512_zextsi256_si512 (corr));
    const float d = y[i].d * fp16 (x[i].d);
    acc = _mm512_fmadd_ps (_mm512_set1_ps (d), _mm512_cvtepi32_ps (sumi), acc);
  }
  return _mm512_reduce_add_ps (acc);
}

/* IQ4_XS: two 32-element sub-blocks per register, their 6-bit scales
 * applied to vpmaddubsw's pair sums by vpdpwssd. */
float
rs_vec_dot_iq4_xs_avx512 (int64_t n, const void *w, const void *act)
{
  const RsBlockIQ4XS *x = w;
  const RsBlockQ8K *y = act;
  const __m512i tab = _mm512_broadcast_i32x4 (_mm_loadu_si128 ((const __m128i *) rs_kvalues_iq4nl));
  const __m512i pick0 = _mm512_set_epi64 (0x0001000100010001, 0x0001000100010001, 0x0001000100010001,
                                          0x0001000100010001, 0, 0, 0, 0);
  __m512 acc = _mm512_setzero_ps ();
  for (int64_t i = 0; i < n / 256; i++) {
    /* the 8 scales as int16: low nibbles from scales_l (even sub-blocks
     * in the low nibbles), 2 high bits each from scales_h */
    uint32_t sl;
    memcpy (&sl, x[i].scales_l, 4);
    const __m128i lo = _mm_unpacklo_epi8 (_mm_cvtsi32_si128 ((int) (sl & 0x0f0f0f0fu)),
                                          _mm_cvtsi32_si128 ((int) ((sl >> 4) & 0x0f0f0f0fu)));
    const __m128i hi = _mm_and_si128 (_mm_srlv_epi16 (_mm_set1_epi16 ((short) x[i].scales_h),
                                                      _mm_setr_epi16 (0, 2, 4, 6, 8, 10, 12, 14)),
                                      _mm_set1_epi16 (3));
    const __m128i ls = _mm_sub_epi16 (_mm_or_si128 (_mm_cvtepu8_epi16 (lo), _mm_slli_epi16 (hi, 4)),
                                      _mm_set1_epi16 (32));
    const __m512i ls512 = _mm512_castsi128_si512 (ls);

    __m512i s0 = _mm512_setzero_si512 (), s1 = _mm512_setzero_si512 ();
    RS_UNROLL
    for (int t = 0; t < 4; t++) {
      const __m512i q = nibbles_2blocks (x[i].qs + 32 * t, x[i].qs + 32 * t + 16, tab);
      const __m512i yv = loadu512 (y[i].qs + 64 * t);
      const __mmask64 neg = _mm512_movepi8_mask (q);
      const __m512i sy = _mm512_mask_sub_epi8 (yv, neg, _mm512_setzero_si512 (), yv);
      /* |q| <= 127 and |y| <= 127: the int16 pair sums cannot saturate */
      const __m512i p = _mm512_maddubs_epi16 (_mm512_abs_epi8 (q), sy);
      const __m512i scv = _mm512_permutexvar_epi16 (_mm512_add_epi16 (pick0, _mm512_set1_epi16 ((short) (2 * t))), ls512);
      if (t % 2 == 0)
        s0 = _mm512_dpwssd_epi32 (s0, p, scv);
      else
        s1 = _mm512_dpwssd_epi32 (s1, p, scv);
    }
    const float d = y[i].d * fp16 (x[i].d);
    acc = _mm512_fmadd_ps (_mm512_set1_ps (d), _mm512_cvtepi32_ps (_mm512_add_epi32 (s0, s1)), acc);
  }
  return _mm512_reduce_add_ps (acc);
}
