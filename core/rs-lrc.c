/* SPDX-License-Identifier: GPL-3.0-or-later */
/* rs-lrc.c: local routing consistency, SRP and SCH (Liang et al.;
 * methods.md section 3; the reference code is ljcleo/moe-lrc
 * src/30_srp_calc.py, 31_srp_refine.py, 41_sch_calc.py). */
#include <math.h>
#include <string.h>

#include "rs-analysis-private.h"

void
rs_lrc_params_init (RsLrcParams *p)
{
  memset (p, 0, sizeof *p);
  static const int segs[] = { 4, 16, 64, 256 };
  memcpy (p->seg_lens, segs, sizeof segs);
  p->n_seg_lens = 4;
  p->cache_ratio = 2.0;
  p->routes = RS_ROUTES_RAN;
  p->seq_stride = 1;
  p->cold = RS_SCH_COLD_MISS;
}

/* One stream of activation sets read straight from a trace: token t's
 * slots are base[t * stride + j], j < B; slot j's expert id e is item
 * (j / K) * E + e, so that one layer (K = B) gives items = experts and all
 * layers at once (B = L K) give one item per (layer, expert). */
typedef struct {
  const int32_t *base;
  int64_t        stride;
  int64_t        T;
  int            B, K, E;
  int            n_items;
} Stream;

static inline int
stream_item (const Stream *s, int64_t t, int j)
{
  int32_t e = s->base[t * s->stride + j];
  if (e < 0 || e >= s->E)
    return -1;
  return (j / s->K) * s->E + e;
}

/* ---- SRP ---------------------------------------------------------------- */

/* The distinct items of token t into @buf [B]; returns how many. Sets
 * are sets: the router never selects an expert twice, but an imported
 * trace might, and a repeated id must not count twice. @mark [n_items]
 * holds the stamp of the last gather that saw each item. */
typedef struct {
  uint64_t *mark;
  uint64_t  stamp;
} Dedup;

static inline int
gather (const Stream *s, int64_t t, int *buf, Dedup *d)
{
  d->stamp++;
  int n = 0;
  for (int j = 0; j < s->B; j++)
    {
      int x = stream_item (s, t, j);
      if (x >= 0 && d->mark[x] != d->stamp)
        {
          d->mark[x] = d->stamp;
          buf[n++] = x;
        }
    }
  return n;
}

static void
dedup_init (Dedup *d, int n_items)
{
  d->mark = g_new0 (uint64_t, n_items);
  d->stamp = 0;
}

/* Adds to @hist [n_items, m + 1] (or, with @per_item FALSE, [m + 1]) the
 * number of windows of length @m in which each item is active on c
 * tokens. Counts change only at the window's two ends, so each item's
 * count is kept with the window where it took its value, and runs are
 * added when the count changes: O(T B + n_items) instead of O(T n_items). */
static void
srp_hist (const Stream *s, int m, gboolean per_item, int64_t *hist, int32_t *cnt, int64_t *since,
          int *buf, Dedup *d)
{
  if (s->T < m || m <= 0)
    return;
  const int64_t W = s->T - m + 1;
  memset (cnt, 0, sizeof (int32_t) * s->n_items);
  memset (since, 0, sizeof (int64_t) * s->n_items);
  for (int64_t t = 0; t < m; t++)
    {
      int n = gather (s, t, buf, d);
      for (int i = 0; i < n; i++)
        cnt[buf[i]]++;
    }
#define HIST(x, c) hist[(per_item ? (int64_t) (x) * (m + 1) : 0) + (c)]
  for (int64_t w = 1; w < W; w++)
    {
      /* Window w = [w, w + m): token w - 1 leaves, token w + m - 1 enters. */
      int n = gather (s, w - 1, buf, d);
      for (int i = 0; i < n; i++)
        {
          int x = buf[i];
          HIST (x, cnt[x]) += w - since[x];
          since[x] = w;
          cnt[x]--;
        }
      n = gather (s, w + m - 1, buf, d);
      for (int i = 0; i < n; i++)
        {
          int x = buf[i];
          HIST (x, cnt[x]) += w - since[x];
          since[x] = w;
          cnt[x]++;
        }
    }
  for (int x = 0; x < s->n_items; x++)
    HIST (x, cnt[x]) += W - since[x];
#undef HIST
}

