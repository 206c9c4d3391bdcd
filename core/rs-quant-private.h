/* rs-quant-private.h: SIMD dot kernels shared between rs-quant.c (the
 * dispatcher) and the ISA-specific files compiled with their own -m flags.
 * Not installed; not part of the library API.
 *
 * Every kernel has the RsVecDotFn shape: (n, weight row, activation row in
 * rs_act_type (weight type)) -> dot product.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <stdint.h>

/* rs-quant-avx2.c: needs AVX2 + FMA + F16C. */
float rs_vec_dot_f32_avx2    (int64_t n, const void *w, const void *act);
float rs_vec_dot_f16_avx2    (int64_t n, const void *w, const void *act);
float rs_vec_dot_bf16_avx2   (int64_t n, const void *w, const void *act);
float rs_vec_dot_q4_0_avx2   (int64_t n, const void *w, const void *act);
float rs_vec_dot_q4_1_avx2   (int64_t n, const void *w, const void *act);
float rs_vec_dot_q5_0_avx2   (int64_t n, const void *w, const void *act);
float rs_vec_dot_q5_1_avx2   (int64_t n, const void *w, const void *act);
float rs_vec_dot_q8_0_avx2   (int64_t n, const void *w, const void *act);
float rs_vec_dot_q2_k_avx2   (int64_t n, const void *w, const void *act);
float rs_vec_dot_q3_k_avx2   (int64_t n, const void *w, const void *act);
float rs_vec_dot_q4_k_avx2   (int64_t n, const void *w, const void *act);
float rs_vec_dot_q5_k_avx2   (int64_t n, const void *w, const void *act);
float rs_vec_dot_q6_k_avx2   (int64_t n, const void *w, const void *act);
float rs_vec_dot_iq4_nl_avx2 (int64_t n, const void *w, const void *act);
float rs_vec_dot_iq4_xs_avx2 (int64_t n, const void *w, const void *act);
float rs_vec_dot_mxfp4_avx2  (int64_t n, const void *w, const void *act);

/* rs-quant-avx512.c: needs AVX-512 F/BW/VL and VNNI (plus the AVX2 set). */
float rs_vec_dot_q8_0_avx512 (int64_t n, const void *w, const void *act);
float rs_vec_dot_q4_k_avx512 (int64_t n, const void *w, const void *act);
float rs_vec_dot_q6_k_avx512 (int64_t n, const void *w, const void *act);
float rs_vec_dot_q5_k_avx512 (int64_t n, const void *w, const void *act);
float rs_vec_dot_q4_0_avx512 (int64_t n, const void *w, const void *act);
float rs_vec_dot_iq4_nl_avx512 (int64_t n, const void *w, const void *act);
float rs_vec_dot_mxfp4_avx512 (int64_t n, const void *w, const void *act);
float rs_vec_dot_q2_k_avx512 (int64_t n, const void *w, const void *act);
float rs_vec_dot_q3_k_avx512 (int64_t n, const void *w, const void *act);
float rs_vec_dot_iq4_xs_avx512 (int64_t n, const void *w, const void *act);

/* Row dequantisers, bit-identical to the RS_HD block helpers. */
typedef void (*RsDequantFn) (const void *src, float *dst, int64_t n);
void rs_dequant_f16_avx2    (const void *src, float *dst, int64_t n);
void rs_dequant_bf16_avx2   (const void *src, float *dst, int64_t n);
void rs_dequant_q4_0_avx2   (const void *src, float *dst, int64_t n);
void rs_dequant_q4_1_avx2   (const void *src, float *dst, int64_t n);
void rs_dequant_q5_0_avx2   (const void *src, float *dst, int64_t n);
void rs_dequant_q5_1_avx2   (const void *src, float *dst, int64_t n);
void rs_dequant_q8_0_avx2   (const void *src, float *dst, int64_t n);
void rs_dequant_q2_k_avx2   (const void *src, float *dst, int64_t n);
void rs_dequant_q3_k_avx2   (const void *src, float *dst, int64_t n);
void rs_dequant_q4_k_avx2   (const void *src, float *dst, int64_t n);
void rs_dequant_q5_k_avx2   (const void *src, float *dst, int64_t n);
void rs_dequant_q6_k_avx2   (const void *src, float *dst, int64_t n);
void rs_dequant_iq4_nl_avx2 (const void *src, float *dst, int64_t n);
void rs_dequant_iq4_xs_avx2 (const void *src, float *dst, int64_t n);
void rs_dequant_mxfp4_avx2  (const void *src, float *dst, int64_t n);

/* Activation quantisers, bit-identical to rs_quantize_row's. */
typedef void (*RsQuantActFn) (const float *src, void *dst, int64_t n);
void rs_quantize_act_q8_0_avx2 (const float *src, void *dst, int64_t n);
void rs_quantize_act_q8_1_avx2 (const float *src, void *dst, int64_t n);
void rs_quantize_act_q8_k_avx2 (const float *src, void *dst, int64_t n);
