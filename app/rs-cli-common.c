/* rs-cli-common.c: options and set-up shared by the subcommands.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <stdio.h>

#include "rs-cli.h"

void
rs_cli_add_common_options (GOptionContext *ctx, RsCliCommon *o, const GOptionEntry *extra)
{
  GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &o->model_path, "GGUF model file", "MODEL" },
    { "ctx-size", 'c', 0, G_OPTION_ARG_INT, &o->run.session.n_ctx, "Context length (default: min(4096, the model's))", "N" },
    { "threads", 't', 0, G_OPTION_ARG_INT, &o->run.session.n_threads, "Threads (default: one per core)", "N" },
    { "mlock", 0, 0, G_OPTION_ARG_NONE, &o->mlock, "Lock the model in RAM", NULL },
    { "json", 0, 0, G_OPTION_ARG_NONE, &o->json, "Print one JSON object", NULL },
    { NULL }
  };
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (extra != NULL)
    g_option_context_add_main_entries (ctx, extra, NULL);
}

RsCliModel *
rs_cli_model_open (const RsCliCommon *o, GError **error)
{
  if (o->model_path == NULL)
    {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                           "no model given (-m MODEL.gguf)");
      return NULL;
    }
  g_autoptr (RsCliModel) m = g_new0 (RsCliModel, 1);
  m->model = rs_model_open (o->model_path, error);
  if (m->model == NULL)
    return NULL;
  /* As llama.cpp does, a refused lock is a warning: the run still works,
   * only page eviction is not prevented. */
  g_autoptr (GError) lock_error = NULL;
  if (o->mlock && !rs_model_lock_memory (m->model, &lock_error))
    fprintf (stderr, "routescope-cli: warning: %s; running without the lock\n", lock_error->message);
  m->tok = rs_tokenizer_new_from_gguf (rs_model_gguf (m->model), error);
  if (m->tok == NULL)
    return NULL;
  return g_steal_pointer (&m);
}

void
rs_cli_model_free (RsCliModel *m)
{
  if (m == NULL)
    return;
  rs_tokenizer_free (m->tok);
  rs_model_free (m->model);
  g_free (m);
}

void
rs_cli_print_json (JsonBuilder *b)
{
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  g_autoptr (JsonNode) root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  g_autofree char *text = json_generator_to_data (gen, NULL);
  printf ("%s\n", text);
}
