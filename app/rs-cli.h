/* rs-cli.h: the subcommands of routescope-cli and what they share. Each
 * subcommand takes the argument vector after the subcommand name (argv[0]
 * is the subcommand) and returns the process exit status: 0 on success,
 * 1 with a message on stderr.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <json-glib/json-glib.h>

#include "rs-model.h"
#include "rs-run.h"
#include "rs-tokenizer.h"

int rs_cli_info     (int argc, char **argv);
int rs_cli_tokenize (int argc, char **argv);
int rs_cli_generate (int argc, char **argv);
int rs_cli_bench    (int argc, char **argv);
int rs_cli_trace    (int argc, char **argv);
int rs_cli_compare  (int argc, char **argv);
int rs_cli_import   (int argc, char **argv);

/* Prints "routescope-cli: MESSAGE" to stderr and returns 1. */
int rs_cli_fail (const char *message);

/* Options of the commands that run a model. */
typedef struct {
  char       *model_path;
  gboolean    mlock;
  gboolean    json;
  RsRunParams run;        /* -c, -t and the sampler flags land here */
  char       *prompt;     /* -p, for commands that run a prompt */
  int         n_predict;  /* -n */
} RsCliCommon;

/* Adds -m, -c, -t, --mlock, --json and @extra to @ctx, writing into @o. */
void rs_cli_add_common_options (GOptionContext *ctx, RsCliCommon *o, const GOptionEntry *extra);

/* A model and its tokenizer, opened from the common options. */
typedef struct {
  RsModel     *model;
  RsTokenizer *tok;
} RsCliModel;

RsCliModel *rs_cli_model_open (const RsCliCommon *o, GError **error);
void        rs_cli_model_free (RsCliModel *m);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RsCliModel, rs_cli_model_free)

/* --disable, --force, --bias, --soft-bias, --topk, --top-p, --from-token */
typedef struct _RsCliInterventionFlags RsCliInterventionFlags;
void    rs_cli_add_intervention_options (GOptionContext *ctx, RsCliInterventionFlags **flags);
/* An array of RsIntervention, or NULL with @error for a malformed flag. */
GArray *rs_cli_parse_interventions (RsCliInterventionFlags *flags, GError **error);

/* Parses a command that runs a prompt: the common options, -p TEXT (required),
 * -n N (default 32), the intervention flags and @extra. Returns the
 * interventions (RsIntervention), or NULL after printing the problem. */
GArray *rs_cli_parse_prompt_command (const char *summary, RsCliCommon *o,
                                     const GOptionEntry *extra, int argc, char **argv);

/* Prints the builder's root as one line of JSON. */
void rs_cli_print_json (JsonBuilder *b);
