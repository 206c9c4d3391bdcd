/* rs-quant-block.h: GGUF tensor block layouts and per-block dequantisation.
 *
 * Every struct here is byte-for-byte the block ggml writes into GGUF files
 * (ggml-common.h); the static asserts pin the packed sizes. The inline
 * helpers dequantise exactly one block and are RS_HD, so the CUDA backend
 * runs the same code the CPU tests check. Keep this header valid C11 and
 * valid CUDA C++: plain loops, no VLAs, no designated initialisers, no
 * compound literals.
 *
 * Conventions used by the quantised formats (n = elements per block):
 *   - fp16 fields are raw IEEE binary16 bits (uint16_t), converted with
 *     rs_fp16_to_fp32 so the structs need no half type.
 *   - "nibble layout": byte qs[l] holds element l in its low nibble and
 *     element l + n/2 in its high nibble (Q4_0, Q4_1, Q5_*, IQ4_NL, MXFP4,
 *     and per 32-element sub-block in IQ4_XS).
 *   - K-quants group 256 elements into sub-blocks of 16 or 32 with small
 *     integer scales that are themselves scaled by fp16 super-block scales.
 *
 * The float expressions match ggml's dequantize_row_* operation for
 * operation, so results are bit-identical to llama.cpp's as long as the
 * compiler does not fuse a multiply and an add (Q4_1/Q5_1 "q*d + m",
 * K-quant "d*q - m"): the CPU SIMD code is built with -ffp-contract=off;
 * CUDA code that wants the same bits needs --fmad=false.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <stdint.h>

#include "rs-hd.h"

/* The block helpers promise their output does not overlap the block;
 * without it (and with -fno-strict-aliasing) every float store would
 * force the quants to be reloaded. __restrict__ is understood by GCC,
 * Clang and nvcc alike. */
#define RS_RESTRICT __restrict__

#ifdef __cplusplus
#define RS_STATIC_ASSERT(cond, msg) static_assert (cond, msg)
#else
#define RS_STATIC_ASSERT(cond, msg) _Static_assert (cond, msg)
#endif

#define RS_QK_K    256 /* K-quant super-block */
#define RS_QK4_0   32
#define RS_QK4_1   32
#define RS_QK5_0   32
#define RS_QK5_1   32
#define RS_QK8_0   32
#define RS_QK8_1   32
#define RS_QK4_NL  32
#define RS_QK_MXFP4 32

/* ---- block structs (field order and sizes are the file format) ---- */

typedef struct {
  uint16_t d;           /* fp16 scale */
  uint8_t  qs[16];      /* 32 x 4-bit, value = (q - 8) * d */
} RsBlockQ4_0;

typedef struct {
  uint16_t d;           /* fp16 scale */
  uint16_t m;           /* fp16 minimum, value = q * d + m */
  uint8_t  qs[16];
} RsBlockQ4_1;

typedef struct {
  uint16_t d;
  uint8_t  qh[4];       /* bit e (little-endian u32) = 5th bit of element e */
  uint8_t  qs[16];      /* value = (q5 - 16) * d */
} RsBlockQ5_0;

typedef struct {
  uint16_t d;
  uint16_t m;
  uint8_t  qh[4];
  uint8_t  qs[16];      /* value = q5 * d + m */
} RsBlockQ5_1;

typedef struct {
  uint16_t d;
  int8_t   qs[32];      /* value = q * d */
} RsBlockQ8_0;

/* Activation format for Q4_1/Q5_1 weights: s carries d * sum(qs) so the
 * weight minimum term of a dot product costs one multiply. */
typedef struct {
  uint16_t d;
  uint16_t s;           /* fp16 of d * sum(qs) (d in full precision) */
  int8_t   qs[32];
} RsBlockQ8_1;

/* 2.625 bpw. 16 sub-blocks of 16; element e uses scales[e/16]
 * (low nibble: scale, high nibble: min) and 2 bits of
 * qs[32*(e/128) + e%32] at shift 2*((e/32)%4).
 * value = d * (sc & 15) * q - dmin * (sc >> 4). */
