/* rs-cpu.c: run-time CPU feature detection.
 *
 * A feature counts only when the CPU reports it *and* the OS saves the
 * register state it needs (XCR0 via xgetbv): a CPU with AVX-512 under an
 * OS or hypervisor that does not enable ZMM state must not run AVX-512.
 *
 * ROUTESCOPE_SIMD in the environment caps what we report:
 *   "scalar" - nothing (exercises the plain C fallbacks),
 *   "avx2"   - AVX2/FMA/F16C only, no AVX-512.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "rs-cpu.h"

#include <glib.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t
read_xcr0 (void)
{
  uint32_t lo, hi;
  /* xgetbv with ecx = 0 reads XCR0; spelled as asm so this file needs no
   * -mxsave. Only called after CPUID said OSXSAVE is set. */
  __asm__ volatile ("xgetbv" : "=a" (lo), "=d" (hi) : "c" (0));
  return ((uint64_t) hi << 32) | lo;
}

static void
detect_x86 (RsCpuFeatures *f)
{
  unsigned a, b, c, d;

  if (!__get_cpuid (1, &a, &b, &c, &d))
    return;
  const bool osxsave = (c >> 27) & 1;
  const bool avx     = (c >> 28) & 1;
  const bool fma     = (c >> 12) & 1;
  const bool f16c    = (c >> 29) & 1;
  if (!osxsave || !avx)
    return;

  const uint64_t xcr0 = read_xcr0 ();
  /* bit 1 SSE (XMM), bit 2 AVX (upper YMM) */
  const bool os_avx = (xcr0 & 0x6) == 0x6;
  /* bits 5-7: opmask, upper ZMM0-15, ZMM16-31 */
  const bool os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0;
  if (!os_avx)
    return;

  unsigned max_leaf = __get_cpuid_max (0, NULL);
  if (max_leaf < 7)
    return;
  __get_cpuid_count (7, 0, &a, &b, &c, &d);
  const bool avx2     = (b >> 5) & 1;
  const bool avx512f  = (b >> 16) & 1;
  const bool avx512bw = (b >> 30) & 1;
  const bool avx512vl = (b >> 31) & 1;
  const bool vnni     = (c >> 11) & 1;
  const unsigned max_sub7 = a;

  f->avx2 = avx2;
  f->fma  = fma;
  f->f16c = f16c;
  if (os_avx512 && avx512f) {
    f->avx512f    = true;
    f->avx512bw   = avx512bw;
    f->avx512vl   = avx512vl;
    f->avx512vnni = vnni;
    if (max_sub7 >= 1) {
      __get_cpuid_count (7, 1, &a, &b, &c, &d);
      f->avx512bf16 = (a >> 5) & 1;
    }
  }
}
#endif

static RsCpuFeatures features;

const RsCpuFeatures *
rs_cpu_features (void)
{
  static gsize done = 0;

  if (g_once_init_enter (&done)) {
    RsCpuFeatures f;
    memset (&f, 0, sizeof f);
#if defined(__x86_64__) || defined(__i386__)
    detect_x86 (&f);
#endif
    const char *cap = g_getenv ("ROUTESCOPE_SIMD");
    if (cap && g_ascii_strcasecmp (cap, "scalar") == 0) {
      memset (&f, 0, sizeof f);
    } else if (cap && g_ascii_strcasecmp (cap, "avx2") == 0) {
      f.avx512f = f.avx512bw = f.avx512vl = f.avx512vnni = f.avx512bf16 = false;
    }
    features = f;
    g_once_init_leave (&done, 1);
  }
  return &features;
}
