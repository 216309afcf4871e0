/* core/cpu.h — the one CPU-feature detector and the one switch that caps it.
 *
 * Levels (each implies the ones below):
 *   scalar  plain C, no intrinsics
 *   avx2    AVX2 + FMA + F16C (and the OS saving YMM state)
 *   avx512  AVX-512 F + BW + VL (and the OS saving ZMM state)
 * Feature bits beyond the level, reported only when their level is allowed:
 *   AVX512-VNNI, AVX512-BF16 (need avx512), AVX-VNNI (needs avx2),
 *   AMX-INT8 / AMX-BF16 (need avx512; on Linux the tile-data permission is
 *   requested with arch_prctl(ARCH_REQ_XCOMP_PERM) and the bits are cleared
 *   when the kernel refuses).
 *
 * The switch: HQ_CPU=scalar|avx2|avx512 names the highest level any kernel
 * may use (lower than the CPU has: fine; higher: capped at what it has).
 * Deprecated aliases, still honoured: HQ_NO_SIMD=1 and HQ_NO_AVX2 (set to
 * anything) both mean HQ_CPU=scalar (before, each disabled only part of the
 * fast paths). Kernels are compiled with target attributes and chosen at
 * run time through hq_cpu_has(); nothing depends on -march.
 *
 * Detection runs once (thread-safe); hq_cpu_set_max() lowers the cap at run
 * time for tests that compare a fast path with its scalar twin. */
#ifndef HQ_CPU_H
#define HQ_CPU_H
#include <stdbool.h>
#include <stdint.h>
#include "hq.h"

typedef enum { HQ_CPU_SCALAR = 0, HQ_CPU_AVX2 = 1, HQ_CPU_AVX512 = 2, HQ_CPU_LEVEL_COUNT } hq_cpu_level;

enum {
    HQ_CPU_F_AVX512VNNI = 1u << 0,
    HQ_CPU_F_AVX512BF16 = 1u << 1,
    HQ_CPU_F_AVXVNNI = 1u << 2,
    HQ_CPU_F_AMX_INT8 = 1u << 3,
    HQ_CPU_F_AMX_BF16 = 1u << 4,
};

typedef struct {
    hq_cpu_level hw;        /* what the CPU and OS support */
    hq_cpu_level env_max;   /* HQ_CPU (or an alias); HQ_CPU_AVX512 when unset */
    uint32_t hw_features;   /* HQ_CPU_F_* the CPU supports (AMX: and the kernel permits) */
    const char *env_error;  /* a bad HQ_CPU value (then treated as scalar), else NULL */
    const char *env_alias;  /* "HQ_NO_SIMD" / "HQ_NO_AVX2" when a deprecated alias set the cap */
} hq_cpu_info;

const hq_cpu_info *hq_cpu_info_get(void);
/* the level kernels use: min(hw, HQ_CPU, hq_cpu_set_max) */
hq_cpu_level hq_cpu_level_now(void);
static inline bool hq_cpu_has(hq_cpu_level l) { return hq_cpu_level_now() >= l; }
/* a feature bit, when the CPU has it and its level is allowed */
bool hq_cpu_has_feature(uint32_t f);
/* lowers (or restores) the run-time cap; returns the previous cap */
hq_cpu_level hq_cpu_set_max(hq_cpu_level l);

const char *hq_cpu_level_name(hq_cpu_level l);
/* "scalar" / "avx2" / "avx512" -> level; false for anything else */
bool hq_cpu_level_parse(const char *s, hq_cpu_level *out);
/* one line: "cpu: avx512 (hw avx512; vnni512 bf16) HQ_CPU=avx2" */
void hq_cpu_describe(char *buf, size_t len);
/* for main(): HQ_ERR_ARG with a message when HQ_CPU is malformed */
hq_status hq_cpu_check_env(char *err);
#endif
