/* rs-compare.c
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "rs-compare.h"

#include <math.h>

/* log-sum-exp of @v */
static double
log_z (const float *v, int n)
{
  double max = v[0], sum = 0.0;
  for (int i = 1; i < n; i++)
    max = v[i] > max ? v[i] : max;
  for (int i = 0; i < n; i++)
    sum += exp (v[i] - max);
  return max + log (sum);
}

double
rs_kl_logits (const float *p, const float *q, int n)
{
  double zp = log_z (p, n), zq = log_z (q, n), kl = 0.0;
  for (int i = 0; i < n; i++)
    {
      double lp = p[i] - zp, lq = q[i] - zq;
      kl += exp (lp) * (lp - lq);
    }
  return kl > 0.0 ? kl : 0.0;
}

static int
contains (const int32_t *v, int n, int32_t x)
{
  for (int i = 0; i < n; i++)
    if (v[i] == x)
      return 1;
  return 0;
}

double
rs_jaccard (const int32_t *a, int na, const int32_t *b, int nb)
{
  int inter = 0, uni = 0;
  for (int i = 0; i < na; i++)
    if (a[i] >= 0 && !contains (a, i, a[i]))
      {
        uni++;
        inter += contains (b, nb, a[i]);
      }
  for (int i = 0; i < nb; i++)
    if (b[i] >= 0 && !contains (b, i, b[i]) && !contains (a, na, b[i]))
      uni++;
  return uni == 0 ? 1.0 : (double) inter / uni;
}
