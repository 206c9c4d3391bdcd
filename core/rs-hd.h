/* rs-hd.h: marks inline helpers that compile for both the CPU and CUDA.
 *
 * Per-element math (dequantising a block, RMSNorm of a row, a RoPE pair,
 * top-k selection, routing rules) is written once as RS_HD static inline
 * functions in headers, so the CPU test suite exercises the code the
 * CUDA kernels run.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#ifdef __CUDACC__
#define RS_HD __host__ __device__ static inline
#else
#define RS_HD static inline
#endif
