/* test-gguf.c: the GGUF reader on files built from scratch, good and bad.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <glib/gstdio.h>
#include <string.h>

#include "rs-error.h"
#include "rs-gguf.h"
#include "rs-test-gguf-writer.h"

static RsGguf *
open_bytes (const char *name, GBytes *bytes, GError **error)
{
  gsize n;
  const void *p = g_bytes_get_data (bytes, &n);
  g_autofree char *path = rs_test_write_temp (name, p, n);
  return rs_gguf_open (path, error);
}

static RsGguf *
open_writer (const char *name, RsTestGguf *w, GError **error)
{
  g_autoptr (GBytes) bytes = rs_test_gguf_to_bytes (w);
  return open_bytes (name, bytes, error);
}

/* Opening must fail with @code and a message containing every one of the
 * NULL-terminated fragments. */
static void
expect_error (RsGguf *g, GError **errorp, int code, ...)
{
  GError *error = *errorp;
  g_assert_null (g);
  g_assert_nonnull (error);
  g_test_message ("error: %s", error->message);
  g_assert_error (error, RS_ERROR, code);
  va_list ap;
  va_start (ap, code);
  for (const char *frag; (frag = va_arg (ap, const char *)) != NULL;)
    if (strstr (error->message, frag) == NULL)
      g_error ("message '%s' lacks '%s'", error->message, frag);
  va_end (ap);
}

