/* rs-session-worker.c: the engine in a worker thread.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "rs-session-worker.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gi18n.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "rs-error.h"
#include "rs-model.h"
#include "rs-run.h"
#include "rs-tokenizer.h"

/* ---- trace rows --------------------------------------------------------- */

static const size_t trace_arrays[] = {
  offsetof (RsTrace, token_prob),        offsetof (RsTrace, next_entropy),
  offsetof (RsTrace, router_logits),     offsetof (RsTrace, router_scores),
  offsetof (RsTrace, topk_ids),          offsetof (RsTrace, topk_weights),
  offsetof (RsTrace, base_topk_ids),     offsetof (RsTrace, base_topk_weights),
  offsetof (RsTrace, expert_out_maxabs), offsetof (RsTrace, expert_out_channel),
  offsetof (RsTrace, shared_gate),       offsetof (RsTrace, resid_maxabs),
  offsetof (RsTrace, is_prompt),
};

#define TRACE_ARRAY(tr, off) (*(GArray **) ((char *) (tr) + (off)))

/* The GUI's runs always record everything (probes on). */
static RsTrace *
trace_new_like (const RsTrace *src)
{
  return rs_trace_new (src->n_layer, src->n_expert, src->k_model, src->k_slots, TRUE);
}

/* Appends tokens [from, to) of @src to @dst (same shape). */
static void
trace_append_rows (RsTrace *dst, const RsTrace *src, int64_t from, int64_t to)
{
  if (to <= from)
    return;
  int64_t n = to - from;
  const int32_t *ids = &g_array_index (src->token_ids, int32_t, from);
  int64_t t0 = rs_trace_append_tokens (dst, ids, n, FALSE);
  if (t0 < 0)
    return;
  for (gsize i = 0; i < G_N_ELEMENTS (trace_arrays); i++)
    {
      GArray *s = TRACE_ARRAY (src, trace_arrays[i]);
      GArray *d = TRACE_ARRAY (dst, trace_arrays[i]);
      if (s == NULL || d == NULL || s->len == 0 || d->len == 0 || src->n_tokens == 0)
        continue;
      gsize per = s->len / src->n_tokens;
      if (per == 0 || d->len != per * dst->n_tokens)
        continue;
      gsize esz = g_array_get_element_size (s);
      memcpy (d->data + (gsize) t0 * per * esz, s->data + (gsize) from * per * esz, (gsize) n * per * esz);
    }
  for (int64_t t = 0; t < n; t++)
    {
      const char *text = g_ptr_array_index (src->token_text, from + t);
      g_free (g_ptr_array_index (dst->token_text, t0 + t));
      g_ptr_array_index (dst->token_text, t0 + t) = g_strdup (text);
    }
}

/* ---- shared state ------------------------------------------------------- */

typedef enum {
  CMD_LOAD,
  CMD_STEP,
  CMD_RUN,
  CMD_RESET,
  CMD_REPLAY,
  CMD_SET_IVS,
  CMD_SAVE,
  CMD_JOB,
  CMD_QUIT,
} CmdKind;

typedef struct {
  CmdKind       kind;
  guint         serial;
  char         *path;    /* load, save */
  char         *prompt;  /* step, run */
  int           n;       /* step count, run maximum, threads */
  GArray       *ivs;     /* RsIntervention */
  RsTraceFormat format;
  GTask        *task;    /* save, job */
  RsWorkerJobFunc job;
  gpointer      job_data;
  GDestroyNotify job_data_free;
  GDestroyNotify result_free;
} Cmd;

static void
cmd_free (Cmd *c)
{
  if (c->job_data_free && c->job_data)
    c->job_data_free (c->job_data);
  g_free (c->path);
  g_free (c->prompt);
  if (c->ivs)
    g_array_unref (c->ivs);
  g_clear_object (&c->task);
  g_free (c);
}

typedef struct {
  gatomicrefcount ref;
  GAsyncQueue    *queue;
  GMainContext   *context;
  gint            pause_serial;  /* atomic: continuous runs issued up to it stop */
  gint            stop_serial;   /* atomic: steps and runs issued up to it are dropped */
  gint            cancel_load_serial;
  GMutex          run_lock;      /* guards run for rs_run_cancel from the main thread */
  RsRun          *run;
  GCancellable   *job_cancel;    /* the running job's, under run_lock */
  RsSessionWorker *owner;        /* main thread only; NULL once disposed */

  /* worker thread only */
  RsModel     *model;
  RsTokenizer *tok;
  char        *prompt;     /* of the current run; NULL when the run is empty */
  GArray      *ivs;        /* RsIntervention */
  int          n_threads;
} Shared;

static Shared *
shared_ref (Shared *s)
{
  g_atomic_ref_count_inc (&s->ref);
  return s;
}

