/* rs-quant.c: row dequantisation, round-to-nearest quantisation, the scalar
 * reference dot kernels and the run-time kernel dispatch.
 *
 * Dot products follow ggml's scheme: weights stay in their block format,
 * activations are quantised once per row to an 8-bit block format whose
 * block boundaries line up with the weights', and each block contributes
 * (integer dot of the quants) x (product of the block scales). Min/offset
 * terms use precomputed activation sums (Q8_1's s, Q8_K's bsums).
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "rs-quant.h"

#include <glib.h>
#include <math.h>
#include <string.h>

#include "rs-cpu.h"
#include "rs-quant-block.h"
#include "rs-quant-private.h"

/* ------------------------------------------------------------------ */
/* dequantisation                                                      */

static RsDequantFn dequant_simd_table[RS_TYPE_COUNT];
static void init_dispatch (void);

/* The RS_HD block helpers, one after another: the reference. */
void
rs_dequantize_row_scalar (RsType type, const void *src, float *dst, int64_t n)
{
  const RsTypeTraits *t = rs_type_traits ((int) type);
  g_return_if_fail (t->known && n % t->block_size == 0);
  const int64_t nb = n / t->block_size;

#define DEQ_BLOCKS(BT, fn)                                    \
  do {                                                        \
    const BT *b = (const BT *) src;                           \
    for (int64_t i = 0; i < nb; i++)                          \
      fn (&b[i], dst + i * t->block_size);                    \
  } while (0)

  switch (type) {
  case RS_TYPE_F32:
    memcpy (dst, src, (size_t) n * sizeof (float));
    break;
  case RS_TYPE_F16: {
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++)
      dst[i] = rs_fp16_to_fp32 (h[i]);
    break;
  }
  case RS_TYPE_BF16: {
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++)
      dst[i] = rs_bf16_to_fp32 (h[i]);
    break;
  }
  case RS_TYPE_Q4_0:   DEQ_BLOCKS (RsBlockQ4_0,  rs_block_dequant_q4_0);   break;
  case RS_TYPE_Q4_1:   DEQ_BLOCKS (RsBlockQ4_1,  rs_block_dequant_q4_1);   break;
  case RS_TYPE_Q5_0:   DEQ_BLOCKS (RsBlockQ5_0,  rs_block_dequant_q5_0);   break;
  case RS_TYPE_Q5_1:   DEQ_BLOCKS (RsBlockQ5_1,  rs_block_dequant_q5_1);   break;
  case RS_TYPE_Q8_0:   DEQ_BLOCKS (RsBlockQ8_0,  rs_block_dequant_q8_0);   break;
  case RS_TYPE_Q8_1:   DEQ_BLOCKS (RsBlockQ8_1,  rs_block_dequant_q8_1);   break;
  case RS_TYPE_Q2_K:   DEQ_BLOCKS (RsBlockQ2K,   rs_block_dequant_q2_k);   break;
  case RS_TYPE_Q3_K:   DEQ_BLOCKS (RsBlockQ3K,   rs_block_dequant_q3_k);   break;
  case RS_TYPE_Q4_K:   DEQ_BLOCKS (RsBlockQ4K,   rs_block_dequant_q4_k);   break;
  case RS_TYPE_Q5_K:   DEQ_BLOCKS (RsBlockQ5K,   rs_block_dequant_q5_k);   break;
  case RS_TYPE_Q6_K:   DEQ_BLOCKS (RsBlockQ6K,   rs_block_dequant_q6_k);   break;
  case RS_TYPE_Q8_K:   DEQ_BLOCKS (RsBlockQ8K,   rs_block_dequant_q8_k);   break;
  case RS_TYPE_IQ4_NL: DEQ_BLOCKS (RsBlockIQ4NL, rs_block_dequant_iq4_nl); break;
  case RS_TYPE_IQ4_XS: DEQ_BLOCKS (RsBlockIQ4XS, rs_block_dequant_iq4_xs); break;
  case RS_TYPE_MXFP4:  DEQ_BLOCKS (RsBlockMXFP4, rs_block_dequant_mxfp4);  break;
  default:
    g_critical ("rs_dequantize_row: unsupported tensor type %s", rs_type_name ((int) type));
    break;
  }
#undef DEQ_BLOCKS
}

void
rs_dequantize_row (RsType type, const void *src, float *dst, int64_t n)
{
  const RsTypeTraits *t = rs_type_traits ((int) type);
  g_return_if_fail (t->known && n % t->block_size == 0);
  init_dispatch ();
  if (dequant_simd_table[type])
    dequant_simd_table[type] (src, dst, n);
  else
    rs_dequantize_row_scalar (type, src, dst, n);
}

/* ------------------------------------------------------------------ */
/* round-to-nearest quantisation                                       */

static inline int
clampi (int v, int lo, int hi)
{
  return v < lo ? lo : v > hi ? hi : v;
}

/* Round half to even (default FP environment); |x| must fit an int. */
static inline int
round_int (float x)
{
  return (int) lrintf (x);
}

/* Element with the largest magnitude, with its sign. */
static float
signed_absmax (const float *x, int n)
{
  float amax = 0.0f, max = 0.0f;
  for (int i = 0; i < n; i++) {
    if (fabsf (x[i]) > amax) {
      amax = fabsf (x[i]);
      max = x[i];
    }
  }
  return max;
}

static float
absmax (const float *x, int n)
{
  float amax = 0.0f;
  for (int i = 0; i < n; i++)
    amax = fmaxf (amax, fabsf (x[i]));
  return amax;
}

/* Index of the table entry whose value * d is nearest to x. */
static int
best_index (const int8_t table[16], float d, float x)
{
  int best = 0;
  float best_err = fabsf ((float) table[0] * d - x);
  for (int i = 1; i < 16; i++) {
    float err = fabsf ((float) table[i] * d - x);
    if (err < best_err) {
      best_err = err;
      best = i;
    }
  }
  return best;
}

