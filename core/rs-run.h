/* rs-run.h: one observed run of a model: prompt, token-by-token
 * generation, interventions and the routing trace they produce.
 *
 * This is what the CLI and the GUI's worker drive. Every router stage the
 * engine runs is recorded into the run's RsTrace (trace index = token
 * position). Interventions take effect from their from_token; when one
 * reaches back into tokens already run (e.g. from_token 0 on the prompt),
 * rs_run_replay re-runs the sequence so that the trace and the KV cache
 * reflect it.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <glib.h>

#include "rs-engine.h"
#include "rs-intervention.h"
#include "rs-sampler.h"
#include "rs-tokenizer.h"
#include "rs-trace.h"

G_BEGIN_DECLS

typedef struct {
  RsSessionParams session;
  RsSamplerParams sampler;
  gboolean        no_probes;  /* no router observer: the trace gets token ids only */
} RsRunParams;

typedef struct _RsRun RsRun;

/* @model and @tok are borrowed and must outlive the run. */
RsRun *rs_run_new  (const RsModel *model, const RsTokenizer *tok, const RsRunParams *params,
                    GError **error);
void   rs_run_free (RsRun *run);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RsRun, rs_run_free)

/* Replaces the interventions (validated against the model first; on
 * error nothing changes). They apply to tokens evaluated from now on;
 * call rs_run_replay to apply them to tokens already run. */
gboolean rs_run_set_interventions (RsRun *run, const RsIntervention *ivs, int n, GError **error);
const RsIntervention *rs_run_interventions (const RsRun *run, int *n);

/* Tokenises @text (BOS as the model's metadata says, special tokens
 * parsed) and runs it as the prompt. Only on an empty run. */
gboolean rs_run_prompt_text (RsRun *run, const char *text, GError **error);
/* Runs prompt token ids. Only on an empty run. */
gboolean rs_run_prompt_ids  (RsRun *run, const int32_t *ids, int n, GError **error);

/* Chooses the next token from the current logits with the sampler (or
 * takes @forced >= 0, for teacher forcing), records it and runs it.
 * @out gets the token. Fails at the end of the context. */
gboolean rs_run_step (RsRun *run, int32_t forced, int32_t *out, GError **error);

/* Re-runs every token of the trace with the current interventions
 * (generated tokens are kept: teacher-forced). */
gboolean rs_run_replay (RsRun *run, GError **error);

/* Logits [n_vocab] of the next-token distribution (after the last token). */
const float *rs_run_logits    (const RsRun *run);
/* Whether the last token ends generation (EOS/EOT). */
gboolean     rs_run_at_eog    (const RsRun *run);
RsTrace     *rs_run_trace     (const RsRun *run);
RsSession   *rs_run_session   (const RsRun *run);
const RsModel *rs_run_model   (const RsRun *run);
const RsTokenizer *rs_run_tokenizer (const RsRun *run);
/* Decode and prefill speed of this run so far (tokens/s; 0 when none). */
void         rs_run_speed     (const RsRun *run, double *prefill_tok_s, double *decode_tok_s);
/* Thread-safe: stops the running step or prompt (RS_ERROR_CANCELLED). */
void         rs_run_cancel    (RsRun *run);

/* Fills the trace's metadata (model, file, prompt, sampling, interventions,
 * engine version) from the run. */
void rs_run_update_metadata (RsRun *run, const char *prompt);

G_END_DECLS
