/* core/io.c — every file a command reads or writes goes through here (hq.h,
 * "files"), so these rules hold for every command and option (SECURITY.md,
 * "Files and paths"):
 *  - Inputs never hang: the type is checked with stat() before open(), and
 *    open() uses O_NONBLOCK, so a FIFO, a device or a directory given as an
 *    input is refused at once by name. A file the kernel reports as size 0
 *    that has content (/proc, sysfs) is read to EOF by hq_read_file and
 *    refused with that reason by hq_map_open.
 *  - Inputs are remembered (device + inode, the identity behind symlinks and
 *    hard links); an output that is the same file as one of them is refused
 *    by hq_out_open and again right before the rename, so no run replaces
 *    its own input. The commands also check their declared paths before any
 *    work (core/opts.c, hq_opts_check_paths).
 *  - Outputs never destroy anything: a regular file or a new name is written
 *    to "<path>.tmp.XXXXXX" and renamed over it when complete; an existing
 *    output that is not a regular file is written in place only when it is a
 *    pipe, /dev/null, /dev/zero, /dev/full or a terminal (ENOSPC reads "disk
 *    full"), never renamed over; anything else (directory, block device,
 *    socket, other character devices) is refused.
 *  - A mapped input that shrinks under us (cp over a model while it is read)
 *    raises SIGBUS: the handler removes temporary files and ends the process
 *    with "hyquant <cmd>: <file>: file changed while reading".
 */
#include "hq.h" // defines: hq_map_*, hq_read_file, hq_out_*, hq_path_same_file, hq_install_signal_cleanup

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* ---------------- inputs this process has opened ---------------- */

/* Fixed storage: no allocation (the fault-injection counts stay as they
 * were) and safe to read from the SIGBUS handler. Beyond HQ_MAX_SEEN inputs
 * (sharded checkpoints of > 1000 files) the up-front checks still apply. */
#define HQ_MAX_SEEN 1024
/* The inode change time is part of the identity: a file deleted after it was
 * read may hand its inode number to a new file, which is not that input. */
typedef struct {
    dev_t dev;
    ino_t ino;
    struct timespec ctime;
    char path[256];
} seen_file;
static seen_file g_seen[HQ_MAX_SEEN];
static int g_n_seen;

static const char *seen_find(const struct stat *st) {
    for (int i = 0; i < g_n_seen; i++)
        if (g_seen[i].dev == st->st_dev && g_seen[i].ino == st->st_ino &&
            g_seen[i].ctime.tv_sec == st->st_ctim.tv_sec && g_seen[i].ctime.tv_nsec == st->st_ctim.tv_nsec)
            return g_seen[i].path;
    return NULL;
}
static void seen_add(const struct stat *st, const char *path) {
    if (seen_find(st) || g_n_seen >= HQ_MAX_SEEN) return;
    g_seen[g_n_seen].dev = st->st_dev;
    g_seen[g_n_seen].ino = st->st_ino;
    g_seen[g_n_seen].ctime = st->st_ctim;
    snprintf(g_seen[g_n_seen].path, sizeof g_seen[0].path, "%s", path);
    g_n_seen++;
}
void hq_inputs_forget(void) { g_n_seen = 0; }

static const char *file_kind(mode_t m) {
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO (named pipe)";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    return "not a regular file";
}

/* Opens a regular file for reading. The type is checked before open() and
 * open() does not block (a FIFO without a writer would wait forever). */
static hq_status open_input(const char *path, int *fdp, struct stat *st, char *err) {
    *fdp = -1;
    if (stat(path, st) != 0) return hq_fail(err, HQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st->st_mode))
        return hq_fail(err, HQ_ERR_IO, "%s: is %s, not a regular file", path, file_kind(st->st_mode));
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) return hq_fail(err, HQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) { /* replaced between stat and open */
        close(fd);
        return hq_fail(err, HQ_ERR_IO, "%s: is not a regular file (it changed while being opened)", path);
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    seen_add(st, path);
    *fdp = fd;
    return HQ_OK;
}

/* ---------------- mapped inputs (and SIGBUS) ---------------- */

#define HQ_MAX_MAPS 64
static struct {
    uintptr_t lo, hi;
    char path[256];
} g_maps[HQ_MAX_MAPS];
static volatile sig_atomic_t g_map_used[HQ_MAX_MAPS];

static void map_note(const void *p, uint64_t n, const char *path) {
    for (int i = 0; i < HQ_MAX_MAPS; i++)
        if (!g_map_used[i]) {
            g_maps[i].lo = (uintptr_t)p;
            g_maps[i].hi = (uintptr_t)p + (uintptr_t)n;
            snprintf(g_maps[i].path, sizeof g_maps[i].path, "%s", path);
            g_map_used[i] = 1;
            return;
        }
}
static void map_forget(const void *p) {
    for (int i = 0; i < HQ_MAX_MAPS; i++)
        if (g_map_used[i] && g_maps[i].lo == (uintptr_t)p) g_map_used[i] = 0;
}

