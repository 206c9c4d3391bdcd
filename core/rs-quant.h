/* rs-quant.h: dequantisation, quantisation and dot products for every
 * supported tensor type.
 *
 * Weights are dotted against activations in the type's "activation type":
 * F32 for F32/F16/BF16 weights, and an 8-bit block format for quantised
 * weights (Q8_0, Q8_1 or Q8_K, as the GGUF type family requires). The
 * dispatching entry points pick SIMD kernels at run time (AVX2/FMA/F16C,
 * AVX-512 where it pays); the *_scalar variants are the plain reference
 * the tests compare against.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rs-types.h"

/* @n elements (a multiple of the block size) of @type at @src -> @dst.
 * Uses SIMD where available; results are bit-identical to the scalar
 * reference below. */
void rs_dequantize_row (RsType type, const void *src, float *dst, int64_t n);

/* The plain per-block reference (the RS_HD helpers of rs-quant-block.h),
 * for tests and benchmarks. */
void rs_dequantize_row_scalar (RsType type, const void *src, float *dst, int64_t n);

/* Round-to-nearest quantisation of @n floats into @type blocks (for writing
 * models and tests; not the error-minimising search of llama.cpp's
 * quantizer). Returns false for types it cannot produce. */
bool rs_quantize_row (RsType type, const float *src, void *dst, int64_t n);

/* The format activations must be in for rs_vec_dot with @type weights. */
RsType rs_act_type (RsType weight_type);

/* Converts @n activations into @act_type (rs_act_type of the weights);
 * for RS_TYPE_F32 a copy. @dst holds rs_type_row_size (act_type, n). */
void rs_quantize_act (RsType act_type, const float *src, void *dst, int64_t n);

typedef float (*RsVecDotFn) (int64_t n, const void *w, const void *act);

/* Dot product of one weight row with one activation row (both @n long). */
RsVecDotFn rs_vec_dot_fn        (RsType weight_type); /* best available */
RsVecDotFn rs_vec_dot_fn_scalar (RsType weight_type); /* reference */

/* Names the kernel family rs_vec_dot_fn picked ("avx2", "scalar"...). */
const char *rs_vec_dot_impl_name (RsType weight_type);