typedef struct {
  uint8_t  scales[16];
  uint8_t  qs[64];
  uint16_t d;
  uint16_t dmin;
} RsBlockQ2K;

/* 3.4375 bpw. Low 2 bits as in Q2_K; the third bit of element e is bit
 * e/32 of hmask[e%32], and a *clear* bit subtracts 4 (q in -4..3).
 * 16 signed 6-bit scales (stored + 32): low nibble in scales[j] (j < 8) or
 * the high nibble of scales[j-8]; top 2 bits in scales[8 + j%4] at 2*(j/4). */
typedef struct {
  uint8_t  hmask[32];
  uint8_t  qs[64];
  uint8_t  scales[12];
  uint16_t d;
} RsBlockQ3K;

/* 4.5 bpw. 8 sub-blocks of 32 with 6-bit scale and min packed in 12 bytes
 * (rs_get_scale_min_k4). Element e: nibble (e/32)%2 of qs[32*(e/64) + e%32].
 * value = d * sc * q - dmin * m. */
typedef struct {
  uint16_t d;
  uint16_t dmin;
  uint8_t  scales[12];
  uint8_t  qs[128];
} RsBlockQ4K;

/* 5.5 bpw. Q4_K plus a fifth bit: bit e/32 of qh[e%32]. */
typedef struct {
  uint16_t d;
  uint16_t dmin;
  uint8_t  scales[12];
  uint8_t  qh[32];
  uint8_t  qs[128];
} RsBlockQ5K;

/* 6.5625 bpw. Element e = 128*c + 32*s + l (l < 32): low nibble
 * ql[64*c + 32*(s%2) + l] (nibble s/2), high 2 bits qh[32*c + l] at 2*s;
 * q in -32..31 after subtracting 32; int8 scale per 16: scales[e/16]. */
typedef struct {
  uint8_t  ql[128];
  uint8_t  qh[64];
  int8_t   scales[16];
  uint16_t d;
} RsBlockQ6K;

/* Activation format for K-quants and IQ4_XS (never stored in files by
 * ggml, but it has a type id). bsums[j] = sum of qs[16*j .. 16*j + 15]. */
typedef struct {
  float    d;
  int8_t   qs[256];
  int16_t  bsums[16];
} RsBlockQ8K;

/* Non-linear 4-bit: value = d * rs_kvalues_iq4nl[q]. */
typedef struct {
  uint16_t d;
  uint8_t  qs[16];
} RsBlockIQ4NL;

/* IQ4_NL values with a 6-bit (stored + 32) scale per 32-element sub-block:
 * low 4 bits in scales_l[ib/2] nibble ib%2, high 2 bits in scales_h at 2*ib.
 * Sub-block ib uses qs[16*ib .. 16*ib + 15] in nibble layout. */
typedef struct {
  uint16_t d;
  uint16_t scales_h;
  uint8_t  scales_l[4];
  uint8_t  qs[128];
} RsBlockIQ4XS;

/* OCP microscaling FP4: E8M0 shared exponent, E2M1 elements. */
typedef struct {
  uint8_t  e;
  uint8_t  qs[16];
} RsBlockMXFP4;

/* Types we can size but not compute with. Only their sizes matter here. */
typedef struct { uint16_t d; uint16_t qs[32]; } RsBlockIQ2XXS;
typedef struct { uint16_t d; uint16_t qs[32]; uint8_t scales[8]; } RsBlockIQ2XS;
typedef struct { uint16_t d; uint8_t qs[64]; uint8_t qh[8]; uint8_t scales[8]; } RsBlockIQ2S;
typedef struct { uint16_t d; uint8_t qs[96]; } RsBlockIQ3XXS;
typedef struct { uint16_t d; uint8_t qs[64]; uint8_t qh[8]; uint8_t signs[32]; uint8_t scales[4]; } RsBlockIQ3S;
typedef struct { uint16_t d; uint8_t qs[32]; uint16_t qh[8]; } RsBlockIQ1S;
typedef struct { uint8_t qs[32]; uint8_t qh[16]; uint8_t scales[8]; } RsBlockIQ1M;
typedef struct { uint8_t qs[48]; uint8_t qh[4]; uint16_t d; } RsBlockTQ1_0;
typedef struct { uint8_t qs[64]; uint16_t d; } RsBlockTQ2_0;

