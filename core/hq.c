/* core/hq.c — see hq.h */
#include "hq.h" // defines: hq_fail, hq_malloc..., hq_progress (files: core/io.c)

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int hq_quiet = 0;

hq_status hq_fail(char *err, hq_status st, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, HQ_ERR_LEN, fmt, ap);
        va_end(ap);
        /* one line: replace embedded newlines */
        for (char *p = err; *p; p++)
            if (*p == '\n' || *p == '\r') *p = ' ';
    }
    return st;
}

const char *hq_status_name(hq_status st) {
    switch (st) {
    case HQ_OK: return "ok";
    case HQ_ERR_IO: return "I/O error";
    case HQ_ERR_FORMAT: return "malformed input";
    case HQ_ERR_UNSUPPORTED: return "unsupported";
    case HQ_ERR_NOMEM: return "out of memory";
    case HQ_ERR_ARG: return "bad argument";
    case HQ_ERR_LIMIT: return "limit exceeded";
    case HQ_ERR_MISMATCH: return "mismatch";
    case HQ_ERR_INTERNAL: return "internal error";
    }
    return "unknown";
}

/* ---------------- allocation with fault injection ---------------- */

static int64_t g_alloc_count = 0;
static int64_t g_alloc_fail_at = -1; /* -1: not yet read from env */

void hq_alloc_fail_at(int64_t n) { g_alloc_fail_at = n; g_alloc_count = 0; }
int64_t hq_alloc_count(void) { return g_alloc_count; }

static bool alloc_should_fail(void) {
    if (g_alloc_fail_at < 0) {
        const char *e = getenv("HQ_FAIL_ALLOC_AT");
        g_alloc_fail_at = e ? strtoll(e, NULL, 10) : 0;
        if (g_alloc_fail_at < 0) g_alloc_fail_at = 0;
    }
    g_alloc_count++;
    return g_alloc_fail_at > 0 && g_alloc_count == g_alloc_fail_at;
}

void *hq_malloc(size_t n) {
    if (alloc_should_fail()) return NULL;
    return malloc(n ? n : 1);
}
void *hq_calloc(size_t count, size_t size) {
    size_t t;
    if (__builtin_mul_overflow(count, size, &t)) return NULL;
    if (alloc_should_fail()) return NULL;
    return calloc(t ? t : 1, 1);
}
void *hq_realloc(void *p, size_t n) {
    if (alloc_should_fail()) return NULL;
    return realloc(p, n ? n : 1);
}
void *hq_grow(void *p, uint64_t *cap, uint64_t n, size_t elem, uint64_t first) {
    if (n < *cap) return p;
    uint64_t nc = *cap ? *cap * 2 : first, bytes;
    if (nc <= *cap || !hq_mul_u64(nc, elem, &bytes) || bytes > SIZE_MAX) return NULL;
    void *q = hq_realloc(p, (size_t)bytes);
    if (q) *cap = nc;
    return q;
}
void *hq_malloc_array(size_t count, size_t size) {
    size_t t;
    if (__builtin_mul_overflow(count, size, &t)) return NULL;
    return hq_malloc(t);
}
char *hq_strndup(const char *s, size_t n) {
    char *r = hq_malloc(n + 1);
    if (!r) return NULL;
    memcpy(r, s, n);
    r[n] = 0;
    return r;
}
char *hq_strdup(const char *s) { return hq_strndup(s, strlen(s)); }
void hq_free(void *p) { free(p); }

/* ---------------- progress ---------------- */

double hq_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double g_prog_start = 0, g_prog_last = 0;
static int g_prog_open = 0;

void hq_progress(const char *label, uint64_t done, uint64_t total, const char *unit) {
    if (hq_quiet) return;
    double now = hq_now();
    int tty = isatty(2);
    if (!g_prog_open) {
        g_prog_start = now;
        g_prog_last = 0;
    }
    bool last = total && done >= total;
    if (!last && now - g_prog_last < (tty ? 0.1 : 2.0)) return;
    g_prog_last = now;
    double el = now - g_prog_start;
    double pct = total ? 100.0 * (double)done / (double)total : 0.0;
    fprintf(stderr, "%s%s: %llu/%llu %s (%.0f%%, %.1f s)%s", tty ? "\r\033[K" : "", label,
            (unsigned long long)done, (unsigned long long)total, unit ? unit : "", pct, el, tty ? "" : "\n");
    g_prog_open = 1;
}

void hq_progress_done(void) {
    if (g_prog_open && !hq_quiet && isatty(2)) fputc('\n', stderr);
    g_prog_open = 0;
}

const char *hq_fmt_bytes(uint64_t n, char buf[32]) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int i = 0;
    while (v >= 1024.0 && i < 4) v /= 1024.0, i++;
    if (i == 0) snprintf(buf, 32, "%llu B", (unsigned long long)n);
    else snprintf(buf, 32, "%.2f %s", v, u[i]);
    return buf;
}
