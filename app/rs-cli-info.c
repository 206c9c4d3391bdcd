/* rs-cli-info.c: `routescope-cli info MODEL.gguf [--json]`
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <json-glib/json-glib.h>
#include <stdio.h>

#include "rs-cli.h"
#include "rs-model.h"
#include "rs-quant.h"
#include "rs-tokenizer.h"

typedef struct {
  int64_t  count;
  uint64_t bytes;
} TypeUse;

static void
human_count (uint64_t n, char *buf, gsize size)
{
  if (n >= 1000000000ull)
    g_snprintf (buf, size, "%.2f B", n / 1e9);
  else if (n >= 1000000ull)
    g_snprintf (buf, size, "%.2f M", n / 1e6);
  else
    g_snprintf (buf, size, "%" G_GUINT64_FORMAT, n);
}

int
rs_cli_info (int argc, char **argv)
{
  gboolean json = FALSE;
  GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print one JSON object", NULL },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("MODEL.gguf - describe a model");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return rs_cli_fail (error->message);
  if (argc != 2)
    return rs_cli_fail ("info takes exactly one MODEL.gguf argument");

  g_autoptr (RsModel) model = rs_model_open (argv[1], &error);
  if (model == NULL)
    return rs_cli_fail (error->message);
  const RsGguf *g = rs_model_gguf (model);
  g_autoptr (RsTokenizer) tok = rs_tokenizer_new_from_gguf (g, &error);
  if (tok == NULL)
    return rs_cli_fail (error->message);

  const RsHparams *hp = rs_model_hparams (model);
  TypeUse use[RS_TYPE_COUNT] = { 0 };
  for (int64_t i = 0; i < rs_gguf_n_tensors (g); i++)
    {
      const RsGgufTensor *t = rs_gguf_tensor (g, i);
      use[t->type].count++;
      use[t->type].bytes += t->nbytes;
    }
  uint64_t n_params, n_active;
  rs_model_param_counts (model, &n_params, &n_active);
  const char *rope = hp->arch->rope == RS_ROPE_NEOX ? "neox" : "normal";
  const char *scaling = hp->rope_scaling == RS_ROPE_SCALING_LINEAR ? "linear" : "none";

  if (json)
    {
      g_autoptr (JsonBuilder) b = json_builder_new ();
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "file");
      json_builder_add_string_value (b, rs_gguf_path (g));
      json_builder_set_member_name (b, "architecture");
      json_builder_add_string_value (b, hp->arch->name);
      struct { const char *k; int64_t v; } ints[] = {
        { "n_layer", hp->n_layer }, { "n_embd", hp->n_embd }, { "n_head", hp->n_head },
        { "n_head_kv", hp->n_head_kv }, { "head_dim", hp->head_dim },
        { "n_expert", hp->n_expert }, { "n_expert_used", hp->n_expert_used },
        { "n_ff_exp", hp->n_ff_exp }, { "n_ff_shexp", hp->n_ff_shexp }, { "n_ff", hp->n_ff },
        { "n_moe_layers", hp->n_moe_layers }, { "n_ctx_train", hp->n_ctx_train },
        { "n_rot", hp->n_rot }, { "n_vocab", hp->n_vocab },
        { "n_tensors", rs_gguf_n_tensors (g) }, { "n_params", (int64_t) n_params },
        { "n_params_active", (int64_t) n_active },
        { "active_bytes_per_token", (int64_t) rs_model_active_bytes (model) },
        { "file_bytes", (int64_t) rs_gguf_file_size (g) },
      };
      for (gsize i = 0; i < G_N_ELEMENTS (ints); i++)
        {
          json_builder_set_member_name (b, ints[i].k);
          json_builder_add_int_value (b, ints[i].v);
        }
      json_builder_set_member_name (b, "rope_freq_base");
      json_builder_add_double_value (b, hp->rope_freq_base);
      json_builder_set_member_name (b, "rope_type");
      json_builder_add_string_value (b, rope);
      json_builder_set_member_name (b, "rope_scaling");
      json_builder_add_string_value (b, scaling);
      json_builder_set_member_name (b, "rope_freq_scale");
      json_builder_add_double_value (b, hp->rope_freq_scale);
      json_builder_set_member_name (b, "rms_eps");
      json_builder_add_double_value (b, hp->rms_eps);
      struct { const char *k; double v; } scales[] = {
        { "embedding_scale", hp->embedding_scale }, { "residual_scale", hp->residual_scale },
        { "attention_scale", hp->attention_scale }, { "logit_scale", hp->logit_scale },
      };
      for (gsize i = 0; i < G_N_ELEMENTS (scales); i++)
        {
          json_builder_set_member_name (b, scales[i].k);
          json_builder_add_double_value (b, scales[i].v);
        }
      json_builder_set_member_name (b, "tied_output");
      json_builder_add_boolean_value (b, hp->tied_output);
      json_builder_set_member_name (b, "routing");
      json_builder_add_string_value (b, hp->arch->routing_words);
      json_builder_set_member_name (b, "tokenizer");
      json_builder_add_string_value (b, rs_tokenizer_model_name (tok));
      json_builder_set_member_name (b, "tokenizer_pre");
      if (rs_tokenizer_pre_name (tok) != NULL)
        json_builder_add_string_value (b, rs_tokenizer_pre_name (tok));
      else
        json_builder_add_null_value (b);
      json_builder_set_member_name (b, "tensor_types");
      json_builder_begin_object (b);
      for (int t = 0; t < RS_TYPE_COUNT; t++)
        if (use[t].count > 0)
          {
            json_builder_set_member_name (b, rs_type_name (t));
            json_builder_add_int_value (b, use[t].count);
          }
      json_builder_end_object (b);
      json_builder_set_member_name (b, "tensor_type_bytes");
      json_builder_begin_object (b);
      for (int t = 0; t < RS_TYPE_COUNT; t++)
        if (use[t].count > 0)
          {
            json_builder_set_member_name (b, rs_type_name (t));
            json_builder_add_int_value (b, (int64_t) use[t].bytes);
          }
      json_builder_end_object (b);
      json_builder_end_object (b);
      g_autoptr (JsonGenerator) gen = json_generator_new ();
      g_autoptr (JsonNode) root = json_builder_get_root (b);
      json_generator_set_root (gen, root);
      json_generator_set_pretty (gen, TRUE);
      g_autofree char *text = json_generator_to_data (gen, NULL);
      printf ("%s\n", text);
      return 0;
    }

  char total[32], active[32];
  human_count (n_params, total, sizeof total);
  human_count (n_active, active, sizeof active);
  printf ("file:            %s (%d part%s, %.1f MiB)\n", rs_gguf_path (g), rs_gguf_n_parts (g),
          rs_gguf_n_parts (g) > 1 ? "s" : "", rs_gguf_file_size (g) / 1048576.0);
  printf ("architecture:    %s\n", hp->arch->name);
  printf ("layers:          %u (%u with experts)\n", hp->n_layer, hp->n_moe_layers);
  printf ("embedding:       %u\n", hp->n_embd);
  printf ("heads:           %u query, %u key/value, head size %u\n", hp->n_head, hp->n_head_kv,
          hp->head_dim);
  printf ("experts:         %u, %u used per token, FFN %u\n", hp->n_expert, hp->n_expert_used,
          hp->n_ff_exp);
  if (hp->n_ff_shexp > 0)
    printf ("shared expert:   FFN %u\n", hp->n_ff_shexp);
  if (hp->n_ff > 0 && hp->n_moe_layers < hp->n_layer)
    printf ("dense FFN:       %u\n", hp->n_ff);
  printf ("routing:         %s\n", hp->arch->routing_words);
  printf ("rope:            %s, base %g, %u dims, scaling %s (freq scale %g)\n", rope,
          hp->rope_freq_base, hp->n_rot, scaling, hp->rope_freq_scale);
  printf ("context length:  %u\n", hp->n_ctx_train);
  printf ("rms eps:         %g\n", hp->rms_eps);
  if (hp->embedding_scale != 1.0f || hp->residual_scale != 1.0f || hp->logit_scale != 1.0f)
    printf ("multipliers:     embedding %g, residual %g, attention %g, logits 1/%g\n",
            hp->embedding_scale, hp->residual_scale, hp->attention_scale, hp->logit_scale);
  printf ("output:          %s\n", hp->tied_output ? "tied to token_embd" : "own matrix");
  printf ("tokenizer:       %s%s%s, %d tokens\n", rs_tokenizer_model_name (tok),
          rs_tokenizer_pre_name (tok) ? " / " : "",
          rs_tokenizer_pre_name (tok) ? rs_tokenizer_pre_name (tok) : "",
          rs_tokenizer_n_vocab (tok));
  printf ("parameters:      %s total, %s active per token\n", total, active);
  printf ("tensors:         %" G_GINT64_FORMAT "\n", rs_gguf_n_tensors (g));
  for (int t = 0; t < RS_TYPE_COUNT; t++)
    if (use[t].count > 0)
      printf ("  %-8s %5" G_GINT64_FORMAT " tensors %10.1f MiB\n", rs_type_name (t), use[t].count,
              use[t].bytes / 1048576.0);
  return 0;
}
