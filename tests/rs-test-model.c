/* rs-test-model.c
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "rs-test-model.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include "rs-test-gguf-writer.h"

static const char *const words[] = {
  "▁the", "▁a", "▁of", "▁and", "▁to", "▁in", "▁is", "▁it", "▁that", "▁for",
  "▁was", "▁on", "▁with", "▁as", "▁he", "▁be", "▁at", "▁by", "▁this", "▁had",
  "▁not", "▁are", "▁but", "▁from", "▁or", "▁have", "▁an", "▁they", "▁which", "▁one",
  "▁you", "▁were", "▁her", "▁all", "▁she", "▁there", "▁would", "▁their", "▁we", "▁him",
  "er", "in",
};

RsTestModelSpec
rs_test_model_spec (const char *arch, RsType type, uint32_t seed)
{
  gboolean k_quant = type == RS_TYPE_Q2_K || type == RS_TYPE_Q3_K || type == RS_TYPE_Q4_K ||
                     type == RS_TYPE_Q5_K || type == RS_TYPE_Q6_K || type == RS_TYPE_IQ4_XS;
  int w = k_quant ? 256 : 64;
  /* OLMoE has no grouped-query attention (llama.cpp sizes its k norm by n_embd). */
  RsTestModelSpec s = {
    .arch = arch, .type = type, .n_layer = 2, .n_embd = w, .n_head = 4,
    .n_head_kv = g_str_equal (arch, "olmoe") ? 4 : 2,
    .head_dim = w / 4, .n_expert = 8, .n_expert_used = 2, .n_ff_exp = w,
    .n_ff_shexp = g_str_equal (arch, "qwen2moe") ? w : 0, .n_dense_first = 0, .n_ff_dense = 0,
    .tied_output = FALSE, .n_vocab = RS_TEST_MODEL_N_VOCAB, .n_ctx = 256, .seed = seed,
  };
  return s;
}

/* Roughly normal values (sum of uniforms), scaled. */
static void
fill (GRand *r, float *v, int64_t n, float scale, float offset)
{
  for (int64_t i = 0; i < n; i++)
    {
      double u = g_rand_double (r) + g_rand_double (r) + g_rand_double (r) - 1.5;
      v[i] = offset + scale * (float) u * 2.0f;
    }
}

static void
add_matrix (RsTestGguf *w, GRand *r, const char *name, RsType type, int64_t cols, int64_t rows,
            int64_t n3, float scale)
{
  int64_t n = cols * rows * n3;
  g_autofree float *v = g_new (float, n);
  fill (r, v, n, scale, 0.0f);
  int64_t ne[3] = { cols, rows, n3 };
  rs_test_gguf_add_tensor_f32 (w, name, type, n3 > 1 ? 3 : 2, ne, v);
}

static void
add_vector (RsTestGguf *w, GRand *r, const char *name, int64_t n, float scale, float offset)
{
  g_autofree float *v = g_new (float, n);
  fill (r, v, n, scale, offset);
  rs_test_gguf_add_tensor (w, name, RS_TYPE_F32, 1, (int64_t[]) { n }, v);
}

static void
add_tokenizer (RsTestGguf *w, int n)
{
  g_autoptr (GPtrArray) toks = g_ptr_array_new_with_free_func (g_free);
  g_autofree float *scores = g_new0 (float, n);
  g_autofree int32_t *types = g_new0 (int32_t, n);
  g_ptr_array_add (toks, g_strdup ("<unk>"));
  g_ptr_array_add (toks, g_strdup ("<s>"));
  g_ptr_array_add (toks, g_strdup ("</s>"));
  types[0] = 2;
  types[1] = types[2] = 3;
  for (int b = 0; b < 256; b++)
    {
      types[toks->len] = 6;
      g_ptr_array_add (toks, g_strdup_printf ("<0x%02X>", b));
    }
  for (guint i = 0; toks->len < (guint) n; i++)
    {
      int id = toks->len;
      types[id] = 1;
      scores[id] = -(float) i;
      if (i < G_N_ELEMENTS (words))
        g_ptr_array_add (toks, g_strdup (words[i]));
      else
        g_ptr_array_add (toks, g_strdup_printf ("▁w%u", i));
    }
  rs_test_gguf_add_str (w, "tokenizer.ggml.model", "llama");
  rs_test_gguf_add_str (w, "tokenizer.ggml.pre", "default");
  rs_test_gguf_add_arr_str (w, "tokenizer.ggml.tokens", (const char *const *) toks->pdata, n);
  rs_test_gguf_add_arr (w, "tokenizer.ggml.scores", RS_GGUF_FLOAT32, scores, n);
  rs_test_gguf_add_arr (w, "tokenizer.ggml.token_type", RS_GGUF_INT32, types, n);
  rs_test_gguf_add_u32 (w, "tokenizer.ggml.unknown_token_id", 0);
  rs_test_gguf_add_u32 (w, "tokenizer.ggml.bos_token_id", 1);
  rs_test_gguf_add_u32 (w, "tokenizer.ggml.eos_token_id", 2);
  rs_test_gguf_add_bool (w, "tokenizer.ggml.add_bos_token", TRUE);
  rs_test_gguf_add_bool (w, "tokenizer.ggml.add_eos_token", FALSE);
}

