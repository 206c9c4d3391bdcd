/* SPDX-License-Identifier: GPL-3.0-or-later */
/* rs-cli-analyze.h: `routescope-cli analyze`, `align` and `ppl`
 * (app/rs-cli-analyze.c), with the same conventions as rs-cli.h. */
#pragma once

int rs_cli_analyze (int argc, char **argv);
int rs_cli_align   (int argc, char **argv);
int rs_cli_ppl     (int argc, char **argv);