/* Writes nibble-layout quants: q[l] | q[l + n/2] << 4 for l < n/2. */
static void
pack_nibbles (const uint8_t *q, uint8_t *qs, int n)
{
  for (int l = 0; l < n / 2; l++)
    qs[l] = (uint8_t) (q[l] | (q[l + n / 2] << 4));
}

static void
quantize_q4_0 (const float *x, RsBlockQ4_0 *b)
{
  /* The signed extreme maps to -8 so the full range -8..7 is used. */
  const float max = signed_absmax (x, 32);
  const float d = max / -8.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  uint8_t q[32];
  for (int l = 0; l < 32; l++)
    q[l] = (uint8_t) clampi (round_int (x[l] * id) + 8, 0, 15);
  b->d = rs_fp32_to_fp16 (d);
  pack_nibbles (q, b->qs, 32);
}

static void
min_max (const float *x, int n, float *mn, float *mx)
{
  *mn = x[0];
  *mx = x[0];
  for (int i = 1; i < n; i++) {
    *mn = fminf (*mn, x[i]);
    *mx = fmaxf (*mx, x[i]);
  }
}

static void
quantize_q4_1 (const float *x, RsBlockQ4_1 *b)
{
  float mn, mx;
  min_max (x, 32, &mn, &mx);
  const float d = (mx - mn) / 15.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  uint8_t q[32];
  for (int l = 0; l < 32; l++)
    q[l] = (uint8_t) clampi (round_int ((x[l] - mn) * id), 0, 15);
  b->d = rs_fp32_to_fp16 (d);
  b->m = rs_fp32_to_fp16 (mn);
  pack_nibbles (q, b->qs, 32);
}

static void
store_q5_high_bits (const uint8_t q[32], uint8_t qh[4])
{
  uint32_t h = 0;
  for (int l = 0; l < 32; l++)
    h |= (uint32_t) (q[l] >> 4) << l;
  for (int i = 0; i < 4; i++)
    qh[i] = (uint8_t) (h >> (8 * i));
}

static void
quantize_q5_0 (const float *x, RsBlockQ5_0 *b)
{
  const float max = signed_absmax (x, 32);
  const float d = max / -16.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  uint8_t q[32], lo[32];
  for (int l = 0; l < 32; l++) {
    q[l] = (uint8_t) clampi (round_int (x[l] * id) + 16, 0, 31);
    lo[l] = q[l] & 0xF;
  }
  b->d = rs_fp32_to_fp16 (d);
  store_q5_high_bits (q, b->qh);
  pack_nibbles (lo, b->qs, 32);
}

static void
quantize_q5_1 (const float *x, RsBlockQ5_1 *b)
{
  float mn, mx;
  min_max (x, 32, &mn, &mx);
  const float d = (mx - mn) / 31.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  uint8_t q[32], lo[32];
  for (int l = 0; l < 32; l++) {
    q[l] = (uint8_t) clampi (round_int ((x[l] - mn) * id), 0, 31);
    lo[l] = q[l] & 0xF;
  }
  b->d = rs_fp32_to_fp16 (d);
  b->m = rs_fp32_to_fp16 (mn);
  store_q5_high_bits (q, b->qh);
  pack_nibbles (lo, b->qs, 32);
}

static void
quantize_q8_0 (const float *x, RsBlockQ8_0 *b)
{
  const float d = absmax (x, 32) / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int l = 0; l < 32; l++)
    b->qs[l] = (int8_t) roundf (x[l] * id);
  b->d = rs_fp32_to_fp16 (d);
}

static void
quantize_q8_1 (const float *x, RsBlockQ8_1 *b)
{
  const float d = absmax (x, 32) / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  int sum = 0;
  for (int l = 0; l < 32; l++) {
    b->qs[l] = (int8_t) roundf (x[l] * id);
    sum += b->qs[l];
  }
  b->d = rs_fp32_to_fp16 (d);
  b->s = rs_fp32_to_fp16 ((float) sum * d);
}

static void
quantize_q8_k (const float *x, RsBlockQ8K *b)
{
  const float amax = absmax (x, 256);
  const float d = amax / 127.0f;
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  for (int l = 0; l < 256; l++)
    b->qs[l] = (int8_t) clampi (round_int (x[l] * id), -127, 127);
  for (int j = 0; j < 16; j++) {
    int s = 0;
    for (int l = 0; l < 16; l++)
      s += b->qs[16 * j + l];
    b->bsums[j] = (int16_t) s;
  }
  b->d = d;
}

/* Packs 256 2-bit values the Q2_K/Q3_K way: qs[32*c + l] holds elements
 * 128*c + 32*s + l at bit 2*s. */
static void
pack_2bit_256 (const uint8_t *q, uint8_t *qs)
{
  for (int c = 0; c < 2; c++)
    for (int l = 0; l < 32; l++)
      qs[32 * c + l] = (uint8_t) (q[128 * c + l] | (q[128 * c + l + 32] << 2) |
                                  (q[128 * c + l + 64] << 4) | (q[128 * c + l + 96] << 6));
}

static void
quantize_q2_k (const float *x, RsBlockQ2K *b)
{
  float scale[16], minv[16], max_scale = 0.0f, max_min = 0.0f;
  /* Per 16 values: x ~ scale * q - min with q in 0..3 and min >= 0. */
  for (int j = 0; j < 16; j++) {
    float mn, mx;
    min_max (x + 16 * j, 16, &mn, &mx);
    mn = fminf (mn, 0.0f);
    scale[j] = (mx - mn) / 3.0f;
    minv[j] = -mn;
    max_scale = fmaxf (max_scale, scale[j]);
    max_min = fmaxf (max_min, minv[j]);
  }
  const float d = max_scale / 15.0f, dmin = max_min / 15.0f;
  b->d = rs_fp32_to_fp16 (d);
  b->dmin = rs_fp32_to_fp16 (dmin);
  const float dq = rs_fp16_to_fp32 (b->d), dminq = rs_fp16_to_fp32 (b->dmin);
  uint8_t q[256];
  for (int j = 0; j < 16; j++) {
    int ls = d > 0.0f ? clampi (round_int (scale[j] / d), 0, 15) : 0;
    int lm = dmin > 0.0f ? clampi (round_int (minv[j] / dmin), 0, 15) : 0;
    b->scales[j] = (uint8_t) (ls | (lm << 4));
    const float dl = dq * (float) ls, ml = dminq * (float) lm;
    for (int l = 0; l < 16; l++)
      q[16 * j + l] = dl > 0.0f ? (uint8_t) clampi (round_int ((x[16 * j + l] + ml) / dl), 0, 3) : 0;
  }
  pack_2bit_256 (q, b->qs);
}

