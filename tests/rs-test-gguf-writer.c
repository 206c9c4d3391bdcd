/* rs-test-gguf-writer.c: builds GGUF files for the tests.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "rs-test-gguf-writer.h"

#include <string.h>

#include "rs-quant.h"

typedef struct {
  char     *name;
  RsType    type;
  int       n_dims;
  int64_t   ne[4];
  GBytes   *data;
  gboolean  offset_set;
  uint64_t  offset;
} WriterTensor;

struct _RsTestGguf {
  uint32_t    version;
  uint32_t    alignment;
  guint       n_kv;
  GByteArray *kv_bytes;  /* the encoded metadata, in order */
  GArray     *tensors;   /* WriterTensor */
  uint64_t    tensor_info_offset;
  uint64_t    data_offset;
};

static void
tensor_clear (gpointer p)
{
  WriterTensor *t = p;
  g_free (t->name);
  g_clear_pointer (&t->data, g_bytes_unref);
}

RsTestGguf *
rs_test_gguf_new (void)
{
  RsTestGguf *w = g_new0 (RsTestGguf, 1);
  w->version = 3;
  w->alignment = 32;
  w->kv_bytes = g_byte_array_new ();
  w->tensors = g_array_new (FALSE, TRUE, sizeof (WriterTensor));
  g_array_set_clear_func (w->tensors, tensor_clear);
  return w;
}

void
rs_test_gguf_free (RsTestGguf *w)
{
  if (w == NULL)
    return;
  g_byte_array_unref (w->kv_bytes);
  g_array_unref (w->tensors);
  g_free (w);
}

void rs_test_gguf_set_version (RsTestGguf *w, uint32_t v) { w->version = v; }
void rs_test_gguf_set_alignment (RsTestGguf *w, uint32_t a) { w->alignment = a; }

static void
put (GByteArray *b, const void *p, gsize n)
{
  g_byte_array_append (b, p, n);
}

static void
put_u32 (GByteArray *b, uint32_t v)
{
  put (b, &v, 4);
}

static void
put_u64 (GByteArray *b, uint64_t v)
{
  put (b, &v, 8);
}

static void
put_str (GByteArray *b, const char *s)
{
  put_u64 (b, strlen (s));
  put (b, s, strlen (s));
}

static void
add_scalar (RsTestGguf *w, const char *key, RsGgufValueType type, const void *v, gsize n)
{
  put_str (w->kv_bytes, key);
  put_u32 (w->kv_bytes, type);
  put (w->kv_bytes, v, n);
  w->n_kv++;
}

void rs_test_gguf_add_u8 (RsTestGguf *w, const char *k, uint8_t v) { add_scalar (w, k, RS_GGUF_UINT8, &v, 1); }
void rs_test_gguf_add_i8 (RsTestGguf *w, const char *k, int8_t v) { add_scalar (w, k, RS_GGUF_INT8, &v, 1); }
void rs_test_gguf_add_u16 (RsTestGguf *w, const char *k, uint16_t v) { add_scalar (w, k, RS_GGUF_UINT16, &v, 2); }
void rs_test_gguf_add_i16 (RsTestGguf *w, const char *k, int16_t v) { add_scalar (w, k, RS_GGUF_INT16, &v, 2); }
void rs_test_gguf_add_u32 (RsTestGguf *w, const char *k, uint32_t v) { add_scalar (w, k, RS_GGUF_UINT32, &v, 4); }
void rs_test_gguf_add_i32 (RsTestGguf *w, const char *k, int32_t v) { add_scalar (w, k, RS_GGUF_INT32, &v, 4); }
void rs_test_gguf_add_u64 (RsTestGguf *w, const char *k, uint64_t v) { add_scalar (w, k, RS_GGUF_UINT64, &v, 8); }
void rs_test_gguf_add_i64 (RsTestGguf *w, const char *k, int64_t v) { add_scalar (w, k, RS_GGUF_INT64, &v, 8); }
void rs_test_gguf_add_f32 (RsTestGguf *w, const char *k, float v) { add_scalar (w, k, RS_GGUF_FLOAT32, &v, 4); }
void rs_test_gguf_add_f64 (RsTestGguf *w, const char *k, double v) { add_scalar (w, k, RS_GGUF_FLOAT64, &v, 8); }

void
rs_test_gguf_add_bool (RsTestGguf *w, const char *k, gboolean v)
{
  uint8_t b = v ? 1 : 0;
  add_scalar (w, k, RS_GGUF_BOOL, &b, 1);
}

void
rs_test_gguf_add_str (RsTestGguf *w, const char *key, const char *v)
{
  put_str (w->kv_bytes, key);
  put_u32 (w->kv_bytes, RS_GGUF_STRING);
  put_str (w->kv_bytes, v);
  w->n_kv++;
}

static gsize
value_size (RsGgufValueType t)
{
  switch (t)
    {
    case RS_GGUF_UINT8: case RS_GGUF_INT8: case RS_GGUF_BOOL: return 1;
    case RS_GGUF_UINT16: case RS_GGUF_INT16: return 2;
    case RS_GGUF_UINT32: case RS_GGUF_INT32: case RS_GGUF_FLOAT32: return 4;
    case RS_GGUF_UINT64: case RS_GGUF_INT64: case RS_GGUF_FLOAT64: return 8;
    default: g_assert_not_reached ();
    }
}

void
rs_test_gguf_add_arr (RsTestGguf *w, const char *key, RsGgufValueType type, const void *data,
                      uint64_t n)
{
  put_str (w->kv_bytes, key);
  put_u32 (w->kv_bytes, RS_GGUF_ARRAY);
  put_u32 (w->kv_bytes, type);
  put_u64 (w->kv_bytes, n);
  put (w->kv_bytes, data, n * value_size (type));
  w->n_kv++;
}