void
rs_srp_histogram (const int32_t *sets, int64_t T, int B, int n_items, int m, int64_t *hist)
{
  Stream s = { sets, B, T, B, B, n_items, n_items };
  g_autofree int32_t *cnt = g_new (int32_t, n_items);
  g_autofree int64_t *since = g_new (int64_t, n_items);
  g_autofree int *buf = g_new (int, MAX (B, 1));
  Dedup d;
  dedup_init (&d, n_items);
  srp_hist (&s, m, FALSE, hist, cnt, since, buf, &d);
  g_free (d.mark);
}

double
rs_srp_from_histogram (const int64_t *hist, int m, int *theta, double *best_m)
{
  /* matches(θ) = Σ_{c≥θ} c N_c, preds(θ) = m Σ_{c≥θ} N_c, acts = matches(0);
   * F1 = 2 matches / max(preds + acts, 1) as 31_srp_refine.py; the first
   * (smallest) θ of the maximum wins, as torch.max does. */
  double acts = 0.0;
  for (int c = 0; c <= m; c++)
    acts += (double) c * hist[c];
  g_autofree double *matches = g_new (double, m + 2);
  g_autofree double *preds = g_new (double, m + 2);
  matches[m + 1] = preds[m + 1] = 0.0;
  for (int c = m; c >= 0; c--)
    {
      matches[c] = matches[c + 1] + (double) c * hist[c];
      preds[c] = preds[c + 1] + (double) m * hist[c];
    }
  double best = -1.0;
  int best_t = 0;
  for (int th = 0; th <= m; th++)
    {
      double f1 = 2.0 * matches[th] / MAX (preds[th] + acts, 1.0);
      if (f1 > best)
        {
          best = f1;
          best_t = th;
        }
    }
  if (theta != NULL)
    *theta = best_t;
  if (best_m != NULL)
    *best_m = acts > 0 ? preds[best_t] / acts : 0.0;
  return best;
}

/* ---- SCH ---------------------------------------------------------------- */

/* The oracle cache of one capacity, simulated directly. Mattson's stack
 * for this priority policy keeps, for every capacity C, the cache
 * contents in its top C entries, and on an access at depth d > C the
 * top C lose their lowest-priority entry; so one capacity's contents
 * evolve as "on a miss, evict the lowest priority", which a min-heap on
 * the priority does in O(log C). The priority is (activations in the next
 * m tokens, current token included; time of last use), compared in that
 * order, packed as count << 32 | time as in 41_sch_calc.py. */
typedef struct {
  int      n_items, cap, size;
  int64_t *prop;   /* [n_items] */
  int     *pos;    /* [n_items] heap index, -1 when not cached */
  int     *heap;   /* [cap] */
  uint8_t *seen;   /* [n_items] */
  int     *buf;    /* [B] a token's items */
  Dedup    dedup;
} Cache;

#define COUNT_ONE ((int64_t) 1 << 32)

static inline void
heap_set (Cache *c, int i, int x)
{
  c->heap[i] = x;
  c->pos[x] = i;
}

/* Restores the heap order around index @i after its key changed. */
static void
heap_fix (Cache *c, int i)
{
  int x = c->heap[i];
  int64_t px = c->prop[x];
  while (i > 0)
    {
      int parent = (i - 1) / 2;
      if (c->prop[c->heap[parent]] <= px)
        break;
      heap_set (c, i, c->heap[parent]);
      i = parent;
    }
  for (;;)
    {
      int l = 2 * i + 1, r = l + 1, s = i;
      int64_t ps = px;
      if (l < c->size && c->prop[c->heap[l]] < ps)
        {
          s = l;
          ps = c->prop[c->heap[l]];
        }
      if (r < c->size && c->prop[c->heap[r]] < ps)
        s = r;
      if (s == i)
        break;
      heap_set (c, i, c->heap[s]);
      i = s;
    }
  heap_set (c, i, x);
}

