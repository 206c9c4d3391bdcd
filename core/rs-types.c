/* rs-types.c: the table of GGUF tensor types.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "rs-types.h"

#include "rs-quant-block.h"

/* Indexed by type id. Ids the format never assigned (or removed: 4, 5,
 * 31-33, 36-38) stay zero, i.e. known == false. Block sizes and byte sizes
 * are kept for every defined type, even ones we cannot compute with, so
 * the GGUF reader can size (and skip or reject by name) their tensors. */
static const RsTypeTraits type_traits[RS_TYPE_COUNT] = {
  [RS_TYPE_F32]     = { "F32",     1,        4,                      true, true  },
  [RS_TYPE_F16]     = { "F16",     1,        2,                      true, true  },
  [RS_TYPE_Q4_0]    = { "Q4_0",    RS_QK4_0, sizeof (RsBlockQ4_0),   true, true  },
  [RS_TYPE_Q4_1]    = { "Q4_1",    RS_QK4_1, sizeof (RsBlockQ4_1),   true, true  },
  [RS_TYPE_Q5_0]    = { "Q5_0",    RS_QK5_0, sizeof (RsBlockQ5_0),   true, true  },
  [RS_TYPE_Q5_1]    = { "Q5_1",    RS_QK5_1, sizeof (RsBlockQ5_1),   true, true  },
  [RS_TYPE_Q8_0]    = { "Q8_0",    RS_QK8_0, sizeof (RsBlockQ8_0),   true, true  },
  /* Q8_1 and Q8_K are activation formats: not supported as weights. */
  [RS_TYPE_Q8_1]    = { "Q8_1",    RS_QK8_1, sizeof (RsBlockQ8_1),   true, false },
  [RS_TYPE_Q2_K]    = { "Q2_K",    RS_QK_K,  sizeof (RsBlockQ2K),    true, true  },
  [RS_TYPE_Q3_K]    = { "Q3_K",    RS_QK_K,  sizeof (RsBlockQ3K),    true, true  },
  [RS_TYPE_Q4_K]    = { "Q4_K",    RS_QK_K,  sizeof (RsBlockQ4K),    true, true  },
  [RS_TYPE_Q5_K]    = { "Q5_K",    RS_QK_K,  sizeof (RsBlockQ5K),    true, true  },
  [RS_TYPE_Q6_K]    = { "Q6_K",    RS_QK_K,  sizeof (RsBlockQ6K),    true, true  },
  [RS_TYPE_Q8_K]    = { "Q8_K",    RS_QK_K,  sizeof (RsBlockQ8K),    true, false },
  [RS_TYPE_IQ2_XXS] = { "IQ2_XXS", RS_QK_K,  sizeof (RsBlockIQ2XXS), true, false },
  [RS_TYPE_IQ2_XS]  = { "IQ2_XS",  RS_QK_K,  sizeof (RsBlockIQ2XS),  true, false },
  [RS_TYPE_IQ3_XXS] = { "IQ3_XXS", RS_QK_K,  sizeof (RsBlockIQ3XXS), true, false },
  [RS_TYPE_IQ1_S]   = { "IQ1_S",   RS_QK_K,  sizeof (RsBlockIQ1S),   true, false },
  [RS_TYPE_IQ4_NL]  = { "IQ4_NL",  RS_QK4_NL, sizeof (RsBlockIQ4NL), true, true  },
  [RS_TYPE_IQ3_S]   = { "IQ3_S",   RS_QK_K,  sizeof (RsBlockIQ3S),   true, false },
  [RS_TYPE_IQ2_S]   = { "IQ2_S",   RS_QK_K,  sizeof (RsBlockIQ2S),   true, false },
  [RS_TYPE_IQ4_XS]  = { "IQ4_XS",  RS_QK_K,  sizeof (RsBlockIQ4XS),  true, true  },
  [RS_TYPE_I8]      = { "I8",      1,        1,                      true, false },
  [RS_TYPE_I16]     = { "I16",     1,        2,                      true, false },
  [RS_TYPE_I32]     = { "I32",     1,        4,                      true, false },
  [RS_TYPE_I64]     = { "I64",     1,        8,                      true, false },
  [RS_TYPE_F64]     = { "F64",     1,        8,                      true, false },
  [RS_TYPE_IQ1_M]   = { "IQ1_M",   RS_QK_K,  sizeof (RsBlockIQ1M),   true, false },
  [RS_TYPE_BF16]    = { "BF16",    1,        2,                      true, true  },
  [RS_TYPE_TQ1_0]   = { "TQ1_0",   RS_QK_K,  sizeof (RsBlockTQ1_0),  true, false },
  [RS_TYPE_TQ2_0]   = { "TQ2_0",   RS_QK_K,  sizeof (RsBlockTQ2_0),  true, false },
  [RS_TYPE_MXFP4]   = { "MXFP4",   RS_QK_MXFP4, sizeof (RsBlockMXFP4), true, true },
};

static const RsTypeTraits unknown_traits = { NULL, 0, 0, false, false };

const RsTypeTraits *
rs_type_traits (int type)
{
  if (type < 0 || type >= RS_TYPE_COUNT || !type_traits[type].known)
    return &unknown_traits;
  return &type_traits[type];
}

const char *
rs_type_name (int type)
{
  const RsTypeTraits *t = rs_type_traits (type);
  return t->name ? t->name : "unknown";
}

size_t
rs_type_row_size (RsType type, int64_t n)
{
  const RsTypeTraits *t = rs_type_traits ((int) type);
  if (!t->known || n < 0 || n % t->block_size != 0)
    return 0;
  return (size_t) (n / t->block_size) * t->type_size;
}