static void
quantize_q3_k (const float *x, RsBlockQ3K *b)
{
  float scale[16], max_scale = 0.0f;
  /* Per 16 values: the signed extreme maps to q = -4 (range -4..3). */
  for (int j = 0; j < 16; j++) {
    scale[j] = signed_absmax (x + 16 * j, 16) / -4.0f;
    if (fabsf (scale[j]) > fabsf (max_scale))
      max_scale = scale[j];
  }
  memset (b->scales, 0, sizeof b->scales);
  const float d = max_scale / -32.0f;
  b->d = rs_fp32_to_fp16 (d);
  const float dq = rs_fp16_to_fp32 (b->d);
  for (int j = 0; j < 16; j++) {
    int ls = d != 0.0f ? clampi (round_int (scale[j] / d), -32, 31) : 0;
    int u = ls + 32;
    if (j < 8)
      b->scales[j] |= (uint8_t) (u & 0xF);
    else
      b->scales[j - 8] |= (uint8_t) ((u & 0xF) << 4);
    b->scales[8 + j % 4] |= (uint8_t) ((u >> 4) << (2 * (j / 4)));
  }
  uint8_t q[256];
  memset (b->hmask, 0, sizeof b->hmask);
  for (int j = 0; j < 16; j++) {
    const float dl = dq * (float) rs_q3k_scale (b->scales, j);
    for (int l = 0; l < 16; l++) {
      const int e = 16 * j + l;
      int v = dl != 0.0f ? clampi (round_int (x[e] / dl), -4, 3) + 4 : 4;
      if (v > 3) {
        b->hmask[e % 32] |= (uint8_t) (1u << (e / 32));
        v -= 4;
      }
      q[e] = (uint8_t) v;
    }
  }
  pack_2bit_256 (q, b->qs);
}

/* Q4_K/Q5_K share the scale scheme: per 32 values x ~ sc * q - m with
 * q in 0..qmax; 6-bit sc and m against fp16 d and dmin. */
static void
quantize_k_scales (const float *x, int qmax, uint8_t scales[12], uint16_t *d_out,
                   uint16_t *dmin_out, uint8_t q[256])
{
  float scale[8], minv[8], max_scale = 0.0f, max_min = 0.0f;
  for (int j = 0; j < 8; j++) {
    float mn, mx;
    min_max (x + 32 * j, 32, &mn, &mx);
    mn = fminf (mn, 0.0f);
    scale[j] = (mx - mn) / (float) qmax;
    minv[j] = -mn;
    max_scale = fmaxf (max_scale, scale[j]);
    max_min = fmaxf (max_min, minv[j]);
  }
  const float d = max_scale / 63.0f, dmin = max_min / 63.0f;
  *d_out = rs_fp32_to_fp16 (d);
  *dmin_out = rs_fp32_to_fp16 (dmin);
  const float dq = rs_fp16_to_fp32 (*d_out), dminq = rs_fp16_to_fp32 (*dmin_out);
  memset (scales, 0, 12);
  for (int j = 0; j < 8; j++) {
    int ls = d > 0.0f ? clampi (round_int (scale[j] / d), 0, 63) : 0;
    int lm = dmin > 0.0f ? clampi (round_int (minv[j] / dmin), 0, 63) : 0;
    if (j < 4) {
      scales[j] = (uint8_t) ls;
      scales[j + 4] = (uint8_t) lm;
    } else {
      scales[j + 4] = (uint8_t) ((ls & 0xF) | ((lm & 0xF) << 4));
      scales[j - 4] |= (uint8_t) ((ls >> 4) << 6);
      scales[j] |= (uint8_t) ((lm >> 4) << 6);
    }
    const float dl = dq * (float) ls, ml = dminq * (float) lm;
    for (int l = 0; l < 32; l++)
      q[32 * j + l] = dl > 0.0f ? (uint8_t) clampi (round_int ((x[32 * j + l] + ml) / dl), 0, qmax) : 0;
  }
}

static void
quantize_q4_k (const float *x, RsBlockQ4K *b)
{
  uint8_t q[256];
  quantize_k_scales (x, 15, b->scales, &b->d, &b->dmin, q);
  for (int j = 0; j < 4; j++)
    for (int l = 0; l < 32; l++)
      b->qs[32 * j + l] = (uint8_t) (q[64 * j + l] | (q[64 * j + 32 + l] << 4));
}

static void
quantize_q5_k (const float *x, RsBlockQ5K *b)
{
  uint8_t q[256];
  quantize_k_scales (x, 31, b->scales, &b->d, &b->dmin, q);
  memset (b->qh, 0, sizeof b->qh);
  for (int e = 0; e < 256; e++)
    if (q[e] & 16)
      b->qh[e % 32] |= (uint8_t) (1u << (e / 32));
  for (int j = 0; j < 4; j++)
    for (int l = 0; l < 32; l++)
      b->qs[32 * j + l] = (uint8_t) ((q[64 * j + l] & 0xF) | ((q[64 * j + 32 + l] & 0xF) << 4));
}