static void
shared_unref (Shared *s)
{
  if (!g_atomic_ref_count_dec (&s->ref))
    return;
  Cmd *c;
  while ((c = g_async_queue_try_pop (s->queue)) != NULL)
    cmd_free (c);
  g_async_queue_unref (s->queue);
  g_main_context_unref (s->context);
  g_mutex_clear (&s->run_lock);
  rs_run_free (s->run);
  rs_tokenizer_free (s->tok);
  rs_model_free (s->model);
  g_free (s->prompt);
  g_array_unref (s->ivs);
  g_free (s);
}

/* ---- the GObject -------------------------------------------------------- */

struct _RsSessionWorker {
  GObject        parent_instance;
  Shared        *shared;
  GThread       *thread;
  guint          serial;
  RsWorkerState  state;
  gboolean       running;
  gboolean       loading;
  RsModelInfo   *info;
  RsTrace       *trace;
  char          *prompt;
  GArray        *ivs;
  double         tok_s;
  gboolean       at_eog;
  guint          pending;
};

G_DEFINE_FINAL_TYPE (RsSessionWorker, rs_session_worker, G_TYPE_OBJECT)

enum { PROP_0, PROP_STATE, PROP_RUNNING, PROP_TOKENS_PER_SECOND, N_PROPS };
static GParamSpec *props[N_PROPS];

enum {
  SIG_LOAD_PROGRESS,
  SIG_MODEL_LOADED,
  SIG_LOAD_FAILED,
  SIG_TRACE_CHANGED,
  SIG_INTERVENTIONS_CHANGED,
  SIG_ERROR,
  SIG_JOB_PROGRESS,
  N_SIGNALS
};
static guint signals[N_SIGNALS];

static void
model_info_free (RsModelInfo *info)
{
  if (info == NULL)
    return;
  g_free (info->path);
  g_free (info->name);
  g_free (info->arch);
  g_free (info->layer_is_moe);
  g_free (info);
}

/* ---- messages to the main thread ---------------------------------------- */

typedef enum {
  MSG_PROGRESS,
  MSG_LOADED,
  MSG_LOAD_FAILED,
  MSG_TRACE,
  MSG_STATE,
  MSG_IVS,
  MSG_ERROR,
  MSG_JOB_PROGRESS,
  MSG_DONE,
} MsgKind;

typedef struct {
  MsgKind      kind;
  Shared      *s;
  double       fraction;
  char        *text;
  RsModelInfo *info;
  RsTrace     *delta;    /* trace: rows from t0 on (or an empty trace of the shape) */
  int64_t      t0;
  gboolean     reset;    /* a new trace (new run or model) */
  char        *prompt;
  double       tok_s;
  gboolean     at_eog;
  RsWorkerState state;
  gboolean     running;
  GArray      *ivs;
  GError      *error;
} Msg;

static void
msg_free (gpointer data)
{
  Msg *m = data;
  g_free (m->text);
  model_info_free (m->info);
  rs_trace_free (m->delta);
  g_free (m->prompt);
  if (m->ivs)
    g_array_unref (m->ivs);
  g_clear_error (&m->error);
  shared_unref (m->s);
  g_free (m);
}

static void
set_state (RsSessionWorker *self, RsWorkerState state, gboolean running)
{
  if (self->state != state)
    {
      self->state = state;
      g_object_notify_by_pspec (G_OBJECT (self), props[PROP_STATE]);
    }
  if (self->running != running)
    {
      self->running = running;
      g_object_notify_by_pspec (G_OBJECT (self), props[PROP_RUNNING]);
    }
}

static gboolean
msg_dispatch (gpointer data)
{
  Msg *m = data;
  RsSessionWorker *self = m->s->owner;
  if (self == NULL)
    return G_SOURCE_REMOVE;
  g_object_ref (self);
  switch (m->kind)
    {
    case MSG_PROGRESS:
      g_signal_emit (self, signals[SIG_LOAD_PROGRESS], 0, m->fraction, m->text);
      break;
    case MSG_LOADED:
      model_info_free (self->info);
      self->info = g_steal_pointer (&m->info);
      rs_trace_free (self->trace);
      self->trace = g_steal_pointer (&m->delta);
      g_clear_pointer (&self->prompt, g_free);
      self->tok_s = 0;
      self->at_eog = FALSE;
      self->loading = FALSE;
      set_state (self, RS_WORKER_IDLE, FALSE);
      g_signal_emit (self, signals[SIG_MODEL_LOADED], 0);
      g_signal_emit (self, signals[SIG_TRACE_CHANGED], 0, (gint64) 0);
      break;
    case MSG_LOAD_FAILED:
      self->loading = FALSE;
      set_state (self, self->info ? RS_WORKER_IDLE : RS_WORKER_EMPTY, FALSE);
      g_signal_emit (self, signals[SIG_LOAD_FAILED], 0, m->error);
      break;
    case MSG_TRACE:
      if (self->trace == NULL)
        break;
      if (m->reset)
        {
          rs_trace_free (self->trace);
          self->trace = trace_new_like (m->delta);
          g_free (self->prompt);
          self->prompt = g_strdup (m->prompt);
        }
      if (m->t0 < self->trace->n_tokens)
        rs_trace_truncate (self->trace, m->t0);
      trace_append_rows (self->trace, m->delta, 0, m->delta->n_tokens);
      if (self->tok_s != m->tok_s)
        {
          self->tok_s = m->tok_s;
          g_object_notify_by_pspec (G_OBJECT (self), props[PROP_TOKENS_PER_SECOND]);
        }
      self->at_eog = m->at_eog;
      g_signal_emit (self, signals[SIG_TRACE_CHANGED], 0, (gint64) (m->reset ? 0 : m->t0));
      break;
    case MSG_STATE:
      if (!self->loading || m->state == RS_WORKER_LOADING)
        set_state (self, m->state, m->running);
      break;
    case MSG_IVS:
      g_array_set_size (self->ivs, 0);
      g_array_append_vals (self->ivs, m->ivs->data, m->ivs->len);
      g_signal_emit (self, signals[SIG_INTERVENTIONS_CHANGED], 0);
      break;
    case MSG_ERROR:
      g_signal_emit (self, signals[SIG_ERROR], 0, m->error);
      break;
    case MSG_JOB_PROGRESS:
      g_signal_emit (self, signals[SIG_JOB_PROGRESS], 0, m->fraction);
      break;
    case MSG_DONE:
      if (self->pending > 0)
        self->pending--;
      break;
    }
  g_object_unref (self);
  return G_SOURCE_REMOVE;
}

