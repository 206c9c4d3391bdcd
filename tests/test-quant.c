/* test-quant.c: tensor type traits, block layouts, dequantisation,
 * quantisation and the dot kernels (scalar reference vs dispatched SIMD).
 *
 * The hand-built block tests pack integer quants and scales with their own
 * element-indexed packers (written from the GGUF layout, not shared with
 * the library) and compute the expected floats themselves; scales are
 * dyadic so every expected value is exact and comparisons use ==.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <glib.h>
#include <math.h>
#include <string.h>

#include "rs-cpu.h"
#include "rs-quant-block.h"
#include "rs-quant.h"
#include "rs-types.h"

static const RsType supported_types[] = {
  RS_TYPE_F32, RS_TYPE_F16, RS_TYPE_BF16, RS_TYPE_Q4_0, RS_TYPE_Q4_1, RS_TYPE_Q5_0,
  RS_TYPE_Q5_1, RS_TYPE_Q8_0, RS_TYPE_Q2_K, RS_TYPE_Q3_K, RS_TYPE_Q4_K, RS_TYPE_Q5_K,
  RS_TYPE_Q6_K, RS_TYPE_IQ4_NL, RS_TYPE_IQ4_XS, RS_TYPE_MXFP4,
};
#define N_SUPPORTED G_N_ELEMENTS (supported_types)

/* The test's own copies of the code books. */
static const int iq4nl_values[16] = { -127, -104, -83, -65, -49, -35, -22, -10,
                                      1, 13, 25, 38, 53, 69, 89, 113 };
static const float e2m1_values[16] = { 0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f,
                                       -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f };

/* Dyadic scales with their binary16 encodings, written out by hand. */
static const struct { float v; uint16_t h; } exact_halves[] = {
  { 1.0f, 0x3c00 }, { 0.5f, 0x3800 }, { 0.25f, 0x3400 }, { 0.125f, 0x3000 },
  { 2.0f, 0x4000 }, { -0.5f, 0xb800 }, { 0.375f, 0x3600 }, { -1.5f, 0xbe00 },
  { 0.0625f, 0x2c00 }, { 3.0f, 0x4200 },
};

static float
pick_half (GRand *r, uint16_t *h)
{
  int i = g_rand_int_range (r, 0, G_N_ELEMENTS (exact_halves));
  *h = exact_halves[i].h;
  return exact_halves[i].v;
}

static int
rint_range (GRand *r, int lo, int hi_inclusive)
{
  return g_rand_int_range (r, lo, hi_inclusive + 1);
}

/* ------------------------------------------------------------------ */
/* traits                                                              */

static void
test_traits (void)
{
  static const struct { RsType t; const char *name; int64_t bs; size_t ts; bool sup; } want[] = {
    { RS_TYPE_F32, "F32", 1, 4, true },          { RS_TYPE_F16, "F16", 1, 2, true },
    { RS_TYPE_BF16, "BF16", 1, 2, true },        { RS_TYPE_Q4_0, "Q4_0", 32, 18, true },
    { RS_TYPE_Q4_1, "Q4_1", 32, 20, true },      { RS_TYPE_Q5_0, "Q5_0", 32, 22, true },
    { RS_TYPE_Q5_1, "Q5_1", 32, 24, true },      { RS_TYPE_Q8_0, "Q8_0", 32, 34, true },
    { RS_TYPE_Q8_1, "Q8_1", 32, 36, false },     { RS_TYPE_Q2_K, "Q2_K", 256, 84, true },
    { RS_TYPE_Q3_K, "Q3_K", 256, 110, true },    { RS_TYPE_Q4_K, "Q4_K", 256, 144, true },
    { RS_TYPE_Q5_K, "Q5_K", 256, 176, true },    { RS_TYPE_Q6_K, "Q6_K", 256, 210, true },
    { RS_TYPE_Q8_K, "Q8_K", 256, 292, false },   { RS_TYPE_IQ2_XXS, "IQ2_XXS", 256, 66, false },
    { RS_TYPE_IQ2_XS, "IQ2_XS", 256, 74, false }, { RS_TYPE_IQ3_XXS, "IQ3_XXS", 256, 98, false },
    { RS_TYPE_IQ1_S, "IQ1_S", 256, 50, false },  { RS_TYPE_IQ4_NL, "IQ4_NL", 32, 18, true },
    { RS_TYPE_IQ3_S, "IQ3_S", 256, 110, false }, { RS_TYPE_IQ2_S, "IQ2_S", 256, 82, false },
    { RS_TYPE_IQ4_XS, "IQ4_XS", 256, 136, true }, { RS_TYPE_I8, "I8", 1, 1, false },
    { RS_TYPE_I16, "I16", 1, 2, false },         { RS_TYPE_I32, "I32", 1, 4, false },
    { RS_TYPE_I64, "I64", 1, 8, false },         { RS_TYPE_F64, "F64", 1, 8, false },
    { RS_TYPE_IQ1_M, "IQ1_M", 256, 56, false },  { RS_TYPE_TQ1_0, "TQ1_0", 256, 54, false },
    { RS_TYPE_TQ2_0, "TQ2_0", 256, 66, false },  { RS_TYPE_MXFP4, "MXFP4", 32, 17, true },
  };
  for (guint i = 0; i < G_N_ELEMENTS (want); i++) {
    const RsTypeTraits *t = rs_type_traits (want[i].t);
    g_assert_nonnull (t);
    g_assert_true (t->known);
    g_assert_cmpstr (t->name, ==, want[i].name);
    g_assert_cmpstr (rs_type_name (want[i].t), ==, want[i].name);
    g_assert_cmpint (t->block_size, ==, want[i].bs);
    g_assert_cmpuint (t->type_size, ==, want[i].ts);
    g_assert_cmpint (t->supported, ==, want[i].sup);
  }
  /* ids the format never assigned or removed, and out-of-range ones */
  static const int unknown[] = { 4, 5, 31, 32, 33, 36, 37, 38, 40, 41, 255, -1, 100000 };
  for (guint i = 0; i < G_N_ELEMENTS (unknown); i++) {
    const RsTypeTraits *t = rs_type_traits (unknown[i]);
    g_assert_nonnull (t);
    g_assert_false (t->known);
    g_assert_false (t->supported);
    g_assert_null (t->name);
    g_assert_cmpstr (rs_type_name (unknown[i]), ==, "unknown");
  }
  g_assert_cmpuint (rs_type_row_size (RS_TYPE_Q4_K, 4096), ==, 16 * 144);
  g_assert_cmpuint (rs_type_row_size (RS_TYPE_Q8_0, 4096), ==, 128 * 34);
  g_assert_cmpuint (rs_type_row_size (RS_TYPE_F16, 7), ==, 14);
  g_assert_cmpuint (rs_type_row_size (RS_TYPE_IQ2_XXS, 512), ==, 2 * 66);
  g_assert_cmpuint (rs_type_row_size (RS_TYPE_Q4_K, 4000), ==, 0);
  g_assert_cmpuint (rs_type_row_size (RS_TYPE_Q4_0, 33), ==, 0);
  g_assert_cmpuint (rs_type_row_size ((RsType) 4, 32), ==, 0);
  g_assert_cmpuint (rs_type_row_size (RS_TYPE_Q6_K, 0), ==, 0);

  /* activation formats, as ggml pairs them */
  g_assert_cmpint (rs_act_type (RS_TYPE_F32), ==, RS_TYPE_F32);
  g_assert_cmpint (rs_act_type (RS_TYPE_F16), ==, RS_TYPE_F32);
  g_assert_cmpint (rs_act_type (RS_TYPE_BF16), ==, RS_TYPE_F32);
  g_assert_cmpint (rs_act_type (RS_TYPE_Q4_0), ==, RS_TYPE_Q8_0);
  g_assert_cmpint (rs_act_type (RS_TYPE_Q5_0), ==, RS_TYPE_Q8_0);
  g_assert_cmpint (rs_act_type (RS_TYPE_Q8_0), ==, RS_TYPE_Q8_0);
  g_assert_cmpint (rs_act_type (RS_TYPE_IQ4_NL), ==, RS_TYPE_Q8_0);
  g_assert_cmpint (rs_act_type (RS_TYPE_MXFP4), ==, RS_TYPE_Q8_0);
  g_assert_cmpint (rs_act_type (RS_TYPE_Q4_1), ==, RS_TYPE_Q8_1);
  g_assert_cmpint (rs_act_type (RS_TYPE_Q5_1), ==, RS_TYPE_Q8_1);
  static const RsType k_types[] = { RS_TYPE_Q2_K, RS_TYPE_Q3_K, RS_TYPE_Q4_K, RS_TYPE_Q5_K,
                                    RS_TYPE_Q6_K, RS_TYPE_IQ4_XS };
  for (guint i = 0; i < G_N_ELEMENTS (k_types); i++)
    g_assert_cmpint (rs_act_type (k_types[i]), ==, RS_TYPE_Q8_K);

  /* kernels exist exactly for the supported types */
  for (int t = 0; t < RS_TYPE_COUNT; t++) {
    const bool sup = rs_type_traits (t)->supported;
    g_assert_cmpint (rs_vec_dot_fn ((RsType) t) != NULL, ==, sup);
    g_assert_cmpint (rs_vec_dot_fn_scalar ((RsType) t) != NULL, ==, sup);
    if (!sup)
      g_assert_cmpstr (rs_vec_dot_impl_name ((RsType) t), ==, "none");
  }
  float x[256] = { 0 };
  guint8 buf[1024];
  g_assert_false (rs_quantize_row (RS_TYPE_IQ2_XXS, x, buf, 256));
  g_assert_false (rs_quantize_row (RS_TYPE_Q4_K, x, buf, 100));
}