static void
quantize_q6_k (const float *x, RsBlockQ6K *b)
{
  float scale[16], max_scale = 0.0f;
  /* Per 16 values the signed extreme maps to q = -32 (range -32..31). */
  for (int j = 0; j < 16; j++) {
    scale[j] = signed_absmax (x + 16 * j, 16) / -32.0f;
    if (fabsf (scale[j]) > fabsf (max_scale))
      max_scale = scale[j];
  }
  const float d = max_scale / -128.0f;
  b->d = rs_fp32_to_fp16 (d);
  const float dq = rs_fp16_to_fp32 (b->d);
  uint8_t q[256];
  for (int j = 0; j < 16; j++) {
    int ls = d != 0.0f ? clampi (round_int (scale[j] / d), -128, 127) : 0;
    b->scales[j] = (int8_t) ls;
    const float dl = dq * (float) ls;
    for (int l = 0; l < 16; l++)
      q[16 * j + l] = (uint8_t) (dl != 0.0f ? clampi (round_int (x[16 * j + l] / dl), -32, 31) + 32 : 32);
  }
  for (int c = 0; c < 2; c++) {
    for (int l = 0; l < 32; l++) {
      const uint8_t *qc = q + 128 * c;
      b->ql[64 * c + l]      = (uint8_t) ((qc[l] & 0xF) | ((qc[l + 64] & 0xF) << 4));
      b->ql[64 * c + 32 + l] = (uint8_t) ((qc[l + 32] & 0xF) | ((qc[l + 96] & 0xF) << 4));
      b->qh[32 * c + l] = (uint8_t) ((qc[l] >> 4) | ((qc[l + 32] >> 4) << 2) |
                                     ((qc[l + 64] >> 4) << 4) | ((qc[l + 96] >> 4) << 6));
    }
  }
}

/* IQ4_NL values for 32 inputs at scale d; returns the squared error. */
static float
iq4_pick (const float *x, float d, uint8_t q[32])
{
  float err = 0.0f;
  for (int l = 0; l < 32; l++) {
    q[l] = (uint8_t) best_index (rs_kvalues_iq4nl, d, x[l]);
    float e = (float) rs_kvalues_iq4nl[q[l]] * d - x[l];
    err += e * e;
  }
  return err;
}

/* Scale for 32 values on the IQ4_NL grid: start with the signed extreme on
 * -127, then try the least-squares refit of that assignment. */
static float
iq4_block_scale (const float *x)
{
  const float max = signed_absmax (x, 32);
  float d = max / -127.0f;
  if (d == 0.0f)
    return 0.0f;
  uint8_t q[32];
  float err = iq4_pick (x, d, q);
  float sxq = 0.0f, sqq = 0.0f;
  for (int l = 0; l < 32; l++) {
    float t = (float) rs_kvalues_iq4nl[q[l]];
    sxq += x[l] * t;
    sqq += t * t;
  }
  const float d2 = sxq / sqq;
  if (iq4_pick (x, d2, q) < err)
    d = d2;
  return d;
}

static void
quantize_iq4_nl (const float *x, RsBlockIQ4NL *b)
{
  b->d = rs_fp32_to_fp16 (iq4_block_scale (x));
  uint8_t q[32];
  iq4_pick (x, rs_fp16_to_fp32 (b->d), q);
  pack_nibbles (q, b->qs, 32);
}

static void
quantize_iq4_xs (const float *x, RsBlockIQ4XS *b)
{
  float scale[8], max_scale = 0.0f;
  for (int ib = 0; ib < 8; ib++) {
    scale[ib] = iq4_block_scale (x + 32 * ib);
    if (fabsf (scale[ib]) > fabsf (max_scale))
      max_scale = scale[ib];
  }
  const float d = max_scale / -32.0f;
  b->d = rs_fp32_to_fp16 (d);
  const float dq = rs_fp16_to_fp32 (b->d);
  b->scales_h = 0;
  memset (b->scales_l, 0, sizeof b->scales_l);
  for (int ib = 0; ib < 8; ib++) {
    int ls = d != 0.0f ? clampi (round_int (scale[ib] / d), -32, 31) : 0;
    int u = ls + 32;
    b->scales_l[ib / 2] |= (uint8_t) ((u & 0xF) << (4 * (ib % 2)));
    b->scales_h |= (uint16_t) ((u >> 4) << (2 * ib));
    uint8_t q[32];
    iq4_pick (x + 32 * ib, dq * (float) ls, q);
    pack_nibbles (q, b->qs + 16 * ib, 32);
  }
}

static void
quantize_mxfp4 (const float *x, RsBlockMXFP4 *b)
{
  /* Shared exponent so the largest magnitude lands in [4, 8) units of the
   * block scale, i.e. near the top E2M1 value 6. */
  const float amax = absmax (x, 32);
  int e = 0;
  if (amax > 0.0f)
    e = clampi ((int) floorf (log2f (amax)) - 2 + 127, 0, 254);
  b->e = (uint8_t) e;
  const float d = rs_e8m0_to_fp32_half (b->e);
  uint8_t q[32];
  for (int l = 0; l < 32; l++)
    q[l] = (uint8_t) best_index (rs_kvalues_mxfp4, d, x[l]);
  pack_nibbles (q, b->qs, 32);
}

