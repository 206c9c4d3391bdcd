/* rs-gguf.c: the validating GGUF reader.
 *
 * File layout (all little-endian):
 *   "GGUF" u32 version u64 n_tensors u64 n_kv
 *   n_kv x  { string key, u32 value_type, value }
 *   n_tensors x { string name, u32 n_dims, u64 ne[n_dims], u32 type, u64 offset }
 *   padding to the alignment, then the data section; tensor offsets are
 *   relative to its start.
 * A string is u64 length + bytes (no NUL). An array is u32 element type,
 * u64 count, elements.
 *
 * The file is untrusted: every read goes through RsCursor, which refuses
 * to step past the end, and every count is bounded by the bytes left
 * before anything is allocated for it.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "rs-gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rs-error.h"

#define GGUF_MAGIC          "GGUF"
#define GGUF_DEFAULT_ALIGN  32
#define GGUF_MAX_PARTS      256

typedef struct {
  char          *path;
  const uint8_t *map;
  uint64_t       size;
  uint64_t       data_offset;  /* start of the data section */
} RsGgufPart;

struct _RsGguf {
  uint32_t      version;
  size_t        alignment;
  GPtrArray    *parts;         /* RsGgufPart*, [0] is the file the user named */
  GArray       *kvs;           /* RsGgufKv */
  GHashTable   *kv_index;      /* key -> index + 1 */
  GArray       *tensors;       /* RsGgufTensor */
  GHashTable   *tensor_index;  /* name -> index + 1 */
  GStringChunk *strings;       /* keys, names and string values */
  GPtrArray    *allocations;   /* array payloads */
};

/* ---- cursor over one mapped file ---------------------------------------- */

typedef struct {
  const uint8_t *base;
  uint64_t       size;
  uint64_t       pos;
  const char    *path;
} RsCursor;

static gboolean G_GNUC_PRINTF (3, 4)
cursor_fail (RsCursor *c, GError **error, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, RS_ERROR, RS_ERROR_FORMAT, "%s: offset %" G_GUINT64_FORMAT ": %s",
               c->path, c->pos, msg);
  return FALSE;
}

static uint64_t
cursor_left (const RsCursor *c)
{
  return c->size - c->pos;
}

static gboolean
cursor_read (RsCursor *c, void *dst, uint64_t n, const char *what, GError **error)
{
  if (n > cursor_left (c))
    return cursor_fail (c, error, "file truncated: %s needs %" G_GUINT64_FORMAT
                        " bytes, %" G_GUINT64_FORMAT " left", what, n, cursor_left (c));
  memcpy (dst, c->base + c->pos, n);
  c->pos += n;
  return TRUE;
}

static gboolean
cursor_u32 (RsCursor *c, uint32_t *v, const char *what, GError **error)
{
  return cursor_read (c, v, 4, what, error);
}

static gboolean
cursor_u64 (RsCursor *c, uint64_t *v, const char *what, GError **error)
{
  return cursor_read (c, v, 8, what, error);
}

/* A string is borrowed from the mapping: (*s, *len), not NUL-terminated. */
static gboolean
cursor_string (RsCursor *c, const char **s, uint64_t *len, const char *what, GError **error)
{
  uint64_t at = c->pos;
  if (!cursor_u64 (c, len, what, error))
    return FALSE;
  if (*len > cursor_left (c))
    {
      c->pos = at;
      return cursor_fail (c, error, "length %" G_GUINT64_FORMAT " of %s is larger than the "
                          "%" G_GUINT64_FORMAT " bytes left in the file",
                          *len, what, cursor_left (c) - 8);
    }
  *s = (const char *) c->base + c->pos;
  c->pos += *len;
  return TRUE;
}

/* ---- value types -------------------------------------------------------- */

static const struct {
  const char *name;
  size_t      size; /* 0 for string and array */
} value_types[RS_GGUF_N_VALUE_TYPES] = {
  [RS_GGUF_UINT8]   = { "uint8", 1 },
  [RS_GGUF_INT8]    = { "int8", 1 },
  [RS_GGUF_UINT16]  = { "uint16", 2 },
  [RS_GGUF_INT16]   = { "int16", 2 },
  [RS_GGUF_UINT32]  = { "uint32", 4 },
  [RS_GGUF_INT32]   = { "int32", 4 },
  [RS_GGUF_FLOAT32] = { "float32", 4 },
  [RS_GGUF_BOOL]    = { "bool", 1 },
  [RS_GGUF_STRING]  = { "string", 0 },
  [RS_GGUF_ARRAY]   = { "array", 0 },
  [RS_GGUF_UINT64]  = { "uint64", 8 },
  [RS_GGUF_INT64]   = { "int64", 8 },
  [RS_GGUF_FLOAT64] = { "float64", 8 },
};