hq_status hq_map_open(const char *path, hq_map *m, char *err) {
    memset(m, 0, sizeof *m);
    int fd;
    struct stat st;
    hq_status s = open_input(path, &fd, &st, err);
    if (s) return s;
    m->size = (uint64_t)st.st_size;
    if (m->size == 0) {
        char c;
        if (read(fd, &c, 1) > 0) {
            close(fd);
            return hq_fail(err, HQ_ERR_UNSUPPORTED,
                           "%s: the kernel reports size 0 but the file has content (a /proc or sysfs file?); "
                           "copy it to a regular file first",
                           path);
        }
    }
    if (m->size > 0) {
        void *p = mmap(NULL, (size_t)m->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return hq_fail(err, HQ_ERR_IO, "%s: mmap failed: %s", path, strerror(e));
        }
        m->data = p;
        map_note(p, m->size, path);
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
    if (m->data) {
        map_forget(m->data);
        munmap((void *)m->data, (size_t)m->size);
    }
    hq_free(m->path);
    memset(m, 0, sizeof *m);
}

/* ---------------- whole-file reads ---------------- */

static hq_status too_big(const char *path, uint64_t n, bool at_least, uint64_t max, char *err) {
    return hq_fail(err, HQ_ERR_LIMIT, "%s: file is %s%llu bytes, more than the limit of %llu", path,
                   at_least ? "over " : "", (unsigned long long)n, (unsigned long long)max);
}

hq_status hq_read_file(const char *path, uint64_t max_bytes, char **buf, uint64_t *len, char *err) {
    *buf = NULL;
    *len = 0;
    int fd;
    struct stat st;
    hq_status s = open_input(path, &fd, &st, err);
    if (s) return s;
    if ((uint64_t)st.st_size > max_bytes) {
        close(fd);
        return too_big(path, (uint64_t)st.st_size, false, max_bytes, err);
    }
    /* st_size is a hint: read to EOF (a /proc file reports 0), never past the
     * limit, and grow only when the file turns out longer than it said */
    uint64_t cap = st.st_size ? (uint64_t)st.st_size + 1 : (max_bytes + 1 < 4096 ? max_bytes + 1 : 4096), n = 0;
    char *b = hq_malloc((size_t)cap);
    if (!b) {
        close(fd);
        return hq_fail(err, HQ_ERR_NOMEM, "%s: out of memory reading %llu bytes", path, (unsigned long long)cap - 1);
    }
    for (;;) {
        char probe;
        char *dst = n + 1 < cap ? b + n : &probe;
        size_t want = n + 1 < cap ? (size_t)(cap - 1 - n) : 1;
        ssize_t k = read(fd, dst, want);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) {
            int e = errno;
            hq_free(b);
            close(fd);
            return hq_fail(err, HQ_ERR_IO, "%s: read failed: %s", path, strerror(e));
        }
        if (k == 0) break;
        if (dst == &probe) { /* longer than the buffer: grow up to the limit */
            if (n + 1 > max_bytes) {
                hq_free(b);
                close(fd);
                return too_big(path, max_bytes, true, max_bytes, err);
            }
            uint64_t nc = cap * 2 < max_bytes + 2 ? cap * 2 : max_bytes + 2;
            char *nb = hq_realloc(b, (size_t)nc);
            if (!nb) {
                hq_free(b);
                close(fd);
                return hq_fail(err, HQ_ERR_NOMEM, "%s: out of memory reading %llu bytes", path,
                               (unsigned long long)nc);
            }
            b = nb;
            cap = nc;
            b[n] = probe;
            k = 1;
        }
        n += (uint64_t)k;
    }
    close(fd);
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

bool hq_file_has_magic(const char *path, const char *magic, size_t n) {
    int fd;
    struct stat st;
    char buf[16];
    if (n > sizeof buf || open_input(path, &fd, &st, NULL) != HQ_OK) return false;
    ssize_t k = read(fd, buf, n);
    close(fd);
    return k == (ssize_t)n && !memcmp(buf, magic, n);
}

bool hq_path_same_file(const char *out, const char *in) {
    struct stat so, si;
    if (stat(out, &so) != 0 || !S_ISREG(so.st_mode) || stat(in, &si) != 0) return false;
    if (so.st_dev == si.st_dev && so.st_ino == si.st_ino) return true;
    if (!S_ISDIR(si.st_mode)) return false;
    DIR *d = opendir(in);
    if (!d) return false;
    bool same = false;
    struct dirent *e;
    while (!same && (e = readdir(d)) != NULL) {
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, 0) == 0 && st.st_dev == so.st_dev && st.st_ino == so.st_ino)
            same = true;
    }
    closedir(d);
    return same;
}

