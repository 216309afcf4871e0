/* fuzz/fuzz_cpu.h — force-included into the clang (libFuzzer) build only:
 * clang 14 rejects __builtin_cpu_supports("f16c"), which gcc accepts, so the
 * fuzz build routes every CPU-feature query through a cpuid-based function. */
#ifndef HQ_FUZZ_CPU_H
#define HQ_FUZZ_CPU_H
int hq_fuzz_cpu_supports(const char *feature);
#define __builtin_cpu_supports(x) hq_fuzz_cpu_supports(x)
#endif