const char *
rs_gguf_value_type_name (RsGgufValueType type)
{
  if ((unsigned) type >= RS_GGUF_N_VALUE_TYPES)
    return "unknown";
  return value_types[type].name;
}

static gboolean
type_is_signed (RsGgufValueType t)
{
  return t == RS_GGUF_INT8 || t == RS_GGUF_INT16 || t == RS_GGUF_INT32 || t == RS_GGUF_INT64;
}

static gboolean
type_is_unsigned (RsGgufValueType t)
{
  return t == RS_GGUF_UINT8 || t == RS_GGUF_UINT16 || t == RS_GGUF_UINT32 || t == RS_GGUF_UINT64;
}

/* Widens the scalar at @p (file bytes, unaligned) of type @t into @kv. */
static void
decode_scalar (RsGgufKv *kv, RsGgufValueType t, const uint8_t *p)
{
  switch (t)
    {
    case RS_GGUF_UINT8:   kv->v.u = p[0]; break;
    case RS_GGUF_INT8:    kv->v.i = (int8_t) p[0]; break;
    case RS_GGUF_BOOL:    kv->v.b = p[0] != 0; break;
    case RS_GGUF_UINT16:  { uint16_t x; memcpy (&x, p, 2); kv->v.u = x; break; }
    case RS_GGUF_INT16:   { int16_t x;  memcpy (&x, p, 2); kv->v.i = x; break; }
    case RS_GGUF_UINT32:  { uint32_t x; memcpy (&x, p, 4); kv->v.u = x; break; }
    case RS_GGUF_INT32:   { int32_t x;  memcpy (&x, p, 4); kv->v.i = x; break; }
    case RS_GGUF_FLOAT32: { float x;    memcpy (&x, p, 4); kv->v.f = x; break; }
    case RS_GGUF_UINT64:  { uint64_t x; memcpy (&x, p, 8); kv->v.u = x; break; }
    case RS_GGUF_INT64:   { int64_t x;  memcpy (&x, p, 8); kv->v.i = x; break; }
    case RS_GGUF_FLOAT64: { double x;   memcpy (&x, p, 8); kv->v.f = x; break; }
    default: break;
    }
}

/* ---- parsing ------------------------------------------------------------ */

static gboolean
read_value_type (RsCursor *c, RsGgufValueType *t, const char *key, gboolean in_array,
                 GError **error)
{
  uint32_t raw;
  uint64_t at = c->pos;
  if (!cursor_u32 (c, &raw, in_array ? "array element type" : "value type", error))
    return FALSE;
  if (raw >= RS_GGUF_N_VALUE_TYPES)
    {
      c->pos = at;
      return cursor_fail (c, error, "unknown value type %u for key '%s'", raw, key);
    }
  *t = raw;
  return TRUE;
}

