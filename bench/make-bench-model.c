/* make-bench-model: writes a MoE model with random weights of a chosen
 * shape, for benchmarks (the reference shape is the default: a
 * qwen3moe of about 1.3 B parameters).
 *
 * Usage: make-bench-model OUT.gguf [TYPE [ARCH]]   (TYPE default F16)
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <stdio.h>
#include <string.h>

#include "rs-test-model.h"

int
main (int argc, char **argv)
{
  if (argc < 2)
    {
      fprintf (stderr, "usage: make-bench-model OUT.gguf [TYPE [ARCH]]\n");
      return 1;
    }
  const char *type_name = argc > 2 ? argv[2] : "F16";
  const char *arch = argc > 3 ? argv[3] : "qwen3moe";
  int type = -1;
  for (int t = 0; t < RS_TYPE_COUNT; t++)
    if (rs_type_traits (t)->name != NULL && strcmp (rs_type_traits (t)->name, type_name) == 0)
      type = t;
  if (type < 0)
    {
      fprintf (stderr, "unknown type %s\n", type_name);
      return 1;
    }
  /* 16 layers, n_embd 1024, 16 heads of 64 (4 KV heads), 64 experts,
   * top-8, expert FFN 512, 32k vocabulary. */
  RsTestModelSpec spec = rs_test_model_spec (arch, type, 1234);
  spec.n_layer = 16;
  spec.n_embd = 1024;
  spec.n_head = 16;
  spec.n_head_kv = g_str_equal (arch, "olmoe") ? 16 : 4;
  spec.head_dim = 64;
  spec.n_expert = 64;
  spec.n_expert_used = 8;
  spec.n_ff_exp = 512;
  spec.n_ff_shexp = g_str_equal (arch, "qwen2moe") ? 1024 : 0;
  spec.n_vocab = 32000;
  spec.n_ctx = 4096;
  GError *error = NULL;
  if (!rs_test_model_write (&spec, argv[1], &error))
    {
      fprintf (stderr, "%s\n", error->message);
      return 1;
    }
  return 0;
}
