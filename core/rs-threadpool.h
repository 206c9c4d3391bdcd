/* rs-threadpool.h: a persistent pool of worker threads for the compute
 * kernels.
 *
 * Decode runs hundreds of small parallel steps per token (every mat-vec
 * of every layer), so a step must start and join in microseconds: the
 * workers spin briefly on an atomic generation counter before they sleep.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <stdint.h>

typedef struct _RsThreadPool RsThreadPool;

/* @ith in [0, nth): the caller's own thread is ith == 0. */
typedef void (*RsParallelFn) (void *ctx, int ith, int nth);

/* @n_threads <= 0 means the number of online CPUs. */
RsThreadPool *rs_thread_pool_new       (int n_threads);
void          rs_thread_pool_free      (RsThreadPool *pool);
int           rs_thread_pool_n_threads (const RsThreadPool *pool);

/* Runs @fn on every thread of the pool (the caller included) and returns
 * when all are done. Not reentrant: one parallel step at a time. */
void rs_thread_pool_run (RsThreadPool *pool, RsParallelFn fn, void *ctx);

/* Splits [0, n) into @nth near-equal chunks, rounded to multiples of
 * @grain; writes chunk @ith's bounds. */
void rs_split_range (int64_t n, int64_t grain, int ith, int nth, int64_t *begin, int64_t *end);
