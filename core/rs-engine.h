/* rs-engine.h: running a model on one sequence, with an observable and
 * steerable router stage.
 *
 * An RsSession owns a KV cache, scratch buffers and a thread pool; the
 * model's weights stay in the file mapping and can be shared by several
 * sessions (the A/B comparison runs two). rs_session_eval processes a
 * batch of tokens at the current position (prefill) or a single token
 * (decode) and returns logits.
 *
 * At every MoE layer the router stage computes, per token, the raw
 * logits, applies the layer's RsRouterControl (interventions), routes by
 * the architecture's rule (rs_route_token) and runs only the selected
 * experts. After the layer, the observer (if any) receives an
 * RsRouterRecord with everything the stage saw and did.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "rs-model.h"
#include "rs-router.h"

G_BEGIN_DECLS

typedef struct {
  int n_ctx;     /* tokens the KV cache holds; 0: min(4096, the model's context length) */
  int n_threads; /* <= 0: one per online CPU */
  int n_batch;   /* most tokens per forward step; 0: 512 */
} RsSessionParams;

/* What one MoE layer's router stage did for a batch of tokens. All
 * arrays are valid only during the observer call. */
typedef struct {
  int                  layer;
  int64_t              pos0;         /* position of the first token */
  int64_t              n_tokens;
  int                  n_expert;
  int                  k;            /* the model's experts per token */
  const float         *logits;       /* [n_tokens, n_expert] raw router logits (router bias included) */
  const float         *scores;       /* [n_tokens, n_expert] scores after interventions */
  const RsRouteResult *routes;       /* [n_tokens] what ran */
  const RsRouteResult *routes_base;  /* [n_tokens] what the untouched router chose; NULL when
                                        no intervention is active at this layer */
  const float         *expert_out_maxabs; /* [n_tokens, RS_MAX_EXPERTS_USED], slot j belongs to
                                             routes[t].selected[j]: max |down-projection output| */
  const int32_t       *expert_out_argmax; /* same shape: the channel of that maximum */
  const float         *shared_gate;  /* [n_tokens] sigmoid gate of the shared expert, or NULL */
  const float         *resid_maxabs; /* [n_tokens] max |residual stream| after the layer */
} RsRouterRecord;

typedef void (*RsRouterObserver) (void *user_data, const RsRouterRecord *record);

typedef struct _RsSession RsSession;

/* @model is borrowed and must outlive the session. */
RsSession *rs_session_new  (const RsModel *model, const RsSessionParams *params, GError **error);
void       rs_session_free (RsSession *session);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RsSession, rs_session_free)

const RsModel *rs_session_model     (const RsSession *session);
int            rs_session_n_ctx     (const RsSession *session);
int            rs_session_n_threads (const RsSession *session);
/* Tokens in the KV cache. */
int            rs_session_pos       (const RsSession *session);
/* Forgets everything from position @pos on (0 clears the sequence). */
void           rs_session_truncate  (RsSession *session, int pos);

/* Runs @n tokens from the current position. @logits receives the last
 * token's logits [n_vocab], or with @all_logits every token's [n, n_vocab]
 * (may be NULL). Fails (and changes nothing) when the context would
 * overflow or a token id is out of range; returns RS_ERROR_CANCELLED after
 * rs_session_cancel, with the sequence truncated back to where it was. */
gboolean rs_session_eval (RsSession *session, const int32_t *tokens, int n, float *logits,
                          gboolean all_logits, GError **error);

/* Thread-safe: makes the running (or next) rs_session_eval stop early. */
void rs_session_cancel (RsSession *session);

void rs_session_set_router_observer (RsSession *session, RsRouterObserver observer,
                                     void *user_data);

/* Interventions of one layer from the next eval on; NULL removes them.
 * The arrays in @control are copied. Fails for a layer out of range or a
 * layer without experts. */
gboolean rs_session_set_router_control (RsSession *session, int layer,
                                        const RsRouterControl *control, GError **error);

G_END_DECLS
