/* rs-test-gguf-writer.h: builds GGUF files from scratch for the tests.
 *
 * Tests make their own models and malformed files with it: values are
 * added in order, tensors are laid out aligned one after the other, and
 * the result can be patched byte by byte before writing.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "rs-gguf.h"
#include "rs-types.h"

typedef struct _RsTestGguf RsTestGguf;

RsTestGguf *rs_test_gguf_new  (void); /* version 3, alignment 32 */
void        rs_test_gguf_free (RsTestGguf *w);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RsTestGguf, rs_test_gguf_free)

void rs_test_gguf_set_version   (RsTestGguf *w, uint32_t version);
/* Alignment used to place tensor data; does not add general.alignment. */
void rs_test_gguf_set_alignment (RsTestGguf *w, uint32_t alignment);

void rs_test_gguf_add_u8   (RsTestGguf *w, const char *key, uint8_t v);
void rs_test_gguf_add_i8   (RsTestGguf *w, const char *key, int8_t v);
void rs_test_gguf_add_u16  (RsTestGguf *w, const char *key, uint16_t v);
void rs_test_gguf_add_i16  (RsTestGguf *w, const char *key, int16_t v);
void rs_test_gguf_add_u32  (RsTestGguf *w, const char *key, uint32_t v);
void rs_test_gguf_add_i32  (RsTestGguf *w, const char *key, int32_t v);
void rs_test_gguf_add_u64  (RsTestGguf *w, const char *key, uint64_t v);
void rs_test_gguf_add_i64  (RsTestGguf *w, const char *key, int64_t v);
void rs_test_gguf_add_f32  (RsTestGguf *w, const char *key, float v);
void rs_test_gguf_add_f64  (RsTestGguf *w, const char *key, double v);
void rs_test_gguf_add_bool (RsTestGguf *w, const char *key, gboolean v);
void rs_test_gguf_add_str  (RsTestGguf *w, const char *key, const char *v);
/* Numeric array: @n elements of @type, packed as in the file. */
void rs_test_gguf_add_arr  (RsTestGguf *w, const char *key, RsGgufValueType type,
                            const void *data, uint64_t n);
void rs_test_gguf_add_arr_str (RsTestGguf *w, const char *key,
                               const char *const *strs, uint64_t n);

/* Raw tensor: @data holds rs_type_row_size(type, ne[0]) * rows bytes
 * (may be NULL: zero bytes). Returns the tensor's index. */
int  rs_test_gguf_add_tensor (RsTestGguf *w, const char *name, RsType type,
                              int n_dims, const int64_t *ne, const void *data);
/* Tensor from floats, stored as @type (quantised with rs_quantize_row). */
int  rs_test_gguf_add_tensor_f32 (RsTestGguf *w, const char *name, RsType type,
                                  int n_dims, const int64_t *ne, const float *data);
/* Overrides the offset written for tensor @index (for malformed files). */
void rs_test_gguf_set_tensor_offset (RsTestGguf *w, int index, uint64_t offset);

/* The whole file. */
GBytes  *rs_test_gguf_to_bytes (RsTestGguf *w);
/* Byte offset where the tensor-info table starts / the data section starts
 * in rs_test_gguf_to_bytes' output. */
uint64_t rs_test_gguf_tensor_info_offset (RsTestGguf *w);
uint64_t rs_test_gguf_data_offset        (RsTestGguf *w);
gboolean rs_test_gguf_write (RsTestGguf *w, const char *path, GError **error);

/* Writes @bytes to a fresh file in the test's temporary directory and
 * returns its path (free with g_free). */
char *rs_test_write_temp (const char *name, const void *bytes, gsize len);
