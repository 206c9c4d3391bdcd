/* rs-sampler.h: choosing the next token from logits.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <glib.h>
#include <stdint.h>

typedef struct {
  float    temperature; /* <= 0: greedy */
  int      top_k;       /* <= 0: off */
  float    top_p;       /* >= 1 or <= 0: off */
  uint64_t seed;
} RsSamplerParams;

typedef struct _RsSampler RsSampler;

RsSampler *rs_sampler_new  (const RsSamplerParams *params, int n_vocab);
void       rs_sampler_free (RsSampler *sampler);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RsSampler, rs_sampler_free)

/* Picks a token from @logits [n_vocab]. When @prob is not NULL it gets the
 * chosen token's probability under softmax(logits) (temperature 1, before
 * truncation) and @entropy (nats) that distribution's entropy. */
int32_t rs_sampler_sample (RsSampler *sampler, const float *logits, float *prob, float *entropy);

/* Entropy (nats) of softmax(@logits). */
float rs_logits_entropy (const float *logits, int n_vocab);

/* One pass over @logits for what the probes record: the largest logit,
 * log of the softmax normaliser (relative to that maximum) and the
 * entropy, so that p(i) = exp(logits[i] - max - log_z). */
void rs_logits_stats (const float *logits, int n_vocab, float *max, float *log_z, float *entropy);

/* The @n best (id, logit) pairs of @logits, best first. */
void rs_top_logits (const float *logits, int n_vocab, int n, int32_t *ids, float *values);
