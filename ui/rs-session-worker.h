/* rs-session-worker.h: the engine in a worker thread.
 *
 * The worker owns the model, its tokenizer and the RsRun; only its thread
 * touches them. The main thread sends commands (load, step, run, pause,
 * stop, reset, set interventions, save the trace) that return at once, and
 * gets results back on its main context: after every token the worker
 * copies the trace rows that changed and the main thread appends them to
 * its own copy of the trace (rs_session_worker_get_trace), which the views
 * read. Pause and stop act on the commands issued before them, so a quick
 * Run then Escape never loses the pause.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gio/gio.h>

#include "rs-analysis.h"
#include "rs-intervention.h"
#include "rs-router.h"
#include "rs-trace.h"

G_BEGIN_DECLS

typedef enum {
  RS_WORKER_EMPTY,    /* no model */
  RS_WORKER_LOADING,
  RS_WORKER_IDLE,     /* a model, nothing running */
  RS_WORKER_BUSY,     /* running the prompt or generating */
} RsWorkerState;

/* What the views need to know about the loaded model (main thread copy). */
typedef struct {
  char     *path;
  char     *name;          /* general.name, or the file name */
  char     *arch;
  int       n_layer;
  int       n_expert;
  int       n_expert_used;
  int       n_ctx;
  int       n_vocab;
  int       n_threads;
  guint64   file_size;
  guint64   n_params;
  guint64   n_params_active;
  gboolean *layer_is_moe;  /* [n_layer] */
  RsRoutingRule routing;
} RsModelInfo;

#define RS_TYPE_SESSION_WORKER (rs_session_worker_get_type ())
G_DECLARE_FINAL_TYPE (RsSessionWorker, rs_session_worker, RS, SESSION_WORKER, GObject)

RsSessionWorker *rs_session_worker_new (void);

/* Loads @path with @n_threads (<= 0: one per core). The current model
 * stays usable until the new one has loaded; on failure or cancellation
 * it stays. Progress: "load-progress"; then "model-loaded" or "load-failed". */
void rs_session_worker_load        (RsSessionWorker *self, const char *path, int n_threads);
void rs_session_worker_cancel_load (RsSessionWorker *self);

/* Runs @prompt first when the run is empty or the prompt differs from the
 * run's (a new run), then generates @n tokens. */
void rs_session_worker_step  (RsSessionWorker *self, const char *prompt, int n);
/* As step, but keeps generating until pause, stop, the end of generation,
 * a full context or @max_tokens tokens. */
void rs_session_worker_run   (RsSessionWorker *self, const char *prompt, int max_tokens);
/* Stops generating after the current token. */
void rs_session_worker_pause (RsSessionWorker *self);
/* Stops at once (the current token is cancelled) and drops queued steps. */
void rs_session_worker_stop  (RsSessionWorker *self);
/* Forgets the run (prompt and tokens); the next step starts a new one
 * with @n_threads. */
void rs_session_worker_reset (RsSessionWorker *self, int n_threads);
/* Re-runs every token with the current interventions (applies those
 * reaching back into tokens already run). */
void rs_session_worker_replay (RsSessionWorker *self);

/* Replaces the interventions. from_token < 0 means "from the next token":
 * the worker fills in the position when it applies them. Invalid ones
 * (checked against the model) are refused with an "error". Confirmed lists
 * arrive through "interventions-changed". */
void rs_session_worker_set_interventions (RsSessionWorker *self, const RsIntervention *ivs, int n);
/* The interventions the worker applies, as last confirmed. */
const RsIntervention *rs_session_worker_get_interventions (RsSessionWorker *self, int *n);

/* Saves the run's trace (with its metadata) through rs_trace_save. */
void     rs_session_worker_save_trace        (RsSessionWorker *self, const char *path,
                                              RsTraceFormat format, GCancellable *cancellable,
                                              GAsyncReadyCallback callback, gpointer user_data);
gboolean rs_session_worker_save_trace_finish (RsSessionWorker *self, GAsyncResult *result,
                                              GError **error);

/* A job that runs the engine on the worker thread (an analysis over a
 * corpus, a perplexity): it gets the model, tokenizer and interventions
 * the worker holds, reports progress (emitted as "job-progress") and is
 * cancelled by rs_session_worker_stop or @cancellable. Returns the
 * result (freed with @result_free if nobody takes it) or NULL with @error. */
typedef struct {
  const RsModel        *model;
  const RsTokenizer    *tok;
  const RsIntervention *ivs;
  int                   n_ivs;
  int                   n_threads;
} RsWorkerJobContext;

typedef gpointer (*RsWorkerJobFunc) (const RsWorkerJobContext *ctx, RsProgressFunc progress,
                                     void *progress_data, GCancellable *cancellable, gpointer job_data,
                                     GError **error);

void     rs_session_worker_run_job        (RsSessionWorker *self, RsWorkerJobFunc func, gpointer job_data,
                                           GDestroyNotify job_data_free, GDestroyNotify result_free,
                                           GCancellable *cancellable, GAsyncReadyCallback callback,
                                           gpointer user_data);
gpointer rs_session_worker_run_job_finish (RsSessionWorker *self, GAsyncResult *result, GError **error);

/* Stops the thread (cancelling what runs) and waits for it. Called by dispose. */
void rs_session_worker_shutdown (RsSessionWorker *self);

RsWorkerState      rs_session_worker_get_state      (RsSessionWorker *self);
/* TRUE while generating continuously (win.run). */
gboolean           rs_session_worker_get_running    (RsSessionWorker *self);
/* NULL without a model. */
const RsModelInfo *rs_session_worker_get_model_info (RsSessionWorker *self);
/* The main thread's copy of the run's trace (NULL without a model). Valid
 * until the next "trace-changed". */
const RsTrace     *rs_session_worker_get_trace      (RsSessionWorker *self);
/* The prompt the current run was started with (NULL: no run yet). */
const char        *rs_session_worker_get_prompt     (RsSessionWorker *self);
/* Decode speed of the run (tokens/s, 0 when none). */
double             rs_session_worker_get_tokens_per_second (RsSessionWorker *self);
/* Whether the last token ends generation. */
gboolean           rs_session_worker_get_at_eog     (RsSessionWorker *self);
/* Commands sent but not finished (for tests: wait until 0). */
guint              rs_session_worker_get_pending    (RsSessionWorker *self);

G_END_DECLS
