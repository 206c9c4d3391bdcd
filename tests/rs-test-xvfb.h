/* rs-test-xvfb.h: a private X server (Xvfb) for the GUI tests.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <glib.h>

/* Starts Xvfb on a free display and points DISPLAY at it; also sets the
 * environment the GUI tests want (x11 backend, cairo renderer, memory
 * GSettings backend, no accessibility bus). FALSE with @reason (free it)
 * when Xvfb is not installed or does not start: the caller skips. */
gboolean rs_test_xvfb_start (char **reason);
void     rs_test_xvfb_stop  (void);