static gboolean
parse_kv (RsGguf *g, RsCursor *c, RsGgufKv *kv, GError **error)
{
  const char *s;
  uint64_t len;
  uint64_t at = c->pos;

  if (!cursor_string (c, &s, &len, "metadata key", error))
    return FALSE;
  if (len == 0)
    {
      c->pos = at;
      return cursor_fail (c, error, "empty metadata key");
    }
  if (memchr (s, 0, len) != NULL || !g_utf8_validate_len (s, len, NULL))
    {
      c->pos = at;
      return cursor_fail (c, error, "metadata key is not valid UTF-8 text");
    }
  kv->key = g_string_chunk_insert_len (g->strings, s, len);
  if (g_hash_table_contains (g->kv_index, kv->key))
    {
      c->pos = at;
      return cursor_fail (c, error, "duplicate metadata key '%s'", kv->key);
    }

  if (!read_value_type (c, &kv->type, kv->key, FALSE, error))
    return FALSE;
  kv->n = 1;

  if (kv->type == RS_GGUF_STRING)
    {
      if (!cursor_string (c, &s, &len, kv->key, error))
        return FALSE;
      kv->str = g_string_chunk_insert_len (g->strings, s, len);
      kv->str_len = len;
      return TRUE;
    }

  if (kv->type != RS_GGUF_ARRAY)
    {
      const uint8_t *p = c->base + c->pos;
      if (!cursor_read (c, &(uint64_t){0}, value_types[kv->type].size, kv->key, error))
        return FALSE;
      decode_scalar (kv, kv->type, p);
      return TRUE;
    }

  if (!read_value_type (c, &kv->arr_type, kv->key, TRUE, error))
    return FALSE;
  at = c->pos;
  if (!cursor_u64 (c, &kv->n, "array length", error))
    return FALSE;
  if (kv->arr_type == RS_GGUF_ARRAY)
    {
      c->pos = at;
      return cursor_fail (c, error, "key '%s' is an array of arrays, which is not supported",
                          kv->key);
    }

  if (kv->arr_type == RS_GGUF_STRING)
    {
      /* Each element takes at least its 8-byte length. */
      if (kv->n > cursor_left (c) / 8)
        return cursor_fail (c, error, "array '%s' claims %" G_GUINT64_FORMAT
                            " strings, more than the file can hold", kv->key, kv->n);
      const char **strs = g_new (const char *, kv->n + 1);
      size_t *lens = g_new (size_t, kv->n + 1);
      g_ptr_array_add (g->allocations, strs);
      g_ptr_array_add (g->allocations, lens);
      for (uint64_t j = 0; j < kv->n; j++)
        {
          g_autofree char *what = g_strdup_printf ("element %" G_GUINT64_FORMAT " of '%s'",
                                                   j, kv->key);
          if (!cursor_string (c, &s, &len, what, error))
            return FALSE;
          strs[j] = g_string_chunk_insert_len (g->strings, s, len);
          lens[j] = len;
        }
      strs[kv->n] = NULL;
      kv->arr = strs;
      kv->arr_str_len = lens;
      return TRUE;
    }

  size_t esize = value_types[kv->arr_type].size;
  if (kv->n > cursor_left (c) / esize)
    return cursor_fail (c, error, "array '%s' claims %" G_GUINT64_FORMAT " %s elements, more "
                        "than the %" G_GUINT64_FORMAT " bytes left in the file", kv->key, kv->n,
                        value_types[kv->arr_type].name, cursor_left (c));
  /* Copied so that callers get aligned, native arrays. */
  void *copy = g_malloc (MAX (kv->n * esize, 1));
  g_ptr_array_add (g->allocations, copy);
  cursor_read (c, copy, kv->n * esize, kv->key, NULL);
  kv->arr = copy;
  return TRUE;
}

static gboolean
read_alignment (RsGguf *g, const char *path, GError **error)
{
  const RsGgufKv *kv = rs_gguf_find_kv (g, "general.alignment");
  g->alignment = GGUF_DEFAULT_ALIGN;
  if (kv == NULL)
    return TRUE;
  if (kv->type != RS_GGUF_UINT32)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_FORMAT,
                   "%s: general.alignment must be uint32, not %s", path,
                   rs_gguf_value_type_name (kv->type));
      return FALSE;
    }
  if (kv->v.u == 0 || (kv->v.u & (kv->v.u - 1)) != 0)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_FORMAT,
                   "%s: general.alignment %" G_GUINT64_FORMAT " is not a power of two",
                   path, kv->v.u);
      return FALSE;
    }
  g->alignment = kv->v.u;
  return TRUE;
}

static gboolean G_GNUC_PRINTF (4, 5)
tensor_fail (const char *path, const char *name, GError **error, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, RS_ERROR, RS_ERROR_FORMAT, "%s: tensor '%s': %s", path, name, msg);
  return FALSE;
}