/* Simulates one sequence; returns the hits and adds the accesses. */
static int64_t
sch_run (const Stream *s, int m, int cap, RsSchColdPolicy cold, Cache *c, int64_t *accesses)
{
  if (cap <= 0 || s->T == 0)
    return 0;
  c->size = 0;
  c->cap = cap;
  memset (c->prop, 0, sizeof (int64_t) * s->n_items);
  memset (c->seen, 0, s->n_items);
  for (int x = 0; x < s->n_items; x++)
    c->pos[x] = -1;
  for (int64_t t = 0; t < MIN (m, s->T); t++)
    {
      int n = gather (s, t, c->buf, &c->dedup);
      for (int i = 0; i < n; i++)
        c->prop[c->buf[i]] += COUNT_ONE;
    }

  int64_t hits = 0, n_seen = 0, ts = 0;
  for (int64_t t = 0; t < s->T; t++)
    {
      int n = gather (s, t, c->buf, &c->dedup);
      /* A token's experts are looked up together, against the cache as
       * it was before the token (41_sch_calc.py ranks them first). */
      for (int i = 0; i < n; i++)
        {
          int x = c->buf[i];
          if (c->pos[x] >= 0)
            hits++;
          else if (!c->seen[x] && cold == RS_SCH_COLD_REFERENCE && n_seen < cap)
            hits++;
          if (!c->seen[x])
            {
              c->seen[x] = 1;
              n_seen++;
            }
        }
      *accesses += n;
      for (int i = 0; i < n; i++)
        {
          int x = c->buf[i];
          if (c->pos[x] < 0)
            {
              if (c->size < cap)
                {
                  heap_set (c, c->size, x);
                  c->size++;
                }
              else
                {
                  /* Evict the lowest priority of what was cached; x's own
                   * key is updated only after (as the reference does). */
                  c->pos[c->heap[0]] = -1;
                  heap_set (c, 0, x);
                }
            }
          /* Used now: one activation fewer ahead, latest use. */
          ts++;
          c->prop[x] = ((c->prop[x] & ~(COUNT_ONE - 1)) - COUNT_ONE) | ts;
          heap_fix (c, c->pos[x]);
        }
      if (t + m < s->T)
        {
          n = gather (s, t + m, c->buf, &c->dedup);
          for (int i = 0; i < n; i++)
            {
              int x = c->buf[i];
              c->prop[x] += COUNT_ONE;
              if (c->pos[x] >= 0)
                heap_fix (c, c->pos[x]);
            }
        }
    }
  return hits;
}

static void
cache_init (Cache *c, int n_items, int cap, int B)
{
  c->n_items = n_items;
  c->prop = g_new (int64_t, n_items);
  c->pos = g_new (int, n_items);
  c->heap = g_new (int, MAX (cap, 1));
  c->seen = g_new (uint8_t, n_items);
  c->buf = g_new (int, MAX (B, 1));
  dedup_init (&c->dedup, n_items);
}

static void
cache_clear (Cache *c)
{
  g_free (c->prop);
  g_free (c->pos);
  g_free (c->heap);
  g_free (c->seen);
  g_free (c->buf);
  g_free (c->dedup.mark);
}

int64_t
rs_sch_hits (const int32_t *sets, int64_t T, int B, int n_items, int m, int capacity,
             RsSchColdPolicy cold, int64_t *accesses)
{
  Stream s = { sets, B, T, B, B, n_items, n_items };
  Cache c;
  cache_init (&c, n_items, capacity, B);
  int64_t n = 0;
  int64_t hits = sch_run (&s, m, capacity, cold, &c, &n);
  cache_clear (&c);
  if (accesses != NULL)
    *accesses = n;
  return hits;
}