/* ---------------- output files ---------------- */

#define HQ_MAX_TMP 16
/* Paths of temporary files to unlink on a signal. Fixed storage so that the
 * handler touches no allocator. */
static char g_tmp_paths[HQ_MAX_TMP][4096];
static volatile sig_atomic_t g_tmp_used[HQ_MAX_TMP];
static char g_cmd_name[32] = "";

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

static size_t put(char *dst, size_t k, size_t cap, const char *s) {
    while (*s && k + 1 < cap) dst[k++] = *s++;
    return k;
}

/* SIGBUS: a page of a mapped input is gone (the file was truncated). Only
 * async-signal-safe calls: the message is assembled by hand. */
static void on_sigbus(int sig, siginfo_t *si, void *uc) {
    (void)sig;
    (void)uc;
    /* several threads may fault on the same truncated page at once: one
     * reports, the others wait for its _exit (one line, not one per thread) */
    static char reported;
    if (__atomic_test_and_set(&reported, __ATOMIC_SEQ_CST))
        for (;;) pause();
    const char *path = "a memory-mapped input";
    uintptr_t a = (uintptr_t)si->si_addr;
    for (int i = 0; i < HQ_MAX_MAPS; i++)
        if (g_map_used[i] && a >= g_maps[i].lo && a < g_maps[i].hi) path = g_maps[i].path;
    cleanup_tmp_files();
    char msg[512];
    size_t k = put(msg, 0, sizeof msg, "hyquant");
    if (g_cmd_name[0]) k = put(msg, put(msg, k, sizeof msg, " "), sizeof msg, g_cmd_name);
    k = put(msg, k, sizeof msg, ": ");
    k = put(msg, k, sizeof msg, path);
    k = put(msg, k, sizeof msg, ": file changed while reading (truncated or replaced while in use)\n");
    ssize_t w = write(2, msg, k);
    (void)w;
    _exit(1);
}

void hq_set_command_name(const char *name) { snprintf(g_cmd_name, sizeof g_cmd_name, "%s", name); }

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
    struct sigaction sb;
    memset(&sb, 0, sizeof sb);
    sb.sa_sigaction = on_sigbus;
    sb.sa_flags = SA_SIGINFO;
    sigemptyset(&sb.sa_mask);
    sigaction(SIGBUS, &sb, NULL);
    /* a file-size limit (ulimit -f) must make write() fail with EFBIG, which
     * the hq_out error path reports and cleans up, instead of killing us */
    signal(SIGXFSZ, SIG_IGN);
    atexit(cleanup_tmp_files);
}

static hq_status out_io_fail(const char *path, const char *what, int e, char *err) {
    if (e == ENOSPC || e == EDQUOT)
        return hq_fail(err, HQ_ERR_IO, "%s: %s failed: disk full (%s)", path, what, strerror(e));
    return hq_fail(err, HQ_ERR_IO, "%s: %s failed: %s", path, what, strerror(e));
}

/* Character devices an output may be written to in place: /dev/null,
 * /dev/zero, /dev/full (mem major 1) and terminals (tty, console, pts). */
static bool output_device_ok(const struct stat *st) {
    if (S_ISFIFO(st->st_mode)) return true;
    if (!S_ISCHR(st->st_mode)) return false;
    unsigned ma = major(st->st_rdev), mi = minor(st->st_rdev);
    if (ma == 1) return mi == 3 || mi == 5 || mi == 7;
    return ma == 4 || (ma == 5 && mi <= 1) || (ma >= 136 && ma <= 143);
}

static hq_status out_open_in_place(hq_out *o, const char *path, const struct stat *st, char *err) {
    if (!output_device_ok(st))
        return hq_fail(err, HQ_ERR_ARG,
                       "%s: output exists and is %s; refusing to write to it or replace it "
                       "(outputs are regular files, pipes, /dev/null, /dev/full or a terminal)",
                       path, file_kind(st->st_mode));
    /* O_NONBLOCK: a FIFO without a reader fails with ENXIO instead of waiting */
    int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        if (e == ENXIO) return hq_fail(err, HQ_ERR_IO, "%s: a FIFO with no reader; start the reader first", path);
        return hq_fail(err, HQ_ERR_IO, "%s: cannot open: %s", path, strerror(e));
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    o->path = hq_strdup(path);
    o->fp = o->path ? fdopen(fd, "wb") : NULL;
    if (!o->fp) {
        close(fd);
        hq_free(o->path);
        memset(o, 0, sizeof *o);
        o->slot = -1;
        return hq_fail(err, HQ_ERR_NOMEM, "%s: out of memory", path);
    }
    o->in_place = true;
    return HQ_OK;
}

