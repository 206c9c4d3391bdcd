/* rs-ops.h: per-row math of the forward pass, shared by the CPU engine,
 * the tests' reference and the CUDA kernels (RS_HD).
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <math.h>

#include "rs-hd.h"

/* y[i] = x[i] / sqrt(mean(x^2) + eps) * w[i]; y may alias x; w may be NULL. */
RS_HD void
rs_rmsnorm_row (const float *x, const float *w, float *y, int n, float eps)
{
  float ss = 0.0f;
  for (int i = 0; i < n; i++)
    ss += x[i] * x[i];
  float scale = 1.0f / sqrtf (ss / (float) n + eps);
  for (int i = 0; i < n; i++)
    y[i] = x[i] * scale * (w != 0 ? w[i] : 1.0f);
}

/* Rotates the first @n_rot dims of one head vector @v at position @pos.
 * neox != 0: pairs (i, i + n_rot/2) (HF rotate_half); otherwise (2i, 2i+1).
 * The angle of pair i is pos * freq_scale * base^(-2i/n_rot). */
RS_HD void
rs_rope_head (float *v, int n_rot, int neox, float pos, float base, float freq_scale)
{
  int half = n_rot / 2;
  for (int i = 0; i < half; i++)
    {
      float theta = pos * freq_scale * powf (base, -2.0f * (float) i / (float) n_rot);
      float c = cosf (theta), s = sinf (theta);
      int a = neox ? i : 2 * i;
      int b = neox ? i + half : 2 * i + 1;
      float x0 = v[a], x1 = v[b];
      v[a] = x0 * c - x1 * s;
      v[b] = x0 * s + x1 * c;
    }
}

RS_HD float
rs_silu (float x)
{
  return x / (1.0f + expf (-x));
}

/* gate[i] = silu(gate[i]) * up[i] */
RS_HD void
rs_swiglu_row (float *gate, const float *up, int n)
{
  for (int i = 0; i < n; i++)
    gate[i] = rs_silu (gate[i]) * up[i];
}