void
rs_test_gguf_add_arr_str (RsTestGguf *w, const char *key, const char *const *strs, uint64_t n)
{
  put_str (w->kv_bytes, key);
  put_u32 (w->kv_bytes, RS_GGUF_ARRAY);
  put_u32 (w->kv_bytes, RS_GGUF_STRING);
  put_u64 (w->kv_bytes, n);
  for (uint64_t i = 0; i < n; i++)
    put_str (w->kv_bytes, strs[i]);
  w->n_kv++;
}

static size_t
tensor_nbytes (RsType type, int n_dims, const int64_t *ne)
{
  int64_t rows = 1;
  for (int d = 1; d < n_dims; d++)
    rows *= ne[d];
  return rs_type_row_size (type, ne[0]) * rows;
}

int
rs_test_gguf_add_tensor (RsTestGguf *w, const char *name, RsType type, int n_dims,
                         const int64_t *ne, const void *data)
{
  WriterTensor t = { 0 };
  t.name = g_strdup (name);
  t.type = type;
  t.n_dims = n_dims;
  for (int d = 0; d < 4; d++)
    t.ne[d] = d < n_dims ? ne[d] : 1;
  size_t n = tensor_nbytes (type, n_dims, ne);
  if (data != NULL)
    t.data = g_bytes_new (data, n);
  else
    t.data = g_bytes_new_take (g_malloc0 (MAX (n, 1)), n);
  g_array_append_val (w->tensors, t);
  return (int) w->tensors->len - 1;
}

int
rs_test_gguf_add_tensor_f32 (RsTestGguf *w, const char *name, RsType type, int n_dims,
                             const int64_t *ne, const float *data)
{
  int64_t rows = 1;
  for (int d = 1; d < n_dims; d++)
    rows *= ne[d];
  size_t row_bytes = rs_type_row_size (type, ne[0]);
  g_autofree uint8_t *q = g_malloc0 (MAX (row_bytes * rows, 1));
  for (int64_t r = 0; r < rows; r++)
    g_assert_true (rs_quantize_row (type, data + r * ne[0], q + r * row_bytes, ne[0]));
  return rs_test_gguf_add_tensor (w, name, type, n_dims, ne, q);
}

void
rs_test_gguf_set_tensor_offset (RsTestGguf *w, int index, uint64_t offset)
{
  WriterTensor *t = &g_array_index (w->tensors, WriterTensor, index);
  t->offset_set = TRUE;
  t->offset = offset;
}

static uint64_t
align_up (uint64_t x, uint64_t a)
{
  return (x + a - 1) / a * a;
}

/* Appends zero bytes up to length @n. */
static void
pad_to (GByteArray *b, uint64_t n)
{
  static const uint8_t zeros[64];
  while (b->len < n)
    put (b, zeros, MIN (sizeof zeros, n - b->len));
}

GBytes *
rs_test_gguf_to_bytes (RsTestGguf *w)
{
  GByteArray *b = g_byte_array_new ();
  put (b, "GGUF", 4);
  put_u32 (b, w->version);
  put_u64 (b, w->tensors->len);
  put_u64 (b, w->n_kv);
  put (b, w->kv_bytes->data, w->kv_bytes->len);
  w->tensor_info_offset = b->len;

  uint64_t offset = 0;
  for (guint i = 0; i < w->tensors->len; i++)
    {
      WriterTensor *t = &g_array_index (w->tensors, WriterTensor, i);
      put_str (b, t->name);
      put_u32 (b, t->n_dims);
      for (int d = 0; d < t->n_dims; d++)
        put_u64 (b, t->ne[d]);
      put_u32 (b, t->type);
      put_u64 (b, t->offset_set ? t->offset : offset);
      offset = align_up (offset + g_bytes_get_size (t->data), w->alignment);
    }

  w->data_offset = align_up (b->len, w->alignment);
  pad_to (b, w->data_offset);
  offset = 0;
  for (guint i = 0; i < w->tensors->len; i++)
    {
      WriterTensor *t = &g_array_index (w->tensors, WriterTensor, i);
      gsize n = g_bytes_get_size (t->data);
      pad_to (b, w->data_offset + offset);
      put (b, g_bytes_get_data (t->data, NULL), n);
      offset = align_up (offset + n, w->alignment);
    }
  if (w->tensors->len > 0)
    pad_to (b, w->data_offset + offset);
  return g_byte_array_free_to_bytes (b);
}

uint64_t rs_test_gguf_tensor_info_offset (RsTestGguf *w) { return w->tensor_info_offset; }
uint64_t rs_test_gguf_data_offset (RsTestGguf *w) { return w->data_offset; }

gboolean
rs_test_gguf_write (RsTestGguf *w, const char *path, GError **error)
{
  g_autoptr (GBytes) bytes = rs_test_gguf_to_bytes (w);
  gsize n;
  const void *p = g_bytes_get_data (bytes, &n);
  return g_file_set_contents (path, p, n, error);
}

char *
rs_test_write_temp (const char *name, const void *bytes, gsize len)
{
  static char *dir = NULL;
  if (dir == NULL)
    {
      dir = g_dir_make_tmp ("routescope-test-XXXXXX", NULL);
      g_assert_nonnull (dir);
    }
  char *path = g_build_filename (dir, name, NULL);
  g_autoptr (GError) error = NULL;
  g_assert_true (g_file_set_contents (path, bytes, len, &error));
  return path;
}