static gboolean
parse_tensor_info (RsGguf *g, RsCursor *c, int part, RsGgufTensor *t, GError **error)
{
  const char *s;
  uint64_t len, at = c->pos;
  uint32_t n_dims, type;

  if (!cursor_string (c, &s, &len, "tensor name", error))
    return FALSE;
  if (len == 0 || memchr (s, 0, len) != NULL || !g_utf8_validate_len (s, len, NULL))
    {
      c->pos = at;
      return cursor_fail (c, error, "tensor name is empty or not valid UTF-8 text");
    }
  t->name = g_string_chunk_insert_len (g->strings, s, len);
  if (g_hash_table_contains (g->tensor_index, t->name))
    {
      c->pos = at;
      return cursor_fail (c, error, "duplicate tensor name '%s'", t->name);
    }

  at = c->pos;
  if (!cursor_u32 (c, &n_dims, "tensor dimension count", error))
    return FALSE;
  if (n_dims == 0 || n_dims > 4)
    {
      c->pos = at;
      return cursor_fail (c, error, "tensor '%s' has %u dimensions (1 to 4 are allowed)",
                          t->name, n_dims);
    }
  t->n_dims = n_dims;
  t->n_elements = 1;
  for (int d = 0; d < 4; d++)
    t->ne[d] = 1;
  for (uint32_t d = 0; d < n_dims; d++)
    {
      uint64_t ne;
      at = c->pos;
      if (!cursor_u64 (c, &ne, "tensor dimension", error))
        return FALSE;
      if (ne == 0 || ne > INT64_MAX)
        {
          c->pos = at;
          return cursor_fail (c, error, "tensor '%s' dimension %u has size %" G_GINT64_FORMAT,
                              t->name, d, (int64_t) ne);
        }
      if ((uint64_t) t->n_elements > (uint64_t) INT64_MAX / ne)
        {
          c->pos = at;
          return cursor_fail (c, error, "tensor '%s' element count overflows 64 bits", t->name);
        }
      t->ne[d] = (int64_t) ne;
      t->n_elements *= (int64_t) ne;
    }

  at = c->pos;
  if (!cursor_u32 (c, &type, "tensor type", error))
    return FALSE;
  const RsTypeTraits *tr = rs_type_traits ((int) type);
  if (!tr->known)
    {
      c->pos = at;
      return cursor_fail (c, error, "tensor '%s' has unknown tensor type %u", t->name, type);
    }
  if (!tr->supported)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_UNSUPPORTED,
                   "%s: unsupported tensor type %s in tensor '%s'", c->path, tr->name, t->name);
      return FALSE;
    }
  t->type = type;
  if (t->ne[0] % tr->block_size != 0)
    return tensor_fail (c->path, t->name, error,
                        "row length %" G_GINT64_FORMAT " is not a multiple of the %s block "
                        "size %" G_GINT64_FORMAT, t->ne[0], tr->name, tr->block_size);
  uint64_t blocks = (uint64_t) t->n_elements / tr->block_size;
  if (blocks > UINT64_MAX / tr->type_size)
    return tensor_fail (c->path, t->name, error, "byte size overflows 64 bits");
  t->nbytes = blocks * tr->type_size;

  if (!cursor_u64 (c, &t->offset, "tensor data offset", error))
    return FALSE;
  t->part = part;
  return TRUE;
}

/* Checks the tensors of one part against its data section: in bounds,
 * aligned, not overlapping. Sets their data pointers. */
static gboolean
place_tensors (RsGguf *g, RsGgufPart *p, guint first, guint count, GError **error)
{
  uint64_t data_size = p->size - p->data_offset;
  g_autofree guint *order = g_new (guint, MAX (count, 1));

  for (guint i = 0; i < count; i++)
    {
      RsGgufTensor *t = &g_array_index (g->tensors, RsGgufTensor, first + i);
      if (t->offset % g->alignment != 0)
        return tensor_fail (p->path, t->name, error, "data offset %" G_GUINT64_FORMAT
                            " is not a multiple of the alignment %zu", t->offset, g->alignment);
      if (t->offset > data_size || t->nbytes > data_size - t->offset)
        return tensor_fail (p->path, t->name, error, "data [%" G_GUINT64_FORMAT ", +%zu) lies "
                            "outside the %" G_GUINT64_FORMAT "-byte data section",
                            t->offset, t->nbytes, data_size);
      t->data = p->map + p->data_offset + t->offset;
      order[i] = first + i;
    }

  /* Sort by offset and look for overlaps between neighbours. */
  for (guint i = 1; i < count; i++)
    {
      guint x = order[i], j = i;
      uint64_t off = g_array_index (g->tensors, RsGgufTensor, x).offset;
      while (j > 0 && g_array_index (g->tensors, RsGgufTensor, order[j - 1]).offset > off)
        {
          order[j] = order[j - 1];
          j--;
        }
      order[j] = x;
    }
  for (guint i = 1; i < count; i++)
    {
      const RsGgufTensor *a = &g_array_index (g->tensors, RsGgufTensor, order[i - 1]);
      const RsGgufTensor *b = &g_array_index (g->tensors, RsGgufTensor, order[i]);
      if (b->offset < a->offset + a->nbytes)
        return tensor_fail (p->path, b->name, error, "data at offset %" G_GUINT64_FORMAT
                            " overlaps tensor '%s'", b->offset, a->name);
    }
  return TRUE;
}

