/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "rs-error.h"

G_DEFINE_QUARK (routescope-error-quark, rs_error)
