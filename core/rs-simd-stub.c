/* Placeholder so the SIMD library is never empty. SPDX-License-Identifier: GPL-3.0-or-later */
int rs_simd_stub_unused;
