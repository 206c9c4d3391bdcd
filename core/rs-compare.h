/* rs-compare.h: measures between a baseline run and a steered run.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <stdint.h>

/* KL(P || Q) in nats between the softmax distributions of two logit
 * vectors of length @n. */
double rs_kl_logits (const float *logits_p, const float *logits_q, int n);

/* |A ∩ B| / |A ∪ B| of two expert sets (ids < 0 are empty slots); 1 when
 * both are empty. */
double rs_jaccard (const int32_t *a, int na, const int32_t *b, int nb);