static Msg *
msg_new (Shared *s, MsgKind kind)
{
  Msg *m = g_new0 (Msg, 1);
  m->kind = kind;
  m->s = shared_ref (s);
  return m;
}

static void
post (Msg *m)
{
  g_main_context_invoke_full (m->s->context, G_PRIORITY_DEFAULT, msg_dispatch, m, msg_free);
}

static void
post_state (Shared *s, RsWorkerState state, gboolean running)
{
  Msg *m = msg_new (s, MSG_STATE);
  m->state = state;
  m->running = running;
  post (m);
}

static void
post_error (Shared *s, GError *error)
{
  Msg *m = msg_new (s, MSG_ERROR);
  m->error = error;
  post (m);
}

static void
post_ivs (Shared *s)
{
  Msg *m = msg_new (s, MSG_IVS);
  m->ivs = g_array_copy (s->ivs);
  post (m);
}

/* Sends trace rows [t0, end) of the run. */
static void
post_trace (Shared *s, int64_t t0, gboolean reset)
{
  const RsTrace *tr = rs_run_trace (s->run);
  Msg *m = msg_new (s, MSG_TRACE);
  m->delta = trace_new_like (tr);
  trace_append_rows (m->delta, tr, t0, tr->n_tokens);
  m->t0 = t0;
  m->reset = reset;
  m->prompt = g_strdup (s->prompt);
  double prefill;
  rs_run_speed (s->run, &prefill, &m->tok_s);
  m->at_eog = rs_run_at_eog (s->run);
  post (m);
}

/* ---- worker: loading ---------------------------------------------------- */

static gboolean
load_cancelled (Shared *s, guint serial)
{
  return (guint) g_atomic_int_get (&s->cancel_load_serial) >= serial;
}

static void
post_progress (Shared *s, double fraction, const char *text)
{
  Msg *m = msg_new (s, MSG_PROGRESS);
  m->fraction = fraction;
  m->text = g_strdup (text);
  post (m);
}

/* Reads the file once so that the weights are in the page cache when the
 * first token runs: the honest part of "loading" for a mapped model. */
static gboolean
warm_file (Shared *s, const char *path, guint serial)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return TRUE; /* the model opened: a split part or a race; nothing to warm */
  off_t size = lseek (fd, 0, SEEK_END);
  lseek (fd, 0, SEEK_SET);
  /* A model that does not fit comfortably in free memory is not read
   * ahead: its pages would evict each other (and what else runs). */
  guint64 available = 0;
  g_autofree char *meminfo = NULL;
  if (g_file_get_contents ("/proc/meminfo", &meminfo, NULL, NULL))
    {
      const char *line = strstr (meminfo, "MemAvailable:");
      if (line)
        available = g_ascii_strtoull (line + strlen ("MemAvailable:"), NULL, 10) * 1024;
    }
  if (available > 0 && (guint64) size > available / 2)
    {
      close (fd);
      post_progress (s, 0.95, _("Mapping the weights (too large to read ahead)"));
      return TRUE;
    }
  const size_t chunk = 8u << 20;
  g_autofree char *buf = g_malloc (chunk);
  off_t done = 0;
  int last_pct = -1;
  gboolean ok = TRUE;
  while (done < size)
    {
      if (load_cancelled (s, serial))
        {
          ok = FALSE;
          break;
        }
      ssize_t r = read (fd, buf, chunk);
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        break;
      done += r;
      int pct = (int) (100.0 * done / size);
      if (pct != last_pct)
        {
          last_pct = pct;
          post_progress (s, 0.1 + 0.85 * done / (double) size, _("Reading the weights"));
        }
    }
  close (fd);
  return ok;
}