static RsGgufPart *
map_part (const char *path, GError **error)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    {
      int e = errno;
      g_set_error (error, RS_ERROR, RS_ERROR_IO, "%s: cannot open: %s", path, g_strerror (e));
      return NULL;
    }
  struct stat st;
  if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode))
    {
      g_set_error (error, RS_ERROR, RS_ERROR_IO, "%s: not a regular file", path);
      close (fd);
      return NULL;
    }
  if (st.st_size == 0)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_FORMAT, "%s: the file is empty", path);
      close (fd);
      return NULL;
    }
  void *map = mmap (NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
  int e = errno;
  close (fd);
  if (map == MAP_FAILED)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_IO, "%s: cannot map: %s", path, g_strerror (e));
      return NULL;
    }
  RsGgufPart *p = g_new0 (RsGgufPart, 1);
  p->path = g_strdup (path);
  p->map = map;
  p->size = st.st_size;
  return p;
}

static void
part_free (gpointer data)
{
  RsGgufPart *p = data;
  if (p->map != NULL)
    munmap ((void *) p->map, p->size);
  g_free (p->path);
  g_free (p);
}

/* Parses one part. For part 0 the metadata is kept; later parts' metadata
 * is parsed (to validate and to reach the tensor table) into @kvs_out. */
static gboolean
parse_part (RsGguf *g, RsGgufPart *p, int part, GArray *kvs, GHashTable *kv_index,
            GError **error)
{
  RsCursor c = { p->map, p->size, 0, p->path };
  char magic[4];
  uint32_t version;
  uint64_t n_tensors, n_kv;

  if (!cursor_read (&c, magic, 4, "magic", error))
    return FALSE;
  if (memcmp (magic, GGUF_MAGIC, 4) != 0)
    {
      c.pos = 0;
      return cursor_fail (&c, error, "bad magic: not a GGUF file");
    }
  if (!cursor_u32 (&c, &version, "version", error))
    return FALSE;
  if (version == 1)
    {
      c.pos = 4;
      g_set_error (error, RS_ERROR, RS_ERROR_UNSUPPORTED,
                   "%s: GGUF version 1 is not supported (only 2 and 3)", p->path);
      return FALSE;
    }
  if (version != 2 && version != 3)
    {
      c.pos = 4;
      if ((version & 0xffff) == 0 && GUINT32_SWAP_LE_BE (version) <= 3)
        return cursor_fail (&c, error, "big-endian GGUF files are not supported");
      return cursor_fail (&c, error, "unsupported GGUF version %u (only 2 and 3)", version);
    }
  if (part == 0)
    g->version = version;

  if (!cursor_u64 (&c, &n_tensors, "tensor count", error) ||
      !cursor_u64 (&c, &n_kv, "metadata count", error))
    return FALSE;
  /* A key-value pair takes at least 8 + 1 + 4 + 1 bytes, a tensor record 8 + 1 + 4 + 8 + 4 + 8. */
  if (n_kv > cursor_left (&c) / 14)
    {
      c.pos = 16;
      return cursor_fail (&c, error, "metadata count %" G_GUINT64_FORMAT
                          " is larger than the file can hold", n_kv);
    }
  if (n_tensors > cursor_left (&c) / 33)
    {
      c.pos = 8;
      return cursor_fail (&c, error, "tensor count %" G_GUINT64_FORMAT
                          " is larger than the file can hold", n_tensors);
    }

  GHashTable *saved_index = g->kv_index;
  g->kv_index = kv_index;
  for (uint64_t i = 0; i < n_kv; i++)
    {
      RsGgufKv kv = { 0 };
      if (!parse_kv (g, &c, &kv, error))
        {
          g->kv_index = saved_index;
          return FALSE;
        }
      g_array_append_val (kvs, kv);
      g_hash_table_insert (kv_index, (gpointer) kv.key, GSIZE_TO_POINTER (kvs->len));
    }
  g->kv_index = saved_index;

  if (part == 0 && !read_alignment (g, p->path, error))
    return FALSE;

  guint first = g->tensors->len;
  for (uint64_t i = 0; i < n_tensors; i++)
    {
      RsGgufTensor t = { 0 };
      if (!parse_tensor_info (g, &c, part, &t, error))
        return FALSE;
      g_array_append_val (g->tensors, t);
      g_hash_table_insert (g->tensor_index, (gpointer) t.name,
                           GSIZE_TO_POINTER (g->tensors->len));
    }

  uint64_t data = (c.pos + g->alignment - 1) / g->alignment * g->alignment;
  if (n_tensors > 0 && data > p->size)
    {
      c.pos = p->size;
      return cursor_fail (&c, error, "file truncated: the data section of %" G_GUINT64_FORMAT
                          " tensors is missing", n_tensors);
    }
  p->data_offset = MIN (data, p->size);
  return place_tensors (g, p, first, (guint) n_tensors, error);
}

/* ---- split models ------------------------------------------------------- */

