/* rs-gguf.h: a validating, memory-mapped reader of GGUF files (versions 2 and 3).
 *
 * Opening maps the file read-only and parses only the header, the metadata
 * and the tensor table; tensor data stays in the mapping until used. Every
 * count, length and offset is checked against the file before it is used,
 * and every failure is a GError of domain RS_ERROR whose message names the
 * file, the byte offset or tensor, and the problem.
 *
 * Split models (NAME-00001-of-0000N.gguf with split.* keys) open as one
 * model when the first part is given: metadata comes from the first part,
 * tensors from all parts.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "rs-types.h"

G_BEGIN_DECLS

typedef enum {
  RS_GGUF_UINT8   = 0,
  RS_GGUF_INT8    = 1,
  RS_GGUF_UINT16  = 2,
  RS_GGUF_INT16   = 3,
  RS_GGUF_UINT32  = 4,
  RS_GGUF_INT32   = 5,
  RS_GGUF_FLOAT32 = 6,
  RS_GGUF_BOOL    = 7,
  RS_GGUF_STRING  = 8,
  RS_GGUF_ARRAY   = 9,
  RS_GGUF_UINT64  = 10,
  RS_GGUF_INT64   = 11,
  RS_GGUF_FLOAT64 = 12,
  RS_GGUF_N_VALUE_TYPES
} RsGgufValueType;

/* One metadata entry. Scalars are widened into the union; strings are
 * NUL-terminated copies (GGUF strings may contain NUL: use str_len). */
typedef struct {
  const char      *key;
  RsGgufValueType  type;
  RsGgufValueType  arr_type;  /* element type when type == RS_GGUF_ARRAY */
  uint64_t         n;         /* array length; 1 for scalars */
  union {
    uint64_t u;               /* unsigned integer types */
    int64_t  i;               /* signed integer types */
    double   f;               /* FLOAT32, FLOAT64 */
    bool     b;
  } v;
  const char      *str;       /* STRING */
  size_t           str_len;
  /* ARRAY of numbers: n elements of arr_type, native order and aligned
   * (BOOL as uint8_t). ARRAY of STRING: const char *const[n]. */
  const void      *arr;
  const size_t    *arr_str_len; /* ARRAY of STRING: byte lengths */
} RsGgufKv;

typedef struct {
  const char  *name;
  RsType       type;
  int          n_dims;     /* 1..4 */
  int64_t      ne[4];      /* ne[0] is the contiguous dimension; unused dims are 1 */
  int64_t      n_elements;
  size_t       nbytes;
  const void  *data;       /* into the read-only mapping; NULL for vocabulary-only reads */
  uint64_t     offset;     /* of the data within its part's data section */
  int          part;       /* index of the split part that holds the data */
} RsGgufTensor;

typedef struct _RsGguf RsGguf;

/* Opens and validates @path. Returns NULL and sets @error on any problem. */
RsGguf *rs_gguf_open (const char *path, GError **error);
void    rs_gguf_free (RsGguf *gguf);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RsGguf, rs_gguf_free)

const char *rs_gguf_path      (const RsGguf *gguf);
uint32_t    rs_gguf_version   (const RsGguf *gguf);
size_t      rs_gguf_alignment (const RsGguf *gguf);
int         rs_gguf_n_parts   (const RsGguf *gguf);
/* Total bytes of all mapped parts. */
uint64_t    rs_gguf_file_size (const RsGguf *gguf);

int64_t         rs_gguf_n_kv    (const RsGguf *gguf);
const RsGgufKv *rs_gguf_kv      (const RsGguf *gguf, int64_t i);
/* NULL when absent. */
const RsGgufKv *rs_gguf_find_kv (const RsGguf *gguf, const char *key);

int64_t             rs_gguf_n_tensors   (const RsGguf *gguf);
const RsGgufTensor *rs_gguf_tensor      (const RsGguf *gguf, int64_t i);
/* NULL when absent. */
const RsGgufTensor *rs_gguf_find_tensor (const RsGguf *gguf, const char *name);

/* Typed look-ups. Each returns FALSE and sets @error (naming the file and
 * key) when the key is missing or its value does not convert exactly:
 * any integer type converts to another if the value fits; FLOAT32/64
 * convert to double; an integer converts to double. */
gboolean rs_gguf_get_u64  (const RsGguf *gguf, const char *key, uint64_t *out, GError **error);
gboolean rs_gguf_get_u32  (const RsGguf *gguf, const char *key, uint32_t *out, GError **error);
gboolean rs_gguf_get_i64  (const RsGguf *gguf, const char *key, int64_t *out, GError **error);
gboolean rs_gguf_get_f64  (const RsGguf *gguf, const char *key, double *out, GError **error);
gboolean rs_gguf_get_bool (const RsGguf *gguf, const char *key, bool *out, GError **error);
/* Borrowed, NUL-terminated. */
gboolean rs_gguf_get_str  (const RsGguf *gguf, const char *key, const char **out, GError **error);

/* Same, but absent keys give @fallback; present keys of the wrong type
 * still fail. */
gboolean rs_gguf_get_u32_or  (const RsGguf *gguf, const char *key, uint32_t fallback, uint32_t *out, GError **error);
gboolean rs_gguf_get_f64_or  (const RsGguf *gguf, const char *key, double fallback, double *out, GError **error);
gboolean rs_gguf_get_bool_or (const RsGguf *gguf, const char *key, bool fallback, bool *out, GError **error);

/* Locks every mapped part in RAM (mlock), so that the kernel does not
 * evict weight pages between uses. Sets @error when refused. */
gboolean rs_gguf_lock_memory (const RsGguf *gguf, GError **error);

/* Name of a metadata value type ("uint32", "array"...). */
const char *rs_gguf_value_type_name (RsGgufValueType type);

G_END_DECLS