static hq_status same_as_input(const char *path, const char *in, char *err) {
    return hq_fail(err, HQ_ERR_ARG, "%s: output is the same file as the input %s; refusing to overwrite it", path,
                   in);
}

hq_status hq_out_open(hq_out *o, const char *path, char *err) {
    memset(o, 0, sizeof *o);
    o->slot = -1;
    size_t n = strlen(path);
    if (n == 0 || n + 16 >= sizeof g_tmp_paths[0])
        return hq_fail(err, HQ_ERR_ARG, "output path '%s' is empty or too long", path);
    struct stat st, lst;
    bool exists = stat(path, &st) == 0;
    if (exists) {
        if (S_ISDIR(st.st_mode)) return hq_fail(err, HQ_ERR_ARG, "%s: output path is a directory", path);
        if (!S_ISREG(st.st_mode)) return out_open_in_place(o, path, &st, err);
        const char *in = seen_find(&st);
        if (in) return same_as_input(path, in, err);
    }
    /* A symlink is never renamed over (as root, /dev/stdout -> /proc/self/fd/1
     * would become a regular file): the file it names is the one replaced,
     * from a temporary file in that file's directory. */
    if (lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode)) {
        if (!exists)
            return hq_fail(err, HQ_ERR_ARG, "%s: a symlink to a missing file; refusing to replace the link", path);
        char *real = realpath(path, NULL);
        hq_status s = HQ_OK;
        if (!real) s = hq_fail(err, HQ_ERR_IO, "%s: cannot resolve the symlink: %s", path, strerror(errno));
        else if (!strcmp(real, path)) s = hq_fail(err, HQ_ERR_INTERNAL, "%s: symlink resolves to itself", path);
        else s = hq_out_open(o, real, err);
        free(real); /* realpath's allocation */
        return s;
    }
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
        o->slot = -1;
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
        o->slot = -1;
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
    if (n && fwrite(p, 1, n, o->fp) != n) return out_io_fail(o->path, "write", errno, err);
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
    if (fseeko(o->fp, (off_t)off, SEEK_SET) != 0) {
        if (errno == ESPIPE)
            return hq_fail(err, HQ_ERR_UNSUPPORTED, "%s: this output is rewritten at the end and cannot go to a pipe",
                           o->path);
        return hq_fail(err, HQ_ERR_IO, "%s: seek failed: %s", o->path, strerror(errno));
    }
    return HQ_OK;
}

static void out_release(hq_out *o) {
    if (o->slot >= 0 && o->slot < HQ_MAX_TMP) g_tmp_used[o->slot] = 0;
    hq_free(o->path);
    hq_free(o->tmp_path);
    memset(o, 0, sizeof *o);
    o->slot = -1;
}

hq_status hq_out_commit(hq_out *o, char *err) {
    if (!o->fp) return hq_fail(err, HQ_ERR_INTERNAL, "commit of a closed output");
    int bad = fflush(o->fp) != 0;
    int e = errno;
    /* a pipe or a device has nothing to sync (fsync says EINVAL) */
    if (!bad && !o->in_place && fsync(fileno(o->fp)) != 0) bad = 1, e = errno;
    if (fclose(o->fp) != 0 && !bad) bad = 1, e = errno;
    o->fp = NULL;
    if (bad) {
        hq_status st = out_io_fail(o->path, "write", e, err);
        hq_out_abort(o);
        return st;
    }
    if (!o->in_place) {
        /* an input opened after hq_out_open must not be replaced either, nor
         * a FIFO or device that appeared under the name meanwhile */
        struct stat st;
        const char *in = NULL;
        if (stat(o->path, &st) == 0 && ((in = seen_find(&st)) != NULL || !S_ISREG(st.st_mode))) {
            hq_status s = in ? same_as_input(o->path, in, err)
                             : hq_fail(err, HQ_ERR_IO, "%s: became %s while being written; not replaced", o->path,
                                       file_kind(st.st_mode));
            hq_out_abort(o);
            return s;
        }
        if (rename(o->tmp_path, o->path) != 0) {
            e = errno;
            hq_status s = hq_fail(err, HQ_ERR_IO, "%s: rename failed: %s", o->path, strerror(e));
            hq_out_abort(o);
            return s;
        }
    }
    out_release(o);
    return HQ_OK;
}

void hq_out_abort(hq_out *o) {
    if (o->fp) fclose(o->fp);
    o->fp = NULL;
    if (o->tmp_path) unlink(o->tmp_path);
    out_release(o);
}