RS_STATIC_ASSERT (sizeof (RsBlockQ4_0)   == 18,  "Q4_0 block size");
RS_STATIC_ASSERT (sizeof (RsBlockQ4_1)   == 20,  "Q4_1 block size");
RS_STATIC_ASSERT (sizeof (RsBlockQ5_0)   == 22,  "Q5_0 block size");
RS_STATIC_ASSERT (sizeof (RsBlockQ5_1)   == 24,  "Q5_1 block size");
RS_STATIC_ASSERT (sizeof (RsBlockQ8_0)   == 34,  "Q8_0 block size");
RS_STATIC_ASSERT (sizeof (RsBlockQ8_1)   == 36,  "Q8_1 block size");
RS_STATIC_ASSERT (sizeof (RsBlockQ2K)    == 84,  "Q2_K block size");
RS_STATIC_ASSERT (sizeof (RsBlockQ3K)    == 110, "Q3_K block size");
RS_STATIC_ASSERT (sizeof (RsBlockQ4K)    == 144, "Q4_K block size");
RS_STATIC_ASSERT (sizeof (RsBlockQ5K)    == 176, "Q5_K block size");
RS_STATIC_ASSERT (sizeof (RsBlockQ6K)    == 210, "Q6_K block size");
RS_STATIC_ASSERT (sizeof (RsBlockQ8K)    == 292, "Q8_K block size");
RS_STATIC_ASSERT (sizeof (RsBlockIQ4NL)  == 18,  "IQ4_NL block size");
RS_STATIC_ASSERT (sizeof (RsBlockIQ4XS)  == 136, "IQ4_XS block size");
RS_STATIC_ASSERT (sizeof (RsBlockMXFP4)  == 17,  "MXFP4 block size");
RS_STATIC_ASSERT (sizeof (RsBlockIQ2XXS) == 66,  "IQ2_XXS block size");
RS_STATIC_ASSERT (sizeof (RsBlockIQ2XS)  == 74,  "IQ2_XS block size");
RS_STATIC_ASSERT (sizeof (RsBlockIQ2S)   == 82,  "IQ2_S block size");
RS_STATIC_ASSERT (sizeof (RsBlockIQ3XXS) == 98,  "IQ3_XXS block size");
RS_STATIC_ASSERT (sizeof (RsBlockIQ3S)   == 110, "IQ3_S block size");
RS_STATIC_ASSERT (sizeof (RsBlockIQ1S)   == 50,  "IQ1_S block size");
RS_STATIC_ASSERT (sizeof (RsBlockIQ1M)   == 56,  "IQ1_M block size");
RS_STATIC_ASSERT (sizeof (RsBlockTQ1_0)  == 54,  "TQ1_0 block size");
RS_STATIC_ASSERT (sizeof (RsBlockTQ2_0)  == 66,  "TQ2_0 block size");

/* ---- value tables ---- */

/* IQ4_NL / IQ4_XS code book. */
#define RS_KVALUES_IQ4NL_INIT \
  { -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113 }

/* E2M1 values times two (0, 0.5, 1, 1.5, 2, 3, 4, 6 and negatives) so they
 * fit int8 for integer dot products; the block scale is halved to match
 * (rs_e8m0_to_fp32_half). */
#define RS_KVALUES_MXFP4_INIT \
  { 0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12 }

#ifdef __CUDACC__
static __device__ __constant__ const int8_t rs_kvalues_iq4nl_dev[16] = RS_KVALUES_IQ4NL_INIT;
static __device__ __constant__ const int8_t rs_kvalues_mxfp4_dev[16] = RS_KVALUES_MXFP4_INIT;
#endif
static const int8_t rs_kvalues_iq4nl[16] = RS_KVALUES_IQ4NL_INIT;
static const int8_t rs_kvalues_mxfp4[16] = RS_KVALUES_MXFP4_INIT;

/* Table access that works on both sides (device code cannot read host
 * statics). */