gboolean
rs_test_model_write (const RsTestModelSpec *s, const char *path, GError **error)
{
  g_autoptr (RsTestGguf) w = rs_test_gguf_new ();
  GRand *r = g_rand_new_with_seed (s->seed);
  const char *a = s->arch;
  char key[128];
  gboolean is_llama = g_str_equal (a, "llama"), is_olmoe = g_str_equal (a, "olmoe");
  gboolean is_qwen2 = g_str_equal (a, "qwen2moe"), is_qwen3 = g_str_equal (a, "qwen3moe");
  gboolean is_granite = g_str_equal (a, "granitemoe");
  const int64_t E = s->n_embd, q_dim = (int64_t) s->n_head * s->head_dim;
  const int64_t kv_dim = (int64_t) s->n_head_kv * s->head_dim, V = s->n_vocab;

#define K(suffix) (g_snprintf (key, sizeof key, "%s.%s", a, suffix), key)
  rs_test_gguf_add_str (w, "general.architecture", a);
  rs_test_gguf_add_str (w, "general.name", "routescope test model");
  rs_test_gguf_add_u32 (w, K ("context_length"), s->n_ctx);
  rs_test_gguf_add_u32 (w, K ("embedding_length"), E);
  rs_test_gguf_add_u32 (w, K ("block_count"), s->n_layer);
  /* llama, olmoe and granitemoe size their experts by feed_forward_length. */
  rs_test_gguf_add_u32 (w, K ("feed_forward_length"),
                        (is_llama || is_olmoe || is_granite) ? s->n_ff_exp
                                                             : (s->n_ff_dense ? s->n_ff_dense : s->n_ff_exp));
  rs_test_gguf_add_u32 (w, K ("attention.head_count"), s->n_head);
  rs_test_gguf_add_u32 (w, K ("attention.head_count_kv"), s->n_head_kv);
  rs_test_gguf_add_u32 (w, K ("attention.key_length"), s->head_dim);
  rs_test_gguf_add_u32 (w, K ("attention.value_length"), s->head_dim);
  rs_test_gguf_add_f32 (w, K ("attention.layer_norm_rms_epsilon"), 1e-6f);
  rs_test_gguf_add_f32 (w, K ("rope.freq_base"), 10000.0f);
  if (is_llama || is_granite)
    rs_test_gguf_add_u32 (w, K ("rope.dimension_count"), s->head_dim);
  if (is_granite)
    {
      /* Granite 3's multipliers, in kind. */
      rs_test_gguf_add_f32 (w, K ("embedding_scale"), 12.0f);
      rs_test_gguf_add_f32 (w, K ("residual_scale"), 0.22f);
      rs_test_gguf_add_f32 (w, K ("attention.scale"), 0.0078125f);
      rs_test_gguf_add_f32 (w, K ("logit_scale"), 6.0f);
    }
  rs_test_gguf_add_u32 (w, K ("expert_count"), s->n_expert);
  rs_test_gguf_add_u32 (w, K ("expert_used_count"), s->n_expert_used);
  if (is_qwen2 || is_qwen3)
    rs_test_gguf_add_u32 (w, K ("expert_feed_forward_length"), s->n_ff_exp);
  if (is_qwen2)
    rs_test_gguf_add_u32 (w, K ("expert_shared_feed_forward_length"), s->n_ff_shexp);
#undef K
  add_tokenizer (w, s->n_vocab);

  const float wscale = 1.0f / sqrtf ((float) E);
  add_matrix (w, r, "token_embd.weight", s->type, E, V, 1, 1.0f);
  add_vector (w, r, "output_norm.weight", E, 0.1f, 1.0f);
  if (!s->tied_output)
    add_matrix (w, r, "output.weight", s->type, E, V, 1, wscale);

  for (int il = 0; il < s->n_layer; il++)
    {
      char n[96];
#define T(name) (g_snprintf (n, sizeof n, "blk.%d.%s", il, name), n)
      add_vector (w, r, T ("attn_norm.weight"), E, 0.1f, 1.0f);
      add_matrix (w, r, T ("attn_q.weight"), s->type, E, q_dim, 1, wscale);
      add_matrix (w, r, T ("attn_k.weight"), s->type, E, kv_dim, 1, wscale);
      add_matrix (w, r, T ("attn_v.weight"), s->type, E, kv_dim, 1, wscale);
      if (is_qwen2)
        {
          add_vector (w, r, T ("attn_q.bias"), q_dim, 0.1f, 0.0f);
          add_vector (w, r, T ("attn_k.bias"), kv_dim, 0.1f, 0.0f);
          add_vector (w, r, T ("attn_v.bias"), kv_dim, 0.1f, 0.0f);
        }
      if (is_olmoe)
        {
          add_vector (w, r, T ("attn_q_norm.weight"), q_dim, 0.1f, 1.0f);
          add_vector (w, r, T ("attn_k_norm.weight"), kv_dim, 0.1f, 1.0f);
        }
      if (is_qwen3)
        {
          add_vector (w, r, T ("attn_q_norm.weight"), s->head_dim, 0.1f, 1.0f);
          add_vector (w, r, T ("attn_k_norm.weight"), s->head_dim, 0.1f, 1.0f);
        }
      add_matrix (w, r, T ("attn_output.weight"), s->type, q_dim, E, 1, 1.0f / sqrtf ((float) q_dim));
      add_vector (w, r, T ("ffn_norm.weight"), E, 0.1f, 1.0f);
      if (il < s->n_dense_first)
        {
          add_matrix (w, r, T ("ffn_gate.weight"), s->type, E, s->n_ff_dense, 1, wscale);
          add_matrix (w, r, T ("ffn_up.weight"), s->type, E, s->n_ff_dense, 1, wscale);
          add_matrix (w, r, T ("ffn_down.weight"), s->type, s->n_ff_dense, E, 1,
                      1.0f / sqrtf ((float) s->n_ff_dense));
          continue;
        }
      /* Router logits spread over a few units so that routing is decisive. */
      add_matrix (w, r, T ("ffn_gate_inp.weight"), RS_TYPE_F32, E, s->n_expert, 1, 3.0f * wscale);
      add_matrix (w, r, T ("ffn_gate_exps.weight"), s->type, E, s->n_ff_exp, s->n_expert, wscale);
      add_matrix (w, r, T ("ffn_up_exps.weight"), s->type, E, s->n_ff_exp, s->n_expert, wscale);
      add_matrix (w, r, T ("ffn_down_exps.weight"), s->type, s->n_ff_exp, E, s->n_expert,
                  1.0f / sqrtf ((float) s->n_ff_exp));
      if (is_qwen2)
        {
          add_vector (w, r, T ("ffn_gate_inp_shexp.weight"), E, wscale, 0.0f);
          add_matrix (w, r, T ("ffn_gate_shexp.weight"), s->type, E, s->n_ff_shexp, 1, wscale);
          add_matrix (w, r, T ("ffn_up_shexp.weight"), s->type, E, s->n_ff_shexp, 1, wscale);
          add_matrix (w, r, T ("ffn_down_shexp.weight"), s->type, s->n_ff_shexp, E, 1,
                      1.0f / sqrtf ((float) s->n_ff_shexp));
        }
#undef T
    }
  g_rand_free (r);
  return rs_test_gguf_write (w, path, error);
}

void
rs_test_model_file_open (RsTestModelFile *f, const RsTestModelSpec *spec, const char *name)
{
  g_autoptr (GError) error = NULL;
  f->path = g_build_filename (g_get_tmp_dir (), name, NULL);
  g_assert_true (rs_test_model_write (spec, f->path, &error));
  f->model = rs_model_open (f->path, &error);
  g_assert_no_error (error);
  f->tok = rs_tokenizer_new_from_gguf (rs_model_gguf (f->model), &error);
  g_assert_no_error (error);
}

void
rs_test_model_file_close (RsTestModelFile *f)
{
  rs_tokenizer_free (f->tok);
  rs_model_free (f->model);
  g_unlink (f->path);
  g_free (f->path);
}
