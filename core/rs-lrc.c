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

/* The routing packed for streaming: per MoE layer a contiguous int16
 * [T, kk] of its selected experts (-1 = empty), kk the most any token
 * selected. Reading the trace's [T, L, K] int32 directly costs a cache
 * line per token and layer; this is 4-8x less memory to stream. */
typedef struct {
  int       n_rows;   /* MoE layers */
  int      *layer;    /* [n_rows] their trace indices */
  int16_t **rows;     /* [n_rows] each [T, kk] */
  int       kk, E;
  int64_t   T;
} Packed;

static void
packed_clear (Packed *p)
{
  for (int g = 0; g < p->n_rows; g++)
    g_free (p->rows[g]);
  g_free (p->rows);
  g_free (p->layer);
}

/* One stream of activation sets: tokens [t0, t0 + T) of rows
 * [row0, row0 + n_rows); row g's expert e is item g * E + e, so that one
 * layer gives items = experts and all layers one item per (layer, expert). */
typedef struct {
  int16_t *const *rows;
  int             n_rows, kk, E;
  int64_t         t0, T;
  int             n_items;
} Stream;

/* ---- SRP ---------------------------------------------------------------- */

/* The items of token t into @buf [n_rows * kk]; returns how many. Rows
 * hold distinct experts (packing drops repeats), so no check here. */
static inline int
gather (const Stream *s, int64_t t, int *buf)
{
  int n = 0;
  for (int g = 0; g < s->n_rows; g++)
    {
      const int16_t *row = s->rows[g] + (s->t0 + t) * s->kk;
      for (int j = 0; j < s->kk && row[j] >= 0; j++)
        buf[n++] = g * s->E + row[j];
    }
  return n;
}

/* Appends the distinct valid ids of @src [K] to @dst, padding with -1 to
 * @kk. Sets are sets: the router never selects an expert twice, but an
 * imported trace might, and a repeated id must not count twice. */
static int
pack_row (const int32_t *src, int K, int E, int16_t *dst, int kk)
{
  int n = 0;
  for (int j = 0; j < K; j++)
    {
      if (src[j] < 0 || src[j] >= E)
        continue;
      gboolean dup = FALSE;
      for (int i = 0; i < n && !dup; i++)
        dup = dst[i] == src[j];
      if (!dup && n < kk)
        dst[n++] = (int16_t) src[j];
    }
  for (int i = n; i < kk; i++)
    dst[i] = -1;
  return n;
}

/* Packs int32 sets [T, B] of items < @n_items as one row. */
static void
pack_sets (const int32_t *sets, int64_t T, int B, int n_items, Packed *p)
{
  p->n_rows = 1;
  p->layer = g_new0 (int, 1);
  p->rows = g_new (int16_t *, 1);
  p->rows[0] = g_new (int16_t, MAX (T * B, 1));
  p->kk = B;
  p->E = n_items;
  p->T = T;
  for (int64_t t = 0; t < T; t++)
    pack_row (sets + t * B, B, n_items, p->rows[0] + t * B, B);
}

/* Adds to @hist [n_items, m + 1] (or, with @per_item FALSE, [m + 1]) the
 * number of windows of length @m in which each item is active on c
 * tokens. Counts change only at the window's two ends, so each item's
 * count is kept with the window where it took its value, and runs are
 * added when the count changes: O(T B + n_items) instead of O(T n_items). */
