/* rs-test-reference.h: the tests' plain reference forward pass.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "rs-model.h"

/* Logits [n_tokens, n_vocab] of every position (free with g_free). When
 * @out_routes is not NULL it receives the selected experts
 * [n_tokens, n_layer, k] (unused for dense layers). */
double *rs_reference_forward (const RsModel *model, const int32_t *tokens, int n_tokens,
                              int *out_routes);
