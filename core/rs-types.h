/* rs-types.h: tensor element types as GGUF numbers them.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The numeric values are the on-disk GGUF/ggml type ids; do not renumber. */
typedef enum {
  RS_TYPE_F32     = 0,
  RS_TYPE_F16     = 1,
  RS_TYPE_Q4_0    = 2,
  RS_TYPE_Q4_1    = 3,
  /* 4 and 5 were Q4_2 and Q4_3, removed from the format */
  RS_TYPE_Q5_0    = 6,
  RS_TYPE_Q5_1    = 7,
  RS_TYPE_Q8_0    = 8,
  RS_TYPE_Q8_1    = 9,
  RS_TYPE_Q2_K    = 10,
  RS_TYPE_Q3_K    = 11,
  RS_TYPE_Q4_K    = 12,
  RS_TYPE_Q5_K    = 13,
  RS_TYPE_Q6_K    = 14,
  RS_TYPE_Q8_K    = 15,
  RS_TYPE_IQ2_XXS = 16,
  RS_TYPE_IQ2_XS  = 17,
  RS_TYPE_IQ3_XXS = 18,
  RS_TYPE_IQ1_S   = 19,
  RS_TYPE_IQ4_NL  = 20,
  RS_TYPE_IQ3_S   = 21,
  RS_TYPE_IQ2_S   = 22,
  RS_TYPE_IQ4_XS  = 23,
  RS_TYPE_I8      = 24,
  RS_TYPE_I16     = 25,
  RS_TYPE_I32     = 26,
  RS_TYPE_I64     = 27,
  RS_TYPE_F64     = 28,
  RS_TYPE_IQ1_M   = 29,
  RS_TYPE_BF16    = 30,
  /* 31-33 were Q4_0_4_4, Q4_0_4_8, Q4_0_8_8 (repacked, removed) */
  RS_TYPE_TQ1_0   = 34,
  RS_TYPE_TQ2_0   = 35,
  /* 36-38 were IQ4_NL_4_4, IQ4_NL_4_8, IQ4_NL_8_8 (removed) */
  RS_TYPE_MXFP4   = 39,
  RS_TYPE_COUNT   = 40,
} RsType;

typedef struct {
  const char *name;       /* "Q4_K"; NULL for ids that name no type */
  int64_t     block_size; /* elements per block (1 for plain types) */
  size_t      type_size;  /* bytes per block */
  bool        known;      /* a type id the format defines, even if we cannot compute with it */
  bool        supported;  /* we can dequantise it and take dot products with it */
} RsTypeTraits;

/* Traits of @type; for an id outside the enum returns a record with
 * known == false and name == NULL. Never NULL. */
const RsTypeTraits *rs_type_traits (int type);

/* "Q4_K"; "unknown" for ids that name no type. */
const char *rs_type_name (int type);

/* Bytes of a row of @n elements, or 0 when @n is not a multiple of the block size. */
size_t rs_type_row_size (RsType type, int64_t n);
