/* core/hq.c — see hq.h */
#include "hq.h" // defines: hq_fail, hq_malloc..., hq_map_*, hq_out_*, hq_progress

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
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

/* ---------------- files ---------------- */

hq_status hq_map_open(const char *path, hq_map *m, char *err) {
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return hq_fail(err, HQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return hq_fail(err, HQ_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return hq_fail(err, HQ_ERR_IO, "%s: not a regular file", path);
    }
    m->size = (uint64_t)st.st_size;
    if (m->size > 0) {
        void *p = mmap(NULL, (size_t)m->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return hq_fail(err, HQ_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
        }
        m->data = p;
    }
    close(fd);
    m->path = hq_strdup(path);
    if (!m->path) {
        hq_map_close(m);
        return hq_fail(err, HQ_ERR_NOMEM, "%s: out of memory", path);
    }
    return HQ_OK;
}

void hq_map_close(hq_map *m) {
    if (m->data) munmap((void *)m->data, (size_t)m->size);
    hq_free(m->path);
    memset(m, 0, sizeof *m);
}

hq_status hq_read_file(const char *path, uint64_t max_bytes, char **buf, uint64_t *len, char *err) {
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return hq_fail(err, HQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return hq_fail(err, HQ_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_bytes) {
        fclose(f);
        return hq_fail(err, HQ_ERR_LIMIT, "%s: file is %llu bytes, more than the limit of %llu", path,
                       (unsigned long long)st.st_size, (unsigned long long)max_bytes);
    }
    size_t n = (size_t)st.st_size;
    char *b = hq_malloc(n + 1);
    if (!b) {
        fclose(f);
        return hq_fail(err, HQ_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, n);
    }
    if (n && fread(b, 1, n, f) != n) {
        hq_free(b);
        fclose(f);
        return hq_fail(err, HQ_ERR_IO, "%s: short read", path);
    }
    fclose(f);
    b[n] = 0;
    *buf = b;
    *len = n;
    return HQ_OK;
}

bool hq_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}
bool hq_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}
char *hq_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *r = hq_malloc(a + b + 2);
    if (!r) return NULL;
    memcpy(r, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/') r[k++] = '/';
    memcpy(r + k, name, b + 1);
    return r;
}

/* ---------------- atomic output ---------------- */

#define HQ_MAX_TMP 16
/* Paths of temporary files to unlink on a signal. Fixed storage so that the
 * handler touches no allocator. */
static char g_tmp_paths[HQ_MAX_TMP][4096];
static volatile sig_atomic_t g_tmp_used[HQ_MAX_TMP];

static void cleanup_tmp_files(void) {
    for (int i = 0; i < HQ_MAX_TMP; i++)
        if (g_tmp_used[i]) {
            unlink(g_tmp_paths[i]);
            g_tmp_used[i] = 0;
        }
}

static void on_signal(int sig) {
    cleanup_tmp_files();
    signal(sig, SIG_DFL);
    raise(sig);
}

void hq_install_signal_cleanup(void) {
    static int done = 0;
    if (done) return;
    done = 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    /* a file-size limit (ulimit -f) must make write() fail with EFBIG, which
     * the hq_out error path reports and cleans up, instead of killing us */
    signal(SIGXFSZ, SIG_IGN);
    atexit(cleanup_tmp_files);
}

hq_status hq_out_open(hq_out *o, const char *path, char *err) {
    memset(o, 0, sizeof *o);
    o->slot = -1;
    size_t n = strlen(path);
    if (n == 0 || n + 16 >= sizeof g_tmp_paths[0])
        return hq_fail(err, HQ_ERR_ARG, "output path '%s' is empty or too long", path);
    if (hq_is_dir(path)) return hq_fail(err, HQ_ERR_ARG, "%s: output path is a directory", path);
    int slot = -1;
    for (int i = 0; i < HQ_MAX_TMP; i++)
        if (!g_tmp_used[i]) {
            slot = i;
            break;
        }
    if (slot < 0) return hq_fail(err, HQ_ERR_LIMIT, "%s: too many open output files", path);
    o->path = hq_strdup(path);
    o->tmp_path = hq_malloc(n + 16);
    if (!o->path || !o->tmp_path) {
        hq_free(o->path);
        hq_free(o->tmp_path);
        memset(o, 0, sizeof *o);
        return hq_fail(err, HQ_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(o->tmp_path, n + 16, "%s.tmp.XXXXXX", path);
    /* The temp file must be registered for signal cleanup the moment it
     * exists: block the cleanup signals from mkstemp until it is. */
    sigset_t block, saved;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, &saved);
    int fd = mkstemp(o->tmp_path);
    int e = errno;
    if (fd >= 0) {
        memcpy(g_tmp_paths[slot], o->tmp_path, n + 16);
        g_tmp_used[slot] = 1;
    }
    sigprocmask(SIG_SETMASK, &saved, NULL);
    if (fd < 0) {
        hq_free(o->path);
        hq_free(o->tmp_path);
        memset(o, 0, sizeof *o);
        return hq_fail(err, HQ_ERR_IO, "%s: cannot create temporary file: %s", path, strerror(e));
    }
    o->slot = slot;
    fchmod(fd, 0644);
    o->fp = fdopen(fd, "wb");
    if (!o->fp) {
        close(fd);
        hq_out_abort(o);
        return hq_fail(err, HQ_ERR_IO, "%s: fdopen failed", path);
    }
    return HQ_OK;
}

hq_status hq_out_write(hq_out *o, const void *p, size_t n, char *err) {
    if (!o->fp) return hq_fail(err, HQ_ERR_INTERNAL, "write to a closed output");
    if (n && fwrite(p, 1, n, o->fp) != n)
        return hq_fail(err, HQ_ERR_IO, "%s: write failed: %s", o->path, strerror(errno));
    o->written += n;
    return HQ_OK;
}

hq_status hq_out_zeros(hq_out *o, uint64_t n, char *err) {
    static const uint8_t z[4096];
    while (n > 0) {
        size_t k = n > sizeof z ? sizeof z : (size_t)n;
        hq_status st = hq_out_write(o, z, k, err);
        if (st) return st;
        n -= k;
    }
    return HQ_OK;
}

hq_status hq_out_seek(hq_out *o, uint64_t off, char *err) {
    if (fseeko(o->fp, (off_t)off, SEEK_SET) != 0)
        return hq_fail(err, HQ_ERR_IO, "%s: seek failed: %s", o->path, strerror(errno));
    return HQ_OK;
}

hq_status hq_out_commit(hq_out *o, char *err) {
    if (!o->fp) return hq_fail(err, HQ_ERR_INTERNAL, "commit of a closed output");
    int bad = fflush(o->fp) != 0;
    int e = errno;
    if (!bad && fsync(fileno(o->fp)) != 0) bad = 1, e = errno;
    if (fclose(o->fp) != 0 && !bad) bad = 1, e = errno;
    o->fp = NULL;
    if (bad) {
        hq_status st = hq_fail(err, HQ_ERR_IO, "%s: write failed: %s", o->path, strerror(e));
        hq_out_abort(o);
        return st;
    }
    if (rename(o->tmp_path, o->path) != 0) {
        e = errno;
        hq_status st = hq_fail(err, HQ_ERR_IO, "%s: rename failed: %s", o->path, strerror(e));
        hq_out_abort(o);
        return st;
    }
    if (o->slot >= 0) g_tmp_used[o->slot] = 0;
    hq_free(o->path);
    hq_free(o->tmp_path);
    memset(o, 0, sizeof *o);
    o->slot = -1;
    return HQ_OK;
}

void hq_out_abort(hq_out *o) {
    if (o->fp) fclose(o->fp);
    o->fp = NULL;
    if (o->tmp_path) unlink(o->tmp_path);
    if (o->slot >= 0 && o->slot < HQ_MAX_TMP) g_tmp_used[o->slot] = 0;
    hq_free(o->path);
    hq_free(o->tmp_path);
    memset(o, 0, sizeof *o);
    o->slot = -1;
}

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