/* ------------------------------------------------------------------ */
/* scalar conversions                                                  */

static float
decode_half_ref (uint16_t h)
{
  const int sign = h >> 15, exp = (h >> 10) & 31, man = h & 1023;
  float v = exp == 0 ? ldexpf ((float) man, -24) : ldexpf ((float) (1024 + man), exp - 25);
  return sign ? -v : v;
}

static void
test_conversions (void)
{
  /* every finite binary16 decodes exactly and encodes back to itself */
  for (uint32_t h = 0; h < 65536; h++) {
    if (((h >> 10) & 31) == 31)
      continue;
    const float f = rs_fp16_to_fp32 ((uint16_t) h);
    g_assert_cmpfloat (f, ==, decode_half_ref ((uint16_t) h));
    g_assert_cmphex (rs_fp32_to_fp16 (f), ==, h);
  }
  /* rows go through the same path */
  static uint16_t all[65536 - 2048];
  static float out[G_N_ELEMENTS (all)];
  guint n = 0;
  for (uint32_t h = 0; h < 65536; h++)
    if (((h >> 10) & 31) != 31)
      all[n++] = (uint16_t) h;
  g_assert_cmpuint (n, ==, G_N_ELEMENTS (all));
  rs_dequantize_row (RS_TYPE_F16, all, out, n);
  for (guint i = 0; i < n; i++)
    g_assert_cmpfloat (out[i], ==, decode_half_ref (all[i]));

  g_assert_true (isinf (rs_fp16_to_fp32 (0x7c00)) && rs_fp16_to_fp32 (0x7c00) > 0);
  g_assert_true (isinf (rs_fp16_to_fp32 (0xfc00)) && rs_fp16_to_fp32 (0xfc00) < 0);
  g_assert_true (isnan (rs_fp16_to_fp32 (0x7e00)));
  g_assert_cmphex (rs_fp32_to_fp16 (65504.0f), ==, 0x7bff);
  g_assert_cmphex (rs_fp32_to_fp16 (65519.0f), ==, 0x7bff);  /* just below the tie */
  g_assert_cmphex (rs_fp32_to_fp16 (65520.0f), ==, 0x7c00);  /* tie rounds to even = inf */
  g_assert_cmphex (rs_fp32_to_fp16 (1e10f), ==, 0x7c00);
  g_assert_cmphex (rs_fp32_to_fp16 (-1e10f), ==, 0xfc00);
  g_assert_cmphex (rs_fp32_to_fp16 (INFINITY), ==, 0x7c00);
  g_assert_cmphex (rs_fp32_to_fp16 (NAN) & 0x7e00, ==, 0x7e00);
  g_assert_cmphex (rs_fp32_to_fp16 (1.0f + ldexpf (1.0f, -11)), ==, 0x3c00);       /* tie -> even */
  g_assert_cmphex (rs_fp32_to_fp16 (1.0f + 3 * ldexpf (1.0f, -11)), ==, 0x3c02);   /* tie -> even */
  g_assert_cmphex (rs_fp32_to_fp16 (1.0f + ldexpf (1.0f, -11) + ldexpf (1.0f, -20)), ==, 0x3c01);
  g_assert_cmphex (rs_fp32_to_fp16 (ldexpf (1.0f, -25)), ==, 0x0000);              /* tie -> 0 */
  g_assert_cmphex (rs_fp32_to_fp16 (3 * ldexpf (1.0f, -25)), ==, 0x0002);          /* tie -> even */
  g_assert_cmphex (rs_fp32_to_fp16 (ldexpf (1.0f, -26) * 3), ==, 0x0001);
  g_assert_cmphex (rs_fp32_to_fp16 (-0.0f), ==, 0x8000);
  g_assert_cmphex (rs_fp32_to_fp16 (ldexpf (1023.5f, -24)), ==, 0x0400);           /* to smallest normal */

  g_assert_cmpfloat (rs_bf16_to_fp32 (0x3f80), ==, 1.0f);
  g_assert_cmpfloat (rs_bf16_to_fp32 (0xc040), ==, -3.0f);
  g_assert_cmphex (rs_fp32_to_bf16 (1.0f), ==, 0x3f80);
  g_assert_cmphex (rs_fp32_to_bf16 (1.0f + ldexpf (1.0f, -8)), ==, 0x3f80);                      /* tie -> even */
  g_assert_cmphex (rs_fp32_to_bf16 (1.0f + 3 * ldexpf (1.0f, -8)), ==, 0x3f82);                  /* tie -> even */
  g_assert_cmphex (rs_fp32_to_bf16 (1.0f + ldexpf (1.0f, -8) + ldexpf (1.0f, -20)), ==, 0x3f81);
  g_assert_true (isnan (rs_bf16_to_fp32 (rs_fp32_to_bf16 (NAN))));
  uint16_t bf[4] = { 0x3f80, 0x4049, 0x8000, 0xff80 };
  float bo[4];
  rs_dequantize_row (RS_TYPE_BF16, bf, bo, 4);
  g_assert_cmpfloat (bo[0], ==, 1.0f);
  g_assert_cmpfloat (bo[1], ==, 3.140625f);
  g_assert_cmpfloat (bo[2], ==, 0.0f);
  g_assert_true (isinf (bo[3]) && bo[3] < 0);

  g_assert_cmpfloat (rs_e8m0_to_fp32 (127), ==, 1.0f);
  g_assert_cmpfloat (rs_e8m0_to_fp32 (130), ==, 8.0f);
  g_assert_cmpfloat (rs_e8m0_to_fp32 (0), ==, ldexpf (1.0f, -127));
  for (int e = 0; e < 255; e++)
    g_assert_cmpfloat (rs_e8m0_to_fp32_half ((uint8_t) e), ==, ldexpf (1.0f, e - 128));
}

/* ------------------------------------------------------------------ */
/* hand-built blocks                                                   */

/* Builds one block of @type at @blk with random quants and exact scales
 * and writes the values it must dequantise to into @want. Returns the
 * block size. */
typedef int (*BuildFn) (GRand *r, void *blk, float *want);

static void
set_nibble (uint8_t *qs, int idx, int shift, int v)
{
  qs[idx] |= (uint8_t) (v << shift);
}

static int
build_q4_0 (GRand *r, void *blk, float *want)
{
  RsBlockQ4_0 *b = blk;
  memset (b, 0, sizeof *b);
  const float d = pick_half (r, &b->d);
  for (int e = 0; e < 32; e++) {
    const int q = rint_range (r, 0, 15);
    set_nibble (b->qs, e % 16, 4 * (e / 16), q);
    want[e] = (float) (q - 8) * d;
  }
  return 32;
}

static int
build_q4_1 (GRand *r, void *blk, float *want)
{
  RsBlockQ4_1 *b = blk;
  memset (b, 0, sizeof *b);
  const float d = pick_half (r, &b->d), m = pick_half (r, &b->m);
  for (int e = 0; e < 32; e++) {
    const int q = rint_range (r, 0, 15);
    set_nibble (b->qs, e % 16, 4 * (e / 16), q);
    want[e] = (float) q * d + m;
  }
  return 32;
}

static int
build_q5_0 (GRand *r, void *blk, float *want)
{
  RsBlockQ5_0 *b = blk;
  memset (b, 0, sizeof *b);
  const float d = pick_half (r, &b->d);
  for (int e = 0; e < 32; e++) {
    const int q = rint_range (r, 0, 31);
    set_nibble (b->qs, e % 16, 4 * (e / 16), q & 15);
    b->qh[e / 8] |= (uint8_t) ((q >> 4) << (e % 8));   /* little-endian bit e */
    want[e] = (float) (q - 16) * d;
  }
  return 32;
}