bool
rs_quantize_row (RsType type, const float *src, void *dst, int64_t n)
{
  const RsTypeTraits *t = rs_type_traits ((int) type);
  if (!t->known || n % t->block_size != 0)
    return false;
  const int64_t nb = n / t->block_size;

#define Q_BLOCKS(BT, fn)                                      \
  do {                                                        \
    BT *b = (BT *) dst;                                       \
    for (int64_t i = 0; i < nb; i++)                          \
      fn (src + i * t->block_size, &b[i]);                    \
  } while (0)

  switch (type) {
  case RS_TYPE_F32:
    memcpy (dst, src, (size_t) n * sizeof (float));
    return true;
  case RS_TYPE_F16: {
    uint16_t *h = dst;
    for (int64_t i = 0; i < n; i++)
      h[i] = rs_fp32_to_fp16 (src[i]);
    return true;
  }
  case RS_TYPE_BF16: {
    uint16_t *h = dst;
    for (int64_t i = 0; i < n; i++)
      h[i] = rs_fp32_to_bf16 (src[i]);
    return true;
  }
  case RS_TYPE_Q4_0:   Q_BLOCKS (RsBlockQ4_0,  quantize_q4_0);   return true;
  case RS_TYPE_Q4_1:   Q_BLOCKS (RsBlockQ4_1,  quantize_q4_1);   return true;
  case RS_TYPE_Q5_0:   Q_BLOCKS (RsBlockQ5_0,  quantize_q5_0);   return true;
  case RS_TYPE_Q5_1:   Q_BLOCKS (RsBlockQ5_1,  quantize_q5_1);   return true;
  case RS_TYPE_Q8_0:   Q_BLOCKS (RsBlockQ8_0,  quantize_q8_0);   return true;
  case RS_TYPE_Q8_1:   Q_BLOCKS (RsBlockQ8_1,  quantize_q8_1);   return true;
  case RS_TYPE_Q2_K:   Q_BLOCKS (RsBlockQ2K,   quantize_q2_k);   return true;
  case RS_TYPE_Q3_K:   Q_BLOCKS (RsBlockQ3K,   quantize_q3_k);   return true;
  case RS_TYPE_Q4_K:   Q_BLOCKS (RsBlockQ4K,   quantize_q4_k);   return true;
  case RS_TYPE_Q5_K:   Q_BLOCKS (RsBlockQ5K,   quantize_q5_k);   return true;
  case RS_TYPE_Q6_K:   Q_BLOCKS (RsBlockQ6K,   quantize_q6_k);   return true;
  case RS_TYPE_Q8_K:   Q_BLOCKS (RsBlockQ8K,   quantize_q8_k);   return true;
  case RS_TYPE_IQ4_NL: Q_BLOCKS (RsBlockIQ4NL, quantize_iq4_nl); return true;
  case RS_TYPE_IQ4_XS: Q_BLOCKS (RsBlockIQ4XS, quantize_iq4_xs); return true;
  case RS_TYPE_MXFP4:  Q_BLOCKS (RsBlockMXFP4, quantize_mxfp4);  return true;
  default:
    return false;
  }
#undef Q_BLOCKS
}

/* ------------------------------------------------------------------ */
/* activations                                                         */

RsType
rs_act_type (RsType weight_type)
{
  switch (weight_type) {
  case RS_TYPE_Q4_0:
  case RS_TYPE_Q5_0:
  case RS_TYPE_Q8_0:
  case RS_TYPE_IQ4_NL:
  case RS_TYPE_MXFP4:
    return RS_TYPE_Q8_0;
  case RS_TYPE_Q4_1:
  case RS_TYPE_Q5_1:
    return RS_TYPE_Q8_1;
  case RS_TYPE_Q2_K:
  case RS_TYPE_Q3_K:
  case RS_TYPE_Q4_K:
  case RS_TYPE_Q5_K:
  case RS_TYPE_Q6_K:
  case RS_TYPE_IQ4_XS:
    return RS_TYPE_Q8_K;
  default:
    return RS_TYPE_F32;
  }
}

static RsQuantActFn quant_act_simd_table[RS_TYPE_COUNT];

void
rs_quantize_act (RsType act_type, const float *src, void *dst, int64_t n)
{
  switch (act_type) {
  case RS_TYPE_Q8_0:
  case RS_TYPE_Q8_1:
  case RS_TYPE_Q8_K:
    init_dispatch ();
    if (quant_act_simd_table[act_type] && n % rs_type_traits ((int) act_type)->block_size == 0) {
      quant_act_simd_table[act_type] (src, dst, n);
      break;
    }
    /* fall through */
  case RS_TYPE_F32:
    if (!rs_quantize_row (act_type, src, dst, n))
      g_critical ("rs_quantize_act: %" G_GINT64_FORMAT " is not a multiple of the %s block",
                  n, rs_type_name ((int) act_type));
    break;
  default:
    g_critical ("rs_quantize_act: %s is not an activation type", rs_type_name ((int) act_type));
    break;
  }
}

/* ------------------------------------------------------------------ */
/* scalar reference dot kernels                                        */

static float
dot_f32_scalar (int64_t n, const void *w, const void *act)
{
  const float *x = w, *y = act;
  float sum = 0.0f;
  for (int64_t i = 0; i < n; i++)
    sum += x[i] * y[i];
  return sum;
}

static float
dot_f16_scalar (int64_t n, const void *w, const void *act)
{
  const uint16_t *x = w;
  const float *y = act;
  float sum = 0.0f;
  for (int64_t i = 0; i < n; i++)
    sum += rs_fp16_to_fp32 (x[i]) * y[i];
  return sum;
}

static float
dot_bf16_scalar (int64_t n, const void *w, const void *act)
{
  const uint16_t *x = w;
  const float *y = act;
  float sum = 0.0f;
  for (int64_t i = 0; i < n; i++)
    sum += rs_bf16_to_fp32 (x[i]) * y[i];
  return sum;
}

static float
dot_q4_0_scalar (int64_t n, const void *w, const void *act)
{
  const RsBlockQ4_0 *x = w;
  const RsBlockQ8_0 *y = act;
  float sum = 0.0f;
  for (int64_t i = 0; i < n / 32; i++) {
    int isum = 0;
    for (int l = 0; l < 16; l++) {
      isum += ((x[i].qs[l] & 0xF) - 8) * y[i].qs[l];
      isum += ((x[i].qs[l] >> 4) - 8) * y[i].qs[l + 16];
    }
    sum += (float) isum * (rs_fp16_to_fp32 (x[i].d) * rs_fp16_to_fp32 (y[i].d));
  }
  return sum;
}

static float
dot_q4_1_scalar (int64_t n, const void *w, const void *act)
{
  const RsBlockQ4_1 *x = w;
  const RsBlockQ8_1 *y = act;
  float sum = 0.0f;
  for (int64_t i = 0; i < n / 32; i++) {
    int isum = 0;
    for (int l = 0; l < 16; l++) {
      isum += (x[i].qs[l] & 0xF) * y[i].qs[l];
      isum += (x[i].qs[l] >> 4) * y[i].qs[l + 16];
    }
    /* sum((q*d + m) * qy*dy) = d*dy*sum(q*qy) + m*(dy*sum(qy)) */
    sum += (float) isum * (rs_fp16_to_fp32 (x[i].d) * rs_fp16_to_fp32 (y[i].d)) +
           rs_fp16_to_fp32 (x[i].m) * rs_fp16_to_fp32 (y[i].s);
  }
  return sum;
}

