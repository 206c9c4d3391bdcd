/* rs-cpu.h: run-time CPU feature detection.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <stdbool.h>

typedef struct {
  bool avx2, fma, f16c;
  bool avx512f, avx512bw, avx512vl, avx512vnni, avx512bf16;
} RsCpuFeatures;

/* Detected once. Setting ROUTESCOPE_SIMD=scalar in the environment
 * reports no features (to test the fallbacks). */
const RsCpuFeatures *rs_cpu_features (void);
