/* rs-sampler.c
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "rs-sampler.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
  int32_t id;
  float   p;
} Candidate;

struct _RsSampler {
  RsSamplerParams params;
  int             n_vocab;
  Candidate      *cand; /* [n_vocab] */
  uint64_t        state;
};

RsSampler *
rs_sampler_new (const RsSamplerParams *params, int n_vocab)
{
  RsSampler *s = g_new0 (RsSampler, 1);
  s->params = *params;
  s->n_vocab = n_vocab;
  s->cand = g_new (Candidate, n_vocab);
  s->state = params->seed ^ 0x9e3779b97f4a7c15ull;
  return s;
}

void
rs_sampler_free (RsSampler *s)
{
  if (s == NULL)
    return;
  g_free (s->cand);
  g_free (s);
}

/* splitmix64: a small, well-mixed generator; the seed fixes the run. */
static double
next_uniform (RsSampler *s)
{
  uint64_t z = (s->state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return (z >> 11) * (1.0 / 9007199254740992.0);
}

static int
by_p_desc (const void *a, const void *b)
{
  float pa = ((const Candidate *) a)->p, pb = ((const Candidate *) b)->p;
  return pa < pb ? 1 : pa > pb ? -1 : ((const Candidate *) a)->id - ((const Candidate *) b)->id;
}

static int32_t
argmax (const float *v, int n)
{
  int32_t best = 0;
  for (int i = 1; i < n; i++)
    if (v[i] > v[best])
      best = i;
  return best;
}

int32_t
rs_sampler_sample (RsSampler *s, const float *logits, float *prob, float *entropy)
{
  const int n = s->n_vocab;
  int32_t best = argmax (logits, n);

  if (entropy != NULL)
    *entropy = rs_logits_entropy (logits, n);
  if (prob != NULL)
    {
      double sum = 0.0;
      for (int i = 0; i < n; i++)
        sum += exp ((double) logits[i] - logits[best]);
      *prob = (float) (1.0 / sum); /* for greedy; replaced below when sampling */
    }

  if (s->params.temperature <= 0.0f)
    return best;

  const float inv_t = 1.0f / s->params.temperature;
  double sum = 0.0;
  for (int i = 0; i < n; i++)
    {
      s->cand[i].id = i;
      s->cand[i].p = expf ((logits[i] - logits[best]) * inv_t);
      sum += s->cand[i].p;
    }
  int m = n;
  gboolean sorted = FALSE;
  if (s->params.top_k > 0 && s->params.top_k < n)
    {
      qsort (s->cand, n, sizeof (Candidate), by_p_desc);
      sorted = TRUE;
      m = s->params.top_k;
    }
  if (s->params.top_p > 0.0f && s->params.top_p < 1.0f)
    {
      if (!sorted)
        qsort (s->cand, n, sizeof (Candidate), by_p_desc);
      double total = 0.0, cum = 0.0;
      for (int i = 0; i < m; i++)
        total += s->cand[i].p;
      int keep = 0;
      while (keep < m)
        {
          cum += s->cand[keep++].p;
          if (cum >= s->params.top_p * total)
            break;
        }
      m = keep;
    }
  double total = 0.0;
  for (int i = 0; i < m; i++)
    total += s->cand[i].p;
  double r = next_uniform (s) * total, acc = 0.0;
  int32_t chosen = s->cand[m - 1].id;
  for (int i = 0; i < m; i++)
    {
      acc += s->cand[i].p;
      if (r < acc)
        {
          chosen = s->cand[i].id;
          break;
        }
    }
  if (prob != NULL)
    {
      double z = 0.0;
      for (int i = 0; i < n; i++)
        z += exp ((double) logits[i] - logits[best]);
      *prob = (float) (exp ((double) logits[chosen] - logits[best]) / z);
    }
  (void) sum;
  return chosen;
}

void
rs_logits_stats (const float *logits, int n, float *max_out, float *log_z_out, float *entropy)
{
  /* With d = x - max and e = exp(d): Z = sum e, H = log Z - sum(d e) / Z.
   * Float exponentials of non-positive arguments cannot overflow. */
  float max = logits[argmax (logits, n)];
  double z = 0.0, dz = 0.0;
  for (int i = 0; i < n; i++)
    {
      float d = logits[i] - max;
      float e = expf (d);
      z += e;
      dz += (double) d * e;
    }
  double log_z = log (z);
  if (max_out != NULL)
    *max_out = max;
  if (log_z_out != NULL)
    *log_z_out = (float) log_z;
  if (entropy != NULL)
    *entropy = (float) (log_z - dz / z);
}

float
rs_logits_entropy (const float *logits, int n)
{
  float h;
  rs_logits_stats (logits, n, NULL, NULL, &h);
  return h;
}

void
rs_top_logits (const float *logits, int n_vocab, int n, int32_t *ids, float *values)
{
  int taken = 0;
  for (int i = 0; i < n_vocab; i++)
    {
      int pos = taken;
      while (pos > 0 && logits[ids[pos - 1]] < logits[i])
        pos--;
      if (pos >= n)
        continue;
      for (int j = MIN (taken, n - 1); j > pos; j--)
        ids[j] = ids[j - 1];
      ids[pos] = i;
      if (taken < n)
        taken++;
    }
  for (int j = 0; j < taken; j++)
    values[j] = logits[ids[j]];
}