static gboolean
kv_uint (GArray *kvs, GHashTable *index, const char *key, uint64_t *out)
{
  guint i = GPOINTER_TO_SIZE (g_hash_table_lookup (index, key));
  if (i == 0)
    return FALSE;
  const RsGgufKv *kv = &g_array_index (kvs, RsGgufKv, i - 1);
  if (type_is_unsigned (kv->type))
    *out = kv->v.u;
  else if (type_is_signed (kv->type) && kv->v.i >= 0)
    *out = (uint64_t) kv->v.i;
  else
    return FALSE;
  return TRUE;
}

static gboolean
open_split_parts (RsGguf *g, const char *path, GError **error)
{
  uint64_t count = 1, no = 0, total;
  if (!kv_uint (g->kvs, g->kv_index, "split.count", &count) || count <= 1)
    return TRUE;
  kv_uint (g->kvs, g->kv_index, "split.no", &no);
  if (no != 0)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_INVALID,
                   "%s: this is part %" G_GUINT64_FORMAT " of a split model; open the first "
                   "part (-00001-of-%05" G_GUINT64_FORMAT ".gguf)", path, no + 1, count);
      return FALSE;
    }
  if (count > GGUF_MAX_PARTS)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_FORMAT, "%s: split.count %" G_GUINT64_FORMAT
                   " is larger than %d", path, count, GGUF_MAX_PARTS);
      return FALSE;
    }

  /* NAME-00001-of-0000N.gguf */
  g_autofree char *suffix = g_strdup_printf ("-00001-of-%05" G_GUINT64_FORMAT ".gguf", count);
  if (!g_str_has_suffix (path, suffix))
    {
      g_set_error (error, RS_ERROR, RS_ERROR_INVALID,
                   "%s: split model with %" G_GUINT64_FORMAT " parts, but the file name does "
                   "not end in %s, so the other parts cannot be found", path, count, suffix);
      return FALSE;
    }
  g_autofree char *prefix = g_strndup (path, strlen (path) - strlen (suffix));

  for (uint64_t i = 1; i < count; i++)
    {
      g_autofree char *part_path = g_strdup_printf ("%s-%05" G_GUINT64_FORMAT "-of-%05"
                                                    G_GUINT64_FORMAT ".gguf", prefix, i + 1, count);
      RsGgufPart *p = map_part (part_path, error);
      if (p == NULL)
        {
          g_prefix_error (error, "%s: part %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT ": ",
                          path, i + 1, count);
          return FALSE;
        }
      g_ptr_array_add (g->parts, p);
      g_autoptr (GArray) kvs = g_array_new (FALSE, TRUE, sizeof (RsGgufKv));
      g_autoptr (GHashTable) index = g_hash_table_new (g_str_hash, g_str_equal);
      if (!parse_part (g, p, (int) i, kvs, index, error))
        return FALSE;
      uint64_t pno = G_MAXUINT64, pcount = 0;
      kv_uint (kvs, index, "split.no", &pno);
      kv_uint (kvs, index, "split.count", &pcount);
      if (pno != i || pcount != count)
        {
          g_set_error (error, RS_ERROR, RS_ERROR_FORMAT,
                       "%s: split.no/split.count say part %" G_GUINT64_FORMAT " of %"
                       G_GUINT64_FORMAT ", expected part %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT,
                       part_path, pno + 1, pcount, i + 1, count);
          return FALSE;
        }
    }

  if (kv_uint (g->kvs, g->kv_index, "split.tensors.count", &total) && total != g->tensors->len)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_FORMAT,
                   "%s: split.tensors.count is %" G_GUINT64_FORMAT " but the %" G_GUINT64_FORMAT
                   " parts hold %u tensors", path, total, count, g->tensors->len);
      return FALSE;
    }
  return TRUE;
}

/* ---- public API --------------------------------------------------------- */

RsGguf *
rs_gguf_open (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);

  RsGguf *g = g_new0 (RsGguf, 1);
  g->parts = g_ptr_array_new_with_free_func (part_free);
  g->kvs = g_array_new (FALSE, TRUE, sizeof (RsGgufKv));
  g->kv_index = g_hash_table_new (g_str_hash, g_str_equal);
  g->tensors = g_array_new (FALSE, TRUE, sizeof (RsGgufTensor));
  g->tensor_index = g_hash_table_new (g_str_hash, g_str_equal);
  g->strings = g_string_chunk_new (4096);
  g->allocations = g_ptr_array_new_with_free_func (g_free);
  g->alignment = GGUF_DEFAULT_ALIGN;

  RsGgufPart *p = map_part (path, error);
  if (p == NULL)
    goto fail;
  g_ptr_array_add (g->parts, p);
  if (!parse_part (g, p, 0, g->kvs, g->kv_index, error))
    goto fail;
  if (!open_split_parts (g, path, error))
    goto fail;
  return g;