RS_HD int rs_iq4nl_value (int q)
{
#ifdef __CUDA_ARCH__
  return rs_kvalues_iq4nl_dev[q];
#else
  return rs_kvalues_iq4nl[q];
#endif
}

RS_HD int rs_mxfp4_value (int q)
{
#ifdef __CUDA_ARCH__
  return rs_kvalues_mxfp4_dev[q];
#else
  return rs_kvalues_mxfp4[q];
#endif
}

/* ---- scalar conversions ---- */

RS_HD float rs_bits_to_fp32 (uint32_t bits)
{
  union { uint32_t u; float f; } v;
  v.u = bits;
  return v.f;
}

RS_HD uint32_t rs_fp32_to_bits (float f)
{
  union { uint32_t u; float f; } v;
  v.f = f;
  return v.u;
}

/* IEEE binary16 -> binary32, exact for every input (subnormals, inf, NaN).
 * Written with selects instead of branches so compilers vectorise row
 * loops over it, and without denormal float arithmetic so flush-to-zero
 * modes cannot change the result. */
RS_HD float rs_fp16_to_fp32 (uint16_t h)
{
  const uint32_t sign = (uint32_t) (h & 0x8000u) << 16;
  const uint32_t r = h & 0x7fffu;
  /* normal: shift exponent and mantissa into place, rebias 15 -> 127;
   * inf/NaN (exponent 31) need a second rebias to land on 255 */
  uint32_t bits = (r << 13) + 0x38000000u;
  bits += r >= 0x7c00u ? 0x38000000u : 0u;
  /* subnormal: 0.5 has an ulp of 2^-24, the fp16 subnormal step, so
   * (0.5 with the mantissa in its low bits) - 0.5 = mantissa * 2^-24 */
  const float sub = rs_bits_to_fp32 (0x3f000000u | r) - 0.5f;
  bits = r < 0x400u ? rs_fp32_to_bits (sub) : bits;
  return rs_bits_to_fp32 (sign | bits);
}

/* binary32 -> binary16, round to nearest even; overflow gives inf, NaN
 * stays a (quiet) NaN. Assumes the default FP rounding mode. */
RS_HD uint16_t rs_fp32_to_fp16 (float f)
{
  uint32_t x = rs_fp32_to_bits (f);
  uint16_t sign = (uint16_t) ((x >> 16) & 0x8000u);
  uint32_t ax = x & 0x7fffffffu;

  if (ax >= 0x7f800000u)                 /* inf or NaN */
    return (uint16_t) (sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0u));
  if (ax >= 0x477ff000u)                 /* >= 65520 rounds to inf */
    return (uint16_t) (sign | 0x7c00u);
  if (ax < 0x38800000u) {                /* below 2^-14: fp16 subnormal */
    /* Adding 0.5 (whose ulp is 2^-24, the fp16 subnormal step) lets the
     * FPU do the round-to-nearest-even; the low bits are the result. */
    float r = rs_bits_to_fp32 (ax) + 0.5f;
    return (uint16_t) (sign | (rs_fp32_to_bits (r) - 0x3f000000u));
  }
  /* normal: rebias the exponent (-112 << 23) and round the 13 dropped bits
   * to nearest even; a carry correctly bumps the exponent. */
  uint32_t odd = (ax >> 13) & 1u;
  ax += 0xc8000fffu + odd;
  return (uint16_t) (sign | (ax >> 13));
}

RS_HD float rs_bf16_to_fp32 (uint16_t h)
{
  return rs_bits_to_fp32 ((uint32_t) h << 16);
}