static void
srp_hist (const Stream *s, int m, gboolean per_item, int64_t *hist, int32_t *cnt, int64_t *since,
          int *buf)
{
  if (s->T < m || m <= 0)
    return;
  const int64_t W = s->T - m + 1;
  memset (cnt, 0, sizeof (int32_t) * s->n_items);
  memset (since, 0, sizeof (int64_t) * s->n_items);
  for (int64_t t = 0; t < m; t++)
    {
      int n = gather (s, t, buf);
      for (int i = 0; i < n; i++)
        cnt[buf[i]]++;
    }
#define HIST(x, c) hist[(per_item ? (int64_t) (x) * (m + 1) : 0) + (c)]
  for (int64_t w = 1; w < W; w++)
    {
      /* Window w = [w, w + m): token w - 1 leaves, token w + m - 1 enters. */
      int n = gather (s, w - 1, buf);
      for (int i = 0; i < n; i++)
        {
          int x = buf[i];
          HIST (x, cnt[x]) += w - since[x];
          since[x] = w;
          cnt[x]--;
        }
      n = gather (s, w + m - 1, buf);
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
  g_return_if_fail (n_items > 0 && n_items <= G_MAXINT16);
  Packed pk;
  pack_sets (sets, T, B, n_items, &pk);
  Stream s = { pk.rows, 1, B, n_items, 0, T, n_items };
  g_autofree int32_t *cnt = g_new (int32_t, n_items);
  g_autofree int64_t *since = g_new (int64_t, n_items);
  g_autofree int *buf = g_new (int, MAX (B, 1));
  srp_hist (&s, m, FALSE, hist, cnt, since, buf);
  packed_clear (&pk);
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
 * evolve as "on a miss, evict the lowest priority" (test-analysis checks
 * both against each other). The priority is (activations in the next m
 * tokens, current token included; time of last use), compared in that
 * order, packed as count << 32 | time as in 41_sch_calc.py.
 *
 * Large caches keep a 4-ary min-heap whose stored keys may lag behind:
 * a priority that rises (an activation entering the window) is not
 * pushed into the heap, so stored <= true always holds; at an eviction a
 * root whose stored key is stale is refreshed and sifted down until the
 * root is current, and then it is the true minimum. Only falls (a use
 * consumes an activation) are applied at once. Small caches are scanned. */
typedef struct {
  int64_t key;   /* <= the item's priority */
  int     item;
} Slot;

typedef struct {
  int      n_items, cap, size;
  gboolean linear; /* small caches: unordered slots, a scan to evict */
  int64_t *prop;   /* [n_items] priority of every item, cached or not */
  int     *pos;    /* [n_items] slot index, -1 when not cached */
  Slot    *slots;  /* [cap] */
  int64_t *keys;   /* [cap] linear: slot i's priority */
  uint8_t *seen;   /* [n_items] */
  int     *buf;    /* [B] a token's items */
} Cache;

#define COUNT_ONE ((int64_t) 1 << 32)
/* Up to this capacity a scan beats a heap (a layer's cache is 2k). */
#define LINEAR_MAX 48

static inline void
slot_set (Cache *c, int i, Slot v)
{
  c->slots[i] = v;
  c->pos[v.item] = i;
}

/* Restores the heap order around slot @i after its stored key changed. */
static void
heap_fix (Cache *c, int i)
{
  Slot v = c->slots[i];
  while (i > 0)
    {
      int parent = (i - 1) / 4;
      if (c->slots[parent].key <= v.key)
        break;
      slot_set (c, i, c->slots[parent]);
      i = parent;
    }
  for (;;)
    {
      int first = 4 * i + 1, best = -1;
      int64_t bk = v.key;
      for (int ch = first; ch < first + 4 && ch < c->size; ch++)
        if (c->slots[ch].key < bk)
          {
            bk = c->slots[ch].key;
            best = ch;
          }
      if (best < 0)
        break;
      slot_set (c, i, c->slots[best]);
      i = best;
    }
  slot_set (c, i, v);
}

/* x's priority fell: the heap must know; a scanned cache keeps its keys
 * exact (contiguous, so that the scan reads no other memory). */
static inline void
cache_fell (Cache *c, int x)
{
  int i = c->pos[x];
  if (i < 0)
    return;
  if (c->linear)
    c->keys[i] = c->prop[x];
  else if (c->prop[x] < c->slots[i].key)
    {
      c->slots[i].key = c->prop[x];
      heap_fix (c, i);
    }
}

/* x's priority rose: only a scanned cache's copy needs it. */
static inline void
cache_rose (Cache *c, int x)
{
  int i = c->pos[x];
  if (c->linear && i >= 0)
    c->keys[i] = c->prop[x];
}

/* Brings x in, evicting the lowest priority when full. */
static inline void
cache_insert (Cache *c, int x)
{
  Slot v = { c->prop[x], x };
  if (c->size < c->cap)
    {
      c->keys[c->size] = v.key;
      slot_set (c, c->size++, v);
      if (!c->linear)
        heap_fix (c, c->size - 1);
      return;
    }
  int victim = 0;
  if (c->linear)
    {
      int64_t bk = c->keys[0];
      for (int i = 1; i < c->size; i++)
        if (c->keys[i] < bk)
          {
            bk = c->keys[i];
            victim = i;
          }
    }
  else
    for (;;)
      {
        int64_t now = c->prop[c->slots[0].item];
        if (now == c->slots[0].key)
          break;
        c->slots[0].key = now;
        heap_fix (c, 0);
      }
  c->pos[c->slots[victim].item] = -1;
  c->keys[victim] = v.key;
  slot_set (c, victim, v);
  if (!c->linear)
    heap_fix (c, victim);
}

/* Simulates one sequence; returns the hits and adds the accesses. */
static int64_t
sch_run (const Stream *s, int m, int cap, RsSchColdPolicy cold, Cache *c, int64_t *accesses)
{
  if (cap <= 0 || s->T == 0)
    return 0;
  c->size = 0;
  c->cap = cap;
  c->linear = cap <= LINEAR_MAX;
  memset (c->prop, 0, sizeof (int64_t) * s->n_items);
  memset (c->seen, 0, s->n_items);
  for (int x = 0; x < s->n_items; x++)
    c->pos[x] = -1;
  for (int64_t t = 0; t < MIN (m, s->T); t++)
    {
      int n = gather (s, t, c->buf);
      for (int i = 0; i < n; i++)
        c->prop[c->buf[i]] += COUNT_ONE;
    }

  int64_t hits = 0, n_seen = 0, ts = 0;
  for (int64_t t = 0; t < s->T; t++)
    {
      int n = gather (s, t, c->buf);
      /* A token's experts are looked up together, against the cache as
       * it was before the token (41_sch_calc.py ranks them first). */
      for (int i = 0; i < n; i++)
        {
          int x = c->buf[i];
          int cached = c->pos[x] >= 0;
          hits += cached;
          if (G_UNLIKELY (!c->seen[x]))
            {
              hits += !cached && cold == RS_SCH_COLD_REFERENCE && n_seen < cap;
              c->seen[x] = 1;
              n_seen++;
            }
        }
      *accesses += n;
      for (int i = 0; i < n; i++)
        {
          int x = c->buf[i];
          /* A miss evicts the lowest priority of what was cached, x's
           * own priority being updated only after (as the reference does). */
          if (c->pos[x] < 0)
            cache_insert (c, x);
          /* Used now: one activation fewer ahead, latest use. */
          ts++;
          c->prop[x] = ((c->prop[x] & ~(COUNT_ONE - 1)) - COUNT_ONE) | ts;
          cache_fell (c, x);
        }
      /* Token t + m enters the window: priorities rise (lazily). */
      if (t + m < s->T)
        {
          n = gather (s, t + m, c->buf);
          for (int i = 0; i < n; i++)
            {
              c->prop[c->buf[i]] += COUNT_ONE;
              cache_rose (c, c->buf[i]);
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
  c->slots = g_new (Slot, MAX (cap, 1));
  c->keys = g_new (int64_t, MAX (cap, 1));
  c->seen = g_new (uint8_t, n_items);
  c->buf = g_new (int, MAX (B, 1));
}

static void
cache_clear (Cache *c)
{
  g_free (c->prop);
  g_free (c->pos);
  g_free (c->slots);
  g_free (c->keys);
  g_free (c->seen);
  g_free (c->buf);
}

int64_t
rs_sch_hits (const int32_t *sets, int64_t T, int B, int n_items, int m, int capacity,
             RsSchColdPolicy cold, int64_t *accesses)
{
  g_return_val_if_fail (n_items > 0 && n_items <= G_MAXINT16, 0);
  Packed pk;
  pack_sets (sets, T, B, n_items, &pk);
  Stream s = { pk.rows, 1, B, n_items, 0, T, n_items };
  Cache c;
  cache_init (&c, n_items, capacity, B);
  int64_t n = 0;
  int64_t hits = sch_run (&s, m, capacity, cold, &c, &n);
  cache_clear (&c);
  packed_clear (&pk);
  if (accesses != NULL)
    *accesses = n;
  return hits;
}

/* ---- the analysis ------------------------------------------------------- */

/* SCH of one segment length over the sequences: mean over the sampled
 * sequences of each sequence's hit rate (41_sch_calc.py averages per
 * sequence). */
static double
sch_mean (const Packed *pk, const GArray *seqs, int row, int m, int cap, const RsLrcParams *p,
          Cache *c)
{
  double sum = 0.0;
  int n = 0;
  for (guint i = 0; i + 1 < seqs->len; i += MAX (p->seq_stride, 1))
    {
      int64_t s0 = g_array_index (seqs, int64_t, i), s1 = g_array_index (seqs, int64_t, i + 1);
      Stream s;
      if (row >= 0)
        s = (Stream) { pk->rows + row, 1, pk->kk, pk->E, s0, s1 - s0, pk->E };
      else
        s = (Stream) { pk->rows, pk->n_rows, pk->kk, pk->E, s0, s1 - s0, pk->n_rows * pk->E };
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

/* Packs the MoE layers' selections of @ids [T, L, K]. */
static void
pack_trace (const RsTrace *tr, const int32_t *ids, const uint8_t *moe, Packed *p)
{
  const int L = tr->n_layer, K = tr->k_slots, E = tr->n_expert;
  const int64_t T = tr->n_tokens;
  int kk = 1;
  for (int64_t i = 0; i < T * L; i++)
    {
      int n = 0;
      for (int j = 0; j < K; j++)
        n += ids[i * K + j] >= 0 && ids[i * K + j] < E;
      kk = MAX (kk, n);
    }
  p->n_rows = 0;
  p->layer = g_new (int, L);
  p->rows = g_new (int16_t *, L);
  p->kk = kk;
  p->E = E;
  p->T = T;
  for (int l = 0; l < L; l++)
    {
      if (!moe[l])
        continue;
      int16_t *row = g_new (int16_t, MAX (T * kk, 1));
      for (int64_t t = 0; t < T; t++)
        pack_row (ids + (t * L + l) * K, K, E, row + t * kk, kk);
      p->layer[p->n_rows] = l;
      p->rows[p->n_rows++] = row;
    }
}

typedef struct {
  RsLrcResult       *r;
  const Packed      *pk;
  const GArray      *seqs;
  const RsLrcParams *params;
  int                si;
} SegJob;

/* SRP and SCH of segment length index si, at every level. Writes only
 * the si slices of the result. */
static gpointer
seg_job (gpointer data)
{
  SegJob *job = data;
  RsLrcResult *r = job->r;
  const Packed *pk = job->pk;
  const GArray *seqs = job->seqs;
  const int L = r->n_layer, E = r->n_expert, si = job->si, m = r->seg_lens[si];
  g_autofree int64_t *h_model = g_new0 (int64_t, m + 1);
  g_autofree int64_t *h_item = g_new (int64_t, (size_t) E * (m + 1));
  g_autofree int64_t *h_layer = g_new (int64_t, m + 1);
  g_autofree int32_t *cnt = g_new (int32_t, E);
  g_autofree int64_t *since = g_new (int64_t, E);
  g_autofree int *buf = g_new (int, pk->kk);
  Cache c_layer, c_model;
  cache_init (&c_layer, E, r->cache_layer, pk->kk);
  cache_init (&c_model, MAX (pk->n_rows, 1) * E, r->cache_model, MAX (pk->n_rows, 1) * pk->kk);
  double sch_sum = 0.0;
  int sch_n = 0;

  for (int l = 0; l < L; l++)
    {
      size_t li = (size_t) si * L + l;
      r->srp_layer[li] = r->sch_layer[li] = NAN;
      for (int e = 0; e < E; e++)
        r->srp_expert[li * E + e] = NAN;
    }
  for (int row = 0; row < pk->n_rows; row++)
    {
      const int l = pk->layer[row];
      size_t li = (size_t) si * L + l;
      memset (h_item, 0, sizeof (int64_t) * E * (m + 1));
      for (guint i = 0; i + 1 < seqs->len; i++)
        {
          int64_t s0 = g_array_index (seqs, int64_t, i), s1 = g_array_index (seqs, int64_t, i + 1);
          Stream s = { pk->rows + row, 1, pk->kk, E, s0, s1 - s0, E };
          srp_hist (&s, m, TRUE, h_item, cnt, since, buf);
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
      if (r->n_windows[si] > 0)
        r->srp_layer[li] = rs_srp_from_histogram (h_layer, m, &r->theta_layer[li], NULL);
      r->sch_layer[li] = sch_mean (pk, seqs, row, m, r->cache_layer, job->params, &c_layer);
      if (!isnan (r->sch_layer[li]))
        {
          sch_sum += r->sch_layer[li];
          sch_n++;
        }
    }
  r->srp_model[si] = r->best_m_model[si] = NAN;
  if (r->n_windows[si] > 0 && pk->n_rows > 0)
    r->srp_model[si] = rs_srp_from_histogram (h_model, m, &r->theta_model[si], &r->best_m_model[si]);
  r->sch_layer_mean[si] = sch_n > 0 ? sch_sum / sch_n : NAN;
  r->sch_model[si] = pk->n_rows > 0 ? sch_mean (pk, seqs, -1, m, r->cache_model, job->params, &c_model)
                                    : NAN;
  cache_clear (&c_layer);
  cache_clear (&c_model);
  return NULL;
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
  const int L = tr->n_layer, E = tr->n_expert;
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

  g_autofree uint8_t *moe = g_memdup2 (r->has_experts, L);
  Packed pk;
  pack_trace (tr, ids, moe, &pk);
  for (int si = 0; si < S; si++)
    for (guint i = 0; i + 1 < seqs->len; i++)
      r->n_windows[si] += MAX (0, g_array_index (seqs, int64_t, i + 1) -
                                    g_array_index (seqs, int64_t, i) - params->seg_lens[si] + 1);

  /* The segment lengths are independent: one thread each. */
  SegJob jobs[RS_LRC_MAX_SEGS];
  GThread *threads[RS_LRC_MAX_SEGS] = { 0 };
  for (int si = 0; si < S; si++)
    {
      jobs[si] = (SegJob) { .r = r, .pk = &pk, .seqs = seqs, .params = params, .si = si };
      if (si > 0)
        threads[si] = g_thread_try_new ("rs-lrc", seg_job, &jobs[si], NULL);
    }
  seg_job (&jobs[0]);
  for (int si = 1; si < S; si++)
    {
      if (threads[si] != NULL)
        g_thread_join (threads[si]);
      else
        seg_job (&jobs[si]);
    }
  packed_clear (&pk);
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
