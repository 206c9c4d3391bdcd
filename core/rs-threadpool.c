/* rs-threadpool.c: persistent workers woken by an atomic generation
 * counter.
 *
 * Protocol of one step (rs_thread_pool_run with nth > 1):
 *   caller: fn, ctx, pending = nth - 1; generation++ (seq_cst);
 *           if any worker sleeps: futex_wake (generation);
 *           fn (ctx, 0, nth); wait until pending == 0.
 *   worker: wait until generation != seen (spin with pause, then
 *           sched_yield, then futex_wait); seen = generation;
 *           fn (ctx, ith, nth); pending-- (release).
 * A worker cannot miss or repeat a step: the caller does not bump the
 * generation again before every worker has finished the previous step,
 * so a worker always sees exactly seen + 1.
 *
 * Lost wake-ups are excluded by the Dekker pattern on (generation,
 * n_sleeping): the caller writes generation then reads n_sleeping, a
 * worker about to sleep writes n_sleeping then reads generation, both
 * seq_cst, so at least one of them sees the other's write; and
 * futex_wait itself re-checks the generation in the kernel.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include "rs-threadpool.h"

#include <glib.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause ()
#else
#define cpu_relax() __asm__ volatile ("" ::: "memory")
#endif

/* How long an idle worker polls before it sleeps in the kernel. Decode
 * issues a step every few to few tens of µs, and waking a sleeping
 * thread costs tens of µs on a VM (an IPI through the hypervisor), so
 * workers keep polling across the gaps between steps of one token, and
 * only sleep when the engine is really idle. The yield phase gives the
 * CPU away to other runnable processes while staying responsive.
 * ROUTESCOPE_SPIN_US overrides the total (0 = sleep at once). */
#define SPIN_PAUSE_US_DEFAULT 200
#define SPIN_TOTAL_US_DEFAULT 2000
/* The caller waiting for stragglers yields after this long: a worker
 * that is not done by then has most likely been preempted. */
#define JOIN_PAUSE_US 50

typedef struct {
  RsThreadPool *pool;
  int           ith;
} Worker;

struct _RsThreadPool {
  /* Written by the caller once per step and read by every worker right
   * after it sees the new generation: one cache line moves per step. */
  alignas (64) _Atomic uint32_t generation; /* also the futex word */
  _Atomic int  n_sleeping;
  RsParallelFn fn;
  void        *ctx;
  bool         stop;

  /* Written by each worker at the end of a step, polled by the caller. */
  alignas (64) _Atomic int pending;

  alignas (64) int n_threads;
  int64_t    spin_pause_us;
  int64_t    spin_total_us;
  pthread_t *threads; /* [n_threads - 1] */
  Worker    *workers; /* [n_threads - 1] */
};