static RsModelInfo *
model_info_new (const RsModel *model, const char *path, RsRun *run)
{
  const RsHparams *hp = rs_model_hparams (model);
  const RsGguf *g = rs_model_gguf (model);
  RsModelInfo *info = g_new0 (RsModelInfo, 1);
  info->path = g_strdup (path);
  const char *name = NULL;
  if (rs_gguf_find_kv (g, "general.name") != NULL && rs_gguf_get_str (g, "general.name", &name, NULL)
      && name != NULL && *name)
    info->name = g_strdup (name);
  else
    info->name = g_path_get_basename (path);
  info->arch = g_strdup (hp->arch->name);
  info->n_layer = hp->n_layer;
  info->n_expert = hp->n_expert;
  info->n_expert_used = hp->n_expert_used;
  info->n_vocab = hp->n_vocab;
  info->n_ctx = rs_session_n_ctx (rs_run_session (run));
  info->n_threads = rs_session_n_threads (rs_run_session (run));
  info->file_size = rs_gguf_file_size (g);
  rs_model_param_counts (model, &info->n_params, &info->n_params_active);
  info->routing = hp->routing;
  info->layer_is_moe = g_new0 (gboolean, hp->n_layer);
  for (uint32_t l = 0; l < hp->n_layer; l++)
    info->layer_is_moe[l] = rs_model_layer (model, l)->is_moe;
  return info;
}

static RsRun *
new_run (Shared *s, RsModel *model, RsTokenizer *tok, GError **error)
{
  RsRunParams params = { 0 };
  params.session.n_threads = s->n_threads;
  RsRun *run = rs_run_new (model, tok, &params, error);
  if (run == NULL)
    return NULL;
  if (!rs_run_set_interventions (run, (RsIntervention *) s->ivs->data, s->ivs->len, NULL))
    {
      /* interventions for another model: drop them */
      g_array_set_size (s->ivs, 0);
      post_ivs (s);
    }
  return run;
}

static void
swap_run (Shared *s, RsRun *run)
{
  g_mutex_lock (&s->run_lock);
  RsRun *old = s->run;
  s->run = run;
  g_mutex_unlock (&s->run_lock);
  rs_run_free (old);
}

static void
do_load (Shared *s, Cmd *c)
{
  g_autoptr (GError) error = NULL;
  post_state (s, RS_WORKER_LOADING, FALSE);
  post_progress (s, 0.02, _("Checking the file"));
  s->n_threads = c->n;
  g_autoptr (RsModel) model = rs_model_open (c->path, &error);
  g_autoptr (RsTokenizer) tok = NULL;
  g_autoptr (RsRun) run = NULL;
  if (model != NULL && !load_cancelled (s, c->serial))
    {
      post_progress (s, 0.08, _("Reading the tokenizer"));
      tok = rs_tokenizer_new_from_gguf (rs_model_gguf (model), &error);
    }
  if (tok != NULL && !load_cancelled (s, c->serial) && warm_file (s, c->path, c->serial))
    {
      post_progress (s, 0.97, _("Preparing the session"));
      /* validate the current interventions against the new model */
      for (guint i = 0; i < s->ivs->len; i++)
        if (!rs_intervention_validate (&g_array_index (s->ivs, RsIntervention, i),
                                       rs_model_hparams (model), NULL))
          {
            g_array_set_size (s->ivs, 0);
            post_ivs (s);
            break;
          }
      run = new_run (s, model, tok, &error);
    }
  if (run == NULL || load_cancelled (s, c->serial))
    {
      Msg *m = msg_new (s, MSG_LOAD_FAILED);
      if (error == NULL)
        g_set_error (&error, G_IO_ERROR, G_IO_ERROR_CANCELLED, _("Loading was cancelled"));
      m->error = g_steal_pointer (&error);
      post (m);
      post_state (s, s->run ? RS_WORKER_IDLE : RS_WORKER_EMPTY, FALSE);
      return;
    }
  /* the new model replaces the old one */
  Msg *m = msg_new (s, MSG_LOADED);
  m->info = model_info_new (model, c->path, run);
  m->delta = trace_new_like (rs_run_trace (run));
  swap_run (s, g_steal_pointer (&run));
  rs_tokenizer_free (s->tok);
  rs_model_free (s->model);
  s->tok = g_steal_pointer (&tok);
  s->model = g_steal_pointer (&model);
  g_clear_pointer (&s->prompt, g_free);
  post (m);
  post_ivs (s);
}

/* ---- worker: running ---------------------------------------------------- */

static gboolean
stopped (Shared *s, guint serial)
{
  return (guint) g_atomic_int_get (&s->stop_serial) >= serial;
}