fail:
  rs_gguf_free (g);
  return NULL;
}

void
rs_gguf_free (RsGguf *g)
{
  if (g == NULL)
    return;
  g_ptr_array_unref (g->parts);
  g_array_unref (g->kvs);
  g_hash_table_unref (g->kv_index);
  g_array_unref (g->tensors);
  g_hash_table_unref (g->tensor_index);
  g_string_chunk_free (g->strings);
  g_ptr_array_unref (g->allocations);
  g_free (g);
}

const char *
rs_gguf_path (const RsGguf *g)
{
  return ((RsGgufPart *) g->parts->pdata[0])->path;
}

uint32_t rs_gguf_version (const RsGguf *g) { return g->version; }
size_t rs_gguf_alignment (const RsGguf *g) { return g->alignment; }
int rs_gguf_n_parts (const RsGguf *g) { return (int) g->parts->len; }

uint64_t
rs_gguf_file_size (const RsGguf *g)
{
  uint64_t total = 0;
  for (guint i = 0; i < g->parts->len; i++)
    total += ((RsGgufPart *) g->parts->pdata[i])->size;
  return total;
}

int64_t rs_gguf_n_kv (const RsGguf *g) { return g->kvs->len; }

const RsGgufKv *
rs_gguf_kv (const RsGguf *g, int64_t i)
{
  g_return_val_if_fail (i >= 0 && i < g->kvs->len, NULL);
  return &g_array_index (g->kvs, RsGgufKv, i);
}

const RsGgufKv *
rs_gguf_find_kv (const RsGguf *g, const char *key)
{
  guint i = GPOINTER_TO_SIZE (g_hash_table_lookup (g->kv_index, key));
  return i == 0 ? NULL : &g_array_index (g->kvs, RsGgufKv, i - 1);
}

int64_t rs_gguf_n_tensors (const RsGguf *g) { return g->tensors->len; }

const RsGgufTensor *
rs_gguf_tensor (const RsGguf *g, int64_t i)
{
  g_return_val_if_fail (i >= 0 && i < g->tensors->len, NULL);
  return &g_array_index (g->tensors, RsGgufTensor, i);
}

const RsGgufTensor *
rs_gguf_find_tensor (const RsGguf *g, const char *name)
{
  guint i = GPOINTER_TO_SIZE (g_hash_table_lookup (g->tensor_index, name));
  return i == 0 ? NULL : &g_array_index (g->tensors, RsGgufTensor, i - 1);
}

/* ---- typed look-ups ----------------------------------------------------- */

static const RsGgufKv *
require_kv (const RsGguf *g, const char *key, GError **error)
{
  const RsGgufKv *kv = rs_gguf_find_kv (g, key);
  if (kv == NULL)
    g_set_error (error, RS_ERROR, RS_ERROR_FORMAT, "%s: missing metadata key '%s'",
                 rs_gguf_path (g), key);
  return kv;
}

static gboolean
wrong_type (const RsGguf *g, const RsGgufKv *kv, const char *wanted, GError **error)
{
  g_set_error (error, RS_ERROR, RS_ERROR_FORMAT, "%s: metadata key '%s' is %s%s%s, expected %s",
               rs_gguf_path (g), kv->key, rs_gguf_value_type_name (kv->type),
               kv->type == RS_GGUF_ARRAY ? " of " : "",
               kv->type == RS_GGUF_ARRAY ? rs_gguf_value_type_name (kv->arr_type) : "", wanted);
  return FALSE;
}

static gboolean
kv_to_u64 (const RsGguf *g, const RsGgufKv *kv, uint64_t max, uint64_t *out, GError **error)
{
  uint64_t v;
  if (type_is_unsigned (kv->type))
    v = kv->v.u;
  else if (type_is_signed (kv->type) && kv->v.i >= 0)
    v = (uint64_t) kv->v.i;
  else if (type_is_signed (kv->type))
    goto range;
  else
    return wrong_type (g, kv, "an unsigned integer", error);
  if (v > max)
    goto range;
  *out = v;
  return TRUE;
range:
  g_set_error (error, RS_ERROR, RS_ERROR_FORMAT, "%s: metadata key '%s' is out of range "
               "(0 to %" G_GUINT64_FORMAT ")", rs_gguf_path (g), kv->key, max);
  return FALSE;
}