static float
dot_q5_0_scalar (int64_t n, const void *w, const void *act)
{
  const RsBlockQ5_0 *x = w;
  const RsBlockQ8_0 *y = act;
  float sum = 0.0f;
  for (int64_t i = 0; i < n / 32; i++) {
    const uint32_t qh = rs_load_u32le (x[i].qh);
    int isum = 0;
    for (int l = 0; l < 16; l++) {
      isum += (((x[i].qs[l] & 0xF) | (((qh >> l) & 1) << 4)) - 16) * y[i].qs[l];
      isum += (((x[i].qs[l] >> 4) | (((qh >> (l + 16)) & 1) << 4)) - 16) * y[i].qs[l + 16];
    }
    sum += (float) isum * (rs_fp16_to_fp32 (x[i].d) * rs_fp16_to_fp32 (y[i].d));
  }
  return sum;
}

static float
dot_q5_1_scalar (int64_t n, const void *w, const void *act)
{
  const RsBlockQ5_1 *x = w;
  const RsBlockQ8_1 *y = act;
  float sum = 0.0f;
  for (int64_t i = 0; i < n / 32; i++) {
    const uint32_t qh = rs_load_u32le (x[i].qh);
    int isum = 0;
    for (int l = 0; l < 16; l++) {
      isum += (int) ((x[i].qs[l] & 0xF) | (((qh >> l) & 1) << 4)) * y[i].qs[l];
      isum += (int) ((x[i].qs[l] >> 4) | (((qh >> (l + 16)) & 1) << 4)) * y[i].qs[l + 16];
    }
    sum += (float) isum * (rs_fp16_to_fp32 (x[i].d) * rs_fp16_to_fp32 (y[i].d)) +
           rs_fp16_to_fp32 (x[i].m) * rs_fp16_to_fp32 (y[i].s);
  }
  return sum;
}

static float
dot_q8_0_scalar (int64_t n, const void *w, const void *act)
{
  const RsBlockQ8_0 *x = w;
  const RsBlockQ8_0 *y = act;
  float sum = 0.0f;
  for (int64_t i = 0; i < n / 32; i++) {
    int isum = 0;
    for (int l = 0; l < 32; l++)
      isum += x[i].qs[l] * y[i].qs[l];
    sum += (float) isum * (rs_fp16_to_fp32 (x[i].d) * rs_fp16_to_fp32 (y[i].d));
  }
  return sum;
}

static float
dot_iq4_nl_scalar (int64_t n, const void *w, const void *act)
{
  const RsBlockIQ4NL *x = w;
  const RsBlockQ8_0 *y = act;
  float sum = 0.0f;
  for (int64_t i = 0; i < n / 32; i++) {
    int isum = 0;
    for (int l = 0; l < 16; l++) {
      isum += rs_kvalues_iq4nl[x[i].qs[l] & 0xF] * y[i].qs[l];
      isum += rs_kvalues_iq4nl[x[i].qs[l] >> 4] * y[i].qs[l + 16];
    }
    sum += (float) isum * (rs_fp16_to_fp32 (x[i].d) * rs_fp16_to_fp32 (y[i].d));
  }
  return sum;
}

static float
dot_mxfp4_scalar (int64_t n, const void *w, const void *act)
{
  const RsBlockMXFP4 *x = w;
  const RsBlockQ8_0 *y = act;
  float sum = 0.0f;
  for (int64_t i = 0; i < n / 32; i++) {
    int isum = 0;
    for (int l = 0; l < 16; l++) {
      isum += rs_kvalues_mxfp4[x[i].qs[l] & 0xF] * y[i].qs[l];
      isum += rs_kvalues_mxfp4[x[i].qs[l] >> 4] * y[i].qs[l + 16];
    }
    sum += (float) isum * (rs_e8m0_to_fp32_half (x[i].e) * rs_fp16_to_fp32 (y[i].d));
  }
  return sum;
}

static float
dot_q2_k_scalar (int64_t n, const void *w, const void *act)
{
  const RsBlockQ2K *x = w;
  const RsBlockQ8K *y = act;
  float sum = 0.0f;
  for (int64_t i = 0; i < n / 256; i++) {
    int isum = 0, msum = 0;
    for (int j = 0; j < 16; j++) {          /* sub-block of 16: e = 16*j + l */
      const int c = j / 8, s = (j / 2) % 4, h = j % 2;
      int sub = 0;
      for (int l = 0; l < 16; l++)
        sub += ((x[i].qs[32 * c + 16 * h + l] >> (2 * s)) & 3) * y[i].qs[16 * j + l];
      isum += (x[i].scales[j] & 0xF) * sub;
      msum += (x[i].scales[j] >> 4) * y[i].bsums[j];
    }
    sum += y[i].d * (rs_fp16_to_fp32 (x[i].d) * (float) isum - rs_fp16_to_fp32 (x[i].dmin) * (float) msum);
  }
  return sum;
}

static float
dot_q3_k_scalar (int64_t n, const void *w, const void *act)
{
  const RsBlockQ3K *x = w;
  const RsBlockQ8K *y = act;
  float sum = 0.0f;
  for (int64_t i = 0; i < n / 256; i++) {
    int isum = 0;
    for (int j = 0; j < 16; j++) {
      const int c = j / 8, s = (j / 2) % 4, h = j % 2;
      int sub = 0;
      for (int l = 0; l < 16; l++) {
        const int k = 16 * h + l;
        const int q = ((x[i].qs[32 * c + k] >> (2 * s)) & 3) - ((x[i].hmask[k] >> (4 * c + s)) & 1 ? 0 : 4);
        sub += q * y[i].qs[16 * j + l];
      }
      isum += rs_q3k_scale (x[i].scales, j) * sub;
    }
    sum += y[i].d * rs_fp16_to_fp32 (x[i].d) * (float) isum;
  }
  return sum;
}