static void
do_set_ivs (Shared *s, Cmd *c)
{
  g_autoptr (GError) error = NULL;
  const RsTrace *tr = s->run ? rs_run_trace (s->run) : NULL;
  int64_t next = tr ? tr->n_tokens : 0;
  for (guint i = 0; i < c->ivs->len; i++)
    {
      RsIntervention *iv = &g_array_index (c->ivs, RsIntervention, i);
      if (iv->from_token < 0)
        iv->from_token = next;
    }
  if (s->run != NULL)
    {
      if (!rs_run_set_interventions (s->run, (RsIntervention *) c->ivs->data, c->ivs->len, &error))
        {
          post_error (s, g_steal_pointer (&error));
          post_ivs (s);
          return;
        }
    }
  else if (s->model != NULL)
    for (guint i = 0; i < c->ivs->len; i++)
      if (!rs_intervention_validate (&g_array_index (c->ivs, RsIntervention, i),
                                     rs_model_hparams (s->model), &error))
        {
          post_error (s, g_steal_pointer (&error));
          post_ivs (s);
          return;
        }
  g_array_set_size (s->ivs, 0);
  g_array_append_vals (s->ivs, c->ivs->data, c->ivs->len);
  post_ivs (s);
}

static void
do_save (Shared *s, Cmd *c)
{
  GError *error = NULL;
  if (s->run == NULL || rs_run_trace (s->run)->n_tokens == 0)
    {
      g_task_return_new_error (c->task, RS_ERROR, RS_ERROR_INVALID, "%s",
                               _("There is no trace to save yet: run a prompt first"));
      return;
    }
  if (g_task_return_error_if_cancelled (c->task))
    return;
  rs_run_update_metadata (s->run, s->prompt);
  if (rs_trace_save (rs_run_trace (s->run), c->path, c->format, &error))
    g_task_return_boolean (c->task, TRUE);
  else
    g_task_return_error (c->task, error);
}

typedef struct {
  Shared *s;
  int     last_permille;
} JobProgress;

static void
job_progress (void *data, int64_t done, int64_t total)
{
  JobProgress *jp = data;
  int permille = total > 0 ? (int) (1000 * done / total) : 0;
  if (permille == jp->last_permille)
    return;
  jp->last_permille = permille;
  Msg *m = msg_new (jp->s, MSG_JOB_PROGRESS);
  m->fraction = permille / 1000.0;
  post (m);
}

static void
do_job (Shared *s, Cmd *c)
{
  if (s->model == NULL)
    {
      g_task_return_new_error (c->task, RS_ERROR, RS_ERROR_INVALID, "%s", _("Open a model first"));
      return;
    }
  GCancellable *cancel = g_task_get_cancellable (c->task);
  g_autoptr (GCancellable) own = cancel ? NULL : g_cancellable_new ();
  if (cancel == NULL)
    cancel = own;
  g_mutex_lock (&s->run_lock);
  s->job_cancel = cancel;
  g_mutex_unlock (&s->run_lock);
  post_state (s, RS_WORKER_BUSY, FALSE);
  RsWorkerJobContext ctx = {
    .model = s->model, .tok = s->tok, .ivs = (const RsIntervention *) s->ivs->data, .n_ivs = s->ivs->len,
    .n_threads = s->n_threads,
  };
  JobProgress jp = { s, -1 };
  GError *error = NULL;
  gpointer result = c->job (&ctx, job_progress, &jp, cancel, c->job_data, &error);
  g_mutex_lock (&s->run_lock);
  s->job_cancel = NULL;
  g_mutex_unlock (&s->run_lock);
  if (result != NULL)
    g_task_return_pointer (c->task, result, c->result_free);
  else if (error != NULL)
    g_task_return_error (c->task, error);
  else
    g_task_return_new_error (c->task, G_IO_ERROR, G_IO_ERROR_FAILED, "the job returned nothing");
  post_state (s, RS_WORKER_IDLE, FALSE);
}

/* Handles what may act between two tokens; keeps the rest for later.
 * Returns FALSE when a command that ends the current run is waiting. */
static gboolean
between_tokens (Shared *s, GQueue *deferred)
{
  gboolean go_on = TRUE;
  Cmd *c;
  while ((c = g_async_queue_try_pop (s->queue)) != NULL)
    {
      switch (c->kind)
        {
        case CMD_SET_IVS:
          do_set_ivs (s, c);
          cmd_free (c);
          break;
        case CMD_SAVE:
          do_save (s, c);
          cmd_free (c);
          break;
        case CMD_LOAD:
        case CMD_RESET:
        case CMD_QUIT:
          go_on = FALSE;
          g_queue_push_tail (deferred, c);
          break;
        default:
          g_queue_push_tail (deferred, c);
          break;
        }
    }
  return go_on;
}

static void
requeue (Shared *s, GQueue *deferred)
{
  Cmd *c;
  while ((c = g_queue_pop_tail (deferred)) != NULL)
    g_async_queue_push_front (s->queue, c);
}

/* Makes sure the run has run @prompt (starting a new run when it differs). */
static gboolean
ensure_prompt (Shared *s, const char *prompt, GError **error)
{
  if (s->run != NULL && s->prompt != NULL && g_strcmp0 (s->prompt, prompt) == 0
      && rs_run_trace (s->run)->n_tokens > 0)
    return TRUE;
  if (prompt == NULL || *prompt == '\0')
    {
      g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "%s", _("Write a prompt first"));
      return FALSE;
    }
  if (s->run == NULL || rs_run_trace (s->run)->n_tokens > 0)
    {
      RsRun *run = new_run (s, s->model, s->tok, error);
      if (run == NULL)
        return FALSE;
      swap_run (s, run);
    }
  g_clear_pointer (&s->prompt, g_free);
  if (!rs_run_prompt_text (s->run, prompt, error))
    return FALSE;
  s->prompt = g_strdup (prompt);
  post_trace (s, 0, TRUE);
  return TRUE;
}