static void
test_metadata_roundtrip (void)
{
  g_autoptr (RsTestGguf) w = rs_test_gguf_new ();
  rs_test_gguf_add_u8 (w, "t.u8", 250);
  rs_test_gguf_add_i8 (w, "t.i8", -7);
  rs_test_gguf_add_u16 (w, "t.u16", 65000);
  rs_test_gguf_add_i16 (w, "t.i16", -30000);
  rs_test_gguf_add_u32 (w, "t.u32", 4000000000u);
  rs_test_gguf_add_i32 (w, "t.i32", -2000000000);
  rs_test_gguf_add_u64 (w, "t.u64", G_GUINT64_CONSTANT (18000000000000000000));
  rs_test_gguf_add_i64 (w, "t.i64", G_GINT64_CONSTANT (-9000000000000000000));
  rs_test_gguf_add_f32 (w, "t.f32", 1.5f);
  rs_test_gguf_add_f64 (w, "t.f64", -2.25e100);
  rs_test_gguf_add_bool (w, "t.bool", TRUE);
  rs_test_gguf_add_str (w, "t.str", "grüße, 世界");
  int32_t ints[3] = { -1, 0, 7 };
  rs_test_gguf_add_arr (w, "t.arr.i32", RS_GGUF_INT32, ints, 3);
  float floats[2] = { 0.25f, -8.0f };
  rs_test_gguf_add_arr (w, "t.arr.f32", RS_GGUF_FLOAT32, floats, 2);
  uint8_t bools[4] = { 1, 0, 0, 1 };
  rs_test_gguf_add_arr (w, "t.arr.bool", RS_GGUF_BOOL, bools, 4);
  double doubles[1] = { 3.0 };
  rs_test_gguf_add_arr (w, "t.arr.f64", RS_GGUF_FLOAT64, doubles, 1);
  const char *strs[] = { "a", "", "▁tok" };
  rs_test_gguf_add_arr_str (w, "t.arr.str", strs, 3);
  rs_test_gguf_add_arr (w, "t.arr.empty", RS_GGUF_UINT16, NULL, 0);

  g_autoptr (GError) error = NULL;
  g_autoptr (RsGguf) g = open_writer ("meta.gguf", w, &error);
  g_assert_no_error (error);
  g_assert_cmpint (rs_gguf_version (g), ==, 3);
  g_assert_cmpint (rs_gguf_n_kv (g), ==, 18);
  g_assert_cmpint (rs_gguf_n_tensors (g), ==, 0);

  g_assert_cmpuint (rs_gguf_find_kv (g, "t.u8")->v.u, ==, 250);
  g_assert_cmpint (rs_gguf_find_kv (g, "t.i8")->v.i, ==, -7);
  g_assert_cmpuint (rs_gguf_find_kv (g, "t.u16")->v.u, ==, 65000);
  g_assert_cmpint (rs_gguf_find_kv (g, "t.i16")->v.i, ==, -30000);
  g_assert_cmpint (rs_gguf_find_kv (g, "t.i32")->v.i, ==, -2000000000);
  g_assert_cmpuint (rs_gguf_find_kv (g, "t.u64")->v.u, ==, G_GUINT64_CONSTANT (18000000000000000000));
  g_assert_cmpint (rs_gguf_find_kv (g, "t.i64")->v.i, ==, G_GINT64_CONSTANT (-9000000000000000000));
  g_assert_cmpfloat (rs_gguf_find_kv (g, "t.f32")->v.f, ==, 1.5);
  g_assert_cmpfloat (rs_gguf_find_kv (g, "t.f64")->v.f, ==, -2.25e100);
  g_assert_true (rs_gguf_find_kv (g, "t.bool")->v.b);
  g_assert_cmpstr (rs_gguf_find_kv (g, "t.str")->str, ==, "grüße, 世界");
  g_assert_null (rs_gguf_find_kv (g, "t.absent"));

  const RsGgufKv *kv = rs_gguf_find_kv (g, "t.arr.i32");
  g_assert_cmpint (kv->type, ==, RS_GGUF_ARRAY);
  g_assert_cmpint (kv->arr_type, ==, RS_GGUF_INT32);
  g_assert_cmpuint (kv->n, ==, 3);
  g_assert_cmpmem (kv->arr, 12, ints, 12);
  kv = rs_gguf_find_kv (g, "t.arr.f32");
  g_assert_cmpfloat (((const float *) kv->arr)[1], ==, -8.0f);
  kv = rs_gguf_find_kv (g, "t.arr.bool");
  g_assert_cmpmem (kv->arr, 4, bools, 4);
  kv = rs_gguf_find_kv (g, "t.arr.f64");
  g_assert_cmpfloat (((const double *) kv->arr)[0], ==, 3.0);
  kv = rs_gguf_find_kv (g, "t.arr.str");
  g_assert_cmpuint (kv->n, ==, 3);
  g_assert_cmpstr (((const char *const *) kv->arr)[0], ==, "a");
  g_assert_cmpstr (((const char *const *) kv->arr)[1], ==, "");
  g_assert_cmpstr (((const char *const *) kv->arr)[2], ==, "▁tok");
  g_assert_cmpuint (kv->arr_str_len[2], ==, strlen ("▁tok"));
  g_assert_cmpuint (rs_gguf_find_kv (g, "t.arr.empty")->n, ==, 0);

  /* Typed getters convert where exact and refuse otherwise. */
  uint32_t u32;
  uint64_t u64;
  int64_t i64;
  double f;
  bool b;
  const char *s;
  g_assert_true (rs_gguf_get_u32 (g, "t.u8", &u32, &error));
  g_assert_cmpuint (u32, ==, 250);
  g_assert_true (rs_gguf_get_u64 (g, "t.u64", &u64, &error));
  g_assert_true (rs_gguf_get_i64 (g, "t.i16", &i64, &error));
  g_assert_cmpint (i64, ==, -30000);
  g_assert_true (rs_gguf_get_f64 (g, "t.f32", &f, &error));
  g_assert_cmpfloat (f, ==, 1.5);
  g_assert_true (rs_gguf_get_f64 (g, "t.u16", &f, &error));
  g_assert_cmpfloat (f, ==, 65000);
  g_assert_true (rs_gguf_get_bool (g, "t.bool", &b, &error));
  g_assert_true (rs_gguf_get_str (g, "t.str", &s, &error));
  g_assert_no_error (error);

  g_assert_false (rs_gguf_get_u32 (g, "t.u64", &u32, &error));
  g_assert_error (error, RS_ERROR, RS_ERROR_FORMAT);
  g_assert_nonnull (strstr (error->message, "t.u64"));
  g_clear_error (&error);
  g_assert_false (rs_gguf_get_u32 (g, "t.i8", &u32, &error));
  g_assert_nonnull (strstr (error->message, "out of range"));
  g_clear_error (&error);
  g_assert_false (rs_gguf_get_str (g, "t.u8", &s, &error));
  g_assert_nonnull (strstr (error->message, "expected string"));
  g_clear_error (&error);
  g_assert_false (rs_gguf_get_u32 (g, "t.absent", &u32, &error));
  g_assert_nonnull (strstr (error->message, "missing metadata key 't.absent'"));
  g_clear_error (&error);
  g_assert_true (rs_gguf_get_u32_or (g, "t.absent", 17, &u32, &error));
  g_assert_cmpuint (u32, ==, 17);
  g_assert_false (rs_gguf_get_u32_or (g, "t.str", 17, &u32, &error));
  g_clear_error (&error);
}

