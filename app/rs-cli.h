/* rs-cli.h: the subcommands of routescope-cli. Each takes the argument
 * vector after the subcommand name (argv[0] is the subcommand) and returns
 * the process exit status: 0 on success, 1 with a message on stderr.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

int rs_cli_info     (int argc, char **argv);
int rs_cli_tokenize (int argc, char **argv);
int rs_cli_generate (int argc, char **argv);
int rs_cli_bench    (int argc, char **argv);

/* Prints "routescope-cli: MESSAGE" to stderr and returns 1. */
int rs_cli_fail (const char *message);