static void
do_generate (Shared *s, Cmd *c)
{
  if (s->run == NULL)
    {
      post_error (s, g_error_new (RS_ERROR, RS_ERROR_INVALID, "%s", _("Open a model first")));
      return;
    }
  gboolean continuous = c->kind == CMD_RUN;
  post_state (s, RS_WORKER_BUSY, continuous);
  g_autoptr (GError) error = NULL;
  GQueue deferred = G_QUEUE_INIT;
  if (!ensure_prompt (s, c->prompt, &error))
    {
      if (!g_error_matches (error, RS_ERROR, RS_ERROR_CANCELLED))
        post_error (s, g_steal_pointer (&error));
      else
        post_trace (s, 0, TRUE);
      post_state (s, RS_WORKER_IDLE, FALSE);
      return;
    }
  for (int i = 0; i < c->n; i++)
    {
      if (stopped (s, c->serial))
        break;
      if (continuous && (guint) g_atomic_int_get (&s->pause_serial) >= c->serial)
        break;
      if (!between_tokens (s, &deferred))
        break;
      if (rs_run_at_eog (s->run))
        break;
      if (rs_run_trace (s->run)->n_tokens >= rs_session_n_ctx (rs_run_session (s->run)))
        {
          if (!continuous)
            post_error (s, g_error_new (RS_ERROR, RS_ERROR_RESOURCE, _("The context of %d tokens is full"),
                                        rs_session_n_ctx (rs_run_session (s->run))));
          break;
        }
      int64_t t = rs_run_trace (s->run)->n_tokens;
      if (!rs_run_step (s->run, -1, NULL, &error))
        {
          if (!g_error_matches (error, RS_ERROR, RS_ERROR_CANCELLED))
            post_error (s, g_steal_pointer (&error));
          break;
        }
      post_trace (s, t, FALSE);
    }
  requeue (s, &deferred);
  post_state (s, RS_WORKER_IDLE, FALSE);
}

static void
do_replay (Shared *s, Cmd *c)
{
  if (s->run == NULL || rs_run_trace (s->run)->n_tokens == 0)
    return;
  post_state (s, RS_WORKER_BUSY, FALSE);
  g_autoptr (GError) error = NULL;
  if (!rs_run_replay (s->run, &error))
    {
      /* a cancelled replay leaves the cache behind the trace: start over */
      if (!g_error_matches (error, RS_ERROR, RS_ERROR_CANCELLED))
        post_error (s, g_steal_pointer (&error));
      RsRun *run = new_run (s, s->model, s->tok, NULL);
      if (run != NULL)
        swap_run (s, run);
      g_clear_pointer (&s->prompt, g_free);
    }
  post_trace (s, 0, TRUE);
  post_state (s, RS_WORKER_IDLE, FALSE);
}

static gpointer
worker_main (gpointer data)
{
  Shared *s = data;
  for (;;)
    {
      Cmd *c = g_async_queue_pop (s->queue);
      gboolean quit = FALSE;
      switch (c->kind)
        {
        case CMD_LOAD:
          if (!load_cancelled (s, c->serial))
            do_load (s, c);
          else
            {
              Msg *m = msg_new (s, MSG_LOAD_FAILED);
              m->error = g_error_new (G_IO_ERROR, G_IO_ERROR_CANCELLED, _("Loading was cancelled"));
              post (m);
            }
          break;
        case CMD_STEP:
        case CMD_RUN:
          if (!stopped (s, c->serial))
            do_generate (s, c);
          break;
        case CMD_RESET:
          if (s->model != NULL)
            {
              s->n_threads = c->n;
              g_autoptr (GError) error = NULL;
              RsRun *run = new_run (s, s->model, s->tok, &error);
              if (run != NULL)
                {
                  swap_run (s, run);
                  g_clear_pointer (&s->prompt, g_free);
                  post_trace (s, 0, TRUE);
                }
              else
                post_error (s, g_steal_pointer (&error));
            }
          break;
        case CMD_REPLAY:
          if (!stopped (s, c->serial))
            do_replay (s, c);
          break;
        case CMD_SET_IVS:
          do_set_ivs (s, c);
          break;
        case CMD_SAVE:
          do_save (s, c);
          break;
        case CMD_JOB:
          if (!stopped (s, c->serial))
            do_job (s, c);
          else
            g_task_return_new_error (c->task, G_IO_ERROR, G_IO_ERROR_CANCELLED, "%s", _("Cancelled"));
          break;
        case CMD_QUIT:
          quit = TRUE;
          break;
        }
      cmd_free (c);
      post (msg_new (s, MSG_DONE));
      if (quit)
        break;
    }
  shared_unref (s);
  return NULL;
}

