/* SPDX-License-Identifier: GPL-3.0-or-later */
/* rs-trace.c: a routing trace in memory; the file formats are in
 * rs-trace-io.c. */
#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

#include "rs-trace-private.h"

#define ARR(field, elem, shape, core) \
  { #field, offsetof (RsTrace, field), elem, shape, core }

/* NPZ member order = this order (docs/trace-format.md). */
const RsTraceArrayInfo rs_trace_arrays[RS_TRACE_N_ARRAYS] = {
  ARR (token_ids,          RS_TRACE_I32, RS_TRACE_SHAPE_T,   TRUE),
  ARR (is_prompt,          RS_TRACE_U8,  RS_TRACE_SHAPE_T,   TRUE),
  ARR (token_prob,         RS_TRACE_F32, RS_TRACE_SHAPE_T,   FALSE),
  ARR (next_entropy,       RS_TRACE_F32, RS_TRACE_SHAPE_T,   FALSE),
  ARR (router_logits,      RS_TRACE_F32, RS_TRACE_SHAPE_TLE, FALSE),
  ARR (router_scores,      RS_TRACE_F32, RS_TRACE_SHAPE_TLE, FALSE),
  ARR (topk_ids,           RS_TRACE_I32, RS_TRACE_SHAPE_TLK, TRUE),
  ARR (topk_weights,       RS_TRACE_F32, RS_TRACE_SHAPE_TLK, FALSE),
  ARR (base_topk_ids,      RS_TRACE_I32, RS_TRACE_SHAPE_TLK, FALSE),
  ARR (base_topk_weights,  RS_TRACE_F32, RS_TRACE_SHAPE_TLK, FALSE),
  ARR (expert_out_maxabs,  RS_TRACE_F32, RS_TRACE_SHAPE_TLK, FALSE),
  ARR (expert_out_channel, RS_TRACE_I32, RS_TRACE_SHAPE_TLK, FALSE),
  ARR (shared_gate,        RS_TRACE_F32, RS_TRACE_SHAPE_TL,  FALSE),
  ARR (resid_maxabs,       RS_TRACE_F32, RS_TRACE_SHAPE_TL,  FALSE),
};

void
rs_trace_fill_absent (const RsTraceArrayInfo *info, void *dst, int64_t n)
{
  if (n <= 0)
    return;  /* dst may be NULL then */
  switch (info->elem)
    {
    case RS_TRACE_U8:
      memset (dst, 0, (size_t) n);
      break;
    case RS_TRACE_I32:
      {
        int32_t *p = dst;
        for (int64_t i = 0; i < n; i++)
          p[i] = -1;
      }
      break;
    case RS_TRACE_F32:
      {
        /* Empty slots weigh 0 so that sums over slots need no NaN checks. */
        float v = (info->offset == offsetof (RsTrace, topk_weights)
                   || info->offset == offsetof (RsTrace, base_topk_weights)) ? 0.0f : NAN;
        float *p = dst;
        for (int64_t i = 0; i < n; i++)
          p[i] = v;
      }
      break;
    }
}

int64_t
rs_trace_max_tokens (int n_layer, int n_expert, int k_slots)
{
  int64_t widest = (int64_t) n_layer * MAX (n_expert, k_slots);
  return widest > 0 ? (int64_t) G_MAXUINT / widest : (int64_t) G_MAXUINT;
}

RsTrace *
rs_trace_new (int n_layer, int n_expert, int k_model, int k_slots, gboolean full)
{
  g_return_val_if_fail (n_layer > 0 && n_expert > 0, NULL);
  g_return_val_if_fail (k_model >= 0 && k_slots >= 1 && k_slots >= k_model, NULL);

  RsTraceReal *real = g_new0 (RsTraceReal, 1);
  RsTrace *trace = &real->pub;
  trace->n_layer = n_layer;
  trace->n_expert = n_expert;
  trace->k_model = k_model;
  trace->k_slots = k_slots;
  trace->n_tokens = 0;
  trace->token_text = g_ptr_array_new_with_free_func (g_free);
  trace->metadata_json = g_strdup ("{}");

  /* Every array exists, so that analyses need no NULL checks; those not
   * recorded stay at length 0. */
  for (int i = 0; i < RS_TRACE_N_ARRAYS; i++)
    {
      const RsTraceArrayInfo *info = &rs_trace_arrays[i];
      *(GArray **) ((char *) trace + info->offset) =
        g_array_new (FALSE, FALSE, (guint) rs_trace_elem_size (info->elem));
      if (full || info->core)
        real->recorded |= 1u << i;
    }
  return trace;
}

void
rs_trace_free (RsTrace *trace)
{
  if (trace == NULL)
    return;
  for (int i = 0; i < RS_TRACE_N_ARRAYS; i++)
    g_array_unref (rs_trace_array (trace, &rs_trace_arrays[i]));
  g_ptr_array_unref (trace->token_text);
  g_free (trace->metadata_json);
  g_free ((RsTraceReal *) trace);
}

/* Grows recorded array i from @t0 tokens to @t1, with absent values. */
static void
grow_array (RsTrace *trace, int i, int64_t t0, int64_t t1)
{
  const RsTraceArrayInfo *info = &rs_trace_arrays[i];
  GArray *a = rs_trace_array (trace, info);
  int64_t stride = rs_trace_array_stride (trace, info);
  g_array_set_size (a, (guint) (t1 * stride));
  rs_trace_fill_absent (info, a->data + (size_t) (t0 * stride) * rs_trace_elem_size (info->elem),
                        (t1 - t0) * stride);
}

void
rs_trace_set_records (RsTrace *trace, int i, gboolean on)
{
  RsTraceReal *real = (RsTraceReal *) trace;
  g_return_if_fail (i >= 0 && i < RS_TRACE_N_ARRAYS);
  if (on && !rs_trace_records (trace, i))
    {
      real->recorded |= 1u << i;
      grow_array (trace, i, 0, trace->n_tokens);
    }
  else if (!on)
    {
      real->recorded &= ~(1u << i);
      g_array_set_size (rs_trace_array (trace, &rs_trace_arrays[i]), 0);
    }
}

int64_t
rs_trace_append_tokens (RsTrace *trace, const int32_t *ids, int64_t n, gboolean is_prompt)
{
  g_return_val_if_fail (trace != NULL && n >= 0, -1);
  int64_t t0 = trace->n_tokens;
  /* GArray lengths are guint: refuse what would wrap them. */
  g_return_val_if_fail (n <= rs_trace_max_tokens (trace->n_layer, trace->n_expert,
                                                   trace->k_slots) - t0, -1);
  int64_t t1 = t0 + n;
  for (int i = 0; i < RS_TRACE_N_ARRAYS; i++)
    if (rs_trace_records (trace, i))
      grow_array (trace, i, t0, t1);

  int32_t *tid = (int32_t *) (void *) trace->token_ids->data;
  uint8_t *prompt = (uint8_t *) trace->is_prompt->data;
  for (int64_t t = t0; t < t1; t++)
    {
      tid[t] = ids != NULL ? ids[t - t0] : -1;
      prompt[t] = is_prompt ? 1 : 0;
      /* NULL until the recorder sets it (the writers treat it as ""). */
      g_ptr_array_add (trace->token_text, NULL);
    }
  trace->n_tokens = t1;
  return t0;
}

void
rs_trace_truncate (RsTrace *trace, int64_t t)
{
  g_return_if_fail (trace != NULL);
  if (t < 0)
    t = 0;
  if (t >= trace->n_tokens)
    return;
  for (int i = 0; i < RS_TRACE_N_ARRAYS; i++)
    if (rs_trace_records (trace, i))
      {
        const RsTraceArrayInfo *info = &rs_trace_arrays[i];
        g_array_set_size (rs_trace_array (trace, info),
                          (guint) (t * rs_trace_array_stride (trace, info)));
      }
  g_ptr_array_set_size (trace->token_text, (guint) t);
  trace->n_tokens = t;
}

void
rs_trace_set_metadata (RsTrace *trace, const char *json)
{
  g_return_if_fail (trace != NULL);
  if (json == NULL)
    json = "{}";
  /* Checked here once, so that every writer can splice the text into its
   * output without parsing it again for validity. */
  g_autoptr (JsonParser) parser = json_parser_new ();
  gboolean ok = json_parser_load_from_data (parser, json, -1, NULL);
  JsonNode *root = ok ? json_parser_get_root (parser) : NULL;
  g_return_if_fail (root != NULL && JSON_NODE_HOLDS_OBJECT (root));
  g_free (trace->metadata_json);
  trace->metadata_json = g_strdup (json);
}

gboolean
rs_trace_format_from_path (const char *path, RsTraceFormat *format)
{
  g_return_val_if_fail (path != NULL, FALSE);
  static const struct { const char *ext; RsTraceFormat format; } exts[] = {
    { ".npz", RS_TRACE_FORMAT_NPZ },
    { ".jsonl", RS_TRACE_FORMAT_JSONL },
    { ".csv", RS_TRACE_FORMAT_CSV },
  };
  size_t len = strlen (path);
  for (size_t i = 0; i < G_N_ELEMENTS (exts); i++)
    {
      size_t n = strlen (exts[i].ext);
      if (len > n && g_ascii_strcasecmp (path + len - n, exts[i].ext) == 0)
        {
          if (format != NULL)
            *format = exts[i].format;
          return TRUE;
        }
    }
  return FALSE;
}