static float
dot_q4_k_scalar (int64_t n, const void *w, const void *act)
{
  const RsBlockQ4K *x = w;
  const RsBlockQ8K *y = act;
  float sum = 0.0f;
  for (int64_t i = 0; i < n / 256; i++) {
    int isum = 0, msum = 0;
    for (int j = 0; j < 8; j++) {           /* sub-block of 32: e = 32*j + l */
      uint8_t sc, m;
      rs_get_scale_min_k4 (j, x[i].scales, &sc, &m);
      const uint8_t *q = x[i].qs + 32 * (j / 2);
      const int shift = 4 * (j % 2);
      int sub = 0;
      for (int l = 0; l < 32; l++)
        sub += ((q[l] >> shift) & 0xF) * y[i].qs[32 * j + l];
      isum += sc * sub;
      msum += m * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
    }
    sum += y[i].d * (rs_fp16_to_fp32 (x[i].d) * (float) isum - rs_fp16_to_fp32 (x[i].dmin) * (float) msum);
  }
  return sum;
}

static float
dot_q5_k_scalar (int64_t n, const void *w, const void *act)
{
  const RsBlockQ5K *x = w;
  const RsBlockQ8K *y = act;
  float sum = 0.0f;
  for (int64_t i = 0; i < n / 256; i++) {
    int isum = 0, msum = 0;
    for (int j = 0; j < 8; j++) {
      uint8_t sc, m;
      rs_get_scale_min_k4 (j, x[i].scales, &sc, &m);
      const uint8_t *q = x[i].qs + 32 * (j / 2);
      const int shift = 4 * (j % 2);
      int sub = 0;
      for (int l = 0; l < 32; l++) {
        const int v = ((q[l] >> shift) & 0xF) | (((x[i].qh[l] >> j) & 1) << 4);
        sub += v * y[i].qs[32 * j + l];
      }
      isum += sc * sub;
      msum += m * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
    }
    sum += y[i].d * (rs_fp16_to_fp32 (x[i].d) * (float) isum - rs_fp16_to_fp32 (x[i].dmin) * (float) msum);
  }
  return sum;
}

static float
dot_q6_k_scalar (int64_t n, const void *w, const void *act)
{
  const RsBlockQ6K *x = w;
  const RsBlockQ8K *y = act;
  float sum = 0.0f;
  for (int64_t i = 0; i < n / 256; i++) {
    int isum = 0;
    for (int j = 0; j < 16; j++) {          /* e = 16*j + l = 128*c + 32*s + k */
      const int c = j / 8, s = (j / 2) % 4;
      int sub = 0;
      for (int l = 0; l < 16; l++) {
        const int k = 16 * (j % 2) + l;
        const int lo = (x[i].ql[64 * c + 32 * (s % 2) + k] >> (4 * (s / 2))) & 0xF;
        const int hi = (x[i].qh[32 * c + k] >> (2 * s)) & 3;
        sub += ((lo | (hi << 4)) - 32) * y[i].qs[16 * j + l];
      }
      isum += x[i].scales[j] * sub;
    }
    sum += y[i].d * rs_fp16_to_fp32 (x[i].d) * (float) isum;
  }
  return sum;
}

static float
dot_iq4_xs_scalar (int64_t n, const void *w, const void *act)
{
  const RsBlockIQ4XS *x = w;
  const RsBlockQ8K *y = act;
  float sum = 0.0f;
  for (int64_t i = 0; i < n / 256; i++) {
    int isum = 0;
    for (int ib = 0; ib < 8; ib++) {
      const uint8_t *qs = x[i].qs + 16 * ib;
      const int8_t *q8 = y[i].qs + 32 * ib;
      int sub = 0;
      for (int l = 0; l < 16; l++) {
        sub += rs_kvalues_iq4nl[qs[l] & 0xF] * q8[l];
        sub += rs_kvalues_iq4nl[qs[l] >> 4] * q8[l + 16];
      }
      isum += rs_iq4xs_scale (&x[i], ib) * sub;
    }
    sum += y[i].d * rs_fp16_to_fp32 (x[i].d) * (float) isum;
  }
  return sum;
}

/* ------------------------------------------------------------------ */
/* dispatch                                                            */

typedef struct {
  RsVecDotFn fn;
  const char *name;
} DotImpl;

static const RsVecDotFn scalar_table[RS_TYPE_COUNT] = {
  [RS_TYPE_F32]    = dot_f32_scalar,
  [RS_TYPE_F16]    = dot_f16_scalar,
  [RS_TYPE_BF16]   = dot_bf16_scalar,
  [RS_TYPE_Q4_0]   = dot_q4_0_scalar,
  [RS_TYPE_Q4_1]   = dot_q4_1_scalar,
  [RS_TYPE_Q5_0]   = dot_q5_0_scalar,
  [RS_TYPE_Q5_1]   = dot_q5_1_scalar,
  [RS_TYPE_Q8_0]   = dot_q8_0_scalar,
  [RS_TYPE_Q2_K]   = dot_q2_k_scalar,
  [RS_TYPE_Q3_K]   = dot_q3_k_scalar,
  [RS_TYPE_Q4_K]   = dot_q4_k_scalar,
  [RS_TYPE_Q5_K]   = dot_q5_k_scalar,
  [RS_TYPE_Q6_K]   = dot_q6_k_scalar,
  [RS_TYPE_IQ4_NL] = dot_iq4_nl_scalar,
  [RS_TYPE_IQ4_XS] = dot_iq4_xs_scalar,
  [RS_TYPE_MXFP4]  = dot_mxfp4_scalar,
};

