/* rs-test-model.h: tiny MoE models with seeded random weights, written as
 * GGUF files the engine and llama.cpp both load.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "rs-model.h"
#include "rs-tokenizer.h"
#include "rs-types.h"

typedef struct {
  const char *arch;      /* "qwen3moe", "olmoe", "qwen2moe", "llama" */
  RsType      type;      /* storage of the weight matrices */
  int n_layer;
  int n_embd;
  int n_head;
  int n_head_kv;
  int head_dim;
  int n_expert;
  int n_expert_used;
  int n_ff_exp;
  int n_ff_shexp;        /* qwen2moe only */
  int n_dense_first;     /* leading layers with a dense FFN instead of experts */
  int n_ff_dense;
  gboolean tied_output;
  int n_vocab;           /* >= RS_TEST_MODEL_N_VOCAB */
  int n_ctx;
  uint32_t seed;
} RsTestModelSpec;

/* A spec for @arch with small defaults: 2 layers, n_embd 64 (256 for
 * K-quant types), 4 heads, 2 KV heads, 8 experts, top-2. */
RsTestModelSpec rs_test_model_spec (const char *arch, RsType type, uint32_t seed);

/* The vocabulary: <unk> <s> </s>, the 256 byte tokens, then a few words. */
#define RS_TEST_MODEL_N_VOCAB 300

gboolean rs_test_model_write (const RsTestModelSpec *spec, const char *path, GError **error);

/* A generated model written to the temporary folder as @name and opened
 * with its tokenizer (the fixture of the run-level tests). */
typedef struct {
  char        *path;
  RsModel     *model;
  RsTokenizer *tok;
} RsTestModelFile;

void rs_test_model_file_open  (RsTestModelFile *f, const RsTestModelSpec *spec, const char *name);
void rs_test_model_file_close (RsTestModelFile *f);