/* Round to nearest even; NaN stays NaN (forced quiet). */
RS_HD uint16_t rs_fp32_to_bf16 (float f)
{
  uint32_t x = rs_fp32_to_bits (f);
  if ((x & 0x7fffffffu) > 0x7f800000u)
    return (uint16_t) ((x >> 16) | 0x40u);
  return (uint16_t) ((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

/* E8M0 (a bare biased exponent) -> 2^(e - 127). e = 255 (NaN in the OCP
 * spec) is treated as 2^128 = inf; ggml does not special-case it either. */
RS_HD float rs_e8m0_to_fp32 (uint8_t e)
{
  if (e == 0)
    return rs_bits_to_fp32 (0x00400000u);  /* 2^-127, subnormal */
  return rs_bits_to_fp32 ((uint32_t) e << 23);
}

/* Half of rs_e8m0_to_fp32: 2^(e - 128), the scale for the doubled MXFP4
 * table. Identical to ggml's GGML_E8M0_TO_FP32_HALF for all 256 inputs. */
RS_HD float rs_e8m0_to_fp32_half (uint8_t e)
{
  if (e < 2)
    return rs_bits_to_fp32 (0x00200000u << e); /* 2^-128, 2^-127 */
  return rs_bits_to_fp32 ((uint32_t) (e - 1) << 23);
}

/* Q4_K/Q5_K: scale and min of sub-block j (0..7) from the 12 packed bytes.
 * Bytes 0-3: scales 0-3 (low 6 bits), top 2 bits = high bits of scale 4-7.
 * Bytes 4-7: mins 0-3 likewise, top 2 bits = high bits of min 4-7.
 * Bytes 8-11: low nibble = low 4 bits of scale 4-7, high nibble of min 4-7. */
RS_HD void rs_get_scale_min_k4 (int j, const uint8_t *q, uint8_t *sc, uint8_t *m)
{
  if (j < 4) {
    *sc = q[j] & 63;
    *m  = q[j + 4] & 63;
  } else {
    *sc = (uint8_t) ((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m  = (uint8_t) ((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

/* Q3_K: signed scale of sub-block j (0..15), already minus 32. */
RS_HD int rs_q3k_scale (const uint8_t *scales, int j)
{
  int lo = j < 8 ? (scales[j] & 0xF) : (scales[j - 8] >> 4);
  int hi = (scales[8 + (j & 3)] >> (2 * (j >> 2))) & 3;
  return (lo | (hi << 4)) - 32;
}

/* IQ4_XS: signed scale of sub-block ib (0..7), already minus 32. */
RS_HD int rs_iq4xs_scale (const RsBlockIQ4XS *b, int ib)
{
  int lo = (b->scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF;
  int hi = (b->scales_h >> (2 * ib)) & 3;
  return (lo | (hi << 4)) - 32;
}

/* ---- one block -> floats. out holds the block size (32 or 256).
 * Float expressions follow ggml's dequantize_row_* so results are
 * bit-identical to what llama.cpp computes. ---- */

RS_HD void rs_block_dequant_q4_0 (const RsBlockQ4_0 *RS_RESTRICT b, float *RS_RESTRICT out)
{
  const float d = rs_fp16_to_fp32 (b->d);
  for (int l = 0; l < 16; l++) {
    out[l]      = (float) ((b->qs[l] & 0xF) - 8) * d;
    out[l + 16] = (float) ((b->qs[l] >> 4) - 8) * d;
  }
}

RS_HD void rs_block_dequant_q4_1 (const RsBlockQ4_1 *RS_RESTRICT b, float *RS_RESTRICT out)
{
  const float d = rs_fp16_to_fp32 (b->d);
  const float m = rs_fp16_to_fp32 (b->m);
  for (int l = 0; l < 16; l++) {
    out[l]      = (float) (b->qs[l] & 0xF) * d + m;
    out[l + 16] = (float) (b->qs[l] >> 4) * d + m;
  }
}

RS_HD uint32_t rs_load_u32le (const uint8_t *p)
{
  return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) | ((uint32_t) p[3] << 24);
}

RS_HD void rs_block_dequant_q5_0 (const RsBlockQ5_0 *RS_RESTRICT b, float *RS_RESTRICT out)
{
  const float d = rs_fp16_to_fp32 (b->d);
  const uint32_t qh = rs_load_u32le (b->qh);
  for (int l = 0; l < 16; l++) {
    int h0 = (int) ((qh >> l) & 1u) << 4;
    int h1 = (int) ((qh >> (l + 16)) & 1u) << 4;
    out[l]      = (float) (((b->qs[l] & 0xF) | h0) - 16) * d;
    out[l + 16] = (float) (((b->qs[l] >> 4) | h1) - 16) * d;
  }
}

RS_HD void rs_block_dequant_q5_1 (const RsBlockQ5_1 *RS_RESTRICT b, float *RS_RESTRICT out)
{
  const float d = rs_fp16_to_fp32 (b->d);
  const float m = rs_fp16_to_fp32 (b->m);
  const uint32_t qh = rs_load_u32le (b->qh);
  for (int l = 0; l < 16; l++) {
    int h0 = (int) ((qh >> l) & 1u) << 4;
    int h1 = (int) ((qh >> (l + 16)) & 1u) << 4;
    out[l]      = (float) ((b->qs[l] & 0xF) | h0) * d + m;
    out[l + 16] = (float) ((b->qs[l] >> 4) | h1) * d + m;
  }
}

RS_HD void rs_block_dequant_q8_0 (const RsBlockQ8_0 *RS_RESTRICT b, float *RS_RESTRICT out)
{
  const float d = rs_fp16_to_fp32 (b->d);
  for (int l = 0; l < 32; l++)
    out[l] = (float) b->qs[l] * d;
}

RS_HD void rs_block_dequant_q8_1 (const RsBlockQ8_1 *RS_RESTRICT b, float *RS_RESTRICT out)
{
  const float d = rs_fp16_to_fp32 (b->d);
  for (int l = 0; l < 32; l++)
    out[l] = (float) b->qs[l] * d;
}

RS_HD void rs_block_dequant_q2_k (const RsBlockQ2K *RS_RESTRICT b, float *RS_RESTRICT out)
{
  const float d = rs_fp16_to_fp32 (b->d);
  const float dmin = rs_fp16_to_fp32 (b->dmin);
  for (int c = 0; c < 2; c++) {           /* 128-element halves */
    const uint8_t *q = b->qs + 32 * c;
    for (int s = 0; s < 4; s++) {         /* 2-bit planes */
      for (int h = 0; h < 2; h++) {       /* 16-element sub-blocks */
        const uint8_t sc = b->scales[8 * c + 2 * s + h];
        const float dl = d * (float) (sc & 0xF);
        const float ml = dmin * (float) (sc >> 4);
        float *y = out + 128 * c + 32 * s + 16 * h;
        for (int l = 0; l < 16; l++)
          y[l] = dl * (float) ((q[16 * h + l] >> (2 * s)) & 3) - ml;
      }
    }
  }
}

RS_HD void rs_block_dequant_q3_k (const RsBlockQ3K *RS_RESTRICT b, float *RS_RESTRICT out)
{
  const float d = rs_fp16_to_fp32 (b->d);
  for (int c = 0; c < 2; c++) {
    const uint8_t *q = b->qs + 32 * c;
    for (int s = 0; s < 4; s++) {
      const uint8_t mask = (uint8_t) (1u << (4 * c + s));
      for (int h = 0; h < 2; h++) {
        const float dl = d * (float) rs_q3k_scale (b->scales, 8 * c + 2 * s + h);
        float *y = out + 128 * c + 32 * s + 16 * h;
        for (int l = 0; l < 16; l++) {
          const int i = 16 * h + l;
          const int v = ((q[i] >> (2 * s)) & 3) - ((b->hmask[i] & mask) ? 0 : 4);
          y[l] = dl * (float) v;
        }
      }
    }
  }
}

RS_HD void rs_block_dequant_q4_k (const RsBlockQ4K *RS_RESTRICT b, float *RS_RESTRICT out)
{
  const float d = rs_fp16_to_fp32 (b->d);
  const float dmin = rs_fp16_to_fp32 (b->dmin);
  for (int j = 0; j < 4; j++) {           /* 64-element chunks */
    uint8_t sc, m;
    rs_get_scale_min_k4 (2 * j, b->scales, &sc, &m);
    const float d1 = d * (float) sc, m1 = dmin * (float) m;
    rs_get_scale_min_k4 (2 * j + 1, b->scales, &sc, &m);
    const float d2 = d * (float) sc, m2 = dmin * (float) m;
    const uint8_t *q = b->qs + 32 * j;
    for (int l = 0; l < 32; l++) {
      out[64 * j + l]      = d1 * (float) (q[l] & 0xF) - m1;
      out[64 * j + 32 + l] = d2 * (float) (q[l] >> 4) - m2;
    }
  }
}

RS_HD void rs_block_dequant_q5_k (const RsBlockQ5K *RS_RESTRICT b, float *RS_RESTRICT out)
{
  const float d = rs_fp16_to_fp32 (b->d);
  const float dmin = rs_fp16_to_fp32 (b->dmin);
  for (int j = 0; j < 4; j++) {
    uint8_t sc, m;
    rs_get_scale_min_k4 (2 * j, b->scales, &sc, &m);
    const float d1 = d * (float) sc, m1 = dmin * (float) m;
    rs_get_scale_min_k4 (2 * j + 1, b->scales, &sc, &m);
    const float d2 = d * (float) sc, m2 = dmin * (float) m;
    const uint8_t *q = b->qs + 32 * j;
    const uint8_t u1 = (uint8_t) (1u << (2 * j)), u2 = (uint8_t) (2u << (2 * j));
    for (int l = 0; l < 32; l++) {
      out[64 * j + l]      = d1 * (float) ((q[l] & 0xF) + ((b->qh[l] & u1) ? 16 : 0)) - m1;
      out[64 * j + 32 + l] = d2 * (float) ((q[l] >> 4) + ((b->qh[l] & u2) ? 16 : 0)) - m2;
    }
  }
}

RS_HD void rs_block_dequant_q6_k (const RsBlockQ6K *RS_RESTRICT b, float *RS_RESTRICT out)
{
  const float d = rs_fp16_to_fp32 (b->d);
  for (int c = 0; c < 2; c++) {
    const uint8_t *ql = b->ql + 64 * c;
    const uint8_t *qh = b->qh + 32 * c;
    const int8_t *sc = b->scales + 8 * c;
    float *y = out + 128 * c;
    for (int l = 0; l < 32; l++) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0xF)      | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4)       | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4)  | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l]      = d * (float) sc[is + 0] * (float) q1;
      y[l + 32] = d * (float) sc[is + 2] * (float) q2;
      y[l + 64] = d * (float) sc[is + 4] * (float) q3;
      y[l + 96] = d * (float) sc[is + 6] * (float) q4;
    }
  }
}

RS_HD void rs_block_dequant_q8_k (const RsBlockQ8K *RS_RESTRICT b, float *RS_RESTRICT out)
{
  for (int l = 0; l < 256; l++)
    out[l] = b->d * (float) b->qs[l];
}

RS_HD void rs_block_dequant_iq4_nl (const RsBlockIQ4NL *RS_RESTRICT b, float *RS_RESTRICT out)
{
  const float d = rs_fp16_to_fp32 (b->d);
  for (int l = 0; l < 16; l++) {
    out[l]      = d * (float) rs_iq4nl_value (b->qs[l] & 0xF);
    out[l + 16] = d * (float) rs_iq4nl_value (b->qs[l] >> 4);
  }
}

RS_HD void rs_block_dequant_iq4_xs (const RsBlockIQ4XS *RS_RESTRICT b, float *RS_RESTRICT out)
{
  const float d = rs_fp16_to_fp32 (b->d);
  for (int ib = 0; ib < 8; ib++) {
    const float dl = d * (float) rs_iq4xs_scale (b, ib);
    const uint8_t *qs = b->qs + 16 * ib;
    for (int l = 0; l < 16; l++) {
      out[32 * ib + l]      = dl * (float) rs_iq4nl_value (qs[l] & 0xF);
      out[32 * ib + 16 + l] = dl * (float) rs_iq4nl_value (qs[l] >> 4);
    }
  }
}

RS_HD void rs_block_dequant_mxfp4 (const RsBlockMXFP4 *RS_RESTRICT b, float *RS_RESTRICT out)
{
  const float d = rs_e8m0_to_fp32_half (b->e);
  for (int l = 0; l < 16; l++) {
    out[l]      = (float) rs_mxfp4_value (b->qs[l] & 0xF) * d;
    out[l + 16] = (float) rs_mxfp4_value (b->qs[l] >> 4) * d;
  }
}
