/* tests/cpu_levels.h — the CPU levels (core/cpu.h) a test runs its fast
 * paths at: every level this CPU and HQ_CPU allow, highest first, ending
 * with scalar. Prints which levels were exercised and which are not
 * available, so a run on an AVX2-only machine says what it did not test. */
#ifndef HQ_TEST_CPU_LEVELS_H
#define HQ_TEST_CPU_LEVELS_H
#include <stdio.h>
#include "../core/cpu.h"

/* fills out[] (HQ_CPU_LEVEL_COUNT entries) and returns how many */
static int test_cpu_levels(hq_cpu_level *out, const char *who) {
    hq_cpu_level prev = hq_cpu_set_max(HQ_CPU_AVX512);
    hq_cpu_level top = hq_cpu_level_now();
    hq_cpu_set_max(prev);
    int n = 0;
    for (int l = (int)top; l >= 0; l--) out[n++] = (hq_cpu_level)l;
    char line[160];
    int o = snprintf(line, sizeof line, "%s: cpu levels exercised:", who);
    for (int i = 0; i < n; i++) o += snprintf(line + o, sizeof line - (size_t)o, " %s", hq_cpu_level_name(out[i]));
    o += snprintf(line + o, sizeof line - (size_t)o, "; not available:");
    if (top == HQ_CPU_AVX512) snprintf(line + o, sizeof line - (size_t)o, " none");
    for (int l = (int)top + 1; l < HQ_CPU_LEVEL_COUNT; l++)
        o += snprintf(line + o, sizeof line - (size_t)o, " %s", hq_cpu_level_name((hq_cpu_level)l));
    const hq_cpu_info *ci = hq_cpu_info_get();
    if (ci->env_max < ci->hw) printf("%s (capped by %s)\n", line, ci->env_alias ? ci->env_alias : "HQ_CPU");
    else printf("%s\n", line);
    return n;
}
#endif
