/* make-test-model: writes one of the tests' generated models to a file, so
 * that a reference engine outside the repository can be run on the very
 * same weights (see tests/data/engine/README.md).
 *
 * Usage: make-test-model ARCH TYPE SEED OUT.gguf
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rs-test-model.h"

int
main (int argc, char **argv)
{
  if (argc != 5)
    {
      fprintf (stderr, "usage: make-test-model ARCH TYPE SEED OUT.gguf\n");
      return 1;
    }
  int type = -1;
  for (int t = 0; t < RS_TYPE_COUNT; t++)
    if (rs_type_traits (t)->name != NULL && strcmp (rs_type_traits (t)->name, argv[2]) == 0)
      type = t;
  if (type < 0)
    {
      fprintf (stderr, "unknown type %s\n", argv[2]);
      return 1;
    }
  RsTestModelSpec spec = rs_test_model_spec (argv[1], type, (uint32_t) atoi (argv[3]));
  GError *error = NULL;
  if (!rs_test_model_write (&spec, argv[4], &error))
    {
      fprintf (stderr, "%s\n", error->message);
      return 1;
    }
  return 0;
}