/* ---- main thread API ---------------------------------------------------- */

static Cmd *
cmd_new (RsSessionWorker *self, CmdKind kind)
{
  Cmd *c = g_new0 (Cmd, 1);
  c->kind = kind;
  c->serial = ++self->serial;
  return c;
}

static void
send (RsSessionWorker *self, Cmd *c)
{
  if (self->thread == NULL)
    {
      if (c->task)
        g_task_return_new_error (c->task, G_IO_ERROR, G_IO_ERROR_CLOSED, "the worker has stopped");
      cmd_free (c);
      return;
    }
  self->pending++;
  g_async_queue_push (self->shared->queue, c);
}

RsSessionWorker *
rs_session_worker_new (void)
{
  return g_object_new (RS_TYPE_SESSION_WORKER, NULL);
}

void
rs_session_worker_load (RsSessionWorker *self, const char *path, int n_threads)
{
  g_return_if_fail (RS_IS_SESSION_WORKER (self) && path != NULL);
  Cmd *c = cmd_new (self, CMD_LOAD);
  c->path = g_strdup (path);
  c->n = n_threads;
  /* a load supersedes what runs */
  g_atomic_int_set (&self->shared->stop_serial, c->serial - 1);
  g_mutex_lock (&self->shared->run_lock);
  if (self->shared->run)
    rs_run_cancel (self->shared->run);
  g_mutex_unlock (&self->shared->run_lock);
  self->loading = TRUE;
  set_state (self, RS_WORKER_LOADING, FALSE);
  send (self, c);
}

void
rs_session_worker_cancel_load (RsSessionWorker *self)
{
  g_atomic_int_set (&self->shared->cancel_load_serial, self->serial);
}

void
rs_session_worker_step (RsSessionWorker *self, const char *prompt, int n)
{
  Cmd *c = cmd_new (self, CMD_STEP);
  c->prompt = g_strdup (prompt);
  c->n = MAX (n, 0);
  send (self, c);
}

void
rs_session_worker_run (RsSessionWorker *self, const char *prompt, int max_tokens)
{
  Cmd *c = cmd_new (self, CMD_RUN);
  c->prompt = g_strdup (prompt);
  c->n = max_tokens > 0 ? max_tokens : G_MAXINT;
  set_state (self, RS_WORKER_BUSY, TRUE);
  send (self, c);
}

void
rs_session_worker_pause (RsSessionWorker *self)
{
  g_atomic_int_set (&self->shared->pause_serial, self->serial);
}

static void
cancel_running (Shared *s)
{
  g_mutex_lock (&s->run_lock);
  if (s->run)
    rs_run_cancel (s->run);
  if (s->job_cancel)
    g_cancellable_cancel (s->job_cancel);
  g_mutex_unlock (&s->run_lock);
}

void
rs_session_worker_stop (RsSessionWorker *self)
{
  g_atomic_int_set (&self->shared->pause_serial, self->serial);
  g_atomic_int_set (&self->shared->stop_serial, self->serial);
  cancel_running (self->shared);
}

void
rs_session_worker_run_job (RsSessionWorker *self, RsWorkerJobFunc func, gpointer job_data,
                           GDestroyNotify job_data_free, GDestroyNotify result_free, GCancellable *cancellable,
                           GAsyncReadyCallback callback, gpointer user_data)
{
  Cmd *c = cmd_new (self, CMD_JOB);
  c->task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (c->task, rs_session_worker_run_job);
  c->job = func;
  c->job_data = job_data;
  c->job_data_free = job_data_free;
  c->result_free = result_free;
  send (self, c);
}