static int
build_q5_1 (GRand *r, void *blk, float *want)
{
  RsBlockQ5_1 *b = blk;
  memset (b, 0, sizeof *b);
  const float d = pick_half (r, &b->d), m = pick_half (r, &b->m);
  for (int e = 0; e < 32; e++) {
    const int q = rint_range (r, 0, 31);
    set_nibble (b->qs, e % 16, 4 * (e / 16), q & 15);
    b->qh[e / 8] |= (uint8_t) ((q >> 4) << (e % 8));
    want[e] = (float) q * d + m;
  }
  return 32;
}

static int
build_q8_0 (GRand *r, void *blk, float *want)
{
  RsBlockQ8_0 *b = blk;
  const float d = pick_half (r, &b->d);
  for (int e = 0; e < 32; e++) {
    const int q = rint_range (r, -128, 127);
    b->qs[e] = (int8_t) q;
    want[e] = (float) q * d;
  }
  return 32;
}

static int
build_q2_k (GRand *r, void *blk, float *want)
{
  RsBlockQ2K *b = blk;
  memset (b, 0, sizeof *b);
  const float d = pick_half (r, &b->d), dmin = pick_half (r, &b->dmin);
  int sc[16], mn[16];
  for (int j = 0; j < 16; j++) {
    sc[j] = rint_range (r, 0, 15);
    mn[j] = rint_range (r, 0, 15);
    b->scales[j] = (uint8_t) (sc[j] | (mn[j] << 4));
  }
  for (int e = 0; e < 256; e++) {
    const int q = rint_range (r, 0, 3);
    b->qs[32 * (e / 128) + e % 32] |= (uint8_t) (q << (2 * ((e / 32) % 4)));
    want[e] = d * (float) sc[e / 16] * (float) q - dmin * (float) mn[e / 16];
  }
  return 256;
}

static int
build_q3_k (GRand *r, void *blk, float *want)
{
  RsBlockQ3K *b = blk;
  memset (b, 0, sizeof *b);
  const float d = pick_half (r, &b->d);
  int sc[16];
  for (int j = 0; j < 16; j++) {
    sc[j] = rint_range (r, -32, 31);
    const int u = sc[j] + 32;
    b->scales[j % 8] |= (uint8_t) ((u & 15) << (4 * (j / 8)));
    b->scales[8 + j % 4] |= (uint8_t) ((u >> 4) << (2 * (j / 4)));
  }
  for (int e = 0; e < 256; e++) {
    const int q = rint_range (r, -4, 3);
    const int u = q + 4;
    b->qs[32 * (e / 128) + e % 32] |= (uint8_t) ((u & 3) << (2 * ((e / 32) % 4)));
    if (u & 4)
      b->hmask[e % 32] |= (uint8_t) (1u << (e / 32));
    want[e] = d * (float) sc[e / 16] * (float) q;
  }
  return 256;
}