static void
futex_wait (_Atomic uint32_t *addr, uint32_t val)
{
  syscall (SYS_futex, (uint32_t *) addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void
futex_wake_all (_Atomic uint32_t *addr)
{
  syscall (SYS_futex, (uint32_t *) addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static int64_t
now_us (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Returns the generation that differs from @seen. */
static uint32_t
wait_generation (RsThreadPool *pool, uint32_t seen)
{
  uint32_t g;
  int64_t t0 = -1;

  /* Poll first without reading the clock: the common case in decode is
   * a step that follows within a few µs. */
  for (int i = 0; i < 1024; i++) {
    if ((g = atomic_load_explicit (&pool->generation, memory_order_acquire)) != seen)
      return g;
    cpu_relax ();
  }
  if (pool->spin_total_us > 0) {
    t0 = now_us ();
    for (;;) {
      for (int i = 0; i < 256; i++) {
        if ((g = atomic_load_explicit (&pool->generation, memory_order_acquire)) != seen)
          return g;
        cpu_relax ();
      }
      int64_t dt = now_us () - t0;
      if (dt >= pool->spin_total_us)
        break;
      if (dt >= pool->spin_pause_us)
        sched_yield ();
    }
  }

  atomic_fetch_add_explicit (&pool->n_sleeping, 1, memory_order_seq_cst);
  while ((g = atomic_load_explicit (&pool->generation, memory_order_seq_cst)) == seen)
    futex_wait (&pool->generation, seen);
  atomic_fetch_sub_explicit (&pool->n_sleeping, 1, memory_order_relaxed);
  return g;
}

static void *
worker_main (void *data)
{
  Worker *w = data;
  RsThreadPool *pool = w->pool;
  /* The generation when the pool was created, not the current one: the
   * caller may publish steps before this thread first runs. */
  uint32_t seen = 0;

  for (;;) {
    seen = wait_generation (pool, seen);
    if (pool->stop)
      break;
    pool->fn (pool->ctx, w->ith, pool->n_threads);
    atomic_fetch_sub_explicit (&pool->pending, 1, memory_order_release);
  }
  return NULL;
}

static int64_t
env_int (const char *name, int64_t dflt)
{
  const char *s = g_getenv (name);
  if (s == NULL || *s == '\0')
    return dflt;
  return g_ascii_strtoll (s, NULL, 10);
}

RsThreadPool *
rs_thread_pool_new (int n_threads)
{
  if (n_threads <= 0) {
    long n = sysconf (_SC_NPROCESSORS_ONLN);
    n_threads = n > 0 ? (int) MIN (n, 1024) : 1;
  }

  RsThreadPool *pool = g_aligned_alloc0 (1, sizeof (RsThreadPool), 64);
  pool->n_threads = n_threads;
  pool->spin_total_us = MAX (0, env_int ("ROUTESCOPE_SPIN_US", SPIN_TOTAL_US_DEFAULT));
  pool->spin_pause_us = MIN (SPIN_PAUSE_US_DEFAULT, pool->spin_total_us);
  atomic_init (&pool->generation, 0);
  atomic_init (&pool->n_sleeping, 0);
  atomic_init (&pool->pending, 0);

  if (n_threads > 1) {
    pool->threads = g_new0 (pthread_t, n_threads - 1);
    pool->workers = g_new0 (Worker, n_threads - 1);
    for (int i = 0; i < n_threads - 1; i++) {
      pool->workers[i].pool = pool;
      pool->workers[i].ith = i + 1;
      int err = pthread_create (&pool->threads[i], NULL, worker_main, &pool->workers[i]);
      if (err != 0)
        g_error ("rs_thread_pool_new: pthread_create: %s", g_strerror (err));
      char name[16];
      g_snprintf (name, sizeof name, "rs-worker-%d", i + 1);
      pthread_setname_np (pool->threads[i], name);
    }
  }
  return pool;
}

int
rs_thread_pool_n_threads (const RsThreadPool *pool)
{
  return pool ? pool->n_threads : 1;
}

static void
publish_step (RsThreadPool *pool, RsParallelFn fn, void *ctx)
{
  pool->fn = fn;
  pool->ctx = ctx;
  atomic_store_explicit (&pool->pending, pool->n_threads - 1, memory_order_relaxed);
  /* seq_cst: ordered before the n_sleeping read below (see the top). */
  atomic_fetch_add_explicit (&pool->generation, 1, memory_order_seq_cst);
  if (atomic_load_explicit (&pool->n_sleeping, memory_order_seq_cst) > 0)
    futex_wake_all (&pool->generation);
}

void
rs_thread_pool_free (RsThreadPool *pool)
{
  if (pool == NULL)
    return;
  if (pool->n_threads > 1) {
    pool->stop = true;
    publish_step (pool, NULL, NULL);
    for (int i = 0; i < pool->n_threads - 1; i++)
      pthread_join (pool->threads[i], NULL);
  }
  g_free (pool->threads);
  g_free (pool->workers);
  g_aligned_free (pool);
}

void
rs_thread_pool_run (RsThreadPool *pool, RsParallelFn fn, void *ctx)
{
  if (pool == NULL || pool->n_threads == 1) {
    fn (ctx, 0, 1);
    return;
  }

  publish_step (pool, fn, ctx);
  fn (ctx, 0, pool->n_threads);

  if (atomic_load_explicit (&pool->pending, memory_order_acquire) == 0)
    return;
  int64_t t0 = -1;
  for (;;) {
    for (int i = 0; i < 256; i++) {
      if (atomic_load_explicit (&pool->pending, memory_order_acquire) == 0)
        return;
      cpu_relax ();
    }
    if (t0 < 0)
      t0 = now_us ();
    else if (now_us () - t0 > JOIN_PAUSE_US)
      sched_yield ();
  }
}

void
rs_split_range (int64_t n, int64_t grain, int ith, int nth, int64_t *begin, int64_t *end)
{
  if (grain < 1)
    grain = 1;
  if (nth < 1)
    nth = 1;
  /* Split whole grains, so every boundary but n itself is a multiple of
   * @grain, and the chunk sizes differ by at most one grain. */
  const int64_t units = (n + grain - 1) / grain;
  const int64_t b = units * ith / nth * grain;
  const int64_t e = units * (ith + 1) / nth * grain;
  *begin = MIN (b, n);
  *end = MIN (e, n);
}