gboolean
rs_gguf_get_u64 (const RsGguf *g, const char *key, uint64_t *out, GError **error)
{
  const RsGgufKv *kv = require_kv (g, key, error);
  return kv != NULL && kv_to_u64 (g, kv, G_MAXUINT64, out, error);
}

gboolean
rs_gguf_get_u32 (const RsGguf *g, const char *key, uint32_t *out, GError **error)
{
  uint64_t v;
  const RsGgufKv *kv = require_kv (g, key, error);
  if (kv == NULL || !kv_to_u64 (g, kv, G_MAXUINT32, &v, error))
    return FALSE;
  *out = (uint32_t) v;
  return TRUE;
}

gboolean
rs_gguf_get_i64 (const RsGguf *g, const char *key, int64_t *out, GError **error)
{
  const RsGgufKv *kv = require_kv (g, key, error);
  if (kv == NULL)
    return FALSE;
  if (type_is_signed (kv->type))
    *out = kv->v.i;
  else if (type_is_unsigned (kv->type) && kv->v.u <= INT64_MAX)
    *out = (int64_t) kv->v.u;
  else if (type_is_unsigned (kv->type))
    {
      g_set_error (error, RS_ERROR, RS_ERROR_FORMAT, "%s: metadata key '%s' is out of range",
                   rs_gguf_path (g), key);
      return FALSE;
    }
  else
    return wrong_type (g, kv, "an integer", error);
  return TRUE;
}

gboolean
rs_gguf_get_f64 (const RsGguf *g, const char *key, double *out, GError **error)
{
  const RsGgufKv *kv = require_kv (g, key, error);
  if (kv == NULL)
    return FALSE;
  if (kv->type == RS_GGUF_FLOAT32 || kv->type == RS_GGUF_FLOAT64)
    *out = kv->v.f;
  else if (type_is_unsigned (kv->type))
    *out = (double) kv->v.u;
  else if (type_is_signed (kv->type))
    *out = (double) kv->v.i;
  else
    return wrong_type (g, kv, "a number", error);
  return TRUE;
}

gboolean
rs_gguf_get_bool (const RsGguf *g, const char *key, bool *out, GError **error)
{
  const RsGgufKv *kv = require_kv (g, key, error);
  if (kv == NULL)
    return FALSE;
  if (kv->type != RS_GGUF_BOOL)
    return wrong_type (g, kv, "bool", error);
  *out = kv->v.b;
  return TRUE;
}

gboolean
rs_gguf_get_str (const RsGguf *g, const char *key, const char **out, GError **error)
{
  const RsGgufKv *kv = require_kv (g, key, error);
  if (kv == NULL)
    return FALSE;
  if (kv->type != RS_GGUF_STRING)
    return wrong_type (g, kv, "string", error);
  *out = kv->str;
  return TRUE;
}

gboolean
rs_gguf_get_u32_or (const RsGguf *g, const char *key, uint32_t fallback, uint32_t *out,
                    GError **error)
{
  if (rs_gguf_find_kv (g, key) == NULL)
    {
      *out = fallback;
      return TRUE;
    }
  return rs_gguf_get_u32 (g, key, out, error);
}

gboolean
rs_gguf_get_f64_or (const RsGguf *g, const char *key, double fallback, double *out,
                    GError **error)
{
  if (rs_gguf_find_kv (g, key) == NULL)
    {
      *out = fallback;
      return TRUE;
    }
  return rs_gguf_get_f64 (g, key, out, error);
}

gboolean
rs_gguf_get_bool_or (const RsGguf *g, const char *key, bool fallback, bool *out,
                     GError **error)
{
  if (rs_gguf_find_kv (g, key) == NULL)
    {
      *out = fallback;
      return TRUE;
    }
  return rs_gguf_get_bool (g, key, out, error);
}

gboolean
rs_gguf_lock_memory (const RsGguf *g, GError **error)
{
  for (guint i = 0; i < g->parts->len; i++)
    {
      const RsGgufPart *p = g->parts->pdata[i];
      if (mlock (p->map, p->size) != 0)
        {
          int e = errno;
          g_set_error (error, RS_ERROR, RS_ERROR_RESOURCE,
                       "%s: cannot lock %" G_GUINT64_FORMAT " bytes in memory: %s%s", p->path,
                       p->size, g_strerror (e),
                       e == ENOMEM || e == EPERM ? " (raise the limit with ulimit -l)" : "");
          return FALSE;
        }
    }
  return TRUE;
}
