/* fuzz/fuzz_common.h — helpers shared by the fuzz harnesses.
 *
 * Every harness fuzz/fuzz_<name>.c defines `int fuzz_<name>(const uint8_t *,
 * size_t)` and, unless FUZZ_NO_ENTRY is defined, the libFuzzer entry point
 * LLVMFuzzerTestOneInput calling it. tests/test_fuzz_replay.c includes all of
 * them in one translation unit (FUZZ_NO_ENTRY), so file-level names carry the
 * harness prefix. Besides "no crash, no leak, no UB" (the sanitizers), the
 * harnesses check the reader contracts and abort on a violation:
 *   - a failure returns a known hq_status with a non-empty one-line message;
 *   - every tensor view a reader returns lies inside the input buffer;
 *   - fast paths equal their scalar _ref twins on whatever the reader accepted. */
#ifndef HQ_FUZZ_COMMON_H
#define HQ_FUZZ_COMMON_H
#include "../core/hq.h"
#include "../formats/ckpt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the harnesses (fuzz/harnesses.h lists them) */
int fuzz_zip(const uint8_t *d, size_t n);
int fuzz_pickle(const uint8_t *d, size_t n);
int fuzz_safetensors(const uint8_t *d, size_t n);
int fuzz_torch(const uint8_t *d, size_t n);
int fuzz_gguf(const uint8_t *d, size_t n);
int fuzz_imatrix(const uint8_t *d, size_t n);
int fuzz_config(const uint8_t *d, size_t n);
int fuzz_ckpt_index(const uint8_t *d, size_t n);
int fuzz_tokenizer_load(const uint8_t *d, size_t n);
int fuzz_tokenize(const uint8_t *d, size_t n);
int fuzz_model(const uint8_t *d, size_t n);

#define FZ_ASSERT(cond, ...)                                                   \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz contract violated at %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* The error contract of a failed call. */
static inline void fz_check_err(hq_status st, const char *err) {
    FZ_ASSERT(st > HQ_OK && st <= HQ_ERR_INTERNAL, "unknown status %d", (int)st);
    FZ_ASSERT(st != HQ_ERR_INTERNAL, "HQ_ERR_INTERNAL on input: %s", err);
    size_t n = strnlen(err, HQ_ERR_LEN);
    FZ_ASSERT(n > 0 && n < HQ_ERR_LEN, "empty or unterminated error message (status %s)", hq_status_name(st));
    FZ_ASSERT(!memchr(err, '\n', n), "multi-line error message: %s", err);
}

/* Equal element by element, any NaN matching any NaN (payloads may differ
 * between the F16C path and the scalar one). */
static inline bool fz_same_bits(const uint8_t *a, const uint8_t *b, uint64_t ne, hq_dtype dt) {
    for (uint64_t i = 0; i < ne; i++) {
        if (dt == HQ_DT_F32) {
            uint32_t x, y;
            memcpy(&x, a + 4 * i, 4);
            memcpy(&y, b + 4 * i, 4);
            bool nx = (x & 0x7fffffffu) > 0x7f800000u, ny = (y & 0x7fffffffu) > 0x7f800000u;
            if (x != y && !(nx && ny)) return false;
        } else {
            uint16_t x, y;
            memcpy(&x, a + 2 * i, 2);
            memcpy(&y, b + 2 * i, 2);
            uint16_t inf = dt == HQ_DT_F16 ? 0x7c00 : 0x7f80;
            bool nx = (x & 0x7fff) > inf, ny = (y & 0x7fff) > inf;
            if (x != y && !(nx && ny)) return false;
        }
    }
    return true;
}

/* Every tensor a reader accepted addresses bytes inside [buf, buf+len) and
 * fmt_tensor_read agrees with fmt_tensor_read_ref for small tensors. */
static inline void fz_check_ckpt(const fmt_ckpt *ck, const uint8_t *buf, uint64_t len) {
    for (uint64_t i = 0; i < ck->n_tensors; i++) {
        const fmt_tensor *t = &ck->tensors[i];
        FZ_ASSERT(t->name && t->ndim >= 0 && t->ndim <= HQ_MAX_DIMS, "tensor %llu: bad name/rank",
                  (unsigned long long)i);
        FZ_ASSERT(fmt_ckpt_find(ck, t->name) == t, "tensor '%s' not found by name", t->name);
        if (buf && t->storage_bytes) {
            FZ_ASSERT(t->storage >= buf && (uint64_t)(t->storage - buf) <= len &&
                          t->storage_bytes <= len - (uint64_t)(t->storage - buf),
                      "tensor '%s': storage outside the input", t->name);
        }
        uint64_t ne = fmt_tensor_nelem(t);
        if (ne > (1u << 16)) continue;
        static const hq_dtype outs[3] = {HQ_DT_F32, HQ_DT_F16, HQ_DT_BF16};
        for (int k = 0; k < 3; k++) {
            size_t bytes = (size_t)ne * (outs[k] == HQ_DT_F32 ? 4 : 2);
            uint8_t *a = hq_malloc(bytes ? bytes : 1), *b = hq_malloc(bytes ? bytes : 1);
            if (a && b) {
                char e1[HQ_ERR_LEN] = "", e2[HQ_ERR_LEN] = "";
                hq_status s1 = fmt_tensor_read(t, outs[k], a, e1);
                hq_status s2 = fmt_tensor_read_ref(t, outs[k], b, e2);
                FZ_ASSERT(s1 == s2, "tensor '%s': fmt_tensor_read %d vs _ref %d", t->name, (int)s1, (int)s2);
                if (s1 == HQ_OK) {
                    FZ_ASSERT(fz_same_bits(a, b, ne, outs[k]), "tensor '%s': fast read differs from _ref (out %d)",
                              t->name, k);
                } else if (s1 != HQ_ERR_NOMEM) {
                    fz_check_err(s1, e1);
                }
            }
            hq_free(a);
            hq_free(b);
        }
    }
}

/* Removes a flat temporary directory made by a harness (at exit). */
#include <dirent.h>
#include <unistd.h>
static inline void fz_rm_flat_dir(const char *dir) {
    if (!dir[0]) return;
    DIR *dd = opendir(dir);
    if (dd) {
        struct dirent *de;
        while ((de = readdir(dd))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            char p[1024];
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            unlink(p);
        }
        closedir(dd);
    }
    rmdir(dir);
}

/* mkdtemp template for a harness's scratch dir: under $HQ_FUZZ_TMP when set
 * (make fuzz points it into build/fuzz/tmp/ and removes it afterwards:
 * libFuzzer ends with _Exit, so atexit cleanup does not run), else /tmp. */
static inline void fz_tmp_template(char *buf, size_t cap, const char *tag) {
    const char *base = getenv("HQ_FUZZ_TMP");
    snprintf(buf, cap, "%s/hq_fuzz_%s.XXXXXX", base && *base ? base : "/tmp", tag);
}

/* A NUL-terminated copy of the input (JSON parsers take C strings). */
static inline char *fz_cstr(const uint8_t *d, size_t n) {
    char *s = malloc(n + 1);
    if (!s) abort();
    if (n) memcpy(s, d, n);
    s[n] = 0;
    return s;
}
/* Puts the input in an anonymous in-memory file for readers that take a
 * path; returns its fd (the caller closes it) and writes its /proc path, or
 * returns -1 when the file cannot be made. */
#include <sys/mman.h>
static inline int fz_memfd(const char *name, const uint8_t *d, size_t n, char *path, size_t cap) {
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0) return -1;
    if (n && write(fd, d, n) != (ssize_t)n) {
        close(fd);
        return -1;
    }
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    return fd;
}

#endif