static void
test_version2 (void)
{
  g_autoptr (RsTestGguf) w = rs_test_gguf_new ();
  rs_test_gguf_set_version (w, 2);
  rs_test_gguf_add_str (w, "general.architecture", "llama");
  g_autoptr (GError) error = NULL;
  g_autoptr (RsGguf) g = open_writer ("v2.gguf", w, &error);
  g_assert_no_error (error);
  g_assert_cmpint (rs_gguf_version (g), ==, 2);
}

/* A file with three tensors of different types and shapes. */
static RsTestGguf *
three_tensor_writer (void)
{
  RsTestGguf *w = rs_test_gguf_new ();
  rs_test_gguf_add_str (w, "general.architecture", "test");
  float a[6] = { 1, 2, 3, 4, 5, 6 };
  rs_test_gguf_add_tensor (w, "a", RS_TYPE_F32, 2, (int64_t[]) { 3, 2 }, a);
  uint16_t h[64];
  for (int i = 0; i < 64; i++)
    h[i] = 0x3c00; /* 1.0 in binary16 */
  rs_test_gguf_add_tensor (w, "b", RS_TYPE_F16, 4, (int64_t[]) { 4, 4, 2, 2 }, h);
  rs_test_gguf_add_tensor (w, "c", RS_TYPE_Q8_0, 1, (int64_t[]) { 64 }, NULL);
  return w;
}

static void
test_tensors (void)
{
  g_autoptr (RsTestGguf) w = three_tensor_writer ();
  g_autoptr (GError) error = NULL;
  g_autoptr (RsGguf) g = open_writer ("tensors.gguf", w, &error);
  g_assert_no_error (error);
  g_assert_cmpint (rs_gguf_n_tensors (g), ==, 3);

  const RsGgufTensor *a = rs_gguf_find_tensor (g, "a");
  g_assert_nonnull (a);
  g_assert_cmpint (a->type, ==, RS_TYPE_F32);
  g_assert_cmpint (a->n_dims, ==, 2);
  g_assert_cmpint (a->ne[0], ==, 3);
  g_assert_cmpint (a->ne[1], ==, 2);
  g_assert_cmpint (a->ne[2], ==, 1);
  g_assert_cmpint (a->n_elements, ==, 6);
  g_assert_cmpuint (a->nbytes, ==, 24);
  g_assert_cmpfloat (((const float *) a->data)[5], ==, 6.0f);
  g_assert_cmpuint ((uintptr_t) a->data % 32, ==, 0);

  const RsGgufTensor *b = rs_gguf_find_tensor (g, "b");
  g_assert_cmpint (b->n_elements, ==, 64);
  g_assert_cmpuint (b->nbytes, ==, 128);
  g_assert_cmpuint (((const uint16_t *) b->data)[63], ==, 0x3c00);
  g_assert_cmpuint (b->offset % 32, ==, 0);

  const RsGgufTensor *c = rs_gguf_find_tensor (g, "c");
  g_assert_cmpuint (c->nbytes, ==, 2 * 34);
  g_assert_null (rs_gguf_find_tensor (g, "d"));
}