gpointer
rs_session_worker_run_job_finish (RsSessionWorker *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

void
rs_session_worker_reset (RsSessionWorker *self, int n_threads)
{
  rs_session_worker_stop (self);
  Cmd *c = cmd_new (self, CMD_RESET);
  c->n = n_threads;
  send (self, c);
}

void
rs_session_worker_replay (RsSessionWorker *self)
{
  send (self, cmd_new (self, CMD_REPLAY));
}

void
rs_session_worker_set_interventions (RsSessionWorker *self, const RsIntervention *ivs, int n)
{
  Cmd *c = cmd_new (self, CMD_SET_IVS);
  c->ivs = g_array_new (FALSE, FALSE, sizeof (RsIntervention));
  g_array_append_vals (c->ivs, ivs, n);
  send (self, c);
}

const RsIntervention *
rs_session_worker_get_interventions (RsSessionWorker *self, int *n)
{
  *n = self->ivs->len;
  return (const RsIntervention *) self->ivs->data;
}

void
rs_session_worker_save_trace (RsSessionWorker *self, const char *path, RsTraceFormat format,
                              GCancellable *cancellable, GAsyncReadyCallback callback,
                              gpointer user_data)
{
  Cmd *c = cmd_new (self, CMD_SAVE);
  c->task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (c->task, rs_session_worker_save_trace);
  c->path = g_strdup (path);
  c->format = format;
  send (self, c);
}

gboolean
rs_session_worker_save_trace_finish (RsSessionWorker *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

void
rs_session_worker_shutdown (RsSessionWorker *self)
{
  if (self->thread == NULL)
    return;
  Cmd *c = cmd_new (self, CMD_QUIT);
  g_atomic_int_set (&self->shared->cancel_load_serial, G_MAXINT);
  g_atomic_int_set (&self->shared->stop_serial, G_MAXINT);
  g_atomic_int_set (&self->shared->pause_serial, G_MAXINT);
  cancel_running (self->shared);
  g_async_queue_push (self->shared->queue, c);
  g_thread_join (self->thread);
  self->thread = NULL;
}

RsWorkerState rs_session_worker_get_state (RsSessionWorker *self) { return self->state; }
gboolean rs_session_worker_get_running (RsSessionWorker *self) { return self->running; }
const RsModelInfo *rs_session_worker_get_model_info (RsSessionWorker *self) { return self->info; }
const RsTrace *rs_session_worker_get_trace (RsSessionWorker *self) { return self->trace; }
const char *rs_session_worker_get_prompt (RsSessionWorker *self) { return self->prompt; }
double rs_session_worker_get_tokens_per_second (RsSessionWorker *self) { return self->tok_s; }
gboolean rs_session_worker_get_at_eog (RsSessionWorker *self) { return self->at_eog; }
guint rs_session_worker_get_pending (RsSessionWorker *self) { return self->pending; }

static void
rs_session_worker_dispose (GObject *object)
{
  RsSessionWorker *self = RS_SESSION_WORKER (object);
  rs_session_worker_shutdown (self);
  if (self->shared)
    {
      self->shared->owner = NULL;
      g_clear_pointer (&self->shared, shared_unref);
    }
  G_OBJECT_CLASS (rs_session_worker_parent_class)->dispose (object);
}

static void
rs_session_worker_finalize (GObject *object)
{
  RsSessionWorker *self = RS_SESSION_WORKER (object);
  model_info_free (self->info);
  rs_trace_free (self->trace);
  g_free (self->prompt);
  g_array_unref (self->ivs);
  G_OBJECT_CLASS (rs_session_worker_parent_class)->finalize (object);
}

static void
rs_session_worker_get_property (GObject *object, guint id, GValue *value, GParamSpec *pspec)
{
  RsSessionWorker *self = RS_SESSION_WORKER (object);
  switch (id)
    {
    case PROP_STATE:
      g_value_set_int (value, self->state);
      break;
    case PROP_RUNNING:
      g_value_set_boolean (value, self->running);
      break;
    case PROP_TOKENS_PER_SECOND:
      g_value_set_double (value, self->tok_s);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
    }
}

static void
rs_session_worker_class_init (RsSessionWorkerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  object_class->dispose = rs_session_worker_dispose;
  object_class->finalize = rs_session_worker_finalize;
  object_class->get_property = rs_session_worker_get_property;

  props[PROP_STATE] = g_param_spec_int ("state", NULL, NULL, RS_WORKER_EMPTY, RS_WORKER_BUSY,
                                        RS_WORKER_EMPTY, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  props[PROP_RUNNING] = g_param_spec_boolean ("running", NULL, NULL, FALSE,
                                              G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  props[PROP_TOKENS_PER_SECOND] = g_param_spec_double ("tokens-per-second", NULL, NULL, 0, G_MAXDOUBLE, 0,
                                                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, props);

  signals[SIG_LOAD_PROGRESS] = g_signal_new ("load-progress", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                             0, NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_DOUBLE, G_TYPE_STRING);
  signals[SIG_MODEL_LOADED] = g_signal_new ("model-loaded", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                            0, NULL, NULL, NULL, G_TYPE_NONE, 0);
  signals[SIG_LOAD_FAILED] = g_signal_new ("load-failed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                           0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_ERROR);
  signals[SIG_TRACE_CHANGED] = g_signal_new ("trace-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                             0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_INT64);
  signals[SIG_INTERVENTIONS_CHANGED] = g_signal_new ("interventions-changed", G_TYPE_FROM_CLASS (klass),
                                                     G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 0);
  signals[SIG_JOB_PROGRESS] = g_signal_new ("job-progress", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                            0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_DOUBLE);
  signals[SIG_ERROR] = g_signal_new ("error", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                     0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_ERROR);
}

static void
rs_session_worker_init (RsSessionWorker *self)
{
  Shared *s = g_new0 (Shared, 1);
  g_atomic_ref_count_init (&s->ref);
  s->queue = g_async_queue_new ();
  s->context = g_main_context_ref_thread_default ();
  g_mutex_init (&s->run_lock);
  s->ivs = g_array_new (FALSE, FALSE, sizeof (RsIntervention));
  s->owner = self;
  self->shared = s;
  self->ivs = g_array_new (FALSE, FALSE, sizeof (RsIntervention));
  self->thread = g_thread_new ("rs-worker", worker_main, shared_ref (s));
}
