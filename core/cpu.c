/* core/cpu.c — cpuid + xgetbv detection, the HQ_CPU switch (core/cpu.h).
 * A level counts only when the OS saves its registers (XCR0), as a kernel
 * that set CPUID bits but not XCR0 would fault on the first vector op. */
#include "cpu.h" // defines: hq_cpu_level, hq_cpu_info

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h> // defines: __get_cpuid_count
#define CPU_X86 1
#else
#define CPU_X86 0
#endif
#if CPU_X86 && defined(__linux__)
#include <sys/syscall.h> // defines: SYS_arch_prctl
#include <unistd.h>      // defines: syscall
#endif

static hq_cpu_info g_info;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_cap = HQ_CPU_AVX512; /* hq_cpu_set_max; atomic */

static const char *const k_names[HQ_CPU_LEVEL_COUNT] = {"scalar", "avx2", "avx512"};

const char *hq_cpu_level_name(hq_cpu_level l) {
    return (unsigned)l < HQ_CPU_LEVEL_COUNT ? k_names[l] : "?";
}

bool hq_cpu_level_parse(const char *s, hq_cpu_level *out) {
    for (int i = 0; i < HQ_CPU_LEVEL_COUNT; i++)
        if (s && !strcmp(s, k_names[i])) {
            *out = (hq_cpu_level)i;
            return true;
        }
    return false;
}

#if CPU_X86
static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

/* Linux keeps AMX tile data off until a process asks (XFD); without the
 * permission the first tile load faults. 0x1023 = ARCH_REQ_XCOMP_PERM,
 * 18 = XFEATURE_XTILEDATA (arch/x86/include/uapi/asm/prctl.h). */
static bool amx_request_permission(void) {
#if defined(__linux__) && defined(SYS_arch_prctl)
    return syscall(SYS_arch_prctl, 0x1023, 18) == 0;
#else
    return false;
#endif
}

static void detect_hw(hq_cpu_info *ci) {
    unsigned a, b, c, d;
    ci->hw = HQ_CPU_SCALAR;
    ci->hw_features = 0;
    if (!__get_cpuid_count(1, 0, &a, &b, &c, &d)) return;
    const bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12), f16c = c & (1u << 29);
    if (!osxsave || !avx) return;
    const uint64_t xcr0 = xgetbv0();
    if ((xcr0 & 0x6) != 0x6) return; /* XMM + YMM state */
    unsigned a7 = 0, b7 = 0, c7 = 0, d7 = 0, a71 = 0, b71, c71, d71;
    if (!__get_cpuid_count(7, 0, &a7, &b7, &c7, &d7)) return;
    if (a7 >= 1) __get_cpuid_count(7, 1, &a71, &b71, &c71, &d71);
    const bool avx2 = b7 & (1u << 5);
    if (!(avx2 && fma && f16c)) return;
    ci->hw = HQ_CPU_AVX2;
    if (a71 & (1u << 4)) ci->hw_features |= HQ_CPU_F_AVXVNNI;
    const bool f512 = b7 & (1u << 16), bw = b7 & (1u << 30), vl = b7 & (1u << 31);
    if (!(f512 && bw && vl) || (xcr0 & 0xe0) != 0xe0) return; /* opmask + ZMM state */
    ci->hw = HQ_CPU_AVX512;
    if (c7 & (1u << 11)) ci->hw_features |= HQ_CPU_F_AVX512VNNI;
    if (a71 & (1u << 5)) ci->hw_features |= HQ_CPU_F_AVX512BF16;
    const bool tile = d7 & (1u << 24);
    if (tile && (xcr0 & 0x60000) == 0x60000 && amx_request_permission()) {
        if (d7 & (1u << 25)) ci->hw_features |= HQ_CPU_F_AMX_INT8;
        if (d7 & (1u << 22)) ci->hw_features |= HQ_CPU_F_AMX_BF16;
    }
}
#else
static void detect_hw(hq_cpu_info *ci) {
    ci->hw = HQ_CPU_SCALAR;
    ci->hw_features = 0;
}
#endif

static bool env_set(const char *name) {
    const char *e = getenv(name);
    return e && *e && strcmp(e, "0") != 0;
}

static void detect(void) {
    hq_cpu_info *ci = &g_info;
    detect_hw(ci);
    ci->env_max = HQ_CPU_AVX512;
    const char *e = getenv("HQ_CPU");
    if (e && *e) {
        if (!hq_cpu_level_parse(e, &ci->env_max)) {
            ci->env_max = HQ_CPU_SCALAR; /* refuse to guess upward */
            ci->env_error = "HQ_CPU must be scalar, avx2 or avx512";
        }
    } else if (env_set("HQ_NO_SIMD")) {
        ci->env_max = HQ_CPU_SCALAR;
        ci->env_alias = "HQ_NO_SIMD";
    } else if (getenv("HQ_NO_AVX2")) { /* the runtime read it as set-at-all */
        ci->env_max = HQ_CPU_SCALAR;
        ci->env_alias = "HQ_NO_AVX2";
    }
}

const hq_cpu_info *hq_cpu_info_get(void) {
    pthread_once(&g_once, detect);
    return &g_info;
}

hq_cpu_level hq_cpu_level_now(void) {
    const hq_cpu_info *ci = hq_cpu_info_get();
    int l = (int)ci->hw;
    if ((int)ci->env_max < l) l = (int)ci->env_max;
    int cap = __atomic_load_n(&g_cap, __ATOMIC_RELAXED);
    return (hq_cpu_level)(cap < l ? cap : l);
}

hq_cpu_level hq_cpu_set_max(hq_cpu_level l) {
    return (hq_cpu_level)__atomic_exchange_n(&g_cap, (int)l, __ATOMIC_RELAXED);
}

bool hq_cpu_has_feature(uint32_t f) {
    const hq_cpu_info *ci = hq_cpu_info_get();
    if ((ci->hw_features & f) != f) return false;
    hq_cpu_level need = (f & HQ_CPU_F_AVXVNNI) && !(f & ~HQ_CPU_F_AVXVNNI) ? HQ_CPU_AVX2 : HQ_CPU_AVX512;
    return hq_cpu_has(need);
}

void hq_cpu_describe(char *buf, size_t len) {
    const hq_cpu_info *ci = hq_cpu_info_get();
    static const char *const fnames[] = {"avx512vnni", "avx512bf16", "avxvnni", "amx-int8", "amx-bf16"};
    char feats[96] = "";
    size_t o = 0;
    for (int i = 0; i < 5; i++)
        if (ci->hw_features & (1u << i))
            o += (size_t)snprintf(feats + o, sizeof feats - o, "%s%s", o ? " " : "", fnames[i]);
    snprintf(buf, len, "cpu: %s (hw %s%s%s)%s%s", hq_cpu_level_name(hq_cpu_level_now()), hq_cpu_level_name(ci->hw),
             o ? "; " : "", feats, ci->env_max < ci->hw ? " capped by " : "",
             ci->env_max < ci->hw ? (ci->env_alias ? ci->env_alias : "HQ_CPU") : "");
}

hq_status hq_cpu_check_env(char *err) {
    const hq_cpu_info *ci = hq_cpu_info_get();
    if (ci->env_error) return hq_fail(err, HQ_ERR_ARG, "%s (got '%s')", ci->env_error, getenv("HQ_CPU"));
    return HQ_OK;
}
