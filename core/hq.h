/* core/hq.h — status codes, error messages, checked arithmetic, allocation with
 * fault injection, memory-mapped input, atomic output files, progress lines.
 *
 * Error policy (style.md §7): library code never exits. It returns an hq_status
 * and writes a one-line message into a caller-provided buffer of HQ_ERR_LEN
 * bytes (err may be NULL). Only cli/main.c decides the exit code.
 */
#ifndef HQ_CORE_H
#define HQ_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    HQ_OK = 0,
    HQ_ERR_IO,          /* open/read/write/rename failed */
    HQ_ERR_FORMAT,      /* malformed or hostile input file */
    HQ_ERR_UNSUPPORTED, /* well-formed but outside what we handle */
    HQ_ERR_NOMEM,       /* allocation failed (or was injected to fail) */
    HQ_ERR_ARG,         /* bad command-line option or API argument */
    HQ_ERR_LIMIT,       /* an input exceeds a documented limit (core/limits.h) */
    HQ_ERR_MISMATCH,    /* inputs that do not belong together */
    HQ_ERR_INTERNAL,    /* a bug: invariant violated */
} hq_status;

#define HQ_ERR_LEN 512

/* Formats msg into err (if non-NULL) and returns st. Usage:
 *   return hq_fail(err, HQ_ERR_FORMAT, "%s: header length %llu beyond EOF", path, n); */
hq_status hq_fail(char *err, hq_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *hq_status_name(hq_status st);

/* ---- checked 64-bit arithmetic: return false on overflow ---- */
static inline bool hq_add_u64(uint64_t a, uint64_t b, uint64_t *r) { return !__builtin_add_overflow(a, b, r); }
static inline bool hq_mul_u64(uint64_t a, uint64_t b, uint64_t *r) { return !__builtin_mul_overflow(a, b, r); }
static inline bool hq_add_i64(int64_t a, int64_t b, int64_t *r) { return !__builtin_add_overflow(a, b, r); }
static inline bool hq_mul_i64(int64_t a, int64_t b, int64_t *r) { return !__builtin_mul_overflow(a, b, r); }
/* round v up to a multiple of a (a power of two); false on overflow */
static inline bool hq_align_u64(uint64_t v, uint64_t a, uint64_t *r) {
    uint64_t t;
    if (!hq_add_u64(v, a - 1, &t)) return false;
    *r = t & ~(a - 1);
    return true;
}

/* ---- allocation ----
 * Every allocation in the project goes through these so that tests can make
 * the N-th allocation fail: HQ_FAIL_ALLOC_AT=N in the environment (or
 * hq_alloc_fail_at(N) from a test). All sizes are overflow-checked. */
void *hq_malloc(size_t n);
void *hq_calloc(size_t count, size_t size);
void *hq_realloc(void *p, size_t n);
void *hq_malloc_array(size_t count, size_t size); /* checked count*size */
/* Room for element n of a growing array p of *cap elements of elem bytes:
 * returns p while n < *cap, else p reallocated to twice the capacity (first
 * when empty) with *cap updated, or NULL (p still valid, *cap unchanged). */
void *hq_grow(void *p, uint64_t *cap, uint64_t n, size_t elem, uint64_t first);
char *hq_strdup(const char *s);
char *hq_strndup(const char *s, size_t n);
void hq_free(void *p);
void hq_alloc_fail_at(int64_t n); /* 0 disables */
int64_t hq_alloc_count(void);

/* ---- files (core/io.c) ----
 * Inputs are checked to be regular files before they are opened, without
 * blocking (a FIFO or device is refused by name), and remembered by device +
 * inode: an output that is the same file as an input is refused. */
typedef struct {
    const uint8_t *data; /* read-only mapping (NULL when size is 0) */
    uint64_t size;
    char *path;
} hq_map;
/* A mapped file that is truncated while mapped raises SIGBUS; the handler
 * installed by hq_install_signal_cleanup reports "file changed while
 * reading" naming it, removes temporary outputs and exits 1. */
hq_status hq_map_open(const char *path, hq_map *m, char *err);
void hq_map_close(hq_map *m);
/* Reads a whole (small) file to EOF (st_size is only a hint: /proc files
 * say 0); fails with HQ_ERR_LIMIT beyond max_bytes, never holding more than
 * max_bytes + 2. The buffer is NUL-terminated (not counted in *len). */
hq_status hq_read_file(const char *path, uint64_t max_bytes, char **buf, uint64_t *len, char *err);
bool hq_is_dir(const char *path);
bool hq_file_exists(const char *path);
/* join dir + "/" + name into a new string */
char *hq_path_join(const char *dir, const char *name);
/* True when out exists as a regular file that is the same file (device +
 * inode, through symlinks and hard links) as in or, when in is a directory,
 * as a file directly inside it. */
bool hq_path_same_file(const char *out, const char *in);
/* True when path is a regular file starting with the n bytes of magic (never
 * blocks: a FIFO or device is not opened). */
bool hq_file_has_magic(const char *path, const char *magic, size_t n);
/* Forgets the inputs opened so far (tests that rewrite a file they read). */
void hq_inputs_forget(void);

/* Output files. A regular file or a new name: data goes to
 * "<path>.tmp.XXXXXX" in the same directory and is renamed over <path> only
 * by hq_out_commit; hq_out_abort (also run from the SIGINT/SIGTERM handler
 * and at exit) removes the temporary file, so a failed or interrupted run
 * never leaves a partial or temporary file behind. An existing pipe,
 * /dev/null, /dev/zero, /dev/full or terminal is written in place (in_place)
 * and never renamed over; other non-regular files are refused, and so is an
 * output that is the same file as an input this process opened. */
typedef struct {
    FILE *fp;
    char *path;
    char *tmp_path; /* NULL when in_place */
    uint64_t written;
    int slot; /* index in the cleanup registry */
    bool in_place;
} hq_out;
hq_status hq_out_open(hq_out *o, const char *path, char *err);
hq_status hq_out_write(hq_out *o, const void *p, size_t n, char *err);
hq_status hq_out_zeros(hq_out *o, uint64_t n, char *err);
hq_status hq_out_seek(hq_out *o, uint64_t off, char *err);
hq_status hq_out_commit(hq_out *o, char *err);
void hq_out_abort(hq_out *o);
/* Installs SIGINT/SIGTERM/SIGHUP handlers that remove registered temp files,
 * and the SIGBUS handler for mapped inputs that shrink. */
void hq_install_signal_cleanup(void);
/* The subcommand named in messages printed from signal handlers. */
void hq_set_command_name(const char *name);

/* ---- progress and timing ---- */
double hq_now(void); /* monotonic seconds */
/* A progress line on stderr, redrawn in place when stderr is a terminal and
 * printed at most every 2 s otherwise. hq_progress_done ends the line. */
void hq_progress(const char *label, uint64_t done, uint64_t total, const char *unit);
void hq_progress_done(void);
extern int hq_quiet; /* set by --quiet: no progress lines */

/* format a byte count as "12.3 MiB" into buf */
const char *hq_fmt_bytes(uint64_t n, char buf[32]);

#endif
