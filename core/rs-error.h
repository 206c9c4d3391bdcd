/* rs-error.h: the GError domain of libroutescope.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define RS_ERROR (rs_error_quark ())
GQuark rs_error_quark (void);

typedef enum {
  RS_ERROR_IO,          /* cannot open, read, map or write a file */
  RS_ERROR_FORMAT,      /* the file is malformed (bad magic, counts past the end, ...) */
  RS_ERROR_UNSUPPORTED, /* well-formed but not something we handle (type, architecture, version) */
  RS_ERROR_INVALID,     /* a bad argument: out-of-range layer or expert, invalid UTF-8, ... */
  RS_ERROR_RESOURCE,    /* does not fit: memory, context length */
  RS_ERROR_CANCELLED,
} RsErrorCode;

G_END_DECLS
