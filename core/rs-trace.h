/* rs-trace.h: a routing trace, what the router probes saw over a run.
 *
 * One trace per run (or per imported file). Token-major arrays with fixed
 * shapes: T tokens, L layers (all of the model's layers; layers without
 * experts hold "absent" values), E experts, K slots for the selected
 * experts (slot j of (t, l) is the j-th selected expert; unused slots have
 * id -1 and weight 0). The arrays are plain GArrays so that analyses can
 * index them directly; the documented file formats are in
 * docs/trace-format.md.
 *
 * A field whose source did not record it is empty (len == 0): a trace
 * imported from vLLM has token ids and topk_ids only.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

typedef struct {
  int      n_layer;   /* L */
  int      n_expert;  /* E */
  int      k_slots;   /* K */
  int      k_model;   /* the model's experts per token */
  int64_t  n_tokens;  /* T */

  /* per token */
  GArray    *token_ids;     /* int32  [T] */
  GPtrArray *token_text;    /* char * [T] UTF-8 text of the token (its complete characters;
                               a token inside a character shows its bytes as <0xNN>); NULL
                               where not known (rs_trace_append_tokens leaves NULL for the
                               recorder to set; writers show it as "") */
  GArray    *is_prompt;     /* uint8  [T] 1 for prompt tokens */
  GArray    *token_prob;    /* float  [T] probability the model gave this token when it was
                               generated (NaN for prompt tokens) */
  GArray    *next_entropy;  /* float  [T] entropy (nats) of the next-token distribution
                               computed at this token (NaN where not computed) */

  /* per token and layer */
  GArray *router_logits;      /* float [T, L, E] raw router logits (NaN for dense layers) */
  GArray *router_scores;      /* float [T, L, E] scores after interventions (softmax/sigmoid) */
  GArray *topk_ids;           /* int32 [T, L, K] experts that ran, -1 = empty slot */
  GArray *topk_weights;       /* float [T, L, K] their weights */
  GArray *base_topk_ids;      /* int32 [T, L, K] what the untouched router chose (= topk_ids
                                 where no intervention was active) */
  GArray *base_topk_weights;  /* float [T, L, K] */
  GArray *expert_out_maxabs;  /* float [T, L, K] max |down-projection output| of slot j */
  GArray *expert_out_channel; /* int32 [T, L, K] the channel of that maximum */
  GArray *shared_gate;        /* float [T, L] shared-expert gate (NaN where none) */
  GArray *resid_maxabs;       /* float [T, L] max |residual stream| after the layer */

  /* JSON object text: model, architecture, file hash, prompt, sampling,
   * interventions, engine version. Never NULL ("{}" when unknown). */
  char *metadata_json;
} RsTrace;

/* An empty trace for a model of @n_layer layers and @n_expert experts,
 * @k_slots >= @k_model selected-expert slots per (token, layer). With
 * @full, every array is recorded; without, only token ids, text, prompt
 * flags and topk_ids (the others stay at length 0). Traces come only
 * from here, rs_trace_load_npz and the importers (never a bare RsTrace). */
RsTrace *rs_trace_new  (int n_layer, int n_expert, int k_model, int k_slots, gboolean full);
void     rs_trace_free (RsTrace *trace);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RsTrace, rs_trace_free)

/* Appends @n tokens with every per-token and per-layer value "absent"
 * (NaN, -1, 0) for the recorder to fill in. Returns the first new index. */
int64_t rs_trace_append_tokens (RsTrace *trace, const int32_t *ids, int64_t n,
                                gboolean is_prompt);
/* Drops every token from @t on. */
void    rs_trace_truncate      (RsTrace *trace, int64_t t);

/* Replaces the metadata text (must be a JSON object). */
void    rs_trace_set_metadata  (RsTrace *trace, const char *json);

typedef enum {
  RS_TRACE_FORMAT_NPZ,    /* numpy .npz: one .npy per array + metadata.json */
  RS_TRACE_FORMAT_JSONL,  /* one JSON object per token */
  RS_TRACE_FORMAT_CSV,    /* long form: token, layer, rank, expert, weight */
} RsTraceFormat;

/* From the file name's extension (.npz, .jsonl, .csv); FALSE if none fits. */
gboolean rs_trace_format_from_path (const char *path, RsTraceFormat *format);

/* Writes @trace atomically (a temporary file in the same folder, then a
 * rename): on any error the destination is untouched, no partial file is
 * left, and @error names the path and the problem. */
gboolean rs_trace_save (const RsTrace *trace, const char *path, RsTraceFormat format,
                        GError **error);

/* Reads Routescope's own NPZ. */
RsTrace *rs_trace_load_npz (const char *path, GError **error);

/* Imports routing captured by serving engines: vLLM's routed experts
 * (an .npy of int16 [tokens, layers, k], from --enable-return-routed-experts)
 * and SGLang's return_routed_experts (a JSON file whose routed experts are
 * base64 int32 flattened [tokens, layers, k]). @n_expert may be 0 to infer
 * it as max id + 1. See docs/trace-format.md for the exact inputs. */
RsTrace *rs_trace_import_vllm   (const char *path, int n_expert, GError **error);
RsTrace *rs_trace_import_sglang (const char *path, int n_layer, int n_expert, GError **error);

G_END_DECLS