static void
test_alignment_key (void)
{
  g_autoptr (RsTestGguf) w = rs_test_gguf_new ();
  rs_test_gguf_set_alignment (w, 64);
  rs_test_gguf_add_u32 (w, "general.alignment", 64);
  float x[3] = { 1, 2, 3 };
  rs_test_gguf_add_tensor (w, "x", RS_TYPE_F32, 1, (int64_t[]) { 3 }, x);
  rs_test_gguf_add_tensor (w, "y", RS_TYPE_F32, 1, (int64_t[]) { 3 }, x);
  g_autoptr (GError) error = NULL;
  g_autoptr (RsGguf) g = open_writer ("align64.gguf", w, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (rs_gguf_alignment (g), ==, 64);
  g_assert_cmpuint (rs_gguf_find_tensor (g, "y")->offset, ==, 64);
  g_assert_cmpfloat (((const float *) rs_gguf_find_tensor (g, "y")->data)[2], ==, 3.0f);

  g_autoptr (RsTestGguf) bad = rs_test_gguf_new ();
  rs_test_gguf_add_u32 (bad, "general.alignment", 24);
  RsGguf *g2 = open_writer ("align24.gguf", bad, &error);
  expect_error (g2, &error, RS_ERROR_FORMAT, "align24.gguf", "general.alignment 24", "power of two", NULL);
}

static void
test_split (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *first = NULL;
  const char *names[3] = { "w0", "w1", "w2" };
  for (int part = 0; part < 3; part++)
    {
      g_autoptr (RsTestGguf) w = rs_test_gguf_new ();
      rs_test_gguf_add_u16 (w, "split.no", part);
      rs_test_gguf_add_u16 (w, "split.count", 3);
      rs_test_gguf_add_i32 (w, "split.tensors.count", 3);
      if (part == 0)
        rs_test_gguf_add_str (w, "general.architecture", "test");
      float v[4] = { part, part, part, part + 0.5f };
      rs_test_gguf_add_tensor (w, names[part], RS_TYPE_F32, 1, (int64_t[]) { 4 }, v);
      g_autoptr (GBytes) bytes = rs_test_gguf_to_bytes (w);
      g_autofree char *name = g_strdup_printf ("model-%05d-of-00003.gguf", part + 1);
      g_autofree char *path = rs_test_write_temp (name, g_bytes_get_data (bytes, NULL),
                                                  g_bytes_get_size (bytes));
      if (part == 0)
        first = g_steal_pointer (&path);
    }

  g_autoptr (RsGguf) g = rs_gguf_open (first, &error);
  g_assert_no_error (error);
  g_assert_cmpint (rs_gguf_n_parts (g), ==, 3);
  g_assert_cmpint (rs_gguf_n_tensors (g), ==, 3);
  for (int part = 0; part < 3; part++)
    {
      const RsGgufTensor *t = rs_gguf_find_tensor (g, names[part]);
      g_assert_nonnull (t);
      g_assert_cmpint (t->part, ==, part);
      g_assert_cmpfloat (((const float *) t->data)[3], ==, part + 0.5f);
    }
  g_assert_nonnull (rs_gguf_find_kv (g, "general.architecture"));

  /* The second part on its own is refused with a pointer to the first. */
  g_autofree char *second = g_strdup (first);
  memcpy (strstr (second, "-00001-"), "-00002-", 7);
  RsGguf *g2 = rs_gguf_open (second, &error);
  expect_error (g2, &error, RS_ERROR_INVALID, "part 2 of a split model", "open the first part", NULL);
  g_clear_error (&error);

  /* A missing part names the part. */
  g_assert_cmpint (g_unlink (second), ==, 0);
  RsGguf *g3 = rs_gguf_open (first, &error);
  expect_error (g3, &error, RS_ERROR_IO, "part 2 of 3", "model-00002-of-00003.gguf", NULL);
}

/* ---- malformed files ---------------------------------------------------- */

static GBytes *
patched (GBytes *src, gsize at, const void *bytes, gsize n)
{
  gsize len;
  const uint8_t *p = g_bytes_get_data (src, &len);
  g_assert_cmpuint (at + n, <=, len);
  uint8_t *copy = g_memdup2 (p, len);
  memcpy (copy + at, bytes, n);
  return g_bytes_new_take (copy, len);
}

static void
test_bad_header (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (RsTestGguf) w = three_tensor_writer ();
  g_autoptr (GBytes) good = rs_test_gguf_to_bytes (w);

  g_autoptr (GBytes) magic = patched (good, 0, "GGUX", 4);
  expect_error (open_bytes ("magic.gguf", magic, &error), &error, RS_ERROR_FORMAT,
                "magic.gguf", "offset 0", "bad magic", NULL);
  g_clear_error (&error);

  uint32_t v = 1;
  g_autoptr (GBytes) v1 = patched (good, 4, &v, 4);
  expect_error (open_bytes ("v1.gguf", v1, &error), &error, RS_ERROR_UNSUPPORTED,
                "v1.gguf", "version 1", NULL);
  g_clear_error (&error);

  v = 9;
  g_autoptr (GBytes) v9 = patched (good, 4, &v, 4);
  expect_error (open_bytes ("v9.gguf", v9, &error), &error, RS_ERROR_FORMAT,
                "v9.gguf", "offset 4", "unsupported GGUF version 9", NULL);
  g_clear_error (&error);

  v = GUINT32_SWAP_LE_BE (3);
  g_autoptr (GBytes) be = patched (good, 4, &v, 4);
  expect_error (open_bytes ("be.gguf", be, &error), &error, RS_ERROR_FORMAT, "big-endian", NULL);
  g_clear_error (&error);

  g_autofree char *empty = rs_test_write_temp ("empty.gguf", "", 0);
  expect_error (rs_gguf_open (empty, &error), &error, RS_ERROR_FORMAT, "empty.gguf", "empty", NULL);
  g_clear_error (&error);

  expect_error (rs_gguf_open ("/nonexistent/x.gguf", &error), &error, RS_ERROR_IO,
                "/nonexistent/x.gguf", "cannot open", NULL);
  g_clear_error (&error);

  uint64_t huge = G_GUINT64_CONSTANT (1) << 60;
  g_autoptr (GBytes) kvs = patched (good, 16, &huge, 8);
  expect_error (open_bytes ("nkv.gguf", kvs, &error), &error, RS_ERROR_FORMAT,
                "offset 16", "metadata count 1152921504606846976", NULL);
  g_clear_error (&error);

  g_autoptr (GBytes) nt = patched (good, 8, &huge, 8);
  expect_error (open_bytes ("nt.gguf", nt, &error), &error, RS_ERROR_FORMAT,
                "offset 8", "tensor count", NULL);
}

/* Truncating the file anywhere must give an error, never a crash. */
static void
test_truncated_everywhere (void)
{
  g_autoptr (RsTestGguf) w = three_tensor_writer ();
  rs_test_gguf_add_arr_str (w, "z.strs", (const char *[]) { "x", "yy" }, 2);
  g_autoptr (GBytes) good = rs_test_gguf_to_bytes (w);
  gsize len;
  const uint8_t *p = g_bytes_get_data (good, &len);
  /* The padding after the last tensor's data is optional. */
  g_autoptr (GError) e0 = NULL;
  g_autoptr (RsGguf) g0 = open_bytes ("whole.gguf", good, &e0);
  g_assert_no_error (e0);
  gsize end = 0;
  for (int64_t i = 0; i < rs_gguf_n_tensors (g0); i++)
    end = MAX (end, rs_test_gguf_data_offset (w) + rs_gguf_tensor (g0, i)->offset
                      + rs_gguf_tensor (g0, i)->nbytes);
  g_assert_cmpuint (end, <=, len);
  for (gsize cut = 0; cut < end; cut++)
    {
      g_autoptr (GBytes) part = g_bytes_new (p, cut);
      g_autoptr (GError) error = NULL;
      RsGguf *g = open_bytes ("cut.gguf", part, &error);
      if (g != NULL)
        g_error ("truncated at %zu of %zu bytes but opened", cut, len);
      g_assert_true (error != NULL && error->domain == RS_ERROR);
      g_assert_nonnull (strstr (error->message, "cut.gguf"));
      /* Past the magic, the message says what is missing. */
      if (cut >= 4 && !strstr (error->message, "truncated") && !strstr (error->message, "larger than")
          && !strstr (error->message, "outside"))
        g_error ("cut at %zu: %s", cut, error->message);
    }
}

static void
test_bad_lengths (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (RsTestGguf) w = rs_test_gguf_new ();
  rs_test_gguf_add_str (w, "k", "value");
  g_autoptr (GBytes) good = rs_test_gguf_to_bytes (w);
  /* header 24 bytes, then key length at 24, key at 32, type at 33, string length at 37. */
  uint64_t huge = G_GUINT64_CONSTANT (0xffffffffffffff00);
  g_autoptr (GBytes) key = patched (good, 24, &huge, 8);
  expect_error (open_bytes ("keylen.gguf", key, &error), &error, RS_ERROR_FORMAT,
                "keylen.gguf", "offset 24", "metadata key", "larger than", NULL);
  g_clear_error (&error);
  g_autoptr (GBytes) str = patched (good, 37, &huge, 8);
  expect_error (open_bytes ("strlen.gguf", str, &error), &error, RS_ERROR_FORMAT,
                "offset 37", "length 18446744073709551360 of k", NULL);
  g_clear_error (&error);
  uint32_t type = 13;
  g_autoptr (GBytes) vt = patched (good, 33, &type, 4);
  expect_error (open_bytes ("vtype.gguf", vt, &error), &error, RS_ERROR_FORMAT,
                "offset 33", "unknown value type 13 for key 'k'", NULL);
  g_clear_error (&error);

  g_autoptr (RsTestGguf) wa = rs_test_gguf_new ();
  uint32_t xs[2] = { 1, 2 };
  rs_test_gguf_add_arr (wa, "arr", RS_GGUF_UINT32, xs, 2);
  g_autoptr (GBytes) ga = rs_test_gguf_to_bytes (wa);
  /* key at 24+8, type at 35, element type at 39, count at 43. */
  g_autoptr (GBytes) count = patched (ga, 43, &huge, 8);
  expect_error (open_bytes ("arrlen.gguf", count, &error), &error, RS_ERROR_FORMAT,
                "array 'arr' claims", NULL);
  g_clear_error (&error);
  uint32_t nested = RS_GGUF_ARRAY;
  g_autoptr (GBytes) nest = patched (ga, 39, &nested, 4);
  expect_error (open_bytes ("nested.gguf", nest, &error), &error, RS_ERROR_FORMAT,
                "array of arrays", NULL);
  g_clear_error (&error);

  g_autoptr (RsTestGguf) ws = rs_test_gguf_new ();
  rs_test_gguf_add_arr_str (ws, "strs", (const char *[]) { "a", "b" }, 2);
  g_autoptr (GBytes) gs = rs_test_gguf_to_bytes (ws);
  /* key "strs" at 32..36, type 36, elem type 40, count 44. */
  g_autoptr (GBytes) scount = patched (gs, 44, &huge, 8);
  expect_error (open_bytes ("strcount.gguf", scount, &error), &error, RS_ERROR_FORMAT,
                "array 'strs' claims", "strings", NULL);
}

static void
test_duplicates (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (RsTestGguf) w = rs_test_gguf_new ();
  rs_test_gguf_add_u32 (w, "dup", 1);
  rs_test_gguf_add_u32 (w, "dup", 2);
  expect_error (open_writer ("dupkey.gguf", w, &error), &error, RS_ERROR_FORMAT,
                "dupkey.gguf", "duplicate metadata key 'dup'", NULL);
  g_clear_error (&error);

  g_autoptr (RsTestGguf) wt = rs_test_gguf_new ();
  rs_test_gguf_add_tensor (wt, "t", RS_TYPE_F32, 1, (int64_t[]) { 4 }, NULL);
  rs_test_gguf_add_tensor (wt, "t", RS_TYPE_F32, 1, (int64_t[]) { 4 }, NULL);
  expect_error (open_writer ("duptensor.gguf", wt, &error), &error, RS_ERROR_FORMAT,
                "duplicate tensor name 't'", NULL);
}

static void
test_bad_tensor_info (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (RsTestGguf) w = rs_test_gguf_new ();
  rs_test_gguf_add_tensor (w, "weights", RS_TYPE_F32, 2, (int64_t[]) { 4, 2 }, NULL);
  g_autoptr (GBytes) good = rs_test_gguf_to_bytes (w);
  gsize info = rs_test_gguf_tensor_info_offset (w);
  /* name length 8, "weights" 7, n_dims 4, ne 2x8, type 4, offset 8 */
  gsize at_ndims = info + 15, at_ne0 = info + 19, at_ne1 = info + 27, at_type = info + 35;

  uint32_t five = 5, zero = 0;
  g_autoptr (GBytes) d5 = patched (good, at_ndims, &five, 4);
  expect_error (open_bytes ("ndims.gguf", d5, &error), &error, RS_ERROR_FORMAT,
                "tensor 'weights' has 5 dimensions", NULL);
  g_clear_error (&error);
  g_autoptr (GBytes) d0 = patched (good, at_ndims, &zero, 4);
  expect_error (open_bytes ("ndims0.gguf", d0, &error), &error, RS_ERROR_FORMAT,
                "has 0 dimensions", NULL);
  g_clear_error (&error);

  uint64_t z = 0;
  g_autoptr (GBytes) ne0 = patched (good, at_ne0, &z, 8);
  expect_error (open_bytes ("ne0.gguf", ne0, &error), &error, RS_ERROR_FORMAT,
                "dimension 0 has size 0", NULL);
  g_clear_error (&error);

  uint64_t big = G_GUINT64_CONSTANT (1) << 40;
  g_autoptr (GBytes) tmp = patched (good, at_ne0, &big, 8);
  g_autoptr (GBytes) ovf = patched (tmp, at_ne1, &big, 8);
  expect_error (open_bytes ("overflow.gguf", ovf, &error), &error, RS_ERROR_FORMAT,
                "element count overflows", NULL);
  g_clear_error (&error);

  uint32_t t = 77;
  g_autoptr (GBytes) ty = patched (good, at_type, &t, 4);
  expect_error (open_bytes ("type77.gguf", ty, &error), &error, RS_ERROR_FORMAT,
                "type77.gguf", "unknown tensor type 77", NULL);
  g_clear_error (&error);

  t = RS_TYPE_IQ2_XXS;
  g_autoptr (GBytes) iq = patched (good, at_type, &t, 4);
  expect_error (open_bytes ("iq2.gguf", iq, &error), &error, RS_ERROR_UNSUPPORTED,
                "unsupported tensor type IQ2_XXS in tensor 'weights'", NULL);
  g_clear_error (&error);

  /* Row of 4 is not a whole Q8_0 block. */
  t = RS_TYPE_Q8_0;
  g_autoptr (GBytes) q8 = patched (good, at_type, &t, 4);
  expect_error (open_bytes ("rows.gguf", q8, &error), &error, RS_ERROR_FORMAT,
                "tensor 'weights'", "not a multiple", NULL);
  g_clear_error (&error);

  /* A tensor bigger than the data section. */
  uint64_t ne = 1000;
  g_autoptr (GBytes) oob = patched (good, at_ne1, &ne, 8);
  expect_error (open_bytes ("oob.gguf", oob, &error), &error, RS_ERROR_FORMAT,
                "oob.gguf", "tensor 'weights'", "outside", NULL);
}

static void
test_bad_offsets (void)
{
  g_autoptr (GError) error = NULL;
  {
    g_autoptr (RsTestGguf) w = three_tensor_writer ();
    rs_test_gguf_set_tensor_offset (w, 1, 8);
    expect_error (open_writer ("misaligned.gguf", w, &error), &error, RS_ERROR_FORMAT,
                  "tensor 'b'", "offset 8 is not a multiple of the alignment 32", NULL);
    g_clear_error (&error);
  }
  {
    g_autoptr (RsTestGguf) w = three_tensor_writer ();
    rs_test_gguf_set_tensor_offset (w, 2, 64); /* inside b's 128 bytes */
    expect_error (open_writer ("overlap.gguf", w, &error), &error, RS_ERROR_FORMAT,
                  "overlaps tensor", NULL);
    g_clear_error (&error);
  }
  {
    g_autoptr (RsTestGguf) w = three_tensor_writer ();
    rs_test_gguf_set_tensor_offset (w, 0, G_GUINT64_CONSTANT (0xffffffffffffffe0));
    expect_error (open_writer ("pastend.gguf", w, &error), &error, RS_ERROR_FORMAT,
                  "tensor 'a'", "outside", NULL);
  }
}

/* Random byte flips must never crash the reader. */
static void
test_fuzz_flips (void)
{
  g_autoptr (RsTestGguf) w = three_tensor_writer ();
  rs_test_gguf_add_arr_str (w, "tok", (const char *[]) { "a", "bb", "ccc" }, 3);
  rs_test_gguf_add_f32 (w, "f", 2.0f);
  g_autoptr (GBytes) good = rs_test_gguf_to_bytes (w);
  gsize len;
  const uint8_t *p = g_bytes_get_data (good, &len);
  GRand *rand = g_rand_new_with_seed (1234);
  int opened = 0;
  for (int iter = 0; iter < 2000; iter++)
    {
      g_autofree uint8_t *copy = g_memdup2 (p, len);
      int flips = g_rand_int_range (rand, 1, 4);
      for (int f = 0; f < flips; f++)
        copy[g_rand_int_range (rand, 0, (gint32) rs_test_gguf_data_offset (w))] = g_rand_int (rand);
      g_autoptr (GBytes) b = g_bytes_new_take (g_steal_pointer (&copy), len);
      g_autoptr (GError) error = NULL;
      RsGguf *g = open_bytes ("flip.gguf", b, &error);
      if (g != NULL)
        {
          opened++;
          rs_gguf_free (g);
        }
      else
        g_assert_nonnull (strstr (error->message, "flip.gguf"));
    }
  g_rand_free (rand);
  g_test_message ("%d of 2000 mutated files still opened", opened);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/gguf/metadata-roundtrip", test_metadata_roundtrip);
  g_test_add_func ("/gguf/version2", test_version2);
  g_test_add_func ("/gguf/tensors", test_tensors);
  g_test_add_func ("/gguf/alignment-key", test_alignment_key);
  g_test_add_func ("/gguf/split", test_split);
  g_test_add_func ("/gguf/bad/header", test_bad_header);
  g_test_add_func ("/gguf/bad/truncated-everywhere", test_truncated_everywhere);
  g_test_add_func ("/gguf/bad/lengths", test_bad_lengths);
  g_test_add_func ("/gguf/bad/duplicates", test_duplicates);
  g_test_add_func ("/gguf/bad/tensor-info", test_bad_tensor_info);
  g_test_add_func ("/gguf/bad/offsets", test_bad_offsets);
  g_test_add_func ("/gguf/bad/random-flips", test_fuzz_flips);
  return g_test_run ();
}