/* Q4_K/Q5_K scale field, written byte by byte from the layout. */
static void
pack_k4_scales (uint8_t s[12], const int sc[8], const int mn[8])
{
  for (int j = 0; j < 4; j++) {
    s[j]     = (uint8_t) (sc[j] | ((sc[j + 4] >> 4) << 6));
    s[j + 4] = (uint8_t) (mn[j] | ((mn[j + 4] >> 4) << 6));
    s[j + 8] = (uint8_t) ((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
  }
}

static int
build_q4_k (GRand *r, void *blk, float *want)
{
  RsBlockQ4K *b = blk;
  memset (b, 0, sizeof *b);
  const float d = pick_half (r, &b->d), dmin = pick_half (r, &b->dmin);
  int sc[8], mn[8];
  for (int j = 0; j < 8; j++) {
    sc[j] = rint_range (r, 0, 63);
    mn[j] = rint_range (r, 0, 63);
  }
  pack_k4_scales (b->scales, sc, mn);
  for (int e = 0; e < 256; e++) {
    const int q = rint_range (r, 0, 15);
    set_nibble (b->qs, 32 * (e / 64) + e % 32, 4 * ((e / 32) % 2), q);
    want[e] = d * (float) sc[e / 32] * (float) q - dmin * (float) mn[e / 32];
  }
  return 256;
}

static int
build_q5_k (GRand *r, void *blk, float *want)
{
  RsBlockQ5K *b = blk;
  memset (b, 0, sizeof *b);
  const float d = pick_half (r, &b->d), dmin = pick_half (r, &b->dmin);
  int sc[8], mn[8];
  for (int j = 0; j < 8; j++) {
    sc[j] = rint_range (r, 0, 63);
    mn[j] = rint_range (r, 0, 63);
  }
  pack_k4_scales (b->scales, sc, mn);
  for (int e = 0; e < 256; e++) {
    const int q = rint_range (r, 0, 31);
    set_nibble (b->qs, 32 * (e / 64) + e % 32, 4 * ((e / 32) % 2), q & 15);
    b->qh[e % 32] |= (uint8_t) ((q >> 4) << (e / 32));
    want[e] = d * (float) sc[e / 32] * (float) q - dmin * (float) mn[e / 32];
  }
  return 256;
}

static int
build_q6_k (GRand *r, void *blk, float *want)
{
  RsBlockQ6K *b = blk;
  memset (b, 0, sizeof *b);
  const float d = pick_half (r, &b->d);
  for (int j = 0; j < 16; j++)
    b->scales[j] = (int8_t) rint_range (r, -128, 127);
  for (int e = 0; e < 256; e++) {
    const int q = rint_range (r, -32, 31), u = q + 32;
    const int c = e / 128, s = (e / 32) % 4, l = e % 32;
    set_nibble (b->ql, 64 * c + 32 * (s % 2) + l, 4 * (s / 2), u & 15);
    b->qh[32 * c + l] |= (uint8_t) ((u >> 4) << (2 * s));
    want[e] = d * (float) b->scales[e / 16] * (float) q;
  }
  return 256;
}

static int
build_iq4_nl (GRand *r, void *blk, float *want)
{
  RsBlockIQ4NL *b = blk;
  memset (b, 0, sizeof *b);
  const float d = pick_half (r, &b->d);
  for (int e = 0; e < 32; e++) {
    const int q = rint_range (r, 0, 15);
    set_nibble (b->qs, e % 16, 4 * (e / 16), q);
    want[e] = d * (float) iq4nl_values[q];
  }
  return 32;
}

static int
build_iq4_xs (GRand *r, void *blk, float *want)
{
  RsBlockIQ4XS *b = blk;
  memset (b, 0, sizeof *b);
  const float d = pick_half (r, &b->d);
  int ls[8];
  for (int ib = 0; ib < 8; ib++) {
    ls[ib] = rint_range (r, -32, 31);
    const int u = ls[ib] + 32;
    b->scales_l[ib / 2] |= (uint8_t) ((u & 15) << (4 * (ib % 2)));
    b->scales_h |= (uint16_t) ((u >> 4) << (2 * ib));
  }
  for (int e = 0; e < 256; e++) {
    const int q = rint_range (r, 0, 15), ib = e / 32, k = e % 32;
    set_nibble (b->qs, 16 * ib + k % 16, 4 * (k / 16), q);
    want[e] = d * (float) ls[ib] * (float) iq4nl_values[q];
  }
  return 256;
}

static int
build_mxfp4 (GRand *r, void *blk, float *want)
{
  RsBlockMXFP4 *b = blk;
  memset (b, 0, sizeof *b);
  b->e = (uint8_t) rint_range (r, 100, 150);
  for (int e = 0; e < 32; e++) {
    const int q = rint_range (r, 0, 15);
    set_nibble (b->qs, e % 16, 4 * (e / 16), q);
    want[e] = ldexpf (e2m1_values[q], b->e - 127);   /* value * 2^(e - 127) */
  }
  return 32;
}

static BuildFn
builder_for (RsType t)
{
  switch (t) {
  case RS_TYPE_Q4_0: return build_q4_0;
  case RS_TYPE_Q4_1: return build_q4_1;
  case RS_TYPE_Q5_0: return build_q5_0;
  case RS_TYPE_Q5_1: return build_q5_1;
  case RS_TYPE_Q8_0: return build_q8_0;
  case RS_TYPE_Q2_K: return build_q2_k;
  case RS_TYPE_Q3_K: return build_q3_k;
  case RS_TYPE_Q4_K: return build_q4_k;
  case RS_TYPE_Q5_K: return build_q5_k;
  case RS_TYPE_Q6_K: return build_q6_k;
  case RS_TYPE_IQ4_NL: return build_iq4_nl;
  case RS_TYPE_IQ4_XS: return build_iq4_xs;
  case RS_TYPE_MXFP4: return build_mxfp4;
  default: return NULL;
  }
}

/* One block through its RS_HD helper (the function the CUDA code shares). */
static void
block_helper (RsType t, const void *blk, float *out)
{
  switch (t) {
  case RS_TYPE_Q4_0: rs_block_dequant_q4_0 (blk, out); break;
  case RS_TYPE_Q4_1: rs_block_dequant_q4_1 (blk, out); break;
  case RS_TYPE_Q5_0: rs_block_dequant_q5_0 (blk, out); break;
  case RS_TYPE_Q5_1: rs_block_dequant_q5_1 (blk, out); break;
  case RS_TYPE_Q8_0: rs_block_dequant_q8_0 (blk, out); break;
  case RS_TYPE_Q2_K: rs_block_dequant_q2_k (blk, out); break;
  case RS_TYPE_Q3_K: rs_block_dequant_q3_k (blk, out); break;
  case RS_TYPE_Q4_K: rs_block_dequant_q4_k (blk, out); break;
  case RS_TYPE_Q5_K: rs_block_dequant_q5_k (blk, out); break;
  case RS_TYPE_Q6_K: rs_block_dequant_q6_k (blk, out); break;
  case RS_TYPE_IQ4_NL: rs_block_dequant_iq4_nl (blk, out); break;
  case RS_TYPE_IQ4_XS: rs_block_dequant_iq4_xs (blk, out); break;
  case RS_TYPE_MXFP4: rs_block_dequant_mxfp4 (blk, out); break;
  default: g_assert_not_reached ();
  }
}

static void
test_dequant_built (gconstpointer data)
{
  const RsType t = GPOINTER_TO_INT (data);
  const RsTypeTraits *tr = rs_type_traits (t);
  BuildFn build = builder_for (t);
  g_assert_nonnull (build);
  GRand *r = g_rand_new_with_seed (0x5eed + t);
  enum { NB = 5 };
  guint8 row[NB * 292];
  float want[NB * 256], got[NB * 256], one[256];

  for (int rep = 0; rep < 40; rep++) {
    for (int i = 0; i < NB; i++) {
      g_assert_cmpint (build (r, row + i * tr->type_size, want + i * tr->block_size), ==, tr->block_size);
      block_helper (t, row + i * tr->type_size, one);
      for (int e = 0; e < tr->block_size; e++)
        if (one[e] != want[i * tr->block_size + e])
          g_error ("%s block helper: element %d of block %d is %g, want %g", tr->name, e, i,
                   one[e], want[i * tr->block_size + e]);
    }
    const int64_t n = NB * tr->block_size;
    memset (got, 0xff, sizeof got);
    rs_dequantize_row (t, row, got, n);
    for (int64_t e = 0; e < n; e++)
      if (got[e] != want[e])
        g_error ("%s row: element %" G_GINT64_FORMAT " is %g, want %g", tr->name, e, got[e], want[e]);
  }
  g_rand_free (r);
}

/* A few blocks written out byte by byte, with values worked out by hand. */
static void
test_dequant_literal (void)
{
  float out[256];

  RsBlockQ4_0 q40;
  memset (&q40, 0x88, sizeof q40);
  q40.d = 0x3800;                 /* 0.5 */
  q40.qs[0] = 0x1F;               /* e0 = 15, e16 = 1 */
  rs_dequantize_row (RS_TYPE_Q4_0, &q40, out, 32);
  g_assert_cmpfloat (out[0], ==, 3.5f);
  g_assert_cmpfloat (out[16], ==, -3.5f);
  g_assert_cmpfloat (out[1], ==, 0.0f);

  RsBlockQ5_0 q50;
  memset (&q50, 0, sizeof q50);
  q50.d = 0x3800;
  q50.qh[0] = 0x01;               /* bit 0: e0 */
  q50.qh[2] = 0x01;               /* bit 16: e16 */
  q50.qs[1] = 0x3F;               /* e1 = 15, e17 = 3, both without 5th bit */
  rs_dequantize_row (RS_TYPE_Q5_0, &q50, out, 32);
  g_assert_cmpfloat (out[0], ==, 0.0f);
  g_assert_cmpfloat (out[16], ==, 0.0f);
  g_assert_cmpfloat (out[1], ==, -0.5f);
  g_assert_cmpfloat (out[17], ==, -6.5f);
  g_assert_cmpfloat (out[2], ==, -8.0f);

  RsBlockQ2K q2;
  memset (&q2, 0, sizeof q2);
  q2.d = 0x3800;                  /* 0.5 */
  q2.dmin = 0x3400;               /* 0.25 */
  q2.scales[0] = 0x32;            /* sub-block 0: scale 2, min 3 */
  q2.scales[2] = 0x05;            /* sub-block 2 (e 32..47): scale 5 */
  q2.qs[0] = 0xE4;                /* e0 = 0, e32 = 1, e64 = 2, e96 = 3 */
  rs_dequantize_row (RS_TYPE_Q2_K, &q2, out, 256);
  g_assert_cmpfloat (out[0], ==, -0.75f);
  g_assert_cmpfloat (out[32], ==, 2.5f);
  g_assert_cmpfloat (out[64], ==, 0.0f);   /* scale of sub-block 4 is 0 */

  RsBlockQ3K q3;
  memset (&q3, 0, sizeof q3);     /* all scales stored 0 -> -32 */
  q3.d = 0x3c00;                  /* 1.0 */
  q3.scales[0] = 0x03;            /* sub-block 0: low 4 bits 3 */
  q3.scales[8] = 0x02;            /*              high 2 bits 2 -> 35 - 32 = 3 */
  q3.qs[0] = 0x03;                /* e0: low 2 bits 3 */
  q3.hmask[0] = 0x01;             /* e0: high bit set -> +0 */
  q3.qs[1] = 0x01;                /* e1: 1, high bit clear -> 1 - 4 */
  rs_dequantize_row (RS_TYPE_Q3_K, &q3, out, 256);
  g_assert_cmpfloat (out[0], ==, 9.0f);
  g_assert_cmpfloat (out[1], ==, -9.0f);
  g_assert_cmpfloat (out[32], ==, 128.0f);  /* q = -4 with scale -32 */

  RsBlockQ4K q4;
  memset (&q4, 0, sizeof q4);
  q4.d = 0x3c00;                  /* 1.0 */
  q4.dmin = 0x3800;               /* 0.5 */
  q4.scales[0] = 2 | (1 << 6);    /* scale 0 = 2; bit 4 of scale 4 */
  q4.scales[4] = 4;               /* min 0 = 4 */
  q4.scales[8] = 0x53;            /* scale 4 low bits 3, min 4 low bits 5 */
  q4.qs[0] = 0x0F;                /* e0 = 15 */
  q4.qs[64] = 0x01;               /* e128 (sub-block 4) = 1 */
  rs_dequantize_row (RS_TYPE_Q4_K, &q4, out, 256);
  g_assert_cmpfloat (out[0], ==, 28.0f);     /* 1*2*15 - 0.5*4 */
  g_assert_cmpfloat (out[32], ==, 0.0f);
  g_assert_cmpfloat (out[128], ==, 16.5f);   /* 1*19*1 - 0.5*5 */

  RsBlockQ6K q6;
  memset (&q6, 0, sizeof q6);
  q6.d = 0x3800;                  /* 0.5 */
  q6.scales[0] = 2;
  q6.scales[4] = -1;
  q6.ql[0] = 0x3A;                /* e0 low 4 bits 10, e64 low 4 bits 3 */
  q6.qh[0] = 0x02;                /* e0 high bits 2 -> 42 - 32 = 10; e64 -> 3 - 32 */
  rs_dequantize_row (RS_TYPE_Q6_K, &q6, out, 256);
  g_assert_cmpfloat (out[0], ==, 10.0f);
  g_assert_cmpfloat (out[64], ==, 14.5f);
  g_assert_cmpfloat (out[32], ==, 0.0f);     /* scale 2 is 0 */

  RsBlockIQ4XS xs;
  memset (&xs, 0, sizeof xs);
  xs.d = 0x3800;                  /* 0.5 */
  xs.scales_l[0] = 0x21;          /* sub-block 0 low 1, sub-block 1 low 2 */
  xs.scales_h = 0x0002;           /* sub-block 0 high 2 -> 33 - 32 = 1; sub-block 1 -> 2 - 32 */
  xs.qs[0] = 0xF0;                /* e0 -> -127, e16 -> 113 */
  xs.qs[16] = 0x08;               /* e32 -> 1 */
  rs_dequantize_row (RS_TYPE_IQ4_XS, &xs, out, 256);
  g_assert_cmpfloat (out[0], ==, -63.5f);
  g_assert_cmpfloat (out[16], ==, 56.5f);
  g_assert_cmpfloat (out[32], ==, -15.0f);

  RsBlockMXFP4 mx;
  memset (&mx, 0, sizeof mx);
  mx.e = 128;                     /* scale 2 */
  mx.qs[0] = 0x7F;                /* e0: -6, e16: 6 */
  mx.qs[1] = 0x91;                /* e1: 0.5, e17: -0.5 */
  rs_dequantize_row (RS_TYPE_MXFP4, &mx, out, 32);
  g_assert_cmpfloat (out[0], ==, -12.0f);
  g_assert_cmpfloat (out[16], ==, 12.0f);
  g_assert_cmpfloat (out[1], ==, 1.0f);
  g_assert_cmpfloat (out[17], ==, -1.0f);
}

/* ------------------------------------------------------------------ */
/* random rows                                                         */

static void
fill_gauss (GRand *r, float *x, int64_t n)
{
  for (int64_t i = 0; i < n; i++) {
    double u1 = g_rand_double (r) + 1e-300, u2 = g_rand_double (r);
    x[i] = (float) (sqrt (-2.0 * log (u1)) * cos (2.0 * G_PI * u2));
  }
}

typedef struct { RsType t; double rms, maxabs; } ErrBound;

/* Relative RMS error and worst absolute error for N(0,1) data; measured
 * with some margin for round-to-nearest with min/max scale choice. */
static const ErrBound roundtrip_bounds[] = {
  { RS_TYPE_F32, 0.0, 0.0 },       { RS_TYPE_F16, 3e-4, 2e-3 },
  { RS_TYPE_BF16, 2.5e-3, 2e-2 },  { RS_TYPE_Q4_0, 0.11, 0.5 },
  { RS_TYPE_Q4_1, 0.10, 0.3 },     { RS_TYPE_Q5_0, 0.055, 0.25 },
  { RS_TYPE_Q5_1, 0.05, 0.15 },    { RS_TYPE_Q8_0, 0.007, 0.025 },
  { RS_TYPE_Q2_K, 0.40, 1.4 },     { RS_TYPE_Q3_K, 0.20, 1.0 },
  { RS_TYPE_Q4_K, 0.10, 0.3 },     { RS_TYPE_Q5_K, 0.05, 0.15 },
  { RS_TYPE_Q6_K, 0.025, 0.12 },   { RS_TYPE_IQ4_NL, 0.10, 0.4 },
  { RS_TYPE_IQ4_XS, 0.10, 0.45 },  { RS_TYPE_MXFP4, 0.15, 1.2 },
};

static void
test_roundtrip (void)
{
  GRand *r = g_rand_new_with_seed (42);
  const int64_t n = 8192;
  float *x = g_new (float, n), *y = g_new (float, n);
  guint8 *q = g_malloc (n * 4);
  fill_gauss (r, x, n);
  for (guint k = 0; k < G_N_ELEMENTS (roundtrip_bounds); k++) {
    const ErrBound *b = &roundtrip_bounds[k];
    g_assert_true (rs_quantize_row (b->t, x, q, n));
    rs_dequantize_row (b->t, q, y, n);
    double se = 0, sx = 0, mx = 0;
    for (int64_t i = 0; i < n; i++) {
      const double e = (double) y[i] - x[i];
      se += e * e;
      sx += (double) x[i] * x[i];
      mx = fmax (mx, fabs (e));
    }
    const double rel = sqrt (se / sx);
    g_test_message ("%-7s rel rms %.5f max %.5f", rs_type_name (b->t), rel, mx);
    if (rel > b->rms || mx > b->maxabs)
      g_error ("%s round trip: rel rms %g (bound %g), max %g (bound %g)",
               rs_type_name (b->t), rel, b->rms, mx, b->maxabs);
    if (b->t == RS_TYPE_F32)
      g_assert_cmpmem (x, n * 4, y, n * 4);
  }

  /* zeros stay zeros */
  memset (x, 0, n * sizeof (float));
  for (guint k = 0; k < N_SUPPORTED; k++) {
    g_assert_true (rs_quantize_row (supported_types[k], x, q, n));
    rs_dequantize_row (supported_types[k], q, y, n);
    for (int64_t i = 0; i < n; i++)
      g_assert_cmpfloat (y[i], ==, 0.0f);
  }

  /* a constant row: types with an offset or a -8..7 style range hit it
   * (nearly) exactly */
  for (int64_t i = 0; i < n; i++)
    x[i] = 0.75f;
  g_assert_true (rs_quantize_row (RS_TYPE_Q8_0, x, q, n));
  rs_dequantize_row (RS_TYPE_Q8_0, q, y, n);
  for (int64_t i = 0; i < n; i++)
    g_assert_cmpfloat_with_epsilon (y[i], 0.75f, 1e-3);
  g_free (x);
  g_free (y);
  g_free (q);
  g_rand_free (r);
}

/* Activation quantisers: their extra fields (Q8_1 s, Q8_K bsums) and
 * accuracy. */
static void
test_quantize_act (void)
{
  GRand *r = g_rand_new_with_seed (7);
  const int64_t n = 1024;
  float x[1024], y[1024];
  fill_gauss (r, x, n);
  x[5] = 0.0f;

  float copy[1024];
  rs_quantize_act (RS_TYPE_F32, x, copy, n);
  g_assert_cmpmem (copy, sizeof copy, x, sizeof x);

  RsBlockQ8_0 a0[32];
  rs_quantize_act (RS_TYPE_Q8_0, x, a0, n);
  rs_dequantize_row (RS_TYPE_Q8_0, a0, y, n);
  for (int b = 0; b < 32; b++) {
    float amax = 0;
    for (int l = 0; l < 32; l++)
      amax = fmaxf (amax, fabsf (x[32 * b + l]));
    const float d = rs_fp16_to_fp32 (a0[b].d);
    g_assert_cmpfloat_with_epsilon (d, amax / 127.0f, amax * 1e-3);
    for (int l = 0; l < 32; l++) {
      g_assert_cmpint (a0[b].qs[l], >=, -127);
      g_assert_cmpfloat (fabsf (y[32 * b + l] - x[32 * b + l]), <=, 0.5f * d + fabsf (x[32 * b + l]) * 1e-3f);
    }
  }

  RsBlockQ8_1 a1[32];
  rs_quantize_act (RS_TYPE_Q8_1, x, a1, n);
  for (int b = 0; b < 32; b++) {
    int sum = 0;
    for (int l = 0; l < 32; l++)
      sum += a1[b].qs[l];
    const float want_s = (float) sum * (rs_fp16_to_fp32 (a1[b].d));
    /* s uses the unrounded d: within fp16 rounding of both */
    g_assert_cmpfloat (fabsf (rs_fp16_to_fp32 (a1[b].s) - want_s), <=, fabsf (want_s) * 2e-3f + 1e-6f);
    g_assert_cmpmem (a1[b].qs, 32, a0[b].qs, 32);
  }

  RsBlockQ8K ak[4];
  rs_quantize_act (RS_TYPE_Q8_K, x, ak, n);
  rs_dequantize_row (RS_TYPE_Q8_K, ak, y, n);
  for (int b = 0; b < 4; b++) {
    for (int j = 0; j < 16; j++) {
      int sum = 0;
      for (int l = 0; l < 16; l++)
        sum += ak[b].qs[16 * j + l];
      g_assert_cmpint (ak[b].bsums[j], ==, sum);
    }
    for (int l = 0; l < 256; l++) {
      g_assert_cmpint (ak[b].qs[l], >=, -127);
      g_assert_cmpfloat (fabsf (y[256 * b + l] - x[256 * b + l]), <=, 0.5001f * fabsf (ak[b].d));
    }
  }
  g_rand_free (r);
}

/* The dispatched activation quantisers must write exactly what the
 * scalar reference (rs_quantize_row) writes, ties included. */
static void
test_quantize_act_simd_exact (void)
{
  GRand *r = g_rand_new_with_seed (23);
  const int64_t n = 4096;
  float *x = g_new (float, n);
  static const RsType acts[] = { RS_TYPE_Q8_0, RS_TYPE_Q8_1, RS_TYPE_Q8_K };
  for (int rep = 0; rep < 6; rep++) {
    if (rep % 3 == 0) {
      fill_gauss (r, x, n);
    } else if (rep % 3 == 1) {
      /* halves on a scale of exactly 1: every block's amax is 127, so
       * x * (1/d) lands on .5 ties, where round-half-away (Q8_0/Q8_1)
       * and round-half-even (Q8_K) differ */
      for (int64_t i = 0; i < n; i++)
        x[i] = (i % 32 == 7) ? 127.0f : (float) rint_range (r, -253, 253) * 0.5f;
    } else {
      fill_gauss (r, x, n);
      for (int64_t i = 0; i < n; i += 3)
        x[i] = 0.0f;
      memset (x + 512, 0, 256 * sizeof (float));   /* an all-zero block */
    }
    for (guint k = 0; k < G_N_ELEMENTS (acts); k++) {
      const size_t sz = rs_type_row_size (acts[k], n);
      guint8 *a = g_malloc (sz), *b = g_malloc (sz);
      rs_quantize_act (acts[k], x, a, n);
      g_assert_true (rs_quantize_row (acts[k], x, b, n));
      if (memcmp (a, b, sz) != 0) {
        size_t i = 0;
        while (a[i] == b[i])
          i++;
        g_error ("%s pattern %d: dispatched activation differs from the reference at byte %zu",
                 rs_type_name (acts[k]), rep % 3, i);
      }
      g_free (a);
      g_free (b);
    }
  }
  /* the ties really were exercised: 0.5 -> 1 for Q8_0, 0 for Q8_K */
  float t[256];
  for (int i = 0; i < 256; i++)
    t[i] = i == 0 ? 127.0f : (i == 1 ? 0.5f : (i == 2 ? -2.5f : 0.0f));
  RsBlockQ8_0 q0[8];
  RsBlockQ8K qk;
  rs_quantize_act (RS_TYPE_Q8_0, t, q0, 256);
  rs_quantize_act (RS_TYPE_Q8_K, t, &qk, 256);
  g_assert_cmpint (q0[0].qs[1], ==, 1);
  g_assert_cmpint (q0[0].qs[2], ==, -3);
  g_assert_cmpint (qk.qs[1], ==, 0);
  g_assert_cmpint (qk.qs[2], ==, -2);
  g_free (x);
  g_rand_free (r);
}

/* ------------------------------------------------------------------ */
/* dot kernels                                                         */

/* Random weight row of @t: either quantised from random floats or raw
 * random bytes (every bit pattern, including -128 and saturating quants)
 * with the scale fields made finite. */
static void
random_weights (GRand *r, RsType t, void *w, int64_t n, bool raw)
{
  const RsTypeTraits *tr = rs_type_traits (t);
  const int64_t nb = n / tr->block_size;
  if (!raw) {
    float *x = g_new (float, n);
    fill_gauss (r, x, n);
    g_assert_true (rs_quantize_row (t, x, w, n));
    g_free (x);
    return;
  }
  guint8 *p = w;
  for (size_t i = 0; i < rs_type_row_size (t, n); i++)
    p[i] = (guint8) g_rand_int (r);
#define HALF() rs_fp32_to_fp16 ((float) g_rand_double_range (r, -1.0, 1.0))
  for (int64_t i = 0; i < nb; i++) {
    switch (t) {
    case RS_TYPE_F32: ((float *) w)[i] = (float) g_rand_double_range (r, -2, 2); break;
    case RS_TYPE_F16: ((uint16_t *) w)[i] = HALF (); break;
    case RS_TYPE_BF16: ((uint16_t *) w)[i] = rs_fp32_to_bf16 ((float) g_rand_double_range (r, -2, 2)); break;
    case RS_TYPE_Q4_0: ((RsBlockQ4_0 *) w)[i].d = HALF (); break;
    case RS_TYPE_Q4_1: ((RsBlockQ4_1 *) w)[i].d = HALF (); ((RsBlockQ4_1 *) w)[i].m = HALF (); break;
    case RS_TYPE_Q5_0: ((RsBlockQ5_0 *) w)[i].d = HALF (); break;
    case RS_TYPE_Q5_1: ((RsBlockQ5_1 *) w)[i].d = HALF (); ((RsBlockQ5_1 *) w)[i].m = HALF (); break;
    case RS_TYPE_Q8_0: ((RsBlockQ8_0 *) w)[i].d = HALF (); break;
    case RS_TYPE_Q2_K: ((RsBlockQ2K *) w)[i].d = HALF (); ((RsBlockQ2K *) w)[i].dmin = HALF (); break;
    case RS_TYPE_Q3_K: ((RsBlockQ3K *) w)[i].d = HALF (); break;
    case RS_TYPE_Q4_K: ((RsBlockQ4K *) w)[i].d = HALF (); ((RsBlockQ4K *) w)[i].dmin = HALF (); break;
    case RS_TYPE_Q5_K: ((RsBlockQ5K *) w)[i].d = HALF (); ((RsBlockQ5K *) w)[i].dmin = HALF (); break;
    case RS_TYPE_Q6_K: ((RsBlockQ6K *) w)[i].d = HALF (); break;
    case RS_TYPE_IQ4_NL: ((RsBlockIQ4NL *) w)[i].d = HALF (); break;
    case RS_TYPE_IQ4_XS: ((RsBlockIQ4XS *) w)[i].d = HALF (); break;
    case RS_TYPE_MXFP4: ((RsBlockMXFP4 *) w)[i].e = (uint8_t) rint_range (r, 110, 135); break;
    default: g_assert_not_reached ();
    }
  }
#undef HALF
}

/* Random activations already in @at: quantised from floats, or (raw)
 * random quants in -127..127 with consistent sums. */
static void
random_act (GRand *r, RsType at, void *a, int64_t n, bool raw)
{
  float *x = g_new (float, n);
  fill_gauss (r, x, n);
  rs_quantize_act (at, x, a, n);
  g_free (x);
  if (!raw || at == RS_TYPE_F32)
    return;
  const int64_t nb = n / rs_type_traits (at)->block_size;
  for (int64_t i = 0; i < nb; i++) {
    if (at == RS_TYPE_Q8_0) {
      RsBlockQ8_0 *b = (RsBlockQ8_0 *) a + i;
      for (int l = 0; l < 32; l++)
        b->qs[l] = (int8_t) rint_range (r, -127, 127);
    } else if (at == RS_TYPE_Q8_1) {
      RsBlockQ8_1 *b = (RsBlockQ8_1 *) a + i;
      int s = 0;
      for (int l = 0; l < 32; l++)
        s += b->qs[l] = (int8_t) rint_range (r, -127, 127);
      b->s = rs_fp32_to_fp16 ((float) s * rs_fp16_to_fp32 (b->d));
    } else {
      RsBlockQ8K *b = (RsBlockQ8K *) a + i;
      for (int j = 0; j < 16; j++) {
        int s = 0;
        for (int l = 0; l < 16; l++)
          s += b->qs[16 * j + l] = (int8_t) rint_range (r, -127, 127);
        b->bsums[j] = (int16_t) s;
      }
    }
  }
}

/* The dispatched (SIMD) row dequantiser must be bit-identical to the
 * scalar block helpers, for every bit pattern of quants and for scales
 * that are not exact (so any fused multiply-add or reordering shows). */
static void
test_dequant_simd_exact (void)
{
  GRand *r = g_rand_new_with_seed (17);
  const int64_t n = 2048;
  float *a = g_new (float, n + 1), *b = g_new (float, n + 1);
  for (guint k = 0; k < N_SUPPORTED; k++) {
    const RsType t = supported_types[k];
    guint8 *w = g_malloc (rs_type_row_size (t, n));
    for (int rep = 0; rep < 8; rep++) {
      random_weights (r, t, w, n, rep % 2 == 0);
      /* odd lengths for the per-element types exercise the tails */
      const int64_t len = rs_type_traits (t)->block_size == 1 ? n - rep : n;
      a[len] = b[len] = 42.0f;
      rs_dequantize_row (t, w, a, len);
      rs_dequantize_row_scalar (t, w, b, len);
      g_assert_cmpfloat (a[len], ==, 42.0f);   /* no write past the end */
      for (int64_t i = 0; i < len; i++)
        if (memcmp (&a[i], &b[i], 4) != 0 && !(isnan (a[i]) && isnan (b[i])))
          g_error ("%s element %" G_GINT64_FORMAT ": dispatched %.9g, scalar %.9g",
                   rs_type_name (t), i, a[i], b[i]);
    }
    g_free (w);
  }
  g_free (a);
  g_free (b);
  g_rand_free (r);
}

/* Checks one weight row against one activation row: the dispatched and
 * scalar kernels agree tightly with each other and with a double-precision
 * dot of the dequantised rows. */
static void
check_dot (RsType t, int64_t n, const void *w, const void *a, const char *what)
{
  const RsType at = rs_act_type (t);
  float *wf = g_new (float, n), *af = g_new (float, n);
  rs_dequantize_row (t, w, wf, n);
  rs_dequantize_row (at, a, af, n);
  double ref = 0, mag = 0;
  for (int64_t i = 0; i < n; i++) {
    ref += (double) wf[i] * af[i];
    mag += fabs ((double) wf[i] * af[i]);
  }
  /* Q8_1 carries d * sum(qs) rounded to fp16, computed from the unrounded
   * d; that term is exact in the kernels but not in the dequantised dot. */
  double slack = 0;
  if (at == RS_TYPE_Q8_1) {
    const RsBlockQ8_1 *ab = a;
    for (int64_t i = 0; i < n / 32; i++) {
      const float m = t == RS_TYPE_Q4_1 ? rs_fp16_to_fp32 (((const RsBlockQ4_1 *) w)[i].m)
                                        : rs_fp16_to_fp32 (((const RsBlockQ5_1 *) w)[i].m);
      slack += fabs (m) * (fabs (rs_fp16_to_fp32 (ab[i].s)) * 2e-3 + 1e-7);
    }
  }
  const float s = rs_vec_dot_fn_scalar (t) (n, w, a);
  const float v = rs_vec_dot_fn (t) (n, w, a);
  const double tol = 2e-6 * mag + 1e-43;   /* a few subnormal ulps */
  if (fabs ((double) v - s) > tol)
    g_error ("%s %s n=%" G_GINT64_FORMAT ": %s kernel %.9g vs scalar %.9g (tol %g)",
             rs_type_name (t), what, n, rs_vec_dot_impl_name (t), v, s, tol);
  if (fabs ((double) s - ref) > 4e-6 * mag + slack + 1e-43)
    g_error ("%s %s n=%" G_GINT64_FORMAT ": scalar %.9g vs dequantised reference %.9g (mag %g)",
             rs_type_name (t), what, n, s, ref, mag);
  g_free (wf);
  g_free (af);
}

static void
test_dot_agree (gconstpointer data)
{
  const RsType t = GPOINTER_TO_INT (data);
  const int64_t bs = rs_type_traits (t)->block_size;
  const RsType at = rs_act_type (t);
  GRand *r = g_rand_new_with_seed (1000 + t);
  g_test_message ("%s: dispatched kernel %s", rs_type_name (t), rs_vec_dot_impl_name (t));

  int64_t lens[16];
  guint nl = 0;
  if (bs == 1) {
    static const int64_t fl[] = { 1, 3, 7, 8, 9, 31, 32, 33, 100, 255, 4096, 4099 };
    for (guint i = 0; i < G_N_ELEMENTS (fl); i++)
      lens[nl++] = fl[i];
  } else {
    static const int64_t nbs[] = { 1, 2, 3, 5, 16, 33 };
    for (guint i = 0; i < G_N_ELEMENTS (nbs); i++)
      lens[nl++] = nbs[i] * bs;
    lens[nl++] = 4096;
  }
  for (guint li = 0; li < nl; li++) {
    const int64_t n = lens[li];
    void *w = g_malloc (rs_type_row_size (t, n));
    void *a = g_malloc (rs_type_row_size (at, n));
    for (int rep = 0; rep < 6; rep++) {
      const bool raw_w = rep % 2 == 1, raw_a = rep >= 4;
      random_weights (r, t, w, n, raw_w);
      random_act (r, at, a, n, raw_a);
      check_dot (t, n, w, a, raw_w ? (raw_a ? "raw/raw" : "raw/quantised") : (raw_a ? "quantised/raw" : "quantised"));
    }
    g_free (w);
    g_free (a);
  }
  g_rand_free (r);
}

/* Saturation corners: every quant at its extreme against +-127
 * activations; vpmaddubsw-style kernels must not overflow int16. */
static void
test_dot_extremes (void)
{
  const int64_t n = 512;
  for (guint k = 0; k < N_SUPPORTED; k++) {
    const RsType t = supported_types[k];
    const RsType at = rs_act_type (t);
    if (at == RS_TYPE_F32)
      continue;
    const size_t ws = rs_type_row_size (t, n), as = rs_type_row_size (at, n);
    guint8 *w = g_malloc (ws), *a = g_malloc (as);
    for (int pattern = 0; pattern < 4; pattern++) {
      GRand *r = g_rand_new_with_seed (pattern);
      random_weights (r, t, w, n, true);
      /* keep the (finite) fp16 / e8m0 scales, force every other byte to
       * 0x00 or 0xFF: all quants and 6-bit sub-scales at their extremes */
      guint8 *save = g_memdup2 (w, ws);
      memset (w, pattern & 1 ? 0xFF : 0x00, ws);
      const RsTypeTraits *tr = rs_type_traits (t);
      for (int64_t b = 0; b < n / tr->block_size; b++) {
        guint8 *dst = w + b * tr->type_size, *src = save + b * tr->type_size;
        switch (t) {
        case RS_TYPE_Q4_1: case RS_TYPE_Q5_1: case RS_TYPE_Q4_K: case RS_TYPE_Q5_K:
          memcpy (dst, src, 4); break;              /* d, m / dmin */
        case RS_TYPE_Q2_K: memcpy (dst + 80, src + 80, 4); break;
        case RS_TYPE_Q3_K: memcpy (dst + 108, src + 108, 2); break;
        case RS_TYPE_Q6_K: memcpy (dst + 208, src + 208, 2); break;
        case RS_TYPE_MXFP4: dst[0] = src[0]; break;
        default: memcpy (dst, src, 2); break;       /* leading fp16 d */
        }
      }
      g_free (save);
      random_act (r, at, a, n, false);
      /* activations all at +-127 */
      const int64_t nab = n / rs_type_traits (at)->block_size;
      for (int64_t b = 0; b < nab; b++) {
        int8_t *qs = at == RS_TYPE_Q8_0 ? ((RsBlockQ8_0 *) a)[b].qs
                   : at == RS_TYPE_Q8_1 ? ((RsBlockQ8_1 *) a)[b].qs : ((RsBlockQ8K *) a)[b].qs;
        const int len = at == RS_TYPE_Q8_K ? 256 : 32;
        for (int l = 0; l < len; l++)
          qs[l] = (int8_t) ((pattern & 2) ? ((l & 1) ? -127 : 127) : 127);
        if (at == RS_TYPE_Q8_1)
          ((RsBlockQ8_1 *) a)[b].s = rs_fp32_to_fp16 ((pattern & 2 ? 0.0f : 32 * 127.0f) *
                                                      rs_fp16_to_fp32 (((RsBlockQ8_1 *) a)[b].d));
        if (at == RS_TYPE_Q8_K)
          for (int j = 0; j < 16; j++)
            ((RsBlockQ8K *) a)[b].bsums[j] = (int16_t) ((pattern & 2) ? 0 : 16 * 127);
      }
      check_dot (t, n, w, a, "extreme");
      g_rand_free (r);
    }
    g_free (w);
    g_free (a);
  }
}

/* MXFP4 scales at the bottom of the E8M0 range are subnormal floats
 * (2^-128, 2^-127), which the kernels build separately. */
static void
test_dot_mxfp4_tiny_scales (void)
{
  GRand *r = g_rand_new_with_seed (5);
  const int64_t n = 1024;
  RsBlockMXFP4 w[32];
  RsBlockQ8_0 a[32];
  static const uint8_t exps[] = { 0, 1, 2, 3, 200 };
  for (guint k = 0; k < G_N_ELEMENTS (exps); k++) {
    random_weights (r, RS_TYPE_MXFP4, w, n, true);
    for (int b = 0; b < 32; b++)
      w[b].e = (b % 3 == 0) ? exps[k] : exps[(k + b) % G_N_ELEMENTS (exps)] % 4;
    random_act (r, RS_TYPE_Q8_0, a, n, false);
    check_dot (RS_TYPE_MXFP4, n, w, a, "tiny scales");
    float got[1024];
    rs_dequantize_row (RS_TYPE_MXFP4, w, got, n);
    for (int64_t i = 0; i < n; i++) {
      const RsBlockMXFP4 *b = &w[i / 32];
      const int q = (b->qs[(i % 32) % 16] >> (4 * ((i % 32) / 16))) & 0xF;
      g_assert_cmpfloat (got[i], ==, ldexpf (e2m1_values[q], b->e - 127));
    }
  }
  g_rand_free (r);
}

/* The point of quantising activations: dot(W, q(x)) stays close to
 * dot(dequant(W), x). Bound: per element |w| * (half a step of the
 * activation block + fp16 rounding of the step), plus summation noise. */
static void
test_dot_vs_float (void)
{
  GRand *r = g_rand_new_with_seed (99);
  const int64_t n = 2048;
  float *x = g_new (float, n), *wf = g_new (float, n), *xq = g_new (float, n);
  for (guint k = 0; k < N_SUPPORTED; k++) {
    const RsType t = supported_types[k], at = rs_act_type (t);
    void *w = g_malloc (rs_type_row_size (t, n));
    void *a = g_malloc (rs_type_row_size (at, n));
    for (int rep = 0; rep < 4; rep++) {
      random_weights (r, t, w, n, false);
      fill_gauss (r, x, n);
      rs_dequantize_row (t, w, wf, n);
      rs_quantize_act (at, x, a, n);
      rs_dequantize_row (at, a, xq, n);
      double ref = 0, bound = 0, mag = 0;
      for (int64_t i = 0; i < n; i++) {
        ref += (double) wf[i] * x[i];
        mag += fabs ((double) wf[i] * x[i]);
        bound += fabs ((double) wf[i]) * (fabs ((double) xq[i] - x[i]) * 1.0001);
      }
      bound += 1e-5 * mag;
      /* Q8_1's s term is rounded to fp16 */
      if (at == RS_TYPE_Q8_1)
        bound += 2e-3 * mag;
      const float got = rs_vec_dot_fn (t) (n, w, a);
      if (fabs (got - ref) > bound)
        g_error ("%s: dot with quantised activations %.7g, float dot %.7g, bound %g",
                 rs_type_name (t), got, ref, bound);
      /* the bound must be meaningful: well below the typical magnitude */
      if (at != RS_TYPE_F32)
        g_assert_cmpfloat (bound, <, 0.05 * mag);
    }
    g_free (w);
    g_free (a);
  }
  g_free (x);
  g_free (wf);
  g_free (xq);
  g_rand_free (r);
}

/* ------------------------------------------------------------------ */
/* CPU features and dispatch                                           */

static void
test_cpu_dispatch (void)
{
  const RsCpuFeatures *f = rs_cpu_features ();
  g_assert_nonnull (f);
  g_assert_true (f == rs_cpu_features ());
  const char *cap = g_getenv ("ROUTESCOPE_SIMD");
#if defined(__x86_64__) && defined(__GNUC__)
  if (!cap) {
    /* the compiler runtime's own detection (which also checks OS state) */
    g_assert_cmpint (f->avx2, ==, !!__builtin_cpu_supports ("avx2"));
    g_assert_cmpint (f->fma, ==, !!__builtin_cpu_supports ("fma"));
    g_assert_cmpint (f->avx512f, ==, !!__builtin_cpu_supports ("avx512f"));
    g_assert_cmpint (f->avx512bw, ==, !!__builtin_cpu_supports ("avx512bw"));
    g_assert_cmpint (f->avx512vl, ==, !!__builtin_cpu_supports ("avx512vl"));
    g_assert_cmpint (f->avx512vnni, ==, !!__builtin_cpu_supports ("avx512vnni"));
  }
#endif
  g_test_message ("avx2 %d fma %d f16c %d avx512f %d bw %d vl %d vnni %d bf16 %d", f->avx2, f->fma,
                  f->f16c, f->avx512f, f->avx512bw, f->avx512vl, f->avx512vnni, f->avx512bf16);
  const bool simd = f->avx2 && f->fma && f->f16c;
  for (guint k = 0; k < N_SUPPORTED; k++) {
    const RsType t = supported_types[k];
    const char *name = rs_vec_dot_impl_name (t);
    if (simd) {
      /* every supported type has at least an AVX2 kernel */
      g_assert_cmpstr (name, !=, "scalar");
      g_assert_true (rs_vec_dot_fn (t) != rs_vec_dot_fn_scalar (t));
    } else {
      g_assert_cmpstr (name, ==, "scalar");
      g_assert_true (rs_vec_dot_fn (t) == rs_vec_dot_fn_scalar (t));
    }
  }
}

/* ROUTESCOPE_SIMD must be read before the first detection, so these run in
 * a child process that sets it first. */
static void
test_simd_env_scalar (void)
{
  if (g_test_subprocess ()) {
    g_setenv ("ROUTESCOPE_SIMD", "scalar", TRUE);
    const RsCpuFeatures *f = rs_cpu_features ();
    g_assert_false (f->avx2 || f->fma || f->f16c || f->avx512f || f->avx512bw ||
                    f->avx512vl || f->avx512vnni || f->avx512bf16);
    for (guint k = 0; k < N_SUPPORTED; k++) {
      const RsType t = supported_types[k];
      g_assert_cmpstr (rs_vec_dot_impl_name (t), ==, "scalar");
      g_assert_true (rs_vec_dot_fn (t) == rs_vec_dot_fn_scalar (t));
    }
    /* and the scalar path computes */
    GRand *r = g_rand_new_with_seed (3);
    guint8 w[144 * 2], a[292 * 2];
    random_weights (r, RS_TYPE_Q4_K, w, 512, false);
    random_act (r, RS_TYPE_Q8_K, a, 512, false);
    check_dot (RS_TYPE_Q4_K, 512, w, a, "scalar env");
    float d1[512], d2[512];
    rs_dequantize_row (RS_TYPE_Q4_K, w, d1, 512);
    for (int b = 0; b < 2; b++)
      rs_block_dequant_q4_k ((const RsBlockQ4K *) w + b, d2 + 256 * b);
    g_assert_cmpmem (d1, sizeof d1, d2, sizeof d2);
    g_rand_free (r);
    return;
  }
  g_test_trap_subprocess (NULL, 0, 0);
  g_test_trap_assert_passed ();
}

static void test_dot_agree (gconstpointer data);
static void test_dot_extremes (void);

/* With AVX-512 capped off the AVX2 kernels of the types that have an
 * AVX-512 variant are the ones dispatched: run the kernel checks again on
 * them in the child. */
static void
test_simd_env_avx2 (void)
{
  if (g_test_subprocess ()) {
    g_setenv ("ROUTESCOPE_SIMD", "avx2", TRUE);
    const RsCpuFeatures *f = rs_cpu_features ();
    g_assert_false (f->avx512f || f->avx512bw || f->avx512vl || f->avx512vnni || f->avx512bf16);
    if (!(f->avx2 && f->fma && f->f16c))
      return;
    for (guint k = 0; k < N_SUPPORTED; k++) {
      g_assert_cmpstr (rs_vec_dot_impl_name (supported_types[k]), ==, "avx2");
      test_dot_agree (GINT_TO_POINTER (supported_types[k]));
    }
    test_dot_extremes ();
    return;
  }
  g_test_trap_subprocess (NULL, 0, 0);
  g_test_trap_assert_passed ();
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/quant/traits", test_traits);
  g_test_add_func ("/quant/conversions", test_conversions);
  g_test_add_func ("/quant/dequant-literal", test_dequant_literal);
  for (guint k = 0; k < N_SUPPORTED; k++) {
    const RsType t = supported_types[k];
    if (builder_for (t)) {
      g_autofree char *p = g_strdup_printf ("/quant/dequant-built/%s", rs_type_name (t));
      g_test_add_data_func (p, GINT_TO_POINTER (t), test_dequant_built);
    }
  }
  g_test_add_func ("/quant/dequant-simd-exact", test_dequant_simd_exact);
  g_test_add_func ("/quant/roundtrip", test_roundtrip);
  g_test_add_func ("/quant/quantize-act", test_quantize_act);
  g_test_add_func ("/quant/quantize-act-simd-exact", test_quantize_act_simd_exact);
  for (guint k = 0; k < N_SUPPORTED; k++) {
    const RsType t = supported_types[k];
    g_autofree char *p = g_strdup_printf ("/quant/dot-agree/%s", rs_type_name (t));
    g_test_add_data_func (p, GINT_TO_POINTER (t), test_dot_agree);
  }
  g_test_add_func ("/quant/dot-extremes", test_dot_extremes);
  g_test_add_func ("/quant/dot-mxfp4-tiny-scales", test_dot_mxfp4_tiny_scales);
  g_test_add_func ("/quant/dot-vs-float", test_dot_vs_float);
  g_test_add_func ("/quant/cpu-dispatch", test_cpu_dispatch);
  g_test_add_func ("/quant/simd-env-scalar", test_simd_env_scalar);
  g_test_add_func ("/quant/simd-env-avx2", test_simd_env_avx2);
  return g_test_run ();
}
