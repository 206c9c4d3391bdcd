/* rs-trace-private.h: the table of a trace's numeric arrays, shared by
 * rs-trace.c (allocation, append, truncate) and rs-trace-io.c (the file
 * formats), so that both agree on every array's name, type and shape.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <stddef.h>

#include "rs-trace.h"

typedef enum {
  RS_TRACE_I32,  /* int32_t, .npy '<i4' */
  RS_TRACE_U8,   /* uint8_t, .npy '|u1' */
  RS_TRACE_F32,  /* float,   .npy '<f4' */
} RsTraceElem;

typedef enum {
  RS_TRACE_SHAPE_T,    /* [T] */
  RS_TRACE_SHAPE_TL,   /* [T, L] */
  RS_TRACE_SHAPE_TLE,  /* [T, L, E] */
  RS_TRACE_SHAPE_TLK,  /* [T, L, K] */
} RsTraceShape;

typedef struct {
  const char  *name;     /* member name in the NPZ (without .npy) */
  size_t       offset;   /* of the GArray * in RsTrace */
  RsTraceElem  elem;
  RsTraceShape shape;
  gboolean     core;     /* allocated even without full */
} RsTraceArrayInfo;

#define RS_TRACE_N_ARRAYS 14
extern const RsTraceArrayInfo rs_trace_arrays[RS_TRACE_N_ARRAYS];

static inline GArray *
rs_trace_array (const RsTrace *trace, const RsTraceArrayInfo *info)
{
  return *(GArray *const *) ((const char *) trace + info->offset);
}

/* Elements per token: 1, L, L*E or L*K. */
static inline int64_t
rs_trace_array_stride (const RsTrace *trace, const RsTraceArrayInfo *info)
{
  switch (info->shape)
    {
    case RS_TRACE_SHAPE_T:   return 1;
    case RS_TRACE_SHAPE_TL:  return trace->n_layer;
    case RS_TRACE_SHAPE_TLE: return (int64_t) trace->n_layer * trace->n_expert;
    case RS_TRACE_SHAPE_TLK: return (int64_t) trace->n_layer * trace->k_slots;
    }
  return 1;
}

static inline size_t
rs_trace_elem_size (RsTraceElem elem)
{
  return elem == RS_TRACE_U8 ? 1 : 4;
}

/* What rs_trace_new allocates: which arrays a trace records cannot be
 * told from their lengths while it has no tokens, so it is kept here
 * (bit i for rs_trace_arrays[i]). */
typedef struct {
  RsTrace  pub;
  guint32  recorded;
} RsTraceReal;

static inline gboolean
rs_trace_records (const RsTrace *trace, int i)
{
  return (((const RsTraceReal *) trace)->recorded >> i) & 1u;
}

/* Starts (absent values for the tokens so far) or stops (length 0)
 * recording array i. */
void rs_trace_set_records (RsTrace *trace, int i, gboolean on);

/* Fills @n elements of @info's kind at @dst with the "absent" value: NaN
 * for floats, -1 for ids and channels, 0 for is_prompt; topk weights of
 * empty slots are 0 (rs-trace.h). */
void rs_trace_fill_absent (const RsTraceArrayInfo *info, void *dst, int64_t n);

/* The largest T a trace of these dimensions can hold: every array's
 * length must fit a GArray (guint). */
int64_t rs_trace_max_tokens (int n_layer, int n_expert, int k_slots);