/* ---- the analysis ------------------------------------------------------- */

/* SCH of one segment length over the sequences: mean over the sampled
 * sequences of each sequence's hit rate (41_sch_calc.py averages per
 * sequence). */
static double
sch_mean (const RsTrace *tr, const int32_t *ids, const GArray *seqs, int layer, int m, int cap,
          const RsLrcParams *p, Cache *c)
{
  const int L = tr->n_layer, K = tr->k_slots, E = tr->n_expert;
  double sum = 0.0;
  int n = 0;
  for (guint i = 0; i + 1 < seqs->len; i += MAX (p->seq_stride, 1))
    {
      int64_t s0 = g_array_index (seqs, int64_t, i), s1 = g_array_index (seqs, int64_t, i + 1);
      Stream s;
      if (layer >= 0)
        s = (Stream) { ids + (s0 * L + layer) * K, (int64_t) L * K, s1 - s0, K, K, E, E };
      else
        s = (Stream) { ids + s0 * L * K, (int64_t) L * K, s1 - s0, L * K, K, E, L * E };
      int64_t acc = 0;
      int64_t hits = sch_run (&s, m, cap, p->cold, c, &acc);
      if (acc > 0)
        {
          sum += (double) hits / acc;
          n++;
        }
    }
  return n > 0 ? sum / n : NAN;
}