static const RsVecDotFn avx2_table[RS_TYPE_COUNT] = {
  [RS_TYPE_F32]    = rs_vec_dot_f32_avx2,
  [RS_TYPE_F16]    = rs_vec_dot_f16_avx2,
  [RS_TYPE_BF16]   = rs_vec_dot_bf16_avx2,
  [RS_TYPE_Q4_0]   = rs_vec_dot_q4_0_avx2,
  [RS_TYPE_Q4_1]   = rs_vec_dot_q4_1_avx2,
  [RS_TYPE_Q5_0]   = rs_vec_dot_q5_0_avx2,
  [RS_TYPE_Q5_1]   = rs_vec_dot_q5_1_avx2,
  [RS_TYPE_Q8_0]   = rs_vec_dot_q8_0_avx2,
  [RS_TYPE_Q2_K]   = rs_vec_dot_q2_k_avx2,
  [RS_TYPE_Q3_K]   = rs_vec_dot_q3_k_avx2,
  [RS_TYPE_Q4_K]   = rs_vec_dot_q4_k_avx2,
  [RS_TYPE_Q5_K]   = rs_vec_dot_q5_k_avx2,
  [RS_TYPE_Q6_K]   = rs_vec_dot_q6_k_avx2,
  [RS_TYPE_IQ4_NL] = rs_vec_dot_iq4_nl_avx2,
  [RS_TYPE_IQ4_XS] = rs_vec_dot_iq4_xs_avx2,
  [RS_TYPE_MXFP4]  = rs_vec_dot_mxfp4_avx2,
};

static const RsDequantFn dequant_avx2_table[RS_TYPE_COUNT] = {
  [RS_TYPE_F16]    = rs_dequant_f16_avx2,
  [RS_TYPE_BF16]   = rs_dequant_bf16_avx2,
  [RS_TYPE_Q4_0]   = rs_dequant_q4_0_avx2,
  [RS_TYPE_Q4_1]   = rs_dequant_q4_1_avx2,
  [RS_TYPE_Q5_0]   = rs_dequant_q5_0_avx2,
  [RS_TYPE_Q5_1]   = rs_dequant_q5_1_avx2,
  [RS_TYPE_Q8_0]   = rs_dequant_q8_0_avx2,
  [RS_TYPE_Q2_K]   = rs_dequant_q2_k_avx2,
  [RS_TYPE_Q3_K]   = rs_dequant_q3_k_avx2,
  [RS_TYPE_Q4_K]   = rs_dequant_q4_k_avx2,
  [RS_TYPE_Q5_K]   = rs_dequant_q5_k_avx2,
  [RS_TYPE_Q6_K]   = rs_dequant_q6_k_avx2,
  [RS_TYPE_IQ4_NL] = rs_dequant_iq4_nl_avx2,
  [RS_TYPE_IQ4_XS] = rs_dequant_iq4_xs_avx2,
  [RS_TYPE_MXFP4]  = rs_dequant_mxfp4_avx2,
};

/* Only where they measured faster than AVX2 (bench-quant). */
static const RsVecDotFn avx512_table[RS_TYPE_COUNT] = {
  [RS_TYPE_Q8_0]   = rs_vec_dot_q8_0_avx512,
  [RS_TYPE_Q4_K]   = rs_vec_dot_q4_k_avx512,
  [RS_TYPE_Q6_K]   = rs_vec_dot_q6_k_avx512,
  [RS_TYPE_Q5_K]   = rs_vec_dot_q5_k_avx512,
  [RS_TYPE_Q4_0]   = rs_vec_dot_q4_0_avx512,
  [RS_TYPE_IQ4_NL] = rs_vec_dot_iq4_nl_avx512,
  [RS_TYPE_MXFP4]  = rs_vec_dot_mxfp4_avx512,
  [RS_TYPE_Q2_K]   = rs_vec_dot_q2_k_avx512,
  [RS_TYPE_Q3_K]   = rs_vec_dot_q3_k_avx512,
  [RS_TYPE_IQ4_XS] = rs_vec_dot_iq4_xs_avx512,
};

static DotImpl best_table[RS_TYPE_COUNT];

static void
init_dispatch (void)
{
  static gsize done = 0;
  if (!g_once_init_enter (&done))
    return;
  const RsCpuFeatures *f = rs_cpu_features ();
  const bool avx2 = f->avx2 && f->fma && f->f16c;
  const bool avx512 = avx2 && f->avx512f && f->avx512bw && f->avx512vl && f->avx512vnni;
  for (int t = 0; t < RS_TYPE_COUNT; t++) {
    best_table[t].fn = scalar_table[t];
    best_table[t].name = scalar_table[t] ? "scalar" : NULL;
    if (avx2 && avx2_table[t]) {
      best_table[t].fn = avx2_table[t];
      best_table[t].name = "avx2";
    }
    if (avx512 && avx512_table[t]) {
      best_table[t].fn = avx512_table[t];
      best_table[t].name = "avx512vnni";
    }
    dequant_simd_table[t] = avx2 ? dequant_avx2_table[t] : NULL;
  }
  if (avx2) {
    quant_act_simd_table[RS_TYPE_Q8_0] = rs_quantize_act_q8_0_avx2;
    quant_act_simd_table[RS_TYPE_Q8_1] = rs_quantize_act_q8_1_avx2;
    quant_act_simd_table[RS_TYPE_Q8_K] = rs_quantize_act_q8_k_avx2;
  }
  g_once_init_leave (&done, 1);
}

RsVecDotFn
rs_vec_dot_fn (RsType weight_type)
{
  if ((int) weight_type < 0 || weight_type >= RS_TYPE_COUNT)
    return NULL;
  init_dispatch ();
  return best_table[weight_type].fn;
}

RsVecDotFn
rs_vec_dot_fn_scalar (RsType weight_type)
{
  if ((int) weight_type < 0 || weight_type >= RS_TYPE_COUNT)
    return NULL;
  return scalar_table[weight_type];
}

const char *
rs_vec_dot_impl_name (RsType weight_type)
{
  if ((int) weight_type < 0 || weight_type >= RS_TYPE_COUNT)
    return "none";
  init_dispatch ();
  return best_table[weight_type].name ? best_table[weight_type].name : "none";
}
