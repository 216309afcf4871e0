/* fuzz/fuzz_cpu.c — see fuzz_cpu.h (linked into the clang fuzz build only). */
#include "fuzz_cpu.h"
#undef __builtin_cpu_supports

#include <cpuid.h>
#include <string.h>

int hq_fuzz_cpu_supports(const char *f) {
    unsigned a, b, c, d;
    if (!strcmp(f, "f16c")) return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
    if (!strcmp(f, "avx2")) return __builtin_cpu_supports("avx2");
    if (!strcmp(f, "fma")) return __builtin_cpu_supports("fma");
    if (!strcmp(f, "avx512f")) return __builtin_cpu_supports("avx512f");
    return 0;
}