RsLrcResult *
rs_lrc_compute (const RsTrace *tr, const RsLrcParams *params, GError **error)
{
  RsLrcParams def;
  if (params == NULL)
    {
      rs_lrc_params_init (&def);
      params = &def;
    }
  const int L = tr->n_layer, E = tr->n_expert, K = tr->k_slots;
  const int S = params->n_seg_lens;
  if (S <= 0 || S > RS_LRC_MAX_SEGS)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "between 1 and %d segment lengths are needed",
                   RS_LRC_MAX_SEGS);
      return NULL;
    }
  for (int i = 0; i < S; i++)
    if (params->seg_lens[i] < 1 || params->seg_lens[i] > 65536)
      {
        g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "segment length %d is out of range (1..65536)",
                     params->seg_lens[i]);
        return NULL;
      }
  const int32_t *ids = rs_an_route_ids (tr, params->routes, error);
  if (ids == NULL && tr->n_tokens > 0)
    return NULL;
  g_autoptr (GArray) seqs = rs_an_sequences (tr, params->seq_starts, params->n_seq, error);
  if (seqs == NULL)
    return NULL;

  RsLrcResult *r = g_new0 (RsLrcResult, 1);
  r->n_layer = L;
  r->n_expert = E;
  r->n_seg = S;
  memcpy (r->seg_lens, params->seg_lens, sizeof r->seg_lens);
  r->has_experts = rs_an_has_experts (tr);
  int n_moe = 0;
  for (int l = 0; l < L; l++)
    n_moe += r->has_experts[l];
  const int k = params->k > 0 ? params->k : MAX (tr->k_model, 1);
  r->cache_layer = (int) lround (params->cache_ratio * k);
  r->cache_model = (int) lround (params->cache_ratio * k * n_moe);
  r->srp_model = g_new (double, S);
  r->theta_model = g_new0 (int, S);
  r->best_m_model = g_new (double, S);
  r->srp_layer = g_new (double, (size_t) S * L);
  r->theta_layer = g_new0 (int, (size_t) S * L);
  r->srp_expert = g_new (double, (size_t) S * L * E);
  r->n_windows = g_new0 (int64_t, S);
  r->sch_model = g_new (double, S);
  r->sch_layer = g_new (double, (size_t) S * L);
  r->sch_layer_mean = g_new (double, S);

  g_autofree int32_t *cnt = g_new (int32_t, E);
  g_autofree int64_t *since = g_new (int64_t, E);
  g_autofree int *buf = g_new (int, K);
  Dedup dedup;
  dedup_init (&dedup, E);
  Cache c_layer, c_model;
  cache_init (&c_layer, E, r->cache_layer, K);
  cache_init (&c_model, L * E, r->cache_model, L * K);

  for (int si = 0; si < S; si++)
    {
      const int m = params->seg_lens[si];
      g_autofree int64_t *h_model = g_new0 (int64_t, m + 1);
      g_autofree int64_t *h_item = g_new (int64_t, (size_t) E * (m + 1));
      g_autofree int64_t *h_layer = g_new (int64_t, m + 1);
      double sch_sum = 0.0;
      int sch_n = 0;
      for (guint i = 0; i + 1 < seqs->len; i++)
        r->n_windows[si] += MAX (0, g_array_index (seqs, int64_t, i + 1) -
                                      g_array_index (seqs, int64_t, i) - m + 1);
      for (int l = 0; l < L; l++)
        {
          size_t li = (size_t) si * L + l;
          if (!r->has_experts[l])
            {
              r->srp_layer[li] = r->sch_layer[li] = NAN;
              for (int e = 0; e < E; e++)
                r->srp_expert[li * E + e] = NAN;
              continue;
            }
          memset (h_item, 0, sizeof (int64_t) * E * (m + 1));
          for (guint i = 0; i + 1 < seqs->len; i++)
            {
              int64_t s0 = g_array_index (seqs, int64_t, i), s1 = g_array_index (seqs, int64_t, i + 1);
              Stream s = { ids + (s0 * L + l) * K, (int64_t) L * K, s1 - s0, K, K, E, E };
              srp_hist (&s, m, TRUE, h_item, cnt, since, buf, &dedup);
            }
          memset (h_layer, 0, sizeof (int64_t) * (m + 1));
          for (int e = 0; e < E; e++)
            {
              const int64_t *he = h_item + (size_t) e * (m + 1);
              int64_t acts = 0;
              for (int cc = 0; cc <= m; cc++)
                {
                  h_layer[cc] += he[cc];
                  acts += cc * he[cc];
                }
              /* An expert never active has no SRP (the reference reports 0). */
              r->srp_expert[li * E + e] = acts > 0 ? rs_srp_from_histogram (he, m, NULL, NULL) : NAN;
            }
          for (int cc = 0; cc <= m; cc++)
            h_model[cc] += h_layer[cc];
          r->srp_layer[li] = r->n_windows[si] > 0
                               ? rs_srp_from_histogram (h_layer, m, &r->theta_layer[li], NULL) : NAN;
          r->sch_layer[li] = sch_mean (tr, ids, seqs, l, m, r->cache_layer, params, &c_layer);
          if (!isnan (r->sch_layer[li]))
            {
              sch_sum += r->sch_layer[li];
              sch_n++;
            }
        }
      r->srp_model[si] = r->n_windows[si] > 0 && n_moe > 0
                           ? rs_srp_from_histogram (h_model, m, &r->theta_model[si], &r->best_m_model[si])
                           : NAN;
      if (isnan (r->srp_model[si]))
        r->best_m_model[si] = NAN;
      r->sch_layer_mean[si] = sch_n > 0 ? sch_sum / sch_n : NAN;
      r->sch_model[si] = n_moe > 0 ? sch_mean (tr, ids, seqs, -1, m, r->cache_model, params, &c_model)
                                   : NAN;
    }
  cache_clear (&c_layer);
  cache_clear (&c_model);
  g_free (dedup.mark);
  return r;
}

void
rs_lrc_result_free (RsLrcResult *r)
{
  if (r == NULL)
    return;
  g_free (r->has_experts);
  g_free (r->srp_model);
  g_free (r->theta_model);
  g_free (r->best_m_model);
  g_free (r->srp_layer);
  g_free (r->theta_layer);
  g_free (r->srp_expert);
  g_free (r->n_windows);
  g_free (r->sch_model);
  g_free (r->sch_layer);
  g_free (r->sch_layer_mean);
  g_free (r);
}
