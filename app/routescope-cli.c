/* routescope-cli: the engine and analyses without the GUI.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <glib.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>

#include "rs-cli-analyze.h"
#include "rs-cli.h"
#include "rs-config.h"

static const struct {
  const char *name;
  int (*run) (int argc, char **argv);
  const char *summary;
} commands[] = {
  { "info", rs_cli_info, "describe a GGUF model: architecture, hyperparameters, tensors" },
  { "tokenize", rs_cli_tokenize, "turn text into the model's token ids" },
  { "generate", rs_cli_generate, "generate text from a prompt" },
  { "bench", rs_cli_bench, "measure prefill and decode tokens/s" },
  { "trace", rs_cli_trace, "run a prompt and save its routing trace (.npz, .jsonl, .csv)" },
  { "compare", rs_cli_compare, "run a prompt untouched and steered, side by side" },
  { "import", rs_cli_import, "convert routing captured by vLLM or SGLang into a trace file" },
  { "analyze", rs_cli_analyze, "routing analyses of a trace or a run: load, entropy, align, super, lrc, special" },
  { "align", rs_cli_align, "cross-lingual routing alignment over a parallel corpus" },
  { "ppl", rs_cli_ppl, "perplexity of a text, with and without interventions" },
};

int
rs_cli_fail (const char *message)
{
  fprintf (stderr, "routescope-cli: %s\n", message);
  return 1;
}

static void
usage (FILE *out)
{
  fprintf (out, "Usage: routescope-cli COMMAND [OPTIONS]\n\nCommands:\n");
  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++)
    fprintf (out, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fprintf (out, "\nroutescope-cli COMMAND --help describes a command's options.\n");
}

int
main (int argc, char **argv)
{
  setlocale (LC_ALL, "");
  if (argc < 2 || strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0)
    {
      usage (argc < 2 ? stderr : stdout);
      return argc < 2 ? 1 : 0;
    }
  if (strcmp (argv[1], "--version") == 0)
    {
      printf ("routescope-cli %s\n", RS_VERSION);
      return 0;
    }
  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++)
    if (strcmp (argv[1], commands[i].name) == 0)
      return commands[i].run (argc - 1, argv + 1);
  fprintf (stderr, "routescope-cli: unknown command '%s'\n\n", argv[1]);
  usage (stderr);
  return 1;
}
